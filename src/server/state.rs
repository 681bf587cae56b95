//! What every request handler shares: the registry of live models (swapped atomically on
//! reload), the readiness flag, the limits and the cached OpenAPI document.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use metrics::Counter;

use crate::model::{Answer, Model, OutputSpec};
use crate::wire::PredictResponse;

use super::error::ApiError;
use super::extract::Slots;
use super::registry::{RefreshError, Registry, RegistrySettings, ReloadOutcome, Snapshot, Source};

/// A checked model as the server serves it, with what the hot path needs precomputed.
#[derive(Debug)]
pub struct ServedModel {
    pub model: Model,
    /// The name in URLs: the repository directory's, else `MODEL_NAME`, else the model's own.
    pub name: String,
    /// The version in URLs: the repository's version directory, else the model's own version.
    pub version: String,
    /// Most rows in one batch request (the model's configuration may lower `MAX_BATCH_ROWS`).
    pub batch_rows: usize,
    pub loaded_at: String,
    /// Our model's two possible `/predict` bodies, serialised once (none for ONNX).
    bodies: Vec<Bytes>,
    /// The pieces of our model's V2 JSON answers to one row (made by `v2` on first use).
    pub(super) v2_one_row: std::sync::OnceLock<OneRowPieces>,
    /// The class labels, in the order of `predictions`.
    classes: Vec<String>,
    /// `predictions_total` by class.
    predictions: Vec<Counter>,
    /// The model's outputs (`Servable::outputs`), listed once rather than per V2 request.
    pub outputs: Vec<OutputSpec>,
}

impl ServedModel {
    /// A model served alone (`MODEL_PATH`), under `name_override` or its own name and version.
    pub fn new(model: impl Into<Model>, name_override: Option<&str>) -> Self {
        let model = model.into();
        let name = name_override.map_or_else(|| model.stored_name().to_string(), str::to_string);
        let version = model.version().to_string();
        Self::versioned(model, &name, &version, usize::MAX)
    }

    /// A model served as `name`, version `version`, with at most `batch_rows` rows a request.
    pub fn versioned(
        model: impl Into<Model>,
        name: &str,
        version: &str,
        batch_rows: usize,
    ) -> Self {
        let model = model.into();
        let counter = |label: &str| metrics::counter!("predictions_total", "label" => label.to_string(), "model" => name.to_string(), "version" => version.to_string());
        let classes = model.classes();
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
                (
                    vec![body(false), body(true)],
                    vec![counter(labels.name(false)), counter(labels.name(true))],
                )
            }
            // A classifier's labels are the model's own, a bounded set.
            Model::Onnx(_) => (Vec::new(), classes.iter().map(|l| counter(l)).collect()),
        };
        Self {
            outputs: model.outputs(),
            bodies,
            v2_one_row: std::sync::OnceLock::new(),
            classes,
            predictions,
            name: name.to_string(),
            version: version.to_string(),
            batch_rows,
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
        let positive = m
            .artifact
            .pipeline
            .predict_row(row)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        self.count_decision(positive);
        Ok(Some(self.bodies[usize::from(positive)].clone()))
    }

    /// Counts one decision of our model in `predictions_total`.
    pub fn count_decision(&self, positive: bool) {
        self.predictions[usize::from(positive)].increment(1);
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
                    _ => match self.classes.iter().position(|c| c == label) {
                        Some(i) => self.predictions[i].increment(1),
                        // A label the model gives without naming it in advance: still its own.
                        None => metrics::counter!("predictions_total", "label" => label.clone(), "model" => self.name.clone(), "version" => self.version.clone()).increment(1),
                    },
                }
            }
        }
    }
}

/// A one-row V2 answer of our model, serialised in pieces: the answer is `head`, then the
/// chosen outputs' pieces (each for the value it has for the row) separated by commas, then
/// `]}`.
#[derive(Debug)]
pub struct OneRowPieces {
    /// `{"model_name":...,"model_version":...,"outputs":[`
    pub head: Vec<u8>,
    /// By output: the output serialised with the value 0 (false), and with 1 (true).
    pub outputs: Vec<[Vec<u8>; 2]>,
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
    registry: Registry,
    limits: Limits,
    api_key: Option<String>,
    /// `REPOSITORY_CONTROL`: the V2 repository load/unload calls are open (behind the key).
    control: bool,
    shutting_down: AtomicBool,
    /// The OpenAPI document, built on first request and again after each registry change.
    openapi: Mutex<Option<(u64, Bytes)>>,
}

/// Cheap to clone: two `Arc`s. The state of every route, holding the prediction slots too
/// (rather than a request extension, which would cost every request an insertion).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>, Slots);

impl AppState {
    /// The state of a server of one model file (`MODEL_PATH`).
    pub fn new(
        model: ServedModel,
        model_path: PathBuf,
        name_override: Option<String>,
        limits: Limits,
        api_key: Option<String>,
    ) -> Self {
        let registry = Registry::single(
            model,
            RegistrySettings {
                source: Source::File {
                    path: model_path,
                    name: name_override,
                },
                model_bytes: limits.model_bytes,
                max_models: 1,
                batch_rows: limits.batch_rows,
                default_model: None,
            },
        );
        Self::with_registry(registry, limits, api_key, false)
    }

    /// The state over a loaded registry.
    pub fn with_registry(
        registry: Registry,
        limits: Limits,
        api_key: Option<String>,
        control: bool,
    ) -> Self {
        Self(
            Arc::new(Shared {
                registry,
                limits,
                api_key,
                control,
                shutting_down: AtomicBool::new(false),
                openapi: Mutex::new(None),
            }),
            // Unbounded until the router gives the state the server's own (`with_slots`).
            Slots::new(tokio::sync::Semaphore::MAX_PERMITS),
        )
    }

    /// This state drawing on `slots` (`MAX_IN_FLIGHT`, shared with the gRPC service).
    pub fn with_slots(self, slots: Slots) -> Self {
        Self(self.0, slots)
    }

    /// The prediction slots.
    pub fn slots(&self) -> &Slots {
        &self.1
    }

    /// The default model's live version (`/predict`, `/info`); a request keeps the one it
    /// started with even if a reload swaps it.
    pub fn model(&self) -> Result<Arc<ServedModel>, ApiError> {
        self.0.registry.default_model().map_err(ApiError::Model)
    }

    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }

    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }

    pub fn api_key(&self) -> Option<&str> {
        self.0.api_key.as_deref()
    }

    pub fn control_enabled(&self) -> bool {
        self.0.control
    }

    /// Ready: not shutting down, and every model the configuration asks for is loaded.
    pub fn is_ready(&self) -> bool {
        !self.0.shutting_down.load(Ordering::Acquire) && self.0.registry.snapshot().all_ready()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.0.shutting_down.load(Ordering::Acquire)
    }

    /// Readiness turns false at once; the listener then drains.
    pub fn begin_shutdown(&self) {
        self.0.shutting_down.store(true, Ordering::Release);
    }

    /// Refreshes from the model file or repository (see [`Registry::refresh`]).
    pub fn reload(&self) -> Result<ReloadOutcome, RefreshError> {
        self.0.registry.refresh()
    }

    /// The OpenAPI document for the registry as it is now, built at most once per change.
    pub fn openapi_json(&self, build: impl FnOnce(&Snapshot) -> Vec<u8>) -> Bytes {
        let snapshot = self.0.registry.snapshot();
        let mut cached = self.0.openapi.lock().unwrap_or_else(|e| e.into_inner());
        match &*cached {
            Some((generation, doc)) if *generation == snapshot.generation => doc.clone(),
            _ => {
                let doc = Bytes::from(build(&snapshot));
                *cached = Some((snapshot.generation, doc.clone()));
                doc
            }
        }
    }
}
