//! The client's side of the Open Inference Protocol: rows as a V2 REST request (JSON, or
//! binary tensor data) or a gRPC `ModelInfer` request, each one tensor `input-0` of shape
//! `[N, width]` FP64; and the predictions read back from the answers.

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::grpc_proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use crate::grpc_proto::{ModelInferRequest, ModelInferResponse};

/// The outputs asked for: the ensemble's decision and its label, as `/predict` answers.
const OUTPUTS: [&str; 2] = ["predict", "label"];

/// One row's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    pub label: String,
    pub prediction: i64,
}

fn header(rows: usize, width: usize, binary: bool) -> Value {
    let mut input = json!({"name": "input-0", "shape": [rows, width], "datatype": "FP64"});
    if binary {
        input["parameters"] = json!({"binary_data_size": rows * width * 8});
    }
    json!({
        "inputs": [input],
        "outputs": OUTPUTS.map(|name| json!({"name": name})),
    })
}

/// A V2 JSON request for `values` (row-major, `width` per row).
pub fn json_body(values: &[f64], width: usize) -> anyhow::Result<Vec<u8>> {
    let rows = values.len() / width.max(1);
    let mut request = header(rows, width, false);
    request["inputs"][0]["data"] = json!(values);
    Ok(serde_json::to_vec(&request)?)
}

/// A V2 binary request for `values`: the body, and its JSON header's length (the value of
/// `Inference-Header-Content-Length`).
pub fn binary_body(values: &[f64], width: usize) -> anyhow::Result<(Vec<u8>, usize)> {
    let rows = values.len() / width.max(1);
    let mut body = serde_json::to_vec(&header(rows, width, true))?;
    let header_length = body.len();
    body.reserve(values.len() * 8);
    for v in values {
        body.extend_from_slice(&v.to_le_bytes());
    }
    Ok((body, header_length))
}

/// The predictions in a V2 JSON answer.
pub fn read_json_answer(body: &[u8]) -> anyhow::Result<Vec<Prediction>> {
    let answer: Value = serde_json::from_slice(body).context("the answer is not JSON")?;
    let data = |name: &str| {
        answer["outputs"]
            .as_array()
            .and_then(|outputs| outputs.iter().find(|o| o["name"] == name))
            .and_then(|o| o["data"].as_array())
            .with_context(|| format!("the answer has no output {name:?} with data: {answer}"))
    };
    let (predict, label) = (data("predict")?, data("label")?);
    anyhow::ensure!(predict.len() == label.len(), "outputs of different lengths");
    predict
        .iter()
        .zip(label)
        .map(|(p, l)| {
            Ok(Prediction {
                prediction: p.as_i64().context("a predict element is not an integer")?,
                label: l
                    .as_str()
                    .context("a label element is not a string")?
                    .to_string(),
            })
        })
        .collect()
}

/// A gRPC ModelInfer request for `values`, in `raw_input_contents`.
pub fn grpc_request(model: &str, values: &[f64], width: usize) -> ModelInferRequest {
    let rows = values.len() / width.max(1);
    ModelInferRequest {
        model_name: model.to_string(),
        inputs: vec![InferInputTensor {
            name: "input-0".into(),
            datatype: "FP64".into(),
            shape: vec![rows as i64, width as i64],
            ..Default::default()
        }],
        outputs: OUTPUTS
            .map(|name| InferRequestedOutputTensor {
                name: name.into(),
                ..Default::default()
            })
            .to_vec(),
        raw_input_contents: vec![values.iter().flat_map(|v| v.to_le_bytes()).collect()],
        ..Default::default()
    }
}

/// The predictions in a gRPC answer (`raw_output_contents`: INT64 little-endian, BYTES
/// length-prefixed).
pub fn read_grpc_answer(answer: &ModelInferResponse) -> anyhow::Result<Vec<Prediction>> {
    let raw = |name: &str| {
        answer
            .outputs
            .iter()
            .position(|o| o.name == name)
            .and_then(|i| answer.raw_output_contents.get(i))
            .with_context(|| format!("the answer has no raw output {name:?}"))
    };
    let predict: Vec<i64> = raw("predict")?
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect();
    let mut labels = Vec::new();
    let mut rest = &raw("label")?[..];
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            bail!("a truncated label length");
        };
        let n = u32::from_le_bytes(*len) as usize;
        anyhow::ensure!(n <= tail.len(), "a truncated label");
        labels.push(String::from_utf8_lossy(&tail[..n]).into_owned());
        rest = &tail[n..];
    }
    anyhow::ensure!(
        predict.len() == labels.len(),
        "outputs of different lengths"
    );
    Ok(predict
        .into_iter()
        .zip(labels)
        .map(|(prediction, label)| Prediction { label, prediction })
        .collect())
}

/// A gRPC address as a URI: `host:port` gets `http://`.
pub fn grpc_uri(address: &str) -> String {
    if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_bodies_hold_the_header_then_the_values() {
        let (body, n) = binary_body(&[1.0, 2.0], 2).unwrap();
        let header: Value = serde_json::from_slice(&body[..n]).unwrap();
        assert_eq!(header["inputs"][0]["parameters"]["binary_data_size"], 16);
        assert_eq!(header["inputs"][0]["shape"], json!([1, 2]));
        assert_eq!(&body[n..n + 8], &1.0f64.to_le_bytes());
        assert_eq!(body.len(), n + 16);
    }
}
