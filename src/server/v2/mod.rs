//! The Open Inference Protocol ("KServe V2") REST API over the same model as `/predict`: health,
//! server and model metadata, model readiness and inference, with V2 tensors and V2's
//! `{"error": "..."}` bodies. `V2Error` holds the one table of this API's statuses.
//!
//! Inputs come in either of two layouts: one tensor per feature, each of shape `[N]` or `[N, 1]`
//! (what the model metadata lists), or one tensor `"input-0"` of shape `[N, width]` whose columns
//! are the features in the metadata's order. Both take FP64, FP32 or integer data, as JSON
//! (nested or flat) or as binary tensor data; outputs are JSON or binary, as the request asks.
//! The reading of tensors and the computing of outputs are shared with the gRPC service.

use std::io::Write;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{any, get, post};

use super::error::ApiError;
use super::registry::LookupError;
use super::state::{AppState, OneRowPieces, ServedModel};
use crate::pipeline::Votes;
use std::sync::Arc;

/// The server's name in `GET /v2`.
pub const SERVER_NAME: &str = "ml-serving";
/// The model's `platform` (`<project>_<format>`, as the protocol names them).
pub const PLATFORM: &str = "ml-serving_linfa";
/// The name of the one-tensor input layout, `[N, width]` (KServe's and MLServer's usual name).
pub const BATCH_INPUT: &str = "input-0";

/// The protocol extensions this server implements (`GET /v2`, gRPC `ServerMetadata`).
pub const EXTENSIONS: [&str; 2] = ["binary_tensor_data", "model_repository"];

/// Answers smaller than this are not worth gzipping.
const GZIP_MIN_BYTES: usize = 1024;

mod binary;
mod body;
mod error;
mod tensors;
mod types;

pub use crate::model::OutputData;
pub use binary::raw;
pub use body::HEADER_LENGTH;
use body::{V2Authorized, V2Body};
use error::bad;
pub use error::{V2Error, V2ErrorBody};
use tensors::select_outputs;
pub use tensors::{Datatype, ReadRules, Source, Tensor, output_named, output_shape, read_inputs};
pub use types::*;

/// The model the path names (its latest version unless the path names one).
pub fn lookup(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<Arc<ServedModel>, V2Error> {
    state
        .registry()
        .get(name, version)
        .map_err(|e| V2Error::Server(ApiError::Model(e)))
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

/// The server's name, version and protocol extensions (`binary_tensor_data`).
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
        extensions: EXTENSIONS.map(str::to_string).to_vec(),
    })
}

pub fn metadata(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<ModelMetadata, V2Error> {
    let model = lookup(state, name, version)?;
    let features = model.features();
    let classes = model.model.classes();
    let versions = state
        .registry()
        .snapshot()
        .models
        .get(name)
        .map(|m| {
            m.versions
                .iter()
                .map(|v| v.served.version.clone())
                .collect()
        })
        .unwrap_or_default();
    Ok(ModelMetadata {
        name: model.name.clone(),
        versions,
        platform: PLATFORM.to_string(),
        inputs: features
            .iter()
            .map(|f| TensorMetadata {
                name: f.clone(),
                datatype: Datatype::Fp64.name().to_string(),
                shape: vec![-1],
            })
            .collect(),
        outputs: model
            .model
            .outputs()
            .iter()
            .map(|o| TensorMetadata {
                name: o.name.clone(),
                datatype: o.datatype.name().to_string(),
                shape: match o.columns {
                    None => vec![-1],
                    Some(k) => vec![-1, i64::try_from(k).unwrap_or(i64::MAX)],
                },
            })
            .collect(),
        parameters: ModelParameters {
            batch_input_name: BATCH_INPUT.to_string(),
            batch_input_shape: format!("[-1, {}]", features.len()),
            input_datatypes: Datatype::names(),
            max_batch_rows: model.batch_rows.min(state.limits().batch_rows),
            label_0: classes.first().cloned(),
            label_1: classes.get(1).cloned(),
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
    let ready = match lookup(state, name, version) {
        Ok(_) => !state.is_shutting_down(),
        Err(V2Error::Server(ApiError::Model(LookupError::Unavailable { .. }))) => false,
        Err(e) => return Err(e),
    };
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

/// The outputs at the indices `outputs` (into the model's outputs), for the rows in `values`
/// (row-major, the model's width), counted in `predictions_total` as the named routes are.
pub fn predict_outputs(
    model: &ServedModel,
    values: &[f64],
    outputs: &[usize],
) -> Result<Vec<OutputData>, V2Error> {
    let (data, answers) = model
        .model
        .run(values, outputs)
        .map_err(|e| V2Error::Server(ApiError::Internal(e)))?;
    model.count(&answers);
    Ok(data)
}

fn run_inference(
    state: &AppState,
    name: &str,
    version: Option<&str>,
    body: Result<V2Body, V2Error>,
) -> Result<Response, V2Error> {
    let model = lookup(state, name, version)?;
    let body = body?;
    // The slot is taken once the body is in: a client still uploading holds none.
    let _slot = state.slots().take()?;
    let (header, binary) = binary::split(&body.bytes, body.header_length)?;
    let request: InferenceRequest = serde_json::from_slice(header).map_err(|e| json_error(&e))?;
    let specs = &model.outputs;
    let selected = select_outputs(&request, specs)?;
    let tensors = binary::tensors(&request, binary, body.header_length)?;
    let values = read_inputs(
        model.features(),
        &tensors,
        ReadRules {
            max_rows: model.batch_rows.min(state.limits().batch_rows),
            nonnegative: model.model.nonnegative_features(),
        },
    )?;
    let rows = values.len() / model.features().len();
    if rows == 1
        && request.id.is_none()
        && let Some(answer) = one_row_answer(&model, &selected, &values)?
    {
        return Ok(finish(answer, None, body.gzip_answer));
    }
    let wanted: Vec<usize> = selected.iter().map(|(o, _)| *o).collect();
    let data = predict_outputs(&model, &values, &wanted)?;
    let (json, tail) = response_json(&model, selected, data, rows as u64, request.id)?;
    Ok(finish(json, tail, body.gzip_answer))
}

/// Our model's answer to one row when every output wanted is JSON: its pieces, serialised
/// once by [`response_output`] for each value an output can have, put together in the order
/// asked (the same bytes as [`response_json`] writes), counted as the general path counts;
/// `None` for any other request or model.
fn one_row_answer(
    model: &ServedModel,
    selected: &[(usize, bool)],
    row: &[f64],
) -> Result<Option<Vec<u8>>, V2Error> {
    let crate::model::Model::Native(native) = &model.model else {
        return Ok(None);
    };
    if selected
        .iter()
        .any(|&(o, binary)| binary || o >= model.outputs.len())
    {
        return Ok(None);
    }
    let pipeline = &native.artifact.pipeline;
    let internal =
        |e: crate::pipeline::PipelineError| V2Error::Server(ApiError::Internal(e.to_string()));
    // The SVM only when a vote is asked for, as the general path.
    let votes = if selected.iter().any(|&(o, _)| o >= 2) {
        pipeline.votes_row(row).map_err(internal)?
    } else {
        let decision = pipeline.predict_row(row).map_err(internal)?;
        Votes {
            logistic: decision,
            tree: decision,
            svm: decision,
        }
    };
    let decision = votes.majority();
    let pieces = model
        .v2_one_row
        .get_or_init(|| one_row_pieces(model, native));
    let mut json = Vec::with_capacity(256);
    json.extend_from_slice(&pieces.head);
    for (i, &(output, _)) in selected.iter().enumerate() {
        let value = match output {
            0 | 1 => decision,
            2 => votes.logistic,
            3 => votes.tree,
            _ => votes.svm,
        };
        if i > 0 {
            json.push(b',');
        }
        json.extend_from_slice(&pieces.outputs[output][usize::from(value)]);
    }
    json.extend_from_slice(b"]}");
    model.count_decision(decision);
    Ok(Some(json))
}

fn one_row_pieces(model: &ServedModel, native: &crate::artifact::LoadedModel) -> OneRowPieces {
    let response = InferenceResponse {
        model_name: &model.name,
        model_version: &model.version,
        id: None,
        outputs: Vec::new(),
    };
    let mut head = serde_json::to_vec(&response).expect("plain data");
    // `...,"outputs":[]}` without its `]}`.
    head.truncate(head.len() - 2);
    // Our model's outputs: predict, label and the three votes.
    let outputs = (0..model.outputs.len())
        .map(|output| {
            [false, true].map(|value| {
                let votes = Votes {
                    logistic: value,
                    tree: value,
                    svm: value,
                };
                let data = native.outputs_of(&[votes], &[value], &[output]);
                let data = data.into_iter().next().expect("one output");
                let piece = response_output(&model.outputs[output], false, data, 1, &mut None);
                serde_json::to_vec(&piece).expect("plain data")
            })
        })
        .collect();
    OneRowPieces { head, outputs }
}

/// The answer's JSON, and the binary data to follow it when an output is binary.
fn response_json(
    model: &ServedModel,
    selected: Vec<(usize, bool)>,
    data: Vec<OutputData>,
    rows: u64,
    id: Option<String>,
) -> Result<(Vec<u8>, Option<Vec<u8>>), V2Error> {
    let specs = &model.outputs;
    let mut tail: Option<Vec<u8>> = None;
    let outputs = selected
        .into_iter()
        .zip(data)
        .map(|((output, binary), data)| {
            response_output(&specs[output], binary, data, rows, &mut tail)
        })
        .collect();
    let response = InferenceResponse {
        model_name: &model.name,
        model_version: &model.version,
        id,
        outputs,
    };
    // Room for a few rows' answer at once, rather than growing the buffer four times.
    let mut json = Vec::with_capacity(512);
    serde_json::to_writer(&mut json, &response)
        .map_err(|e| V2Error::Server(ApiError::Internal(format!("encoding the answer: {e}"))))?;
    Ok((json, tail))
}

/// One output of the answer: its data as JSON, or (when `binary`) appended to `tail`.
fn response_output<'a>(
    spec: &'a crate::model::OutputSpec,
    binary: bool,
    data: OutputData,
    rows: u64,
    tail: &mut Option<Vec<u8>>,
) -> ResponseOutput<'a> {
    let (parameters, data) = if binary {
        let raw = binary::raw(&data);
        let mut parameters = serde_json::Map::new();
        parameters.insert("binary_data_size".to_string(), raw.len().into());
        tail.get_or_insert_with(Vec::new).extend_from_slice(&raw);
        (Some(parameters), None)
    } else {
        let data = match data {
            OutputData::Int64(v) => TensorData::Int64(v),
            OutputData::Fp32(v) => TensorData::Fp32(v),
            OutputData::Bytes(v) => TensorData::Bytes(v),
        };
        (None, Some(data))
    };
    ResponseOutput {
        name: &spec.name,
        datatype: spec.datatype.name(),
        shape: output_shape(spec, rows),
        parameters,
        data,
    }
}

/// The answer: JSON, or (when any output is binary) the JSON header then the binary data, with
/// `Inference-Header-Content-Length`; gzipped when the client accepts it (`gzip`) and it is
/// worth it.
fn finish(mut body: Vec<u8>, tail: Option<Vec<u8>>, gzip: bool) -> Response {
    let mut headers = axum::http::HeaderMap::with_capacity(4);
    if let Some(tail) = tail {
        headers.insert(HEADER_LENGTH, HeaderValue::from(body.len()));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        body.extend_from_slice(&tail);
    } else {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if gzip && body.len() >= GZIP_MIN_BYTES {
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 4),
            flate2::Compression::fast(),
        );
        let compressed = encoder.write_all(&body).and_then(|()| encoder.finish());
        if let Ok(compressed) = compressed {
            body = compressed;
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
    }
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    let mut answer = Response::new(Body::from(body));
    *answer.headers_mut() = headers;
    answer
}

/// Predict a batch from V2 tensors: one tensor per feature (`[N]` or `[N, 1]`) or one tensor
/// `input-0` of shape `[N, width]`, FP64, FP32 or an integer type, row-major: JSON data, flat
/// or nested, or binary tensor data (a JSON header of `Inference-Header-Content-Length` bytes,
/// then each binary input's `binary_data_size` bytes, little-endian). The body may be gzip- or
/// deflate-encoded; the answer is gzipped when `Accept-Encoding` allows it.
#[utoipa::path(
    post,
    path = "/v2/models/{name}/infer",
    tag = "v2",
    params(("name" = String, Path, description = "The served model name (MODEL_NAME)")),
    request_body(content = InferenceRequest, description = "V2 input tensors, at most MAX_BATCH_ROWS rows"),
    responses(
        (status = 200, description = "The chosen outputs, one element per row", body = InferenceResponse),
        (status = 404, description = "Unknown model", body = V2ErrorBody),
        InferErrors,
    ),
    security((), ("api_key" = []))
)]
pub async fn infer(
    State(state): State<AppState>,
    _: V2Authorized,
    path: Result<Path<String>, PathRejection>,
    body: Result<V2Body, V2Error>,
) -> Result<Response, V2Error> {
    let Path(name) = path.map_err(path_error)?;
    run_inference(&state, &name, None, body)
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
        (status = 404, description = "Unknown model or version", body = V2ErrorBody),
        InferErrors,
    ),
    security((), ("api_key" = []))
)]
pub async fn infer_version(
    State(state): State<AppState>,
    _: V2Authorized,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<V2Body, V2Error>,
) -> Result<Response, V2Error> {
    let Path((name, version)) = path.map_err(path_error)?;
    run_inference(&state, &name, Some(&version), body)
}

async fn unknown_route(uri: Uri) -> V2Error {
    V2Error::UnknownRoute(uri.path().to_string())
}

/// Each V2 route's own 405 (the server-wide one answers `{"detail"}`); axum adds `Allow`.
async fn method_not_allowed() -> V2Error {
    V2Error::Server(ApiError::MethodNotAllowed)
}

/// The error answers both inference routes share (each adds its own 404), for the OpenAPI
/// document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // never built: it only describes answers
pub enum InferErrors {
    #[response(
        status = 400,
        description = "Malformed JSON, a wrong input (name, datatype, shape, data length or value) or a wrong binary layout (header length, binary_data_size)"
    )]
    BadRequest(V2ErrorBody),
    #[response(
        status = 401,
        description = "Missing or wrong API key (when API_KEY is set)"
    )]
    Unauthorized(V2ErrorBody),
    #[response(status = 408, description = "Slower than the request timeout")]
    Timeout(V2ErrorBody),
    #[response(
        status = 413,
        description = "Body over the limit (after inflation), or more rows than MAX_BATCH_ROWS"
    )]
    TooLarge(V2ErrorBody),
    #[response(
        status = 415,
        description = "A Content-Type other than JSON or application/octet-stream, or a Content-Encoding other than gzip or deflate"
    )]
    UnsupportedMediaType(V2ErrorBody),
    #[response(
        status = 429,
        description = "MAX_IN_FLIGHT predictions already computing"
    )]
    Overloaded(V2ErrorBody),
}

// ------------------------------------------------------- repository extension

/// One row of the repository index: a served version, or a model with none.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct IndexEntry {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `READY`, `UNAVAILABLE` or `UNLOADED`.
    pub state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// The repository index request: `{"ready": true}` lists only what is ready.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexRequest {
    #[serde(default)]
    pub ready: bool,
}

/// Every model and version in the repository and its state (the V2 repository extension).
#[utoipa::path(
    post,
    path = "/v2/repository/index",
    tag = "v2",
    request_body(content = Option<IndexRequest>, description = "Optional: {\"ready\": true}"),
    responses(
        (status = 200, body = [IndexEntry]),
        (status = 400, description = "Not an index request", body = V2ErrorBody),
    )
)]
pub async fn repository_index(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<Vec<IndexEntry>>, V2Error> {
    let request: IndexRequest = if body.iter().all(u8::is_ascii_whitespace) {
        IndexRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| json_error(&e))?
    };
    let snapshot = state.registry().snapshot();
    let mut index = Vec::new();
    for (name, entry) in &snapshot.models {
        for v in &entry.versions {
            index.push(IndexEntry {
                name: name.clone(),
                version: Some(v.served.version.clone()),
                state: "READY".to_string(),
                reason: String::new(),
            });
        }
        if entry.versions.is_empty() && !request.ready {
            index.push(IndexEntry {
                name: name.clone(),
                version: None,
                state: if entry.unloaded {
                    "UNLOADED"
                } else {
                    "UNAVAILABLE"
                }
                .to_string(),
                reason: entry.problems.join("; "),
            });
        }
    }
    Ok(Json(index))
}

/// Loads (or reloads) one model from the repository now; off unless `REPOSITORY_CONTROL`.
#[utoipa::path(
    post,
    path = "/v2/repository/models/{name}/load",
    tag = "v2",
    params(("name" = String, Path, description = "A model directory of the repository")),
    responses(
        (status = 200, description = "Loaded: at least one version serves"),
        (status = 400, description = "It could not be loaded (the reasons, naming paths), or REPOSITORY_CONTROL is off", body = V2ErrorBody),
        (status = 401, description = "Missing or wrong API key (when API_KEY is set)", body = V2ErrorBody),
    ),
    security((), ("api_key" = []))
)]
pub async fn repository_load(
    State(state): State<AppState>,
    _: V2Authorized,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<serde_json::Value>, V2Error> {
    let Path(name) = path.map_err(path_error)?;
    repository_control(state, name, true).await
}

/// Stops serving one model (requests under way finish); off unless `REPOSITORY_CONTROL`.
#[utoipa::path(
    post,
    path = "/v2/repository/models/{name}/unload",
    tag = "v2",
    params(("name" = String, Path, description = "A model of the server")),
    responses(
        (status = 200, description = "Unloaded"),
        (status = 400, description = "Unknown model, or REPOSITORY_CONTROL is off", body = V2ErrorBody),
        (status = 401, description = "Missing or wrong API key (when API_KEY is set)", body = V2ErrorBody),
    ),
    security((), ("api_key" = []))
)]
pub async fn repository_unload(
    State(state): State<AppState>,
    _: V2Authorized,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<serde_json::Value>, V2Error> {
    let Path(name) = path.map_err(path_error)?;
    repository_control(state, name, false).await
}

async fn repository_control(
    state: AppState,
    name: String,
    load: bool,
) -> Result<Json<serde_json::Value>, V2Error> {
    if !state.control_enabled() {
        return Err(bad(
            "the repository load and unload calls are off; start the server with REPOSITORY_CONTROL=true",
        ));
    }
    if !crate::repository::valid_model_name(&name) {
        return Err(bad(
            "not a valid model name (1 to 64 of A-Z, a-z, 0-9, '_', '-', '.')",
        ));
    }
    let worker = state.clone();
    let target = name.clone();
    let outcome = tokio::task::spawn_blocking(move || worker.registry().control(&target, load))
        .await
        .map_err(|e| V2Error::Server(ApiError::Internal(format!("the load task: {e}"))))?;
    super::reload::record(&outcome, if load { "load" } else { "unload" });
    outcome.map_err(|e| bad(e.to_string()))?;
    if load {
        let snapshot = state.registry().snapshot();
        let entry = snapshot.models.get(&name);
        if !entry.is_some_and(|m| m.is_ready()) {
            let why = entry.map(|m| m.problems.join("; ")).unwrap_or_default();
            return Err(bad(format!("model {name:?} could not be loaded: {why}")));
        }
    }
    Ok(Json(serde_json::json!({})))
}

// ------------------------------------------------------------------ routers

/// The V2 routes: health, metadata, readiness, inference (behind the same timeout as
/// `/predict`), repository control; any other `/v2/...` path is a V2 404.
pub(super) fn routes(routes: super::Routes) -> super::Routes {
    routes
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
        .route(
            "/v2/models/{name}/infer",
            post(infer).fallback(method_not_allowed),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(infer_version).fallback(method_not_allowed),
        )
        .route(
            "/v2/repository/index",
            post(repository_index).fallback(method_not_allowed),
        )
        .route(
            "/v2/repository/models/{name}/load",
            post(repository_load).fallback(method_not_allowed),
        )
        .route(
            "/v2/repository/models/{name}/unload",
            post(repository_unload).fallback(method_not_allowed),
        )
        .route("/v2/{*rest}", any(unknown_route))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::{DEFAULT_MAX_MODEL_BYTES, DEFAULT_MODEL_PATH};

    fn bundled() -> ServedModel {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODEL_PATH);
        let model = crate::model::Model::load(&path, DEFAULT_MAX_MODEL_BYTES).unwrap();
        ServedModel::new(model, None)
    }

    /// On rows all over the training range (some cells missing), for several choices of
    /// outputs, the one-row answer is, byte for byte, the one the general path serialises;
    /// and it is given only when every output wanted is JSON.
    #[test]
    fn the_one_row_answer_is_the_general_answer() {
        let model = bundled();
        let crate::model::Model::Native(native) = &model.model else {
            panic!("the bundled model is ours");
        };
        let (lo, hi) = (
            &native.artifact.pipeline.scaler.min,
            &native.artifact.pipeline.scaler.max,
        );
        let choices: [&[usize]; 5] = [&[0, 1, 2, 3, 4], &[0, 1], &[1], &[4, 0, 2], &[3, 1, 0]];
        let mut state = 0x853c_49e6_748f_ea9b_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..5_000 {
            let row: Vec<f64> = (0..lo.len())
                .map(|j| {
                    if next() < 0.02 {
                        f64::NAN
                    } else {
                        lo[j] + (hi[j] - lo[j]) * (next() * 2.0 - 0.5)
                    }
                })
                .collect();
            let wanted = choices[i % choices.len()];
            let selected: Vec<(usize, bool)> = wanted.iter().map(|&o| (o, false)).collect();
            let fast = one_row_answer(&model, &selected, &row).unwrap().unwrap();
            let data = predict_outputs(&model, &row, wanted).unwrap();
            let (general, tail) = response_json(&model, selected, data, 1, None).unwrap();
            assert!(tail.is_none());
            assert_eq!(
                std::str::from_utf8(&fast).unwrap(),
                std::str::from_utf8(&general).unwrap(),
                "{row:?}"
            );
            if wanted.len() == 5 {
                seen.insert(fast);
            }
        }
        // The votes are not always unanimous: the pieces are put together in many ways.
        assert!(seen.len() >= 4, "{} different answers", seen.len());
        let row = native.artifact.sample.clone();
        let binary = [(0, true), (1, false)];
        assert!(one_row_answer(&model, &binary, &row).unwrap().is_none());
    }
}
