//! A model repository on disk, laid out as Triton's and TF Serving's are:
//! `<repo>/<model name>/<version number>/<model file>`, with an optional
//! `<repo>/<model name>/config.json` (the version policy, a display name, labels, limits).
//! This module reads the layout and the configuration and applies the version policy; it loads
//! no model (the server's registry and `score` do, through [`crate::model::Model`]).
//!
//! Entries whose name starts with `.` are skipped (temporary files, Kubernetes' `..data`
//! links). Symbolic links are followed (mounted volumes are made of them); a loop is a problem
//! naming its path. Every problem names the path it concerns, and spoils only what it concerns:
//! a bad version directory only that version, a bad configuration only that model.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The per-model configuration file, beside the version directories.
pub const CONFIG_FILE: &str = "config.json";
/// The largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;
/// The most labels a model's configuration may hold, and their longest key and value.
const MAX_LABELS: usize = 16;
const MAX_LABEL_CHARS: usize = 128;

/// A model's configuration (`<repo>/<name>/config.json`); every field is optional and an
/// unknown field is an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Which versions to serve; `{"latest": {"num_versions": 1}}` when absent.
    #[serde(default)]
    pub version_policy: VersionPolicy,
    /// A human-readable name for listings (the directory name stays the model's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Free-form key/value labels for listings (at most 16).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// When true, the server starts (and stays ready) even if this model cannot be loaded.
    #[serde(default)]
    pub optional: bool,
    /// Most rows in one batch request for this model (at most the server's `MAX_BATCH_ROWS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch_rows: Option<usize>,
}

/// Which of a model's versions are served, as TF Serving and Triton name the choices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum VersionPolicy {
    /// The `num_versions` highest version numbers.
    Latest { num_versions: usize },
    /// Every version.
    All {},
    /// These version numbers (those present).
    Specific { versions: Vec<u64> },
}

impl Default for VersionPolicy {
    fn default() -> Self {
        Self::Latest { num_versions: 1 }
    }
}

impl VersionPolicy {
    /// The versions to serve among `available` (any order); ascending.
    pub fn select(&self, available: &[u64]) -> Vec<u64> {
        let mut sorted = available.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        match self {
            Self::Latest { num_versions } => {
                let skip = sorted.len().saturating_sub(*num_versions);
                sorted.split_off(skip)
            }
            Self::All {} => sorted,
            Self::Specific { versions } => sorted
                .into_iter()
                .filter(|v| versions.contains(v))
                .collect(),
        }
    }
}

impl ModelConfig {
    /// Reads and checks `<dir>/config.json`; its absence is the default configuration.
    pub fn read(dir: &Path) -> Result<(Self, Option<Stamp>), Problem> {
        let path = dir.join(CONFIG_FILE);
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Self::default(), None));
            }
            Err(e) => return Err(Problem::new(&path, format!("cannot read it: {e}"))),
        };
        if !meta.is_file() {
            return Err(Problem::new(&path, "is not a regular file"));
        }
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(Problem::new(
                &path,
                format!("is larger than {MAX_CONFIG_BYTES} bytes"),
            ));
        }
        let bytes = std::fs::read(&path)
            .map_err(|e| Problem::new(&path, format!("cannot read it: {e}")))?;
        let config: Self = serde_json::from_slice(&bytes)
            .map_err(|e| Problem::new(&path, format!("is not a valid model configuration: {e}")))?;
        config.check().map_err(|m| Problem::new(&path, m))?;
        Ok((config, Some(Stamp::of(&meta))))
    }

    fn check(&self) -> Result<(), String> {
        match &self.version_policy {
            VersionPolicy::Latest { num_versions } if *num_versions == 0 => {
                return Err("version_policy.latest.num_versions must be at least 1".into());
            }
            VersionPolicy::Specific { versions } if versions.is_empty() => {
                return Err(
                    "version_policy.specific.versions must list at least one version".into(),
                );
            }
            _ => {}
        }
        if self
            .display_name
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_LABEL_CHARS)
        {
            return Err(format!(
                "display_name is longer than {MAX_LABEL_CHARS} characters"
            ));
        }
        if self.labels.len() > MAX_LABELS {
            return Err(format!("labels holds more than {MAX_LABELS} entries"));
        }
        if let Some((k, _)) = self.labels.iter().find(|(k, v)| {
            k.chars().count() > MAX_LABEL_CHARS || v.chars().count() > MAX_LABEL_CHARS
        }) {
            let k: String = k.chars().take(32).collect();
            return Err(format!(
                "label {k:?}: keys and values hold at most {MAX_LABEL_CHARS} characters"
            ));
        }
        if self.max_batch_rows == Some(0) {
            return Err("max_batch_rows must be at least 1".into());
        }
        Ok(())
    }
}

/// Something wrong in the repository, with the path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub message: String,
}

impl Problem {
    pub fn new(path: &Path, message: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for Problem {}

/// A file's identity for change detection: modification time and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub modified: Option<SystemTime>,
    pub len: u64,
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            modified: meta.modified().ok(),
            len: meta.len(),
        }
    }
}

/// One version directory that holds exactly one model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionFile {
    pub number: u64,
    pub path: PathBuf,
    /// The model file's stamp and, for an ONNX model, its sidecar's.
    pub stamp: (Stamp, Option<Stamp>),
}

/// One model directory as found on disk.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub name: String,
    pub path: PathBuf,
    /// The configuration, or what is wrong with it (the model is then not served anew).
    pub config: Result<(ModelConfig, Option<Stamp>), Problem>,
    /// Every good version directory, ascending.
    pub versions: Vec<VersionFile>,
    /// Bad version directories and stray entries: each spoils only itself.
    pub problems: Vec<Problem>,
}

impl ModelDir {
    /// The version files the policy selects (none when the configuration is bad).
    pub fn selected(&self) -> Vec<&VersionFile> {
        let Ok((config, _)) = &self.config else {
            return Vec::new();
        };
        let numbers: Vec<u64> = self.versions.iter().map(|v| v.number).collect();
        let chosen = config.version_policy.select(&numbers);
        self.versions
            .iter()
            .filter(|v| chosen.contains(&v.number))
            .collect()
    }
}

/// The whole repository as found on disk, in name order.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub models: Vec<ModelDir>,
    /// Entries at the top that are not model directories.
    pub problems: Vec<Problem>,
}

/// The extensions of model files: ONNX graphs and our gzip artifacts.
fn is_model_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".onnx") || lower.ends_with(".gz")
}

/// A name as it may appear in URLs and metric labels: 1 to 64 of `A-Z a-z 0-9 _ - .`.
pub fn valid_model_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The visible entries of a directory, sorted by name; `.`-prefixed ones are skipped.
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, Problem> {
    let read =
        std::fs::read_dir(dir).map_err(|e| Problem::new(dir, format!("cannot list it: {e}")))?;
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| Problem::new(dir, format!("cannot list it: {e}")))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            out.push((String::new(), entry.path()));
            continue;
        };
        if !name.starts_with('.') {
            out.push((name.to_string(), entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Follows links; a loop or a dangling link is a problem naming the path.
fn metadata(path: &Path) -> Result<std::fs::Metadata, Problem> {
    std::fs::metadata(path).map_err(|e| {
        let what = if e.raw_os_error() == Some(40) {
            "is a symbolic link loop".to_string()
        } else {
            format!("cannot be read: {e}")
        };
        Problem::new(path, what)
    })
}

/// Reads the repository at `root`. Only an unreadable root is an error; every other problem
/// is recorded beside what it concerns.
pub fn scan(root: &Path) -> Result<Scan, Problem> {
    let meta = metadata(root)?;
    if !meta.is_dir() {
        return Err(Problem::new(root, "is not a directory (MODEL_REPOSITORY)"));
    }
    let mut scan = Scan::default();
    for (name, path) in entries(root)? {
        let meta = match metadata(&path) {
            Ok(meta) => meta,
            Err(p) => {
                scan.problems.push(p);
                continue;
            }
        };
        if !meta.is_dir() {
            scan.problems.push(Problem::new(
                &path,
                "is a file where a model directory (<name>/<version>/<model file>) belongs",
            ));
            continue;
        }
        if !valid_model_name(&name) {
            scan.problems.push(Problem::new(
                &path,
                "is not a valid model name (1 to 64 of A-Z, a-z, 0-9, '_', '-', '.')",
            ));
            continue;
        }
        scan.models.push(model_dir(name, path));
    }
    Ok(scan)
}

fn model_dir(name: String, path: PathBuf) -> ModelDir {
    let mut dir = ModelDir {
        config: ModelConfig::read(&path),
        name,
        versions: Vec::new(),
        problems: Vec::new(),
        path,
    };
    let listed = match entries(&dir.path) {
        Ok(listed) => listed,
        Err(p) => {
            dir.problems.push(p);
            return dir;
        }
    };
    for (entry, path) in listed {
        if entry == CONFIG_FILE {
            continue;
        }
        let meta = match metadata(&path) {
            Ok(meta) => meta,
            Err(p) => {
                dir.problems.push(p);
                continue;
            }
        };
        let number = entry
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0 && !entry.starts_with('+'));
        match (meta.is_dir(), number) {
            (true, Some(number)) => match version_file(&path, number) {
                Ok(v) => dir.versions.push(v),
                Err(p) => dir.problems.push(p),
            },
            (true, None) => dir.problems.push(Problem::new(
                &path,
                "is not a version directory: its name must be a number of 1 or more",
            )),
            (false, _) => dir.problems.push(Problem::new(
                &path,
                format!(
                    "is a file where a version directory belongs (only {CONFIG_FILE} may sit beside them)"
                ),
            )),
        }
    }
    dir.versions.sort_by_key(|v| v.number);
    if dir.versions.is_empty() && dir.problems.is_empty() {
        dir.problems
            .push(Problem::new(&dir.path, "holds no version directory"));
    }
    dir
}

fn version_file(dir: &Path, number: u64) -> Result<VersionFile, Problem> {
    let mut models = Vec::new();
    for (name, path) in entries(dir)? {
        let meta = metadata(&path)?;
        if !meta.is_file() {
            return Err(Problem::new(&path, "is not a regular file"));
        }
        if is_model_file(&name) {
            models.push((path, meta));
        } else if !name.to_ascii_lowercase().ends_with(".json") {
            return Err(Problem::new(
                &path,
                "is not a model file (*.onnx, or our *.gz artifact) nor an ONNX sidecar (*.json)",
            ));
        }
    }
    match models.len() {
        0 => Err(Problem::new(
            dir,
            "holds no model file (*.onnx, or our *.gz artifact)",
        )),
        1 => {
            let (path, meta) = models.remove(0);
            let sidecar = std::fs::metadata(path.with_extension("json"))
                .ok()
                .map(|m| Stamp::of(&m));
            Ok(VersionFile {
                number,
                stamp: (Stamp::of(&meta), sidecar),
                path,
            })
        }
        n => Err(Problem::new(
            dir,
            format!(
                "holds {n} model files ({}); a version holds exactly one",
                models
                    .iter()
                    .filter_map(|(p, _)| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// The model file of `name` in the repository at `root`: version `version` if given (any
/// good version on disk), else the latest its version policy selects (what the server serves
/// as `latest`). Used by `score --model-repository`.
pub fn resolve(root: &Path, name: &str, version: Option<u64>) -> Result<PathBuf, Problem> {
    let scan = scan(root)?;
    let Some(dir) = scan.models.iter().find(|m| m.name == name) else {
        let names: Vec<&str> = scan.models.iter().map(|m| m.name.as_str()).collect();
        return Err(Problem::new(
            &root.join(name),
            format!(
                "is not a model of the repository (it holds {})",
                names.join(", ")
            ),
        ));
    };
    if let Err(problem) = &dir.config {
        return Err(problem.clone());
    }
    let found = match version {
        Some(v) => dir.versions.iter().find(|f| f.number == v),
        None => dir.selected().into_iter().last(),
    };
    found.map(|f| f.path.clone()).ok_or_else(|| {
        let mut why = match version {
            Some(v) => format!("has no usable version {v}"),
            None => "has no version its policy selects".to_string(),
        };
        if !dir.problems.is_empty() {
            why.push_str(": ");
            why.push_str(
                &dir.problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        }
        Problem::new(&dir.path, why)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_select_as_documented() {
        let available = [3, 1, 10, 2];
        assert_eq!(VersionPolicy::default().select(&available), vec![10]);
        assert_eq!(
            VersionPolicy::Latest { num_versions: 2 }.select(&available),
            vec![3, 10]
        );
        assert_eq!(
            VersionPolicy::Latest { num_versions: 9 }.select(&available),
            vec![1, 2, 3, 10]
        );
        assert_eq!(VersionPolicy::All {}.select(&available), vec![1, 2, 3, 10]);
        assert_eq!(
            VersionPolicy::Specific {
                versions: vec![2, 7]
            }
            .select(&available),
            vec![2]
        );
    }

    #[test]
    fn resolve_finds_the_latest_or_the_named_version() {
        let dir = tempfile::tempdir().unwrap();
        for v in [1, 2, 10] {
            let d = dir.path().join(format!("m/{v}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("model.dat.gz"), b"x").unwrap();
        }
        std::fs::create_dir_all(dir.path().join("m/11")).unwrap(); // empty: not usable
        let latest = resolve(dir.path(), "m", None).unwrap();
        assert!(
            latest.ends_with("m/10/model.dat.gz"),
            "{}",
            latest.display()
        );
        assert!(
            resolve(dir.path(), "m", Some(2))
                .unwrap()
                .ends_with("m/2/model.dat.gz")
        );
        let err = resolve(dir.path(), "m", Some(11)).unwrap_err().to_string();
        assert!(
            err.contains("no usable version 11") && err.contains("holds no model file"),
            "{err}"
        );
        let err = resolve(dir.path(), "x", None).unwrap_err().to_string();
        assert!(
            err.contains("not a model of the repository (it holds m)"),
            "{err}"
        );
    }

    #[test]
    fn configuration_reads_the_documented_json_and_refuses_unknown_fields() {
        let config: ModelConfig = serde_json::from_str(
            r#"{"version_policy": {"specific": {"versions": [1, 3]}}, "display_name": "Cancer",
                "labels": {"team": "ml"}, "optional": true, "max_batch_rows": 10}"#,
        )
        .unwrap();
        assert_eq!(
            config.version_policy,
            VersionPolicy::Specific {
                versions: vec![1, 3]
            }
        );
        assert!(config.optional);
        let all: ModelConfig = serde_json::from_str(r#"{"version_policy": {"all": {}}}"#).unwrap();
        assert_eq!(all.version_policy, VersionPolicy::All {});
        let err = serde_json::from_str::<ModelConfig>(r#"{"versions": 2}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `versions`"),
            "{err}"
        );
        let bad = ModelConfig {
            version_policy: VersionPolicy::Latest { num_versions: 0 },
            ..ModelConfig::default()
        };
        assert!(bad.check().unwrap_err().contains("num_versions"));
    }
}
