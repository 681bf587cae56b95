//! The HTTP API's JSON bodies, shared by the server and the client.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::evaluate::HeldOutMetrics;

/// One step of an error's location: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Loc {
    Key(String),
    Index(usize),
}

/// One invalid field, in FastAPI's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// Where: `["body", "area_se"]`, or `["body", 3, "area_se"]` for a batch row.
    #[schema(value_type = Vec<serde_json::Value>)]
    pub loc: Vec<Loc>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// The answer for one row: `{"label":"M","prediction":1}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PredictResponse {
    /// The class name, e.g. `M` (malignant) or `B` (benign).
    #[schema(example = "M")]
    pub label: String,
    /// 1 for the positive class, 0 for the negative one.
    #[schema(example = 1)]
    pub prediction: u8,
}

/// The answer for one row of any model: a class (`{"label": "M", "prediction": 1}`, where
/// `prediction` is the model's own label: 0/1 for ours, the integer or string an ONNX
/// classifier outputs) or a regression value (`{"prediction": 12.5}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Answer {
    Class {
        label: String,
        #[schema(value_type = Object)]
        prediction: serde_json::Value,
        /// With `?scores=true` on `/predict/batch`: one score per class, in class order (an
        /// ONNX classifier's probabilities; for ours, the share of the three votes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scores: Option<Vec<f32>>,
    },
    Value {
        prediction: f64,
    },
}

/// The answers for a batch, in the order of its rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BatchResponse {
    pub predictions: Vec<Answer>,
}

/// `GET /health`: the process is alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    #[schema(example = "ok")]
    pub status: String,
}

/// The two class names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LabelsInfo {
    /// The label of prediction 0.
    #[serde(rename = "0")]
    pub negative: String,
    /// The label of prediction 1.
    #[serde(rename = "1")]
    pub positive: String,
}

/// Where the live model came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ArtifactInfo {
    /// `ml-serving` (an artifact of ours) or `onnx`.
    pub kind: String,
    pub path: String,
    /// SHA-256 of the model file.
    pub sha256: String,
    /// Our artifact's format version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_version: Option<u32>,
    /// When our artifact was trained (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// When this server loaded it (RFC 3339).
    pub loaded_at: String,
    /// The ml-serving version that trained it; for ONNX, the producer (e.g. `skl2onnx 1.20.0`).
    pub trained_with: String,
}

/// `GET /info`: the live model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InfoResponse {
    /// Model name (`MODEL_NAME`, else the name stored in the artifact).
    #[schema(example = "breast_model")]
    pub name: String,
    /// Model version.
    #[schema(example = "1")]
    pub version: String,
    /// Feature names, in the order the model takes them.
    pub features: Vec<String>,
    /// Class labels by prediction index (`{"0": "B", "1": "M"}`); empty for a regression, or
    /// an ONNX model whose sidecar names none.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Metrics measured on the held-out rows at training time (our artifacts).
    #[schema(value_type = Object)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<HeldOutMetrics>,
    pub artifact: ArtifactInfo,
    /// A row the model was checked with at load, in `features` order (what `predict` sends by default).
    pub sample: Vec<f64>,
    /// The version of the server.
    pub ml_serving_version: String,
}

/// A request that failed validation (422): every bad field, with its location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ValidationErrorBody {
    pub detail: Vec<FieldError>,
}

/// Any other error: `{"detail": "what went wrong"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub detail: String,
}

/// The V2 binary tensor data extension's header: the length of the JSON part of a body.
pub const V2_HEADER_LENGTH: &str = "inference-header-content-length";

/// `GET /models`: every model of the server, its versions and state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelsResponse {
    /// The model `/predict` and `/info` serve (`DEFAULT_MODEL`, else the only model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    pub models: Vec<ModelStatus>,
    /// Entries of the repository that are not model directories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// One model in `GET /models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelStatus {
    #[schema(example = "breast_model")]
    pub name: String,
    /// `READY` (a version serves), `UNAVAILABLE` (none could be loaded) or `UNLOADED`.
    #[schema(example = "READY")]
    pub state: String,
    /// The version requests without one get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<String>,
    pub versions: Vec<VersionStatus>,
    /// The model's configuration (`config.json`; the defaults when there is none).
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// What went wrong in the last refresh of this model, naming each path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// One served version in `GET /models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VersionStatus {
    #[schema(example = "1")]
    pub version: String,
    /// `ml-serving` or `onnx`.
    pub kind: String,
    pub path: String,
    pub sha256: String,
    pub loaded_at: String,
    /// How much the server's resident memory grew while this version loaded, in bytes.
    pub rss_bytes: u64,
}
