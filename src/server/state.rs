//! What every request handler shares: the live model (swapped atomically on reload), the
//! readiness flag and the limits.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use axum::body::Bytes;
use metrics::Counter;
use ndarray::ArrayView2;

use crate::artifact::{ArtifactError, ArtifactProblem};
use crate::model::{Answer, Model, ModelError};
use crate::wire::PredictResponse;

use super::error::ApiError;

/// A checked model as the server serves it, with what the hot path needs precomputed.
#[derive(Debug)]
pub struct ServedModel {
    pub model: Model,
    /// `MODEL_NAME` if set, else the model's own name.
    pub name: String,
    pub loaded_at: String,
    /// Our model's two possible `/predict` bodies, serialised once (none for ONNX).
    bodies: Vec<Bytes>,
    /// `predictions_total` by class, for our model's two classes.
    predictions: Vec<Counter>,
}

impl ServedModel {
    pub fn new(model: impl Into<Model>, name_override: Option<&str>) -> Self {
        let model = model.into();
        let name = name_override.map_or_else(|| model.stored_name().to_string(), str::to_string);
        let (bodies, predictions) = match &model {
            Model::Native(m) => {
                let labels = &m.artifact.labels;
                let body = |positive: bool| {
                    Bytes::from(
                        serde_json::to_vec(&PredictResponse {
                            label: labels.name(positive).to_string(),
                            prediction: u8::from(positive),
                        })
                        .expect("plain data"),
                    )
                };
                let counter = |positive: bool| metrics::counter!("predictions_total", "label" => labels.name(positive).to_string());
                (
                    vec![body(false), body(true)],
                    vec![counter(false), counter(true)],
                )
            }
            Model::Onnx(_) => (Vec::new(), Vec::new()),
        };
        Self {
            bodies,
            predictions,
            name,
            loaded_at: crate::clock::now_rfc3339(),
            model,
        }
    }

    pub fn features(&self) -> &[String] {
        self.model.features()
    }

    /// Our model's decision for one row, as the pre-serialised `/predict` body (counted in the
    /// metrics); `None` for a model of another kind.
    pub fn native_answer_body(&self, row: &[f64]) -> Result<Option<Bytes>, ApiError> {
        let Model::Native(m) = &self.model else {
            return Ok(None);
        };
        let x = ArrayView2::from_shape((1, row.len()), row)
            .map_err(|e| ApiError::Internal(format!("row layout: {e}")))?;
        let positive = m
            .artifact
            .pipeline
            .predict(x)
            .map_err(|e| ApiError::Internal(e.to_string()))?[0];
        self.predictions[usize::from(positive)].increment(1);
        Ok(Some(self.bodies[usize::from(positive)].clone()))
    }

    /// The named-field answer for each row in `values`, counted in `predictions_total`.
    pub fn answers(&self, values: &[f64]) -> Result<Vec<Answer>, ApiError> {
        let answers = self.model.answers(values).map_err(ApiError::Internal)?;
        self.count(&answers);
        Ok(answers)
    }

    /// Counts answers in `predictions_total` by label.
    pub fn count(&self, answers: &[Answer]) {
        for answer in answers {
            if let Answer::Class { label, .. } = answer {
                match (&self.model, self.predictions.as_slice()) {
                    (Model::Native(m), [negative, positive]) => {
                        if *label == m.artifact.labels.positive {
                            positive.increment(1);
                        } else {
                            negative.increment(1);
                        }
                    }
                    // A classifier's labels are the model's own, a bounded set.
                    _ => metrics::counter!("predictions_total", "label" => label.clone())
                        .increment(1),
                }
            }
        }
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
    pub fn reload(&self) -> Result<ReloadOutcome, ModelError> {
        let path = &self.0.model_path;
        let loaded = Model::load(path, self.0.limits.model_bytes)?;
        let live = self.model();
        if loaded.sha256() == live.model.sha256() {
            return Ok(ReloadOutcome::Unchanged);
        }
        let old = &live.model;
        let refuse = |what: String| {
            ModelError::from(ArtifactError {
                path: path.clone(),
                problem: ArtifactProblem::Inconsistent(format!(
                    "{what}; a reload may not change the API (restart the server to serve it)"
                )),
            })
        };
        if loaded.kind() != old.kind() || loaded.outputs() != old.outputs() {
            return Err(refuse(format!(
                "it is a {} model with outputs [{}], the live one a {} model with [{}]",
                loaded.kind(),
                names(loaded.outputs().iter().map(|o| o.name.as_str())),
                old.kind(),
                names(old.outputs().iter().map(|o| o.name.as_str()))
            )));
        }
        if loaded.features() != old.features() {
            return Err(refuse(format!(
                "its features [{}] differ from the live model's [{}]",
                loaded.features().join(", "),
                old.features().join(", ")
            )));
        }
        if loaded.classes() != old.classes() {
            return Err(refuse(format!(
                "its labels [{}] differ from the live model's [{}]",
                loaded.classes().join(", "),
                old.classes().join(", ")
            )));
        }
        drop(live);
        let sha256 = loaded.sha256().to_string();
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

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}
