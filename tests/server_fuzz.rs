//! Property tests: no input, however strange, makes the prediction routes panic, answer 5xx
//! or hang. Every answer is one of the documented statuses, with a JSON body.

mod common;

use axum::http::StatusCode;
use common::*;
use proptest::prelude::*;
use serde_json::Value;

const ROUTES: [&str; 2] = ["/predict", "/predict/batch"];

fn check(body: Vec<u8>) -> Result<(), TestCaseError> {
    let answers = with_small_app(|app| async move {
        let mut answers = Vec::new();
        for route in ROUTES {
            let answer = call(&app, "POST", route, Some("application/json"), body.clone()).await;
            answers.push((route, answer));
        }
        answers
    })?;
    for (route, (status, answer)) in answers {
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

/// Any JSON value, with keys that are sometimes the model's features.
fn json_value() -> impl Strategy<Value = Value> {
    let mut keys = ml_serving::dataset::DEFAULT_FEATURES.to_vec();
    keys.push("rows");
    any_json(keys)
}

/// A row with every feature, each value anything numeric (or not).
fn near_valid_row() -> impl Strategy<Value = Value> {
    prop::collection::vec(any_number(), 6).prop_map(|values| {
        Value::Object(
            ml_serving::dataset::DEFAULT_FEATURES
                .iter()
                .map(|f| f.to_string())
                .zip(values)
                .collect(),
        )
    })
}

json_route_properties!(check, json_value());

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn rows_with_any_numbers(row in near_valid_row(), copies in 1usize..12) {
        check(serde_json::to_vec(&row).unwrap())?;
        check(serde_json::to_vec(&vec![row; copies]).unwrap())?;
    }
}

#[test]
fn numbers_json_cannot_hold_as_floats_are_a_clean_400() {
    let body = SAMPLE.replace("2019.0", "1e999");
    check(body.into_bytes()).unwrap();
}
