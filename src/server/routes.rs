//! The route handlers of the tutorial's API and its extensions.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::features;
use crate::model::Model;
use crate::wire::{
    ArtifactInfo, BatchResponse, ErrorBody, HealthResponse, InfoResponse, Loc, ModelStatus,
    ModelsResponse, PredictResponse, ValidationErrorBody, VersionStatus,
};

use super::error::ApiError;
use super::extract::{Authorized, JsonBody};
use super::state::{AppState, ServedModel};

/// Predict one row.
#[utoipa::path(
    post,
    path = "/predict",
    request_body(content = PredictRequest, description = "The model's features, each a number ≥ 0"),
    responses(
        (status = 200, description = "The prediction", body = PredictResponse),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 422, description = "Missing, unknown or invalid fields (the first 20 listed)", body = ValidationErrorBody),
        PredictionErrors,
    ),
    security((), ("api_key" = []))
)]
pub async fn predict(
    State(state): State<AppState>,
    _: Authorized,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let _slot = state.slots().take()?;
    predict_one(&*state.model()?, &body)
}

/// One row through `model`: our model's pre-serialised answer, else the general one.
fn predict_one(model: &ServedModel, body: &[u8]) -> Result<Response, ApiError> {
    let row = features::parse_row(model.features(), body, model.model.nonnegative_features())?;
    if let Some(body) = model.native_answer_body(&row)? {
        // Built by hand: `(headers, body).into_response()` sets a content type, then ours.
        let mut response = Response::new(axum::body::Body::from(body));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        return Ok(response);
    }
    let answer = model.answers(&row)?.pop();
    Ok(Json(answer).into_response())
}

/// Predict many rows: a JSON array of rows, or `{"rows": [...]}`; `?scores=true` adds each
/// class answer's per-class scores.
#[utoipa::path(
    post,
    path = "/predict/batch",
    params(("scores" = Option<bool>, Query, description = "Add each class answer's per-class scores (an ONNX classifier's probabilities; for ours, the share of the three votes)")),
    request_body(content = BatchRequest, description = "Rows of features, at most MAX_BATCH_ROWS"),
    responses(
        (status = 200, description = "One prediction per row, in order", body = BatchResponse),
        (status = 413, description = "Body over the limit, or more rows than MAX_BATCH_ROWS", body = ErrorBody),
        (status = 422, description = "Invalid rows; each error's loc holds the row index (the first 20 listed)", body = ValidationErrorBody),
        PredictionErrors,
    ),
    security((), ("api_key" = []))
)]
pub async fn predict_batch(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    _: Authorized,
    JsonBody(body): JsonBody,
) -> Result<Json<BatchResponse>, ApiError> {
    let with_scores = wants_scores(query.as_deref())?;
    let _slot = state.slots().take()?;
    predict_many(&state, &*state.model()?, &body, with_scores)
}

fn predict_many(
    state: &AppState,
    model: &ServedModel,
    body: &[u8],
    with_scores: bool,
) -> Result<Json<BatchResponse>, ApiError> {
    let values = features::parse_batch(
        model.features(),
        body,
        model.batch_rows.min(state.limits().batch_rows),
        model.model.nonnegative_features(),
    )?;
    let predictions = if with_scores {
        let answers = model
            .model
            .answers_with_scores(&values)
            .map_err(ApiError::Internal)?;
        model.count(&answers);
        answers
    } else {
        model.answers(&values)?
    };
    Ok(Json(BatchResponse { predictions }))
}

/// The model and version a `/models/{name}[/versions/{version}]/...` path names.
#[derive(Debug, serde::Deserialize)]
pub struct ModelPath {
    name: String,
    version: Option<String>,
}

impl ModelPath {
    fn resolve(&self, state: &AppState) -> Result<Arc<ServedModel>, ApiError> {
        state
            .registry()
            .get(&self.name, self.version.as_deref())
            .map_err(ApiError::Model)
    }
}

/// A path parameter that does not parse (never for these string routes, but answered as ours).
fn path_error(rejection: PathRejection) -> ApiError {
    ApiError::NotFound(rejection.body_text())
}

/// `POST /models/{name}[/versions/{version}]/predict`: `/predict` for that model, validated
/// against its own features (the OpenAPI document lists each model's).
pub async fn model_predict(
    State(state): State<AppState>,
    path: Result<Path<ModelPath>, PathRejection>,
    _: Authorized,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let model = path.map_err(path_error)?.resolve(&state)?;
    let _slot = state.slots().take()?;
    predict_one(&model, &body)
}

/// `POST /models/{name}[/versions/{version}]/predict/batch`.
pub async fn model_predict_batch(
    State(state): State<AppState>,
    path: Result<Path<ModelPath>, PathRejection>,
    RawQuery(query): RawQuery,
    _: Authorized,
    JsonBody(body): JsonBody,
) -> Result<Json<BatchResponse>, ApiError> {
    let model = path.map_err(path_error)?.resolve(&state)?;
    let with_scores = wants_scores(query.as_deref())?;
    let _slot = state.slots().take()?;
    predict_many(&state, &model, &body, with_scores)
}

/// The default model: name, version, features, labels, held-out metrics, artifact checksum.
#[utoipa::path(get, path = "/info", responses(
    (status = 200, body = InfoResponse),
    (status = 404, description = "Several models and no DEFAULT_MODEL", body = ErrorBody),
))]
pub async fn info(State(state): State<AppState>) -> Result<Json<InfoResponse>, ApiError> {
    Ok(Json(info_of(&*state.model()?)))
}

/// One model's `/info` (its latest version, or the one named).
#[utoipa::path(get, path = "/models/{name}", params(("name" = String, Path, description = "The model's name")), responses(
    (status = 200, body = InfoResponse),
    (status = 404, description = "Unknown model", body = ErrorBody),
    (status = 503, description = "The model has no version ready", body = ErrorBody),
))]
pub async fn model_info(
    State(state): State<AppState>,
    path: Result<Path<ModelPath>, PathRejection>,
) -> Result<Json<InfoResponse>, ApiError> {
    Ok(Json(info_of(&*path.map_err(path_error)?.resolve(&state)?)))
}

fn info_of(served: &ServedModel) -> InfoResponse {
    let model = &served.model;
    let (metrics, format_version, created_at, trained_with) = match model {
        Model::Native(m) => (
            Some(m.artifact.metrics.clone()),
            Some(m.artifact.format_version),
            Some(m.artifact.created_at.clone()),
            m.artifact.ml_serving_version.clone(),
        ),
        Model::Onnx(m) => {
            let meta = m.graph.metadata();
            (
                None,
                None,
                None,
                format!("{} {}", meta.producer_name, meta.producer_version)
                    .trim()
                    .to_string(),
            )
        }
    };
    InfoResponse {
        name: served.name.clone(),
        version: served.version.clone(),
        features: model.features().to_vec(),
        labels: model
            .classes()
            .into_iter()
            .enumerate()
            .map(|(i, label)| (i.to_string(), label))
            .collect(),
        metrics,
        artifact: ArtifactInfo {
            kind: model.kind().to_string(),
            path: model.path().display().to_string(),
            sha256: model.sha256().to_string(),
            format_version,
            created_at,
            loaded_at: served.loaded_at.clone(),
            trained_with,
        },
        sample: model.sample().to_vec(),
        ml_serving_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// Every model, its versions and state, and the repository's problems.
#[utoipa::path(get, path = "/models", responses((status = 200, body = ModelsResponse)))]
pub async fn models(State(state): State<AppState>) -> Json<ModelsResponse> {
    Json(listing(&state))
}

pub fn listing(state: &AppState) -> ModelsResponse {
    let registry = state.registry();
    let snapshot = registry.snapshot();
    ModelsResponse {
        default: registry.default_name().map(str::to_string),
        models: snapshot
            .models
            .iter()
            .map(|(name, entry)| ModelStatus {
                name: name.clone(),
                state: if entry.unloaded {
                    "UNLOADED"
                } else if entry.is_ready() {
                    "READY"
                } else {
                    "UNAVAILABLE"
                }
                .to_string(),
                latest: entry.latest().map(|m| m.version.clone()),
                versions: entry
                    .versions
                    .iter()
                    .map(|v| VersionStatus {
                        version: v.served.version.clone(),
                        kind: v.served.model.kind().to_string(),
                        path: v.served.model.path().display().to_string(),
                        sha256: v.served.model.sha256().to_string(),
                        loaded_at: v.served.loaded_at.clone(),
                        rss_bytes: v.rss_bytes,
                    })
                    .collect(),
                config: serde_json::to_value(&entry.config).unwrap_or_default(),
                problems: entry.problems.clone(),
            })
            .collect(),
        problems: snapshot.problems.clone(),
    }
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", responses((status = 200, body = HealthResponse)))]
pub async fn health() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".to_string(),
    })
}

/// Readiness: 200 while serving every model the configuration asks for, 503 once shutting
/// down or while one of them has no version loaded.
#[utoipa::path(
    get,
    path = "/ready",
    responses(
        (status = 200, description = "Ready", body = HealthResponse),
        (status = 503, description = "Shutting down, or a required model has no version loaded", body = HealthResponse),
    )
)]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<HealthResponse>) {
    if state.is_shutting_down() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(HealthResponse {
                status: "shutting down".to_string(),
            }),
        )
    } else if state.is_ready() {
        (
            StatusCode::OK,
            Json(HealthResponse {
                status: "ready".to_string(),
            }),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(HealthResponse {
                status: "a required model has no version loaded (see GET /models)".to_string(),
            }),
        )
    }
}

/// Prometheus metrics, text format.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics_handle().render(),
    )
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_string())
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// `?scores=true` (or `1`; `false`/`0`/absent: no scores); anything else is a 422 naming it.
fn wants_scores(query: Option<&str>) -> Result<bool, ApiError> {
    let mut scores = false;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let error = |kind: &str, msg: &str| {
            let key: String = key.chars().take(64).collect();
            ApiError::Validation(vec![crate::wire::FieldError {
                loc: vec![Loc::Key("query".to_string()), Loc::Key(key)],
                msg: msg.to_string(),
                kind: kind.to_string(),
            }])
        };
        match (key, value) {
            ("scores", "true" | "1") => scores = true,
            ("scores", "false" | "0") => scores = false,
            ("scores", _) => return Err(error("bool_parsing", "Input should be true or false")),
            _ => {
                return Err(error(
                    "extra_forbidden",
                    "Unknown query parameter; the only one is scores",
                ));
            }
        }
    }
    Ok(scores)
}

/// The error answers the named-field prediction routes share, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // never built: it only describes answers
pub enum PredictionErrors {
    #[response(status = 400, description = "Malformed JSON")]
    Malformed(ErrorBody),
    #[response(
        status = 401,
        description = "Missing or wrong API key (when API_KEY is set)"
    )]
    Unauthorized(ErrorBody),
    #[response(
        status = 408,
        description = "Slower than REQUEST_TIMEOUT_SECS (body included)"
    )]
    Timeout(ErrorBody),
    #[response(status = 415, description = "Not application/json")]
    UnsupportedMediaType(ErrorBody),
    #[response(
        status = 429,
        description = "MAX_IN_FLIGHT predictions already computing"
    )]
    Overloaded(ErrorBody),
}

/// Placeholder types for the OpenAPI document: the real schemas are built from the live
/// model's feature list (see `openapi.rs`).
#[derive(utoipa::ToSchema)]
pub struct PredictRequest;

#[derive(utoipa::ToSchema)]
pub struct BatchRequest;
