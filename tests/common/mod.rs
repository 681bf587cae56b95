//! Shared helpers for the server tests: a state over the bundled model, and one-shot calls.
#![allow(dead_code)]

pub mod docs;
pub mod process;
pub mod servers;

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use ml_serving::server::App;
use ml_serving::server::{AppState, Limits, ServedModel, app};
use serde_json::Value;
use tower::ServiceExt;

/// The tutorial's sample (malignant), in the model's feature order (`DEFAULT_FEATURES`).
pub const SAMPLE_ROW: [f64; 6] = [0.3001, 0.1471, 8.589, 153.4, 17.33, 2019.0];
/// A benign row, in feature order.
pub const BENIGN_ROW: [f64; 6] = [0.0, 0.0, 2.0, 20.0, 25.0, 500.0];

/// The tutorial's sample as a `/predict` body.
pub const SAMPLE: &str = r#"{"concavity_mean":0.3001,"concave_points_mean":0.1471,"perimeter_se":8.589,"area_se":153.4,"texture_worst":17.33,"area_worst":2019.0}"#;

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

pub fn bundled_model_path() -> PathBuf {
    repo("model/model_binary.dat.gz")
}

pub struct Setup {
    pub model_path: PathBuf,
    pub name: Option<String>,
    pub body_bytes: usize,
    pub batch_rows: usize,
    pub api_key: Option<String>,
    pub max_in_flight: usize,
    pub timeout: Duration,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            model_path: bundled_model_path(),
            name: None,
            body_bytes: 1024 * 1024,
            batch_rows: 1000,
            api_key: None,
            max_in_flight: 64,
            timeout: Duration::from_secs(10),
        }
    }
}

impl Setup {
    pub fn state(&self) -> AppState {
        ml_serving::telemetry::metrics_handle();
        let model = ml_serving::model::Model::load(
            &self.model_path,
            ml_serving::artifact::DEFAULT_MAX_MODEL_BYTES,
        )
        .expect("model loads");
        AppState::new(
            ServedModel::new(model, self.name.as_deref()),
            self.model_path.clone(),
            self.name.clone(),
            Limits {
                body_bytes: self.body_bytes,
                batch_rows: self.batch_rows,
                model_bytes: ml_serving::artifact::DEFAULT_MAX_MODEL_BYTES,
            },
            self.api_key.clone(),
        )
    }

    pub fn app(&self) -> (AppState, App) {
        let state = self.state();
        let router = app(state.clone(), self.max_in_flight, self.timeout);
        (state, router)
    }

    /// The app and its prediction slots, for a test that holds slots itself.
    pub fn app_and_slots(&self) -> (App, ml_serving::server::Slots) {
        let slots = ml_serving::server::Slots::new(self.max_in_flight);
        let router = ml_serving::server::app_with_slots(self.state(), slots.clone(), self.timeout);
        (router, slots)
    }
}

/// Connection bounds for a test server: the defaults of `serve`, with this drain timeout.
pub fn conn_settings(drain: Duration) -> ml_serving::server::ConnSettings {
    ml_serving::server::ConnSettings {
        max_connections: 1024,
        header_read_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(30),
        max_header_bytes: 16 * 1024,
        drain_timeout: drain,
    }
}

pub fn default_app() -> App {
    Setup::default().app().1
}

/// Sends one request through the router; returns the status and the body parsed as JSON
/// (`Value::String` holding the text when it is not JSON).
pub async fn call(
    app: &App,
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let response = app
        .clone()
        .oneshot(req.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

pub async fn post_json(app: &App, uri: &str, body: &str) -> (StatusCode, Value) {
    call(app, "POST", uri, Some("application/json"), body.to_string()).await
}

pub async fn get(app: &App, uri: &str) -> (StatusCode, Value) {
    call(app, "GET", uri, None, Body::empty()).await
}

/// The bundled data set's rows as JSON objects of the default features, with their diagnosis.
pub fn bundled_rows() -> Vec<(serde_json::Map<String, Value>, String)> {
    let mut reader = csv::Reader::from_path(repo("data/breast_cancer.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let features = ml_serving::dataset::DEFAULT_FEATURES;
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let mut row = serde_json::Map::new();
            for f in features {
                let i = headers.iter().position(|h| h == f).unwrap();
                let v: f64 = r[i].parse().unwrap();
                row.insert(f.to_string(), serde_json::json!(v));
            }
            let d = headers.iter().position(|h| h == "diagnosis").unwrap();
            (row, r[d].to_string())
        })
        .collect()
}

/// The bundled rows' features, in feature order.
pub fn bundled_feature_rows() -> Vec<[f64; 6]> {
    bundled_rows()
        .into_iter()
        .map(|(row, _)| ml_serving::dataset::DEFAULT_FEATURES.map(|f| row[f].as_f64().unwrap()))
        .collect()
}

/// `/predict`'s answer for every bundled row, in order.
pub async fn predict_answers(app: &App) -> Vec<i64> {
    let mut answers = Vec::new();
    for (row, _) in bundled_rows() {
        let (status, body) = post_json(app, "/predict", &Value::Object(row).to_string()).await;
        assert_eq!(status, StatusCode::OK);
        answers.push(body["prediction"].as_i64().unwrap());
    }
    answers
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The sending end of a [`stalled_body`].
pub type BodySender = tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>;

/// A request running in its own task.
pub type RequestTask =
    tokio::task::JoinHandle<Result<axum::response::Response, std::convert::Infallible>>;

/// A body that sends nothing until the test sends or drops its sender: a request held in flight.
pub fn stalled_body() -> (BodySender, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    (
        tx,
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
}

/// Any JSON number: any float JSON can hold, a plausible feature value, or any integer.
pub fn any_number() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    prop_oneof![
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        (0.0f64..5000.0).prop_map(|f| serde_json::json!(f)),
        any::<i64>().prop_map(|i| Value::Number(i.into())),
    ]
}

/// Any JSON value, nested a few levels, whose object keys are often one of `keys`.
pub fn any_json(keys: Vec<&'static str>) -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let key = prop_oneof![prop::sample::select(keys).prop_map(str::to_string), ".*"];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any_number(),
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

/// Starts a `POST /predict` whose body never arrives, so that it holds one in-flight slot until
/// the returned sender sends the body (or is dropped). Returns the sender and the request's task.
pub fn hold_predict_in_flight(app: &App) -> (BodySender, RequestTask) {
    let (tx, body) = stalled_body();
    let held = Request::post("/predict")
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    (tx, tokio::spawn(app.clone().oneshot(held)))
}

/// Sends `uri` a POST whose JSON body never arrives and returns the answer, which the server must
/// give by itself (its request timeout) within 5 seconds.
pub async fn answer_to_a_stalled_body(app: &App, uri: &str) -> (StatusCode, Value) {
    let (_tx, body) = stalled_body();
    let req = Request::post(uri)
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), app.clone().oneshot(req))
        .await
        .expect("the server answers by itself")
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// The value of a metric in this process's recorder: the series named `name` that carry every
/// one of `labels` (`key="value"`), summed; 0 when there is none.
pub fn metric(name: &str, labels: &[&str]) -> f64 {
    ml_serving::telemetry::metrics_handle()
        .render()
        .lines()
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// For property tests: runs `requests` against a small app (4096-byte bodies, 8-row batches) on
/// a runtime of its own; taking longer than 5 seconds fails the case as a hang.
pub fn with_small_app<T, F: std::future::Future<Output = T>>(
    requests: impl FnOnce(App) -> F,
) -> Result<T, proptest::test_runner::TestCaseError> {
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
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), requests(app)).await })
        .map_err(|_| proptest::test_runner::TestCaseError::fail("the server hung"))
}

/// The property tests every JSON route gets, each body handed to `$check` (a
/// `fn(Vec<u8>) -> Result<(), TestCaseError>`): arbitrary bytes, arbitrary JSON drawn from the
/// strategy `$json`, and JSON-like text; 256 cases each.
#[allow(unused_macros)]
macro_rules! json_route_properties {
    ($check:ident, $json:expr) => {
        proptest::proptest! {
            #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

            #[test]
            fn arbitrary_bytes(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
                $check(body)?;
            }

            #[test]
            fn arbitrary_json(value in $json) {
                $check(serde_json::to_vec(&value).unwrap())?;
            }

            #[test]
            fn json_like_text(body in r#"[\[\]{}",:0-9eE.+\- a-z_]{0,200}"#) {
                $check(body.into_bytes())?;
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use json_route_properties;
