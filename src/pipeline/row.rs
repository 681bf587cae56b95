//! The logistic regression's and the decision tree's votes on one row, from their parameters
//! laid out flat: the same arithmetic as linfa's `predict`, in the same order, so the same
//! votes, without the arrays linfa allocates for every call (its input copy, the dot product,
//! the probabilities and the labels). `/predict` asks for one row at a time.

use std::sync::OnceLock;

use linfa_logistic::FittedLogisticRegression;
use linfa_trees::{DecisionTree, TreeNode};
use ndarray::ArrayView1;

/// The two models' parameters, ready to vote on rows.
#[derive(Debug, Clone)]
pub struct RowVoters {
    coefficients: ndarray::Array1<f64>,
    intercept: f64,
    threshold: f64,
    /// linfa's class for a probability at or above the threshold, and below it (which of
    /// `true` and `false` is linfa's "positive" class depends on the training rows' order).
    above: bool,
    below: bool,
    /// The tree in depth-first order, root first.
    tree: Vec<Node>,
}

#[derive(Debug, Clone, Copy)]
enum Node {
    Leaf(bool),
    /// Go to `right` (an index into the nodes) when `row[feature] < value` is false, else to
    /// the next node.
    Split {
        feature: usize,
        value: f64,
        right: usize,
    },
}

/// The field of linfa's fitted logistic regression this needs that it does not show.
#[derive(serde::Deserialize)]
struct LogisticParts {
    threshold: f64,
}

impl RowVoters {
    /// The voters of these two models; `None` when the tree is malformed (an inner node
    /// without both children, a split on a feature the regression does not have), which is
    /// then left to linfa.
    pub fn of(
        logistic: &FittedLogisticRegression<f64, bool>,
        tree: &DecisionTree<f64, bool>,
    ) -> Option<Self> {
        let parts: LogisticParts =
            serde_json::from_value(serde_json::to_value(logistic).ok()?).ok()?;
        let mut nodes = Vec::new();
        flatten(tree.root_node(), &mut nodes)?;
        let width = logistic.params().len();
        let fits = |node: &Node| !matches!(node, Node::Split { feature, .. } if *feature >= width);
        if !nodes.iter().all(fits) {
            return None;
        }
        Some(Self {
            coefficients: logistic.params().clone(),
            intercept: logistic.intercept(),
            threshold: parts.threshold,
            above: logistic.labels().pos.class,
            below: logistic.labels().neg.class,
            tree: nodes,
        })
    }

    /// The number of features of a row.
    pub fn width(&self) -> usize {
        self.coefficients.len()
    }

    /// The logistic regression's vote, as linfa's `predict`: the probability
    /// 1 / (1 + e^-(x·w + b)) against the threshold, the dot product being ndarray's (the
    /// one linfa's matrix-vector product makes for each row).
    pub fn logistic(&self, row: &[f64]) -> bool {
        let z = ArrayView1::from(row).dot(&self.coefficients) + self.intercept;
        if 1.0 / (1.0 + (-z).exp()) >= self.threshold {
            self.above
        } else {
            self.below
        }
    }

    /// The decision tree's vote, as linfa's `predict`: left while `row[feature] < value`.
    pub fn tree(&self, row: &[f64]) -> bool {
        let mut at = 0;
        loop {
            match self.tree[at] {
                Node::Leaf(vote) => return vote,
                Node::Split {
                    feature,
                    value,
                    right,
                } => at = if row[feature] < value { at + 1 } else { right },
            }
        }
    }
}

/// Appends `node`'s subtree in depth-first order.
fn flatten(node: &TreeNode<f64, bool>, out: &mut Vec<Node>) -> Option<()> {
    if node.is_leaf() {
        out.push(Node::Leaf(node.prediction()?));
        return Some(());
    }
    let (feature, value, _) = node.split();
    let at = out.len();
    out.push(Node::Leaf(false));
    let children = node.children();
    let (Some(left), Some(right)) = (children[0].as_deref(), children[1].as_deref()) else {
        return None;
    };
    flatten(left, out)?;
    let right_at = out.len();
    flatten(right, out)?;
    out[at] = Node::Split {
        feature,
        value,
        right: right_at,
    };
    Some(())
}

/// [`RowVoters`] made on first use and kept with the fitted models; not serialised, and every
/// cache equal to every other (it only mirrors the models beside it).
#[derive(Debug, Clone, Default)]
pub struct RowCache(OnceLock<Option<RowVoters>>);

impl RowCache {
    pub fn get(
        &self,
        logistic: &FittedLogisticRegression<f64, bool>,
        tree: &DecisionTree<f64, bool>,
    ) -> Option<&RowVoters> {
        self.0
            .get_or_init(|| RowVoters::of(logistic, tree))
            .as_ref()
    }
}

impl PartialEq for RowCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use crate::artifact::{DEFAULT_MODEL_PATH, LoadedModel};
    use ndarray::{Array2, ArrayView2};

    /// On the committed model and raw rows all over (and beyond) the training range, some
    /// cells missing: the one-row path gives every row the batch path's answer, and each of
    /// the two models votes as linfa's own `predict` does.
    #[test]
    fn one_row_votes_as_linfa_does() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODEL_PATH);
        let model = LoadedModel::load(&path).unwrap();
        let pipeline = &model.artifact.pipeline;
        let models = &pipeline.models;
        let fast = super::RowVoters::of(&models.logistic, &models.tree)
            .expect("the committed tree is well formed");
        let width = pipeline.width();
        assert_eq!(fast.width(), width);
        let (lo, hi) = (&pipeline.scaler.min, &pipeline.scaler.max);
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let raw = Array2::from_shape_fn((20_000, width), |(_, j)| {
            let u = next();
            if u < 0.02 {
                f64::NAN
            } else {
                // From half a range below the minimum to half a range above the maximum.
                lo[j] + (hi[j] - lo[j]) * (next() * 2.0 - 0.5)
            }
        });
        let batch = pipeline.predict(raw.view()).unwrap();
        let scaled = pipeline.transform(raw.view()).unwrap();
        let logistic = linfa::traits::Predict::predict(&models.logistic, &scaled);
        let tree = linfa::traits::Predict::predict(&models.tree, &scaled);
        let mut counts = [[0; 2]; 3];
        for (i, row) in raw.outer_iter().enumerate() {
            let values = row.as_slice().unwrap();
            assert_eq!(
                pipeline.predict_row(values).unwrap(),
                batch[i],
                "{values:?}"
            );
            let s = scaled.row(i);
            let s = s.as_slice().unwrap();
            assert_eq!(fast.logistic(s), logistic[i], "{values:?}");
            assert_eq!(fast.tree(s), tree[i], "{values:?}");
            counts[0][usize::from(batch[i])] += 1;
            counts[1][usize::from(logistic[i])] += 1;
            counts[2][usize::from(tree[i])] += 1;
        }
        // Every answer is met often: the comparison is not of one class only.
        assert!(counts.iter().flatten().all(|&n| n > 100), "{counts:?}");
    }

    /// A row of the wrong width is an error, as for the batch path.
    #[test]
    fn a_row_of_the_wrong_width_is_an_error() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODEL_PATH);
        let model = LoadedModel::load(&path).unwrap();
        let pipeline = &model.artifact.pipeline;
        let row = vec![0.5; pipeline.width() + 1];
        let one = pipeline.predict_row(&row).unwrap_err().to_string();
        let x = ArrayView2::from_shape((1, row.len()), &row[..]).unwrap();
        assert_eq!(one, pipeline.predict(x).unwrap_err().to_string());
    }
}
