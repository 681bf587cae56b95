//! Serving ONNX models: the named-field routes, `/info` and the V2 routes answer what
//! onnxruntime answered for every row of the fixtures (tests/fixtures/onnx, made by
//! scripts/onnx-fixtures), and a real `serve` starts from an `.onnx` file.

mod common;

use std::path::PathBuf;

use axum::http::StatusCode;
use common::process::*;
use common::*;
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    repo(&format!("tests/fixtures/onnx/{name}"))
}

fn read_json(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture(name)).unwrap()).unwrap()
}

/// The data set's rows.
fn data_rows(data: &str) -> Vec<Vec<f64>> {
    read_json(&format!("data_{data}.json"))["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect()
}

/// The data set's rows, and onnxruntime's output `name` for them.
fn rows_and_reference(data: &str, model: &str, output: &str) -> (Vec<Vec<f64>>, Value) {
    let rows = data_rows(data);
    let reference = read_json(&format!("{model}.ort.json"))["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == output)
        .unwrap_or_else(|| panic!("{model} has no output {output}"))["values"]
        .clone();
    (rows, reference)
}

fn named(features: &[String], row: &[f64]) -> Value {
    Value::Object(
        features
            .iter()
            .zip(row)
            .map(|(f, v)| (f.clone(), json!(v)))
            .collect(),
    )
}

fn close(ours: f64, reference: f64) -> bool {
    (ours - reference).abs() <= 1e-6 + 1e-5 * reference.abs()
}

#[tokio::test]
async fn an_onnx_classifier_answers_onnxruntimes_labels_on_every_row() {
    let (_, app) = Setup {
        model_path: fixture("logreg_cancer.onnx"),
        ..Setup::default()
    }
    .app();
    let (_, info) = get(&app, "/info").await;
    assert_eq!(info["artifact"]["kind"], "onnx");
    assert_eq!(info["name"], "logreg-cancer", "the sidecar's name");
    let features: Vec<String> = serde_json::from_value(info["features"].clone()).unwrap();
    assert_eq!(features[0], "mean radius", "the sidecar's feature names");
    let (rows, labels) = rows_and_reference("cancer", "logreg_cancer", "output_label");
    let batch: Vec<Value> = rows.iter().map(|r| named(&features, r)).collect();
    let (status, answer) = post_json(&app, "/predict/batch", &json!(batch).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let predictions = answer["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), rows.len());
    for (i, (p, label)) in predictions
        .iter()
        .zip(labels.as_array().unwrap())
        .enumerate()
    {
        assert_eq!(&p["prediction"], label, "row {i}");
        assert_eq!(p["label"], label.to_string(), "row {i}");
    }
    // One row through /predict, and a bad one with the usual FastAPI-style errors.
    let (status, one) = post_json(&app, "/predict", &batch[19].to_string()).await;
    assert_eq!((status, &one["prediction"]), (StatusCode::OK, &labels[19]));
    let (status, bad) = post_json(&app, "/predict", r#"{"mean radius": "x"}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.to_string().contains("mean texture"), "{bad}");
}

#[tokio::test]
async fn v2_serves_the_graphs_outputs_and_scores_like_onnxruntime() {
    // No sidecar: the features are f0..f29, the outputs the graph's own.
    let (_, app) = Setup {
        model_path: fixture("logreg_cancer_nozipmap.onnx"),
        ..Setup::default()
    }
    .app();
    let (_, meta) = get(&app, "/v2/models/logreg_cancer_nozipmap").await;
    assert_eq!(meta["inputs"][0]["name"], "f0", "{meta}");
    let outputs: Vec<(String, String, Value)> = meta["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap().to_string(),
                o["datatype"].as_str().unwrap().to_string(),
                o["shape"].clone(),
            )
        })
        .collect();
    assert_eq!(
        outputs,
        [
            ("label".into(), "INT64".into(), json!([-1])),
            ("probabilities".into(), "FP32".into(), json!([-1, 2])),
        ]
    );
    let (rows, labels) = rows_and_reference("cancer", "logreg_cancer_nozipmap", "label");
    let (_, probabilities) =
        rows_and_reference("cancer", "logreg_cancer_nozipmap", "probabilities");
    let request = json!({"inputs": [{
        "name": "input-0", "shape": [rows.len(), 30], "datatype": "FP64", "data": rows,
    }]});
    let (status, answer) = post_json(
        &app,
        "/v2/models/logreg_cancer_nozipmap/infer",
        &request.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outputs"][0]["data"], labels);
    assert_eq!(answer["outputs"][1]["shape"], json!([rows.len(), 2]));
    let ours = answer["outputs"][1]["data"].as_array().unwrap();
    let reference = probabilities.as_array().unwrap();
    assert_eq!(ours.len(), reference.len());
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        assert!(
            close(a.as_f64().unwrap(), b.as_f64().unwrap()),
            "score {i}: {a} vs {b}"
        );
    }
}

#[tokio::test]
async fn an_onnx_regressor_takes_negative_features_and_answers_values() {
    let (_, app) = Setup {
        model_path: fixture("linreg_diabetes.onnx"),
        ..Setup::default()
    }
    .app();
    let (_, info) = get(&app, "/info").await;
    let features: Vec<String> = serde_json::from_value(info["features"].clone()).unwrap();
    let (rows, values) = rows_and_reference("diabetes", "linreg_diabetes", "variable");
    assert!(
        rows.iter().flatten().any(|v| *v < 0.0),
        "the data has negative values"
    );
    let batch: Vec<Value> = rows.iter().map(|r| named(&features, r)).collect();
    let (status, answer) = post_json(&app, "/predict/batch", &json!(batch).to_string()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    for (i, (p, v)) in answer["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(values.as_array().unwrap())
        .enumerate()
    {
        assert!(p.get("label").is_none(), "a regression has no label");
        let (ours, reference) = (p["prediction"].as_f64().unwrap(), v.as_f64().unwrap());
        assert!(close(ours, reference), "row {i}: {ours} vs {reference}");
    }
    // The OpenAPI document does not claim features must be ≥ 0 for this model.
    let (_, doc) = get(&app, "/openapi.json").await;
    assert!(
        doc["components"]["schemas"]["PredictRequest"]["properties"]["age"]["minimum"].is_null()
    );
}

#[tokio::test]
async fn our_model_still_refuses_negative_features() {
    let app = default_app();
    let row = SAMPLE.replace("0.3001", "-0.3001");
    assert_eq!(
        post_json(&app, "/predict", &row).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[test]
fn serve_starts_from_an_onnx_file_and_refuses_a_file_of_neither_kind() {
    let server = Server::start(&fixture("logreg_cancer.onnx"), &[]);
    let (status, info) = server.get("/info");
    assert_eq!(status, 200);
    let features: Vec<String> = serde_json::from_value(info["features"].clone()).unwrap();
    let sample: Vec<f64> = serde_json::from_value(info["sample"].clone()).unwrap();
    let (status, answer) = http(
        server.addr,
        "POST",
        "/predict",
        Some(&named(&features, &sample).to_string()),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer["prediction"].is_i64(), "{answer}");

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("model.onnx");
    std::fs::write(&junk, b"this is neither gzip nor protobuf").unwrap();
    let stderr = serve_refuses(&[("MODEL_PATH", junk.as_os_str())]);
    assert!(
        stderr.contains("model.onnx") && stderr.contains("ONNX"),
        "{stderr}"
    );
}

/// Writes the data set's rows as a CSV with the sidecar's feature names and an `id` column.
fn csv_of(dir: &std::path::Path, data: &str, features: &[String]) -> (PathBuf, Vec<Vec<f64>>) {
    let rows = data_rows(data);
    let mut text = format!("id,{}\n", features.join(","));
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:?}")).collect();
        text.push_str(&format!("r{i},{}\n", cells.join(",")));
    }
    let path = dir.join(format!("{data}.csv"));
    std::fs::write(&path, text).unwrap();
    (path, rows)
}

fn score(model: &str, input: &std::path::Path, extra: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ml-serving"))
        .args(["score", "--model-path"])
        .arg(fixture(model))
        .arg("--input")
        .arg(input)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn score_runs_onnx_classifiers_and_regressors_like_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let names = |sidecar: &str| -> Vec<String> {
        serde_json::from_value(read_json(sidecar)["feature_names"].clone()).unwrap()
    };
    let (csv, _) = csv_of(dir.path(), "cancer", &names("logreg_cancer.json"));
    let out = score("logreg_cancer.onnx", &csv, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, labels) = rows_and_reference("cancer", "logreg_cancer", "output_label");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "id,prediction,label");
    assert_eq!(lines.len() - 1, labels.as_array().unwrap().len());
    for (i, (line, label)) in lines[1..]
        .iter()
        .zip(labels.as_array().unwrap())
        .enumerate()
    {
        assert_eq!(*line, format!("r{i},{label},{label}"));
    }

    let (csv, rows) = csv_of(dir.path(), "diabetes", &names("linreg_diabetes.json"));
    assert!(
        rows.iter().flatten().any(|v| *v < 0.0),
        "negative features are scored"
    );
    let out = score("linreg_diabetes.onnx", &csv, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, values) = rows_and_reference("diabetes", "linreg_diabetes", "variable");
    let text = String::from_utf8(out.stdout).unwrap();
    for (i, (line, v)) in text
        .lines()
        .skip(1)
        .zip(values.as_array().unwrap())
        .enumerate()
    {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(
            (fields[0], fields[2]),
            (format!("r{i}").as_str(), ""),
            "{line}"
        );
        let ours: f64 = fields[1].parse().unwrap();
        assert!(close(ours, v.as_f64().unwrap()), "row {i}: {ours} vs {v}");
    }

    // What an ONNX model cannot give is refused with a clear message, before any output
    // (Parquet output and --scores: tests/score_onnx.rs).
    let out = score("linreg_diabetes.onnx", &csv, &["--votes"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--votes"));
}

#[tokio::test]
async fn the_batch_route_gives_per_class_scores_on_request() {
    let (_, app) = Setup {
        model_path: fixture("logreg_cancer_nozipmap.onnx"),
        ..Setup::default()
    }
    .app();
    let (rows, probabilities) =
        rows_and_reference("cancer", "logreg_cancer_nozipmap", "probabilities");
    let features: Vec<String> = (0..30).map(|i| format!("f{i}")).collect();
    let batch: Vec<Value> = rows.iter().map(|r| named(&features, r)).collect();
    let body = json!(batch).to_string();
    let (_, plain) = post_json(&app, "/predict/batch", &body).await;
    assert!(
        plain["predictions"][0].get("scores").is_none(),
        "scores only on request"
    );
    let (status, scored) = post_json(&app, "/predict/batch?scores=true", &body).await;
    assert_eq!(status, StatusCode::OK, "{scored}");
    let reference = probabilities.as_array().unwrap();
    for (i, p) in scored["predictions"].as_array().unwrap().iter().enumerate() {
        let scores = p["scores"].as_array().unwrap();
        assert_eq!(scores.len(), 2);
        for (k, s) in scores.iter().enumerate() {
            let (ours, theirs) = (s.as_f64().unwrap(), reference[i * 2 + k].as_f64().unwrap());
            assert!(close(ours, theirs), "row {i} class {k}: {ours} vs {theirs}");
        }
    }
    let (status, error) = post_json(&app, "/predict/batch?scores=maybe", &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["detail"][0]["loc"], json!(["query", "scores"]));
    let (status, error) = post_json(&app, "/predict/batch?other=1", &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
}

#[tokio::test]
async fn our_models_scores_are_the_share_of_its_three_votes() {
    let app = default_app();
    let rows: Vec<Value> = bundled_rows()
        .into_iter()
        .map(|(r, _)| Value::Object(r))
        .collect();
    let (status, answer) =
        post_json(&app, "/predict/batch?scores=1", &json!(rows).to_string()).await;
    assert_eq!(status, StatusCode::OK);
    for p in answer["predictions"].as_array().unwrap() {
        let scores: Vec<f64> = p["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_f64().unwrap())
            .collect();
        assert!((scores[0] + scores[1] - 1.0).abs() < 1e-6);
        let positive = scores[1] > 0.5;
        assert_eq!(
            p["prediction"],
            u8::from(positive),
            "the majority decides: {p}"
        );
        assert!(
            [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]
                .iter()
                .any(|v| (scores[1] - v).abs() < 1e-6)
        );
    }
}

#[test]
fn score_reads_an_unnamed_models_features_by_position() {
    // No sidecar: the columns but `id` are the 30 features, whatever their names.
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..30).map(|i| format!("col {i}")).collect();
    let (csv, _) = csv_of(dir.path(), "cancer", &names);
    let out = score("logreg_cancer_nozipmap.onnx", &csv, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, labels) = rows_and_reference("cancer", "logreg_cancer_nozipmap", "label");
    let text = String::from_utf8(out.stdout).unwrap();
    let ours: Vec<String> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().to_string())
        .collect();
    let theirs: Vec<String> = labels
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    assert_eq!(ours, theirs);
    // A column too many is refused, saying why.
    let text = std::fs::read_to_string(&csv).unwrap();
    let bad = dir.path().join("wide.csv");
    std::fs::write(&bad, text.replacen("col 29", "col 29,extra", 1)).unwrap();
    let out = score("logreg_cancer_nozipmap.onnx", &bad, &[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("by position"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
