//! The model a server serves or `score` runs, of either kind: our own artifact (the
//! imputer → scaler → vote pipeline) or an ONNX graph with its optional sidecar. What every
//! frontend needs from it is the [`Servable`] trait, implemented by both kinds: its name,
//! version, features, outputs and predictions on a row-major batch. [`Model`] is the closed set
//! of kinds [`Model::load`] recognises; it dereferences to the trait, and code that needs one
//! kind's own parts (our pre-serialised answers, the artifact's metrics) matches on it.
//! Everything that can fail is checked at load.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::artifact::{ArtifactError, LoadedModel};
use crate::onnx::{Data, ElemType, OnnxModel, OutputKind, Sidecar};
pub use crate::wire::Answer;

/// A loaded, checked model.
#[derive(Debug)]
pub enum Model {
    /// Our own artifact (`ml-serving train`).
    Native(Box<LoadedModel>),
    /// An ONNX graph (scikit-learn, XGBoost, LightGBM through their converters).
    Onnx(Box<OnnxServed>),
}

/// An ONNX model as served: the graph, its sidecar, and what they say about it.
#[derive(Debug)]
pub struct OnnxServed {
    pub graph: OnnxModel,
    pub sidecar: Option<Sidecar>,
    pub path: PathBuf,
    pub sha256: String,
    pub name: String,
    pub version: String,
    /// The sidecar's feature names, else `f0`, `f1`, ... (the input's columns).
    pub features: Vec<String>,
    /// The sidecar's first sample row, else zeros.
    pub sample: Vec<f64>,
    /// Class labels in score order, when the sidecar gives them.
    pub classes: Vec<String>,
}

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error("{path}: {problem}")]
    Onnx { path: PathBuf, problem: String },
    #[error("{path}: cannot read it: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The element type of an output tensor, as the V2 protocol names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputType {
    Int64,
    Fp32,
    Bytes,
}

impl OutputType {
    pub fn name(self) -> &'static str {
        match self {
            Self::Int64 => "INT64",
            Self::Fp32 => "FP32",
            Self::Bytes => "BYTES",
        }
    }
}

/// One output a model offers: its name, element type, and columns per row (`None`: one value
/// per row, shape `[N]`; `Some(k)`: shape `[N, k]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    pub name: String,
    pub datatype: OutputType,
    pub columns: Option<usize>,
}

/// An output's elements, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputData {
    Int64(Vec<i64>),
    Fp32(Vec<f32>),
    Bytes(Vec<String>),
}

/// The native model's outputs, in this order.
const NATIVE_OUTPUTS: [(&str, OutputType); 5] = [
    ("predict", OutputType::Int64),
    ("label", OutputType::Bytes),
    ("logistic_vote", OutputType::Int64),
    ("tree_vote", OutputType::Int64),
    ("svm_vote", OutputType::Int64),
];

impl From<LoadedModel> for Model {
    fn from(model: LoadedModel) -> Self {
        Self::Native(Box::new(model))
    }
}

/// The first bytes of a gzip stream: our artifacts.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The first byte of an ONNX file as every converter writes it: field 1 (`ir_version`), varint.
const ONNX_FIRST_BYTE: u8 = 0x08;

impl Model {
    /// Loads the model at `path`, recognising its kind from its first bytes (gzip: ours; an
    /// ONNX protobuf starts with its `ir_version` field, byte 0x08) or, for a file that is
    /// neither, its `.onnx` name; refuses a file over `max_bytes`.
    pub fn load(path: &Path, max_bytes: u64) -> Result<Self, ModelError> {
        let mut head = [0u8; 2];
        let io = |source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        };
        let read = std::fs::File::open(path)
            .and_then(|mut f| f.read(&mut head))
            .map_err(io);
        let named_onnx = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
        match read {
            Ok(2) if head == GZIP_MAGIC => Ok(Self::Native(Box::new(LoadedModel::load_bounded(
                path, max_bytes,
            )?))),
            Ok(n) if n > 0 && (head[0] == ONNX_FIRST_BYTE || named_onnx) => {
                Self::load_onnx(path, max_bytes)
            }
            // Missing, unreadable, short or gzip: our loader says what is wrong.
            _ => Ok(Self::Native(Box::new(LoadedModel::load_bounded(
                path, max_bytes,
            )?))),
        }
    }

    fn load_onnx(path: &Path, max_bytes: u64) -> Result<Self, ModelError> {
        let fail = |problem: String| ModelError::Onnx {
            path: path.to_path_buf(),
            problem,
        };
        let size = std::fs::metadata(path)
            .map_err(|source| ModelError::Io {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        if size > max_bytes {
            return Err(fail(format!(
                "the file is larger than {max_bytes} bytes (MAX_MODEL_BYTES)"
            )));
        }
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // The bytes just read are the ones loaded and hashed: read once, so a file replaced
        // meanwhile cannot be hashed as one model and loaded as another.
        let not_ours = |e: &dyn std::fmt::Display| {
            fail(format!(
                "not a model this server can run (ONNX, or a gzip artifact of ours): {e}"
            ))
        };
        let graph = OnnxModel::from_bytes(&bytes).map_err(|e| not_ours(&e))?;
        let (graph, sidecar) = OnnxModel::with_sidecar(graph, path).map_err(|e| not_ours(&e))?;
        let width = graph.input().width;
        let features = match &sidecar {
            Some(s) if !s.feature_names.is_empty() => s.feature_names.clone(),
            _ => (0..width).map(|i| format!("f{i}")).collect(),
        };
        if features.len() != width {
            return Err(fail(format!(
                "the sidecar names {} features but the model's input has {width} columns",
                features.len()
            )));
        }
        // The first complete sample row: what the documentation shows and `predict` sends.
        let sample = sidecar
            .as_ref()
            .and_then(|s| {
                s.samples
                    .iter()
                    .find_map(|s| s.features.iter().copied().collect::<Option<Vec<f64>>>())
            })
            .unwrap_or_else(|| vec![0.0; width]);
        let classes = sidecar
            .as_ref()
            .map(|s| {
                s.class_labels
                    .iter()
                    .map(|l| match l {
                        crate::onnx::sidecar::LabelValue::Int(i) => i.to_string(),
                        crate::onnx::sidecar::LabelValue::Str(s) => s.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".to_string());
        let name = sidecar
            .as_ref()
            .and_then(|s| s.name.clone())
            .unwrap_or(stem);
        let version = sidecar
            .as_ref()
            .and_then(|s| s.version.clone())
            .or_else(|| graph.metadata().model_version.map(|v| v.to_string()))
            .unwrap_or_else(|| "1".to_string());
        Ok(Self::Onnx(Box::new(OnnxServed {
            graph,
            sidecar,
            path: path.to_path_buf(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            name,
            version,
            features,
            sample,
            classes,
        })))
    }
}

/// What every frontend needs from a model, whatever its kind: implemented by our artifact
/// ([`LoadedModel`]) and by an ONNX graph ([`OnnxServed`]). A [`Model`] dereferences to it.
pub trait Servable: std::fmt::Debug + Send + Sync {
    /// `ml-serving` for our artifacts, `onnx` for ONNX graphs.
    fn kind(&self) -> &'static str;
    /// Whether feature values must be ≥ 0: our model's rule (its features are measurements;
    /// the tutorial refused negatives), not an ONNX model's, which takes any finite value.
    fn nonnegative_features(&self) -> bool;
    /// Whether the features have real names (ours; an ONNX model's sidecar), rather than
    /// `f0`, `f1`, ... standing for input columns.
    fn has_named_features(&self) -> bool;
    /// The name the model file gives itself.
    fn stored_name(&self) -> &str;
    fn version(&self) -> &str;
    fn features(&self) -> &[String];
    fn sample(&self) -> &[f64];
    /// Class labels in order (prediction `i` is `classes()[i]` for ours); empty when unknown
    /// or for a regression.
    fn classes(&self) -> Vec<String>;
    fn sha256(&self) -> &str;
    fn path(&self) -> &Path;
    /// Every output the model offers, in order.
    fn outputs(&self) -> Vec<OutputSpec>;
    /// The outputs at the indices `wanted` (into [`Self::outputs`]) for the rows in `rows`
    /// (row-major, the model's width), and each row's named-field answer: one evaluation.
    fn run(&self, rows: &[f64], wanted: &[usize])
    -> Result<(Vec<OutputData>, Vec<Answer>), String>;
    /// The outputs [`Self::answers_with_scores`] needs, and how they become per-class scores
    /// for `n` rows (`None`: the model has none).
    fn score_outputs(&self) -> Vec<usize>;
    fn scores_per_row(&self, data: &[OutputData], n: usize) -> Option<Vec<Vec<f32>>>;

    /// The named-field answer for each row.
    fn answers(&self, rows: &[f64]) -> Result<Vec<Answer>, String> {
        self.run(rows, &[]).map(|(_, answers)| answers)
    }

    /// [`Self::answers`], each class answer with its per-class scores: an ONNX classifier's
    /// first score output (probabilities), or for ours the share of the three votes for each
    /// class.
    fn answers_with_scores(&self, rows: &[f64]) -> Result<Vec<Answer>, String> {
        let (data, mut answers) = self.run(rows, &self.score_outputs())?;
        let Some(per_row) = self.scores_per_row(&data, answers.len()) else {
            return Ok(answers);
        };
        for (answer, row) in answers.iter_mut().zip(per_row) {
            if let Answer::Class { scores, .. } = answer {
                *scores = Some(row);
            }
        }
        Ok(answers)
    }
}

impl std::ops::Deref for Model {
    type Target = dyn Servable;

    fn deref(&self) -> &Self::Target {
        match self {
            Self::Native(m) => m.as_ref(),
            Self::Onnx(m) => m.as_ref(),
        }
    }
}

impl LoadedModel {
    /// The outputs at the indices `wanted` (into `NATIVE_OUTPUTS`) of rows with these
    /// decisions and (when a vote output is wanted) votes.
    pub fn outputs_of(
        &self,
        votes: &[crate::pipeline::Votes],
        decisions: &[bool],
        wanted: &[usize],
    ) -> Vec<OutputData> {
        let labels = &self.artifact.labels;
        let int = |pick: fn(&crate::pipeline::Votes) -> bool| {
            OutputData::Int64(votes.iter().map(|v| i64::from(pick(v))).collect())
        };
        wanted
            .iter()
            .map(|&i| match i {
                0 => OutputData::Int64(decisions.iter().map(|&d| i64::from(d)).collect()),
                1 => OutputData::Bytes(
                    decisions
                        .iter()
                        .map(|&d| labels.name(d).to_string())
                        .collect(),
                ),
                2 => int(|v| v.logistic),
                3 => int(|v| v.tree),
                _ => int(|v| v.svm),
            })
            .collect()
    }
}

impl Servable for LoadedModel {
    fn kind(&self) -> &'static str {
        "ml-serving"
    }

    fn nonnegative_features(&self) -> bool {
        true
    }

    fn has_named_features(&self) -> bool {
        true
    }

    fn stored_name(&self) -> &str {
        &self.artifact.name
    }

    fn version(&self) -> &str {
        &self.artifact.version
    }

    fn features(&self) -> &[String] {
        &self.artifact.feature_names
    }

    fn sample(&self) -> &[f64] {
        &self.artifact.sample
    }

    fn classes(&self) -> Vec<String> {
        vec![
            self.artifact.labels.negative.clone(),
            self.artifact.labels.positive.clone(),
        ]
    }

    fn sha256(&self) -> &str {
        &self.sha256
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn outputs(&self) -> Vec<OutputSpec> {
        NATIVE_OUTPUTS
            .iter()
            .map(|&(name, datatype)| OutputSpec {
                name: name.to_string(),
                datatype,
                columns: None,
            })
            .collect()
    }

    fn run(
        &self,
        rows: &[f64],
        wanted: &[usize],
    ) -> Result<(Vec<OutputData>, Vec<Answer>), String> {
        let width = self.features().len();
        let n = rows.len() / width;
        let x = ndarray::ArrayView2::from_shape((n, width), rows)
            .map_err(|e| format!("row layout: {e}"))?;
        let pipeline = &self.artifact.pipeline;
        // Without a vote output, the ensemble's decision alone: it skips the SVM where
        // the other two agree.
        let (votes, decisions) = if wanted.iter().any(|&i| i >= 2) {
            let votes = pipeline.votes(x).map_err(|e| e.to_string())?;
            let decisions = votes.iter().map(|v| v.majority()).collect();
            (votes, decisions)
        } else {
            (Vec::new(), pipeline.predict(x).map_err(|e| e.to_string())?)
        };
        let labels = &self.artifact.labels;
        let outputs = self.outputs_of(&votes, &decisions, wanted);
        let answers = decisions
            .into_iter()
            .map(|p| Answer::Class {
                label: labels.name(p).to_string(),
                prediction: u8::from(p).into(),
                scores: None,
            })
            .collect();
        Ok((outputs, answers))
    }

    /// The three votes.
    fn score_outputs(&self) -> Vec<usize> {
        vec![2, 3, 4]
    }

    /// Each class's share of the three votes.
    fn scores_per_row(&self, data: &[OutputData], n: usize) -> Option<Vec<Vec<f32>>> {
        let [
            OutputData::Int64(a),
            OutputData::Int64(b),
            OutputData::Int64(c),
        ] = data
        else {
            return None;
        };
        Some(
            (0..n)
                .map(|r| {
                    let positive = (a[r] + b[r] + c[r]) as f32 / 3.0;
                    vec![1.0 - positive, positive]
                })
                .collect(),
        )
    }
}

impl Servable for OnnxServed {
    fn kind(&self) -> &'static str {
        "onnx"
    }

    fn nonnegative_features(&self) -> bool {
        false
    }

    fn has_named_features(&self) -> bool {
        self.sidecar
            .as_ref()
            .is_some_and(|s| !s.feature_names.is_empty())
    }

    fn stored_name(&self) -> &str {
        &self.name
    }

    fn version(&self) -> &str {
        &self.version
    }

    fn features(&self) -> &[String] {
        &self.features
    }

    fn sample(&self) -> &[f64] {
        &self.sample
    }

    fn classes(&self) -> Vec<String> {
        self.classes.clone()
    }

    fn sha256(&self) -> &str {
        &self.sha256
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn outputs(&self) -> Vec<OutputSpec> {
        self.graph
            .outputs()
            .iter()
            .map(|o| {
                let (datatype, columns) = match &o.kind {
                    OutputKind::Maps { classes, .. } => (OutputType::Fp32, Some(*classes)),
                    OutputKind::Tensor { elem, shape } => {
                        let datatype = match elem {
                            ElemType::I64 | ElemType::I32 | ElemType::Bool => OutputType::Int64,
                            ElemType::Str => OutputType::Bytes,
                            _ => OutputType::Fp32,
                        };
                        let columns: usize = shape
                            .iter()
                            .skip(1)
                            .map(|d| match d {
                                crate::onnx::Dim::Fixed(n) => *n,
                                crate::onnx::Dim::Batch => 1,
                            })
                            .product();
                        (datatype, (shape.len() > 1).then_some(columns))
                    }
                };
                OutputSpec {
                    name: o.name.clone(),
                    datatype,
                    columns,
                }
            })
            .collect()
    }

    fn run(
        &self,
        rows: &[f64],
        wanted: &[usize],
    ) -> Result<(Vec<OutputData>, Vec<Answer>), String> {
        let n = rows.len() / self.features.len();
        let outputs = self.graph.predict_f64(rows, n).map_err(|e| e.to_string())?;
        let data = wanted
            .iter()
            .map(|&i| onnx_output(&outputs, i))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| "an output of an unexpected kind".to_string())?;
        Ok((data, self.row_answers(&outputs, n)?))
    }

    /// The first float output with columns: a classifier's probabilities.
    fn score_outputs(&self) -> Vec<usize> {
        self.outputs()
            .iter()
            .position(|o| o.datatype == OutputType::Fp32 && o.columns.is_some())
            .into_iter()
            .collect()
    }

    fn scores_per_row(&self, data: &[OutputData], n: usize) -> Option<Vec<Vec<f32>>> {
        match data {
            [OutputData::Fp32(v)] if n > 0 => {
                Some(v.chunks(v.len() / n).map(<[f32]>::to_vec).collect())
            }
            _ => None,
        }
    }
}

impl OnnxServed {
    /// Each row's answer: its label (a classifier), else the first float output's first column.
    fn row_answers(&self, outputs: &crate::onnx::Outputs, n: usize) -> Result<Vec<Answer>, String> {
        if let Some(i) = self.graph.label_output() {
            return match outputs.labels(i) {
                Some(Data::I64(v)) => Ok(v
                    .iter()
                    .map(|&l| Answer::Class {
                        label: l.to_string(),
                        prediction: l.into(),
                        scores: None,
                    })
                    .collect()),
                Some(Data::Str(v)) => Ok(v
                    .iter()
                    .map(|l| Answer::Class {
                        label: l.clone(),
                        prediction: l.clone().into(),
                        scores: None,
                    })
                    .collect()),
                _ => Err("the label output holds no labels".to_string()),
            };
        }
        let values: Vec<f64> = outputs
            .values
            .iter()
            .find_map(|v| match v {
                crate::onnx::Value::Tensor(t) => match &t.data {
                    Data::F32(v) => Some(v.iter().map(|&x| f64::from(x)).collect()),
                    Data::F64(v) => Some(v.clone()),
                    _ => None,
                },
                crate::onnx::Value::Maps(_) => None,
            })
            .ok_or_else(|| "the model has no label and no float output".to_string())?;
        let per_row = values.len() / n.max(1);
        Ok((0..n)
            .map(|r| Answer::Value {
                prediction: values[r * per_row],
            })
            .collect())
    }
}

fn onnx_output(outputs: &crate::onnx::Outputs, i: usize) -> Option<OutputData> {
    if let Some(labels) = outputs.labels(i) {
        return match labels {
            Data::I64(v) => Some(OutputData::Int64(v.clone())),
            Data::Str(v) => Some(OutputData::Bytes(v.clone())),
            _ => None,
        };
    }
    match outputs.values.get(i)? {
        crate::onnx::Value::Tensor(t) => Some(match &t.data {
            Data::F32(v) => OutputData::Fp32(v.clone()),
            Data::F64(v) => OutputData::Fp32(v.iter().map(|&x| x as f32).collect()),
            Data::I32(v) => OutputData::Int64(v.iter().map(|&x| i64::from(x)).collect()),
            Data::Bool(v) => OutputData::Int64(v.iter().map(|&x| i64::from(x)).collect()),
            Data::I64(v) => OutputData::Int64(v.clone()),
            Data::Str(v) => OutputData::Bytes(v.clone()),
        }),
        crate::onnx::Value::Maps(_) => outputs.scores(i).map(|s| OutputData::Fp32(s.to_vec())),
    }
}
