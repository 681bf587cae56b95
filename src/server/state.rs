//! What every request handler shares: the live model (swapped atomically on reload), the
//! readiness flag and the limits.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use axum::body::Bytes;
use metrics::Counter;
use ndarray::ArrayView2;

use crate::artifact::{ArtifactError, ArtifactProblem, LoadedModel};
use crate::pipeline::Votes;
use crate::wire::PredictResponse;

use super::error::ApiError;

/// A checked model as the server serves it, with what the hot path needs precomputed.
#[derive(Debug)]
pub struct ServedModel {
    pub model: LoadedModel,
    /// `MODEL_NAME` if set, else the artifact's name.
    pub name: String,
    pub loaded_at: String,
    /// The two possible `/predict` bodies, serialised once.
    bodies: [Bytes; 2],
    predictions: [Counter; 2],
}

impl ServedModel {
    pub fn new(model: LoadedModel, name_override: Option<&str>) -> Self {
        let name = name_override.map_or_else(|| model.artifact.name.clone(), str::to_string);
        let labels = &model.artifact.labels;
        let body = |positive: bool| {
            Bytes::from(
                serde_json::to_vec(&Self::response_for(labels.name(positive), positive))
                    .expect("plain data"),
            )
        };
        let counter = |positive: bool| metrics::counter!("predictions_total", "label" => labels.name(positive).to_string());
        Self {
            bodies: [body(false), body(true)],
            predictions: [counter(false), counter(true)],
            name,
            loaded_at: crate::clock::now_rfc3339(),
            model,
        }
    }

    fn response_for(label: &str, positive: bool) -> PredictResponse {
        PredictResponse {
            label: label.to_string(),
            prediction: u8::from(positive),
        }
    }

    pub fn features(&self) -> &[String] {
        &self.model.artifact.feature_names
    }

    /// Rows laid out one after another in `values`, as a matrix of the model's width.
    fn rows<'v>(&self, values: &'v [f64]) -> Result<ArrayView2<'v, f64>, ApiError> {
        let width = self.features().len();
        ArrayView2::from_shape((values.len() / width, width), values)
            .map_err(|e| ApiError::Internal(format!("row layout: {e}")))
    }

    /// Every model's votes for the rows in `values`.
    pub fn votes(&self, values: &[f64]) -> Result<Vec<Votes>, ApiError> {
        self.model
            .artifact
            .pipeline
            .votes(self.rows(values)?)
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// The ensemble's decision for the rows in `values` (`true` = the positive class).
    pub fn decide(&self, values: &[f64]) -> Result<Vec<bool>, ApiError> {
        self.model
            .artifact
            .pipeline
            .predict(self.rows(values)?)
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// Counts a decision in the metrics and returns its answer.
    pub fn answer(&self, positive: bool) -> PredictResponse {
        self.predictions[usize::from(positive)].increment(1);
        Self::response_for(self.model.artifact.labels.name(positive), positive)
    }

    /// Counts a decision in the metrics and returns its answer, already serialised.
    pub fn answer_body(&self, positive: bool) -> Bytes {
        self.predictions[usize::from(positive)].increment(1);
        self.bodies[usize::from(positive)].clone()
    }
}

/// Limits that apply to request bodies.
#[derive(Debug, Clone)]
pub struct Limits {
    pub body_bytes: usize,
    pub batch_rows: usize,
    /// The largest model artifact, compressed or inflated (`MAX_MODEL_BYTES`).
    pub model_bytes: u64,
}

#[derive(Debug)]
struct Shared {
    model: ArcSwap<ServedModel>,
    model_path: PathBuf,
    name_override: Option<String>,
    limits: Limits,
    api_key: Option<String>,
    shutting_down: AtomicBool,
}

/// Cheap to clone: one `Arc`.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(
        model: ServedModel,
        model_path: PathBuf,
        name_override: Option<String>,
        limits: Limits,
        api_key: Option<String>,
    ) -> Self {
        Self(Arc::new(Shared {
            model: ArcSwap::from_pointee(model),
            model_path,
            name_override,
            limits,
            api_key,
            shutting_down: AtomicBool::new(false),
        }))
    }

    /// The live model; a request keeps the one it started with even if a reload swaps it.
    pub fn model(&self) -> arc_swap::Guard<Arc<ServedModel>> {
        self.0.model.load()
    }

    pub fn model_path(&self) -> &std::path::Path {
        &self.0.model_path
    }

    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }

    pub fn api_key(&self) -> Option<&str> {
        self.0.api_key.as_deref()
    }

    pub fn is_ready(&self) -> bool {
        !self.0.shutting_down.load(Ordering::Acquire)
    }

    /// Readiness turns false at once; the listener then drains.
    pub fn begin_shutdown(&self) {
        self.0.shutting_down.store(true, Ordering::Release);
    }

    /// Loads and checks the artifact at the model path again and, if it is good and differs
    /// from the live one, swaps it in. A bad file leaves the live model serving, and so does
    /// a model with other features or labels: every client of the live one would get 422s,
    /// and the API's documented schema would be wrong; changing those takes a restart.
    pub fn reload(&self) -> Result<ReloadOutcome, ArtifactError> {
        let path = &self.0.model_path;
        let loaded = LoadedModel::load_bounded(path, self.0.limits.model_bytes)?;
        let live = self.model();
        if loaded.sha256 == live.model.sha256 {
            return Ok(ReloadOutcome::Unchanged);
        }
        let (old, new) = (&live.model.artifact, &loaded.artifact);
        let refuse = |what: String| ArtifactError {
            path: path.clone(),
            problem: ArtifactProblem::Inconsistent(format!(
                "{what}; a reload may not change the API (restart the server to serve it)"
            )),
        };
        if new.feature_names != old.feature_names {
            return Err(refuse(format!(
                "its features [{}] differ from the live model's [{}]",
                new.feature_names.join(", "),
                old.feature_names.join(", ")
            )));
        }
        if new.labels != old.labels {
            return Err(refuse(format!(
                "its labels ({}, {}) differ from the live model's ({}, {})",
                new.labels.negative, new.labels.positive, old.labels.negative, old.labels.positive
            )));
        }
        drop(live);
        let sha256 = loaded.sha256.clone();
        self.0.model.store(Arc::new(ServedModel::new(
            loaded,
            self.0.name_override.as_deref(),
        )));
        Ok(ReloadOutcome::Swapped { sha256 })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    Unchanged,
    Swapped { sha256: String },
}
