//! In-process tests of every endpoint and every error of the HTTP API (`oneshot`, no socket).

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

#[tokio::test]
async fn the_tutorials_sample_is_malignant() {
    let app = default_app();
    let (status, body) = post_json(&app, "/predict", SAMPLE).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"label": "M", "prediction": 1}));
}

#[tokio::test]
async fn predict_answers_the_exact_tutorial_bytes() {
    let app = default_app();
    let req = Request::post("/predict")
        .header("content-type", "application/json")
        .body(Body::from(SAMPLE))
        .unwrap();
    let response = app.oneshot(req).await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&bytes[..], br#"{"label":"M","prediction":1}"#);
}

#[tokio::test]
async fn every_bundled_row_is_accepted_and_matches_the_pipeline() {
    // The tutorial refused rows whose concavity is 0; they are real measurements.
    let app = default_app();
    let model = ml_serving::artifact::LoadedModel::load(&bundled_model_path()).unwrap();
    let data = ml_serving::dataset::load_labeled(
        &repo("data/breast_cancer.csv"),
        &ml_serving::dataset::default_features(),
        "diagnosis",
        "M",
    )
    .unwrap();
    let expected = model
        .artifact
        .pipeline
        .predict(data.features.view())
        .unwrap();
    let rows = bundled_rows();
    assert!(rows.iter().any(|(r, _)| r["concavity_mean"] == json!(0.0)));
    let mut correct = 0;
    for ((row, diagnosis), want) in rows.iter().zip(&expected) {
        let (status, body) =
            post_json(&app, "/predict", &Value::Object(row.clone()).to_string()).await;
        assert_eq!(status, StatusCode::OK, "{row:?}: {body}");
        assert_eq!(body["prediction"], json!(u8::from(*want)), "{row:?}");
        assert_eq!(body["label"], json!(if *want { "M" } else { "B" }));
        correct += usize::from(body["label"] == json!(diagnosis));
    }
    assert!(
        correct as f64 / rows.len() as f64 > 0.93,
        "{correct} of {} right",
        rows.len()
    );
}

#[tokio::test]
async fn integers_and_zero_are_valid_numbers() {
    let app = default_app();
    let body = r#"{"concavity_mean":0,"concave_points_mean":0,"perimeter_se":2,"area_se":20,"texture_worst":25,"area_worst":500}"#;
    let (status, answer) = post_json(&app, "/predict", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"label": "B", "prediction": 0}));
}

#[tokio::test]
async fn validation_reports_every_bad_field_at_once() {
    let app = default_app();
    let body = r#"{"concavity_mean":-0.5,"concave_points_mean":"0.1","perimeter_se":null,"area_sx":153.4,"texture_worst":[1],"area_worst":{}}"#;
    let (status, answer) = post_json(&app, "/predict", body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let detail = answer["detail"].as_array().unwrap();
    let find = |field: &str| {
        detail
            .iter()
            .find(|d| d["loc"] == json!(["body", field]))
            .unwrap_or_else(|| panic!("no error for {field} in {answer}"))
    };
    assert_eq!(find("concavity_mean")["type"], "greater_than_equal");
    assert_eq!(find("concave_points_mean")["type"], "float_type");
    assert!(
        find("concave_points_mean")["msg"]
            .as_str()
            .unwrap()
            .contains("string")
    );
    assert_eq!(find("perimeter_se")["type"], "float_type");
    assert_eq!(find("area_sx")["type"], "extra_forbidden");
    assert_eq!(find("area_se")["type"], "missing");
    assert_eq!(find("texture_worst")["type"], "float_type");
    assert_eq!(find("area_worst")["type"], "float_type");
    assert_eq!(detail.len(), 7, "{answer}");
    for d in detail {
        assert!(d["msg"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn a_repeated_field_is_refused() {
    let app = default_app();
    let body = SAMPLE.replace(
        "\"area_worst\":2019.0",
        "\"area_worst\":2019.0,\"area_worst\":1.0",
    );
    let (status, answer) = post_json(&app, "/predict", &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer["detail"][0]["loc"], json!(["body", "area_worst"]));
    assert_eq!(answer["detail"][0]["type"], "duplicate_field");
}

#[tokio::test]
async fn a_body_that_is_not_an_object_is_a_validation_error() {
    let app = default_app();
    for body in ["[]", "1", "\"x\"", "null", "true"] {
        let (status, answer) = post_json(&app, "/predict", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(answer["detail"][0]["loc"], json!(["body"]), "{body}");
        assert_eq!(answer["detail"][0]["type"], "dict_type");
    }
}

#[tokio::test]
async fn malformed_json_is_a_400_that_says_where() {
    let app = default_app();
    let (status, answer) = post_json(&app, "/predict", "{\"concavity_mean\": 0.3,").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let detail = answer["detail"].as_str().unwrap();
    assert!(detail.contains("line 1 column"), "{detail}");
    let (status, _) = post_json(&app, "/predict", &format!("{SAMPLE} trailing")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post_json(&app, "/predict", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_415() {
    let app = default_app();
    let (status, answer) = call(&app, "POST", "/predict", Some("text/plain"), SAMPLE).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(answer["detail"].as_str().unwrap().contains("text/plain"));
    let (status, _) = call(&app, "POST", "/predict", None, SAMPLE).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = call(
        &app,
        "POST",
        "/predict",
        Some("application/json; charset=utf-8"),
        SAMPLE,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let (_, app) = Setup {
        body_bytes: 64,
        ..Setup::default()
    }
    .app();
    let (status, answer) = post_json(&app, "/predict", SAMPLE).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        answer["detail"].as_str().unwrap().contains("64 bytes"),
        "{answer}"
    );
}

#[tokio::test]
async fn batch_takes_an_array_or_an_object_and_keeps_the_order() {
    let app = default_app();
    let benign = r#"{"concavity_mean":0,"concave_points_mean":0,"perimeter_se":2,"area_se":20,"texture_worst":25,"area_worst":500}"#;
    let expected = json!({"predictions": [
        {"label": "M", "prediction": 1},
        {"label": "B", "prediction": 0},
        {"label": "M", "prediction": 1}
    ]});
    let (status, answer) = post_json(
        &app,
        "/predict/batch",
        &format!("[{SAMPLE},{benign},{SAMPLE}]"),
    )
    .await;
    assert_eq!((status, &answer), (StatusCode::OK, &expected));
    let (status, answer) = post_json(
        &app,
        "/predict/batch",
        &format!("{{\"rows\":[{SAMPLE},{benign},{SAMPLE}]}}"),
    )
    .await;
    assert_eq!((status, &answer), (StatusCode::OK, &expected));
}

#[tokio::test]
async fn batch_errors_name_the_row() {
    let app = default_app();
    let bad = SAMPLE.replace("0.3001", "-1");
    let (status, answer) = post_json(&app, "/predict/batch", &format!("[{SAMPLE},{bad}]")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        answer["detail"][0]["loc"],
        json!(["body", 1, "concavity_mean"])
    );
    let (status, answer) =
        post_json(&app, "/predict/batch", &format!("{{\"rows\":[{bad}]}}")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        answer["detail"][0]["loc"],
        json!(["body", "rows", 0, "concavity_mean"])
    );
    let (status, answer) = post_json(&app, "/predict/batch", "[]").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer["detail"][0]["type"], "too_short");
    let (status, answer) = post_json(&app, "/predict/batch", "{\"row\":[]}").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let types: Vec<&str> = answer["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"extra_forbidden") && types.contains(&"missing"),
        "{answer}"
    );
    let (status, _) = post_json(&app, "/predict/batch", SAMPLE).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a single row object is not a batch"
    );
}

#[tokio::test]
async fn batch_over_the_row_limit_is_413_and_at_the_limit_is_fine() {
    let (_, app) = Setup {
        batch_rows: 3,
        ..Setup::default()
    }
    .app();
    let rows = |n: usize| format!("[{}]", vec![SAMPLE; n].join(","));
    let (status, answer) = post_json(&app, "/predict/batch", &rows(3)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["predictions"].as_array().unwrap().len(), 3);
    let (status, answer) = post_json(&app, "/predict/batch", &rows(4)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("at most 3 rows")
    );
}

#[tokio::test]
async fn info_describes_the_live_model() {
    let app = default_app();
    let (status, info) = get(&app, "/info").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["name"], "breast_model");
    assert_eq!(info["version"], "1");
    assert_eq!(
        info["features"],
        json!(ml_serving::dataset::DEFAULT_FEATURES)
    );
    assert_eq!(info["labels"], json!({"0": "B", "1": "M"}));
    assert!(info["metrics"]["accuracy"].as_f64().unwrap() >= 0.93);
    let bytes = std::fs::read(bundled_model_path()).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    assert_eq!(info["artifact"]["sha256"], json!(sha));
    assert_eq!(info["ml_serving_version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn model_name_overrides_the_stored_name() {
    let (_, app) = Setup {
        name: Some("renamed".to_string()),
        ..Setup::default()
    }
    .app();
    assert_eq!(get(&app, "/info").await.1["name"], "renamed");
}

#[tokio::test]
async fn health_and_readiness() {
    let (state, app) = Setup::default().app();
    assert_eq!(
        get(&app, "/health").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(get(&app, "/ready").await.0, StatusCode::OK);
    state.begin_shutdown();
    assert_eq!(get(&app, "/ready").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        get(&app, "/health").await.0,
        StatusCode::OK,
        "liveness stays up while draining"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = default_app();
    let (status, body) = get(&app, "/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["detail"], "Not Found: /nope");
    let (status, body) = get(&app, "/predict").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["detail"].is_string());
    let (status, _) = call(&app, "DELETE", "/health", None, Body::empty()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_api_key_guards_predictions_only() {
    let (_, app) = Setup {
        api_key: Some("s3cret".to_string()),
        ..Setup::default()
    }
    .app();
    let with_auth = |auth: Option<&str>| {
        let mut req = Request::post("/predict").header("content-type", "application/json");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.body(Body::from(SAMPLE)).unwrap()
    };
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("s3cret"),
        Some("Bearer s3cret2"),
    ] {
        let response = app.clone().oneshot(with_auth(auth)).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
    let response = app
        .clone()
        .oneshot(with_auth(Some("Bearer s3cret")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let batch = Request::post("/predict/batch")
        .header("content-type", "application/json")
        .body(Body::from(format!("[{SAMPLE}]")))
        .unwrap();
    assert_eq!(
        app.clone().oneshot(batch).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    for open in ["/health", "/ready", "/info", "/metrics", "/openapi.json"] {
        assert_eq!(get(&app, open).await.0, StatusCode::OK, "{open}");
    }
}

#[tokio::test]
async fn too_many_requests_in_flight_get_429_at_once() {
    let (app, slots) = Setup {
        max_in_flight: 1,
        ..Setup::default()
    }
    .app_and_slots();
    let held = slots.take().expect("the only slot is free");
    let (status, body) = post_json(&app, "/predict", SAMPLE).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("in flight"));
    let (status, body) = get(&app, "/health").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"status": "ok"})),
        "health is not limited"
    );
    drop(held);
    assert_eq!(post_json(&app, "/predict", SAMPLE).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_client_still_sending_its_body_holds_no_slot() {
    let (_, app) = Setup {
        max_in_flight: 1,
        ..Setup::default()
    }
    .app();
    // Two uploads that never finish, with a single slot: well-behaved clients still get 200.
    let (tx1, first) = hold_predict_in_flight(&app);
    let (tx2, second) = hold_predict_in_flight(&app);
    tx1.send(Ok(b"{\"concavity_mean\"".to_vec())).await.unwrap();
    for _ in 0..20 {
        assert_eq!(post_json(&app, "/predict", SAMPLE).await.0, StatusCode::OK);
        tokio::task::yield_now().await;
    }
    drop((tx1, tx2));
    for task in [first, second] {
        let status = task.await.unwrap().unwrap().status();
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "a cut-off body is malformed"
        );
    }
}

#[tokio::test]
async fn a_request_slower_than_the_timeout_gets_408() {
    let (_, app) = Setup {
        timeout: Duration::from_millis(100),
        ..Setup::default()
    }
    .app();
    let (status, body) = answer_to_a_stalled_body(&app, "/predict").await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert!(body["detail"].as_str().unwrap().contains("timeout"));
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_predictions_by_label() {
    let app = default_app();
    let route = r#"route="/predict""#;
    let requests = |status: &str| {
        metric(
            "http_requests_total",
            &[r#"method="POST""#, route, &format!("status=\"{status}\"")],
        )
    };
    let malignant = || {
        metric(
            "predictions_total",
            &[r#"label="M""#, r#"model="breast_model""#, r#"version="1""#],
        )
    };
    let before = (requests("200"), requests("422"), malignant());
    post_json(&app, "/predict", SAMPLE).await;
    post_json(&app, "/predict", "{}").await;
    get(&app, "/no/such/route").await;
    // Other tests in this process count too: at least ours are counted.
    assert!(requests("200") >= before.0 + 1.0);
    assert!(requests("422") >= before.1 + 1.0);
    assert!(malignant() >= before.2 + 1.0);
    let (status, body) = get(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let text = body.as_str().unwrap().to_string();
    assert!(text.contains("http_requests_total{"), "{text}");
    assert!(
        text.contains(r#"route="unmatched""#),
        "raw URIs never become labels"
    );
    assert!(!text.contains("/no/such/route"));
    assert!(text.contains("http_request_duration_seconds_bucket{"));
    assert!(text.contains("# TYPE http_request_duration_seconds histogram"));
    assert!(text.contains("http_requests_in_flight"));
}

#[tokio::test]
async fn openapi_is_generated_and_the_docs_are_offline() {
    let app = default_app();
    let (status, doc) = get(&app, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/predict",
        "/predict/batch",
        "/info",
        "/health",
        "/ready",
        "/metrics",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    let request = &doc["components"]["schemas"]["PredictRequest"];
    let mut properties: Vec<&String> = request["properties"].as_object().unwrap().keys().collect();
    properties.sort();
    let mut features: Vec<String> = ml_serving::dataset::default_features();
    features.sort();
    assert_eq!(properties, features.iter().collect::<Vec<_>>());
    assert_eq!(request["additionalProperties"], json!(false));
    assert!(doc["components"]["schemas"]["ValidationErrorBody"].is_object());

    let (status, page) = get(&app, "/docs/").await;
    assert_eq!(status, StatusCode::OK);
    let page = page.as_str().unwrap();
    assert!(page.contains("swagger-ui-bundle.js"));
    assert!(!page.contains("https://"), "no asset comes from a CDN");
    let (status, script) = get(&app, "/docs/swagger-ui-bundle.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        script.as_str().unwrap().len() > 100_000,
        "the bundle is served from the binary"
    );
    // Every asset the page names is served (the vendored Swagger UI is trimmed: vendor/).
    let assets: Vec<&str> = page
        .split(['"', '\''])
        .filter(|s| s.starts_with("./") && !s.ends_with('/'))
        .collect();
    assert!(assets.len() >= 5, "{page}");
    for asset in assets {
        let (status, _) = get(&app, &format!("/docs/{}", &asset[2..])).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
    }
}

#[tokio::test]
async fn every_answer_carries_a_request_id_echoing_a_sane_one() {
    let app = default_app();
    let send = |id: Option<&str>| {
        let mut req = Request::get("/health");
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        let app = app.clone();
        let req = req.body(Body::empty()).unwrap();
        async move {
            let response = app.oneshot(req).await.unwrap();
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_string()
        }
    };
    assert_eq!(send(Some("trace-abc-123")).await, "trace-abc-123");
    let first = send(None).await;
    let second = send(None).await;
    assert!(!first.is_empty() && first != second, "{first} {second}");
    // Too long, or with spaces: replaced, never echoed into logs or answers.
    let long = "x".repeat(65);
    assert_ne!(send(Some(&long)).await, long);
    assert_ne!(send(Some("a b")).await, "a b");
}
