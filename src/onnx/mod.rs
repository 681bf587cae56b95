//! ONNX models exported by skl2onnx and onnxmltools: loaded with every size bounded and the
//! graph checked once (opsets, operators, the input, types and shapes), then evaluated in pure
//! Rust. `docs/onnx.md` lists the operators and the sidecar format.

mod attr;
mod graph;
mod model;
pub mod ops;
pub mod proto;
pub mod sidecar;
pub mod tensor;
mod wire;

pub use attr::Labels;
pub use model::{
    Dim, InputInfo, MAX_MODEL_BYTES, MAX_WIDTH, Metadata, OnnxModel, OutputInfo, OutputKind,
    Outputs,
};
pub use ops::{MapRows, Value};
pub use sidecar::{Sidecar, SidecarError};
pub use tensor::{Data, ElemType, Tensor, TensorError};

/// Why a model could not be loaded or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("reading {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the model is {size} bytes, more than the {limit} accepted")]
    TooLarge { size: u64, limit: u64 },
    #[error("the file is not an ONNX model (not a well-formed protobuf message)")]
    Malformed,
    #[error("decoding the model would take more than {limit_mib} MiB of memory")]
    DecodeBudget { limit_mib: usize },
    #[error("the file is not an ONNX model (protobuf decoding failed: {0})")]
    Decode(#[from] prost::DecodeError),
    #[error("opset {version} of domain {domain:?} is not supported (supported: {supported})")]
    Opset {
        domain: String,
        version: i64,
        supported: String,
    },
    #[error(
        "operator {domain}:{op} of node {node:?} is not supported; supported operators: {supported}"
    )]
    UnsupportedOperator {
        op: String,
        domain: String,
        node: String,
        supported: String,
    },
    #[error("node {node:?} ({op}): {problem}")]
    InvalidNode {
        op: String,
        node: String,
        problem: String,
    },
    #[error("tensor {name:?} {source}")]
    Tensor {
        name: String,
        #[source]
        source: TensorError,
    },
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Output(String),
    #[error("{0}")]
    Graph(String),
    #[error("node {node:?} ({op}) failed: {problem}")]
    Eval {
        op: String,
        node: String,
        problem: String,
    },
    #[error("{values} values are not {rows} rows of {width} features")]
    Rows {
        values: usize,
        rows: usize,
        width: usize,
    },
}
