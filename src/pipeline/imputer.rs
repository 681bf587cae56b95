//! Mean imputation: a missing cell (`NaN`) becomes the mean of its column on the training rows.

use ndarray::{ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// Column means learned from training rows; applied to any row of the same width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeanImputer {
    pub means: Vec<f64>,
}

impl MeanImputer {
    /// Learns each column's mean over its present (non-`NaN`) cells. A column with no value at
    /// all has no mean: its index is returned as the error.
    pub fn fit(x: ArrayView2<f64>) -> Result<Self, usize> {
        let means = x
            .axis_iter(Axis(1))
            .enumerate()
            .map(|(j, column)| {
                let (sum, count) = column
                    .iter()
                    .filter(|v| !v.is_nan())
                    .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
                if count == 0 {
                    Err(j)
                } else {
                    Ok(sum / count as f64)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { means })
    }

    /// Replaces every `NaN` in `row` with its column's mean.
    pub fn apply(&self, row: &mut [f64]) {
        for (v, mean) in row.iter_mut().zip(&self.means) {
            if v.is_nan() {
                *v = *mean;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn means_ignore_missing_cells_and_fill_them() {
        let x = array![[1.0, f64::NAN], [3.0, 10.0], [f64::NAN, 20.0]];
        let imputer = MeanImputer::fit(x.view()).unwrap();
        assert_eq!(imputer.means, vec![2.0, 15.0]);
        let mut row = [f64::NAN, 7.0];
        imputer.apply(&mut row);
        assert_eq!(row, [2.0, 7.0]);
    }

    #[test]
    fn a_column_without_any_value_is_refused() {
        let x = array![[1.0, f64::NAN], [2.0, f64::NAN]];
        assert_eq!(MeanImputer::fit(x.view()), Err(1));
    }
}
