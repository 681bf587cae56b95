//! Property tests: no input, however strange, makes the prediction routes panic, answer 5xx
//! or hang. Every answer is one of the documented statuses, with a JSON body.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use proptest::prelude::*;
use serde_json::Value;

const ROUTES: [&str; 2] = ["/predict", "/predict/batch"];

fn check(body: Vec<u8>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_, app) = Setup {
        body_bytes: 4096,
        batch_rows: 8,
        ..Setup::default()
    }
    .app();
    for route in ROUTES {
        let (status, answer) = runtime
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(5),
                    call(&app, "POST", route, Some("application/json"), body.clone()),
                )
                .await
            })
            .map_err(|_| TestCaseError::fail(format!("{route} hung")))?;
        prop_assert!(
            [
                StatusCode::OK,
                StatusCode::BAD_REQUEST,
                StatusCode::PAYLOAD_TOO_LARGE,
                StatusCode::UNPROCESSABLE_ENTITY
            ]
            .contains(&status),
            "{route}: unexpected {status}: {answer}"
        );
        if status == StatusCode::OK {
            prop_assert!(answer.is_object(), "{route}: {answer}");
        } else {
            prop_assert!(
                answer["detail"].is_string() || answer["detail"].is_array(),
                "{route}: {answer}"
            );
        }
    }
    Ok(())
}

/// Any JSON value, nested a few levels, with keys that are sometimes the model's features.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        prop::sample::select(ml_serving::dataset::DEFAULT_FEATURES.to_vec())
            .prop_map(str::to_string),
        Just("rows".to_string()),
        ".*",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<i64>().prop_map(|i| Value::Number(i.into())),
        any::<u64>().prop_map(|i| Value::Number(i.into())),
        ".*".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..10).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A row with every feature, each value anything numeric (or not).
fn near_valid_row() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        prop_oneof![
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            (0.0f64..5000.0).prop_map(|f| serde_json::json!(f)),
            any::<i64>().prop_map(|i| Value::Number(i.into())),
        ],
        6,
    )
    .prop_map(|values| {
        Value::Object(
            ml_serving::dataset::DEFAULT_FEATURES
                .iter()
                .map(|f| f.to_string())
                .zip(values)
                .collect(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check(body)?;
    }

    #[test]
    fn arbitrary_json(value in json_value()) {
        check(serde_json::to_vec(&value).unwrap())?;
    }

    #[test]
    fn rows_with_any_numbers(row in near_valid_row(), copies in 1usize..12) {
        check(serde_json::to_vec(&row).unwrap())?;
        check(serde_json::to_vec(&vec![row; copies]).unwrap())?;
    }

    #[test]
    fn json_like_text(body in r#"[\[\]{}",:0-9eE.+\- a-z_]{0,200}"#) {
        check(body.into_bytes())?;
    }
}

#[test]
fn numbers_json_cannot_hold_as_floats_are_a_clean_400() {
    let body = SAMPLE.replace("2019.0", "1e999");
    check(body.into_bytes()).unwrap();
}
