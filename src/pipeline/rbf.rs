//! The RBF-kernel SVM's decision computed from its support vectors laid out flat, feature by
//! feature: the same arithmetic as linfa's `Svm::predict`, in the same order, so the same bits,
//! without an ndarray view per support vector, and with the squared distances of all support
//! vectors computed side by side (which the compiler vectorises). The exponentials stay the
//! standard library's, one per support vector, as in linfa.

use std::sync::OnceLock;

use linfa_svm::{SeparatingHyperplane, Svm};
use serde::Deserialize;

/// An SVM with a Gaussian kernel over support vectors, ready to decide rows.
#[derive(Debug, Clone)]
pub struct RbfDecision {
    width: usize,
    /// `columns[j * n + i]` is feature `j` of support vector `i` (of `n`).
    columns: Vec<f64>,
    /// The weight of each support vector (linfa's alphas above its threshold, in order).
    alphas: Vec<f64>,
    /// linfa's Gaussian kernel is exp(-‖x−y‖²/eps).
    eps: f64,
    rho: f64,
}

/// The fields of linfa's `Svm` this needs, read from its serialised form (they are private).
#[derive(Deserialize)]
struct SvmParts {
    alpha: Vec<f64>,
    rho: f64,
    kernel_method: KernelMethod,
    sep_hyperplane: SeparatingHyperplane<f64>,
}

/// linfa-kernel's `KernelMethod`, as it is serialised.
#[derive(Deserialize)]
enum KernelMethod {
    Gaussian(f64),
    #[allow(dead_code)]
    Linear,
    #[allow(dead_code)]
    Polynomial(f64, f64),
}

impl RbfDecision {
    /// The decision of `svm`, when it has a Gaussian kernel over support vectors (`None`
    /// otherwise: such a model is left to linfa).
    pub fn of(svm: &Svm<f64, bool>) -> Option<Self> {
        let parts: SvmParts = serde_json::from_value(serde_json::to_value(svm).ok()?).ok()?;
        let (KernelMethod::Gaussian(eps), SeparatingHyperplane::WeightedCombination(vectors)) =
            (parts.kernel_method, parts.sep_hyperplane)
        else {
            return None;
        };
        // As linfa's `weighted_sum`: the support vectors zipped with the alphas above
        // 100 × epsilon, in order.
        let alphas: Vec<f64> = parts
            .alpha
            .into_iter()
            .filter(|a| a.abs() > 100.0 * f64::EPSILON)
            .take(vectors.nrows())
            .collect();
        let n = alphas.len();
        let width = vectors.ncols();
        let columns = (0..width)
            .flat_map(|j| {
                vectors
                    .column(j)
                    .iter()
                    .take(n)
                    .copied()
                    .collect::<Vec<_>>()
            })
            .collect();
        Some(Self {
            width,
            columns,
            alphas,
            eps,
            rho: parts.rho,
        })
    }

    /// The SVM's vote on one scaled row (`true` = the positive class), as linfa's `predict`;
    /// `squared` is scratch space, one value per support vector.
    pub fn predict(&self, row: &[f64], squared: &mut Vec<f64>) -> bool {
        self.weighted_sum(row, squared) - self.rho >= 0.0
    }

    /// linfa's `Svm::weighted_sum` of `row`, to the bit.
    pub fn weighted_sum(&self, row: &[f64], squared: &mut Vec<f64>) -> f64 {
        let n = self.alphas.len();
        squared.clear();
        let mut columns = self.columns.chunks_exact(n.max(1)).zip(row);
        // linfa sums (x - y)² over the features in order, from -0.0 (`Sum for f64`); adding
        // the first term to -0.0 gives that term (a square is never -0.0), so starting from it
        // gives the same bits.
        if let Some((column, &y)) = columns.next() {
            squared.extend(column.iter().map(|&x| (x - y) * (x - y)));
        }
        for (column, &y) in columns {
            for (s, &x) in squared.iter_mut().zip(column) {
                *s += (x - y) * (x - y);
            }
        }
        squared
            .iter()
            .zip(&self.alphas)
            .map(|(&distance, &a)| (-distance / self.eps).exp() * a)
            .sum()
    }

    /// The number of features of a row.
    pub fn width(&self) -> usize {
        self.width
    }
}

/// An [`RbfDecision`] made on first use and kept with the fitted model; not serialised, and
/// every cache equal to every other (it only mirrors the SVM beside it).
#[derive(Debug, Clone, Default)]
pub struct RbfCache(OnceLock<Option<RbfDecision>>);

impl RbfCache {
    pub fn get(&self, svm: &Svm<f64, bool>) -> Option<&RbfDecision> {
        self.0.get_or_init(|| RbfDecision::of(svm)).as_ref()
    }
}

impl PartialEq for RbfCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::{DEFAULT_MODEL_PATH, LoadedModel};
    use ndarray::Array2;

    /// On the committed model and rows all over (and beyond) the scaled range, the flat layout
    /// gives linfa's weighted sum to the bit, so the same votes.
    #[test]
    fn the_flat_layout_sums_exactly_as_linfa_does() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODEL_PATH);
        let model = LoadedModel::load(&path).unwrap();
        let svm = &model.artifact.pipeline.models.svm;
        let fast = RbfDecision::of(svm).expect("the committed SVM has an RBF kernel");
        let width = fast.width();
        assert_eq!(width, model.artifact.pipeline.width());
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let rows = Array2::from_shape_fn((20_000, width), |_| {
            // xorshift: values from -0.5 to 1.5.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 0.5
        });
        let mut squared = Vec::new();
        let (mut positive, mut negative) = (0, 0);
        for row in rows.outer_iter() {
            let values = row.as_slice().unwrap();
            let sum = fast.weighted_sum(values, &mut squared);
            assert_eq!(
                sum.to_bits(),
                svm.weighted_sum(&row).to_bits(),
                "{values:?}"
            );
            let vote = fast.predict(values, &mut squared);
            assert_eq!(vote, linfa::traits::Predict::predict(svm, row));
            if vote { positive += 1 } else { negative += 1 }
        }
        assert!(
            positive > 100 && negative > 100,
            "{positive} positive, {negative} negative"
        );
    }
}
