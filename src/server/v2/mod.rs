//! The Open Inference Protocol ("KServe V2") REST API over the same model as `/predict`: health,
//! server and model metadata, model readiness and inference, with V2 tensors and V2's
//! `{"error": "..."}` bodies. `V2Error` holds the one table of this API's statuses.
//!
//! Inputs come in either of two layouts: one tensor per feature, each of shape `[N]` or `[N, 1]`
//! (what the model metadata lists), or one tensor `"input-0"` of shape `[N, width]` whose columns
//! are the features in the metadata's order. Both take FP64 or FP32 data, nested or flat.

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::routing::{any, get, post};
use axum::{Extension, Json};

use super::error::ApiError;
use super::extract::{Authorized, JsonBody, Slots};
use super::state::{AppState, ServedModel};

/// The server's name in `GET /v2`.
pub const SERVER_NAME: &str = "ml-serving";
/// The model's `platform` (`<project>_<format>`, as the protocol names them).
pub const PLATFORM: &str = "ml-serving_linfa";
/// The name of the one-tensor input layout, `[N, width]` (KServe's and MLServer's usual name).
pub const BATCH_INPUT: &str = "input-0";

/// The data types the inputs accept; FP32 values are rounded to FP32 as the type says.
const INPUT_DATATYPES: [&str; 2] = ["FP64", "FP32"];

mod error;
mod tensors;
mod types;

use error::bad;
pub use error::{V2Error, V2ErrorBody, error_body};
use tensors::*;
pub use types::*;

/// The live model, if the path names it (and its version, when the path has one).
fn check_model(model: &ServedModel, name: &str, version: Option<&str>) -> Result<(), V2Error> {
    if name != model.name {
        return Err(V2Error::UnknownModel {
            name: name.to_string(),
            served: model.name.clone(),
        });
    }
    let served = &model.model.artifact.version;
    match version {
        Some(v) if v != served => Err(V2Error::UnknownVersion {
            name: name.to_string(),
            version: v.to_string(),
            served: served.clone(),
        }),
        _ => Ok(()),
    }
}

fn path_error(rejection: PathRejection) -> V2Error {
    bad(format!("bad path: {}", rejection.body_text()))
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/v2/health/live",
    tag = "v2",
    responses((status = 200, description = "Live", body = LiveResponse))
)]
pub async fn server_live() -> Json<LiveResponse> {
    Json(LiveResponse { live: true })
}

/// Readiness: 200 while serving, 503 once shutting down.
#[utoipa::path(
    get,
    path = "/v2/health/ready",
    tag = "v2",
    responses(
        (status = 200, description = "Ready", body = ReadyResponse),
        (status = 503, description = "Shutting down", body = ReadyResponse),
    )
)]
pub async fn server_ready(State(state): State<AppState>) -> (StatusCode, Json<ReadyResponse>) {
    let ready = state.is_ready();
    (ready_status(ready), Json(ReadyResponse { ready }))
}

fn ready_status(ready: bool) -> StatusCode {
    if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// The server's name, version and protocol extensions (none).
#[utoipa::path(
    get,
    path = "/v2",
    tag = "v2",
    responses((status = 200, body = ServerMetadata))
)]
pub async fn server_metadata() -> Json<ServerMetadata> {
    Json(ServerMetadata {
        name: SERVER_NAME.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        extensions: Vec::new(),
    })
}

fn metadata(state: &AppState, name: &str, version: Option<&str>) -> Result<ModelMetadata, V2Error> {
    let model = state.model();
    check_model(&model, name, version)?;
    let artifact = &model.model.artifact;
    let features = model.features();
    Ok(ModelMetadata {
        name: model.name.clone(),
        versions: vec![artifact.version.clone()],
        platform: PLATFORM.to_string(),
        inputs: features
            .iter()
            .map(|f| TensorMetadata {
                name: f.clone(),
                datatype: INPUT_DATATYPES[0].to_string(),
                shape: vec![-1],
            })
            .collect(),
        outputs: Output::ALL
            .iter()
            .map(|o| TensorMetadata {
                name: o.name().to_string(),
                datatype: o.datatype().to_string(),
                shape: vec![-1],
            })
            .collect(),
        parameters: ModelParameters {
            batch_input_name: BATCH_INPUT.to_string(),
            batch_input_shape: format!("[-1, {}]", features.len()),
            input_datatypes: INPUT_DATATYPES.join(" "),
            max_batch_rows: state.limits().batch_rows,
            label_0: artifact.labels.negative.clone(),
            label_1: artifact.labels.positive.clone(),
        },
    })
}

/// The model's inputs, outputs and versions.
#[utoipa::path(
    get,
    path = "/v2/models/{name}",
    tag = "v2",
    params(("name" = String, Path, description = "The served model name (MODEL_NAME)")),
    responses(
        (status = 200, body = ModelMetadata),
        (status = 404, description = "Unknown model", body = V2ErrorBody),
    )
)]
pub async fn model_metadata(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ModelMetadata>, V2Error> {
    let Path(name) = path.map_err(path_error)?;
    metadata(&state, &name, None).map(Json)
}

/// The model's inputs, outputs and versions, for one version.
#[utoipa::path(
    get,
    path = "/v2/models/{name}/versions/{version}",
    tag = "v2",
    params(
        ("name" = String, Path, description = "The served model name (MODEL_NAME)"),
        ("version" = String, Path, description = "The artifact's version"),
    ),
    responses(
        (status = 200, body = ModelMetadata),
        (status = 404, description = "Unknown model or version", body = V2ErrorBody),
    )
)]
pub async fn model_version_metadata(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<ModelMetadata>, V2Error> {
    let Path((name, version)) = path.map_err(path_error)?;
    metadata(&state, &name, Some(&version)).map(Json)
}

fn model_readiness(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<(StatusCode, Json<ModelReadyResponse>), V2Error> {
    check_model(&state.model(), name, version)?;
    let ready = state.is_ready();
    Ok((
        ready_status(ready),
        Json(ModelReadyResponse {
            name: name.to_string(),
            ready,
        }),
    ))
}

/// The model's readiness: 200 while serving, 503 once shutting down.
#[utoipa::path(
    get,
    path = "/v2/models/{name}/ready",
    tag = "v2",
    params(("name" = String, Path, description = "The served model name (MODEL_NAME)")),
    responses(
        (status = 200, description = "Ready", body = ModelReadyResponse),
        (status = 404, description = "Unknown model", body = V2ErrorBody),
        (status = 503, description = "Shutting down", body = ModelReadyResponse),
    )
)]
pub async fn model_ready(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<(StatusCode, Json<ModelReadyResponse>), V2Error> {
    let Path(name) = path.map_err(path_error)?;
    model_readiness(&state, &name, None)
}

/// One version's readiness: 200 while serving, 503 once shutting down.
#[utoipa::path(
    get,
    path = "/v2/models/{name}/versions/{version}/ready",
    tag = "v2",
    params(
        ("name" = String, Path, description = "The served model name (MODEL_NAME)"),
        ("version" = String, Path, description = "The artifact's version"),
    ),
    responses(
        (status = 200, description = "Ready", body = ModelReadyResponse),
        (status = 404, description = "Unknown model or version", body = V2ErrorBody),
        (status = 503, description = "Shutting down", body = ModelReadyResponse),
    )
)]
pub async fn model_version_ready(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(StatusCode, Json<ModelReadyResponse>), V2Error> {
    let Path((name, version)) = path.map_err(path_error)?;
    model_readiness(&state, &name, Some(&version))
}

fn json_error(err: &serde_json::Error) -> V2Error {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => bad(format!("Malformed JSON: {err}")),
        Category::Data => bad(format!("Not a valid inference request: {err}")),
    }
}

fn run_inference(
    state: &AppState,
    name: &str,
    version: Option<&str>,
    slots: &Slots,
    body: Result<JsonBody, ApiError>,
) -> Result<Json<InferenceResponse>, V2Error> {
    let model = state.model();
    check_model(&model, name, version)?;
    let JsonBody(bytes) = body?;
    let _slot = slots.take()?;
    let request: InferenceRequest = serde_json::from_slice(&bytes).map_err(|e| json_error(&e))?;
    let selected = select_outputs(&request)?;
    let values = read_inputs(model.features(), &request.inputs, state.limits().batch_rows)?;
    let votes = model.votes(&values)?;
    let answers: Vec<_> = votes.iter().map(|v| model.answer(v.majority())).collect();
    let rows = votes.len() as u64;
    let int = |output: Output, values: Vec<i64>| ResponseOutput {
        name: output.name().to_string(),
        datatype: output.datatype().to_string(),
        shape: vec![rows],
        data: TensorData::Int64(values),
    };
    let vote = |pick: fn(&crate::pipeline::Votes) -> bool| -> Vec<i64> {
        votes.iter().map(|v| i64::from(pick(v))).collect()
    };
    let outputs = selected
        .into_iter()
        .map(|output| match output {
            Output::Predict => int(
                output,
                answers.iter().map(|a| i64::from(a.prediction)).collect(),
            ),
            Output::Label => ResponseOutput {
                name: output.name().to_string(),
                datatype: output.datatype().to_string(),
                shape: vec![rows],
                data: TensorData::Bytes(answers.iter().map(|a| a.label.clone()).collect()),
            },
            Output::LogisticVote => int(output, vote(|v| v.logistic)),
            Output::TreeVote => int(output, vote(|v| v.tree)),
            Output::SvmVote => int(output, vote(|v| v.svm)),
        })
        .collect();
    Ok(Json(InferenceResponse {
        model_name: model.name.clone(),
        model_version: model.model.artifact.version.clone(),
        id: request.id,
        outputs,
    }))
}

/// Predict a batch from V2 tensors: one tensor per feature (`[N]` or `[N, 1]`) or one tensor
/// `input-0` of shape `[N, width]`, FP64 or FP32, data flat or nested, row-major.
#[utoipa::path(
    post,
    path = "/v2/models/{name}/infer",
    tag = "v2",
    params(("name" = String, Path, description = "The served model name (MODEL_NAME)")),
    request_body(content = InferenceRequest, description = "V2 input tensors, at most MAX_BATCH_ROWS rows"),
    responses(
        (status = 200, description = "The chosen outputs, one element per row", body = InferenceResponse),
        (status = 400, description = "Malformed JSON, or a wrong input: name, datatype, shape, data length or value", body = V2ErrorBody),
        (status = 401, description = "Missing or wrong API key (when API_KEY is set)", body = V2ErrorBody),
        (status = 404, description = "Unknown model", body = V2ErrorBody),
        (status = 408, description = "Slower than the request timeout", body = V2ErrorBody),
        (status = 413, description = "Body over the limit, or more rows than MAX_BATCH_ROWS", body = V2ErrorBody),
        (status = 415, description = "Not application/json", body = V2ErrorBody),
        (status = 429, description = "Too many requests in flight", body = V2ErrorBody),
    ),
    security((), ("api_key" = []))
)]
pub async fn infer(
    State(state): State<AppState>,
    Extension(slots): Extension<Slots>,
    _: Authorized,
    path: Result<Path<String>, PathRejection>,
    body: Result<JsonBody, ApiError>,
) -> Result<Json<InferenceResponse>, V2Error> {
    let Path(name) = path.map_err(path_error)?;
    run_inference(&state, &name, None, &slots, body)
}

/// Predict a batch from V2 tensors, naming the model's version.
#[utoipa::path(
    post,
    path = "/v2/models/{name}/versions/{version}/infer",
    tag = "v2",
    params(
        ("name" = String, Path, description = "The served model name (MODEL_NAME)"),
        ("version" = String, Path, description = "The artifact's version"),
    ),
    request_body(content = InferenceRequest, description = "V2 input tensors, at most MAX_BATCH_ROWS rows"),
    responses(
        (status = 200, description = "The chosen outputs, one element per row", body = InferenceResponse),
        (status = 400, description = "Malformed JSON, or a wrong input: name, datatype, shape, data length or value", body = V2ErrorBody),
        (status = 401, description = "Missing or wrong API key (when API_KEY is set)", body = V2ErrorBody),
        (status = 404, description = "Unknown model or version", body = V2ErrorBody),
        (status = 408, description = "Slower than the request timeout", body = V2ErrorBody),
        (status = 413, description = "Body over the limit, or more rows than MAX_BATCH_ROWS", body = V2ErrorBody),
        (status = 415, description = "Not application/json", body = V2ErrorBody),
        (status = 429, description = "Too many requests in flight", body = V2ErrorBody),
    ),
    security((), ("api_key" = []))
)]
pub async fn infer_version(
    State(state): State<AppState>,
    Extension(slots): Extension<Slots>,
    _: Authorized,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<JsonBody, ApiError>,
) -> Result<Json<InferenceResponse>, V2Error> {
    let Path((name, version)) = path.map_err(path_error)?;
    run_inference(&state, &name, Some(&version), &slots, body)
}

async fn unknown_route(uri: Uri) -> V2Error {
    V2Error::UnknownRoute(uri.path().to_string())
}

/// Each V2 route's own 405 (the server-wide one answers `{"detail"}`); axum adds `Allow`.
async fn method_not_allowed() -> V2Error {
    V2Error::Server(ApiError::MethodNotAllowed)
}

// ------------------------------------------------------------------ routers

/// The V2 routes anyone may call: health, metadata, readiness; any other `/v2/...` path is a
/// V2 404.
pub fn open_routes() -> Router<AppState> {
    Router::new()
        .route("/v2", get(server_metadata).fallback(method_not_allowed))
        .route(
            "/v2/health/live",
            get(server_live).fallback(method_not_allowed),
        )
        .route(
            "/v2/health/ready",
            get(server_ready).fallback(method_not_allowed),
        )
        .route(
            "/v2/models/{name}",
            get(model_metadata).fallback(method_not_allowed),
        )
        .route(
            "/v2/models/{name}/versions/{version}",
            get(model_version_metadata).fallback(method_not_allowed),
        )
        .route(
            "/v2/models/{name}/ready",
            get(model_ready).fallback(method_not_allowed),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_version_ready).fallback(method_not_allowed),
        )
        .route("/v2/{*rest}", any(unknown_route))
}

/// The V2 inference routes, to be put behind the same guards as `/predict` and wrapped in
/// [`error_body`].
pub fn infer_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v2/models/{name}/infer",
            post(infer).fallback(method_not_allowed),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(infer_version).fallback(method_not_allowed),
        )
}
