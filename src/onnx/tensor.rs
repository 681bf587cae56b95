//! Tensors as the evaluator holds them: a shape and one typed buffer, read from `TensorProto`
//! with every size checked before it is allocated.

use super::proto::{self, tensor_proto::DataType};

/// The most elements one tensor may hold (a constant in the file or a value while evaluating).
pub const MAX_ELEMENTS: usize = 1 << 24;
/// The most dimensions a tensor may have.
pub const MAX_RANK: usize = 8;

/// Element types the evaluator computes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    F32,
    F64,
    I64,
    I32,
    Bool,
    Str,
}

impl ElemType {
    /// The ONNX name (`tensor(float)` is `float`).
    pub fn onnx_name(self) -> &'static str {
        match self {
            ElemType::F32 => "float",
            ElemType::F64 => "double",
            ElemType::I64 => "int64",
            ElemType::I32 => "int32",
            ElemType::Bool => "bool",
            ElemType::Str => "string",
        }
    }

    /// From the `TensorProto.DataType` code, for the types we support.
    pub fn from_code(code: i32) -> Option<ElemType> {
        Some(match DataType::try_from(code).ok()? {
            DataType::Float => ElemType::F32,
            DataType::Double => ElemType::F64,
            DataType::Int64 => ElemType::I64,
            DataType::Int32 => ElemType::I32,
            DataType::Bool => ElemType::Bool,
            DataType::String => ElemType::Str,
            _ => return None,
        })
    }
}

/// One tensor's elements.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
    Str(Vec<String>),
}

impl Data {
    pub fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::I32(v) => v.len(),
            Data::Bool(v) => v.len(),
            Data::Str(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn elem_type(&self) -> ElemType {
        match self {
            Data::F32(_) => ElemType::F32,
            Data::F64(_) => ElemType::F64,
            Data::I64(_) => ElemType::I64,
            Data::I32(_) => ElemType::I32,
            Data::Bool(_) => ElemType::Bool,
            Data::Str(_) => ElemType::Str,
        }
    }
}

/// A dense row-major tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Data) -> Tensor {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor { shape, data }
    }

    pub fn elem_type(&self) -> ElemType {
        self.data.elem_type()
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The values as i64 (for shape, axes and index inputs).
    pub fn as_i64s(&self) -> Option<Vec<i64>> {
        match &self.data {
            Data::I64(v) => Some(v.clone()),
            Data::I32(v) => Some(v.iter().map(|&x| i64::from(x)).collect()),
            _ => None,
        }
    }
}

/// Why a `TensorProto` could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TensorError {
    #[error("refers to external data; only models with every tensor inside the file are accepted")]
    ExternalData,
    #[error("element type {0} is not supported (float, double, int64, int32, bool, string are)")]
    ElemType(String),
    #[error("has a negative dimension {0}")]
    NegativeDim(i64),
    #[error("has {0} dimensions, more than the {MAX_RANK} supported")]
    Rank(usize),
    #[error("dimensions {dims:?} hold more than {MAX_ELEMENTS} elements")]
    TooLarge { dims: Vec<i64> },
    #[error("dimensions say {expected} elements but the data holds {got}")]
    Length { expected: usize, got: usize },
    #[error("holds a string that is not UTF-8")]
    NotUtf8,
}

/// Checked element count of a shape given as ONNX dims.
pub fn element_count(dims: &[i64]) -> Result<(Vec<usize>, usize), TensorError> {
    if dims.len() > MAX_RANK {
        return Err(TensorError::Rank(dims.len()));
    }
    let mut shape = Vec::with_capacity(dims.len());
    let mut count: usize = 1;
    for &d in dims {
        let d = usize::try_from(d).map_err(|_| TensorError::NegativeDim(d))?;
        count = count
            .checked_mul(d)
            .filter(|&c| c <= MAX_ELEMENTS)
            .ok_or_else(|| TensorError::TooLarge {
                dims: dims.to_vec(),
            })?;
        shape.push(d);
    }
    Ok((shape, count))
}

fn check_len(expected: usize, got: usize) -> Result<(), TensorError> {
    if expected == got {
        Ok(())
    } else {
        Err(TensorError::Length { expected, got })
    }
}

/// Decodes fixed-width little-endian values from `raw_data` after checking its length.
fn from_raw<T, const W: usize>(
    raw: &[u8],
    count: usize,
    f: impl Fn([u8; W]) -> T,
) -> Result<Vec<T>, TensorError> {
    check_len(count, raw.len() / W)?;
    if !raw.len().is_multiple_of(W) {
        return Err(TensorError::Length {
            expected: count * W,
            got: raw.len(),
        });
    }
    Ok(raw
        .chunks_exact(W)
        .map(|c| {
            let mut bytes = [0u8; W];
            bytes.copy_from_slice(c);
            f(bytes)
        })
        .collect())
}

/// Reads a `TensorProto` (an initializer, a `Constant`'s value, an attribute tensor).
pub fn from_proto(t: &proto::TensorProto) -> Result<Tensor, TensorError> {
    if t.data_location == Some(proto::tensor_proto::DataLocation::External as i32)
        || !t.external_data.is_empty()
    {
        return Err(TensorError::ExternalData);
    }
    let code = t.data_type.unwrap_or(0);
    let elem = ElemType::from_code(code).ok_or_else(|| {
        TensorError::ElemType(
            DataType::try_from(code)
                .map(|d| d.as_str_name().to_ascii_lowercase())
                .unwrap_or_else(|_| format!("code {code}")),
        )
    })?;
    let (shape, count) = element_count(&t.dims)?;
    let raw = t.raw_data.as_deref().filter(|r| !r.is_empty());
    let data = match (elem, raw) {
        (ElemType::F32, Some(r)) => Data::F32(from_raw(r, count, f32::from_le_bytes)?),
        (ElemType::F64, Some(r)) => Data::F64(from_raw(r, count, f64::from_le_bytes)?),
        (ElemType::I64, Some(r)) => Data::I64(from_raw(r, count, i64::from_le_bytes)?),
        (ElemType::I32, Some(r)) => Data::I32(from_raw(r, count, i32::from_le_bytes)?),
        (ElemType::Bool, Some(r)) => Data::Bool(from_raw(r, count, |[b]: [u8; 1]| b != 0)?),
        (ElemType::Str, Some(_)) => return Err(TensorError::ElemType("raw string".into())),
        (ElemType::F32, None) => {
            check_len(count, t.float_data.len())?;
            Data::F32(t.float_data.clone())
        }
        (ElemType::F64, None) => {
            check_len(count, t.double_data.len())?;
            Data::F64(t.double_data.clone())
        }
        (ElemType::I64, None) => {
            check_len(count, t.int64_data.len())?;
            Data::I64(t.int64_data.clone())
        }
        (ElemType::I32, None) => {
            check_len(count, t.int32_data.len())?;
            Data::I32(t.int32_data.clone())
        }
        (ElemType::Bool, None) => {
            check_len(count, t.int32_data.len())?;
            Data::Bool(t.int32_data.iter().map(|&b| b != 0).collect())
        }
        (ElemType::Str, None) => {
            check_len(count, t.string_data.len())?;
            let strings = t
                .string_data
                .iter()
                .map(|s| String::from_utf8(s.clone()).map_err(|_| TensorError::NotUtf8))
                .collect::<Result<_, _>>()?;
            Data::Str(strings)
        }
    };
    Ok(Tensor::new(shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_dims_are_refused_before_allocation() {
        assert!(matches!(
            element_count(&[1 << 20, 1 << 20]),
            Err(TensorError::TooLarge { .. })
        ));
        assert!(matches!(
            element_count(&[i64::MAX, i64::MAX]),
            Err(TensorError::TooLarge { .. })
        ));
        assert_eq!(element_count(&[-1]), Err(TensorError::NegativeDim(-1)));
        assert_eq!(element_count(&[2, 3]).unwrap(), (vec![2, 3], 6));
    }

    #[test]
    fn data_must_match_dims() {
        let t = proto::TensorProto {
            dims: vec![3],
            data_type: Some(DataType::Float as i32),
            float_data: vec![1.0, 2.0],
            ..Default::default()
        };
        assert_eq!(
            from_proto(&t),
            Err(TensorError::Length {
                expected: 3,
                got: 2
            })
        );
        let raw = proto::TensorProto {
            dims: vec![2],
            data_type: Some(DataType::Int64 as i32),
            raw_data: Some(vec![1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]),
            ..Default::default()
        };
        assert_eq!(from_proto(&raw).unwrap().data, Data::I64(vec![1, 2]));
    }
}
