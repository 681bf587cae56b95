//! The standard (ai.onnx) operators the converters put around the ML operators: element-wise
//! arithmetic with broadcasting, matrix products, reductions, and shape manipulation.

use super::broadcast;
use super::{CompileError, Value, arity, tensor_input};
use crate::onnx::attr::Attrs;
use crate::onnx::tensor::{Data, ElemType, MAX_ELEMENTS, MAX_RANK, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unary {
    Abs,
    Neg,
    Exp,
    Log,
    Sqrt,
    Sigmoid,
    Relu,
    Tanh,
    Reciprocal,
    Floor,
    Ceil,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    Sum,
    Mean,
    Max,
    Min,
    LogSumExp,
    SumSquare,
}

/// Where an operator's axes come from.
#[derive(Debug, Clone)]
pub enum Axes {
    Attribute(Vec<i64>),
    Input,
}

#[derive(Debug)]
pub enum StandardOp {
    Binary(Binary),
    Variadic(Binary),
    Mean,
    Compare(Compare),
    Unary(Unary),
    Not,
    Identity,
    Cast(ElemType),
    Constant(Value),
    ConstantOfShape(Tensor),
    Shape {
        start: i64,
        end: Option<i64>,
    },
    Reshape {
        allow_zero: bool,
    },
    Flatten {
        axis: i64,
    },
    Transpose {
        perm: Option<Vec<i64>>,
    },
    Squeeze(Axes),
    Unsqueeze(Axes),
    Concat {
        axis: i64,
    },
    Gather {
        axis: i64,
    },
    Where,
    MatMul,
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
    },
    ArgMax {
        axis: i64,
        keep_dims: bool,
        last: bool,
        min: bool,
    },
    Reduce {
        kind: Reduce,
        axes: Axes,
        keep_dims: bool,
        noop_empty: bool,
    },
    Softmax {
        axis: i64,
        legacy: bool,
    },
    Clip {
        min: Option<f32>,
        max: Option<f32>,
        from_inputs: bool,
    },
    TopK {
        k: Option<i64>,
        axis: i64,
        largest: bool,
    },
}

impl StandardOp {
    pub fn compile(
        op: &str,
        attrs: &Attrs,
        opset: i64,
        n_in: usize,
        n_out: usize,
    ) -> Result<StandardOp, CompileError> {
        let unary = |u| -> Result<StandardOp, CompileError> {
            arity(n_in, 1, 1, n_out, 1)?;
            Ok(StandardOp::Unary(u))
        };
        let binary = |b| -> Result<StandardOp, CompileError> {
            arity(n_in, 2, 2, n_out, 1)?;
            Ok(StandardOp::Binary(b))
        };
        let compare = |c| -> Result<StandardOp, CompileError> {
            arity(n_in, 2, 2, n_out, 1)?;
            Ok(StandardOp::Compare(c))
        };
        let variadic = |b| -> Result<StandardOp, CompileError> {
            arity(n_in, 1, usize::MAX, n_out, 1)?;
            Ok(StandardOp::Variadic(b))
        };
        let reduce = |kind, axes_input_since: i64| -> Result<StandardOp, CompileError> {
            let axes = if opset >= axes_input_since {
                arity(n_in, 1, 2, n_out, 1)?;
                Axes::Input
            } else {
                arity(n_in, 1, 1, n_out, 1)?;
                Axes::Attribute(attrs.ints_or_empty("axes")?)
            };
            Ok(StandardOp::Reduce {
                kind,
                axes,
                keep_dims: attrs.int_or("keepdims", 1)? != 0,
                noop_empty: attrs.int_or("noop_with_empty_axes", 0)? != 0,
            })
        };
        Ok(match op {
            "Add" => binary(Binary::Add)?,
            "Sub" => binary(Binary::Sub)?,
            "Mul" => binary(Binary::Mul)?,
            "Div" => binary(Binary::Div)?,
            "Pow" => binary(Binary::Pow)?,
            "Sum" => variadic(Binary::Add)?,
            "Max" => variadic(Binary::Max)?,
            "Min" => variadic(Binary::Min)?,
            "Mean" => {
                arity(n_in, 1, usize::MAX, n_out, 1)?;
                StandardOp::Mean
            }
            "Equal" => compare(Compare::Equal)?,
            "Less" => compare(Compare::Less)?,
            "LessOrEqual" => compare(Compare::LessOrEqual)?,
            "Greater" => compare(Compare::Greater)?,
            "GreaterOrEqual" => compare(Compare::GreaterOrEqual)?,
            "Abs" => unary(Unary::Abs)?,
            "Neg" => unary(Unary::Neg)?,
            "Exp" => unary(Unary::Exp)?,
            "Log" => unary(Unary::Log)?,
            "Sqrt" => unary(Unary::Sqrt)?,
            "Sigmoid" => unary(Unary::Sigmoid)?,
            "Relu" => unary(Unary::Relu)?,
            "Tanh" => unary(Unary::Tanh)?,
            "Reciprocal" => unary(Unary::Reciprocal)?,
            "Floor" => unary(Unary::Floor)?,
            "Ceil" => unary(Unary::Ceil)?,
            "Not" => {
                arity(n_in, 1, 1, n_out, 1)?;
                StandardOp::Not
            }
            "Identity" => {
                arity(n_in, 1, 1, n_out, 1)?;
                StandardOp::Identity
            }
            "Cast" => {
                arity(n_in, 1, 1, n_out, 1)?;
                let to = attrs.int("to")?.ok_or("needs the attribute \"to\"")?;
                let to = i32::try_from(to)
                    .ok()
                    .and_then(ElemType::from_code)
                    .ok_or_else(|| format!("cannot cast to type code {to}"))?;
                StandardOp::Cast(to)
            }
            "Constant" => {
                arity(n_in, 0, 0, n_out, 1)?;
                StandardOp::Constant(Value::Tensor(constant(attrs)?))
            }
            "ConstantOfShape" => {
                arity(n_in, 1, 1, n_out, 1)?;
                let value = attrs
                    .tensor("value")?
                    .unwrap_or_else(|| Tensor::new(vec![1], Data::F32(vec![0.0])));
                if value.len() != 1 {
                    return Err("value must hold one element".to_owned().into());
                }
                StandardOp::ConstantOfShape(value)
            }
            "Shape" => {
                arity(n_in, 1, 1, n_out, 1)?;
                StandardOp::Shape {
                    start: attrs.int_or("start", 0)?,
                    end: attrs.int("end")?,
                }
            }
            "Reshape" => {
                arity(n_in, 2, 2, n_out, 1)?;
                StandardOp::Reshape {
                    allow_zero: attrs.int_or("allowzero", 0)? != 0,
                }
            }
            "Flatten" => {
                arity(n_in, 1, 1, n_out, 1)?;
                StandardOp::Flatten {
                    axis: attrs.int_or("axis", 1)?,
                }
            }
            "Transpose" => {
                arity(n_in, 1, 1, n_out, 1)?;
                StandardOp::Transpose {
                    perm: attrs.ints("perm")?,
                }
            }
            "Squeeze" | "Unsqueeze" => {
                let axes = if opset >= 13 {
                    arity(n_in, 1, 2, n_out, 1)?;
                    Axes::Input
                } else {
                    arity(n_in, 1, 1, n_out, 1)?;
                    Axes::Attribute(attrs.ints_or_empty("axes")?)
                };
                if op == "Squeeze" {
                    StandardOp::Squeeze(axes)
                } else {
                    StandardOp::Unsqueeze(axes)
                }
            }
            "Concat" => {
                arity(n_in, 1, usize::MAX, n_out, 1)?;
                StandardOp::Concat {
                    axis: attrs.int("axis")?.ok_or("needs the attribute \"axis\"")?,
                }
            }
            "Gather" => {
                arity(n_in, 2, 2, n_out, 1)?;
                StandardOp::Gather {
                    axis: attrs.int_or("axis", 0)?,
                }
            }
            "Where" => {
                arity(n_in, 3, 3, n_out, 1)?;
                StandardOp::Where
            }
            "MatMul" => {
                arity(n_in, 2, 2, n_out, 1)?;
                StandardOp::MatMul
            }
            "Gemm" => {
                arity(n_in, 2, 3, n_out, 1)?;
                StandardOp::Gemm {
                    alpha: attrs.float("alpha")?.unwrap_or(1.0),
                    beta: attrs.float("beta")?.unwrap_or(1.0),
                    trans_a: attrs.int_or("transA", 0)? != 0,
                    trans_b: attrs.int_or("transB", 0)? != 0,
                }
            }
            "ArgMax" | "ArgMin" => {
                arity(n_in, 1, 1, n_out, 1)?;
                StandardOp::ArgMax {
                    axis: attrs.int_or("axis", 0)?,
                    keep_dims: attrs.int_or("keepdims", 1)? != 0,
                    last: attrs.int_or("select_last_index", 0)? != 0,
                    min: op == "ArgMin",
                }
            }
            "ReduceSum" => reduce(Reduce::Sum, 13)?,
            "ReduceMean" => reduce(Reduce::Mean, 18)?,
            "ReduceMax" => reduce(Reduce::Max, 18)?,
            "ReduceMin" => reduce(Reduce::Min, 18)?,
            "ReduceLogSumExp" => reduce(Reduce::LogSumExp, 18)?,
            "ReduceSumSquare" => reduce(Reduce::SumSquare, 18)?,
            "TopK" => {
                if opset >= 10 {
                    arity(n_in, 2, 2, n_out, 2)?;
                } else {
                    arity(n_in, 1, 1, n_out, 2)?;
                }
                if attrs.int_or("sorted", 1)? == 0 {
                    return Err("TopK with sorted=0 is not supported".into());
                }
                StandardOp::TopK {
                    k: if opset >= 10 {
                        None
                    } else {
                        Some(attrs.int("k")?.ok_or("needs the attribute \"k\"")?)
                    },
                    axis: attrs.int_or("axis", -1)?,
                    largest: attrs.int_or("largest", 1)? != 0,
                }
            }
            "Softmax" => {
                arity(n_in, 1, 1, n_out, 1)?;
                let legacy = opset < 13;
                StandardOp::Softmax {
                    axis: attrs.int_or("axis", if legacy { 1 } else { -1 })?,
                    legacy,
                }
            }
            "Clip" => {
                if opset >= 11 {
                    arity(n_in, 1, 3, n_out, 1)?;
                    StandardOp::Clip {
                        min: None,
                        max: None,
                        from_inputs: true,
                    }
                } else {
                    arity(n_in, 1, 1, n_out, 1)?;
                    StandardOp::Clip {
                        min: attrs.float("min")?,
                        max: attrs.float("max")?,
                        from_inputs: false,
                    }
                }
            }
            _ => return Err(CompileError::Unsupported),
        })
    }

    pub fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let out = match self {
            StandardOp::Constant(v) => return Ok(vec![v.clone()]),
            StandardOp::Identity => {
                return Ok(vec![
                    inputs
                        .first()
                        .copied()
                        .flatten()
                        .ok_or("input 0 is missing")?
                        .clone(),
                ]);
            }
            StandardOp::Binary(b) => {
                binary(*b, tensor_input(inputs, 0)?, tensor_input(inputs, 1)?)?
            }
            StandardOp::Variadic(b) => {
                let mut acc = tensor_input(inputs, 0)?.clone();
                for i in 1..inputs.len() {
                    acc = binary(*b, &acc, tensor_input(inputs, i)?)?;
                }
                acc
            }
            StandardOp::Mean => {
                let mut acc = tensor_input(inputs, 0)?.clone();
                for i in 1..inputs.len() {
                    acc = binary(Binary::Add, &acc, tensor_input(inputs, i)?)?;
                }
                let n = Tensor::new(
                    vec![],
                    cast_data(&Data::F64(vec![inputs.len() as f64]), acc.elem_type())?,
                );
                binary(Binary::Div, &acc, &n)?
            }
            StandardOp::Compare(c) => {
                compare(*c, tensor_input(inputs, 0)?, tensor_input(inputs, 1)?)?
            }
            StandardOp::Unary(u) => unary(*u, tensor_input(inputs, 0)?)?,
            StandardOp::Not => {
                let x = tensor_input(inputs, 0)?;
                let Data::Bool(v) = &x.data else {
                    return Err("Not expects bool".into());
                };
                Tensor::new(x.shape.clone(), Data::Bool(v.iter().map(|b| !b).collect()))
            }
            StandardOp::Cast(to) => {
                let x = tensor_input(inputs, 0)?;
                Tensor::new(x.shape.clone(), cast_data(&x.data, *to)?)
            }
            StandardOp::ConstantOfShape(value) => {
                let shape = tensor_input(inputs, 0)?
                    .as_i64s()
                    .ok_or("the shape must be int64")?;
                let (shape, count) = crate::onnx::tensor::element_count(&shape)
                    .map_err(|e| format!("the shape {e}"))?;
                let data = match &value.data {
                    Data::F32(v) => Data::F32(vec![v[0]; count]),
                    Data::F64(v) => Data::F64(vec![v[0]; count]),
                    Data::I64(v) => Data::I64(vec![v[0]; count]),
                    Data::I32(v) => Data::I32(vec![v[0]; count]),
                    Data::Bool(v) => Data::Bool(vec![v[0]; count]),
                    Data::Str(v) => Data::Str(vec![v[0].clone(); count]),
                };
                Tensor::new(shape, data)
            }
            StandardOp::Shape { start, end } => {
                let x = tensor_input(inputs, 0)?;
                let rank = x.shape.len() as i64;
                let clamp = |i: i64| (if i < 0 { i + rank } else { i }).clamp(0, rank) as usize;
                let s = clamp(*start);
                let e = clamp(end.unwrap_or(rank)).max(s);
                let dims: Vec<i64> = x.shape[s..e].iter().map(|&d| d as i64).collect();
                Tensor::new(vec![dims.len()], Data::I64(dims))
            }
            StandardOp::Reshape { allow_zero } => {
                let x = tensor_input(inputs, 0)?;
                let spec = tensor_input(inputs, 1)?
                    .as_i64s()
                    .ok_or("the shape must be int64")?;
                Tensor::new(reshape(&x.shape, &spec, *allow_zero)?, x.data.clone())
            }
            StandardOp::Flatten { axis } => {
                let x = tensor_input(inputs, 0)?;
                let a = norm_axis(*axis, x.shape.len() + 1)?;
                let outer: usize = x.shape[..a].iter().product();
                Tensor::new(vec![outer, x.len() / outer.max(1)], x.data.clone())
            }
            StandardOp::Transpose { perm } => transpose(tensor_input(inputs, 0)?, perm.as_deref())?,
            StandardOp::Squeeze(axes) => {
                let x = tensor_input(inputs, 0)?;
                let axes = axes_of(axes, inputs, 1)?;
                let rank = x.shape.len();
                let axes: Vec<usize> = axes
                    .iter()
                    .map(|&a| norm_axis(a, rank))
                    .collect::<Result<_, _>>()?;
                let mut shape = Vec::with_capacity(rank);
                for (i, &d) in x.shape.iter().enumerate() {
                    let listed = axes.contains(&i);
                    if listed && d != 1 {
                        return Err(format!("cannot squeeze axis {i} of shape {:?}", x.shape));
                    }
                    if !(listed || (axes.is_empty() && d == 1)) {
                        shape.push(d);
                    }
                }
                Tensor::new(shape, x.data.clone())
            }
            StandardOp::Unsqueeze(axes) => {
                let x = tensor_input(inputs, 0)?;
                let axes = axes_of(axes, inputs, 1)?;
                let rank = x.shape.len() + axes.len();
                if rank > MAX_RANK {
                    return Err(format!("the result would have {rank} dimensions"));
                }
                let mut axes: Vec<usize> = axes
                    .iter()
                    .map(|&a| norm_axis(a, rank))
                    .collect::<Result<_, _>>()?;
                axes.sort_unstable();
                let mut shape = x.shape.clone();
                for a in axes {
                    shape.insert(a.min(shape.len()), 1);
                }
                Tensor::new(shape, x.data.clone())
            }
            StandardOp::Concat { axis } => {
                let parts: Vec<&Tensor> = (0..inputs.len())
                    .map(|i| tensor_input(inputs, i))
                    .collect::<Result<_, _>>()?;
                concat(&parts, *axis)?
            }
            StandardOp::Gather { axis } => {
                gather(tensor_input(inputs, 0)?, tensor_input(inputs, 1)?, *axis)?
            }
            StandardOp::Where => where_(
                tensor_input(inputs, 0)?,
                tensor_input(inputs, 1)?,
                tensor_input(inputs, 2)?,
            )?,
            StandardOp::MatMul => matmul(tensor_input(inputs, 0)?, tensor_input(inputs, 1)?)?,
            StandardOp::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => {
                let c = match inputs.get(2).copied().flatten() {
                    Some(_) => Some(tensor_input(inputs, 2)?),
                    None => None,
                };
                gemm(
                    tensor_input(inputs, 0)?,
                    tensor_input(inputs, 1)?,
                    c,
                    *alpha,
                    *beta,
                    *trans_a,
                    *trans_b,
                )?
            }
            StandardOp::ArgMax {
                axis,
                keep_dims,
                last,
                min,
            } => arg_max(tensor_input(inputs, 0)?, *axis, *keep_dims, *last, *min)?,
            StandardOp::Reduce {
                kind,
                axes,
                keep_dims,
                noop_empty,
            } => {
                let x = tensor_input(inputs, 0)?;
                let axes = match axes {
                    Axes::Attribute(a) => a.clone(),
                    Axes::Input => match inputs.get(1).copied().flatten() {
                        Some(_) => tensor_input(inputs, 1)?
                            .as_i64s()
                            .ok_or("axes must be int64")?,
                        None => Vec::new(),
                    },
                };
                if axes.is_empty() && *noop_empty {
                    x.clone()
                } else {
                    reduce(x, *kind, &axes, *keep_dims)?
                }
            }
            StandardOp::TopK { k, axis, largest } => {
                let k = match k {
                    Some(k) => *k,
                    None => *tensor_input(inputs, 1)?
                        .as_i64s()
                        .ok_or("K must be int64")?
                        .first()
                        .ok_or("K is empty")?,
                };
                return top_k(tensor_input(inputs, 0)?, k, *axis, *largest);
            }
            StandardOp::Softmax { axis, legacy } => {
                softmax(tensor_input(inputs, 0)?, *axis, *legacy)?
            }
            StandardOp::Clip {
                min,
                max,
                from_inputs,
            } => {
                let x = tensor_input(inputs, 0)?;
                let bound = |i: usize| -> Result<Option<f64>, String> {
                    match inputs.get(i).copied().flatten() {
                        None => Ok(None),
                        Some(_) => {
                            let t = tensor_input(inputs, i)?;
                            let Data::F64(v) = cast_data(&t.data, ElemType::F64)? else {
                                unreachable!()
                            };
                            Ok(v.first().copied())
                        }
                    }
                };
                let (lo, hi) = if *from_inputs {
                    (bound(1)?, bound(2)?)
                } else {
                    (min.map(f64::from), max.map(f64::from))
                };
                let clip = |v: f64| {
                    let v = lo.map_or(v, |l| v.max(l));
                    hi.map_or(v, |h| v.min(h))
                };
                let data = match &x.data {
                    Data::F32(v) => {
                        Data::F32(v.iter().map(|&a| clip(f64::from(a)) as f32).collect())
                    }
                    Data::F64(v) => Data::F64(v.iter().map(|&a| clip(a)).collect()),
                    Data::I64(v) => Data::I64(v.iter().map(|&a| clip(a as f64) as i64).collect()),
                    other => {
                        return Err(format!(
                            "Clip does not take {}",
                            other.elem_type().onnx_name()
                        ));
                    }
                };
                Tensor::new(x.shape.clone(), data)
            }
        };
        Ok(vec![Value::Tensor(out)])
    }
}

fn constant(attrs: &Attrs) -> Result<Tensor, String> {
    if let Some(t) = attrs.tensor("value")? {
        return Ok(t);
    }
    if let Some(f) = attrs.float("value_float")? {
        return Ok(Tensor::new(vec![], Data::F32(vec![f])));
    }
    if let Some(v) = attrs.floats("value_floats")? {
        return Ok(Tensor::new(vec![v.len()], Data::F32(v)));
    }
    if let Some(i) = attrs.int("value_int")? {
        return Ok(Tensor::new(vec![], Data::I64(vec![i])));
    }
    if let Some(v) = attrs.ints("value_ints")? {
        return Ok(Tensor::new(vec![v.len()], Data::I64(v)));
    }
    if let Some(s) = attrs.string("value_string")? {
        return Ok(Tensor::new(vec![], Data::Str(vec![s])));
    }
    if let Some(v) = attrs.strings("value_strings")? {
        return Ok(Tensor::new(vec![v.len()], Data::Str(v)));
    }
    Err("has no value (value, value_float(s), value_int(s) or value_string(s))".into())
}

/// Normalises a possibly negative axis for a tensor of `rank` dimensions.
fn norm_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(format!("axis {axis} is out of range for {rank} dimensions"))
    }
}

fn axes_of(axes: &Axes, inputs: &[Option<&Value>], i: usize) -> Result<Vec<i64>, String> {
    match axes {
        Axes::Attribute(a) => Ok(a.clone()),
        Axes::Input => match inputs.get(i).copied().flatten() {
            Some(_) => tensor_input(inputs, i)?
                .as_i64s()
                .ok_or_else(|| "axes must be int64".to_owned()),
            None => Ok(Vec::new()),
        },
    }
}

trait Arith: Copy + PartialOrd {
    fn apply(op: Binary, a: Self, b: Self) -> Self;
}

macro_rules! float_arith {
    ($t:ty) => {
        impl Arith for $t {
            fn apply(op: Binary, a: $t, b: $t) -> $t {
                match op {
                    Binary::Add => a + b,
                    Binary::Sub => a - b,
                    Binary::Mul => a * b,
                    Binary::Div => a / b,
                    Binary::Pow => a.powf(b),
                    Binary::Max => {
                        if a.is_nan() || b.is_nan() {
                            <$t>::NAN
                        } else {
                            a.max(b)
                        }
                    }
                    Binary::Min => {
                        if a.is_nan() || b.is_nan() {
                            <$t>::NAN
                        } else {
                            a.min(b)
                        }
                    }
                }
            }
        }
    };
}
float_arith!(f32);
float_arith!(f64);

macro_rules! int_arith {
    ($t:ty) => {
        impl Arith for $t {
            fn apply(op: Binary, a: $t, b: $t) -> $t {
                match op {
                    Binary::Add => a.wrapping_add(b),
                    Binary::Sub => a.wrapping_sub(b),
                    Binary::Mul => a.wrapping_mul(b),
                    Binary::Div => a.checked_div(b).unwrap_or(0),
                    Binary::Pow => u32::try_from(b).map_or(0, |e| a.wrapping_pow(e)),
                    Binary::Max => a.max(b),
                    Binary::Min => a.min(b),
                }
            }
        }
    };
}
int_arith!(i64);
int_arith!(i32);

fn type_mismatch(op: &str, a: &Tensor, b: &Tensor) -> String {
    format!(
        "{op} of {} and {}: the types must match",
        a.elem_type().onnx_name(),
        b.elem_type().onnx_name()
    )
}

fn binary(op: Binary, a: &Tensor, b: &Tensor) -> Result<Tensor, String> {
    fn go<T: Arith>(
        op: Binary,
        x: &[T],
        xs: &[usize],
        y: &[T],
        ys: &[usize],
    ) -> Result<(Vec<T>, Vec<usize>), String> {
        broadcast::map2(x, xs, y, ys, |p, q| T::apply(op, p, q))
    }
    let (data, shape) = match (&a.data, &b.data) {
        (Data::F32(x), Data::F32(y)) => {
            let (v, s) = go(op, x, &a.shape, y, &b.shape)?;
            (Data::F32(v), s)
        }
        (Data::F64(x), Data::F64(y)) => {
            let (v, s) = go(op, x, &a.shape, y, &b.shape)?;
            (Data::F64(v), s)
        }
        (Data::I64(x), Data::I64(y)) => {
            let (v, s) = go(op, x, &a.shape, y, &b.shape)?;
            (Data::I64(v), s)
        }
        (Data::I32(x), Data::I32(y)) => {
            let (v, s) = go(op, x, &a.shape, y, &b.shape)?;
            (Data::I32(v), s)
        }
        // Pow may raise a float to an integer power.
        (Data::F32(x), Data::I64(y)) if op == Binary::Pow => {
            let (v, s) = broadcast::map2(x, &a.shape, y, &b.shape, |p, q| p.powf(q as f32))?;
            (Data::F32(v), s)
        }
        _ => return Err(type_mismatch(&format!("{op:?}"), a, b)),
    };
    Ok(Tensor::new(shape, data))
}

fn compare(op: Compare, a: &Tensor, b: &Tensor) -> Result<Tensor, String> {
    fn go<T: PartialOrd + Clone>(
        op: Compare,
        x: &[T],
        xs: &[usize],
        y: &[T],
        ys: &[usize],
    ) -> Result<(Vec<bool>, Vec<usize>), String> {
        let idx_x: Vec<usize> = (0..x.len()).collect();
        let idx_y: Vec<usize> = (0..y.len()).collect();
        broadcast::map2(&idx_x, xs, &idx_y, ys, |i, j| {
            let (p, q) = (&x[i], &y[j]);
            match op {
                Compare::Equal => p == q,
                Compare::Less => p < q,
                Compare::LessOrEqual => p <= q,
                Compare::Greater => p > q,
                Compare::GreaterOrEqual => p >= q,
            }
        })
    }
    let (v, s) = match (&a.data, &b.data) {
        (Data::F32(x), Data::F32(y)) => go(op, x, &a.shape, y, &b.shape)?,
        (Data::F64(x), Data::F64(y)) => go(op, x, &a.shape, y, &b.shape)?,
        (Data::I64(x), Data::I64(y)) => go(op, x, &a.shape, y, &b.shape)?,
        (Data::I32(x), Data::I32(y)) => go(op, x, &a.shape, y, &b.shape)?,
        (Data::Bool(x), Data::Bool(y)) if op == Compare::Equal => go(op, x, &a.shape, y, &b.shape)?,
        (Data::Str(x), Data::Str(y)) if op == Compare::Equal => go(op, x, &a.shape, y, &b.shape)?,
        _ => return Err(type_mismatch(&format!("{op:?}"), a, b)),
    };
    Ok(Tensor::new(s, Data::Bool(v)))
}

fn unary(op: Unary, x: &Tensor) -> Result<Tensor, String> {
    macro_rules! float_op {
        ($v:expr, $t:ty) => {
            $v.iter()
                .map(|&a: &$t| match op {
                    Unary::Abs => a.abs(),
                    Unary::Neg => -a,
                    Unary::Exp => a.exp(),
                    Unary::Log => a.ln(),
                    Unary::Sqrt => a.sqrt(),
                    Unary::Sigmoid => 1.0 / (1.0 + (-a).exp()),
                    Unary::Relu => a.max(0.0),
                    Unary::Tanh => a.tanh(),
                    Unary::Reciprocal => 1.0 / a,
                    Unary::Floor => a.floor(),
                    Unary::Ceil => a.ceil(),
                })
                .collect()
        };
    }
    macro_rules! int_op {
        ($v:expr) => {
            $v.iter()
                .map(|&a| match op {
                    Unary::Abs => Ok(a.wrapping_abs()),
                    Unary::Neg => Ok(a.wrapping_neg()),
                    Unary::Relu => Ok(a.max(0)),
                    Unary::Floor | Unary::Ceil => Ok(a),
                    other => Err(format!("{other:?} does not take integers")),
                })
                .collect::<Result<_, String>>()?
        };
    }
    let data = match &x.data {
        Data::F32(v) => Data::F32(float_op!(v, f32)),
        Data::F64(v) => Data::F64(float_op!(v, f64)),
        Data::I64(v) => Data::I64(int_op!(v)),
        Data::I32(v) => Data::I32(int_op!(v)),
        other => {
            return Err(format!(
                "{op:?} does not take {}",
                other.elem_type().onnx_name()
            ));
        }
    };
    Ok(Tensor::new(x.shape.clone(), data))
}

/// Converts every element to `to` (floats to integers truncate toward zero, saturating).
pub fn cast_data(data: &Data, to: ElemType) -> Result<Data, String> {
    macro_rules! from_num {
        ($v:expr) => {
            match to {
                ElemType::F32 => Data::F32($v.iter().map(|&a| a as f32).collect()),
                ElemType::F64 => Data::F64($v.iter().map(|&a| a as f64).collect()),
                ElemType::I64 => Data::I64($v.iter().map(|&a| a as i64).collect()),
                ElemType::I32 => Data::I32($v.iter().map(|&a| a as i32).collect()),
                ElemType::Bool => Data::Bool($v.iter().map(|&a| a as f64 != 0.0).collect()),
                ElemType::Str => Data::Str($v.iter().map(|&a| a.to_string()).collect()),
            }
        };
    }
    Ok(match data {
        Data::F32(v) => from_num!(v),
        Data::F64(v) => from_num!(v),
        Data::I64(v) => from_num!(v),
        Data::I32(v) => from_num!(v),
        Data::Bool(v) => {
            let ints: Vec<i64> = v.iter().map(|&b| i64::from(b)).collect();
            match to {
                ElemType::Bool => Data::Bool(v.clone()),
                ElemType::Str => Data::Str(
                    v.iter()
                        .map(|&b| if b { "1" } else { "0" }.to_owned())
                        .collect(),
                ),
                _ => from_num!(ints),
            }
        }
        Data::Str(v) => {
            if to == ElemType::Str {
                return Ok(Data::Str(v.clone()));
            }
            let nums: Vec<f64> = v
                .iter()
                .map(|s| {
                    s.trim()
                        .parse::<f64>()
                        .map_err(|_| format!("cannot cast the string {s:?} to a number"))
                })
                .collect::<Result<_, _>>()?;
            from_num!(nums)
        }
    })
}

fn reshape(shape: &[usize], spec: &[i64], allow_zero: bool) -> Result<Vec<usize>, String> {
    if spec.len() > MAX_RANK {
        return Err(format!("the new shape has {} dimensions", spec.len()));
    }
    let count: usize = shape.iter().product();
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allow_zero => out.push(
                *shape
                    .get(i)
                    .ok_or("a 0 in the new shape has no matching dimension")?,
            ),
            d if d >= 0 => out.push(d as usize),
            _ => return Err(format!("the new shape {spec:?} is invalid")),
        }
    }
    let known = out
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("the new shape overflows")?;
    if let Some(i) = infer {
        if known == 0 || !count.is_multiple_of(known) {
            return Err(format!("cannot reshape {shape:?} to {spec:?}"));
        }
        out[i] = count / known;
    } else if known != count {
        return Err(format!("cannot reshape {shape:?} to {spec:?}"));
    }
    Ok(out)
}

/// Picks elements by flat index, whatever the element type.
fn take(data: &Data, idx: &[usize]) -> Data {
    match data {
        Data::F32(v) => Data::F32(idx.iter().map(|&i| v[i]).collect()),
        Data::F64(v) => Data::F64(idx.iter().map(|&i| v[i]).collect()),
        Data::I64(v) => Data::I64(idx.iter().map(|&i| v[i]).collect()),
        Data::I32(v) => Data::I32(idx.iter().map(|&i| v[i]).collect()),
        Data::Bool(v) => Data::Bool(idx.iter().map(|&i| v[i]).collect()),
        Data::Str(v) => Data::Str(idx.iter().map(|&i| v[i].clone()).collect()),
    }
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

fn transpose(x: &Tensor, perm: Option<&[i64]>) -> Result<Tensor, String> {
    let rank = x.shape.len();
    let perm: Vec<usize> = match perm {
        Some(p) => p
            .iter()
            .map(|&a| norm_axis(a, rank))
            .collect::<Result<_, _>>()?,
        None => (0..rank).rev().collect(),
    };
    let mut seen = vec![false; rank];
    if perm.len() != rank || perm.iter().any(|&a| std::mem::replace(&mut seen[a], true)) {
        return Err(format!("perm {perm:?} is not a permutation of {rank} axes"));
    }
    let in_strides = strides(&x.shape);
    let out_shape: Vec<usize> = perm.iter().map(|&a| x.shape[a]).collect();
    let perm_strides: Vec<usize> = perm.iter().map(|&a| in_strides[a]).collect();
    let idx = broadcast_like_offsets(&out_shape, &perm_strides);
    Ok(Tensor::new(out_shape, take(&x.data, &idx)))
}

/// Offsets into a tensor read with `strides` along each axis of `shape`, in row-major order.
fn broadcast_like_offsets(shape: &[usize], strides: &[usize]) -> Vec<usize> {
    let count: usize = shape.iter().product();
    let mut out = Vec::with_capacity(count);
    let mut index = vec![0usize; shape.len()];
    let mut offset = 0;
    for _ in 0..count {
        out.push(offset);
        for a in (0..shape.len()).rev() {
            index[a] += 1;
            offset += strides[a];
            if index[a] < shape[a] {
                break;
            }
            offset -= strides[a] * index[a];
            index[a] = 0;
        }
    }
    out
}

fn concat(parts: &[&Tensor], axis: i64) -> Result<Tensor, String> {
    let first = parts[0];
    let rank = first.shape.len();
    let a = norm_axis(axis, rank)?;
    let ty = first.elem_type();
    let mut total = 0usize;
    for p in parts {
        if p.elem_type() != ty {
            return Err(format!(
                "inputs of types {} and {} cannot be concatenated",
                ty.onnx_name(),
                p.elem_type().onnx_name()
            ));
        }
        if p.shape.len() != rank
            || p.shape
                .iter()
                .enumerate()
                .any(|(i, &d)| i != a && d != first.shape[i])
        {
            return Err(format!(
                "shapes {:?} and {:?} do not concatenate on axis {a}",
                first.shape, p.shape
            ));
        }
        total += p.shape[a];
    }
    let outer: usize = first.shape[..a].iter().product();
    let inner: usize = first.shape[a + 1..].iter().product();
    let mut shape = first.shape.clone();
    shape[a] = total;
    // Flat indices into the concatenation of the parts' buffers.
    let mut bases = Vec::with_capacity(parts.len());
    let mut base = 0;
    for p in parts {
        bases.push(base);
        base += p.len();
    }
    let mut idx = Vec::with_capacity(outer * total * inner);
    for o in 0..outer {
        for (p, &b) in parts.iter().zip(&bases) {
            let chunk = p.shape[a] * inner;
            idx.extend(b + o * chunk..b + (o + 1) * chunk);
        }
    }
    macro_rules! join {
        ($variant:ident) => {{
            let mut all = Vec::with_capacity(base);
            for p in parts {
                let Data::$variant(v) = &p.data else {
                    unreachable!()
                };
                all.extend_from_slice(v);
            }
            take(&Data::$variant(all), &idx)
        }};
    }
    let data = match ty {
        ElemType::F32 => join!(F32),
        ElemType::F64 => join!(F64),
        ElemType::I64 => join!(I64),
        ElemType::I32 => join!(I32),
        ElemType::Bool => join!(Bool),
        ElemType::Str => join!(Str),
    };
    Ok(Tensor::new(shape, data))
}

fn gather(x: &Tensor, indices: &Tensor, axis: i64) -> Result<Tensor, String> {
    let rank = x.shape.len();
    let a = norm_axis(axis, rank)?;
    let n = x.shape[a] as i64;
    let ids: Vec<usize> = indices
        .as_i64s()
        .ok_or("indices must be int64 or int32")?
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + n } else { i };
            if (0..n).contains(&j) {
                Ok(j as usize)
            } else {
                Err(format!("index {i} is outside an axis of {n}"))
            }
        })
        .collect::<Result<_, _>>()?;
    let outer: usize = x.shape[..a].iter().product();
    let inner: usize = x.shape[a + 1..].iter().product();
    let mut shape = x.shape[..a].to_vec();
    shape.extend_from_slice(&indices.shape);
    shape.extend_from_slice(&x.shape[a + 1..]);
    if shape.len() > MAX_RANK {
        return Err("the result has too many dimensions".into());
    }
    let count = outer
        .checked_mul(ids.len())
        .and_then(|c| c.checked_mul(inner))
        .filter(|&c| c <= MAX_ELEMENTS);
    let count = count.ok_or("the result would be too large")?;
    let mut idx = Vec::with_capacity(count);
    for o in 0..outer {
        for &i in &ids {
            let start = (o * x.shape[a] + i) * inner;
            idx.extend(start..start + inner);
        }
    }
    Ok(Tensor::new(shape, take(&x.data, &idx)))
}

fn where_(cond: &Tensor, x: &Tensor, y: &Tensor) -> Result<Tensor, String> {
    let Data::Bool(c) = &cond.data else {
        return Err("the condition must be bool".into());
    };
    if x.elem_type() != y.elem_type() {
        return Err(type_mismatch("Where", x, y));
    }
    let shape = broadcast::shape(&[&cond.shape, &x.shape, &y.shape])?;
    let oc = broadcast::offsets(&cond.shape, &shape);
    let ox = broadcast::offsets(&x.shape, &shape);
    let oy = broadcast::offsets(&y.shape, &shape);
    // Flat indices into x's buffer followed by y's.
    let idx: Vec<usize> = (0..oc.len())
        .map(|i| if c[oc[i]] { ox[i] } else { x.len() + oy[i] })
        .collect();
    macro_rules! pick {
        ($variant:ident) => {{
            let (Data::$variant(a), Data::$variant(b)) = (&x.data, &y.data) else {
                unreachable!()
            };
            let mut all = a.clone();
            all.extend_from_slice(b);
            take(&Data::$variant(all), &idx)
        }};
    }
    let data = match x.elem_type() {
        ElemType::F32 => pick!(F32),
        ElemType::F64 => pick!(F64),
        ElemType::I64 => pick!(I64),
        ElemType::I32 => pick!(I32),
        ElemType::Bool => pick!(Bool),
        ElemType::Str => pick!(Str),
    };
    Ok(Tensor::new(shape, data))
}

/// A 2-D float matrix view (rows, cols) of a rank-1 or rank-2 tensor.
fn matrix(t: &Tensor, as_row: bool) -> Result<(usize, usize), String> {
    match t.shape.as_slice() {
        [k] if as_row => Ok((1, *k)),
        [k] => Ok((*k, 1)),
        [m, k] => Ok((*m, *k)),
        s => Err(format!(
            "matrix products of rank {} ({s:?}) are not supported",
            s.len()
        )),
    }
}

/// The most multiply-adds one matrix product may take.
const MAX_PRODUCT_WORK: usize = 1 << 34;

/// Checks that an `m x k` by `k x n` product fits the element and work limits.
fn check_product(m: usize, k: usize, n: usize) -> Result<(), String> {
    let out = m.checked_mul(n).filter(|&c| c <= MAX_ELEMENTS);
    let work = out
        .and_then(|o| o.checked_mul(k.max(1)))
        .filter(|&w| w <= MAX_PRODUCT_WORK);
    work.map(|_| ())
        .ok_or_else(|| format!("a {m}x{k} by {k}x{n} product is larger than supported"))
}

fn mm<T: Copy + Default + std::ops::Add<Output = T> + std::ops::Mul<Output = T>>(
    a: &[T],
    b: &[T],
    m: usize,
    k: usize,
    n: usize,
    at: bool,
    bt: bool,
) -> Vec<T> {
    let mut out = vec![T::default(); m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = T::default();
            for p in 0..k {
                let x = if at { a[p * m + i] } else { a[i * k + p] };
                let y = if bt { b[j * k + p] } else { b[p * n + j] };
                s = s + x * y;
            }
            out[i * n + j] = s;
        }
    }
    out
}

fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor, String> {
    let (m, k) = matrix(a, true)?;
    let (k2, n) = matrix(b, false)?;
    if k != k2 {
        return Err(format!(
            "shapes {:?} and {:?} do not multiply",
            a.shape, b.shape
        ));
    }
    check_product(m, k, n)?;
    let mut shape = Vec::new();
    if a.shape.len() == 2 {
        shape.push(m);
    }
    if b.shape.len() == 2 {
        shape.push(n);
    }
    let data = match (&a.data, &b.data) {
        (Data::F32(x), Data::F32(y)) => Data::F32(mm(x, y, m, k, n, false, false)),
        (Data::F64(x), Data::F64(y)) => Data::F64(mm(x, y, m, k, n, false, false)),
        _ => return Err(type_mismatch("MatMul", a, b)),
    };
    Ok(Tensor::new(shape, data))
}

#[allow(clippy::too_many_arguments)]
fn gemm(
    a: &Tensor,
    b: &Tensor,
    c: Option<&Tensor>,
    alpha: f32,
    beta: f32,
    ta: bool,
    tb: bool,
) -> Result<Tensor, String> {
    let (ar, ac) = matrix(a, true)?;
    let (br, bc) = matrix(b, false)?;
    let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
    let (k2, n) = if tb { (bc, br) } else { (br, bc) };
    if k != k2 {
        return Err(format!(
            "shapes {:?} and {:?} do not multiply",
            a.shape, b.shape
        ));
    }
    check_product(m, k, n)?;
    let shape = vec![m, n];
    let mut out = match (&a.data, &b.data) {
        (Data::F32(x), Data::F32(y)) => {
            let mut v = mm(x, y, m, k, n, ta, tb);
            v.iter_mut().for_each(|e| *e *= alpha);
            Tensor::new(shape.clone(), Data::F32(v))
        }
        (Data::F64(x), Data::F64(y)) => {
            let mut v = mm(x, y, m, k, n, ta, tb);
            v.iter_mut().for_each(|e| *e *= f64::from(alpha));
            Tensor::new(shape.clone(), Data::F64(v))
        }
        _ => return Err(type_mismatch("Gemm", a, b)),
    };
    if let Some(c) = c {
        let scaled = binary(
            Binary::Mul,
            c,
            &Tensor::new(vec![], cast_data(&Data::F32(vec![beta]), c.elem_type())?),
        )?;
        out = binary(Binary::Add, &out, &scaled)?;
        if out.shape != shape {
            return Err(format!(
                "C of shape {:?} does not broadcast to {shape:?}",
                c.shape
            ));
        }
    }
    Ok(out)
}

/// Splits `shape` around `axis` into (outer, len, inner).
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

fn to_f64s(x: &Tensor) -> Result<Vec<f64>, String> {
    match cast_data(&x.data, ElemType::F64)? {
        Data::F64(v) if !matches!(x.data, Data::Str(_) | Data::Bool(_)) => Ok(v),
        _ => Err(format!(
            "expects a numeric input, got {}",
            x.elem_type().onnx_name()
        )),
    }
}

fn arg_max(x: &Tensor, axis: i64, keep: bool, last: bool, min: bool) -> Result<Tensor, String> {
    let a = norm_axis(axis, x.shape.len())?;
    let (outer, len, inner) = around(&x.shape, a);
    if len == 0 {
        return Err("ArgMax over an empty axis".into());
    }
    let v = to_f64s(x)?;
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| v[(o * len + j) * inner + i];
            let mut best = 0;
            for j in 1..len {
                let (c, b) = (at(j), at(best));
                let better = if min {
                    c < b || (last && c == b)
                } else {
                    c > b || (last && c == b)
                };
                if better {
                    best = j;
                }
            }
            out.push(best as i64);
        }
    }
    let mut shape = x.shape.clone();
    if keep {
        shape[a] = 1;
    } else {
        shape.remove(a);
    }
    Ok(Tensor::new(shape, Data::I64(out)))
}

fn reduce(x: &Tensor, kind: Reduce, axes: &[i64], keep: bool) -> Result<Tensor, String> {
    let rank = x.shape.len();
    let mut axes: Vec<usize> = if axes.is_empty() {
        (0..rank).collect()
    } else {
        axes.iter()
            .map(|&a| norm_axis(a, rank))
            .collect::<Result<_, _>>()?
    };
    axes.sort_unstable();
    axes.dedup();
    // Reduce one axis at a time (keeping it as 1), in f64 for doubles and f32 otherwise.
    let mut shape = x.shape.clone();
    let is_f64 = x.elem_type() == ElemType::F64;
    let mut v = to_f64s(x)?;
    if !is_f64 {
        v.iter_mut().for_each(|e| *e = f64::from(*e as f32));
    }
    for &a in &axes {
        let (outer, len, inner) = around(&shape, a);
        let mut out = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            for i in 0..inner {
                let items = (0..len).map(|j| v[(o * len + j) * inner + i]);
                let r = match kind {
                    Reduce::Sum => fold(items, 0.0, |s, e| s + e, is_f64),
                    Reduce::SumSquare => fold(items, 0.0, |s, e| s + e * e, is_f64),
                    Reduce::Mean => fold(items, 0.0, |s, e| s + e, is_f64) / len as f64,
                    Reduce::Max => items.fold(f64::NEG_INFINITY, f64::max),
                    Reduce::Min => items.fold(f64::INFINITY, f64::min),
                    Reduce::LogSumExp => {
                        let max = (0..len)
                            .map(|j| v[(o * len + j) * inner + i])
                            .fold(f64::NEG_INFINITY, f64::max);
                        let s = fold(items, 0.0, |s, e| s + (e - max).exp(), is_f64);
                        s.ln() + max
                    }
                };
                out.push(if is_f64 { r } else { f64::from(r as f32) });
            }
        }
        shape[a] = 1;
        v = out;
    }
    let shape: Vec<usize> = if keep {
        shape
    } else {
        shape
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect()
    };
    let data = cast_data(&Data::F64(v), x.elem_type())?;
    Ok(Tensor::new(shape, data))
}

/// Folds in f32 precision unless the data is f64, so float models round as onnxruntime does.
fn fold(
    items: impl Iterator<Item = f64>,
    init: f64,
    f: impl Fn(f64, f64) -> f64,
    is_f64: bool,
) -> f64 {
    if is_f64 {
        items.fold(init, f)
    } else {
        items
            .fold(init as f32, |s, e| f(f64::from(s), e) as f32)
            .into()
    }
}

fn softmax(x: &Tensor, axis: i64, legacy: bool) -> Result<Tensor, String> {
    let rank = x.shape.len();
    let a = norm_axis(axis, rank)?;
    // Before opset 13 the input is seen as 2-D: [prod(shape[..axis]), prod(shape[axis..])].
    let (outer, len, inner) = if legacy {
        (
            x.shape[..a].iter().product(),
            x.shape[a..].iter().product(),
            1,
        )
    } else {
        around(&x.shape, a)
    };
    macro_rules! go {
        ($v:expr, $t:ty) => {{
            let mut out = $v.clone();
            let mut row: Vec<$t> = vec![0.0; len];
            for o in 0..outer {
                for i in 0..inner {
                    for j in 0..len {
                        row[j] = out[(o * len + j) * inner + i];
                    }
                    let max = row.iter().copied().fold(<$t>::NEG_INFINITY, <$t>::max);
                    let mut sum: $t = 0.0;
                    for e in row.iter_mut() {
                        *e = (*e - max).exp();
                        sum += *e;
                    }
                    for j in 0..len {
                        out[(o * len + j) * inner + i] = row[j] / sum;
                    }
                }
            }
            out
        }};
    }
    let data = match &x.data {
        Data::F32(v) => Data::F32(go!(v, f32)),
        Data::F64(v) => Data::F64(go!(v, f64)),
        other => {
            return Err(format!(
                "Softmax does not take {}",
                other.elem_type().onnx_name()
            ));
        }
    };
    Ok(Tensor::new(x.shape.clone(), data))
}

/// The k largest (or smallest) values along an axis and their indices; equal values keep the
/// lower index first.
fn top_k(x: &Tensor, k: i64, axis: i64, largest: bool) -> Result<Vec<Value>, String> {
    let a = norm_axis(axis, x.shape.len())?;
    let (outer, len, inner) = around(&x.shape, a);
    let k = usize::try_from(k)
        .ok()
        .filter(|&k| k <= len)
        .ok_or_else(|| format!("K={k} is outside 0..={len}"))?;
    let v = to_f64s(x)?;
    let mut order: Vec<usize> = Vec::with_capacity(len);
    let mut positions = vec![0usize; outer * k * inner];
    for o in 0..outer {
        for i in 0..inner {
            order.clear();
            order.extend(0..len);
            let at = |j: usize| v[(o * len + j) * inner + i];
            order.sort_by(|&p, &q| {
                let c = at(p)
                    .partial_cmp(&at(q))
                    .unwrap_or(std::cmp::Ordering::Equal);
                (if largest { c.reverse() } else { c }).then(p.cmp(&q))
            });
            for (r, &j) in order[..k].iter().enumerate() {
                positions[(o * k + r) * inner + i] = j;
            }
        }
    }
    let idx: Vec<usize> = positions
        .iter()
        .enumerate()
        .map(|(n, &j)| (n / (k * inner) * len + j) * inner + n % inner)
        .collect();
    let mut shape = x.shape.clone();
    shape[a] = k;
    Ok(vec![
        Value::Tensor(Tensor::new(shape.clone(), take(&x.data, &idx))),
        Value::Tensor(Tensor::new(
            shape,
            Data::I64(positions.iter().map(|&j| j as i64).collect()),
        )),
    ])
}
