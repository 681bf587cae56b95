//! The sidecar next to a model (`model.onnx` + `model.json`): its name and version, feature
//! names, class labels, and sample rows with the answers the training library gave, checked
//! against the model at load so that an export that disagrees with its source is refused.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::model::{Dim, OnnxModel, OutputKind};
use super::tensor::{Data, ElemType};
use super::{OnnxError, Value};

/// The largest sidecar file we read.
pub const MAX_SIDECAR_BYTES: u64 = 1 << 20;
/// The most sample rows a sidecar may carry.
pub const MAX_SAMPLES: usize = 1000;
/// The longest name, version, feature name or string label.
pub const MAX_NAME_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sidecar {
    /// The model's name (letters, digits, `.`, `_`, `-`).
    pub name: Option<String>,
    /// Its version (same characters).
    pub version: Option<String>,
    /// One name per input column, in order.
    #[serde(default)]
    pub feature_names: Vec<String>,
    /// The class labels, in the order of the model's score columns.
    #[serde(default)]
    pub class_labels: Vec<LabelValue>,
    /// Rows with the answer the training library gave for them.
    #[serde(default)]
    pub samples: Vec<Sample>,
}

/// A class label: an integer or a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LabelValue {
    Int(i64),
    Str(String),
}

impl std::fmt::Display for LabelValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabelValue::Int(i) => write!(f, "{i}"),
            LabelValue::Str(s) => write!(f, "{s:?}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// The row (`null` for a missing value).
    pub features: Vec<Option<f64>>,
    /// A classifier's expected label.
    pub label: Option<LabelValue>,
    /// A regressor's expected value (matched within 1e-5 + 1e-4 x |value|).
    pub value: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error("reading {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the sidecar is {size} bytes, more than the {MAX_SIDECAR_BYTES} accepted")]
    TooLarge { size: u64 },
    #[error("the sidecar is not valid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the sidecar's {field} {problem}")]
    Invalid { field: String, problem: String },
    #[error("sample {sample}: the model answers {got}, the sidecar expects {expected}")]
    Mismatch {
        sample: usize,
        expected: String,
        got: String,
    },
    #[error("evaluating the samples")]
    Model(#[from] OnnxError),
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> SidecarError {
    SidecarError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

fn check_name(field: &str, value: &str) -> Result<(), SidecarError> {
    if value.is_empty()
        || value.len() > MAX_NAME_LEN
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(invalid(
            field,
            format!("{value:?} must be 1 to {MAX_NAME_LEN} letters, digits, '.', '_' or '-'"),
        ));
    }
    Ok(())
}

impl Sidecar {
    /// Where the sidecar of a model lives: the same path with the extension `.json`.
    pub fn path_for(model: &Path) -> PathBuf {
        model.with_extension("json")
    }

    /// Reads the sidecar of `model` if there is one.
    pub fn find_for(model: &Path) -> Result<Option<Sidecar>, SidecarError> {
        let path = Self::path_for(model);
        if path.exists() {
            Self::load(&path).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn load(path: &Path) -> Result<Sidecar, SidecarError> {
        let io = |source| SidecarError::Io {
            path: path.display().to_string(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_SIDECAR_BYTES {
            return Err(SidecarError::TooLarge { size });
        }
        Self::parse(&std::fs::read(path).map_err(io)?)
    }

    /// Parses and checks the fields that do not need the model.
    pub fn parse(bytes: &[u8]) -> Result<Sidecar, SidecarError> {
        if bytes.len() as u64 > MAX_SIDECAR_BYTES {
            return Err(SidecarError::TooLarge {
                size: bytes.len() as u64,
            });
        }
        let s: Sidecar = serde_json::from_slice(bytes)?;
        if let Some(n) = &s.name {
            check_name("name", n)?;
        }
        if let Some(v) = &s.version {
            check_name("version", v)?;
        }
        for (i, f) in s.feature_names.iter().enumerate() {
            if f.is_empty() || f.len() > MAX_NAME_LEN || f.chars().any(char::is_control) {
                return Err(invalid(
                    format!("feature_names[{i}]"),
                    format!("must be 1 to {MAX_NAME_LEN} printable characters"),
                ));
            }
            if s.feature_names[..i].contains(f) {
                return Err(invalid(
                    format!("feature_names[{i}]"),
                    format!("{f:?} is repeated"),
                ));
            }
        }
        for (i, l) in s.class_labels.iter().enumerate() {
            if matches!(l, LabelValue::Str(t) if t.len() > MAX_NAME_LEN) {
                return Err(invalid(format!("class_labels[{i}]"), "is too long"));
            }
            if s.class_labels[..i].contains(l) {
                return Err(invalid(
                    format!("class_labels[{i}]"),
                    format!("{l} is repeated"),
                ));
            }
        }
        if s.samples.len() > MAX_SAMPLES {
            return Err(invalid(
                "samples",
                format!("has more than {MAX_SAMPLES} rows"),
            ));
        }
        for (i, sample) in s.samples.iter().enumerate() {
            if sample.label.is_some() == sample.value.is_some() {
                return Err(invalid(
                    format!("samples[{i}]"),
                    "needs exactly one of label and value",
                ));
            }
        }
        Ok(s)
    }

    /// Checks the sidecar against the model: feature count, class labels, and every sample's
    /// answer.
    pub fn check(&self, model: &OnnxModel) -> Result<(), SidecarError> {
        let width = model.input().width;
        if !self.feature_names.is_empty() && self.feature_names.len() != width {
            return Err(invalid(
                "feature_names",
                format!(
                    "has {} names, the model takes {width} features",
                    self.feature_names.len()
                ),
            ));
        }
        for o in model.outputs() {
            if let OutputKind::Maps { classes, .. } = o.kind
                && !self.class_labels.is_empty()
                && classes != self.class_labels.len()
            {
                return Err(invalid(
                    "class_labels",
                    format!(
                        "has {} labels, the model scores {classes} classes",
                        self.class_labels.len()
                    ),
                ));
            }
        }
        if self.samples.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(self.samples.len() * width);
        for (i, s) in self.samples.iter().enumerate() {
            if s.features.len() != width {
                return Err(invalid(
                    format!("samples[{i}].features"),
                    format!("has {} values, the model takes {width}", s.features.len()),
                ));
            }
            rows.extend(s.features.iter().map(|v| v.unwrap_or(f64::NAN)));
        }
        let out = model.predict_f64(&rows, self.samples.len())?;
        let label_output = model.label_output();
        let value_output = model.outputs().iter().position(|o| {
            matches!(&o.kind, OutputKind::Tensor { elem: ElemType::F32 | ElemType::F64, shape }
                if shape.first() == Some(&Dim::Batch) && shape[1..].iter().all(|d| *d == Dim::Fixed(1)))
        });
        for (i, s) in self.samples.iter().enumerate() {
            if let Some(expected) = &s.label {
                let labels = label_output.and_then(|o| out.labels(o)).ok_or_else(|| {
                    invalid(
                        format!("samples[{i}].label"),
                        "is given but the model outputs no labels",
                    )
                })?;
                let got = match labels {
                    Data::I64(v) => LabelValue::Int(v[i]),
                    Data::Str(v) => LabelValue::Str(v[i].clone()),
                    _ => unreachable!("labels() returns int64 or string data"),
                };
                if &got != expected {
                    return Err(SidecarError::Mismatch {
                        sample: i,
                        expected: expected.to_string(),
                        got: got.to_string(),
                    });
                }
                if !self.class_labels.is_empty() && !self.class_labels.contains(&got) {
                    return Err(invalid(
                        "class_labels",
                        format!("does not list the label {got}"),
                    ));
                }
            }
            if let Some(expected) = s.value {
                let got = match value_output.map(|o| &out.values[o]) {
                    Some(Value::Tensor(t)) => match &t.data {
                        Data::F32(v) => f64::from(v[i]),
                        Data::F64(v) => v[i],
                        _ => unreachable!("value_output is a float tensor"),
                    },
                    _ => {
                        return Err(invalid(
                            format!("samples[{i}].value"),
                            "is given but the model outputs no values",
                        ));
                    }
                };
                let within = (got - expected).abs() <= 1e-5 + 1e-4 * expected.abs();
                if !within {
                    return Err(SidecarError::Mismatch {
                        sample: i,
                        expected: expected.to_string(),
                        got: got.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

impl OnnxModel {
    /// Loads `path` and, when `<path>.json` exists, its sidecar, checked against the model.
    pub fn load_with_sidecar(path: &Path) -> Result<(OnnxModel, Option<Sidecar>), SidecarError> {
        Self::with_sidecar(OnnxModel::load(path)?, path)
    }

    /// `model` (read from `path`) with `<path>.json`, when it exists, checked against it.
    pub fn with_sidecar(
        model: OnnxModel,
        path: &Path,
    ) -> Result<(OnnxModel, Option<Sidecar>), SidecarError> {
        let sidecar = Sidecar::find_for(path)?;
        if let Some(s) = &sidecar {
            s.check(&model)?;
        }
        Ok((model, sidecar))
    }
}
