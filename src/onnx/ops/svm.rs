//! SVMClassifier and SVMRegressor (libsvm's one-vs-one scheme and Platt probabilities), computed
//! in f32 as onnxruntime does.

use super::{PostTransform, Value, argmax, rows_f32};
use crate::onnx::attr::{Attrs, Labels};
use crate::onnx::tensor::{Data, Tensor};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kernel {
    Linear,
    Poly { gamma: f32, coef0: f32, degree: f32 },
    Rbf { gamma: f32 },
    Sigmoid { gamma: f32, coef0: f32 },
}

impl Kernel {
    fn parse(attrs: &Attrs) -> Result<Kernel, String> {
        let params = attrs.floats_or_empty("kernel_params")?;
        let (gamma, coef0, degree) = match params.as_slice() {
            [] => (0.0, 0.0, 0.0),
            [g, c, d, ..] => (*g, *c, *d),
            _ => return Err("kernel_params needs gamma, coef0 and degree".into()),
        };
        Ok(match attrs.string_or("kernel_type", "LINEAR")?.as_str() {
            "LINEAR" => Kernel::Linear,
            "POLY" => Kernel::Poly {
                gamma,
                coef0,
                degree,
            },
            "RBF" => Kernel::Rbf { gamma },
            "SIGMOID" => Kernel::Sigmoid { gamma, coef0 },
            other => {
                return Err(format!(
                    "kernel_type {other:?} is not LINEAR, POLY, RBF or SIGMOID"
                ));
            }
        })
    }

    fn eval(self, x: &[f32], sv: &[f32]) -> f32 {
        // onnxruntime computes these dot products with its GEMM, one fused multiply-add per
        // feature in order; mul_add rounds the same way.
        let dot = || {
            x.iter()
                .zip(sv)
                .fold(0f32, |acc, (&a, &b)| a.mul_add(b, acc))
        };
        match self {
            Kernel::Linear => dot(),
            Kernel::Poly {
                gamma,
                coef0,
                degree,
            } => {
                let base = gamma * dot() + coef0;
                if degree == 2.0 {
                    base * base
                } else if degree == 3.0 {
                    base * base * base
                } else {
                    base.powf(degree)
                }
            }
            Kernel::Rbf { gamma } => {
                let d: f32 = x.iter().zip(sv).map(|(a, b)| (a - b) * (a - b)).sum();
                (-gamma * d).exp()
            }
            Kernel::Sigmoid { gamma, coef0 } => (gamma * dot() + coef0).tanh(),
        }
    }
}

/// Support vectors as a `count x width` matrix.
#[derive(Debug)]
struct Vectors {
    data: Vec<f32>,
    count: usize,
}

impl Vectors {
    fn width(&self) -> usize {
        self.data.len() / self.count.max(1)
    }

    fn check(&self, width: usize) -> Result<(), String> {
        if self.width() == width {
            Ok(())
        } else {
            Err(format!(
                "the support vectors have {} features, the input has {width}",
                self.width()
            ))
        }
    }

    fn row(&self, i: usize) -> &[f32] {
        let w = self.width();
        &self.data[i * w..(i + 1) * w]
    }
}

#[derive(Debug)]
pub struct SvmClassifier {
    kernel: Kernel,
    labels: Labels,
    /// Support vectors per class (empty: linear mode, one coefficient row per class).
    per_class: Vec<usize>,
    starts: Vec<usize>,
    vectors: Vectors,
    coefficients: Vec<f32>,
    rho: Vec<f32>,
    prob_a: Vec<f32>,
    prob_b: Vec<f32>,
    post: PostTransform,
    weights_all_positive: bool,
}

impl SvmClassifier {
    pub fn compile(attrs: &Attrs) -> Result<SvmClassifier, String> {
        let labels = attrs.class_labels("classlabels_ints", "classlabels_strings")?;
        let classes = labels.len();
        if classes > 1 << 12 {
            return Err(format!("{classes} classes are more than supported"));
        }
        let per_class: Vec<usize> = attrs
            .ints_or_empty("vectors_per_class")?
            .iter()
            .map(|&v| {
                usize::try_from(v)
                    .map_err(|_| "vectors_per_class holds a negative count".to_owned())
            })
            .collect::<Result<_, _>>()?;
        let count = per_class
            .iter()
            .try_fold(0usize, |a, &b| a.checked_add(b))
            .ok_or("too many support vectors")?;
        let mut starts = Vec::with_capacity(per_class.len());
        let mut s = 0;
        for &c in &per_class {
            starts.push(s);
            s += c;
        }
        let support = attrs.floats_or_empty("support_vectors")?;
        let coefficients = attrs.floats_or_empty("coefficients")?;
        let rho = attrs.floats_or_empty("rho")?;
        let prob_a = attrs.floats_or_empty("prob_a")?;
        let prob_b = attrs.floats_or_empty("prob_b")?;
        let pairs = classes * (classes.saturating_sub(1)) / 2;
        if coefficients.is_empty() {
            return Err("coefficients are empty".into());
        }
        if prob_a.len() != prob_b.len() {
            return Err("prob_a and prob_b differ in length".into());
        }
        if count > support.len() {
            return Err(format!(
                "vectors_per_class counts {count} support vectors, support_vectors holds {} values",
                support.len()
            ));
        }
        if count > 0 {
            if per_class.len() != classes {
                return Err(format!(
                    "vectors_per_class has {} entries for {classes} classes",
                    per_class.len()
                ));
            }
            if support.is_empty() || support.len() % count != 0 {
                return Err(format!(
                    "{} support vector values do not split into {count} vectors",
                    support.len()
                ));
            }
            if coefficients.len() != (classes - 1) * count {
                return Err(format!(
                    "has {} coefficients, expected {} (classes - 1) x vectors",
                    coefficients.len(),
                    (classes - 1) * count
                ));
            }
            if rho.len() != pairs {
                return Err(format!(
                    "has {} rho values for {pairs} class pairs",
                    rho.len()
                ));
            }
            if !prob_a.is_empty() && prob_a.len() != pairs {
                return Err(format!(
                    "has {} prob_a values for {pairs} class pairs",
                    prob_a.len()
                ));
            }
        } else {
            if coefficients.len() % classes != 0 {
                return Err("linear coefficients are not one row per class".into());
            }
            if rho.is_empty() {
                return Err("rho is empty".into());
            }
            if !prob_a.is_empty() {
                return Err("probabilities (prob_a) in linear mode are not supported".into());
            }
        }
        Ok(SvmClassifier {
            kernel: if count > 0 {
                Kernel::parse(attrs)?
            } else {
                Kernel::Linear
            },
            weights_all_positive: coefficients.iter().all(|&c| c >= 0.0),
            labels,
            per_class,
            starts,
            vectors: Vectors {
                data: support,
                count,
            },
            coefficients,
            rho,
            prob_a,
            prob_b,
            post: PostTransform::parse(attrs)?,
        })
    }

    pub fn run(&self, x: &Tensor) -> Result<Vec<Value>, String> {
        let (rows, width, data) = rows_f32(x)?;
        let classes = self.labels.len();
        let svc = self.vectors.count > 0;
        let pairs = classes * (classes - 1) / 2;
        let proba = !self.prob_a.is_empty();
        let per_row = if svc && !proba {
            if classes > 2 { pairs } else { 2 }
        } else {
            classes
        };
        if svc {
            self.vectors.check(width)?;
        } else if self.coefficients.len() != classes * width {
            return Err(format!(
                "has {} coefficients for {classes} classes, the input has {width} features",
                self.coefficients.len()
            ));
        }
        let mut scores = vec![0f32; rows * per_row];
        let mut best = Vec::with_capacity(rows);
        let mut kernels = vec![0f32; self.vectors.count];
        let mut pair_scores = vec![0f32; pairs];
        let mut votes = vec![0u32; classes];
        let mut probs = vec![0f32; classes * classes];
        for (r, row) in data.chunks_exact(width.max(1)).take(rows).enumerate() {
            let out = &mut scores[r * per_row..(r + 1) * per_row];
            if !svc {
                for (c, o) in out.iter_mut().enumerate() {
                    let w = &self.coefficients[c * width..(c + 1) * width];
                    *o = row.iter().zip(w).map(|(a, b)| a * b).sum::<f32>() + self.rho[0];
                }
                let top = argmax(out);
                let max_weight = out[top];
                best.push(if classes == 2 {
                    if (self.weights_all_positive && max_weight >= 0.5)
                        || (max_weight > 0.0 && !self.weights_all_positive)
                    {
                        1
                    } else {
                        top
                    }
                } else {
                    top
                });
                self.post.apply(out);
                continue;
            }
            for (i, k) in kernels.iter_mut().enumerate() {
                *k = self.kernel.eval(row, self.vectors.row(i));
            }
            votes.iter_mut().for_each(|v| *v = 0);
            let count = self.vectors.count;
            let mut p = 0;
            for i in 0..classes - 1 {
                for j in i + 1..classes {
                    let mut sum = 0f64;
                    let (si, sj) = (self.starts[i], self.starts[j]);
                    for m in 0..self.per_class[i] {
                        sum += f64::from(
                            self.coefficients[(j - 1) * count + si + m] * kernels[si + m],
                        );
                    }
                    for m in 0..self.per_class[j] {
                        sum += f64::from(self.coefficients[i * count + sj + m] * kernels[sj + m]);
                    }
                    sum += f64::from(self.rho[p]);
                    pair_scores[p] = sum as f32;
                    votes[if sum > 0.0 { i } else { j }] += 1;
                    p += 1;
                }
            }
            // The label is the first class with the most votes.
            let mut top = 0;
            for c in 1..classes {
                if votes[c] > votes[top] {
                    top = c;
                }
            }
            best.push(top);
            if proba {
                probs.iter_mut().for_each(|v| *v = 0.0);
                let mut p = 0;
                for i in 0..classes - 1 {
                    for j in i + 1..classes {
                        let v = sigmoid_probability(pair_scores[p], self.prob_a[p], self.prob_b[p])
                            .clamp(1e-7, 1.0 - 1e-7);
                        probs[i * classes + j] = v;
                        probs[j * classes + i] = 1.0 - v;
                        p += 1;
                    }
                }
                multiclass_probability(classes, &probs, out);
                self.post.apply(out);
            } else if classes > 2 {
                out.copy_from_slice(&pair_scores);
                self.post.apply(out);
            } else {
                let s = pair_scores[0];
                if self.post == PostTransform::None {
                    out.copy_from_slice(&[-s, s]);
                } else if self.post == PostTransform::Probit {
                    out.copy_from_slice(&[super::probit(s), 0.0]);
                } else {
                    out.copy_from_slice(&[1.0 - s, s]);
                }
            }
        }
        Ok(vec![
            Value::Tensor(self.labels.pick(&best)),
            Value::Tensor(Tensor::new(vec![rows, per_row], Data::F32(scores))),
        ])
    }
}

fn sigmoid_probability(score: f32, a: f32, b: f32) -> f32 {
    1.0 - super::logistic(score * a + b)
}

/// Pairwise coupling of class probabilities (Wu, Lin and Weng 2004, as libsvm and onnxruntime).
fn multiclass_probability(k: usize, r: &[f32], p: &mut [f32]) {
    let mut q = vec![0f32; k * k];
    let mut qp = vec![0f32; k];
    let eps = 0.005 / k as f32;
    for i in 0..k {
        p[i] = 1.0 / k as f32;
        for j in 0..i {
            q[i * k + i] += r[j * k + i] * r[j * k + i];
            q[i * k + j] = q[j * k + i];
        }
        for j in i + 1..k {
            q[i * k + i] += r[j * k + i] * r[j * k + i];
            q[i * k + j] = -r[j * k + i] * r[i * k + j];
        }
    }
    for _ in 0..100 {
        let mut pqp = 0f32;
        for i in 0..k {
            qp[i] = 0.0;
            for j in 0..k {
                qp[i] += q[i * k + j] * p[j];
            }
            pqp += p[i] * qp[i];
        }
        let max_error = (0..k).map(|i| (qp[i] - pqp).abs()).fold(0f32, f32::max);
        if max_error < eps {
            break;
        }
        for i in 0..k {
            let diff = (-qp[i] + pqp) / q[i * k + i];
            p[i] += diff;
            pqp = (pqp + diff * (diff * q[i * k + i] + 2.0 * qp[i])) / (1.0 + diff) / (1.0 + diff);
            for j in 0..k {
                qp[j] = (qp[j] + diff * q[i * k + j]) / (1.0 + diff);
                p[j] /= 1.0 + diff;
            }
        }
    }
}

#[derive(Debug)]
pub struct SvmRegressor {
    kernel: Kernel,
    vectors: Vectors,
    coefficients: Vec<f32>,
    rho: f32,
    one_class: bool,
    post: PostTransform,
}

impl SvmRegressor {
    pub fn compile(attrs: &Attrs) -> Result<SvmRegressor, String> {
        let count = usize::try_from(attrs.int_or("n_supports", 0)?)
            .map_err(|_| "n_supports is negative")?;
        let support = attrs.floats_or_empty("support_vectors")?;
        let coefficients = attrs.floats_or_empty("coefficients")?;
        let rho = attrs.floats_or_empty("rho")?;
        let rho = *rho.first().ok_or("rho is empty")?;
        if count > 0 {
            if support.is_empty() || support.len() % count != 0 || coefficients.len() != count {
                return Err(format!(
                    "{} support vector values and {} coefficients do not fit n_supports {count}",
                    support.len(),
                    coefficients.len()
                ));
            }
        } else if coefficients.is_empty() {
            return Err("coefficients are empty".into());
        }
        Ok(SvmRegressor {
            kernel: if count > 0 {
                Kernel::parse(attrs)?
            } else {
                Kernel::Linear
            },
            vectors: Vectors {
                data: support,
                count,
            },
            coefficients,
            rho,
            one_class: attrs.int_or("one_class", 0)? != 0,
            post: PostTransform::parse(attrs)?,
        })
    }

    pub fn run(&self, x: &Tensor) -> Result<Vec<Value>, String> {
        let (rows, width, data) = rows_f32(x)?;
        let count = self.vectors.count;
        if count > 0 {
            self.vectors.check(width)?;
        } else if self.coefficients.len() != width {
            return Err(format!(
                "has {} coefficients, the input has {width} features",
                self.coefficients.len()
            ));
        }
        let mut out = Vec::with_capacity(rows);
        for row in data.chunks_exact(width.max(1)).take(rows) {
            let mut s = if count > 0 {
                let mut sum = 0f64;
                for i in 0..count {
                    sum += f64::from(
                        self.coefficients[i] * self.kernel.eval(row, self.vectors.row(i)),
                    );
                }
                (sum + f64::from(self.rho)) as f32
            } else {
                row.iter()
                    .zip(&self.coefficients)
                    .map(|(a, b)| a * b)
                    .sum::<f32>()
                    + self.rho
            };
            if self.one_class {
                s = if s > 0.0 { 1.0 } else { -1.0 };
            }
            if self.post == PostTransform::Probit {
                s = super::probit(s);
            }
            out.push(s);
        }
        Ok(vec![Value::Tensor(Tensor::new(
            vec![rows, 1],
            Data::F32(out),
        ))])
    }
}
