//! The model artifact: one gzip-compressed JSON file holding the fitted pipeline and everything
//! needed to serve and explain it. Written atomically; every load is checked before use.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder, read::GzDecoder};
use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::evaluate::HeldOutMetrics;
use crate::pipeline::FittedPipeline;

/// The format name written into every artifact; a file without it is not ours.
pub const FORMAT_NAME: &str = "ml-serving-model";
/// The only format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Where the project keeps its model (relative to the repository; `/model/...` in containers).
pub const DEFAULT_MODEL_PATH: &str = "model/model_binary.dat.gz";
pub const DEFAULT_MODEL_NAME: &str = "breast_model";
/// The default bound on an artifact, compressed or inflated (the bundled one inflates to about
/// 20 KB): a larger one is refused (a gzip bomb, or not ours) before it can use more memory.
pub const DEFAULT_MAX_MODEL_BYTES: u64 = 16 * 1024 * 1024;

/// The names of the two classes: prediction 0 is `negative`, 1 is `positive`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassLabels {
    pub negative: String,
    pub positive: String,
}

impl ClassLabels {
    pub fn name(&self, positive: bool) -> &str {
        if positive {
            &self.positive
        } else {
            &self.negative
        }
    }
}

/// How the model was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    /// File name of the training CSV (no directories, so the artifact does not depend on them).
    pub data_file: String,
    pub data_sha256: String,
    pub target_column: String,
    pub seed: u64,
    pub test_fraction: f64,
    pub train_rows: u64,
    pub test_rows: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelArtifact {
    pub format: String,
    pub format_version: u32,
    pub name: String,
    pub version: String,
    /// RFC 3339, UTC: the only field that differs between two trainings on the same inputs.
    pub created_at: String,
    pub ml_serving_version: String,
    pub feature_names: Vec<String>,
    pub labels: ClassLabels,
    /// One valid input row, in feature order: the server's start-up self-check and the client's default.
    pub sample: Vec<f64>,
    pub training: TrainingRecord,
    pub metrics: HeldOutMetrics,
    pub pipeline: FittedPipeline,
}

#[derive(Debug, thiserror::Error)]
#[error("model artifact {path}: {problem}")]
pub struct ArtifactError {
    pub path: PathBuf,
    pub problem: ArtifactProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactProblem {
    #[error("no such file")]
    NotFound,
    #[error("cannot read or write it: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an ml-serving model ({0})")]
    NotOurs(String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("corrupt or truncated ({0})")]
    Corrupt(String),
    #[error(
        "format version {found} is not supported by this ml-serving (it reads version {expected}); use a matching release or retrain"
    )]
    UnsupportedFormat { found: u32, expected: u32 },
    #[error("inconsistent model: {0}")]
    Inconsistent(String),
    #[error("the model fails its self-check on the stored sample row: {0}")]
    SelfCheck(String),
}

/// A checked artifact, with the SHA-256 of the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    pub artifact: ModelArtifact,
    pub path: PathBuf,
    pub sha256: String,
}

#[derive(Deserialize)]
struct FormatHeader {
    format: Option<String>,
    format_version: Option<u32>,
}

impl ModelArtifact {
    /// The artifact as its final bytes: compact JSON, gzip with no timestamp or file name.
    pub fn to_bytes(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("the artifact is plain data");
        let mut gz = GzBuilder::new().write(Vec::new(), Compression::best());
        gz.write_all(&json).expect("writing to memory");
        gz.finish().expect("writing to memory")
    }

    /// Writes the artifact atomically: a temporary file beside `path`, synced, then renamed
    /// over it. A failure leaves whatever was at `path` untouched.
    pub fn save(&self, path: &Path) -> Result<(), ArtifactError> {
        crate::atomic_file::write(path, &self.to_bytes()).map_err(|e| ArtifactError {
            path: path.to_path_buf(),
            problem: ArtifactProblem::Io(e),
        })
    }

    /// Parses and checks an artifact from its bytes (see [`LoadedModel::load`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ArtifactProblem> {
        Self::from_bytes_bounded(bytes, DEFAULT_MAX_MODEL_BYTES)
    }

    /// As [`Self::from_bytes`], refusing an artifact that inflates to more than `max_bytes`:
    /// inflation stops there, so memory stays within about twice the bound.
    pub fn from_bytes_bounded(bytes: &[u8], max_bytes: u64) -> Result<Self, ArtifactProblem> {
        if !bytes.starts_with(&[0x1f, 0x8b]) {
            return Err(ArtifactProblem::NotOurs(
                "it is not gzip-compressed".to_string(),
            ));
        }
        let mut json = Vec::new();
        GzDecoder::new(bytes)
            .take(max_bytes.saturating_add(1))
            .read_to_end(&mut json)
            .map_err(|e| ArtifactProblem::Corrupt(format!("gzip: {e}")))?;
        if json.len() as u64 > max_bytes {
            return Err(ArtifactProblem::TooLarge(format!(
                "it decompresses to more than {max_bytes} bytes (MAX_MODEL_BYTES)"
            )));
        }
        let header: FormatHeader = serde_json::from_slice(&json).map_err(|e| {
            ArtifactProblem::NotOurs(format!(
                "its content is not an ml-serving JSON document: {e}"
            ))
        })?;
        match header.format.as_deref() {
            Some(FORMAT_NAME) => {}
            Some(other) => {
                return Err(ArtifactProblem::NotOurs(format!(
                    "its format is {other:?}, expected {FORMAT_NAME:?}"
                )));
            }
            None => {
                return Err(ArtifactProblem::NotOurs(
                    "it has no format name".to_string(),
                ));
            }
        }
        match header.format_version {
            Some(FORMAT_VERSION) => {}
            Some(found) => {
                return Err(ArtifactProblem::UnsupportedFormat {
                    found,
                    expected: FORMAT_VERSION,
                });
            }
            None => return Err(ArtifactProblem::Corrupt("no format_version".to_string())),
        }
        let artifact: ModelArtifact = serde_json::from_slice(&json)
            .map_err(|e| ArtifactProblem::Corrupt(format!("bad model data: {e}")))?;
        artifact.check()?;
        Ok(artifact)
    }

    /// Checks that every part agrees on the model's width and that the sample row predicts.
    fn check(&self) -> Result<(), ArtifactProblem> {
        let width = self.feature_names.len();
        let inconsistent = |what: &str, n: usize| {
            ArtifactProblem::Inconsistent(format!(
                "{width} feature names but {what} has {n} values"
            ))
        };
        if width == 0 {
            return Err(ArtifactProblem::Inconsistent("no features".to_string()));
        }
        for (i, name) in self.feature_names.iter().enumerate() {
            if self.feature_names[..i].contains(name) {
                return Err(ArtifactProblem::Inconsistent(format!(
                    "feature {name:?} is listed twice"
                )));
            }
        }
        let p = &self.pipeline;
        for (what, n) in [
            ("the imputer", p.imputer.means.len()),
            ("the scaler's minimum", p.scaler.min.len()),
            ("the scaler's maximum", p.scaler.max.len()),
            ("the logistic regression", p.models.logistic.params().len()),
            ("the sample row", self.sample.len()),
        ] {
            if n != width {
                return Err(inconsistent(what, n));
            }
        }
        if let Some(&f) = p.models.tree.features().iter().find(|&&f| f >= width) {
            return Err(ArtifactProblem::Inconsistent(format!(
                "the decision tree splits on feature {f}, beyond the model's {width} features"
            )));
        }
        svm_width_matches(&p.models.svm, width)?;
        let numbers = p
            .imputer
            .means
            .iter()
            .chain(&p.scaler.min)
            .chain(&p.scaler.max);
        if numbers.chain(&self.sample).any(|v| !v.is_finite()) {
            return Err(ArtifactProblem::Inconsistent(
                "a stored mean, range or sample value is not a finite number".to_string(),
            ));
        }
        if self.labels.negative == self.labels.positive {
            return Err(ArtifactProblem::Inconsistent(
                "both classes have the same label".to_string(),
            ));
        }
        // The SVM's support vectors are private to linfa; a width mismatch there would panic
        // inside linfa, so the self-check runs behind catch_unwind, once, at load time.
        let sample = ArrayView2::from_shape((1, width), &self.sample).expect("checked width");
        std::panic::catch_unwind(|| p.votes(sample))
            .map_err(|_| ArtifactProblem::SelfCheck("the model panicked".to_string()))?
            .map_err(|e| ArtifactProblem::SelfCheck(e.to_string()))?;
        Ok(())
    }
}

/// The SVM's support vectors are private to linfa, and its kernel silently zips rows of
/// different widths; their shape is read from the SVM's own serialised form instead.
fn svm_width_matches(svm: &linfa_svm::Svm<f64, bool>, width: usize) -> Result<(), ArtifactProblem> {
    let value = serde_json::to_value(svm)
        .map_err(|e| ArtifactProblem::Inconsistent(format!("the SVM cannot be inspected: {e}")))?;
    let plane = &value["sep_hyperplane"];
    let found = if let Some(dim) = plane["WeightedCombination"]["dim"].as_array() {
        let n = |i: usize| dim.get(i).and_then(serde_json::Value::as_u64);
        match (n(0), n(1)) {
            (Some(rows), Some(cols)) if rows as usize == svm.nsupport() => cols as usize,
            _ => {
                return Err(ArtifactProblem::Inconsistent(format!(
                    "the SVM's support vectors have shape {dim:?}, but it has {} of them",
                    svm.nsupport()
                )));
            }
        }
    } else if let Some(weights) = plane["Linear"]["data"].as_array() {
        weights.len()
    } else {
        return Err(ArtifactProblem::Inconsistent(
            "the SVM has no separating hyperplane".to_string(),
        ));
    };
    if found != width {
        return Err(ArtifactProblem::Inconsistent(format!(
            "{width} feature names but the SVM's support vectors have {found} values"
        )));
    }
    Ok(())
}

impl LoadedModel {
    /// Reads, decompresses, parses and checks the artifact at `path`.
    pub fn load(path: &Path) -> Result<Self, ArtifactError> {
        Self::load_bounded(path, DEFAULT_MAX_MODEL_BYTES)
    }

    /// As [`Self::load`], refusing a file, or its inflated content, larger than `max_bytes`
    /// before reading or inflating past the bound.
    pub fn load_bounded(path: &Path, max_bytes: u64) -> Result<Self, ArtifactError> {
        let fail = |problem| ArtifactError {
            path: path.to_path_buf(),
            problem,
        };
        let io = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ArtifactProblem::NotFound
            } else {
                ArtifactProblem::Io(e)
            }
        };
        let file = std::fs::File::open(path).map_err(|e| fail(io(e)))?;
        let mut bytes = Vec::new();
        file.take(max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| fail(io(e)))?;
        if bytes.len() as u64 > max_bytes {
            return Err(fail(ArtifactProblem::TooLarge(format!(
                "the file is larger than {max_bytes} bytes (MAX_MODEL_BYTES)"
            ))));
        }
        let artifact = ModelArtifact::from_bytes_bounded(&bytes, max_bytes).map_err(fail)?;
        Ok(Self {
            artifact,
            path: path.to_path_buf(),
            sha256: hex::encode(Sha256::digest(&bytes)),
        })
    }

    pub fn width(&self) -> usize {
        self.artifact.feature_names.len()
    }
}
