//! The models the server serves: name → versions → live model. They come from one file
//! (`MODEL_PATH`: a repository of one model, one version) or from a repository directory
//! (`MODEL_REPOSITORY`, read by [`crate::repository`]). A refresh (start-up, SIGHUP, polling,
//! the V2 repository calls) is validate-then-swap: new versions are loaded and checked off
//! the request path, then one atomic swap publishes them; a request keeps the model it started
//! with, and a version removed from disk is dropped once the last request using it finishes.
//! A version that fails to load never replaces a good one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::artifact::{ArtifactError, ArtifactProblem};
use crate::model::{Model, ModelError};
use crate::repository::{self, ModelConfig, Problem, Stamp};

use super::state::ServedModel;

/// Where the models come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// One model file, served under `name` (else its own name).
    File { path: PathBuf, name: Option<String> },
    /// A repository directory.
    Repository { root: PathBuf },
}

/// What the registry needs beyond its source.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    pub source: Source,
    /// `MAX_MODEL_BYTES`.
    pub model_bytes: u64,
    /// `MAX_MODELS`: more model directories are refused.
    pub max_models: usize,
    /// `MAX_BATCH_ROWS`: a model's own limit may only be lower.
    pub batch_rows: usize,
    /// `DEFAULT_MODEL`: the model of `/predict` and `/info`; else the only one at start-up.
    pub default_model: Option<String>,
}

/// One served version.
#[derive(Debug, Clone)]
pub struct Version {
    pub served: Arc<ServedModel>,
    /// The file's stamp when it was loaded (repository versions only).
    stamp: Option<(Stamp, Option<Stamp>)>,
    /// How much the process's resident memory grew while this version loaded.
    pub rss_bytes: u64,
}

/// One model: its configuration and served versions (ascending; the last is `latest`).
#[derive(Debug, Clone)]
pub struct ModelEntry {
    pub config: ModelConfig,
    pub versions: Vec<Version>,
    /// What went wrong in the last refresh of this model (at most [`MAX_PROBLEMS`]).
    pub problems: Vec<String>,
    /// Unloaded by `POST /v2/repository/models/{name}/unload`: not served, not watched.
    pub unloaded: bool,
}

impl ModelEntry {
    pub fn latest(&self) -> Option<&Arc<ServedModel>> {
        self.versions.last().map(|v| &v.served)
    }

    pub fn is_ready(&self) -> bool {
        !self.versions.is_empty()
    }

    /// A model the server must serve to be ready.
    fn required(&self) -> bool {
        !self.config.optional && !self.unloaded
    }
}

/// The most problems kept per model (the rest are counted in one line).
pub const MAX_PROBLEMS: usize = 20;

/// Everything served at one moment; replaced whole on every change.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub models: BTreeMap<String, ModelEntry>,
    /// The default model's latest version, looked up once per change (the hot path's).
    default: Option<Arc<ServedModel>>,
    /// Problems at the top of the repository (entries that are not model directories).
    pub problems: Vec<String>,
    /// Counts the changes; the OpenAPI document is rebuilt when it moves.
    pub generation: u64,
}

impl Snapshot {
    /// Every model the configuration asks for has a version loaded.
    pub fn all_ready(&self) -> bool {
        self.models.values().all(|m| !m.required() || m.is_ready())
    }
}

/// A request named no model or version the registry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    UnknownModel {
        name: String,
        served: Vec<String>,
    },
    UnknownVersion {
        name: String,
        version: String,
        served: Vec<String>,
    },
    /// The model exists but has no version loaded (all failed, or it was unloaded).
    Unavailable {
        name: String,
        reason: String,
    },
    /// `/predict` or `/info` with several models and no `DEFAULT_MODEL`.
    NoDefault {
        served: Vec<String>,
    },
}

/// A name from a request, cut so an error message stays small.
fn shown(name: &str) -> String {
    name.chars().take(64).collect()
}

/// At most ten names, for messages.
fn listing(names: &[String]) -> String {
    let mut text = names
        .iter()
        .take(10)
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 10 {
        text.push_str(&format!(" and {} more", names.len() - 10));
    }
    text
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownModel { name, served } if served.len() == 1 => write!(
                f,
                "Unknown model {:?}: this server serves {:?}",
                shown(name),
                served[0]
            ),
            Self::UnknownModel { name, served } => write!(
                f,
                "Unknown model {:?}: this server serves {}",
                shown(name),
                listing(served)
            ),
            Self::UnknownVersion {
                name,
                version,
                served,
            } if served.len() == 1 => write!(
                f,
                "Model {name:?} has no version {:?}; its version is {:?}",
                shown(version),
                served[0]
            ),
            Self::UnknownVersion {
                name,
                version,
                served,
            } => write!(
                f,
                "Model {name:?} has no version {:?}; its versions are {}",
                shown(version),
                listing(served)
            ),
            Self::Unavailable { name, reason } => {
                write!(f, "Model {name:?} has no version ready: {reason}")
            }
            Self::NoDefault { served } => write!(
                f,
                "This server serves several models ({}) and no DEFAULT_MODEL: use /models/{{name}}/predict",
                listing(served)
            ),
        }
    }
}

/// Why a refresh failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Repository(#[from] Problem),
    /// Start-up only: models the configuration asks for could not be loaded.
    #[error("{}", .0.join("; "))]
    Startup(Vec<String>),
}

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    Unchanged,
    Swapped {
        sha256: String,
    },
    /// A repository refresh: versions loaded and dropped (`name/version`), and problems met.
    Repository {
        loaded: Vec<String>,
        unloaded: Vec<String>,
        problems: Vec<String>,
    },
}

impl ReloadOutcome {
    /// Whether something failed (the poller then retries at its next tick).
    pub fn failed(&self) -> bool {
        matches!(self, Self::Repository { problems, .. } if !problems.is_empty())
    }
}

/// The registry: the live snapshot and what refreshes it.
#[derive(Debug)]
pub struct Registry {
    settings: RegistrySettings,
    snapshot: ArcSwap<Snapshot>,
    /// One refresh at a time (poller, signal and V2 calls may race).
    refreshing: Mutex<()>,
    /// The default model's name, fixed at start-up.
    default_name: Option<String>,
    /// Problems already logged, by path: a broken version retried at every tick logs once.
    reported: Mutex<BTreeSet<String>>,
}

impl Registry {
    /// A registry of one model already loaded (tests, `MODEL_PATH`).
    pub fn single(served: ServedModel, settings: RegistrySettings) -> Self {
        let name = served.name.clone();
        let served = Arc::new(served);
        let mut models = BTreeMap::new();
        models.insert(
            name.clone(),
            ModelEntry {
                config: ModelConfig::default(),
                versions: vec![Version {
                    served: served.clone(),
                    stamp: None,
                    rss_bytes: 0,
                }],
                problems: Vec::new(),
                unloaded: false,
            },
        );
        update_gauges(&models);
        Self {
            settings,
            snapshot: ArcSwap::from_pointee(Snapshot {
                models,
                default: Some(served),
                problems: Vec::new(),
                generation: 0,
            }),
            refreshing: Mutex::new(()),
            default_name: Some(name),
            reported: Mutex::new(BTreeSet::new()),
        }
    }

    /// Loads every model of the source, checking them all; at start-up a model the
    /// configuration asks for that cannot be loaded is an error (its configuration may mark it
    /// `optional`).
    pub fn load(settings: RegistrySettings) -> Result<Self, RefreshError> {
        match &settings.source {
            Source::File { path, name } => {
                let model = Model::load(path, settings.model_bytes)?;
                // Metric handles are taken from here on: the recorder is installed first
                // (`serve` has already done it; tests that build a registry have not).
                crate::telemetry::metrics_handle();
                let served = ServedModel::new(model, name.as_deref());
                Ok(Self::single(served, settings))
            }
            Source::Repository { root } => {
                // Loads are counted from the first: the recorder is installed first.
                crate::telemetry::metrics_handle();
                let root = root.clone();
                let registry = Self {
                    snapshot: ArcSwap::from_pointee(Snapshot::default()),
                    refreshing: Mutex::new(()),
                    default_name: None,
                    reported: Mutex::new(BTreeSet::new()),
                    settings,
                };
                let outcome = registry.refresh_repository(&root, None)?;
                let snapshot = registry.snapshot();
                if let Some(cap) = snapshot.problems.iter().find(|p| p.contains("MAX_MODELS")) {
                    return Err(RefreshError::Startup(vec![format!(
                        "the repository holds more models than MAX_MODELS ({}): {cap}; raise MAX_MODELS or remove models",
                        registry.settings.max_models
                    )]));
                }
                let missing: Vec<String> = snapshot
                    .models
                    .iter()
                    .filter(|(_, m)| m.required() && !m.is_ready())
                    .map(|(name, m)| {
                        format!(
                            "model {name:?} cannot be served ({}); mark it \"optional\": true in its {} to start without it",
                            if m.problems.is_empty() {
                                "no version selected".to_string()
                            } else {
                                m.problems.join("; ")
                            },
                            repository::CONFIG_FILE
                        )
                    })
                    .collect();
                if !missing.is_empty() {
                    return Err(RefreshError::Startup(missing));
                }
                if snapshot.models.is_empty() {
                    let mut why = vec![format!(
                        "{}: holds no model directory (<name>/<version>/<model file>)",
                        root.display()
                    )];
                    if let ReloadOutcome::Repository { problems, .. } = outcome {
                        why.extend(problems);
                    }
                    return Err(RefreshError::Startup(why));
                }
                let default_name = match &registry.settings.default_model {
                    Some(name) if !snapshot.models.contains_key(name) => {
                        return Err(RefreshError::Startup(vec![format!(
                            "DEFAULT_MODEL {name:?} is not in the repository, which holds {}",
                            listing(&snapshot.models.keys().cloned().collect::<Vec<_>>())
                        )]));
                    }
                    Some(name) => Some(name.clone()),
                    None if snapshot.models.len() == 1 => snapshot.models.keys().next().cloned(),
                    None => None,
                };
                drop(snapshot);
                let registry = Self {
                    default_name,
                    ..registry
                };
                registry.publish(|_| {});
                Ok(registry)
            }
        }
    }

    pub fn settings(&self) -> &RegistrySettings {
        &self.settings
    }

    /// The live snapshot; a request keeps the one it started with.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    pub fn default_name(&self) -> Option<&str> {
        self.default_name.as_deref()
    }

    /// The default model's latest version: `/predict`, `/predict/batch`, `/info`.
    pub fn default_model(&self) -> Result<Arc<ServedModel>, LookupError> {
        let snapshot = self.snapshot.load();
        if let Some(served) = &snapshot.default {
            return Ok(served.clone());
        }
        match &self.default_name {
            Some(name) => self.find(&snapshot, name, None),
            None => Err(LookupError::NoDefault {
                served: snapshot.models.keys().cloned().collect(),
            }),
        }
    }

    /// A model by name, and version (else its latest).
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<Arc<ServedModel>, LookupError> {
        self.find(&self.snapshot.load(), name, version)
    }

    fn find(
        &self,
        snapshot: &Snapshot,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<ServedModel>, LookupError> {
        let Some(entry) = snapshot.models.get(name) else {
            return Err(LookupError::UnknownModel {
                name: name.to_string(),
                served: snapshot.models.keys().cloned().collect(),
            });
        };
        let found = match version {
            None => entry.latest(),
            Some(v) => entry
                .versions
                .iter()
                .map(|v| &v.served)
                .find(|s| s.version == v),
        };
        match (found, version) {
            (Some(served), _) => Ok(served.clone()),
            (None, None) => Err(LookupError::Unavailable {
                name: name.to_string(),
                reason: if entry.unloaded {
                    "it was unloaded (POST /v2/repository/models/{name}/load loads it)".to_string()
                } else if entry.problems.is_empty() {
                    "its version policy selects none".to_string()
                } else {
                    entry.problems.join("; ")
                },
            }),
            (None, Some(v)) => Err(LookupError::UnknownVersion {
                name: name.to_string(),
                version: v.to_string(),
                served: entry
                    .versions
                    .iter()
                    .map(|v| v.served.version.clone())
                    .collect(),
            }),
        }
    }

    /// Builds the next snapshot from the live one and swaps it in.
    fn publish(&self, change: impl FnOnce(&mut BTreeMap<String, ModelEntry>)) {
        let live = self.snapshot.load_full();
        let mut models = live.models.clone();
        change(&mut models);
        let default = self
            .default_name
            .as_ref()
            .and_then(|name| models.get(name))
            .and_then(|m| m.latest().cloned());
        update_gauges(&models);
        self.snapshot.store(Arc::new(Snapshot {
            models,
            default,
            problems: live.problems.clone(),
            generation: live.generation + 1,
        }));
    }

    /// Refreshes from the source: the file again (`MODEL_PATH`), or the whole repository.
    pub fn refresh(&self) -> Result<ReloadOutcome, RefreshError> {
        match &self.settings.source {
            Source::File { path, name } => self.refresh_file(path, name.as_deref()),
            Source::Repository { root } => self.refresh_repository(root, None),
        }
    }

    /// Reads one model of the repository anew (`load`), or stops serving it (`unload`).
    pub fn control(&self, name: &str, load: bool) -> Result<ReloadOutcome, RefreshError> {
        let Source::Repository { root } = &self.settings.source else {
            return Err(Problem::new(
                Path::new(name),
                "the server serves one MODEL_PATH file; load and unload need MODEL_REPOSITORY",
            )
            .into());
        };
        if load {
            return self.refresh_repository(root, Some(name));
        }
        let _one = self.refreshing.lock().unwrap_or_else(|e| e.into_inner());
        let snapshot = self.snapshot();
        let Some(entry) = snapshot.models.get(name) else {
            return Err(Problem::new(&root.join(name), "is not a model this server has").into());
        };
        let unloaded: Vec<String> = entry
            .versions
            .iter()
            .map(|v| format!("{name}/{}", v.served.version))
            .collect();
        drop(snapshot);
        self.publish(|models| {
            if let Some(entry) = models.get_mut(name) {
                entry.versions.clear();
                entry.unloaded = true;
            }
        });
        for _ in &unloaded {
            metrics::counter!("model_version_unloads_total", "model" => name.to_string())
                .increment(1);
        }
        Ok(ReloadOutcome::Repository {
            loaded: Vec::new(),
            unloaded,
            problems: Vec::new(),
        })
    }

    /// The file again: a good, different model with the same API is swapped in; a model with
    /// other features, labels or outputs is refused (its clients would all get 422s and the
    /// documented schema would be wrong; that takes a restart or a new repository version).
    fn refresh_file(&self, path: &Path, name: Option<&str>) -> Result<ReloadOutcome, RefreshError> {
        let _one = self.refreshing.lock().unwrap_or_else(|e| e.into_inner());
        let loaded = Model::load(path, self.settings.model_bytes)?;
        let live = self
            .default_model()
            .map_err(|e| Problem::new(path, format!("the live model is gone: {e}")))?;
        if loaded.sha256() == live.model.sha256() {
            return Ok(ReloadOutcome::Unchanged);
        }
        if let Some(why) = api_change(&live.model, &loaded) {
            return Err(ModelError::from(ArtifactError {
                path: path.to_path_buf(),
                problem: ArtifactProblem::Inconsistent(format!(
                    "{why}; a reload may not change the API (restart the server to serve it)"
                )),
            })
            .into());
        }
        let sha256 = loaded.sha256().to_string();
        let served = Arc::new(ServedModel::new(loaded, name));
        let key = live.name.clone();
        self.publish(|models| {
            if let Some(entry) = models.get_mut(&key) {
                entry.versions = vec![Version {
                    served,
                    stamp: None,
                    rss_bytes: 0,
                }];
            }
        });
        Ok(ReloadOutcome::Swapped { sha256 })
    }

    /// Reads the repository (or one model of it) and applies what changed, model by model.
    fn refresh_repository(
        &self,
        root: &Path,
        only: Option<&str>,
    ) -> Result<ReloadOutcome, RefreshError> {
        let _one = self.refreshing.lock().unwrap_or_else(|e| e.into_inner());
        let scan = repository::scan(root)?;
        let live = self.snapshot.load_full();
        let mut loaded = Vec::new();
        let mut unloaded = Vec::new();
        let mut problems: Vec<String> = Vec::new();
        let mut next: BTreeMap<String, ModelEntry> = BTreeMap::new();
        let mut top: Vec<String> = scan.problems.iter().map(ToString::to_string).collect();
        for dir in &scan.models {
            let old = live.models.get(&dir.name);
            if only.is_some_and(|o| o != dir.name)
                || old.is_some_and(|m| m.unloaded && only.is_none())
            {
                // Not this refresh's business: kept exactly as it is.
                if let Some(old) = old {
                    next.insert(dir.name.clone(), old.clone());
                }
                continue;
            }
            if old.is_none() && next.len() >= self.settings.max_models {
                top.push(format!(
                    "{}: not loaded: MAX_MODELS ({}) models are served already",
                    dir.path.display(),
                    self.settings.max_models
                ));
                continue;
            }
            let entry = self.refresh_model(dir, old, &mut loaded, &mut unloaded);
            problems.extend(entry.problems.iter().cloned());
            next.insert(dir.name.clone(), entry);
        }
        // Models whose directory is gone: dropped once the requests using them finish.
        for (name, old) in &live.models {
            if !next.contains_key(name) && (only.is_none() || only == Some(name.as_str())) {
                for v in &old.versions {
                    unloaded.push(format!("{name}/{}", v.served.version));
                    metrics::counter!("model_version_unloads_total", "model" => name.clone())
                        .increment(1);
                }
            } else if !next.contains_key(name) {
                next.insert(name.clone(), old.clone());
            }
        }
        if let Some(name) = only
            && !next.contains_key(name)
        {
            return Err(Problem::new(
                &root.join(name),
                "is not a model directory of the repository",
            )
            .into());
        }
        problems.extend(top.iter().cloned());
        // Only problems not met before count as a failure (and are logged): a broken file
        // retried at every tick is reported once.
        let problems = self.report(&problems);
        let changed = !loaded.is_empty()
            || !unloaded.is_empty()
            || next.len() != live.models.len()
            || next.iter().any(|(k, m)| {
                live.models.get(k).is_none_or(|o| {
                    o.problems != m.problems || o.config != m.config || o.unloaded != m.unloaded
                })
            })
            || live.problems != top;
        if changed {
            let default = self
                .default_name
                .as_ref()
                .and_then(|name| next.get(name))
                .and_then(|m| m.latest().cloned());
            update_gauges(&next);
            self.snapshot.store(Arc::new(Snapshot {
                models: next,
                default,
                problems: top,
                generation: live.generation + 1,
            }));
        }
        if loaded.is_empty() && unloaded.is_empty() && problems.is_empty() {
            return Ok(ReloadOutcome::Unchanged);
        }
        Ok(ReloadOutcome::Repository {
            loaded,
            unloaded,
            problems,
        })
    }

    /// One model's next entry: the selected versions, reusing those loaded from an unchanged
    /// file, loading the others; a version that fails keeps its predecessor serving.
    fn refresh_model(
        &self,
        dir: &repository::ModelDir,
        old: Option<&ModelEntry>,
        loaded: &mut Vec<String>,
        unloaded: &mut Vec<String>,
    ) -> ModelEntry {
        let name = &dir.name;
        let mut problems: Vec<String> = dir.problems.iter().map(ToString::to_string).collect();
        let config = match &dir.config {
            Ok((config, _)) => config.clone(),
            Err(problem) => {
                problems.push(problem.to_string());
                // A bad configuration changes nothing that serves.
                return match old {
                    Some(old) => ModelEntry {
                        problems: cap(problems),
                        unloaded: false,
                        ..old.clone()
                    },
                    None => ModelEntry {
                        config: ModelConfig::default(),
                        versions: Vec::new(),
                        problems: cap(problems),
                        unloaded: false,
                    },
                };
            }
        };
        let batch_rows = config.max_batch_rows.map_or(self.settings.batch_rows, |n| {
            n.min(self.settings.batch_rows)
        });
        let old_versions: &[Version] = old.map_or(&[], |o| &o.versions);
        let mut versions: Vec<Version> = Vec::new();
        let mut failed = 0;
        for file in dir.selected() {
            let key = file.number.to_string();
            let same = old_versions.iter().find(|v| {
                v.served.version == key
                    && v.stamp == Some(file.stamp)
                    && v.served.batch_rows == batch_rows
            });
            if let Some(same) = same {
                versions.push(same.clone());
                continue;
            }
            let before = resident_bytes();
            match Model::load(&file.path, self.settings.model_bytes) {
                Ok(model) => {
                    let served = ServedModel::versioned(model, name, &key, batch_rows);
                    versions.push(Version {
                        served: Arc::new(served),
                        stamp: Some(file.stamp),
                        rss_bytes: resident_bytes().saturating_sub(before),
                    });
                    loaded.push(format!("{name}/{key}"));
                    metrics::counter!("model_version_loads_total", "model" => name.clone(), "outcome" => "success").increment(1);
                }
                Err(e) => {
                    failed += 1;
                    problems.push(format!("version {key}: {e}"));
                    if self.first_report(&e.to_string()) {
                        metrics::counter!("model_version_loads_total", "model" => name.clone(), "outcome" => "failure").increment(1);
                    }
                    // The version loaded before from this directory keeps serving.
                    if let Some(previous) = old_versions.iter().find(|v| v.served.version == key) {
                        versions.push(previous.clone());
                        failed -= 1;
                    }
                }
            }
        }
        // A new version that failed does not take a good one's place: the live versions still
        // on disk stay, newest first, one per failure.
        if failed > 0 {
            let on_disk: Vec<String> = dir.versions.iter().map(|v| v.number.to_string()).collect();
            let mut keep: Vec<&Version> = old_versions
                .iter()
                .filter(|v| on_disk.contains(&v.served.version))
                .filter(|v| {
                    !versions
                        .iter()
                        .any(|n| n.served.version == v.served.version)
                })
                .collect();
            keep.reverse();
            versions.extend(keep.into_iter().take(failed).cloned());
        }
        versions.sort_by_key(|v| v.served.version.parse::<u64>().unwrap_or(0));
        for v in old_versions {
            let kept = versions.iter().any(|n| Arc::ptr_eq(&n.served, &v.served));
            if !kept {
                unloaded.push(format!("{name}/{}", v.served.version));
                metrics::counter!("model_version_unloads_total", "model" => name.clone())
                    .increment(1);
            }
        }
        ModelEntry {
            config,
            versions,
            problems: cap(problems),
            unloaded: false,
        }
    }

    /// Logs the problems not met in the last refresh, and returns them.
    fn report(&self, problems: &[String]) -> Vec<String> {
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        let now: BTreeSet<String> = problems.iter().cloned().collect();
        let new: Vec<String> = now.difference(&reported).cloned().collect();
        for problem in &new {
            tracing::error!(problem = %problem, "model repository problem; the rest keeps serving");
        }
        *reported = now;
        new
    }

    fn first_report(&self, problem: &str) -> bool {
        let reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        !reported.iter().any(|p| p.ends_with(problem))
    }
}

/// Why `new` may not replace `old` under the same name and version, if it may not.
pub fn api_change(old: &Model, new: &Model) -> Option<String> {
    let names = |it: &[String]| it.join(", ");
    if new.kind() != old.kind() || new.outputs() != old.outputs() {
        let outs = |m: &Model| {
            m.outputs()
                .iter()
                .map(|o| o.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Some(format!(
            "it is a {} model with outputs [{}], the live one a {} model with [{}]",
            new.kind(),
            outs(new),
            old.kind(),
            outs(old)
        ));
    }
    if new.features() != old.features() {
        return Some(format!(
            "its features [{}] differ from the live model's [{}]",
            names(new.features()),
            names(old.features())
        ));
    }
    if new.classes() != old.classes() {
        return Some(format!(
            "its labels [{}] differ from the live model's [{}]",
            names(&new.classes()),
            names(&old.classes())
        ));
    }
    None
}

fn cap(mut problems: Vec<String>) -> Vec<String> {
    if problems.len() > MAX_PROBLEMS {
        let more = problems.len() - MAX_PROBLEMS + 1;
        problems.truncate(MAX_PROBLEMS - 1);
        problems.push(format!("and {more} more problems"));
    }
    problems
}

fn update_gauges(models: &BTreeMap<String, ModelEntry>) {
    metrics::gauge!("models_loaded").set(models.values().filter(|m| m.is_ready()).count() as f64);
    metrics::gauge!("model_versions_loaded")
        .set(models.values().map(|m| m.versions.len()).sum::<usize>() as f64);
}

/// The process's resident memory, in bytes (0 where /proc is not there).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}
