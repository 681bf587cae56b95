//! The model repository in process: layout, version policy, routing, default model, per-model
//! errors and OpenAPI, readiness, metrics, V2 per model and the repository extension, live
//! changes, and every kind of bad layout (each named by its path, the rest still serving).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::StatusCode;
use common::process::train;
use common::{SAMPLE, bundled_model_path, call, get, post_json, repo};
use ml_serving::server::App;
use ml_serving::server::{AppState, Limits, Registry, RegistrySettings, app};
use serde_json::{Value, json};

/// Features of the model trained with other columns.
const OTHER_FEATURES: &str = "radius_mean,texture_mean,area_worst";
const OTHER_SAMPLE: &str = r#"{"radius_mean":17.99,"texture_mean":10.38,"area_worst":2019.0}"#;

fn put(path: &Path, from: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::copy(from, path).unwrap();
}

fn onnx_fixture(name: &str) -> PathBuf {
    repo(&format!("tests/fixtures/onnx/{name}"))
}

/// Three models: `cancer` (the bundled model as version 1, a reseeded one as 2, every version
/// served), `other` (other features), `onnx` (scikit-learn's logistic regression, 30 features).
fn three_models(root: &Path) {
    put(&root.join("cancer/1/model.dat.gz"), &bundled_model_path());
    train(&root.join("cancer/2/model.dat.gz"), &["--seed", "7"]);
    std::fs::write(
        root.join("cancer/config.json"),
        r#"{"version_policy": {"all": {}}, "display_name": "Breast cancer", "labels": {"team": "ml"}}"#,
    )
    .unwrap();
    train(
        &root.join("other/1/model.dat.gz"),
        &["--features", OTHER_FEATURES],
    );
    put(
        &root.join("onnx/1/model.onnx"),
        &onnx_fixture("logreg_cancer.onnx"),
    );
    put(
        &root.join("onnx/1/model.json"),
        &onnx_fixture("logreg_cancer.json"),
    );
}

fn settings(root: &Path, default: Option<&str>) -> RegistrySettings {
    RegistrySettings {
        source: ml_serving::server::ModelSource::Repository {
            root: root.to_path_buf(),
        },
        model_bytes: ml_serving::artifact::DEFAULT_MAX_MODEL_BYTES,
        max_models: 8,
        batch_rows: 1000,
        default_model: default.map(str::to_string),
    }
}

fn serve(settings: RegistrySettings, control: bool, api_key: Option<&str>) -> (AppState, App) {
    ml_serving::telemetry::metrics_handle();
    let registry = Registry::load(settings).expect("the repository loads");
    let state = AppState::with_registry(
        registry,
        Limits {
            body_bytes: 1024 * 1024,
            batch_rows: 1000,
            model_bytes: ml_serving::artifact::DEFAULT_MAX_MODEL_BYTES,
        },
        api_key.map(str::to_string),
        control,
    );
    let router = app(state.clone(), 64, Duration::from_secs(10));
    (state, router)
}

/// A row of the ONNX model's 30 named features (the sidecar's names, the data's first row).
fn onnx_row() -> String {
    let sidecar: Value =
        serde_json::from_slice(&std::fs::read(onnx_fixture("logreg_cancer.json")).unwrap())
            .unwrap();
    let data: Value =
        serde_json::from_slice(&std::fs::read(onnx_fixture("data_cancer.json")).unwrap()).unwrap();
    let names = sidecar["feature_names"].as_array().unwrap();
    let row = data["rows"][0].as_array().unwrap();
    let object: serde_json::Map<String, Value> = names
        .iter()
        .zip(row)
        .map(|(n, v)| (n.as_str().unwrap().to_string(), v.clone()))
        .collect();
    Value::Object(object).to_string()
}

fn versions(listing: &Value, model: &str) -> Vec<String> {
    listing["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == model)
        .unwrap_or_else(|| panic!("{model} is not listed: {listing}"))["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap().to_string())
        .collect()
}

fn model_status<'a>(listing: &'a Value, model: &str) -> &'a Value {
    listing["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == model)
        .unwrap_or_else(|| panic!("{model} is not listed: {listing}"))
}

#[tokio::test]
async fn every_model_and_version_answers_on_its_own_routes() {
    let dir = tempfile::tempdir().unwrap();
    three_models(dir.path());
    let (_, app) = serve(settings(dir.path(), Some("cancer")), false, None);

    let (status, listing) = get(&app, "/models").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listing["default"], "cancer");
    assert_eq!(versions(&listing, "cancer"), ["1", "2"]);
    assert_eq!(versions(&listing, "other"), ["1"]);
    assert_eq!(versions(&listing, "onnx"), ["1"]);
    let cancer = model_status(&listing, "cancer");
    assert_eq!(cancer["state"], "READY");
    assert_eq!(cancer["latest"], "2");
    assert_eq!(cancer["config"]["display_name"], "Breast cancer");
    assert_eq!(
        model_status(&listing, "onnx")["versions"][0]["kind"],
        "onnx"
    );

    // The tutorial's route serves the default model, byte for byte.
    let (status, body) = post_json(&app, "/predict", SAMPLE).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"label": "M", "prediction": 1}))
    );
    for path in [
        "/models/cancer/predict",
        "/models/cancer/versions/1/predict",
        "/models/cancer/versions/2/predict",
    ] {
        let (status, body) = post_json(&app, path, SAMPLE).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["label"], "M", "{path}");
    }
    let (status, body) = post_json(&app, "/models/other/predict", OTHER_SAMPLE).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["label"] == "M" || body["label"] == "B", "{body}");
    let (status, body) = post_json(&app, "/models/onnx/predict", &onnx_row()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post_json(
        &app,
        "/models/other/predict/batch",
        &format!("[{OTHER_SAMPLE}, {OTHER_SAMPLE}]"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["predictions"].as_array().unwrap().len(), 2);

    // /info and /models/{name}: the model's own features and version.
    let (_, info) = get(&app, "/info").await;
    assert_eq!(
        (info["name"].as_str(), info["version"].as_str()),
        (Some("cancer"), Some("2"))
    );
    let (_, info) = get(&app, "/models/other").await;
    assert_eq!(
        info["features"],
        json!(["radius_mean", "texture_mean", "area_worst"])
    );
    let (_, info) = get(&app, "/models/cancer/versions/1").await;
    assert_eq!(info["version"], "1");
}

#[tokio::test]
async fn each_model_validates_against_its_own_features() {
    let dir = tempfile::tempdir().unwrap();
    three_models(dir.path());
    let (_, app) = serve(settings(dir.path(), Some("cancer")), false, None);
    // The bundled model's row sent to the model with other features: FastAPI-style errors
    // naming that model's missing fields and the unknown ones.
    let (status, body) = post_json(&app, "/models/other/predict", SAMPLE).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let text = body.to_string();
    for missing in ["radius_mean", "texture_mean"] {
        assert!(text.contains(missing), "{missing} not named: {text}");
    }
    assert!(
        text.contains("concavity_mean"),
        "the unknown field is not named: {text}"
    );
    let (status, _) = post_json(&app, "/models/cancer/predict", OTHER_SAMPLE).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn unknown_models_and_versions_are_404_naming_what_is_served() {
    let dir = tempfile::tempdir().unwrap();
    three_models(dir.path());
    let (_, app) = serve(settings(dir.path(), Some("cancer")), false, None);
    let (status, body) = post_json(&app, "/models/nope/predict", SAMPLE).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("\"nope\"") && detail.contains("\"other\""),
        "{detail}"
    );
    let (status, body) = post_json(&app, "/models/cancer/versions/9/predict", SAMPLE).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["detail"].as_str().unwrap().contains("\"1\", \"2\""),
        "{body}"
    );
    // A long name is cut in the answer.
    let long = "x".repeat(2000);
    let (status, body) = post_json(&app, &format!("/models/{long}/predict"), SAMPLE).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.to_string().len() < 400, "{body}");
    // V2: the same lookups, V2's error body.
    let (status, body) = get(&app, "/v2/models/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("nope"));
}

#[tokio::test]
async fn without_a_default_model_the_tutorial_routes_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    three_models(dir.path());
    let (_, app) = serve(settings(dir.path(), None), false, None);
    let (status, body) = post_json(&app, "/predict", SAMPLE).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("DEFAULT_MODEL") && detail.contains("/models/{name}/predict"),
        "{detail}"
    );
    assert_eq!(get(&app, "/info").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        post_json(&app, "/models/cancer/predict", SAMPLE).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_repository_of_one_model_serves_it_as_the_default() {
    let dir = tempfile::tempdir().unwrap();
    put(
        &dir.path().join("only/3/model.dat.gz"),
        &bundled_model_path(),
    );
    let (_, app) = serve(settings(dir.path(), None), false, None);
    let (status, body) = post_json(&app, "/predict", SAMPLE).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"label": "M", "prediction": 1}))
    );
    assert_eq!(get(&app, "/info").await.1["version"], "3");
}

#[test]
fn a_default_model_that_is_not_there_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    three_models(dir.path());
    let err = Registry::load(settings(dir.path(), Some("missing"))).unwrap_err();
    assert!(
        err.to_string().contains("DEFAULT_MODEL \"missing\""),
        "{err}"
    );
}

#[tokio::test]
async fn version_policies_choose_the_served_versions() {
    let dir = tempfile::tempdir().unwrap();
    for v in 1..=4 {
        put(
            &dir.path().join(format!("m/{v}/model.dat.gz")),
            &bundled_model_path(),
        );
    }
    let listed = |config: &str| {
        std::fs::write(dir.path().join("m/config.json"), config).unwrap();
        let registry = Registry::load(settings(dir.path(), None)).unwrap();
        let snapshot = registry.snapshot();
        snapshot.models["m"]
            .versions
            .iter()
            .map(|v| v.served.version.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(listed("{}"), ["4"]);
    assert_eq!(
        listed(r#"{"version_policy": {"latest": {"num_versions": 2}}}"#),
        ["3", "4"]
    );
    assert_eq!(
        listed(r#"{"version_policy": {"all": {}}}"#),
        ["1", "2", "3", "4"]
    );
    assert_eq!(
        listed(r#"{"version_policy": {"specific": {"versions": [1, 3, 9]}}}"#),
        ["1", "3"]
    );
}

#[tokio::test]
async fn the_openapi_document_describes_each_model_with_its_own_schema() {
    let dir = tempfile::tempdir().unwrap();
    three_models(dir.path());
    let (_, app) = serve(settings(dir.path(), Some("cancer")), false, None);
    let (status, doc) = get(&app, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/predict",
        "/models/cancer/predict",
        "/models/cancer/versions/1/predict/batch",
        "/models/other/predict",
        "/models/onnx/predict/batch",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    let schema_ref = &doc["paths"]["/models/other/predict"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["$ref"];
    assert_eq!(schema_ref, "#/components/schemas/PredictRequest.other");
    let schema = &doc["components"]["schemas"]["PredictRequest.other"];
    let mut props: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    props.sort_unstable();
    assert_eq!(props, ["area_worst", "radius_mean", "texture_mean"]);
    // /predict keeps the default model's schema, and its example is a valid request.
    let example = &doc["components"]["schemas"]["PredictRequest"]["examples"][0];
    assert!(example.get("concave_points_mean").is_some(), "{example}");
    let (status, _) = post_json(&app, "/predict", &example.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    // The ONNX model's schema: its 30 sidecar names, any sign.
    let onnx = &doc["components"]["schemas"]["PredictRequest.onnx"];
    assert_eq!(onnx["properties"].as_object().unwrap().len(), 30);
}

#[tokio::test]
async fn the_cached_openapi_document_equals_a_fresh_one_and_follows_changes() {
    let dir = tempfile::tempdir().unwrap();
    three_models(dir.path());
    let (state, app) = serve(settings(dir.path(), Some("cancer")), false, None);
    let fresh = serde_json::to_value(ml_serving::server::openapi_document_for(
        &state.registry().snapshot(),
        Some("cancer"),
    ))
    .unwrap();
    let (_, served) = get(&app, "/openapi.json").await;
    assert_eq!(served, fresh);
    // A new model appears: the document names it at the next request.
    put(
        &dir.path().join("late/1/model.dat.gz"),
        &bundled_model_path(),
    );
    state.reload().unwrap();
    let (_, served) = get(&app, "/openapi.json").await;
    assert!(served["paths"].get("/models/late/predict").is_some());
}

#[tokio::test]
async fn predictions_are_counted_by_model_and_version() {
    let dir = tempfile::tempdir().unwrap();
    three_models(dir.path());
    let (_, app) = serve(settings(dir.path(), Some("cancer")), false, None);
    for _ in 0..3 {
        post_json(&app, "/models/cancer/versions/1/predict", SAMPLE).await;
    }
    let (_, metrics) = get(&app, "/metrics").await;
    let text = metrics.as_str().unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("predictions_total{")
                && l.contains(r#"model="cancer""#)
                && l.contains(r#"version="1""#)
                && l.contains(r#"label="M""#)
        })
        .unwrap_or_else(|| panic!("no predictions_total for cancer/1: {text}"));
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 3.0, "{line}");
    assert!(text.contains("models_loaded"), "no gauge of loaded models");
    // A name that is not a model never becomes a label.
    post_json(&app, "/models/attacker-label/predict", SAMPLE).await;
    let (_, metrics) = get(&app, "/metrics").await;
    assert!(!metrics.as_str().unwrap().contains("attacker-label"));
}

#[tokio::test]
async fn v2_serves_every_model_and_version() {
    let dir = tempfile::tempdir().unwrap();
    three_models(dir.path());
    let (_, app) = serve(settings(dir.path(), Some("cancer")), false, None);
    let (status, meta) = get(&app, "/v2/models/cancer").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(meta["versions"], json!(["1", "2"]));
    let (_, meta) = get(&app, "/v2/models/other").await;
    assert_eq!(meta["inputs"].as_array().unwrap().len(), 3);
    assert_eq!(
        get(&app, "/v2/models/cancer/versions/1/ready").await.0,
        StatusCode::OK
    );
    assert_eq!(
        get(&app, "/v2/models/cancer/versions/7/ready").await.0,
        StatusCode::NOT_FOUND
    );
    let infer = json!({"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64",
                                   "data": [17.99, 10.38, 2019.0]}]});
    let (status, body) = post_json(
        &app,
        "/v2/models/other/versions/1/infer",
        &infer.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["model_name"].as_str(), body["model_version"].as_str()),
        (Some("other"), Some("1"))
    );
    let (status, index) = call(&app, "POST", "/v2/repository/index", None, "").await;
    assert_eq!(status, StatusCode::OK);
    let entries: Vec<(String, String)> = index
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(entries.len(), 4, "{index}");
    assert!(entries.iter().all(|(_, s)| s == "READY"));
}

#[tokio::test]
async fn repository_control_is_off_by_default_and_behind_the_api_key() {
    let dir = tempfile::tempdir().unwrap();
    three_models(dir.path());
    let (_, app) = serve(settings(dir.path(), Some("cancer")), false, None);
    let (status, body) = call(&app, "POST", "/v2/repository/models/other/unload", None, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("REPOSITORY_CONTROL")
    );
    assert_eq!(
        post_json(&app, "/models/other/predict", OTHER_SAMPLE)
            .await
            .0,
        StatusCode::OK
    );

    let (_, app) = serve(settings(dir.path(), Some("cancer")), true, Some("k3y"));
    let (status, body) = call(&app, "POST", "/v2/repository/models/other/unload", None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // V2's own error shape, as the OpenAPI document says.
    assert!(
        body["error"].as_str().unwrap().contains("API key"),
        "{body}"
    );
    assert!(body.get("detail").is_none(), "{body}");
}

async fn authorized(app: &App, path: &str) -> StatusCode {
    authorized_with(app, path, "").await
}

async fn authorized_with(app: &App, path: &str, body: &str) -> StatusCode {
    use tower::ServiceExt;
    let request = axum::http::Request::post(path)
        .header("authorization", "Bearer k3y")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    app.clone().oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn unload_and_load_take_a_model_out_and_back() {
    let dir = tempfile::tempdir().unwrap();
    three_models(dir.path());
    let (state, app) = serve(settings(dir.path(), Some("cancer")), true, Some("k3y"));
    assert_eq!(
        authorized(&app, "/v2/repository/models/other/unload").await,
        StatusCode::OK
    );
    assert_eq!(
        authorized_with(&app, "/models/other/predict", OTHER_SAMPLE).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        authorized_with(&app, "/models/cancer/predict", SAMPLE).await,
        StatusCode::OK
    );
    assert_eq!(
        model_status(&get(&app, "/models").await.1, "other")["state"],
        "UNLOADED"
    );
    // An unloaded model is not required: the server stays ready, the model is not.
    assert_eq!(get(&app, "/ready").await.0, StatusCode::OK);
    assert_eq!(
        get(&app, "/v2/models/other/ready").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Polling does not bring it back; load does.
    state.reload().unwrap();
    assert_eq!(
        model_status(&get(&app, "/models").await.1, "other")["state"],
        "UNLOADED"
    );
    assert_eq!(
        authorized(&app, "/v2/repository/models/other/load").await,
        StatusCode::OK
    );
    assert_eq!(
        model_status(&get(&app, "/models").await.1, "other")["state"],
        "READY"
    );
    // Loading a directory that is not there: 400 naming it.
    assert_eq!(
        authorized(&app, "/v2/repository/models/ghost/load").await,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn live_changes_load_unload_and_refuse_per_model() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    three_models(root);
    std::fs::remove_file(root.join("cancer/config.json")).unwrap(); // latest 1: version 2
    let (state, app) = serve(settings(root, Some("cancer")), false, None);
    let held = state.registry().get("cancer", None).unwrap();
    assert_eq!(held.version, "2");

    // A new version becomes latest once loaded.
    put(&root.join("cancer/3/model.dat.gz"), &bundled_model_path());
    state.reload().unwrap();
    assert_eq!(get(&app, "/models").await.1["models"][0]["latest"], "3");
    assert_eq!(get(&app, "/info").await.1["version"], "3");
    // The version it replaced is gone from the routes, but a request holding it still works.
    assert_eq!(
        post_json(&app, "/models/cancer/versions/2/predict", SAMPLE)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert!(held.answers(&[0.3, 0.15, 8.6, 153.4, 17.3, 2019.0]).is_ok());

    // A broken new version is refused: version 3 keeps serving, the problem names the path.
    std::fs::create_dir_all(root.join("cancer/4")).unwrap();
    std::fs::write(root.join("cancer/4/model.dat.gz"), b"not a model").unwrap();
    let outcome = state.reload().unwrap();
    assert!(outcome.failed(), "{outcome:?}");
    let listing = get(&app, "/models").await.1;
    let cancer = model_status(&listing, "cancer");
    assert_eq!(cancer["latest"], "3");
    assert!(
        cancer["problems"]
            .to_string()
            .contains("cancer/4/model.dat.gz"),
        "{cancer}"
    );
    assert_eq!(post_json(&app, "/predict", SAMPLE).await.0, StatusCode::OK);
    // Fixed: version 4 serves.
    put(&root.join("cancer/4/model.dat.gz"), &bundled_model_path());
    state.reload().unwrap();
    assert_eq!(
        model_status(&get(&app, "/models").await.1, "cancer")["latest"],
        "4"
    );

    // A removed version falls back to the newest left; a new model is served; a removed
    // model is gone.
    std::fs::remove_dir_all(root.join("cancer/4")).unwrap();
    put(&root.join("added/1/model.dat.gz"), &bundled_model_path());
    std::fs::remove_dir_all(root.join("onnx")).unwrap();
    state.reload().unwrap();
    let listing = get(&app, "/models").await.1;
    assert_eq!(model_status(&listing, "cancer")["latest"], "3");
    assert_eq!(
        post_json(&app, "/models/added/predict", SAMPLE).await.0,
        StatusCode::OK
    );
    assert_eq!(
        post_json(&app, "/models/onnx/predict", &onnx_row()).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&app, "/ready").await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_number_of_models_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b", "c"] {
        put(
            &dir.path().join(format!("{name}/1/model.dat.gz")),
            &bundled_model_path(),
        );
    }
    let capped = |root: &Path| RegistrySettings {
        max_models: 2,
        ..settings(root, Some("a"))
    };
    // At start-up: a clear error.
    let err = Registry::load(capped(dir.path())).unwrap_err().to_string();
    assert!(err.contains("more models than MAX_MODELS (2)"), "{err}");
    // While serving: the model past the cap is refused and listed, the others serve.
    std::fs::remove_dir_all(dir.path().join("c")).unwrap();
    let (state, app) = serve(capped(dir.path()), false, None);
    put(&dir.path().join("d/1/model.dat.gz"), &bundled_model_path());
    state.reload().unwrap();
    let listing = get(&app, "/models").await.1;
    assert_eq!(listing["models"].as_array().unwrap().len(), 2);
    assert!(
        listing["problems"].to_string().contains("MAX_MODELS (2)"),
        "{listing}"
    );
    assert_eq!(
        post_json(&app, "/models/d/predict", SAMPLE).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post_json(&app, "/models/b/predict", SAMPLE).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn each_bad_layout_is_named_by_its_path_and_the_rest_serves() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(&root.join("good/1/model.dat.gz"), &bundled_model_path());
    // In the good model: a non-numeric version, a stray file, two model files in one version,
    // a symlink loop, a version holding nothing but a directory.
    put(
        &root.join("good/latest/model.dat.gz"),
        &bundled_model_path(),
    );
    std::fs::write(root.join("good/notes.txt"), "x").unwrap();
    put(&root.join("good/2/a.dat.gz"), &bundled_model_path());
    put(
        &root.join("good/2/b.onnx"),
        &onnx_fixture("logreg_cancer.onnx"),
    );
    std::os::unix::fs::symlink(root.join("good/loop"), root.join("good/loop")).unwrap();
    std::fs::create_dir_all(root.join("good/3/sub")).unwrap();
    // At the top: a file where a model directory belongs, a bad name.
    std::fs::write(root.join("README.md"), "x").unwrap();
    put(&root.join("bad name/1/model.dat.gz"), &bundled_model_path());
    // Optional models that cannot be served: an empty one, and one with an unreadable file.
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("empty/config.json"), r#"{"optional": true}"#).unwrap();
    put(&root.join("locked/1/model.dat.gz"), &bundled_model_path());
    std::fs::write(root.join("locked/config.json"), r#"{"optional": true}"#).unwrap();
    let locked = root.join("locked/1/model.dat.gz");
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let root_reads_anything = std::fs::read(&locked).is_ok();

    let (_, app) = serve(settings(root, Some("good")), false, None);
    assert_eq!(post_json(&app, "/predict", SAMPLE).await.0, StatusCode::OK);
    assert_eq!(get(&app, "/ready").await.0, StatusCode::OK);
    let listing = get(&app, "/models").await.1;
    let good = model_status(&listing, "good").to_string();
    for (path, what) in [
        ("good/latest", "not a version directory"),
        ("good/notes.txt", "a file where a version directory belongs"),
        ("good/2", "holds 2 model files"),
        ("good/loop", "symbolic link loop"),
        ("good/3/sub", "not a regular file"),
    ] {
        assert!(
            good.contains(path) && good.contains(what),
            "{path} / {what} not in {good}"
        );
    }
    let top = listing["problems"].to_string();
    assert!(
        top.contains("README.md") && top.contains("a file where a model directory"),
        "{top}"
    );
    assert!(
        top.contains("bad name") && top.contains("not a valid model name"),
        "{top}"
    );
    let empty = model_status(&listing, "empty");
    assert_eq!(empty["state"], "UNAVAILABLE");
    assert!(
        empty["problems"]
            .to_string()
            .contains("holds no version directory"),
        "{empty}"
    );
    assert_eq!(
        post_json(&app, "/models/empty/predict", SAMPLE).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    if !root_reads_anything {
        let locked = model_status(&listing, "locked");
        assert!(
            locked["problems"]
                .to_string()
                .contains("locked/1/model.dat.gz"),
            "{locked}"
        );
    }
}

#[test]
fn a_required_model_that_cannot_load_stops_the_start_naming_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(&root.join("good/1/model.dat.gz"), &bundled_model_path());
    std::fs::create_dir_all(root.join("broken/1")).unwrap();
    std::fs::write(root.join("broken/1/model.dat.gz"), b"garbage").unwrap();
    let err = Registry::load(settings(root, None))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("broken/1/model.dat.gz") && err.contains("optional"),
        "{err}"
    );
    // A configuration that names an unknown field: the path and the field.
    std::fs::remove_dir_all(root.join("broken")).unwrap();
    std::fs::write(
        root.join("good/config.json"),
        r#"{"version_polcy": {"all": {}}}"#,
    )
    .unwrap();
    let err = Registry::load(settings(root, None))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("good/config.json") && err.contains("version_polcy"),
        "{err}"
    );
}

#[tokio::test]
async fn a_model_limit_from_its_configuration_applies_to_its_routes() {
    let dir = tempfile::tempdir().unwrap();
    put(
        &dir.path().join("small/1/model.dat.gz"),
        &bundled_model_path(),
    );
    std::fs::write(
        dir.path().join("small/config.json"),
        r#"{"max_batch_rows": 2}"#,
    )
    .unwrap();
    let (_, app) = serve(settings(dir.path(), None), false, None);
    let three = format!("[{SAMPLE},{SAMPLE},{SAMPLE}]");
    let two = format!("[{SAMPLE},{SAMPLE}]");
    let (status, body) = post_json(&app, "/models/small/predict/batch", &three).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("at most 2 rows"),
        "{body}"
    );
    assert_eq!(
        post_json(&app, "/predict/batch", &two).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get(&app, "/v2/models/small").await.1["parameters"]["max_batch_rows"],
        2
    );
}

#[tokio::test]
async fn the_example_repository_of_the_docs_serves_both_models() {
    // docs/repository.md serves it with MODEL_REPOSITORY=examples/repository
    // DEFAULT_MODEL=breast_model; compose's `repository` profile mounts it.
    let (_, app) = serve(
        settings(&repo("examples/repository"), Some("breast_model")),
        false,
        None,
    );
    let listing = get(&app, "/models").await.1;
    for name in ["breast_model", "cancer-logreg"] {
        assert_eq!(model_status(&listing, name)["state"], "READY", "{listing}");
    }
    let (status, body) = post_json(&app, "/predict", SAMPLE).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"label": "M", "prediction": 1}))
    );
    assert_eq!(
        post_json(&app, "/models/cancer-logreg/predict", &onnx_row())
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        model_status(&listing, "cancer-logreg")["config"]["max_batch_rows"],
        500
    );
}

#[tokio::test]
async fn grpc_serves_every_model_and_version_of_the_repository() {
    use ml_serving::server::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
    use ml_serving::server::grpc::proto::model_infer_request::InferInputTensor;
    use ml_serving::server::grpc::proto::*;
    let dir = tempfile::tempdir().unwrap();
    three_models(dir.path());
    let (state, _) = serve(settings(dir.path(), Some("cancer")), false, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let grpc = ml_serving::server::grpc::GrpcSettings {
        slots: ml_serving::server::Slots::new(8),
        request_timeout: Duration::from_secs(10),
        connections: common::conn_settings(Duration::from_secs(1)),
    };
    let task = tokio::spawn(ml_serving::server::grpc::serve(
        listener,
        state,
        grpc,
        stop.clone(),
    ));
    let mut client = GrpcInferenceServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let request = |model: &str, version: &str, row: Vec<f64>| ModelInferRequest {
        model_name: model.into(),
        model_version: version.into(),
        inputs: vec![InferInputTensor {
            name: "input-0".into(),
            datatype: "FP64".into(),
            shape: vec![1, row.len() as i64],
            contents: Some(InferTensorContents {
                fp64_contents: row,
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let answer = client
        .model_infer(request("other", "", vec![17.99, 10.38, 2019.0]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (answer.model_name.as_str(), answer.model_version.as_str()),
        ("other", "1")
    );
    let answer = client
        .model_infer(request(
            "cancer",
            "1",
            vec![0.3001, 0.1471, 8.589, 153.4, 17.33, 2019.0],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.model_version, "1");
    let err = client
        .model_infer(request("cancer", "9", vec![0.0; 6]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(err.message().contains("\"1\", \"2\""), "{}", err.message());
    let meta = client
        .model_metadata(ModelMetadataRequest {
            name: "cancer".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.versions, ["1", "2"]);
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// `ml-serving score` of the bundled CSV with `args`.
fn score(args: &[&str]) -> std::process::Output {
    std::process::Command::new(common::process::BIN)
        .arg("score")
        .args(args)
        .arg("--input")
        .arg(repo("data/breast_cancer.csv"))
        .output()
        .unwrap()
}

#[test]
fn score_takes_a_model_from_the_repository_by_name_and_version() {
    let dir = tempfile::tempdir().unwrap();
    three_models(dir.path());
    let root = dir.path().to_str().unwrap();
    let by_path = |file: &str| {
        let out = score(&["--model-path", &format!("{root}/{file}")]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let by_name = |name: &str, version: &[&str]| {
        let mut args = vec!["--model-repository", root, "--model-name", name];
        args.extend(version);
        score(&args)
    };
    // The latest version by default (policy "all": version 2), any version on request, and a
    // model with other features reads its own columns. (The two versions answer differently.)
    assert_ne!(
        by_path("cancer/1/model.dat.gz"),
        by_path("cancer/2/model.dat.gz")
    );
    assert_eq!(
        by_name("cancer", &[]).stdout,
        by_path("cancer/2/model.dat.gz")
    );
    assert_eq!(
        by_name("cancer", &["--model-version", "1"]).stdout,
        by_path("cancer/1/model.dat.gz")
    );
    assert_eq!(
        by_name("other", &[]).stdout,
        by_path("other/1/model.dat.gz")
    );
    let missing = by_name("cancer", &["--model-version", "7"]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("no usable version 7"), "{stderr}");
    let unknown = by_name("nope", &[]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not a model of the repository"));
}
