//! The binary tensor data extension (Triton's `binary_tensor_data`): a request body that is a
//! JSON header of `Inference-Header-Content-Length` bytes followed by each binary input's raw
//! elements (`parameters.binary_data_size` bytes, in the order of `inputs`), and outputs
//! answered the same way. Every length is checked against the body before a byte is read.

use super::error::{V2Error, bad};
use super::tensors::{Source, Tensor, kind_of};
use super::types::{InferenceRequest, RequestInput};
use crate::model::OutputData;

/// The request's JSON header, and the binary data after it (empty without the extension).
pub fn split(body: &[u8], header_length: Option<usize>) -> Result<(&[u8], &[u8]), V2Error> {
    let Some(n) = header_length else {
        return Ok((body, &[]));
    };
    if n > body.len() {
        return Err(bad(format!(
            "Inference-Header-Content-Length is {n}, past the end of the {}-byte body",
            body.len()
        )));
    }
    Ok(body.split_at(n))
}

/// An input's `binary_data_size`, if it has one: a whole number of bytes.
fn binary_size(input: &RequestInput) -> Result<Option<u64>, V2Error> {
    let Some(value) = input
        .parameters
        .as_ref()
        .and_then(|p| p.get("binary_data_size"))
    else {
        return Ok(None);
    };
    value.as_u64().map(Some).ok_or_else(|| {
        bad(format!(
            "input {:?}: parameter \"binary_data_size\" must be a whole number of bytes, got {}",
            input.name,
            if value.is_number() {
                value.to_string()
            } else {
                kind_of(value).to_string()
            }
        ))
    })
}

/// Each input as a tensor: its JSON `data`, or its slice of `binary`. The slices must cover
/// `binary` exactly.
pub fn tensors<'a>(
    request: &'a InferenceRequest,
    binary: &'a [u8],
    header_length: Option<usize>,
) -> Result<Vec<Tensor<'a>>, V2Error> {
    let mut rest = binary;
    let mut tensors = Vec::with_capacity(request.inputs.len());
    for input in &request.inputs {
        let source = match (binary_size(input)?, &input.data) {
            (Some(_), Some(_)) => {
                return Err(bad(format!(
                    "input {:?} has both data and parameter \"binary_data_size\": send one",
                    input.name
                )));
            }
            (None, None) => {
                return Err(bad(format!(
                    "input {:?} has no data: give \"data\", or binary tensor data with parameter \"binary_data_size\"",
                    input.name
                )));
            }
            (None, Some(data)) => Source::Json(data),
            (Some(size), None) => {
                let Some(size) = usize::try_from(size).ok().filter(|&s| s <= rest.len()) else {
                    let hint = if header_length.is_none() {
                        " (the request has no Inference-Header-Content-Length header)"
                    } else {
                        ""
                    };
                    return Err(bad(format!(
                        "input {:?}: binary_data_size is {size} bytes, but only {} bytes of binary data are left{hint}",
                        input.name,
                        rest.len()
                    )));
                };
                let (mine, after) = rest.split_at(size);
                rest = after;
                Source::Binary(mine)
            }
        };
        tensors.push(Tensor {
            name: &input.name,
            datatype: &input.datatype,
            shape: &input.shape,
            source,
        });
    }
    if !rest.is_empty() {
        return Err(bad(format!(
            "{} bytes of binary data after the last input's: the inputs' binary_data_size add up to {} of the {} bytes after the JSON header",
            rest.len(),
            binary.len() - rest.len(),
            binary.len()
        )));
    }
    Ok(tensors)
}

/// The raw form of an output: numbers little-endian; BYTES as each element's 4-byte
/// little-endian length, then its bytes.
pub fn raw(data: &OutputData) -> Vec<u8> {
    match data {
        OutputData::Int64(values) => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        OutputData::Fp32(values) => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        OutputData::Bytes(values) => {
            let mut out = Vec::with_capacity(values.iter().map(|s| 4 + s.len()).sum());
            for s in values {
                // Labels are short; a label over 4 GiB cannot be loaded.
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_length_prefixed() {
        let bytes = raw(&OutputData::Bytes(vec!["M".into(), "".into(), "BB".into()]));
        assert_eq!(bytes, b"\x01\0\0\0M\0\0\0\0\x02\0\0\0BB");
        let ints = raw(&OutputData::Int64(vec![1, -1]));
        assert_eq!(
            ints,
            [
                1, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255
            ]
        );
    }

    #[test]
    fn the_header_length_must_fit_the_body() {
        assert!(split(b"{}", Some(3)).is_err());
        assert_eq!(split(b"{}xy", Some(2)).unwrap(), (&b"{}"[..], &b"xy"[..]));
        assert_eq!(split(b"{}", None).unwrap(), (&b"{}"[..], &b""[..]));
    }
}
