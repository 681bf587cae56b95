//! Held-out metrics for a binary classifier: confusion matrix, accuracy, and precision, recall
//! and F1 for the positive class.

use serde::{Deserialize, Serialize};

use crate::pipeline::Votes;

/// Counts of a binary classifier's answers against the truth (positive = the class of interest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    pub true_positive: u64,
    pub false_positive: u64,
    pub true_negative: u64,
    pub false_negative: u64,
}

impl ConfusionMatrix {
    pub fn from_predictions(predicted: &[bool], truth: &[bool]) -> Self {
        let mut m = Self::default();
        for (&p, &t) in predicted.iter().zip(truth) {
            match (p, t) {
                (true, true) => m.true_positive += 1,
                (true, false) => m.false_positive += 1,
                (false, false) => m.true_negative += 1,
                (false, true) => m.false_negative += 1,
            }
        }
        m
    }

    pub fn total(&self) -> u64 {
        self.true_positive + self.false_positive + self.true_negative + self.false_negative
    }

    pub fn accuracy(&self) -> f64 {
        ratio(self.true_positive + self.true_negative, self.total())
    }

    /// Of the rows called positive, the share that are. 0 when nothing was called positive.
    pub fn precision(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + self.false_positive)
    }

    /// Of the positive rows, the share found.
    pub fn recall(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + self.false_negative)
    }

    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// What training reports about the held-out rows, and what the artifact keeps of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOutMetrics {
    pub rows: u64,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub confusion: ConfusionMatrix,
    /// Accuracy of each model alone.
    pub logistic_accuracy: f64,
    pub tree_accuracy: f64,
    pub svm_accuracy: f64,
}

impl HeldOutMetrics {
    pub fn from_votes(votes: &[Votes], truth: &[bool]) -> Self {
        let of = |pick: fn(&Votes) -> bool| {
            let predicted: Vec<bool> = votes.iter().map(pick).collect();
            ConfusionMatrix::from_predictions(&predicted, truth)
        };
        let confusion = of(|v| v.majority());
        Self {
            rows: confusion.total(),
            accuracy: confusion.accuracy(),
            precision: confusion.precision(),
            recall: confusion.recall(),
            f1: confusion.f1(),
            confusion,
            logistic_accuracy: of(|v| v.logistic).accuracy(),
            tree_accuracy: of(|v| v.tree).accuracy(),
            svm_accuracy: of(|v| v.svm).accuracy(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_follow_their_definitions() {
        let predicted = [true, true, true, false, false, false, false, true];
        let truth = [true, true, false, true, false, false, false, true];
        let m = ConfusionMatrix::from_predictions(&predicted, &truth);
        assert_eq!(
            m,
            ConfusionMatrix {
                true_positive: 3,
                false_positive: 1,
                true_negative: 3,
                false_negative: 1
            }
        );
        assert_eq!(m.accuracy(), 0.75);
        assert_eq!(m.precision(), 0.75);
        assert_eq!(m.recall(), 0.75);
        assert_eq!(m.f1(), 0.75);
        let none_called = ConfusionMatrix::from_predictions(&[false, false], &[true, false]);
        assert_eq!((none_called.precision(), none_called.f1()), (0.0, 0.0));
    }

    #[test]
    fn each_model_is_scored_alone() {
        let votes = [
            Votes {
                logistic: true,
                tree: false,
                svm: true,
            },
            Votes {
                logistic: false,
                tree: false,
                svm: true,
            },
        ];
        let m = HeldOutMetrics::from_votes(&votes, &[true, false]);
        assert_eq!(m.accuracy, 1.0);
        assert_eq!(m.logistic_accuracy, 1.0);
        assert_eq!(m.tree_accuracy, 0.5);
        assert_eq!(m.svm_accuracy, 0.5);
    }
}
