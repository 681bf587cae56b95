//! The V2 protocol's JSON bodies: health, metadata, inference requests and responses.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

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
    /// Protocol extensions supported: `binary_tensor_data`.
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
    /// The `label` of `predict` = 0 (for a model with named classes).
    #[schema(example = "B")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_0: Option<String>,
    /// The `label` of `predict` = 1, and what the `*_vote` outputs vote for.
    #[schema(example = "M")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_1: Option<String>,
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
    /// `FP64`, `FP32`, or an integer type: `INT8` to `INT64`, `UINT8` to `UINT64`.
    pub datatype: String,
    /// `binary_data_size`: the input's bytes in the binary part of the body (binary tensor
    /// data extension, with `Inference-Header-Content-Length`); then there is no `data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Map<String, Value>>,
    /// The elements in row-major order: flat, or nested as the shape. Required unless the
    /// input is binary (`parameters.binary_data_size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub data: Option<Value>,
}

/// A shape: integers ≥ 0, with an error that says it is the shape that is wrong.
pub(super) fn shape<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
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
    /// `binary_data`: `true` answers this output as binary tensor data.
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
    /// `binary_data_output`: `true` answers every output as binary tensor data (unless the
    /// output says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Map<String, Value>>,
    /// One tensor `input-0` of shape `[N, width]`, or one tensor per feature.
    #[schema(min_items = 1)]
    pub inputs: Vec<RequestInput>,
    /// The outputs wanted, in this order; absent (or empty): all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<RequestOutput>>,
}

/// The elements of an output tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TensorData {
    Int64(Vec<i64>),
    Fp32(Vec<f32>),
    Bytes(Vec<String>),
}

/// One output tensor of an inference response: shape `[N]`, or `[N, k]` (class scores).
// Borrows its names from the served model, as the response does: no copy per request.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ResponseOutput<'a> {
    pub name: &'a str,
    pub datatype: &'a str,
    pub shape: Vec<u64>,
    /// `binary_data_size` when the output is binary tensor data (then there is no `data`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<TensorData>,
}

/// The answer of `POST /v2/models/{name}/infer`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InferenceResponse<'a> {
    pub model_name: &'a str,
    pub model_version: &'a str,
    /// The request's `id`, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub outputs: Vec<ResponseOutput<'a>>,
}
