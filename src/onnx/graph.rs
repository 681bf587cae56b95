//! A compiled graph (the model's, or a Scan body): values in numbered slots, nodes in order,
//! each value dropped after its last reader. Scan, the one control-flow operator the converters
//! emit (KNeighbors' pairwise distances), lives here because it runs a graph.

use std::collections::HashMap;

use super::OnnxError;
use super::attr::Attrs;
use super::ops::{self, CompileError, DOMAIN_STANDARD, Op, Value};
use super::proto;
use super::tensor::{self, Data, MAX_ELEMENTS, MAX_RANK, Tensor};

/// The opset of each domain the model imports.
pub type Opsets = HashMap<&'static str, i64>;

/// How deeply Scan bodies may nest.
const MAX_DEPTH: usize = 4;
/// The most steps one Scan may take.
const MAX_SCAN_STEPS: usize = 1 << 20;

#[derive(Debug)]
enum NodeOp {
    Op(Op),
    Scan(Box<Scan>),
}

#[derive(Debug)]
struct Node {
    name: String,
    op_type: String,
    op: NodeOp,
    inputs: Vec<Option<usize>>,
    outputs: Vec<Option<usize>>,
    /// Slots no later node reads, dropped once this node has run.
    frees: Vec<usize>,
}

#[derive(Debug)]
pub struct Graph {
    /// Constant values (initializers) by slot; `None` for computed slots.
    consts: Vec<Option<Value>>,
    input_slots: Vec<usize>,
    output_slots: Vec<usize>,
    nodes: Vec<Node>,
}

fn node_label(n: &proto::NodeProto, index: usize) -> String {
    match n.name.as_deref() {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => format!("#{index}"),
    }
}

pub fn supported_list() -> String {
    format!(
        "{} (ai.onnx.ml) and {}, Scan (ai.onnx)",
        ops::ML_OPS.join(", "),
        ops::STANDARD_OPS.join(", ")
    )
}

impl Graph {
    /// Compiles `graph` whose runtime inputs are `inputs` (names), recording the operators used.
    pub fn compile(
        graph: &proto::GraphProto,
        inputs: &[String],
        opsets: &Opsets,
        operators: &mut Vec<String>,
        depth: usize,
    ) -> Result<Graph, OnnxError> {
        if depth > MAX_DEPTH {
            return Err(OnnxError::Graph(format!(
                "Scan bodies nest more than {MAX_DEPTH} deep"
            )));
        }
        if !graph.sparse_initializer.is_empty() {
            return Err(OnnxError::Graph(
                "sparse initializers are not supported".into(),
            ));
        }
        let mut slots: HashMap<String, usize> = HashMap::new();
        let mut consts: Vec<Option<Value>> = Vec::new();
        let define =
            |slots: &mut HashMap<String, usize>, consts: &mut Vec<Option<Value>>, name: &str| {
                if slots.contains_key(name) {
                    return Err(OnnxError::Graph(format!(
                        "the value {name:?} is defined twice"
                    )));
                }
                slots.insert(name.to_owned(), consts.len());
                consts.push(None);
                Ok(consts.len() - 1)
            };
        for init in &graph.initializer {
            let name = init.name.clone().unwrap_or_default();
            let t = tensor::from_proto(init).map_err(|source| OnnxError::Tensor {
                name: name.clone(),
                source,
            })?;
            let slot = define(&mut slots, &mut consts, &name)?;
            consts[slot] = Some(Value::Tensor(t));
        }
        let input_slots = inputs
            .iter()
            .map(|name| define(&mut slots, &mut consts, name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut nodes = Vec::with_capacity(graph.node.len());
        for (index, n) in graph.node.iter().enumerate() {
            let name = node_label(n, index);
            let op_type = n.op_type.clone().unwrap_or_default();
            let domain = match n.domain.as_deref() {
                None | Some("") | Some("ai.onnx") => DOMAIN_STANDARD,
                Some(d) => d,
            };
            let unsupported = || OnnxError::UnsupportedOperator {
                op: op_type.clone(),
                domain: domain.to_owned(),
                node: name.clone(),
                supported: supported_list(),
            };
            let opset = *opsets.get(domain).ok_or_else(unsupported)?;
            let invalid = |problem: String| OnnxError::InvalidNode {
                op: op_type.clone(),
                node: name.clone(),
                problem,
            };
            let op = if domain == DOMAIN_STANDARD && op_type == "Scan" {
                NodeOp::Scan(Box::new(
                    Scan::compile(n, opset, opsets, operators, depth).map_err(|e| match e {
                        ScanError::Invalid(p) => invalid(p),
                        ScanError::Body(e) => e,
                    })?,
                ))
            } else {
                NodeOp::Op(Op::compile(n, domain, opset).map_err(|e| match e {
                    CompileError::Unsupported => unsupported(),
                    CompileError::Invalid(problem) => invalid(problem),
                })?)
            };
            let inputs = n
                .input
                .iter()
                .map(|i| {
                    if i.is_empty() {
                        return Ok(None);
                    }
                    slots.get(i).copied().map(Some).ok_or_else(|| {
                        invalid(format!(
                            "reads {i:?}, which no earlier node, initializer or input defines"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let outputs = n
                .output
                .iter()
                .map(|o| {
                    if o.is_empty() {
                        Ok(None)
                    } else {
                        define(&mut slots, &mut consts, o).map(Some)
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            let qualified = if domain == DOMAIN_STANDARD {
                op_type.clone()
            } else {
                format!("{domain}:{op_type}")
            };
            if !operators.contains(&qualified) {
                operators.push(qualified);
            }
            nodes.push(Node {
                name,
                op_type,
                op,
                inputs,
                outputs,
                frees: Vec::new(),
            });
        }
        let output_slots = graph
            .output
            .iter()
            .map(|o| {
                let name = o.name.clone().unwrap_or_default();
                slots.get(&name).copied().ok_or_else(|| {
                    OnnxError::Graph(format!("the output {name:?} is never computed"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if output_slots.is_empty() {
            return Err(OnnxError::Graph("the graph has no outputs".into()));
        }
        // Free each computed value after its last reader, unless it is an output.
        let mut last_use: HashMap<usize, usize> = HashMap::new();
        for (k, node) in nodes.iter().enumerate() {
            for s in node.inputs.iter().flatten() {
                last_use.insert(*s, k);
            }
        }
        for (slot, k) in last_use {
            if consts[slot].is_none() && !output_slots.contains(&slot) {
                nodes[k].frees.push(slot);
            }
        }
        Ok(Graph {
            consts,
            input_slots,
            output_slots,
            nodes,
        })
    }

    /// Runs the graph on its inputs (in the order given to `compile`).
    pub fn run(&self, inputs: Vec<Value>) -> Result<Vec<Value>, OnnxError> {
        let mut slots: Vec<Option<Value>> = vec![None; self.consts.len()];
        for (&slot, value) in self.input_slots.iter().zip(inputs) {
            slots[slot] = Some(value);
        }
        for node in &self.nodes {
            let outs = {
                let ins: Vec<Option<&Value>> = node
                    .inputs
                    .iter()
                    .map(|s| s.and_then(|s| self.consts[s].as_ref().or(slots[s].as_ref())))
                    .collect();
                let result = match &node.op {
                    NodeOp::Op(op) => op.run(&ins),
                    NodeOp::Scan(scan) => scan.run(&ins),
                };
                result.map_err(|problem| OnnxError::Eval {
                    op: node.op_type.clone(),
                    node: node.name.clone(),
                    problem,
                })?
            };
            if outs.len() < node.outputs.len() {
                return Err(OnnxError::Eval {
                    op: node.op_type.clone(),
                    node: node.name.clone(),
                    problem: "produced fewer outputs than the node names".into(),
                });
            }
            for (slot, value) in node.outputs.iter().zip(outs) {
                if let Some(slot) = slot {
                    slots[*slot] = Some(value);
                }
            }
            for &s in &node.frees {
                slots[s] = None;
            }
        }
        self.output_slots
            .iter()
            .map(|&s| match &self.consts[s] {
                Some(v) => Ok(v.clone()),
                None => slots[s]
                    .take()
                    .ok_or_else(|| OnnxError::Graph("an output was not computed".into())),
            })
            .collect()
    }
}

enum ScanError {
    Invalid(String),
    Body(OnnxError),
}

impl From<String> for ScanError {
    fn from(s: String) -> Self {
        ScanError::Invalid(s)
    }
}

impl From<&str> for ScanError {
    fn from(s: &str) -> Self {
        ScanError::Invalid(s.to_owned())
    }
}

/// Scan (opset 9 and later) with its default axes and directions: the body runs once per slice
/// along the first axis of the scan inputs, carrying the state variables.
#[derive(Debug)]
struct Scan {
    body: Graph,
    states: usize,
    scan_inputs: usize,
}

impl Scan {
    fn compile(
        node: &proto::NodeProto,
        opset: i64,
        opsets: &Opsets,
        operators: &mut Vec<String>,
        depth: usize,
    ) -> Result<Scan, ScanError> {
        if opset < 9 {
            return Err(
                "Scan before opset 9 (with a sequence_lens input) is not supported"
                    .to_owned()
                    .into(),
            );
        }
        let attrs = Attrs::new(node);
        let scan_inputs = usize::try_from(
            attrs
                .int("num_scan_inputs")?
                .ok_or("needs num_scan_inputs")?,
        )
        .ok()
        .filter(|&m| m >= 1 && m <= node.input.len())
        .ok_or("num_scan_inputs is out of range")?;
        for name in [
            "scan_input_axes",
            "scan_output_axes",
            "scan_input_directions",
            "scan_output_directions",
        ] {
            if attrs.ints_or_empty(name)?.iter().any(|&v| v != 0) {
                return Err(format!("{name} other than 0 is not supported").into());
            }
        }
        let body = node
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some("body"))
            .and_then(|a| a.g.as_ref())
            .ok_or("needs a body graph")?;
        let names: Vec<String> = body
            .input
            .iter()
            .map(|i| i.name.clone().unwrap_or_default())
            .collect();
        if names.len() != node.input.len() {
            return Err(format!(
                "the body takes {} inputs, the node gives {}",
                names.len(),
                node.input.len()
            )
            .into());
        }
        let states = node.input.len() - scan_inputs;
        if body.output.len() < states || node.output.len() != body.output.len() {
            return Err("the body's outputs do not match the node's"
                .to_owned()
                .into());
        }
        let body =
            Graph::compile(body, &names, opsets, operators, depth + 1).map_err(ScanError::Body)?;
        Ok(Scan {
            body,
            states,
            scan_inputs,
        })
    }

    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let mut states: Vec<Value> = (0..self.states)
            .map(|i| {
                inputs[i]
                    .cloned()
                    .ok_or_else(|| format!("state input {i} is missing"))
            })
            .collect::<Result<_, _>>()?;
        let scans: Vec<&Tensor> = (self.states..self.states + self.scan_inputs)
            .map(|i| ops::tensor_input(inputs, i))
            .collect::<Result<_, _>>()?;
        let len = *scans[0]
            .shape
            .first()
            .ok_or("a scan input has no axis to scan")?;
        if len > MAX_SCAN_STEPS {
            return Err(format!(
                "{len} scan steps are more than the {MAX_SCAN_STEPS} supported"
            ));
        }
        if scans.iter().any(|t| t.shape.first() != Some(&len)) {
            return Err("the scan inputs differ in length".into());
        }
        let mut stacked: Vec<Vec<Tensor>> = Vec::new();
        for step in 0..len {
            let mut body_inputs = std::mem::take(&mut states);
            body_inputs.extend(scans.iter().map(|t| Value::Tensor(slice0(t, step))));
            let mut outs = self
                .body
                .run(body_inputs)
                .map_err(|e| format!("in its body: {e}"))?;
            let scanned = outs.split_off(self.states);
            states = outs;
            if stacked.is_empty() {
                stacked = scanned.iter().map(|_| Vec::with_capacity(len)).collect();
            }
            for (parts, v) in stacked.iter_mut().zip(scanned) {
                match v {
                    Value::Tensor(t) => parts.push(t),
                    Value::Maps(_) => return Err("a scan output is not a tensor".into()),
                }
            }
        }
        let mut outputs = states;
        for parts in stacked {
            outputs.push(Value::Tensor(stack(parts)?));
        }
        Ok(outputs)
    }
}

/// Element `i` along the first axis.
fn slice0(t: &Tensor, i: usize) -> Tensor {
    let inner: usize = t.shape[1..].iter().product();
    let range = i * inner..(i + 1) * inner;
    let data = match &t.data {
        Data::F32(v) => Data::F32(v[range].to_vec()),
        Data::F64(v) => Data::F64(v[range].to_vec()),
        Data::I64(v) => Data::I64(v[range].to_vec()),
        Data::I32(v) => Data::I32(v[range].to_vec()),
        Data::Bool(v) => Data::Bool(v[range].to_vec()),
        Data::Str(v) => Data::Str(v[range].to_vec()),
    };
    Tensor::new(t.shape[1..].to_vec(), data)
}

/// Tensors of one shape and type, stacked along a new first axis.
fn stack(parts: Vec<Tensor>) -> Result<Tensor, String> {
    let Some(first) = parts.first() else {
        return Err("Scan over an empty axis".into());
    };
    let shape0 = first.shape.clone();
    let ty = first.elem_type();
    if parts
        .iter()
        .any(|p| p.shape != shape0 || p.elem_type() != ty)
    {
        return Err("the body's scan outputs change shape or type between steps".into());
    }
    if shape0.len() + 1 > MAX_RANK || parts.len().saturating_mul(first.len()) > MAX_ELEMENTS {
        return Err("the stacked scan output would be too large".into());
    }
    let mut shape = vec![parts.len()];
    shape.extend_from_slice(&shape0);
    macro_rules! join {
        ($variant:ident) => {{
            let mut all = Vec::with_capacity(parts.len() * first.len());
            for p in parts {
                let Data::$variant(v) = p.data else {
                    unreachable!()
                };
                all.extend(v);
            }
            Data::$variant(all)
        }};
    }
    let data = match ty {
        tensor::ElemType::F32 => join!(F32),
        tensor::ElemType::F64 => join!(F64),
        tensor::ElemType::I64 => join!(I64),
        tensor::ElemType::I32 => join!(I32),
        tensor::ElemType::Bool => join!(Bool),
        tensor::ElemType::Str => join!(Str),
    };
    Ok(Tensor::new(shape, data))
}
