//! Min-max scaling to [0, 1], learned on the training rows (scikit-learn's `MinMaxScaler`).

use ndarray::{ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// Per-column minimum and maximum of the training rows. A constant column (max == min) is only
/// shifted, as scikit-learn does, so that it never divides by zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinMaxScaler {
    pub min: Vec<f64>,
    pub max: Vec<f64>,
}

impl MinMaxScaler {
    /// Learns each column's range. `x` must hold no `NaN` (impute first).
    pub fn fit(x: ArrayView2<f64>) -> Self {
        let (min, max) = x
            .axis_iter(Axis(1))
            .map(|column| {
                column
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                        (lo.min(v), hi.max(v))
                    })
            })
            .unzip();
        Self { min, max }
    }

    /// Scales `row` in place; values outside the training range land outside [0, 1].
    pub fn apply(&self, row: &mut [f64]) {
        for ((v, lo), hi) in row.iter_mut().zip(&self.min).zip(&self.max) {
            let range = hi - lo;
            *v = if range > 0.0 {
                (*v - lo) / range
            } else {
                *v - lo
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn training_rows_land_in_the_unit_interval() {
        let x = array![[1.0, 5.0], [3.0, 5.0], [2.0, 5.0]];
        let scaler = MinMaxScaler::fit(x.view());
        assert_eq!(scaler.min, vec![1.0, 5.0]);
        assert_eq!(scaler.max, vec![3.0, 5.0]);
        let mut row = [2.0, 5.0];
        scaler.apply(&mut row);
        assert_eq!(
            row,
            [0.5, 0.0],
            "a constant column is shifted, not divided by zero"
        );
        let mut outside = [5.0, 6.0];
        scaler.apply(&mut outside);
        assert_eq!(outside, [2.0, 1.0]);
    }
}
