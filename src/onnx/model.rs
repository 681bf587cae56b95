//! Loading an ONNX model (size-bounded decode, opset, input, operator and graph checks, a probe
//! run that fixes every output's type and shape) and evaluating it on a batch of rows.

use std::collections::HashMap;
use std::path::Path;

use prost::Message;

use super::OnnxError;
use super::graph::{Graph, Opsets};
use super::ops::{DOMAIN_ML, DOMAIN_STANDARD, MapRows, Value};
use super::proto::{self, type_proto};
use super::tensor::{Data, ElemType, MAX_ELEMENTS, Tensor};

/// The largest model file we read.
pub const MAX_MODEL_BYTES: u64 = 256 << 20;
/// The most memory decoding a model may take (estimated from above before decoding).
pub const MAX_DECODED_BYTES: usize = 1 << 30;
/// The most features (input columns) a model may take.
pub const MAX_WIDTH: usize = 1 << 16;
/// Standard-domain opsets we accept.
pub const STANDARD_OPSETS: std::ops::RangeInclusive<i64> = 7..=23;
/// ai.onnx.ml opsets we accept.
pub const ML_OPSETS: std::ops::RangeInclusive<i64> = 1..=5;

/// One dimension of a described shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    /// The batch dimension: as many as the rows given.
    Batch,
    Fixed(usize),
}

/// The model's input: one 2-D tensor `[batch, width]`.
#[derive(Debug, Clone, PartialEq)]
pub struct InputInfo {
    pub name: String,
    pub elem: ElemType,
    pub width: usize,
}

/// What one output holds.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputKind {
    Tensor {
        elem: ElemType,
        shape: Vec<Dim>,
    },
    /// ZipMap's sequence of maps (one per row) from class label to probability.
    Maps {
        key: ElemType,
        classes: usize,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputInfo {
    pub name: String,
    pub kind: OutputKind,
}

/// Free-form facts the file carries about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    pub producer_name: String,
    pub producer_version: String,
    pub model_version: Option<i64>,
    pub doc_string: String,
    pub props: Vec<(String, String)>,
}

/// The answers for one batch, in the order of `OnnxModel::outputs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    pub values: Vec<Value>,
}

/// A loaded, checked ONNX model.
#[derive(Debug)]
pub struct OnnxModel {
    input: InputInfo,
    outputs: Vec<OutputInfo>,
    graph: Graph,
    metadata: Metadata,
    operators: Vec<String>,
}

fn elem_of(code: Option<i32>) -> Result<ElemType, String> {
    let code = code.unwrap_or(0);
    ElemType::from_code(code).ok_or_else(|| {
        proto::tensor_proto::DataType::try_from(code)
            .map(|d| d.as_str_name().to_ascii_lowercase())
            .unwrap_or_else(|_| format!("type code {code}"))
    })
}

impl OnnxModel {
    /// Reads and checks a model file.
    pub fn load(path: &Path) -> Result<OnnxModel, OnnxError> {
        let io = |source| OnnxError::Io {
            path: path.display().to_string(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_MODEL_BYTES {
            return Err(OnnxError::TooLarge {
                size,
                limit: MAX_MODEL_BYTES,
            });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        Self::from_bytes(&bytes)
    }

    /// Decodes and checks a model from its bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<OnnxModel, OnnxError> {
        if bytes.len() as u64 > MAX_MODEL_BYTES {
            return Err(OnnxError::TooLarge {
                size: bytes.len() as u64,
                limit: MAX_MODEL_BYTES,
            });
        }
        match super::wire::scan(bytes, MAX_DECODED_BYTES) {
            super::wire::Scan::Fits => {}
            super::wire::Scan::Malformed => return Err(OnnxError::Malformed),
            super::wire::Scan::OverBudget => {
                return Err(OnnxError::DecodeBudget {
                    limit_mib: MAX_DECODED_BYTES >> 20,
                });
            }
        }
        let model = proto::ModelProto::decode(bytes)?;
        Self::from_proto(model)
    }

    fn from_proto(model: proto::ModelProto) -> Result<OnnxModel, OnnxError> {
        let opsets = opsets(&model)?;
        if !model.functions.is_empty() {
            return Err(OnnxError::Graph(
                "model-local functions are not supported".into(),
            ));
        }
        let graph = model
            .graph
            .ok_or(OnnxError::Graph("the model has no graph".into()))?;
        let initializers: std::collections::HashSet<&str> = graph
            .initializer
            .iter()
            .map(|i| i.name.as_deref().unwrap_or(""))
            .collect();
        let input = check_input(&graph, &initializers)?;
        let mut operators = Vec::new();
        let compiled = Graph::compile(
            &graph,
            std::slice::from_ref(&input.name),
            &opsets,
            &mut operators,
            0,
        )?;
        let metadata = Metadata {
            producer_name: model.producer_name.unwrap_or_default(),
            producer_version: model.producer_version.unwrap_or_default(),
            model_version: model.model_version,
            doc_string: model.doc_string.unwrap_or_default(),
            props: model
                .metadata_props
                .into_iter()
                .map(|p| (p.key.unwrap_or_default(), p.value.unwrap_or_default()))
                .collect(),
        };
        let mut model = OnnxModel {
            input,
            outputs: Vec::new(),
            graph: compiled,
            metadata,
            operators,
        };
        model.outputs = model.probe(&graph.output)?;
        Ok(model)
    }

    /// Runs the graph on one and on two rows of zeros: every node's shapes and types are
    /// exercised once at load, and each output's type and batch dimension are read off.
    fn probe(&self, declared: &[proto::ValueInfoProto]) -> Result<Vec<OutputInfo>, OnnxError> {
        let width = self.input.width;
        let one = self.predict_f32(&vec![0.0; width], 1)?;
        let two = self.predict_f32(&vec![0.0; 2 * width], 2)?;
        let mut infos = Vec::with_capacity(declared.len());
        for ((d, a), b) in declared.iter().zip(&one.values).zip(&two.values) {
            let name = d.name.clone().unwrap_or_default();
            let declared_type = d.r#type.as_ref().and_then(|t| t.value.as_ref());
            let kind = match (a, b) {
                (Value::Tensor(a), Value::Tensor(b)) => {
                    if a.shape.len() != b.shape.len() {
                        return Err(OnnxError::Output(format!(
                            "the output {name:?} changes rank with the batch size"
                        )));
                    }
                    let shape = a
                        .shape
                        .iter()
                        .zip(&b.shape)
                        .map(|(&x, &y)| if x == y { Dim::Fixed(x) } else { Dim::Batch })
                        .collect();
                    if let Some(type_proto::Value::TensorType(t)) = declared_type
                        && let Some(code) = t.elem_type
                        && ElemType::from_code(code) != Some(a.elem_type())
                    {
                        return Err(OnnxError::Output(format!(
                            "the output {name:?} is declared as {} but evaluates to {}",
                            elem_of(Some(code))
                                .map(|e| e.onnx_name().to_owned())
                                .unwrap_or_else(|e| e),
                            a.elem_type().onnx_name()
                        )));
                    }
                    OutputKind::Tensor {
                        elem: a.elem_type(),
                        shape,
                    }
                }
                (Value::Maps(m), Value::Maps(_)) => {
                    if matches!(declared_type, Some(type_proto::Value::TensorType(_))) {
                        return Err(OnnxError::Output(format!(
                            "the output {name:?} is declared as a tensor but is ZipMap's sequence of maps"
                        )));
                    }
                    OutputKind::Maps {
                        key: match m.keys {
                            super::attr::Labels::I64(_) => ElemType::I64,
                            super::attr::Labels::Str(_) => ElemType::Str,
                        },
                        classes: m.keys.len(),
                    }
                }
                _ => {
                    return Err(OnnxError::Output(format!(
                        "the output {name:?} changes kind with the batch size"
                    )));
                }
            };
            infos.push(OutputInfo { name, kind });
        }
        Ok(infos)
    }

    pub fn input(&self) -> &InputInfo {
        &self.input
    }

    pub fn outputs(&self) -> &[OutputInfo] {
        &self.outputs
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The operators the graph uses (`ai.onnx.ml:` prefixed for that domain), in order.
    pub fn operators(&self) -> &[String] {
        &self.operators
    }

    /// The first output holding one label per row (int64 or string), if any.
    pub fn label_output(&self) -> Option<usize> {
        self.outputs.iter().position(|o| {
            matches!(&o.kind, OutputKind::Tensor { elem: ElemType::I64 | ElemType::Str, shape } if shape.as_slice() == [Dim::Batch])
        })
    }

    /// Evaluates `n_rows` rows given row-major as f32.
    pub fn predict_f32(&self, rows: &[f32], n_rows: usize) -> Result<Outputs, OnnxError> {
        self.check_rows(rows.len(), n_rows)?;
        let data = match self.input.elem {
            ElemType::F64 => Data::F64(rows.iter().map(|&v| f64::from(v)).collect()),
            _ => Data::F32(rows.to_vec()),
        };
        self.run(Tensor::new(vec![n_rows, self.input.width], data))
    }

    /// Evaluates `n_rows` rows given row-major as f64 (narrowed to f32 for float models).
    pub fn predict_f64(&self, rows: &[f64], n_rows: usize) -> Result<Outputs, OnnxError> {
        self.check_rows(rows.len(), n_rows)?;
        let data = match self.input.elem {
            ElemType::F64 => Data::F64(rows.to_vec()),
            _ => Data::F32(rows.iter().map(|&v| v as f32).collect()),
        };
        self.run(Tensor::new(vec![n_rows, self.input.width], data))
    }

    fn check_rows(&self, len: usize, n_rows: usize) -> Result<(), OnnxError> {
        let expected = n_rows
            .checked_mul(self.input.width)
            .filter(|&n| n <= MAX_ELEMENTS);
        match expected {
            Some(e) if e == len && n_rows > 0 => Ok(()),
            _ => Err(OnnxError::Rows {
                values: len,
                rows: n_rows,
                width: self.input.width,
            }),
        }
    }

    fn run(&self, input: Tensor) -> Result<Outputs, OnnxError> {
        let values = self.graph.run(vec![Value::Tensor(input)])?;
        Ok(Outputs { values })
    }
}

/// The opset of each domain the model imports, checked against what we implement.
fn opsets(model: &proto::ModelProto) -> Result<Opsets, OnnxError> {
    let mut map = HashMap::new();
    for o in &model.opset_import {
        let version = o.version.unwrap_or(0);
        let (domain, range) = match o.domain.as_deref() {
            None | Some("") | Some("ai.onnx") => (DOMAIN_STANDARD, &STANDARD_OPSETS),
            Some("ai.onnx.ml") => (DOMAIN_ML, &ML_OPSETS),
            // Domains no node uses do no harm; a node of one is refused as unsupported.
            Some(_) => continue,
        };
        if !range.contains(&version) {
            return Err(OnnxError::Opset {
                domain: domain.to_owned(),
                version,
                supported: format!("{}..={}", range.start(), range.end()),
            });
        }
        if let Some(previous) = map.insert(domain, version)
            && previous != version
        {
            return Err(OnnxError::Opset {
                domain: domain.to_owned(),
                version,
                supported: format!("one version (the model also imports {previous})"),
            });
        }
    }
    Ok(map)
}

/// The graph's one real input (not an initializer) must be a 2-D float or double tensor with a
/// dynamic first dimension and a fixed width.
fn check_input(
    graph: &proto::GraphProto,
    initializers: &std::collections::HashSet<&str>,
) -> Result<InputInfo, OnnxError> {
    let real: Vec<&proto::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_deref().unwrap_or("")))
        .collect();
    let [input] = real.as_slice() else {
        let names: Vec<&str> = real
            .iter()
            .map(|i| i.name.as_deref().unwrap_or(""))
            .collect();
        return Err(OnnxError::Input(format!(
            "the graph has {} inputs ({names:?}); only models with one 2-D input tensor [batch, features] are supported",
            real.len()
        )));
    };
    let name = input.name.clone().unwrap_or_default();
    let Some(type_proto::Value::TensorType(t)) =
        input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(OnnxError::Input(format!(
            "the input {name:?} is not a tensor"
        )));
    };
    let elem = elem_of(t.elem_type).map_err(|ty| {
        OnnxError::Input(format!(
            "the input {name:?} holds {ty}; only float and double inputs are supported"
        ))
    })?;
    if !matches!(elem, ElemType::F32 | ElemType::F64) {
        return Err(OnnxError::Input(format!(
            "the input {name:?} holds {}; only float and double inputs are supported",
            elem.onnx_name()
        )));
    }
    let dims: Vec<Option<i64>> = t
        .shape
        .as_ref()
        .ok_or_else(|| OnnxError::Input(format!("the input {name:?} has no declared shape")))?
        .dim
        .iter()
        .map(|d| match d.value {
            Some(proto::tensor_shape_proto::dimension::Value::DimValue(v)) => Some(v),
            _ => None,
        })
        .collect();
    let [batch, width] = dims.as_slice() else {
        return Err(OnnxError::Input(format!(
            "the input {name:?} has {} dimensions; only 2-D inputs [batch, features] are supported",
            dims.len()
        )));
    };
    if let Some(b) = batch {
        return Err(OnnxError::Input(format!(
            "the input {name:?} has a fixed batch dimension {b}; export it with a dynamic one (None)"
        )));
    }
    let width = width
        .and_then(|w| usize::try_from(w).ok())
        .filter(|&w| (1..=MAX_WIDTH).contains(&w))
        .ok_or_else(|| {
            OnnxError::Input(format!(
                "the input {name:?} must have a fixed number of features between 1 and {MAX_WIDTH}"
            ))
        })?;
    Ok(InputInfo { name, elem, width })
}

impl Outputs {
    /// The labels of output `i`, if it is an int64 or string tensor.
    pub fn labels(&self, i: usize) -> Option<&Data> {
        match self.values.get(i)? {
            Value::Tensor(t) if matches!(t.data, Data::I64(_) | Data::Str(_)) => Some(&t.data),
            _ => None,
        }
    }

    /// Output `i` as row-major f32 scores (a float tensor, or ZipMap's maps in key order).
    pub fn scores(&self, i: usize) -> Option<&[f32]> {
        match self.values.get(i)? {
            Value::Tensor(Tensor {
                data: Data::F32(v), ..
            }) => Some(v),
            Value::Maps(MapRows { values, .. }) => Some(values),
            _ => None,
        }
    }
}
