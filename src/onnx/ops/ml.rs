//! The small ONNX-ML operators: preprocessing (Scaler, Imputer, Normalizer, Binarizer,
//! OneHotEncoder, ArrayFeatureExtractor), linear models and ZipMap.

use super::{MapRows, PostTransform, Value, argmax, arity, rows_f32, tensor_input};
use crate::onnx::attr::{Attrs, Labels};
use crate::onnx::tensor::{Data, MAX_ELEMENTS, Tensor};

#[derive(Debug)]
pub enum MlOp {
    Scaler {
        offset: Vec<f32>,
        scale: Vec<f32>,
    },
    Imputer {
        values: Vec<f32>,
        replaced: f32,
    },
    Normalizer(Norm),
    Binarizer {
        threshold: f32,
    },
    ArrayFeatureExtractor,
    OneHotEncoder {
        cats: Labels,
        zeros: bool,
    },
    LinearClassifier(LinearClassifier),
    LinearRegressor {
        coefficients: Vec<f32>,
        intercepts: Vec<f32>,
        targets: usize,
        post: PostTransform,
    },
    ZipMap(Labels),
}

#[derive(Debug, Clone, Copy)]
pub enum Norm {
    Max,
    L1,
    L2,
}

#[derive(Debug)]
pub struct LinearClassifier {
    coefficients: Vec<f32>,
    intercepts: Vec<f32>,
    labels: Labels,
    post: PostTransform,
}

/// A per-feature parameter list (one value for all features, or one per feature).
fn per_feature(values: &[f32], width: usize, what: &str) -> Result<(), String> {
    if values.len() == 1 || values.len() == width {
        Ok(())
    } else {
        Err(format!(
            "{what} has {} values for {width} features (expected 1 or {width})",
            values.len()
        ))
    }
}

fn param(values: &[f32], j: usize) -> f32 {
    if values.len() == 1 {
        values[0]
    } else {
        values[j]
    }
}

impl MlOp {
    pub fn compile(
        op: &str,
        attrs: &Attrs,
        n_in: usize,
        n_out: usize,
    ) -> Result<MlOp, super::CompileError> {
        let one = |n_out_max| arity(n_in, 1, 1, n_out, n_out_max);
        Ok(match op {
            "Scaler" => {
                one(1)?;
                let offset = attrs.floats_or_empty("offset")?;
                let scale = attrs.floats_or_empty("scale")?;
                let offset = if offset.is_empty() { vec![0.0] } else { offset };
                let scale = if scale.is_empty() { vec![1.0] } else { scale };
                MlOp::Scaler { offset, scale }
            }
            "Imputer" => {
                one(1)?;
                if attrs.has("imputed_value_int64s") {
                    return Err("integer imputation (imputed_value_int64s) is not supported"
                        .to_owned()
                        .into());
                }
                let values = attrs.floats_or_empty("imputed_value_floats")?;
                if values.is_empty() {
                    return Err("imputed_value_floats is empty".to_owned().into());
                }
                let replaced = attrs.float("replaced_value_float")?.unwrap_or(0.0);
                MlOp::Imputer { values, replaced }
            }
            "Normalizer" => {
                one(1)?;
                MlOp::Normalizer(match attrs.string_or("norm", "MAX")?.as_str() {
                    "MAX" => Norm::Max,
                    "L1" => Norm::L1,
                    "L2" => Norm::L2,
                    other => return Err(format!("norm {other:?} is not MAX, L1 or L2").into()),
                })
            }
            "Binarizer" => {
                one(1)?;
                MlOp::Binarizer {
                    threshold: attrs.float("threshold")?.unwrap_or(0.0),
                }
            }
            "ArrayFeatureExtractor" => {
                arity(n_in, 2, 2, n_out, 1)?;
                MlOp::ArrayFeatureExtractor
            }
            "OneHotEncoder" => {
                one(1)?;
                let cats = attrs.class_labels("cats_int64s", "cats_strings")?;
                MlOp::OneHotEncoder {
                    cats,
                    zeros: attrs.int_or("zeros", 1)? != 0,
                }
            }
            "LinearClassifier" => {
                arity(n_in, 1, 1, n_out, 2)?;
                let labels = attrs.class_labels("classlabels_ints", "classlabels_strings")?;
                let coefficients = attrs.floats_or_empty("coefficients")?;
                let intercepts = attrs.floats_or_empty("intercepts")?;
                let classes = labels.len();
                if intercepts.len() != classes {
                    return Err(format!(
                        "has {} intercepts for {classes} classes; only one row of coefficients per class is supported",
                        intercepts.len()
                    )
                    .into());
                }
                if coefficients.is_empty() || coefficients.len() % classes != 0 {
                    return Err(format!(
                        "has {} coefficients, not a multiple of the {classes} classes",
                        coefficients.len()
                    )
                    .into());
                }
                MlOp::LinearClassifier(LinearClassifier {
                    coefficients,
                    intercepts,
                    labels,
                    post: PostTransform::parse(attrs)?,
                })
            }
            "LinearRegressor" => {
                one(1)?;
                let targets = usize::try_from(attrs.int_or("targets", 1)?)
                    .ok()
                    .filter(|&t| t > 0)
                    .ok_or("targets must be positive")?;
                let coefficients = attrs.floats_or_empty("coefficients")?;
                let mut intercepts = attrs.floats_or_empty("intercepts")?;
                if intercepts.is_empty() {
                    intercepts = vec![0.0; targets];
                }
                if intercepts.len() != targets
                    || coefficients.is_empty()
                    || coefficients.len() % targets != 0
                {
                    return Err(format!(
                        "{} coefficients and {} intercepts do not fit {targets} target(s)",
                        coefficients.len(),
                        intercepts.len()
                    )
                    .into());
                }
                MlOp::LinearRegressor {
                    coefficients,
                    intercepts,
                    targets,
                    post: PostTransform::parse(attrs)?,
                }
            }
            "ZipMap" => {
                one(1)?;
                MlOp::ZipMap(attrs.class_labels("classlabels_int64s", "classlabels_strings")?)
            }
            _ => return Err(super::CompileError::Unsupported),
        })
    }

    pub fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = tensor_input(inputs, 0)?;
        Ok(match self {
            MlOp::Scaler { offset, scale } => vec![scaler(x, offset, scale)?],
            MlOp::Imputer { values, replaced } => vec![imputer(x, values, *replaced)?],
            MlOp::Normalizer(norm) => vec![normalizer(x, *norm)?],
            MlOp::Binarizer { threshold } => {
                let t = *threshold;
                let data = match &x.data {
                    Data::F32(v) => {
                        Data::F32(v.iter().map(|&a| if a > t { 1.0 } else { 0.0 }).collect())
                    }
                    Data::F64(v) => Data::F64(
                        v.iter()
                            .map(|&a| if a > f64::from(t) { 1.0 } else { 0.0 })
                            .collect(),
                    ),
                    other => {
                        return Err(format!(
                            "expects float or double, got {}",
                            other.elem_type().onnx_name()
                        ));
                    }
                };
                vec![Value::Tensor(Tensor::new(x.shape.clone(), data))]
            }
            MlOp::ArrayFeatureExtractor => {
                vec![array_feature_extractor(x, tensor_input(inputs, 1)?)?]
            }
            MlOp::OneHotEncoder { cats, zeros } => vec![one_hot(x, cats, *zeros)?],
            MlOp::LinearClassifier(op) => op.run(x)?,
            MlOp::LinearRegressor {
                coefficients,
                intercepts,
                targets,
                post,
            } => {
                let (rows, width, data) = rows_f32(x)?;
                if coefficients.len() != targets * width {
                    return Err(format!(
                        "has {} coefficients for {targets} target(s), the input has {width} features",
                        coefficients.len()
                    ));
                }
                let mut out = Vec::with_capacity(rows * targets);
                for row in data.chunks_exact(width.max(1)).take(rows) {
                    let start = out.len();
                    for t in 0..*targets {
                        let w = &coefficients[t * width..(t + 1) * width];
                        out.push(dot(row, w) + intercepts[t]);
                    }
                    post.apply(&mut out[start..]);
                }
                vec![Value::Tensor(Tensor::new(
                    vec![rows, *targets],
                    Data::F32(out),
                ))]
            }
            MlOp::ZipMap(keys) => {
                let (rows, width, data) = rows_f32(x)?;
                if width != keys.len() {
                    return Err(format!(
                        "has {} class keys, the input has {width} columns",
                        keys.len()
                    ));
                }
                debug_assert_eq!(data.len(), rows * width);
                vec![Value::Maps(MapRows {
                    keys: keys.clone(),
                    values: data.into_owned(),
                })]
            }
        })
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn scaler(x: &Tensor, offset: &[f32], scale: &[f32]) -> Result<Value, String> {
    let width = *x.shape.last().ok_or("expects at least one dimension")?;
    per_feature(offset, width, "offset")?;
    per_feature(scale, width, "scale")?;
    let w = width.max(1);
    let out: Vec<f32> = match &x.data {
        Data::F32(v) => v
            .iter()
            .enumerate()
            .map(|(i, &a)| (a - param(offset, i % w)) * param(scale, i % w))
            .collect(),
        Data::F64(v) => v
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                ((a - f64::from(param(offset, i % w))) * f64::from(param(scale, i % w))) as f32
            })
            .collect(),
        Data::I64(v) => v
            .iter()
            .enumerate()
            .map(|(i, &a)| (a as f32 - param(offset, i % w)) * param(scale, i % w))
            .collect(),
        Data::I32(v) => v
            .iter()
            .enumerate()
            .map(|(i, &a)| (a as f32 - param(offset, i % w)) * param(scale, i % w))
            .collect(),
        other => {
            return Err(format!(
                "expects a numeric input, got {}",
                other.elem_type().onnx_name()
            ));
        }
    };
    Ok(Value::Tensor(Tensor::new(x.shape.clone(), Data::F32(out))))
}

fn imputer(x: &Tensor, values: &[f32], replaced: f32) -> Result<Value, String> {
    let width = *x.shape.last().ok_or("expects at least one dimension")?;
    per_feature(values, width, "imputed_value_floats")?;
    let Data::F32(v) = &x.data else {
        return Err(format!("expects float, got {}", x.elem_type().onnx_name()));
    };
    let w = width.max(1);
    let is_replaced = |a: f32| {
        if replaced.is_nan() {
            a.is_nan()
        } else {
            a == replaced
        }
    };
    let out = v
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            if is_replaced(a) {
                param(values, i % w)
            } else {
                a
            }
        })
        .collect();
    Ok(Value::Tensor(Tensor::new(x.shape.clone(), Data::F32(out))))
}

fn normalizer(x: &Tensor, norm: Norm) -> Result<Value, String> {
    let (rows, width, data) = rows_f32(x)?;
    let mut out = data.into_owned();
    for row in out.chunks_exact_mut(width.max(1)).take(rows) {
        match norm {
            Norm::Max => {
                let max = row.iter().copied().fold(f32::MIN, f32::max);
                if max != 0.0 {
                    row.iter_mut().for_each(|v| *v /= max);
                }
            }
            Norm::L1 => {
                let sum: f32 = row.iter().map(|v| v.abs()).sum();
                if sum != 0.0 {
                    row.iter_mut().for_each(|v| *v /= sum);
                }
            }
            Norm::L2 => {
                let sum: f32 = row.iter().map(|v| v * v).sum();
                if sum != 0.0 {
                    let norm = sum.sqrt();
                    row.iter_mut().for_each(|v| *v /= norm);
                }
            }
        }
    }
    Ok(Value::Tensor(Tensor::new(
        vec![rows, width],
        Data::F32(out),
    )))
}

fn array_feature_extractor(x: &Tensor, indices: &Tensor) -> Result<Value, String> {
    let idx = indices.as_i64s().ok_or("indices must be int64")?;
    let last = *x.shape.last().ok_or("expects at least one dimension")?;
    let cols: Vec<usize> = idx
        .iter()
        .map(|&i| usize::try_from(i).ok().filter(|&i| i < last))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("an index in {idx:?} is outside 0..{last}"))?;
    let outer = x.len() / last.max(1);
    let mut shape = if x.shape.len() == 1 {
        vec![1]
    } else {
        x.shape[..x.shape.len() - 1].to_vec()
    };
    shape.push(cols.len());
    if outer.saturating_mul(cols.len()) > MAX_ELEMENTS {
        return Err("the result would be too large".into());
    }
    fn pick<T: Clone>(v: &[T], outer: usize, last: usize, cols: &[usize]) -> Vec<T> {
        let mut out = Vec::with_capacity(outer * cols.len());
        for r in 0..outer {
            out.extend(cols.iter().map(|&c| v[r * last + c].clone()));
        }
        out
    }
    let data = match &x.data {
        Data::F32(v) => Data::F32(pick(v, outer, last, &cols)),
        Data::F64(v) => Data::F64(pick(v, outer, last, &cols)),
        Data::I64(v) => Data::I64(pick(v, outer, last, &cols)),
        Data::I32(v) => Data::I32(pick(v, outer, last, &cols)),
        Data::Str(v) => Data::Str(pick(v, outer, last, &cols)),
        Data::Bool(_) => return Err("does not take bool".into()),
    };
    Ok(Value::Tensor(Tensor::new(shape, data)))
}

fn one_hot(x: &Tensor, cats: &Labels, zeros: bool) -> Result<Value, String> {
    let k = cats.len();
    let count = x
        .len()
        .checked_mul(k)
        .filter(|&c| c <= MAX_ELEMENTS)
        .ok_or("the result would be too large")?;
    let mut out = vec![0f32; count];
    let mut set = |i: usize, found: Option<usize>| -> Result<(), String> {
        match found {
            Some(j) => {
                out[i * k + j] = 1.0;
                Ok(())
            }
            None if zeros => Ok(()),
            None => Err(format!("value {i} is not a known category and zeros=0")),
        }
    };
    match (&x.data, cats) {
        (Data::Str(v), Labels::Str(c)) => {
            for (i, s) in v.iter().enumerate() {
                set(i, c.iter().position(|x| x == s))?;
            }
        }
        (Data::Str(_), Labels::I64(_)) | (_, Labels::Str(_)) => {
            return Err("the input type does not match the categories' type".into());
        }
        (data, Labels::I64(c)) => {
            let ints: Vec<i64> = match data {
                Data::I64(v) => v.clone(),
                Data::I32(v) => v.iter().map(|&a| i64::from(a)).collect(),
                Data::F32(v) => v.iter().map(|&a| a as i64).collect(),
                Data::F64(v) => v.iter().map(|&a| a as i64).collect(),
                _ => return Err("expects a numeric or string input".into()),
            };
            for (i, a) in ints.iter().enumerate() {
                set(i, c.iter().position(|x| x == a))?;
            }
        }
    }
    let mut shape = x.shape.clone();
    shape.push(k);
    Ok(Value::Tensor(Tensor::new(shape, Data::F32(out))))
}

impl LinearClassifier {
    fn run(&self, x: &Tensor) -> Result<Vec<Value>, String> {
        let (rows, width, data) = rows_f32(x)?;
        let classes = self.labels.len();
        if self.coefficients.len() != classes * width {
            return Err(format!(
                "has {} coefficients for {classes} classes, the input has {width} features",
                self.coefficients.len()
            ));
        }
        let mut scores = Vec::with_capacity(rows * classes);
        let mut best = Vec::with_capacity(rows);
        for row in data.chunks_exact(width.max(1)).take(rows) {
            let start = scores.len();
            for c in 0..classes {
                let w = &self.coefficients[c * width..(c + 1) * width];
                scores.push(dot(row, w) + self.intercepts[c]);
            }
            best.push(argmax(&scores[start..]));
            self.post.apply(&mut scores[start..]);
        }
        Ok(vec![
            Value::Tensor(self.labels.pick(&best)),
            Value::Tensor(Tensor::new(vec![rows, classes], Data::F32(scores))),
        ])
    }
}
