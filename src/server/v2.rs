//! The Open Inference Protocol ("KServe V2") REST API over the same model as `/predict`: health,
//! server and model metadata, model readiness and inference, with V2 tensors and V2's
//! `{"error": "..."}` bodies. `V2Error` holds the one table of this API's statuses.
//!
//! Inputs come in either of two layouts: one tensor per feature, each of shape `[N]` or `[N, 1]`
//! (what the model metadata lists), or one tensor `"input-0"` of shape `[N, width]` whose columns
//! are the features in the metadata's order. Both take FP64 or FP32 data, nested or flat.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::wire::ErrorBody;

use super::error::ApiError;
use super::extract::{Authorized, JsonBody};
use super::state::{AppState, ServedModel};

/// The server's name in `GET /v2`.
pub const SERVER_NAME: &str = "ml-serving";
/// The model's `platform` (`<project>_<format>`, as the protocol names them).
pub const PLATFORM: &str = "ml-serving_linfa";
/// The name of the one-tensor input layout, `[N, width]` (KServe's and MLServer's usual name).
pub const BATCH_INPUT: &str = "input-0";

/// The data types the inputs accept; FP32 values are rounded to FP32 as the type says.
const INPUT_DATATYPES: [&str; 2] = ["FP64", "FP32"];

// ------------------------------------------------------------------ errors

/// Every error the V2 routes answer, as `{"error": "..."}`.
#[derive(Debug)]
pub enum V2Error {
    /// Not a valid inference request for this model; the message says which input and element.
    BadRequest(String),
    /// The path names a model this server does not serve.
    UnknownModel { name: String, served: String },
    /// The model exists, the version does not.
    UnknownVersion {
        name: String,
        version: String,
        served: String,
    },
    /// No V2 route has this path.
    UnknownRoute(String),
    /// More rows than `MAX_BATCH_ROWS`: 413, as on `/predict/batch`.
    TooManyRows { rows: usize, max: usize },
    /// An error the rest of the server also answers (415, 413 body limit, 500): its status.
    Server(ApiError),
}

impl V2Error {
    /// The only table of the V2 API's statuses.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::UnknownModel { .. } | Self::UnknownVersion { .. } | Self::UnknownRoute(_) => {
                StatusCode::NOT_FOUND
            }
            Self::TooManyRows { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Server(e) => e.status(),
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::BadRequest(m) => m.clone(),
            Self::UnknownModel { name, served } => {
                format!("Unknown model {name:?}: this server serves {served:?}")
            }
            Self::UnknownVersion {
                name,
                version,
                served,
            } => format!("Model {name:?} has no version {version:?}; its version is {served:?}"),
            Self::UnknownRoute(path) => format!("Not Found: {path}"),
            Self::TooManyRows { rows, max } => {
                format!("Too many rows: the inputs hold {rows} rows, a request at most {max}")
            }
            Self::Server(e) => e.message(),
        }
    }
}

impl From<ApiError> for V2Error {
    fn from(err: ApiError) -> Self {
        Self::Server(err)
    }
}

fn bad(message: impl Into<String>) -> V2Error {
    V2Error::BadRequest(message.into())
}

/// The protocol's error object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct V2ErrorBody {
    /// What is wrong, naming the input and element when there is one.
    #[schema(example = "input \"area_se\": row 2 is -1, but a feature value must be ≥ 0")]
    pub error: String,
}

fn error_response(status: StatusCode, error: String) -> Response {
    (status, Json(V2ErrorBody { error })).into_response()
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(status = status.as_u16(), error = %self.message(), "request failed");
        }
        error_response(status, self.message())
    }
}

/// Middleware for the V2 inference routes: the errors their guards answer in the rest of the
/// server's shape (401, 408, 429: `{"detail": "..."}`) get V2's `{"error": "..."}` instead,
/// status and headers unchanged.
pub async fn error_body(response: Response) -> Response {
    if response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(bytes) => bytes,
        Err(e) => return error_response(parts.status, format!("reading the error: {e}")),
    };
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(ErrorBody { detail }) => {
            let json = serde_json::to_vec(&V2ErrorBody { error: detail }).unwrap_or_default();
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Response::from_parts(parts, Body::from(json))
        }
        Err(_) => Response::from_parts(parts, Body::from(bytes)),
    }
}

// ------------------------------------------------------------------ wire types

/// `GET /v2/health/live`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LiveResponse {
    pub live: bool,
}

/// `GET /v2/health/ready`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReadyResponse {
    pub ready: bool,
}

/// `GET /v2/models/{name}/ready`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelReadyResponse {
    pub name: String,
    pub ready: bool,
}

/// `GET /v2`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerMetadata {
    #[schema(example = "ml-serving")]
    pub name: String,
    /// The ml-serving version.
    pub version: String,
    /// Protocol extensions supported: none.
    pub extensions: Vec<String>,
}

/// A tensor's name, element type and shape (`-1`: any size).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TensorMetadata {
    pub name: String,
    #[schema(example = "FP64")]
    pub datatype: String,
    pub shape: Vec<i64>,
}

/// How else the model can be called, as the protocol's key/value parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelParameters {
    /// The other input layout: one tensor of this name holding every feature.
    #[schema(example = "input-0")]
    pub batch_input_name: String,
    /// Its shape, `[-1, width]`; its columns are the `inputs`, in their order.
    #[schema(example = "[-1, 6]")]
    pub batch_input_shape: String,
    /// The data types every input accepts, space-separated.
    #[schema(example = "FP64 FP32")]
    pub input_datatypes: String,
    /// Most rows in one request (`MAX_BATCH_ROWS`; 413 above it).
    pub max_batch_rows: usize,
    /// The `label` of `predict` = 0.
    #[schema(example = "B")]
    pub label_0: String,
    /// The `label` of `predict` = 1, and what the `*_vote` outputs vote for.
    #[schema(example = "M")]
    pub label_1: String,
}

/// `GET /v2/models/{name}`: the model's inputs (one tensor per feature, in the model's order)
/// and outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    #[schema(example = "ml-serving_linfa")]
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
    pub parameters: ModelParameters,
}

/// One input tensor of an inference request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestInput {
    /// A feature name, or `input-0` for all features at once.
    pub name: String,
    /// `[N]` or `[N, 1]` for a feature, `[N, width]` for `input-0`.
    #[serde(deserialize_with = "shape")]
    pub shape: Vec<u64>,
    /// `FP64` or `FP32`.
    pub datatype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Map<String, Value>>,
    /// The elements in row-major order: flat, or nested as the shape.
    pub data: Value,
}

/// A shape: integers ≥ 0, with an error that says it is the shape that is wrong.
fn shape<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    let value = Value::deserialize(d)?;
    value
        .as_array()
        .and_then(|dims| dims.iter().map(Value::as_u64).collect())
        .ok_or_else(|| {
            let mut shown = value.to_string();
            if shown.len() > 60 {
                let end = (0..=60)
                    .rev()
                    .find(|&i| shown.is_char_boundary(i))
                    .unwrap_or(0);
                shown.truncate(end);
                shown.push_str("...");
            }
            serde::de::Error::custom(format!(
                "a shape must be an array of integers ≥ 0, got {shown}"
            ))
        })
}

/// One output a request asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestOutput {
    /// `predict`, `label`, `logistic_vote`, `tree_vote` or `svm_vote`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Map<String, Value>>,
}

/// `POST /v2/models/{name}/infer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InferenceRequest {
    /// Echoed in the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Map<String, Value>>,
    pub inputs: Vec<RequestInput>,
    /// The outputs wanted, in this order; absent (or empty): all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<RequestOutput>>,
}

/// The elements of an output tensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TensorData {
    Int64(Vec<i64>),
    Bytes(Vec<String>),
}

/// One output tensor of an inference response; every one has shape `[N]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResponseOutput {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<u64>,
    pub data: TensorData,
}

/// The answer of `POST /v2/models/{name}/infer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InferenceResponse {
    pub model_name: String,
    pub model_version: String,
    /// The request's `id`, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub outputs: Vec<ResponseOutput>,
}

// ------------------------------------------------------------------ outputs

/// What the model answers for each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// The ensemble's decision, 0 or 1.
    Predict,
    /// Its class name.
    Label,
    /// Each sub-model's vote for the positive class, 0 or 1.
    LogisticVote,
    TreeVote,
    SvmVote,
}

impl Output {
    const ALL: [Self; 5] = [
        Self::Predict,
        Self::Label,
        Self::LogisticVote,
        Self::TreeVote,
        Self::SvmVote,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Predict => "predict",
            Self::Label => "label",
            Self::LogisticVote => "logistic_vote",
            Self::TreeVote => "tree_vote",
            Self::SvmVote => "svm_vote",
        }
    }

    fn datatype(self) -> &'static str {
        match self {
            Self::Label => "BYTES",
            _ => "INT64",
        }
    }

    fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }
}

fn wants_binary(parameters: Option<&serde_json::Map<String, Value>>, key: &str) -> bool {
    parameters.and_then(|p| p.get(key)) == Some(&Value::Bool(true))
}

/// The outputs a request asks for, in its order; all of them when it names none.
fn select_outputs(request: &InferenceRequest) -> Result<Vec<Output>, V2Error> {
    if wants_binary(request.parameters.as_ref(), "binary_data_output") {
        return Err(bad(
            "binary tensor data is not supported: this server answers JSON tensors only",
        ));
    }
    let Some(wanted) = request.outputs.as_deref().filter(|o| !o.is_empty()) else {
        return Ok(Output::ALL.to_vec());
    };
    let mut selected = Vec::with_capacity(wanted.len());
    for out in wanted {
        let Some(output) = Output::ALL.into_iter().find(|o| o.name() == out.name) else {
            return Err(bad(format!(
                "unknown output {:?}; this model's outputs are: {}",
                out.name,
                Output::names()
            )));
        };
        if selected.contains(&output) {
            return Err(bad(format!("output {:?} is asked for twice", out.name)));
        }
        if wants_binary(out.parameters.as_ref(), "binary_data") {
            return Err(bad(format!(
                "output {:?}: binary tensor data is not supported: this server answers JSON tensors only",
                out.name
            )));
        }
        selected.push(output);
    }
    Ok(selected)
}

// ------------------------------------------------------------------ inputs

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Datatype {
    Fp64,
    Fp32,
}

fn datatype(input: &RequestInput) -> Result<Datatype, V2Error> {
    match input.datatype.as_str() {
        "FP64" => Ok(Datatype::Fp64),
        "FP32" => Ok(Datatype::Fp32),
        other => Err(bad(format!(
            "input {:?} has datatype {other:?}; this model takes {}",
            input.name,
            INPUT_DATATYPES.join(" or ")
        ))),
    }
}

fn shape_text<T: std::fmt::Display>(shape: &[T]) -> String {
    let dims: Vec<String> = shape.iter().map(T::to_string).collect();
    format!("[{}]", dims.join(", "))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The two input layouts, for the error messages.
fn layouts_help(features: &[String]) -> String {
    format!(
        "send one tensor {BATCH_INPUT:?} of shape [N, {}] or one tensor per feature of shape [N]: {}",
        features.len(),
        features.join(", ")
    )
}

/// The rows of the request, checked against the limit: N must be at least 1 and at most `max`.
fn check_rows(rows: u64, max: usize) -> Result<usize, V2Error> {
    if rows == 0 {
        return Err(bad("the inputs hold no rows: N must be at least 1"));
    }
    match usize::try_from(rows) {
        Ok(rows) if rows <= max => Ok(rows),
        _ => Err(V2Error::TooManyRows {
            rows: usize::try_from(rows).unwrap_or(usize::MAX),
            max,
        }),
    }
}

/// The tensor's elements in row-major order. `data` is flat (exactly as many elements as the
/// shape holds) or nested exactly as the shape. Nothing is allocated by the shape's word: a
/// shape that claims more than the data holds costs no more than the data.
fn elements<'a>(input: &'a RequestInput, shape: &[usize]) -> Result<Vec<&'a Value>, V2Error> {
    let Some(total) = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) else {
        return Err(bad(format!(
            "input {:?}: shape {} holds more elements than can be counted",
            input.name,
            shape_text(shape)
        )));
    };
    let Value::Array(items) = &input.data else {
        return Err(bad(format!(
            "input {:?}: data must be an array of numbers, got {}",
            input.name,
            kind_of(&input.data)
        )));
    };
    let mut out = Vec::with_capacity(items.len());
    if items.iter().any(Value::is_array) {
        nested(input, &input.data, shape, &mut String::new(), &mut out)?;
    } else if items.len() == total {
        out.extend(items);
    } else {
        return Err(bad(format!(
            "input {:?}: shape {} holds {total} elements, but data has {}",
            input.name,
            shape_text(shape),
            items.len()
        )));
    }
    Ok(out)
}

fn nested<'a>(
    input: &RequestInput,
    value: &'a Value,
    shape: &[usize],
    at: &mut String,
    out: &mut Vec<&'a Value>,
) -> Result<(), V2Error> {
    let Some((&len, rest)) = shape.split_first() else {
        if value.is_array() {
            return Err(bad(format!(
                "input {:?}: data{at} is an array, but the shape has no dimension left for it",
                input.name
            )));
        }
        out.push(value);
        return Ok(());
    };
    match value {
        Value::Array(items) if items.len() == len => {
            for (i, item) in items.iter().enumerate() {
                let mark = at.len();
                at.push_str(&format!("[{i}]"));
                nested(input, item, rest, at, out)?;
                at.truncate(mark);
            }
            Ok(())
        }
        Value::Array(items) => Err(bad(format!(
            "input {:?}: data{at} has {} elements, but the shape says {len}",
            input.name,
            items.len()
        ))),
        other => Err(bad(format!(
            "input {:?}: data{at} is {}, but the shape says an array of {len}",
            input.name,
            kind_of(other)
        ))),
    }
}

/// One element as a feature value: a number, finite in its datatype, not negative.
fn feature_value(
    input: &RequestInput,
    datatype: Datatype,
    value: &Value,
    at: impl Fn() -> String,
) -> Result<f64, V2Error> {
    let Value::Number(number) = value else {
        return Err(bad(format!(
            "input {:?}: {} is {}, but tensor data must be numbers",
            input.name,
            at(),
            kind_of(value)
        )));
    };
    let mut v = number.as_f64().unwrap_or(f64::NAN);
    if datatype == Datatype::Fp32 {
        let single = v as f32;
        if v.is_finite() && !single.is_finite() {
            return Err(bad(format!(
                "input {:?}: {} is {v}, outside the range of FP32",
                input.name,
                at()
            )));
        }
        v = f64::from(single);
    }
    if !v.is_finite() {
        return Err(bad(format!(
            "input {:?}: {} is not a finite number",
            input.name,
            at()
        )));
    }
    if v < 0.0 {
        return Err(bad(format!(
            "input {:?}: {} is {v}, but a feature value must be ≥ 0",
            input.name,
            at()
        )));
    }
    Ok(v)
}

/// Reads the request's inputs into rows of the model's features, one after another.
fn read_inputs(
    features: &[String],
    inputs: &[RequestInput],
    max_rows: usize,
) -> Result<Vec<f64>, V2Error> {
    if inputs.is_empty() {
        return Err(bad(format!(
            "the request has no inputs; {}",
            layouts_help(features)
        )));
    }
    if let Some(batch) = inputs.iter().find(|i| i.name == BATCH_INPUT) {
        if inputs.len() > 1 {
            return Err(bad(format!(
                "input {BATCH_INPUT:?} holds every feature: send it alone, not with other inputs"
            )));
        }
        return read_matrix(features, batch, max_rows);
    }
    read_columns(features, inputs, max_rows)
}

/// The `[N, width]` layout.
fn read_matrix(
    features: &[String],
    input: &RequestInput,
    max_rows: usize,
) -> Result<Vec<f64>, V2Error> {
    let width = features.len();
    let datatype = datatype(input)?;
    let [rows, columns] = input.shape[..] else {
        return Err(bad(format!(
            "input {:?} has shape {}; it must be [N, {width}], N rows of: {}",
            input.name,
            shape_text(&input.shape),
            features.join(", ")
        )));
    };
    if columns != width as u64 {
        return Err(bad(format!(
            "input {:?} has shape {}; it must be [N, {width}], N rows of: {}",
            input.name,
            shape_text(&input.shape),
            features.join(", ")
        )));
    }
    let rows = check_rows(rows, max_rows)?;
    elements(input, &[rows, width])?
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            feature_value(input, datatype, value, || {
                format!(
                    "row {}, column {} ({})",
                    i / width,
                    i % width,
                    features[i % width]
                )
            })
        })
        .collect()
}

/// The one-tensor-per-feature layout: every feature once, each `[N]` or `[N, 1]`, one N.
fn read_columns(
    features: &[String],
    inputs: &[RequestInput],
    max_rows: usize,
) -> Result<Vec<f64>, V2Error> {
    let width = features.len();
    let mut columns: Vec<Option<(&RequestInput, Datatype)>> = vec![None; width];
    let mut rows: Option<(u64, &str)> = None;
    for input in inputs {
        let Some(j) = features.iter().position(|f| *f == input.name) else {
            return Err(bad(format!(
                "unknown input {:?}; {}",
                input.name,
                layouts_help(features)
            )));
        };
        if columns[j].is_some() {
            return Err(bad(format!("input {:?} is given twice", input.name)));
        }
        let datatype = datatype(input)?;
        let n = match input.shape[..] {
            [n] | [n, 1] => n,
            _ => {
                return Err(bad(format!(
                    "input {:?} has shape {}; a feature's tensor must be [N] or [N, 1]",
                    input.name,
                    shape_text(&input.shape)
                )));
            }
        };
        match rows {
            Some((first, first_name)) if first != n => {
                return Err(bad(format!(
                    "input {:?} has {n} rows but input {first_name:?} has {first}: every input must have the same N",
                    input.name
                )));
            }
            Some(_) => {}
            None => rows = Some((n, &input.name)),
        }
        columns[j] = Some((input, datatype));
    }
    let missing: Vec<&str> = features
        .iter()
        .zip(&columns)
        .filter(|(_, c)| c.is_none())
        .map(|(f, _)| f.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(bad(format!(
            "missing input(s): {}; {}",
            missing.join(", "),
            layouts_help(features)
        )));
    }
    let rows = check_rows(rows.map_or(0, |(n, _)| n), max_rows)?;
    // Every column is present (checked above); its data is checked against N before the rows
    // are allocated.
    let mut cells = Vec::with_capacity(width);
    for (input, datatype) in columns.into_iter().flatten() {
        let shape: &[usize] = if input.shape.len() == 2 {
            &[rows, 1]
        } else {
            &[rows]
        };
        cells.push((input, datatype, elements(input, shape)?));
    }
    let mut values = vec![0.0; rows * width];
    for (j, (input, datatype, column)) in cells.into_iter().enumerate() {
        for (r, value) in column.into_iter().enumerate() {
            values[r * width + j] = feature_value(input, datatype, value, || format!("row {r}"))?;
        }
    }
    Ok(values)
}

// ------------------------------------------------------------------ handlers

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
    body: Result<JsonBody, ApiError>,
) -> Result<Json<InferenceResponse>, V2Error> {
    let model = state.model();
    check_model(&model, name, version)?;
    let JsonBody(bytes) = body?;
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
    _: Authorized,
    path: Result<Path<String>, PathRejection>,
    body: Result<JsonBody, ApiError>,
) -> Result<Json<InferenceResponse>, V2Error> {
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
    _: Authorized,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<JsonBody, ApiError>,
) -> Result<Json<InferenceResponse>, V2Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, shape: &[u64], datatype: &str, data: Value) -> RequestInput {
        RequestInput {
            name: name.to_string(),
            shape: shape.to_vec(),
            datatype: datatype.to_string(),
            parameters: None,
            data,
        }
    }

    fn features() -> Vec<String> {
        vec!["a".to_string(), "b".to_string()]
    }

    #[test]
    fn matrix_data_may_be_flat_or_nested() {
        let flat = input(
            BATCH_INPUT,
            &[2, 2],
            "FP64",
            serde_json::json!([1, 2, 3, 4]),
        );
        let nested = input(
            BATCH_INPUT,
            &[2, 2],
            "FP64",
            serde_json::json!([[1, 2], [3, 4]]),
        );
        for i in [flat, nested] {
            assert_eq!(
                read_inputs(&features(), &[i], 10).unwrap(),
                vec![1.0, 2.0, 3.0, 4.0]
            );
        }
    }

    #[test]
    fn columns_are_interleaved_into_rows() {
        let a = input("a", &[2], "FP64", serde_json::json!([1, 3]));
        let b = input("b", &[2, 1], "FP32", serde_json::json!([[2], [4]]));
        assert_eq!(
            read_inputs(&features(), &[b, a], 10).unwrap(),
            vec![1.0, 2.0, 3.0, 4.0]
        );
    }

    #[test]
    fn nested_data_must_follow_the_shape() {
        let ragged = input(
            BATCH_INPUT,
            &[2, 2],
            "FP64",
            serde_json::json!([[1, 2], [3]]),
        );
        let err = read_inputs(&features(), &[ragged], 10).unwrap_err();
        assert!(err.message().contains("data[1] has 1 elements"), "{err:?}");
        let deep = input("a", &[1], "FP64", serde_json::json!([[1]]));
        let b = input("b", &[1], "FP64", serde_json::json!([1]));
        let err = read_inputs(&features(), &[deep, b], 10).unwrap_err();
        assert!(err.message().contains("data[0] is an array"), "{err:?}");
    }

    #[test]
    fn fp32_values_are_rounded_and_range_checked() {
        let a = input("a", &[1], "FP32", serde_json::json!([0.1]));
        let b = input("b", &[1], "FP32", serde_json::json!([1e39]));
        let err = read_inputs(&features(), &[a.clone(), b], 10).unwrap_err();
        assert!(err.message().contains("range of FP32"), "{err:?}");
        let b = input("b", &[1], "FP64", serde_json::json!([1e39]));
        assert_eq!(
            read_inputs(&features(), &[a, b], 10).unwrap(),
            vec![f64::from(0.1f32), 1e39]
        );
    }
}
