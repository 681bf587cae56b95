//! The V2 protocol's JSON bodies: health, metadata, inference requests and responses.

use std::borrow::Cow;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};
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
// Its strings borrow from the body when they can (no escapes): an allocation less per string
// per request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestInput<'a> {
    /// A feature name, or `input-0` for all features at once.
    #[serde(borrow)]
    #[schema(value_type = String)]
    pub name: Cow<'a, str>,
    /// `[N]` or `[N, 1]` for a feature, `[N, width]` for `input-0`.
    #[serde(deserialize_with = "shape")]
    pub shape: Vec<u64>,
    /// `FP64`, `FP32`, or an integer type: `INT8` to `INT64`, `UINT8` to `UINT64`.
    #[serde(borrow)]
    #[schema(value_type = String)]
    pub datatype: Cow<'a, str>,
    /// `binary_data_size`: the input's bytes in the binary part of the body (binary tensor
    /// data extension, with `Inference-Header-Content-Length`); then there is no `data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Map<String, Value>>,
    /// The elements in row-major order: flat, or nested as the shape. Required unless the
    /// input is binary (`parameters.binary_data_size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub data: Option<JsonData>,
}

/// A shape: integers ≥ 0, with an error that says it is the shape that is wrong (and shows it).
pub(super) fn shape<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    let not_a_shape = match JsonData::deserialize(d)? {
        JsonData::Numbers(numbers) => match numbers.iter().map(Number::as_u64).collect() {
            Some(dims) => return Ok(dims),
            None => JsonData::Numbers(numbers).into_value(),
        },
        JsonData::Other(value) => value,
    };
    let mut shown = not_a_shape.to_string();
    if shown.len() > 60 {
        let end = (0..=60)
            .rev()
            .find(|&i| shown.is_char_boundary(i))
            .unwrap_or(0);
        shown.truncate(end);
        shown.push_str("...");
    }
    Err(serde::de::Error::custom(format!(
        "a shape must be an array of integers ≥ 0, got {shown}"
    )))
}

/// A JSON array of numbers (an input's `data` or `shape` as clients send them) read straight
/// into numbers, or any other JSON value as it came: nested arrays for the tensor reader to
/// walk, or whatever is wrong, to show in the error.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum JsonData {
    Numbers(Vec<Number>),
    Other(Value),
}

impl JsonData {
    pub fn into_value(self) -> Value {
        match self {
            Self::Numbers(numbers) => {
                Value::Array(numbers.into_iter().map(Value::Number).collect())
            }
            Self::Other(value) => value,
        }
    }
}

impl<'de> Deserialize<'de> for JsonData {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonDataVisitor)
    }
}

/// Reads [`JsonData`]: an array element by element while they are numbers, anything else as
/// serde_json's own [`Value`] reads it.
struct JsonDataVisitor;

impl<'de> Visitor<'de> for JsonDataVisitor {
    type Value = JsonData;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut numbers = Vec::new();
        while let Some(value) = seq.next_element::<Value>()? {
            let Value::Number(number) = value else {
                // Not all numbers: the array as JSON values, every element as it came.
                let mut all: Vec<Value> = numbers.into_iter().map(Value::Number).collect();
                all.push(value);
                while let Some(value) = seq.next_element::<Value>()? {
                    all.push(value);
                }
                return Ok(JsonData::Other(Value::Array(all)));
            };
            numbers.push(number);
        }
        Ok(JsonData::Numbers(numbers))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let value = Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(JsonData::Other(value))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(JsonData::Other(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(JsonData::Other(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(JsonData::Other(Value::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        // As serde_json's own Value: a float that is no JSON number is null.
        Ok(JsonData::Other(Value::from(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(JsonData::Other(Value::from(v)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(JsonData::Other(Value::Null))
    }
}

/// One output a request asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestOutput<'a> {
    /// `predict`, `label`, `logistic_vote`, `tree_vote` or `svm_vote`.
    #[serde(borrow)]
    #[schema(value_type = String)]
    pub name: Cow<'a, str>,
    /// `binary_data`: `true` answers this output as binary tensor data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Map<String, Value>>,
}

/// `POST /v2/models/{name}/infer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InferenceRequest<'a> {
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
    #[serde(borrow)]
    pub inputs: Vec<RequestInput<'a>>,
    /// The outputs wanted, in this order; absent (or empty): all of them.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub outputs: Option<Vec<RequestOutput<'a>>>,
}

/// The elements of an output tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TensorData {
    Int64(Vec<i64>),
    Fp32(Vec<f32>),
    Bytes(Vec<String>),
}

/// An output tensor's shape, `[N]` or `[N, k]`, held inline: no allocation per output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputShape {
    pub(super) dims: [u64; 2],
    pub(super) len: usize,
}

impl OutputShape {
    pub fn as_slice(&self) -> &[u64] {
        &self.dims[..self.len]
    }
}

impl Serialize for OutputShape {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(serializer)
    }
}

/// One output tensor of an inference response: shape `[N]`, or `[N, k]` (class scores).
// Borrows its names from the served model, as the response does: no copy per request.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ResponseOutput<'a> {
    pub name: &'a str,
    pub datatype: &'a str,
    #[schema(value_type = Vec<u64>)]
    pub shape: OutputShape,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_data_is_the_json_value_and_numbers_only_for_an_array_of_numbers() {
        let cases = [
            "[0.3001,0.1471,8.589,153.4,17.33,2019.0]",
            "[1,-2,3.5,18446744073709551615,-9223372036854775808,1e300]",
            "[]",
            "[1,\"a\",2]",
            "[1,2,[3]]",
            "[[1,2],[3,4]]",
            "[null]",
            "[true,1]",
            "[1,{\"a\":[1]}]",
            "{\"a\":1}",
            "\"text\"",
            "7",
            "-7.5",
            "true",
            "null",
        ];
        for text in cases {
            let value: Value = serde_json::from_str(text).unwrap();
            let data: JsonData = serde_json::from_str(text).unwrap();
            let all_numbers = value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_number));
            assert_eq!(matches!(data, JsonData::Numbers(_)), all_numbers, "{text}");
            assert_eq!(serde_json::to_value(&data).unwrap(), value, "{text}");
            assert_eq!(data.into_value(), value, "{text}");
        }
        // What serde_json refuses, this refuses too.
        for text in ["[1,]", "[1e400]", "[01]", "[1 2]", "[NaN]"] {
            assert!(serde_json::from_str::<JsonData>(text).is_err(), "{text}");
            assert!(serde_json::from_str::<Value>(text).is_err(), "{text}");
        }
    }
}
