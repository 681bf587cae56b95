//! The operators: each node is compiled once at load (attributes read and checked) into an `Op`,
//! which then runs on the values of its inputs.

mod broadcast;
pub mod ml;
pub mod standard;
pub mod svm;
pub mod tree;

use super::attr::{Attrs, Labels};
use super::proto::NodeProto;
use super::tensor::{Data, Tensor};

/// A value flowing along the graph: a tensor, or ZipMap's sequence of maps (one per row).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Tensor(Tensor),
    Maps(MapRows),
}

/// ZipMap's output: per row, one probability per class key (`values` is rows x keys).
#[derive(Debug, Clone, PartialEq)]
pub struct MapRows {
    pub keys: Labels,
    pub values: Vec<f32>,
}

/// The operator domains we evaluate.
pub const DOMAIN_STANDARD: &str = "ai.onnx";
pub const DOMAIN_ML: &str = "ai.onnx.ml";

/// Operators of the standard domain we support.
pub const STANDARD_OPS: &[&str] = &[
    "Abs",
    "Add",
    "ArgMax",
    "ArgMin",
    "Cast",
    "Ceil",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Div",
    "Equal",
    "Exp",
    "Flatten",
    "Floor",
    "Gather",
    "Gemm",
    "Greater",
    "GreaterOrEqual",
    "Identity",
    "Less",
    "LessOrEqual",
    "Log",
    "MatMul",
    "Max",
    "Mean",
    "Min",
    "Mul",
    "Neg",
    "Not",
    "Pow",
    "Reciprocal",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceSum",
    "ReduceSumSquare",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Softmax",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Tanh",
    "TopK",
    "Transpose",
    "Unsqueeze",
    "Where",
];

/// Operators of the ai.onnx.ml domain we support.
pub const ML_OPS: &[&str] = &[
    "ArrayFeatureExtractor",
    "Binarizer",
    "Imputer",
    "LinearClassifier",
    "LinearRegressor",
    "Normalizer",
    "OneHotEncoder",
    "SVMClassifier",
    "SVMRegressor",
    "Scaler",
    "TreeEnsembleClassifier",
    "TreeEnsembleRegressor",
    "ZipMap",
];

/// Why a node could not be compiled.
#[derive(Debug)]
pub enum CompileError {
    /// The operator is not one we evaluate.
    Unsupported,
    /// The operator is, but this node's attributes or arity are wrong.
    Invalid(String),
}

impl From<String> for CompileError {
    fn from(s: String) -> Self {
        CompileError::Invalid(s)
    }
}

impl From<&str> for CompileError {
    fn from(s: &str) -> Self {
        CompileError::Invalid(s.to_owned())
    }
}

/// A compiled node.
#[derive(Debug)]
pub enum Op {
    Standard(standard::StandardOp),
    Ml(ml::MlOp),
    TreeClassifier(Box<tree::TreeClassifier>),
    TreeRegressor(Box<tree::TreeRegressor>),
    SvmClassifier(Box<svm::SvmClassifier>),
    SvmRegressor(Box<svm::SvmRegressor>),
}

impl Op {
    /// Compiles one node of `domain` at `opset` (the model's version of that domain).
    pub fn compile(node: &NodeProto, domain: &str, opset: i64) -> Result<Op, CompileError> {
        let op_type = node.op_type.as_deref().unwrap_or("");
        let attrs = Attrs::new(node);
        let n_in = node.input.len();
        let n_out = node.output.len();
        if domain == DOMAIN_ML {
            return Ok(match op_type {
                "TreeEnsembleClassifier" => {
                    arity(n_in, 1, 1, n_out, 2)?;
                    Op::TreeClassifier(Box::new(tree::TreeClassifier::compile(&attrs)?))
                }
                "TreeEnsembleRegressor" => {
                    arity(n_in, 1, 1, n_out, 1)?;
                    Op::TreeRegressor(Box::new(tree::TreeRegressor::compile(&attrs)?))
                }
                "SVMClassifier" => {
                    arity(n_in, 1, 1, n_out, 2)?;
                    Op::SvmClassifier(Box::new(svm::SvmClassifier::compile(&attrs)?))
                }
                "SVMRegressor" => {
                    arity(n_in, 1, 1, n_out, 1)?;
                    Op::SvmRegressor(Box::new(svm::SvmRegressor::compile(&attrs)?))
                }
                _ => Op::Ml(ml::MlOp::compile(op_type, &attrs, n_in, n_out)?),
            });
        }
        Ok(Op::Standard(standard::StandardOp::compile(
            op_type, &attrs, opset, n_in, n_out,
        )?))
    }

    /// Runs the node on its inputs (`None` for an omitted optional input).
    pub fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        match self {
            Op::Standard(op) => op.run(inputs),
            Op::Ml(op) => op.run(inputs),
            Op::TreeClassifier(op) => op.run(tensor_input(inputs, 0)?),
            Op::TreeRegressor(op) => op.run(tensor_input(inputs, 0)?),
            Op::SvmClassifier(op) => op.run(tensor_input(inputs, 0)?),
            Op::SvmRegressor(op) => op.run(tensor_input(inputs, 0)?),
        }
    }
}

/// Checks a node's input count (between min and max) and output count (at most `max_out`,
/// at least one).
pub fn arity(
    n_in: usize,
    min: usize,
    max: usize,
    n_out: usize,
    max_out: usize,
) -> Result<(), String> {
    if n_in < min || n_in > max {
        return Err(if min == max {
            format!("takes {min} input(s), the node has {n_in}")
        } else {
            format!("takes {min} to {max} inputs, the node has {n_in}")
        });
    }
    if n_out == 0 || n_out > max_out {
        return Err(format!(
            "produces at most {max_out} output(s), the node has {n_out}"
        ));
    }
    Ok(())
}

/// Input `i` as a tensor.
pub fn tensor_input<'a>(inputs: &[Option<&'a Value>], i: usize) -> Result<&'a Tensor, String> {
    match inputs.get(i).copied().flatten() {
        Some(Value::Tensor(t)) => Ok(t),
        Some(Value::Maps(_)) => Err(format!("input {i} is a sequence of maps, not a tensor")),
        None => Err(format!("input {i} is missing")),
    }
}

/// A 2-D view `[rows, width]` of a numeric tensor as f32 (1-D counts as one row), converting
/// double and integer inputs as onnxruntime's ML operators do.
pub fn rows_f32(t: &Tensor) -> Result<(usize, usize, std::borrow::Cow<'_, [f32]>), String> {
    use std::borrow::Cow;
    let (rows, width) = match t.shape.as_slice() {
        [w] => (1, *w),
        [n, w] => (*n, *w),
        s => return Err(format!("expects a 1-D or 2-D input, got shape {s:?}")),
    };
    let data = match &t.data {
        Data::F32(v) => Cow::Borrowed(v.as_slice()),
        Data::F64(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
        Data::I64(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
        Data::I32(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
        other => {
            return Err(format!(
                "expects a numeric input, got {}",
                other.elem_type().onnx_name()
            ));
        }
    };
    Ok((rows, width, data))
}

/// ONNX-ML post transforms, computed as onnxruntime does (in f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

impl PostTransform {
    pub fn parse(attrs: &Attrs) -> Result<PostTransform, String> {
        Ok(match attrs.string_or("post_transform", "NONE")?.as_str() {
            "NONE" => PostTransform::None,
            "LOGISTIC" => PostTransform::Logistic,
            "SOFTMAX" => PostTransform::Softmax,
            "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
            "PROBIT" => PostTransform::Probit,
            other => {
                return Err(format!(
                    "post_transform {other:?} is not one of NONE, LOGISTIC, SOFTMAX, SOFTMAX_ZERO, PROBIT"
                ));
            }
        })
    }

    /// Applies the transform to one row of scores.
    pub fn apply(self, scores: &mut [f32]) {
        match self {
            PostTransform::None => {}
            PostTransform::Logistic => scores.iter_mut().for_each(|s| *s = logistic(*s)),
            PostTransform::Probit => scores.iter_mut().for_each(|s| *s = probit(*s)),
            PostTransform::Softmax => softmax(scores),
            PostTransform::SoftmaxZero => softmax_zero(scores),
        }
    }
}

pub fn logistic(v: f32) -> f32 {
    let e = 1.0 / (1.0 + (-v.abs()).exp());
    if v < 0.0 { 1.0 - e } else { e }
}

/// onnxruntime's approximation of the inverse error function.
fn erf_inv(x: f32) -> f32 {
    let sgn = if x < 0.0 { -1.0f32 } else { 1.0 };
    let x = (1.0 - x) * (1.0 + x);
    let log = x.ln();
    #[allow(clippy::approx_constant)]
    let v = 2.0 / (3.14159f32 * 0.147) + 0.5 * log;
    let v2 = 1.0 / 0.147 * log;
    let v3 = -v + (v * v - v2).sqrt();
    sgn * v3.sqrt()
}

pub fn probit(v: f32) -> f32 {
    std::f32::consts::SQRT_2 * erf_inv(2.0 * v - 1.0)
}

pub fn softmax(values: &mut [f32]) {
    let max = values.iter().copied().fold(-f32::MAX, f32::max);
    let mut sum = 0.0f32;
    for v in values.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    values.iter_mut().for_each(|v| *v /= sum);
}

fn softmax_zero(values: &mut [f32]) {
    let max = values.iter().copied().fold(-f32::MAX, f32::max);
    let exp_neg_max = (-max).exp();
    let mut sum = 0.0f32;
    for v in values.iter_mut() {
        if *v > 1e-7 || *v < -1e-7 {
            *v = (*v - max).exp();
            sum += *v;
        } else {
            *v *= exp_neg_max;
        }
    }
    values.iter_mut().for_each(|v| *v /= sum);
}

/// Index of the first largest value (NaN never wins).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate().skip(1) {
        if v > values[best] {
            best = i;
        }
    }
    best
}
