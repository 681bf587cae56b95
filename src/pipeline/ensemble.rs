//! The hard-voting ensemble: logistic regression, a decision tree and an RBF-kernel SVM
//! (linfa's models, with scikit-learn's default hyperparameters), majority of three.

use linfa::prelude::*;
use linfa_logistic::{FittedLogisticRegression, LogisticRegression};
use linfa_svm::Svm;
use linfa_trees::{DecisionTree, SplitQuality};
use ndarray::{Array1, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use super::rbf::RbfCache;
use super::row::RowCache;

/// The decision tree's weight for a positive row (see `EnsembleParams::fit`).
const TIE_BREAK_WEIGHT: f32 = 1.0 - 1.0 / 1024.0;

/// How each model voted on one row (`true` = the positive class).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Votes {
    pub logistic: bool,
    pub tree: bool,
    pub svm: bool,
}

impl Votes {
    /// The hard vote: the positive class when at least two of the three models say so.
    pub fn majority(self) -> bool {
        u8::from(self.logistic) + u8::from(self.tree) + u8::from(self.svm) >= 2
    }
}

/// Hyperparameters, mapped from scikit-learn's defaults to linfa's definitions.
#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleParams {
    /// linfa-logistic minimises log-loss + (alpha/2)·‖w‖²; scikit-learn's C = 1 is alpha = 1.
    pub logistic_alpha: f64,
    pub logistic_max_iterations: u64,
    /// SVM C for both classes.
    pub svm_c: f64,
}

impl Default for EnsembleParams {
    fn default() -> Self {
        Self {
            logistic_alpha: 1.0,
            logistic_max_iterations: 100,
            svm_c: 1.0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("logistic regression: {0}")]
    Logistic(String),
    #[error("decision tree: {0}")]
    Tree(String),
    #[error("SVM: {0}")]
    Svm(String),
    #[error("the scaled training matrix has zero variance, so the RBF kernel's gamma is undefined")]
    ZeroVariance,
}

/// The three fitted models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedEnsemble {
    pub logistic: FittedLogisticRegression<f64, bool>,
    pub tree: DecisionTree<f64, bool>,
    pub svm: Svm<f64, bool>,
    /// scikit-learn's gamma = "scale": 1 / (n_features × variance of the scaled training matrix).
    pub svm_gamma: f64,
    /// The SVM's decision laid out for speed (derived from `svm`; not stored).
    #[serde(skip)]
    pub svm_fast: RbfCache,
    /// The logistic regression and the tree laid out for one row (derived; not stored).
    #[serde(skip)]
    pub row_fast: RowCache,
}

/// scikit-learn's `gamma="scale"`: 1 / (n_features × population variance of every value).
pub fn scale_gamma(x: ArrayView2<f64>) -> Option<f64> {
    let n = x.len() as f64;
    let mean = x.sum() / n;
    let variance = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (variance > 0.0).then(|| 1.0 / (x.ncols() as f64 * variance))
}

impl EnsembleParams {
    /// Fits the three models on scaled, imputed rows.
    pub fn fit(&self, x: ArrayView2<f64>, y: &[bool]) -> Result<FittedEnsemble, FitError> {
        let data = Dataset::new(x.to_owned(), Array1::from(y.to_vec()));
        let logistic = LogisticRegression::default()
            .alpha(self.logistic_alpha)
            .max_iterations(self.logistic_max_iterations)
            .fit(&data)
            .map_err(|e| FitError::Logistic(e.to_string()))?;
        // linfa-trees breaks a tie between classes in a leaf by HashMap order, which changes
        // from run to run. A positive row weighing 1 - 2^-10 makes every tie go to the negative
        // class (as scikit-learn's argmax does) and nothing else: with at most 2^13 rows the
        // weight sums stay exact in f32. A leaf still needs one row (weight > 0.5).
        let tie_weights = Array1::from_iter(
            y.iter()
                .map(|&positive| if positive { TIE_BREAK_WEIGHT } else { 1.0 }),
        );
        let tree = DecisionTree::params()
            .split_quality(SplitQuality::Gini)
            .max_depth(None)
            .min_weight_split(2.0)
            .min_weight_leaf(0.5)
            .fit(&data.clone().with_weights(tie_weights))
            .map_err(|e| FitError::Tree(e.to_string()))?;
        let svm_gamma = scale_gamma(x).ok_or(FitError::ZeroVariance)?;
        // linfa's Gaussian kernel is exp(-‖x−y‖²/eps), so eps = 1/gamma.
        let svm = Svm::<f64, bool>::params()
            .pos_neg_weights(self.svm_c, self.svm_c)
            .gaussian_kernel(1.0 / svm_gamma)
            .fit(&data)
            .map_err(|e| FitError::Svm(e.to_string()))?;
        Ok(FittedEnsemble {
            logistic,
            tree,
            svm,
            svm_gamma,
            svm_fast: RbfCache::default(),
            row_fast: RowCache::default(),
        })
    }
}

impl FittedEnsemble {
    /// Each model's vote on each row. `x` must have the width the models were fitted on.
    pub fn votes(&self, x: ArrayView2<f64>) -> Vec<Votes> {
        let logistic = self.logistic.predict(&x);
        let tree = self.tree.predict(&x);
        let mut svm = self.svm_voter();
        x.outer_iter()
            .zip(logistic.iter().zip(tree.iter()))
            .map(|(row, (&logistic, &tree))| Votes {
                logistic,
                tree,
                svm: svm(row),
            })
            .collect()
    }

    /// The hard vote for each row, with the same answers as `votes(x)` then `majority()`, but
    /// the SVM (the costly model: one exp() per support vector) is asked only where the other
    /// two disagree, since its vote cannot change a two-to-nothing majority.
    pub fn decide(&self, x: ArrayView2<f64>) -> Vec<bool> {
        let logistic = self.logistic.predict(&x);
        let tree = self.tree.predict(&x);
        let mut svm = self.svm_voter();
        x.outer_iter()
            .zip(logistic.iter().zip(tree.iter()))
            .map(
                |(row, (&logistic, &tree))| {
                    if logistic == tree { logistic } else { svm(row) }
                },
            )
            .collect()
    }

    /// `decide` of one scaled row, without the arrays linfa allocates per call (the same
    /// answer: `src/pipeline/row.rs`).
    pub fn decide_row(&self, row: &[f64]) -> bool {
        match self.row_fast.get(&self.logistic, &self.tree) {
            Some(fast) if fast.width() == row.len() => {
                let logistic = fast.logistic(row);
                if logistic == fast.tree(row) {
                    logistic
                } else {
                    self.svm_voter()(ArrayView1::from(row))
                }
            }
            _ => {
                let x = ArrayView2::from_shape((1, row.len()), row).expect("one row");
                self.decide(x)[0]
            }
        }
    }

    /// `votes` of one scaled row, without the arrays linfa allocates per call.
    pub fn votes_row(&self, row: &[f64]) -> Votes {
        match self.row_fast.get(&self.logistic, &self.tree) {
            Some(fast) if fast.width() == row.len() => Votes {
                logistic: fast.logistic(row),
                tree: fast.tree(row),
                svm: self.svm_voter()(ArrayView1::from(row)),
            },
            _ => {
                let x = ArrayView2::from_shape((1, row.len()), row).expect("one row");
                self.votes(x)[0]
            }
        }
    }

    /// The SVM's vote on a row: through its flat layout when it has one and the row fits it
    /// (the same answer as linfa's, faster), else linfa's own.
    fn svm_voter(&self) -> impl FnMut(ArrayView1<f64>) -> bool + '_ {
        let fast = self.svm_fast.get(&self.svm);
        let mut squared = Vec::new();
        move |row| match (fast, row.as_slice()) {
            (Some(fast), Some(values)) if values.len() == fast.width() => {
                fast.predict(values, &mut squared)
            }
            _ => self.svm.predict(row),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn majority_needs_two_of_three() {
        let v = |logistic, tree, svm| {
            Votes {
                logistic,
                tree,
                svm,
            }
            .majority()
        };
        assert!(!v(false, false, false));
        assert!(!v(true, false, false));
        assert!(!v(false, true, false));
        assert!(!v(false, false, true));
        assert!(v(true, true, false));
        assert!(v(true, false, true));
        assert!(v(false, true, true));
        assert!(v(true, true, true));
    }

    #[test]
    fn gamma_matches_scikit_learns_scale_definition() {
        // values 0, 1, 0, 1: mean 0.5, population variance 0.25, two features -> 1 / 0.5 = 2.
        let x = array![[0.0, 1.0], [0.0, 1.0]];
        assert_eq!(scale_gamma(x.view()), Some(2.0));
        assert_eq!(scale_gamma(array![[3.0, 3.0]].view()), None);
    }
}
