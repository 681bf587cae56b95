//! The tutorial's model pipeline: mean imputation, min-max scaling, then a hard-voting
//! ensemble. `Pipeline` holds hyperparameters; only a `FittedPipeline` can predict.

mod ensemble;
mod imputer;
mod rbf;
mod row;
mod scaler;

pub use ensemble::{EnsembleParams, FitError, FittedEnsemble, Votes, scale_gamma};
pub use imputer::MeanImputer;
pub use scaler::MinMaxScaler;

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

/// The unfitted pipeline.
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    pub ensemble: EnsembleParams,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("feature {index} has no value in any training row, so it has no mean to impute")]
    EmptyColumn { index: usize },
    #[error(transparent)]
    Fit(#[from] FitError),
    #[error("expected {expected} features, got {got}")]
    FeatureCount { expected: usize, got: usize },
}

/// Imputer, scaler and the three models, all learned from the same training rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedPipeline {
    pub imputer: MeanImputer,
    pub scaler: MinMaxScaler,
    pub models: FittedEnsemble,
}

impl Pipeline {
    /// Learns the imputer and the scaler from `x`, then fits the models on the transformed rows.
    pub fn fit(&self, x: ArrayView2<f64>, y: &[bool]) -> Result<FittedPipeline, PipelineError> {
        let imputer = MeanImputer::fit(x).map_err(|index| PipelineError::EmptyColumn { index })?;
        let mut imputed = x.to_owned();
        for mut row in imputed.rows_mut() {
            imputer.apply(row.as_slice_mut().expect("owned rows are contiguous"));
        }
        let scaler = MinMaxScaler::fit(imputed.view());
        let mut scaled = imputed;
        for mut row in scaled.rows_mut() {
            scaler.apply(row.as_slice_mut().expect("owned rows are contiguous"));
        }
        let models = self.ensemble.fit(scaled.view(), y)?;
        Ok(FittedPipeline {
            imputer,
            scaler,
            models,
        })
    }
}

impl FittedPipeline {
    /// The number of features every input row must have.
    pub fn width(&self) -> usize {
        self.imputer.means.len()
    }

    /// Imputes and scales a copy of `x`.
    pub fn transform(&self, x: ArrayView2<f64>) -> Result<Array2<f64>, PipelineError> {
        if x.ncols() != self.width() {
            return Err(PipelineError::FeatureCount {
                expected: self.width(),
                got: x.ncols(),
            });
        }
        let mut out = x.as_standard_layout().into_owned();
        for mut row in out.rows_mut() {
            let row = row
                .as_slice_mut()
                .expect("standard layout rows are contiguous");
            self.imputer.apply(row);
            self.scaler.apply(row);
        }
        Ok(out)
    }

    /// Every model's vote on every row of `x` (raw features; `NaN` means missing).
    pub fn votes(&self, x: ArrayView2<f64>) -> Result<Vec<Votes>, PipelineError> {
        let scaled = self.transform(x)?;
        Ok(self.models.votes(scaled.view()))
    }

    /// The ensemble's decision for every row of `x` (`true` = positive class).
    pub fn predict(&self, x: ArrayView2<f64>) -> Result<Vec<bool>, PipelineError> {
        let scaled = self.transform(x)?;
        Ok(self.models.decide(scaled.view()))
    }

    /// `predict` of one row, transformed on the stack when it is narrow enough: no allocation
    /// on `/predict`'s path.
    pub fn predict_row(&self, row: &[f64]) -> Result<bool, PipelineError> {
        self.with_scaled_row(row, |scaled| self.models.decide_row(scaled))
    }

    /// `votes` of one row, as [`Self::predict_row`] is `predict`'s.
    pub fn votes_row(&self, row: &[f64]) -> Result<Votes, PipelineError> {
        self.with_scaled_row(row, |scaled| self.models.votes_row(scaled))
    }

    /// `f` of the row imputed and scaled, on the stack when it is narrow enough.
    fn with_scaled_row<R>(
        &self,
        row: &[f64],
        f: impl FnOnce(&[f64]) -> R,
    ) -> Result<R, PipelineError> {
        const ON_STACK: usize = 64;
        if row.len() != self.width() {
            return Err(PipelineError::FeatureCount {
                expected: self.width(),
                got: row.len(),
            });
        }
        let mut stack = [0.0; ON_STACK];
        let mut heap = Vec::new();
        let scaled = if row.len() <= ON_STACK {
            &mut stack[..row.len()]
        } else {
            heap.resize(row.len(), 0.0);
            &mut heap[..]
        };
        scaled.copy_from_slice(row);
        self.imputer.apply(scaled);
        self.scaler.apply(scaled);
        Ok(f(scaled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn toy() -> (Array2<f64>, Vec<bool>) {
        // Positive when the first feature is large; the second is noise with a missing cell.
        let x = array![
            [0.0, 1.0],
            [0.1, f64::NAN],
            [0.2, 3.0],
            [0.3, 1.0],
            [0.9, 2.0],
            [1.0, 2.0],
            [1.1, 1.0],
            [1.2, 3.0]
        ];
        (x, vec![false, false, false, false, true, true, true, true])
    }

    #[test]
    fn fits_a_separable_toy_problem_and_predicts_it() {
        let (x, y) = toy();
        let fitted = Pipeline::default().fit(x.view(), &y).unwrap();
        assert_eq!(fitted.imputer.means[1], 13.0 / 7.0);
        assert_eq!(fitted.predict(x.view()).unwrap(), y);
        assert_eq!(
            fitted
                .predict(array![[f64::NAN, 2.0]].view())
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn predict_asks_the_svm_only_to_break_ties_and_agrees_with_the_full_vote() {
        let (x, y) = toy();
        let fitted = Pipeline::default().fit(x.view(), &y).unwrap();
        // Rows around the boundary, where the models may disagree.
        let probe = Array2::from_shape_fn((200, 2), |(i, j)| {
            if j == 0 {
                i as f64 / 100.0 - 0.5
            } else {
                (i % 7) as f64 / 2.0
            }
        });
        let full: Vec<bool> = fitted
            .votes(probe.view())
            .unwrap()
            .into_iter()
            .map(Votes::majority)
            .collect();
        assert_eq!(fitted.predict(probe.view()).unwrap(), full);
    }

    #[test]
    fn a_row_of_the_wrong_width_is_an_error_not_a_panic() {
        let (x, y) = toy();
        let fitted = Pipeline::default().fit(x.view(), &y).unwrap();
        let err = fitted.predict(array![[1.0, 2.0, 3.0]].view()).unwrap_err();
        assert!(matches!(
            err,
            PipelineError::FeatureCount {
                expected: 2,
                got: 3
            }
        ));
    }
}
