//! In-process tests of the Open Inference Protocol ("KServe V2") routes: every endpoint and
//! every error, both input layouts against `/predict` on the bundled data, the shared limits,
//! and property tests that no body makes the inference route panic, answer 5xx or hang.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use ml_serving::server::App;
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

const INFER: &str = "/v2/models/breast_model/infer";
use ml_serving::dataset::DEFAULT_FEATURES as FEATURES;

#[test]
fn the_tests_feature_order_is_the_models() {
    // SAMPLE_ROW and BENIGN_ROW (tests/common) are in FEATURES order; tensors must be in the model's.
    let model = ml_serving::artifact::LoadedModel::load(&bundled_model_path()).unwrap();
    assert_eq!(model.artifact.feature_names, FEATURES);
    let sample: Value = serde_json::from_str(SAMPLE).unwrap();
    for (name, value) in FEATURES.iter().zip(SAMPLE_ROW) {
        assert_eq!(sample[name].as_f64(), Some(value), "{name}");
    }
}

/// One `input-0` tensor `[N, 6]`, data nested by row.
fn matrix(rows: &[[f64; 6]], datatype: &str) -> Value {
    json!({"inputs": [{
        "name": "input-0",
        "shape": [rows.len(), 6],
        "datatype": datatype,
        "data": rows,
    }]})
}

/// One tensor per feature, each `[N]`.
fn columns(rows: &[[f64; 6]], datatype: &str) -> Value {
    let inputs: Vec<Value> = FEATURES
        .iter()
        .enumerate()
        .map(|(j, name)| {
            json!({
                "name": name,
                "shape": [rows.len()],
                "datatype": datatype,
                "data": rows.iter().map(|r| r[j]).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "inputs": inputs })
}

async fn infer(app: &App, body: &Value) -> (StatusCode, Value) {
    post_json(app, INFER, &body.to_string()).await
}

/// The named output's data.
fn output<'a>(answer: &'a Value, name: &str) -> &'a Value {
    answer["outputs"]
        .as_array()
        .unwrap_or_else(|| panic!("no outputs in {answer}"))
        .iter()
        .find(|o| o["name"] == name)
        .map(|o| &o["data"])
        .unwrap_or_else(|| panic!("no output {name} in {answer}"))
}

fn predictions(answer: &Value) -> Vec<i64> {
    output(answer, "predict")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

/// Asserts a 400 whose `error` holds every one of `parts`.
async fn assert_bad(app: &App, body: &Value, parts: &[&str]) {
    let (status, answer) = infer(app, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    let error = answer["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error string: {answer}"));
    for part in parts {
        assert!(error.contains(part), "{error:?} lacks {part:?}");
    }
    assert_eq!(answer.as_object().unwrap().len(), 1, "{answer}");
}

// ------------------------------------------------------------------ health and metadata

#[tokio::test]
async fn health_and_server_metadata() {
    let app = default_app();
    assert_eq!(
        get(&app, "/v2/health/live").await,
        (StatusCode::OK, json!({"live": true}))
    );
    assert_eq!(
        get(&app, "/v2/health/ready").await,
        (StatusCode::OK, json!({"ready": true}))
    );
    assert_eq!(
        get(&app, "/v2").await,
        (
            StatusCode::OK,
            json!({"name": "ml-serving", "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data", "model_repository"]})
        )
    );
}

#[tokio::test]
async fn model_metadata_lists_the_features_in_order_and_every_output() {
    let app = default_app();
    let expected = json!({
        "name": "breast_model",
        "versions": ["1"],
        "platform": "ml-serving_linfa",
        "inputs": FEATURES.map(|f| json!({"name": f, "datatype": "FP64", "shape": [-1]})),
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "logistic_vote", "datatype": "INT64", "shape": [-1]},
            {"name": "tree_vote", "datatype": "INT64", "shape": [-1]},
            {"name": "svm_vote", "datatype": "INT64", "shape": [-1]},
        ],
        "parameters": {
            "batch_input_name": "input-0",
            "batch_input_shape": "[-1, 6]",
            "input_datatypes": "FP64 FP32 INT8 INT16 INT32 INT64 UINT8 UINT16 UINT32 UINT64",
            "max_batch_rows": 1000,
            "label_0": "B",
            "label_1": "M",
        },
    });
    assert_eq!(
        get(&app, "/v2/models/breast_model").await,
        (StatusCode::OK, expected.clone())
    );
    assert_eq!(
        get(&app, "/v2/models/breast_model/versions/1").await,
        (StatusCode::OK, expected)
    );
}

#[tokio::test]
async fn unknown_models_and_versions_are_404_with_an_error() {
    let app = default_app();
    for path in [
        "/v2/models/nope",
        "/v2/models/nope/ready",
        "/v2/models/nope/versions/1",
        "/v2/models/nope/versions/1/ready",
    ] {
        let (status, body) = get(&app, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            body,
            json!({"error": "Unknown model \"nope\": this server serves \"breast_model\""}),
            "{path}"
        );
    }
    for path in [
        "/v2/models/breast_model/versions/2",
        "/v2/models/breast_model/versions/2/ready",
    ] {
        let (status, body) = get(&app, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            body["error"],
            "Model \"breast_model\" has no version \"2\"; its version is \"1\""
        );
    }
    let (status, body) = post_json(&app, "/v2/models/nope/infer", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("nope"));
    let (status, body) = post_json(
        &app,
        "/v2/models/breast_model/versions/7/infer",
        &matrix(&[SAMPLE_ROW], "FP64").to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("\"7\""));
}

#[tokio::test]
async fn unknown_v2_routes_are_404_and_wrong_methods_405() {
    let app = default_app();
    for path in ["/v2/nope", "/v2/models/breast_model/explain", "/v2/health"] {
        let (status, body) = get(&app, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body, json!({"error": format!("Not Found: {path}")}));
    }
    for (method, path, allow) in [
        ("GET", INFER, "POST"),
        ("PUT", "/v2/models/breast_model/versions/1/infer", "POST"),
        ("POST", "/v2/health/live", "GET,HEAD"),
        ("DELETE", "/v2/models/breast_model", "GET,HEAD"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body,
            json!({"error": "Method Not Allowed"}),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn model_readiness() {
    let app = default_app();
    for path in [
        "/v2/models/breast_model/ready",
        "/v2/models/breast_model/versions/1/ready",
    ] {
        assert_eq!(
            get(&app, path).await,
            (
                StatusCode::OK,
                json!({"name": "breast_model", "ready": true})
            )
        );
    }
}

#[tokio::test]
async fn shutting_down_turns_readiness_503_and_lets_inference_drain() {
    let (state, app) = Setup::default().app();
    state.begin_shutdown();
    assert_eq!(
        get(&app, "/v2/health/ready").await,
        (StatusCode::SERVICE_UNAVAILABLE, json!({"ready": false}))
    );
    for path in [
        "/v2/models/breast_model/ready",
        "/v2/models/breast_model/versions/1/ready",
    ] {
        assert_eq!(
            get(&app, path).await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"name": "breast_model", "ready": false})
            )
        );
    }
    assert_eq!(
        get(&app, "/v2/health/live").await,
        (StatusCode::OK, json!({"live": true})),
        "liveness stays up while draining"
    );
    let (status, answer) = infer(&app, &matrix(&[SAMPLE_ROW], "FP64")).await;
    assert_eq!(
        (status, predictions(&answer)),
        (StatusCode::OK, vec![1]),
        "a request that reaches the handler while draining is answered, as on /predict"
    );
}

#[tokio::test]
async fn model_name_overrides_the_v2_name() {
    let (_, app) = Setup {
        name: Some("renamed".to_string()),
        ..Setup::default()
    }
    .app();
    assert_eq!(get(&app, "/v2/models/renamed").await.1["name"], "renamed");
    assert_eq!(
        get(&app, "/v2/models/breast_model").await.0,
        StatusCode::NOT_FOUND
    );
    let (status, answer) = post_json(
        &app,
        "/v2/models/renamed/infer",
        &matrix(&[SAMPLE_ROW], "FP64").to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["model_name"], "renamed");
}

// ------------------------------------------------------------------ inference

#[tokio::test]
async fn an_answer_has_every_output_the_id_and_the_model() {
    let app = default_app();
    let mut body = matrix(&[SAMPLE_ROW, BENIGN_ROW], "FP64");
    body["id"] = json!("req-42");
    let (status, answer) = infer(&app, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["model_name"], "breast_model");
    assert_eq!(answer["model_version"], "1");
    assert_eq!(answer["id"], "req-42");
    let outputs = answer["outputs"].as_array().unwrap();
    let names: Vec<&str> = outputs
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["predict", "label", "logistic_vote", "tree_vote", "svm_vote"]
    );
    assert_eq!(
        outputs[0],
        json!({"name": "predict", "datatype": "INT64", "shape": [2], "data": [1, 0]})
    );
    assert_eq!(
        outputs[1],
        json!({"name": "label", "datatype": "BYTES", "shape": [2], "data": ["M", "B"]})
    );
    for vote in &outputs[2..] {
        assert_eq!(vote["datatype"], "INT64");
        assert_eq!(vote["shape"], json!([2]));
    }
    // The majority of the three votes is the prediction.
    for row in 0..2 {
        let for_m: i64 = outputs[2..]
            .iter()
            .map(|o| o["data"][row].as_i64().unwrap())
            .sum();
        assert_eq!(i64::from(for_m >= 2), predictions(&answer)[row]);
    }
    let (status, answer) = infer(&app, &matrix(&[SAMPLE_ROW], "FP64")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(answer.get("id").is_none(), "no id asked, none echoed");
    let (status, answer) = post_json(
        &app,
        "/v2/models/breast_model/versions/1/infer",
        &matrix(&[SAMPLE_ROW], "FP64").to_string(),
    )
    .await;
    assert_eq!((status, predictions(&answer)), (StatusCode::OK, vec![1]));
}

#[tokio::test]
async fn both_layouts_agree_with_predict_on_every_bundled_row() {
    let app = default_app();
    let rows = bundled_feature_rows();
    assert_eq!(rows.len(), 569);
    let expected = predict_answers(&app).await;
    let labels: Vec<Value> = expected
        .iter()
        .map(|&p| json!(if p == 1 { "M" } else { "B" }))
        .collect();
    for body in [matrix(&rows, "FP64"), columns(&rows, "FP64")] {
        let (status, answer) = infer(&app, &body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(predictions(&answer), expected);
        assert_eq!(output(&answer, "label"), &json!(labels));
    }
}

#[tokio::test]
async fn fp32_inputs_are_the_values_rounded_to_fp32() {
    let app = default_app();
    let rows = bundled_feature_rows();
    let rounded: Vec<[f64; 6]> = rows
        .iter()
        .map(|r| r.map(|v| f64::from(v as f32)))
        .collect();
    let (_, as_fp64) = infer(&app, &matrix(&rounded, "FP64")).await;
    let (_, exact) = infer(&app, &matrix(&rows, "FP64")).await;
    for body in [matrix(&rows, "FP32"), columns(&rows, "FP32")] {
        let (status, answer) = infer(&app, &body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["outputs"], as_fp64["outputs"]);
        // On this data the rounding changes no decision.
        assert_eq!(answer["outputs"], exact["outputs"]);
    }
}

#[tokio::test]
async fn data_may_be_flat_or_nested_and_features_n_or_n_by_1() {
    let app = default_app();
    let rows = [SAMPLE_ROW, BENIGN_ROW, SAMPLE_ROW];
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    let flat_matrix = json!({"inputs": [
        {"name": "input-0", "shape": [3, 6], "datatype": "FP64", "data": flat}
    ]});
    let mut column_n1 = columns(&rows, "FP64");
    for (j, input) in column_n1["inputs"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        input["shape"] = json!([3, 1]);
        if j % 2 == 0 {
            input["data"] = json!(rows.iter().map(|r| [r[j]]).collect::<Vec<_>>());
        }
    }
    let mut reversed = columns(&rows, "FP64");
    reversed["inputs"].as_array_mut().unwrap().reverse();
    for body in [
        matrix(&rows, "FP64"),
        flat_matrix,
        columns(&rows, "FP64"),
        column_n1,
        reversed,
    ] {
        let (status, answer) = infer(&app, &body).await;
        assert_eq!(status, StatusCode::OK, "{body}: {answer}");
        assert_eq!(predictions(&answer), [1, 0, 1], "{body}");
    }
}

#[tokio::test]
async fn integers_and_zero_are_valid_values() {
    let app = default_app();
    let body = json!({"inputs": [
        {"name": "input-0", "shape": [1, 6], "datatype": "FP64", "data": [0, 0, 2, 20, 25, 500]}
    ]});
    let (status, answer) = infer(&app, &body).await;
    assert_eq!((status, predictions(&answer)), (StatusCode::OK, vec![0]));
}

#[tokio::test]
async fn outputs_are_chosen_by_the_request_in_its_order() {
    let app = default_app();
    let mut body = matrix(&[SAMPLE_ROW], "FP64");
    body["outputs"] =
        json!([{"name": "svm_vote"}, {"name": "label", "parameters": {"binary_data": false}}]);
    let (status, answer) = infer(&app, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let names: Vec<&str> = answer["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["svm_vote", "label"]);
    body["outputs"] = json!([]);
    let (_, answer) = infer(&app, &body).await;
    assert_eq!(answer["outputs"].as_array().unwrap().len(), 5, "[] is all");

    body["outputs"] = json!([{"name": "probability"}]);
    assert_bad(
        &app,
        &body,
        &["unknown output \"probability\"", "predict, label"],
    )
    .await;
    body["outputs"] = json!([{"name": "label"}, {"name": "label"}]);
    assert_bad(&app, &body, &["\"label\" is asked for twice"]).await;
}

#[tokio::test]
async fn the_row_limit_applies_to_both_layouts_with_413() {
    let (_, app) = Setup {
        batch_rows: 3,
        ..Setup::default()
    }
    .app();
    assert_eq!(
        get(&app, "/v2/models/breast_model").await.1["parameters"]["max_batch_rows"],
        3
    );
    for layout in [matrix, columns] {
        let (status, answer) = infer(&app, &layout(&[SAMPLE_ROW; 3], "FP64")).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(predictions(&answer), [1, 1, 1]);
        let (status, answer) = infer(&app, &layout(&[SAMPLE_ROW; 4], "FP64")).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            answer,
            json!({"error": "Too many rows: the inputs hold 4 rows, a request at most 3"})
        );
    }
    // The shape alone decides: a huge N is refused before the data is looked at.
    let body = json!({"inputs": [
        {"name": "input-0", "shape": [u64::MAX, 6], "datatype": "FP64", "data": []}
    ]});
    assert_eq!(infer(&app, &body).await.0, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_shape_that_claims_more_than_its_data_costs_nothing() {
    // With no row limit to speak of, only the data's length can refuse a huge N, and nothing
    // may be allocated by the shape's word (that would abort the process).
    let (_, app) = Setup {
        batch_rows: usize::MAX,
        ..Setup::default()
    }
    .app();
    let huge = 1u64 << 60;
    let body = json!({"inputs": [
        {"name": "input-0", "shape": [u64::MAX / 2, 6], "datatype": "FP64", "data": SAMPLE_ROW}
    ]});
    assert_bad(&app, &body, &["holds more elements than can be counted"]).await;
    let body = json!({"inputs": [
        {"name": "input-0", "shape": [huge, 6], "datatype": "FP64", "data": SAMPLE_ROW}
    ]});
    assert_bad(&app, &body, &["but data has 6"]).await;
    let mut body = columns(&[SAMPLE_ROW], "FP64");
    for input in body["inputs"].as_array_mut().unwrap() {
        input["shape"] = json!([huge]);
    }
    assert_bad(&app, &body, &["\"concavity_mean\"", "but data has 1"]).await;
}

// ------------------------------------------------------------------ errors

#[tokio::test]
async fn wrong_datatypes_are_400_naming_the_datatype() {
    let app = default_app();
    for datatype in ["FP16", "BYTES", "fp64", "BOOL", "BF16"] {
        assert_bad(
            &app,
            &matrix(&[SAMPLE_ROW], datatype),
            &[&format!("datatype \"{datatype}\""), "FP64 FP32 INT8"],
        )
        .await;
        let mut body = columns(&[SAMPLE_ROW], "FP64");
        body["inputs"][3]["datatype"] = json!(datatype);
        assert_bad(&app, &body, &["\"area_se\"", &format!("\"{datatype}\"")]).await;
    }
}

#[tokio::test]
async fn wrong_shapes_are_400() {
    let app = default_app();
    let one = |shape: Value, data: Value| json!({"inputs": [{"name": "input-0", "shape": shape, "datatype": "FP64", "data": data}]});
    let flat: Vec<f64> = SAMPLE_ROW.to_vec();
    assert_bad(
        &app,
        &one(json!([1, 5]), json!(flat[..5])),
        &["[1, 5]", "[N, 6]"],
    )
    .await;
    assert_bad(&app, &one(json!([6]), json!(flat)), &["[6]", "[N, 6]"]).await;
    assert_bad(&app, &one(json!([1, 6, 1]), json!(flat)), &["[1, 6, 1]"]).await;
    assert_bad(&app, &one(json!([1, -6]), json!(flat)), &["shape"]).await;
    let mut body = columns(&[SAMPLE_ROW, BENIGN_ROW], "FP64");
    body["inputs"][2]["shape"] = json!([1, 2]);
    assert_bad(
        &app,
        &body,
        &["\"perimeter_se\"", "[1, 2]", "[N] or [N, 1]"],
    )
    .await;
    body["inputs"][2]["shape"] = json!([2, 1, 1]);
    assert_bad(&app, &body, &["\"perimeter_se\"", "[2, 1, 1]"]).await;
    body["inputs"][2]["shape"] = json!([3]);
    assert_bad(
        &app,
        &body,
        &["\"perimeter_se\" has 3 rows", "\"concavity_mean\" has 2"],
    )
    .await;
    let zero =
        json!({"inputs": [{"name": "input-0", "shape": [0, 6], "datatype": "FP64", "data": []}]});
    assert_bad(&app, &zero, &["no rows"]).await;
}

#[tokio::test]
async fn data_that_does_not_fit_the_shape_is_400() {
    let app = default_app();
    let one = |shape: Value, data: Value| json!({"inputs": [{"name": "input-0", "shape": shape, "datatype": "FP64", "data": data}]});
    let flat: Vec<f64> = SAMPLE_ROW.to_vec();
    assert_bad(
        &app,
        &one(json!([2, 6]), json!(flat)),
        &["shape [2, 6] holds 12 elements, but data has 6"],
    )
    .await;
    assert_bad(
        &app,
        &one(json!([2, 6]), json!([SAMPLE_ROW, SAMPLE_ROW[..5]])),
        &["data[1] has 5 elements"],
    )
    .await;
    assert_bad(
        &app,
        &one(json!([1, 6]), json!([[SAMPLE_ROW]])),
        &["data[0] has 1 elements"],
    )
    .await;
    assert_bad(
        &app,
        &one(json!([2, 6]), json!([SAMPLE_ROW, 1.0])),
        &["data[1] is a number"],
    )
    .await;
    assert_bad(
        &app,
        &one(json!([1, 6]), json!("0.3,0.1")),
        &["must be an array"],
    )
    .await;
    let mut body = columns(&[SAMPLE_ROW], "FP64");
    body["inputs"][0]["data"] = json!([0.3, 0.2]);
    assert_bad(
        &app,
        &body,
        &["\"concavity_mean\"", "holds 1 elements, but data has 2"],
    )
    .await;
}

#[tokio::test]
async fn unknown_missing_and_repeated_inputs_are_400() {
    let app = default_app();
    let mut body = columns(&[SAMPLE_ROW], "FP64");
    body["inputs"][1]["name"] = json!("concave_pts_mean");
    assert_bad(
        &app,
        &body,
        &[
            "unknown input \"concave_pts_mean\"",
            "input-0",
            "concave_points_mean",
        ],
    )
    .await;
    let mut body = columns(&[SAMPLE_ROW], "FP64");
    body["inputs"].as_array_mut().unwrap().remove(4);
    assert_bad(&app, &body, &["missing input(s): texture_worst"]).await;
    let mut body = columns(&[SAMPLE_ROW], "FP64");
    let again = body["inputs"][5].clone();
    body["inputs"].as_array_mut().unwrap().push(again);
    assert_bad(&app, &body, &["\"area_worst\" is given twice"]).await;
    let mut body = matrix(&[SAMPLE_ROW], "FP64");
    let extra = columns(&[SAMPLE_ROW], "FP64")["inputs"][0].clone();
    body["inputs"].as_array_mut().unwrap().push(extra);
    assert_bad(&app, &body, &["\"input-0\" holds every feature"]).await;
    let mut body = matrix(&[SAMPLE_ROW], "FP64");
    body["inputs"][0]["name"] = json!("features");
    assert_bad(&app, &body, &["unknown input \"features\""]).await;
    assert_bad(&app, &json!({"inputs": []}), &["no inputs"]).await;
}

#[tokio::test]
async fn bad_values_are_400_naming_the_input_and_the_element() {
    let app = default_app();
    let mut body = matrix(&[SAMPLE_ROW, SAMPLE_ROW], "FP64");
    body["inputs"][0]["data"][1][3] = json!(-153.4);
    assert_bad(
        &app,
        &body,
        &["\"input-0\"", "row 1, column 3 (area_se)", "-153.4", "≥ 0"],
    )
    .await;
    body["inputs"][0]["data"][1][3] = json!("153.4");
    assert_bad(&app, &body, &["row 1, column 3 (area_se) is a string"]).await;
    body["inputs"][0]["data"][1][3] = Value::Null;
    assert_bad(&app, &body, &["is null"]).await;
    let mut body = columns(&[SAMPLE_ROW, SAMPLE_ROW], "FP64");
    body["inputs"][4]["data"][1] = json!(-1);
    assert_bad(&app, &body, &["\"texture_worst\"", "row 1 is -1"]).await;
    body["inputs"][4]["data"][1] = json!(true);
    assert_bad(&app, &body, &["\"texture_worst\"", "row 1 is a boolean"]).await;
    let mut body = columns(&[SAMPLE_ROW], "FP32");
    body["inputs"][5]["data"][0] = json!(1e39);
    assert_bad(
        &app,
        &body,
        &["\"area_worst\"", "outside the range of FP32"],
    )
    .await;
    // JSON has no infinity; a number too large for a float is malformed JSON.
    let text = matrix(&[SAMPLE_ROW], "FP64")
        .to_string()
        .replace("2019.0", "1e999");
    let (status, answer) = post_json(&app, INFER, &text).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap().contains("Malformed JSON"));
}

#[tokio::test]
async fn requests_that_are_not_inference_requests_are_400() {
    let app = default_app();
    let (status, answer) = post_json(&app, INFER, "{\"inputs\": [").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.starts_with("Malformed JSON") && error.contains("line 1 column"),
        "{error}"
    );
    for (body, part) in [
        ("", "Malformed JSON"),
        ("{}", "missing field `inputs`"),
        ("[]", "Not a valid inference request"),
        (r#"{"inputs": [], "input": []}"#, "unknown field `input`"),
        (r#"{"inputs": [], "id": 42}"#, "invalid type: integer `42`"),
        (
            r#"{"inputs": [{"name": "input-0", "shape": [1, 6], "datatype": "FP64"}]}"#,
            "input \"input-0\" has no data",
        ),
        (
            r#"{"inputs": [{"name": "input-0", "shape": [1, 6], "datatype": "FP64", "data": [], "dtype": 1}]}"#,
            "unknown field `dtype`",
        ),
    ] {
        let (status, answer) = post_json(&app, INFER, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(part), "{body}: {error}");
    }
}

#[tokio::test]
async fn content_type_and_body_size_errors_have_the_v2_shape() {
    let (_, app) = Setup {
        body_bytes: 64,
        ..Setup::default()
    }
    .app();
    let body = matrix(&[SAMPLE_ROW], "FP64").to_string();
    let (status, answer) = call(&app, "POST", INFER, Some("text/plain"), body.clone()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(answer["error"].as_str().unwrap().contains("text/plain"));
    let (status, answer) = call(
        &app,
        "POST",
        INFER,
        Some("application/x-www-form-urlencoded"),
        body.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(answer["error"].as_str().unwrap().contains("or absent"));
    let (status, _) = call(&app, "POST", INFER, None, body.clone()).await;
    assert_eq!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "a body without a Content-Type is read (and here over the limit)"
    );
    let (status, answer) = post_json(&app, INFER, &body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer["error"].as_str().unwrap().contains("64 bytes"));
}

// ------------------------------------------------------------------ shared guards

#[tokio::test]
async fn the_api_key_guards_inference_only() {
    let (_, app) = Setup {
        api_key: Some("s3cret".to_string()),
        ..Setup::default()
    }
    .app();
    let body = matrix(&[SAMPLE_ROW], "FP64").to_string();
    let request = |auth: Option<&str>| {
        let mut req = Request::post(INFER).header("content-type", "application/json");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.body(Body::from(body.clone())).unwrap()
    };
    let response = app.clone().oneshot(request(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(
        answer["error"].as_str().unwrap().contains("API key"),
        "{answer}"
    );
    assert!(answer.get("detail").is_none());
    let response = app
        .clone()
        .oneshot(request(Some("Bearer s3cret")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for open in [
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/breast_model",
        "/v2/models/breast_model/ready",
    ] {
        assert_eq!(get(&app, open).await.0, StatusCode::OK, "{open}");
    }
}

#[tokio::test]
async fn v2_and_predict_share_the_in_flight_limit() {
    let (app, slots) = Setup {
        max_in_flight: 1,
        ..Setup::default()
    }
    .app_and_slots();
    let v2_body = matrix(&[SAMPLE_ROW], "FP64");
    // /predict's only slot, held as a prediction would hold it.
    let held = slots.take().expect("the only slot is free");
    let answer = infer(&app, &v2_body).await;
    assert_eq!(answer.0, StatusCode::TOO_MANY_REQUESTS, "{}", answer.1);
    assert!(answer.1["error"].as_str().unwrap().contains("in flight"));
    assert_eq!(
        post_json(&app, "/predict", SAMPLE).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        get(&app, "/v2/health/ready").await.0,
        StatusCode::OK,
        "readiness is not limited"
    );
    drop(held);
    assert_eq!(infer(&app, &v2_body).await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_unfinished_upload_does_not_starve_v2_inference() {
    let (_, app) = Setup {
        max_in_flight: 1,
        ..Setup::default()
    }
    .app();
    let (tx, held) = hold_predict_in_flight(&app);
    let v2_body = matrix(&[SAMPLE_ROW], "FP64");
    for _ in 0..10 {
        assert_eq!(infer(&app, &v2_body).await.0, StatusCode::OK);
        tokio::task::yield_now().await;
    }
    tx.send(Ok(SAMPLE.as_bytes().to_vec())).await.unwrap();
    drop(tx);
    assert_eq!(held.await.unwrap().unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn an_inference_slower_than_the_timeout_gets_408() {
    let (_, app) = Setup {
        timeout: Duration::from_millis(100),
        ..Setup::default()
    }
    .app();
    let (status, body) = answer_to_a_stalled_body(&app, INFER).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert!(
        body["error"].as_str().unwrap().contains("timeout"),
        "{body}"
    );
}

#[tokio::test]
async fn metrics_count_v2_requests_by_route_template_and_predictions_by_label() {
    let app = default_app();
    let requests = |status: &str| {
        metric(
            "http_requests_total",
            &[
                r#"method="POST""#,
                r#"route="/v2/models/{name}/infer""#,
                &format!("status=\"{status}\""),
            ],
        )
    };
    let benign = || {
        metric(
            "predictions_total",
            &[r#"label="B""#, r#"model="breast_model""#, r#"version="1""#],
        )
    };
    let before = (requests("200"), requests("400"), benign());
    infer(&app, &matrix(&[BENIGN_ROW, BENIGN_ROW], "FP64")).await;
    infer(&app, &json!({"inputs": []})).await;
    // Other tests in this process count too: at least ours are counted.
    assert!(requests("200") >= before.0 + 1.0);
    assert!(requests("400") >= before.1 + 1.0);
    assert!(benign() >= before.2 + 2.0);
    let text = ml_serving::telemetry::metrics_handle().render();
    assert!(
        !text.contains("breast_model/infer"),
        "raw URIs never become labels"
    );
}

#[tokio::test]
async fn the_v2_routes_are_in_the_openapi_document() {
    let app = default_app();
    let (status, doc) = get(&app, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/versions/{version}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    for schema in [
        "InferenceRequest",
        "InferenceResponse",
        "ModelMetadata",
        "V2ErrorBody",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} missing"
        );
    }
}

/// The fenced code blocks of a markdown file: (language, text).
fn code_blocks(markdown: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in markdown.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(lang)) => open = Some((lang.trim().to_string(), String::new())),
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some((_, text)), None) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

#[tokio::test]
async fn the_examples_in_docs_kserve_md_are_true() {
    let app = default_app();
    let page = std::fs::read_to_string(repo("docs/kserve.md")).unwrap();
    let blocks = code_blocks(&page);
    let json_blocks: Vec<Value> = blocks
        .iter()
        .filter(|(lang, _)| lang == "json")
        .map(|(_, text)| serde_json::from_str(text).expect("a json block parses"))
        .collect();
    let find = |key: &str| {
        json_blocks
            .iter()
            .find(|v| v.get(key).is_some())
            .unwrap_or_else(|| panic!("no json block with {key:?}"))
    };

    assert_eq!(
        &get(&app, "/v2/models/breast_model").await.1,
        find("platform")
    );

    let curl = blocks
        .iter()
        .find(|(lang, text)| lang == "bash" && text.contains("/v2/models/breast_model/infer"))
        .map(|(_, text)| text)
        .expect("the curl example");
    let start = curl.find("-d '").expect("-d '...'") + 4;
    let end = curl.rfind('\'').unwrap();
    let request: Value = serde_json::from_str(&curl[start..end]).unwrap();
    let (status, answer) = infer(&app, &request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(&answer, find("model_name"));

    let per_feature = json_blocks
        .iter()
        .find(|v| v["inputs"][0]["name"] == "concavity_mean" && v["inputs"][0]["data"].is_array())
        .expect("the per-feature example");
    let (status, answer) = infer(&app, per_feature).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(predictions(&answer), [1, 0]);
    assert_eq!(output(&answer, "label"), &json!(["M", "B"]));
}

// ------------------------------------------------------------------ property tests

fn check(body: Vec<u8>) -> Result<(), TestCaseError> {
    let (status, answer) = with_small_app(|app| async move {
        call(&app, "POST", INFER, Some("application/json"), body).await
    })?;
    prop_assert!(
        [
            StatusCode::OK,
            StatusCode::BAD_REQUEST,
            StatusCode::PAYLOAD_TOO_LARGE
        ]
        .contains(&status),
        "unexpected {status}: {answer}"
    );
    if status == StatusCode::OK {
        prop_assert!(answer["outputs"].is_array(), "{answer}");
    } else {
        prop_assert!(answer["error"].is_string(), "{answer}");
        prop_assert_eq!(answer.as_object().map(|o| o.len()), Some(1));
    }
    Ok(())
}

/// Any JSON value, with keys that are sometimes the protocol's.
fn json_value() -> impl Strategy<Value = Value> {
    any_json(vec![
        "inputs",
        "outputs",
        "id",
        "name",
        "shape",
        "datatype",
        "data",
        "parameters",
    ])
}

/// A request close to a valid one: real or made-up input names, small shapes, any datatype,
/// numbers or other values, flat or nested.
fn near_valid_request() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        prop::sample::select(FEATURES.to_vec()).prop_map(str::to_string),
        Just("input-0".to_string()),
        "[a-z_]{0,12}",
    ];
    let shape = prop::collection::vec(0u64..10, 0..4);
    let datatype = prop::sample::select(vec!["FP64", "FP32", "INT64", "BYTES", ""]);
    let cell = prop_oneof![8 => any_number(), 1 => Just(Value::Null), 1 => ".{0,4}".prop_map(Value::String)];
    let data = prop_oneof![
        prop::collection::vec(cell.clone(), 0..70).prop_map(Value::Array),
        prop::collection::vec(prop::collection::vec(cell, 0..8), 0..10)
            .prop_map(|rows| json!(rows)),
    ];
    let input = (name, shape, datatype, data).prop_map(|(name, shape, datatype, data)| {
        json!({"name": name, "shape": shape, "datatype": datatype, "data": data})
    });
    let outputs = prop::option::of(prop::collection::vec(
        prop::sample::select(vec!["predict", "label", "svm_vote", "nope"])
            .prop_map(|n| json!({"name": n})),
        0..4,
    ));
    (
        prop::collection::vec(input, 0..8),
        outputs,
        prop::option::of(".{0,8}"),
    )
        .prop_map(|(inputs, outputs, id)| {
            let mut request = json!({"inputs": inputs});
            if let Some(outputs) = outputs {
                request["outputs"] = json!(outputs);
            }
            if let Some(id) = id {
                request["id"] = json!(id);
            }
            request
        })
}

json_route_properties!(check, json_value());

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn near_valid_requests(request in near_valid_request()) {
        check(serde_json::to_vec(&request).unwrap())?;
    }

    #[test]
    fn valid_rows_always_get_one_answer_per_row(
        rows in prop::collection::vec(prop::array::uniform6(0.0f64..3000.0), 1..9),
        per_feature in any::<bool>(),
    ) {
        let body = if per_feature { columns(&rows, "FP64") } else { matrix(&rows, "FP64") };
        let (status, answer) = with_small_app(|app| async move { infer(&app, &body).await })?;
        prop_assert_eq!(status, StatusCode::OK);
        prop_assert_eq!(predictions(&answer).len(), rows.len());
    }
}
