//! TreeEnsembleClassifier and TreeEnsembleRegressor: the trees are compiled at load into one
//! flat array of nodes (checked: every child exists, each tree has one root and no cycle), and
//! scores are aggregated as onnxruntime does, including its binary-classification rules.

use std::collections::HashMap;

use super::{PostTransform, Value, logistic, probit};
use crate::onnx::attr::{Attrs, Labels};
use crate::onnx::tensor::{Data, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    mode: Mode,
    missing_tracks_true: bool,
    feature: u32,
    /// The threshold as f32 (exact unless `Forest::thresholds64` is set).
    threshold: f32,
    /// For a branch: the node index taken when the test holds; for a leaf: first weight.
    on_true: u32,
    /// For a branch: the node index taken otherwise; for a leaf: one past its last weight.
    on_false: u32,
}

/// Trees in flat arrays.
#[derive(Debug)]
struct Forest {
    nodes: Vec<Node>,
    /// The thresholds as f64, kept only when some of them are not exact in f32 (doubles given
    /// as `nodes_values_as_tensor`).
    thresholds64: Option<Vec<f64>>,
    roots: Vec<u32>,
    /// Leaf weights: (class or target index, weight).
    weights: Vec<(u32, f32)>,
    /// Largest feature index a branch reads.
    max_feature: Option<u32>,
}

/// The same length for parallel attribute lists.
fn same_len(lists: &[(&str, usize)]) -> Result<usize, String> {
    let n = lists[0].1;
    for (name, len) in lists {
        if *len != n {
            return Err(format!(
                "attribute {name} has {len} entries, {} has {n}",
                lists[0].0
            ));
        }
    }
    Ok(n)
}

impl Forest {
    /// Reads the nodes_* attributes and the leaf weights `<prefix>_treeids/nodeids/ids/weights`.
    fn compile(attrs: &Attrs, prefix: &str, outputs: usize) -> Result<Forest, String> {
        let tree_ids = attrs.ints_or_empty("nodes_treeids")?;
        let node_ids = attrs.ints_or_empty("nodes_nodeids")?;
        let features = attrs.ints_or_empty("nodes_featureids")?;
        let modes = attrs.strings("nodes_modes")?.unwrap_or_default();
        let values = attrs.floats_f64("nodes_values")?.unwrap_or_default();
        let trues = attrs.ints_or_empty("nodes_truenodeids")?;
        let falses = attrs.ints_or_empty("nodes_falsenodeids")?;
        let missing = attrs.ints_or_empty("nodes_missing_value_tracks_true")?;
        let n = same_len(&[
            ("nodes_treeids", tree_ids.len()),
            ("nodes_nodeids", node_ids.len()),
            ("nodes_featureids", features.len()),
            ("nodes_modes", modes.len()),
            ("nodes_values", values.len()),
            ("nodes_truenodeids", trues.len()),
            ("nodes_falsenodeids", falses.len()),
        ])?;
        if n == 0 {
            return Err("has no nodes".into());
        }
        if u32::try_from(n).is_err() {
            return Err("has too many nodes".into());
        }
        if !missing.is_empty() && missing.len() != n {
            return Err(format!(
                "nodes_missing_value_tracks_true has {} entries for {n} nodes",
                missing.len()
            ));
        }
        let mut index: HashMap<(i64, i64), u32> = HashMap::with_capacity(n);
        let mut tree_order: Vec<i64> = Vec::new();
        let mut tree_seen: HashMap<i64, usize> = HashMap::new();
        for i in 0..n {
            if index.insert((tree_ids[i], node_ids[i]), i as u32).is_some() {
                return Err(format!(
                    "node {} of tree {} is defined twice",
                    node_ids[i], tree_ids[i]
                ));
            }
            tree_seen.entry(tree_ids[i]).or_insert_with(|| {
                tree_order.push(tree_ids[i]);
                tree_order.len() - 1
            });
        }
        let mut nodes = Vec::with_capacity(n);
        let mut is_child = vec![false; n];
        let mut max_feature = None;
        for i in 0..n {
            let mode = match modes[i].as_str() {
                "BRANCH_LEQ" => Mode::Leq,
                "BRANCH_LT" => Mode::Lt,
                "BRANCH_GTE" => Mode::Gte,
                "BRANCH_GT" => Mode::Gt,
                "BRANCH_EQ" => Mode::Eq,
                "BRANCH_NEQ" => Mode::Neq,
                "LEAF" => Mode::Leaf,
                other => return Err(format!("node mode {other:?} is not supported")),
            };
            let mut node = Node {
                mode,
                missing_tracks_true: missing.get(i).is_some_and(|&m| m != 0),
                feature: 0,
                threshold: values[i] as f32,
                on_true: 0,
                on_false: 0,
            };
            if mode != Mode::Leaf {
                let child = |id: i64| {
                    index.get(&(tree_ids[i], id)).copied().ok_or_else(|| {
                        format!(
                            "node {} of tree {} points to node {id}, which does not exist",
                            node_ids[i], tree_ids[i]
                        )
                    })
                };
                node.on_true = child(trues[i])?;
                node.on_false = child(falses[i])?;
                is_child[node.on_true as usize] = true;
                is_child[node.on_false as usize] = true;
                node.feature = u32::try_from(features[i]).map_err(|_| {
                    format!("feature index {} is negative or too large", features[i])
                })?;
                max_feature = max_feature.max(Some(node.feature));
            }
            nodes.push(node);
        }
        // One root per tree, in the order the trees first appear.
        let mut roots = vec![None; tree_order.len()];
        for i in 0..n {
            if !is_child[i] {
                let t = tree_seen[&tree_ids[i]];
                if roots[t].replace(i as u32).is_some() {
                    return Err(format!(
                        "tree {} has more than one root (a node no other node points to)",
                        tree_ids[i]
                    ));
                }
            }
        }
        let roots: Vec<u32> = roots
            .into_iter()
            .enumerate()
            .map(|(t, r)| r.ok_or_else(|| format!("tree {} has no root (a cycle)", tree_order[t])))
            .collect::<Result<_, _>>()?;
        // The root is the tree's first node (onnxruntime starts there), no node is reached twice
        // (so every walk ends at a leaf) and every node is reached.
        let mut first_of_tree = vec![None; tree_order.len()];
        for (i, t) in tree_ids.iter().enumerate() {
            first_of_tree[tree_seen[t]].get_or_insert(i as u32);
        }
        for (t, (&root, first)) in roots.iter().zip(&first_of_tree).enumerate() {
            if Some(root) != *first {
                return Err(format!(
                    "tree {}: its root (node {}) is not its first node",
                    tree_order[t], node_ids[root as usize]
                ));
            }
        }
        let mut visited = vec![false; n];
        for &root in &roots {
            let mut stack = vec![root];
            while let Some(i) = stack.pop() {
                if std::mem::replace(&mut visited[i as usize], true) {
                    return Err(format!(
                        "tree {} is not a tree: node {} is reached twice",
                        tree_ids[i as usize], node_ids[i as usize]
                    ));
                }
                let node = nodes[i as usize];
                if node.mode != Mode::Leaf {
                    stack.push(node.on_true);
                    stack.push(node.on_false);
                }
            }
        }
        if let Some(i) = visited.iter().position(|v| !v) {
            return Err(format!(
                "node {} of tree {} is not reachable from the tree's root",
                node_ids[i], tree_ids[i]
            ));
        }
        // Leaf weights, grouped per leaf in their order.
        let w_trees = attrs.ints_or_empty(&format!("{prefix}_treeids"))?;
        let w_nodes = attrs.ints_or_empty(&format!("{prefix}_nodeids"))?;
        let w_ids = attrs.ints_or_empty(&format!("{prefix}_ids"))?;
        let w_values = attrs
            .floats_f64(&format!("{prefix}_weights"))?
            .unwrap_or_default();
        let m = same_len(&[
            (&format!("{prefix}_treeids"), w_trees.len()),
            (&format!("{prefix}_nodeids"), w_nodes.len()),
            (&format!("{prefix}_ids"), w_ids.len()),
            (&format!("{prefix}_weights"), w_values.len()),
        ])?;
        let mut per_leaf: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
        for j in 0..m {
            let i = *index.get(&(w_trees[j], w_nodes[j])).ok_or_else(|| {
                format!(
                    "a weight names node {} of tree {}, which does not exist",
                    w_nodes[j], w_trees[j]
                )
            })?;
            if nodes[i as usize].mode != Mode::Leaf {
                return Err(format!(
                    "a weight names node {} of tree {}, which is not a leaf",
                    w_nodes[j], w_trees[j]
                ));
            }
            let id = usize::try_from(w_ids[j])
                .ok()
                .filter(|&id| id < outputs)
                .ok_or_else(|| format!("{prefix}_ids holds {}, outside 0..{outputs}", w_ids[j]))?;
            per_leaf[i as usize].push((id as u32, w_values[j] as f32));
        }
        let mut weights = Vec::with_capacity(m);
        for (i, leaf) in per_leaf.into_iter().enumerate() {
            if nodes[i].mode == Mode::Leaf {
                nodes[i].on_true = weights.len() as u32;
                weights.extend(leaf);
                nodes[i].on_false = weights.len() as u32;
            }
        }
        let exact = values
            .iter()
            .all(|&v| v.is_nan() || f64::from(v as f32) == v);
        Ok(Forest {
            nodes,
            thresholds64: if exact { None } else { Some(values) },
            roots,
            weights,
            max_feature,
        })
    }

    /// The leaf a row of floats reaches from `root`, comparing in f32 (the same answers as in
    /// f64, since the thresholds are exact in f32). Only when `thresholds64` is `None`.
    #[inline]
    fn leaf_f32(&self, root: u32, row: &[f32]) -> &Node {
        let mut node = &self.nodes[root as usize];
        loop {
            if node.mode == Mode::Leaf {
                return node;
            }
            let v = row[node.feature as usize];
            let goes_true =
                test(node.mode, v, node.threshold) || (node.missing_tracks_true && v.is_nan());
            node = &self.nodes[if goes_true {
                node.on_true
            } else {
                node.on_false
            } as usize];
        }
    }

    /// The leaf a row reaches from `root`, comparing in f64.
    #[inline]
    fn leaf_f64<T: Copy + Into<f64>>(&self, root: u32, row: &[T]) -> &Node {
        let mut i = root as usize;
        loop {
            let node = &self.nodes[i];
            if node.mode == Mode::Leaf {
                return node;
            }
            let v: f64 = row[node.feature as usize].into();
            let t = match &self.thresholds64 {
                Some(t) => t[i],
                None => f64::from(node.threshold),
            };
            let goes_true = test(node.mode, v, t) || (node.missing_tracks_true && v.is_nan());
            i = if goes_true {
                node.on_true
            } else {
                node.on_false
            } as usize;
        }
    }

    /// Visits the weights of every leaf the row reaches, tree by tree.
    fn each_weight(&self, row: RowRef, mut f: impl FnMut(usize, f32)) {
        for &root in &self.roots {
            let leaf = match row {
                RowRef::F32(r) if self.thresholds64.is_none() => self.leaf_f32(root, r),
                RowRef::F32(r) => self.leaf_f64(root, r),
                RowRef::F64(r) => self.leaf_f64(root, r),
            };
            for &(id, w) in &self.weights[leaf.on_true as usize..leaf.on_false as usize] {
                f(id as usize, w);
            }
        }
    }

    fn check_width(&self, width: usize) -> Result<(), String> {
        match self.max_feature {
            Some(f) if f as usize >= width => Err(format!(
                "a tree reads feature {f}, the input has {width} features"
            )),
            _ => Ok(()),
        }
    }
}

/// Runs `f` on every row of a float or double input, without converting it.
fn for_rows(
    x: &Tensor,
    forest: &Forest,
    mut f: impl FnMut(&Forest, RowRef),
) -> Result<usize, String> {
    let (rows, width) = match x.shape.as_slice() {
        [w] => (1, *w),
        [n, w] => (*n, *w),
        s => return Err(format!("expects a 2-D input, got shape {s:?}")),
    };
    forest.check_width(width)?;
    let w = width.max(1);
    match &x.data {
        Data::F32(v) => v
            .chunks_exact(w)
            .take(rows)
            .for_each(|r| f(forest, RowRef::F32(r))),
        Data::F64(v) => v
            .chunks_exact(w)
            .take(rows)
            .for_each(|r| f(forest, RowRef::F64(r))),
        other => {
            return Err(format!(
                "expects float or double, got {}",
                other.elem_type().onnx_name()
            ));
        }
    }
    Ok(rows)
}

#[derive(Clone, Copy)]
enum RowRef<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
}

/// A branch's test.
#[inline]
fn test<T: PartialOrd>(mode: Mode, v: T, t: T) -> bool {
    match mode {
        Mode::Leq => v <= t,
        Mode::Lt => v < t,
        Mode::Gte => v >= t,
        Mode::Gt => v > t,
        Mode::Eq => v == t,
        Mode::Neq => v != t,
        Mode::Leaf => false,
    }
}

#[derive(Debug)]
pub struct TreeClassifier {
    forest: Forest,
    labels: Labels,
    base_values: Vec<f32>,
    post: PostTransform,
    /// Two classes and every weight for the same class (onnxruntime's "binary case").
    binary_case: bool,
    weights_all_positive: bool,
}

impl TreeClassifier {
    pub fn compile(attrs: &Attrs) -> Result<TreeClassifier, String> {
        let labels = attrs.class_labels("classlabels_int64s", "classlabels_strings")?;
        let classes = labels.len();
        if classes < 2 {
            return Err("needs at least two class labels".into());
        }
        let forest = Forest::compile(attrs, "class", classes)?;
        let base_values: Vec<f32> = attrs
            .floats_f64("base_values")?
            .unwrap_or_default()
            .into_iter()
            .map(|v| v as f32)
            .collect();
        if !base_values.is_empty()
            && base_values.len() != classes
            && !(classes == 2 && base_values.len() == 1)
        {
            return Err(format!(
                "has {} base_values for {classes} classes",
                base_values.len()
            ));
        }
        let mut used: Vec<u32> = forest.weights.iter().map(|&(c, _)| c).collect();
        used.sort_unstable();
        used.dedup();
        Ok(TreeClassifier {
            binary_case: classes == 2 && used.len() == 1,
            weights_all_positive: forest.weights.iter().all(|&(_, w)| w >= 0.0),
            forest,
            labels,
            base_values,
            post: PostTransform::parse(attrs)?,
        })
    }

    pub fn run(&self, x: &Tensor) -> Result<Vec<Value>, String> {
        let classes = self.labels.len();
        let mut scores: Vec<f32> = Vec::new();
        let mut best: Vec<usize> = Vec::new();
        let mut score = vec![0f32; classes];
        let mut has = vec![false; classes];
        let rows = for_rows(x, &self.forest, |forest, row| {
            score.iter_mut().for_each(|s| *s = 0.0);
            has.iter_mut().for_each(|h| *h = false);
            forest.each_weight(row, |c, w| {
                score[c] += w;
                has[c] = true;
            });
            let start = scores.len();
            scores.resize(start + classes, 0.0);
            best.push(self.finalize(&mut score, &mut has, &mut scores[start..]));
        })?;
        Ok(vec![
            Value::Tensor(self.labels.pick(&best)),
            Value::Tensor(Tensor::new(vec![rows, classes], Data::F32(scores))),
        ])
    }

    /// Turns one row's summed weights into the label index and the written scores, following
    /// onnxruntime's TreeAggregatorClassifier.
    fn finalize(&self, score: &mut [f32], has: &mut [bool], out: &mut [f32]) -> usize {
        let base = &self.base_values;
        if score.len() > 2 {
            for (k, &b) in base.iter().enumerate() {
                if has[k] {
                    score[k] += b;
                } else {
                    score[k] = b;
                    has[k] = true;
                }
            }
            let mut best: Option<usize> = None;
            for k in 0..score.len() {
                if has[k] && best.is_none_or(|b| score[k] > score[b]) {
                    best = Some(k);
                }
            }
            out.copy_from_slice(score);
            self.post.apply(out);
            return best.unwrap_or(0);
        }
        // Two classes.
        let mut write = -1;
        let mut size = 2;
        match base.len() {
            2 => {
                if has[1] {
                    score[1] = base[1] + score[0];
                    score[0] = -score[1];
                } else {
                    score[1] += base[1];
                    score[0] += base[0];
                }
            }
            1 => {
                score[0] += base[0];
                if !has[1] {
                    size = 1;
                }
            }
            _ => {
                write = 3;
                if !has[1] {
                    size = 1;
                }
            }
        }
        let pos = if size == 2 && has[1] {
            score[1]
        } else if has[0] {
            score[0]
        } else {
            0.0
        };
        let label = if self.binary_case {
            if self.weights_all_positive {
                write = if pos > 0.5 { 0 } else { 1 };
                usize::from(pos > 0.5)
            } else {
                write = if pos > 0.0 { 2 } else { 3 };
                usize::from(pos > 0.0)
            }
        } else {
            usize::from(pos > 0.0)
        };
        if size == 2 {
            out.copy_from_slice(&score[..2]);
            self.post.apply(out);
        } else {
            let s = score[0];
            let pair = if self.post == PostTransform::Probit {
                [probit(s), 0.0]
            } else {
                match write {
                    0 | 1 => [1.0 - s, s],
                    2 | 3 if self.post == PostTransform::Logistic => [logistic(-s), logistic(s)],
                    2 | 3 => [-s, s],
                    _ => [s, 0.0],
                }
            };
            out.copy_from_slice(&pair);
        }
        label
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

#[derive(Debug)]
pub struct TreeRegressor {
    forest: Forest,
    targets: usize,
    aggregate: Aggregate,
    base_values: Vec<f32>,
    post: PostTransform,
}

impl TreeRegressor {
    pub fn compile(attrs: &Attrs) -> Result<TreeRegressor, String> {
        let targets = usize::try_from(attrs.int_or("n_targets", 1)?)
            .ok()
            .filter(|&t| (1..=1 << 16).contains(&t))
            .ok_or("n_targets must be between 1 and 65536")?;
        let forest = Forest::compile(attrs, "target", targets)?;
        let aggregate = match attrs.string_or("aggregate_function", "SUM")?.as_str() {
            "SUM" => Aggregate::Sum,
            "AVERAGE" => Aggregate::Average,
            "MIN" => Aggregate::Min,
            "MAX" => Aggregate::Max,
            other => {
                return Err(format!(
                    "aggregate_function {other:?} is not SUM, AVERAGE, MIN or MAX"
                ));
            }
        };
        let base_values: Vec<f32> = attrs
            .floats_f64("base_values")?
            .unwrap_or_default()
            .into_iter()
            .map(|v| v as f32)
            .collect();
        if !base_values.is_empty() && base_values.len() != targets {
            return Err(format!(
                "has {} base_values for {targets} targets",
                base_values.len()
            ));
        }
        Ok(TreeRegressor {
            forest,
            targets,
            aggregate,
            base_values,
            post: PostTransform::parse(attrs)?,
        })
    }

    pub fn run(&self, x: &Tensor) -> Result<Vec<Value>, String> {
        let t = self.targets;
        let n_trees = self.forest.roots.len() as f32;
        let mut out: Vec<f32> = Vec::new();
        let mut has = vec![false; t];
        let rows = for_rows(x, &self.forest, |forest, row| {
            let start = out.len();
            out.resize(start + t, 0.0);
            let score = &mut out[start..];
            has.iter_mut().for_each(|h| *h = false);
            forest.each_weight(row, |j, w| {
                score[j] = match self.aggregate {
                    Aggregate::Sum | Aggregate::Average => score[j] + w,
                    Aggregate::Min if has[j] => score[j].min(w),
                    Aggregate::Max if has[j] => score[j].max(w),
                    Aggregate::Min | Aggregate::Max => w,
                };
                has[j] = true;
            });
            for (j, s) in score.iter_mut().enumerate() {
                if self.aggregate == Aggregate::Average {
                    *s /= n_trees;
                }
                if let Some(&b) = self.base_values.get(j) {
                    *s += b;
                }
            }
            if t == 1 {
                if self.post == PostTransform::Probit {
                    score[0] = probit(score[0]);
                }
            } else {
                self.post.apply(score);
            }
        })?;
        Ok(vec![Value::Tensor(Tensor::new(
            vec![rows, t],
            Data::F32(out),
        ))])
    }
}
