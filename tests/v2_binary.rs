//! In-process tests of the V2 REST routes as the official clients call them: no Content-Type,
//! the binary tensor data extension in and out (every datatype, both layouts, all 569 bundled
//! rows against `/predict`), every malformed binary layout as a 400 that says what is wrong,
//! gzip/deflate bodies within the body limit (a decompression bomb is a 413), gzipped answers,
//! and property tests feeding arbitrary bytes to the binary reader.

mod common;

use std::io::{Read, Write};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use ml_serving::dataset::DEFAULT_FEATURES as FEATURES;
use ml_serving::server::App;
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

const INFER: &str = "/v2/models/breast_model/infer";

/// A raw answer: status, headers and body bytes.
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    /// The JSON part of the answer (all of it without `Inference-Header-Content-Length`).
    fn json(&self) -> Value {
        let n = self.header_length().unwrap_or(self.body.len());
        serde_json::from_slice(&self.body[..n])
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn header_length(&self) -> Option<usize> {
        self.headers
            .get("inference-header-content-length")
            .map(|v| v.to_str().unwrap().parse().unwrap())
    }

    /// Each output's elements, decoded from JSON `data` or from the binary part.
    fn outputs(&self) -> Vec<(String, Vec<Value>)> {
        let json = self.json();
        let mut at = self.header_length().unwrap_or(0);
        let mut out = Vec::new();
        for o in json["outputs"].as_array().unwrap() {
            let name = o["name"].as_str().unwrap().to_string();
            let values = if let Some(size) = o["parameters"]["binary_data_size"].as_u64() {
                assert!(o.get("data").is_none(), "{o}");
                let raw = &self.body[at..at + size as usize];
                at += size as usize;
                decode(o["datatype"].as_str().unwrap(), raw)
            } else {
                o["data"].as_array().unwrap().clone()
            };
            assert_eq!(values.len() as u64, o["shape"][0].as_u64().unwrap());
            out.push((name, values));
        }
        if self.header_length().is_some() {
            assert_eq!(at, self.body.len());
        }
        out
    }

    fn output(&self, name: &str) -> Vec<Value> {
        self.outputs()
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no output {name}"))
            .1
    }

    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap().to_string()
    }
}

/// The protocol's binary form of an output: INT64 little-endian, BYTES length-prefixed.
fn decode(datatype: &str, raw: &[u8]) -> Vec<Value> {
    match datatype {
        "INT64" => raw
            .chunks_exact(8)
            .map(|c| json!(i64::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        "BYTES" => {
            let mut out = Vec::new();
            let mut rest = raw;
            while !rest.is_empty() {
                let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
                out.push(json!(std::str::from_utf8(&rest[4..4 + n]).unwrap()));
                rest = &rest[4 + n..];
            }
            out
        }
        other => panic!("unexpected output datatype {other}"),
    }
}

async fn send(app: &App, headers: &[(&str, String)], body: Vec<u8>) -> Answer {
    let mut req = Request::post(INFER);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let response = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// A binary request as tritonclient sends it: no Content-Type, the JSON header's length in
/// `Inference-Header-Content-Length`, then each input's bytes.
async fn send_binary(app: &App, header: &Value, tensors: &[Vec<u8>]) -> Answer {
    let (headers, body) = binary_body(header, tensors);
    send(app, &headers, body).await
}

fn binary_body(header: &Value, tensors: &[Vec<u8>]) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let mut body = header.to_string().into_bytes();
    let headers = vec![("inference-header-content-length", body.len().to_string())];
    for t in tensors {
        body.extend_from_slice(t);
    }
    (headers, body)
}

/// Little-endian bytes of `values` as `datatype`.
fn encode(values: &[f64], datatype: &str) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| match datatype {
            "FP64" => v.to_le_bytes().to_vec(),
            "FP32" => (v as f32).to_le_bytes().to_vec(),
            "INT8" => (v as i8).to_le_bytes().to_vec(),
            "INT16" => (v as i16).to_le_bytes().to_vec(),
            "INT32" => (v as i32).to_le_bytes().to_vec(),
            "INT64" => (v as i64).to_le_bytes().to_vec(),
            "UINT8" => (v as u8).to_le_bytes().to_vec(),
            "UINT16" => (v as u16).to_le_bytes().to_vec(),
            "UINT32" => (v as u32).to_le_bytes().to_vec(),
            "UINT64" => (v as u64).to_le_bytes().to_vec(),
            other => panic!("{other}"),
        })
        .collect()
}

/// One binary `input-0` tensor `[N, 6]`, and its bytes.
fn binary_matrix(rows: &[[f64; 6]], datatype: &str) -> (Value, Vec<Vec<u8>>) {
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    let bytes = encode(&flat, datatype);
    let header = json!({"inputs": [{
        "name": "input-0",
        "shape": [rows.len(), 6],
        "datatype": datatype,
        "parameters": {"binary_data_size": bytes.len()},
    }]});
    (header, vec![bytes])
}

/// One binary tensor per feature, each `[N]`.
fn binary_columns(rows: &[[f64; 6]], datatype: &str) -> (Value, Vec<Vec<u8>>) {
    let mut inputs = Vec::new();
    let mut tensors = Vec::new();
    for (j, name) in FEATURES.iter().enumerate() {
        let column: Vec<f64> = rows.iter().map(|r| r[j]).collect();
        let bytes = encode(&column, datatype);
        inputs.push(json!({
            "name": name,
            "shape": [rows.len()],
            "datatype": datatype,
            "parameters": {"binary_data_size": bytes.len()},
        }));
        tensors.push(bytes);
    }
    (json!({ "inputs": inputs }), tensors)
}

fn ints(values: &[Value]) -> Vec<i64> {
    values.iter().map(|v| v.as_i64().unwrap()).collect()
}

// ------------------------------------------------------------------ binary in, binary out

#[tokio::test]
async fn binary_inputs_in_both_layouts_give_predicts_answers_on_every_bundled_row() {
    let app = default_app();
    let rows = bundled_feature_rows();
    let expected = predict_answers(&app).await;
    let labels: Vec<Value> = expected
        .iter()
        .map(|&p| json!(if p == 1 { "M" } else { "B" }))
        .collect();
    for (header, tensors) in [binary_matrix(&rows, "FP64"), binary_columns(&rows, "FP64")] {
        let answer = send_binary(&app, &header, &tensors).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
        assert_eq!(ints(&answer.output("predict")), expected);
        assert_eq!(answer.output("label"), labels);
    }
}

#[tokio::test]
async fn binary_and_json_agree_for_every_datatype() {
    let app = default_app();
    // Integer rows fit every type; the float rows only the float types.
    let int_rows = [
        BENIGN_ROW,
        [0.0, 1.0, 3.0, 40.0, 20.0, 100.0],
        [1.0, 1.0, 9.0, 120.0, 30.0, 250.0],
    ];
    for datatype in [
        "FP64", "FP32", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64",
    ] {
        let rows: Vec<[f64; 6]> = if datatype.starts_with("FP") {
            vec![SAMPLE_ROW, BENIGN_ROW]
        } else {
            int_rows.to_vec()
        };
        // INT8 and UINT8 cannot hold area_worst = 250 or 500: a row of small values instead.
        let rows = if datatype.ends_with("INT8") {
            vec![[0.0, 1.0, 3.0, 40.0, 20.0, 100.0]]
        } else {
            rows
        };
        let json_body = json!({"inputs": [{
            "name": "input-0", "shape": [rows.len(), 6], "datatype": datatype, "data": rows,
        }]});
        let from_json = send(&app, &[], json_body.to_string().into_bytes()).await;
        assert_eq!(
            from_json.status,
            StatusCode::OK,
            "{datatype}: {}",
            from_json.json()
        );
        let as_fp64 = json!({"inputs": [{
            "name": "input-0", "shape": [rows.len(), 6], "datatype": "FP64",
            "data": rows.iter().flatten().map(|&v| if datatype == "FP32" { f64::from(v as f32) } else { v }).collect::<Vec<_>>(),
        }]});
        let reference = send(&app, &[], as_fp64.to_string().into_bytes()).await;
        for (header, tensors) in [
            binary_matrix(&rows, datatype),
            binary_columns(&rows, datatype),
        ] {
            let answer = send_binary(&app, &header, &tensors).await;
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "{datatype}: {}",
                answer.json()
            );
            assert_eq!(answer.outputs(), reference.outputs(), "{datatype}");
            assert_eq!(answer.outputs(), from_json.outputs(), "{datatype}");
        }
    }
}

#[tokio::test]
async fn integer_data_must_be_integers_within_the_type() {
    let app = default_app();
    for (datatype, data, part) in [
        (
            "UINT8",
            json!([0, 0, 2, 20, 25, 500]),
            "500, outside the range of UINT8",
        ),
        (
            "INT8",
            json!([0, 0, 2, 20, 25, -129]),
            "-129, outside the range of INT8",
        ),
        (
            "INT32",
            json!([0, 0, 2.5, 20, 25, 5]),
            "INT32 data must be integers",
        ),
        ("INT64", json!([0, 0, 2, 20, 25, -1]), "must be ≥ 0"),
    ] {
        let body = json!({"inputs": [{"name": "input-0", "shape": [1, 6], "datatype": datatype, "data": data}]});
        let answer = send(&app, &[], body.to_string().into_bytes()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{datatype}");
        assert!(
            answer.error().contains(part),
            "{datatype}: {}",
            answer.error()
        );
    }
    // The same checks on binary data: a negative INT16 is a negative feature.
    let (header, tensors) = binary_matrix(&[[0.0, 0.0, 2.0, 20.0, 25.0, -3.0]], "INT16");
    let answer = send_binary(&app, &header, &tensors).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer
            .error()
            .contains("row 0, column 5 (area_worst) is -3"),
        "{}",
        answer.error()
    );
    // A NaN in binary FP64 is named.
    let (header, tensors) = binary_matrix(&[[f64::NAN, 0.0, 2.0, 20.0, 25.0, 3.0]], "FP64");
    let answer = send_binary(&app, &header, &tensors).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer
            .error()
            .contains("row 0, column 0 (concavity_mean) is not a finite number")
    );
}

#[tokio::test]
async fn outputs_come_in_binary_when_asked_and_only_those_named() {
    let app = default_app();
    let rows = [SAMPLE_ROW, BENIGN_ROW];
    let (mut header, tensors) = binary_matrix(&rows, "FP32");
    let json_answer = send_binary(&app, &header, &tensors).await;
    assert_eq!(
        json_answer.header_length(),
        None,
        "JSON outputs unless asked"
    );
    assert_eq!(json_answer.headers["content-type"], "application/json");

    // The request's binary_data_output: every output binary (what tritonclient asks by default).
    header["parameters"] = json!({"binary_data_output": true});
    header["id"] = json!("req-7");
    let answer = send_binary(&app, &header, &tensors).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.header_length().is_some());
    assert_eq!(answer.headers["content-type"], "application/octet-stream");
    assert_eq!(answer.json()["id"], "req-7");
    assert_eq!(answer.outputs(), json_answer.outputs());
    assert_eq!(answer.output("label"), [json!("M"), json!("B")]);

    // Named outputs only, each binary or not as it says, overriding the request's default.
    header["outputs"] = json!([
        {"name": "label", "parameters": {"binary_data": true}},
        {"name": "predict", "parameters": {"binary_data": false}},
    ]);
    let answer = send_binary(&app, &header, &tensors).await;
    assert_eq!(answer.status, StatusCode::OK);
    let json = answer.json();
    let names: Vec<&str> = json["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["label", "predict"]);
    assert_eq!(json["outputs"][1]["data"], json!([1, 0]));
    assert_eq!(json["outputs"][0]["parameters"]["binary_data_size"], 10);
    assert_eq!(
        &answer.body[answer.header_length().unwrap()..],
        b"\x01\0\0\0M\x01\0\0\0B"
    );

    header["outputs"][0]["parameters"]["binary_data"] = json!("yes");
    let answer = send_binary(&app, &header, &tensors).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer
            .error()
            .contains("\"binary_data\" must be true or false"),
        "{}",
        answer.error()
    );
}

// ------------------------------------------------------------------ malformed binary layouts

/// Sends `body` with `Inference-Header-Content-Length: length`; asserts a 400 naming `parts`.
async fn assert_layout_error(app: &App, length: &str, body: Vec<u8>, parts: &[&str]) {
    let answer = send(
        app,
        &[("inference-header-content-length", length.to_string())],
        body,
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let error = answer.error();
    for part in parts {
        assert!(error.contains(part), "{error:?} lacks {part:?}");
    }
}

#[tokio::test]
async fn every_malformed_binary_layout_is_a_400_saying_what_is_wrong() {
    let app = default_app();
    let (header, tensors) = binary_matrix(&[SAMPLE_ROW], "FP64");
    let json_len = header.to_string().len();
    let mut good = header.to_string().into_bytes();
    good.extend_from_slice(&tensors[0]);
    assert_eq!(
        send_binary(&app, &header, &tensors).await.status,
        StatusCode::OK
    );

    assert_layout_error(&app, "0", good.clone(), &["is 0", "cannot be empty"]).await;
    assert_layout_error(
        &app,
        "100000",
        good.clone(),
        &["100000", "past the end of the 1", "byte body"],
    )
    .await;
    assert_layout_error(
        &app,
        "12abc",
        good.clone(),
        &["whole number of bytes", "12abc"],
    )
    .await;
    assert_layout_error(&app, "-5", good.clone(), &["whole number of bytes", "-5"]).await;
    assert_layout_error(
        &app,
        "18446744073709551616",
        good.clone(),
        &["whole number of bytes"],
    )
    .await;
    // A header length inside the JSON: the header is cut and is not JSON.
    assert_layout_error(
        &app,
        &(json_len - 3).to_string(),
        good.clone(),
        &["Malformed JSON"],
    )
    .await;

    let with_size = |size: Value| {
        let mut h = header.clone();
        h["inputs"][0]["parameters"]["binary_data_size"] = size;
        h
    };
    for (size, parts) in [
        (
            json!(-48),
            vec!["\"binary_data_size\" must be a whole number of bytes, got -48"],
        ),
        (json!(4.5), vec!["got 4.5"]),
        (json!("48"), vec!["got a string"]),
        (
            json!(u64::MAX),
            vec![
                "binary_data_size is 18446744073709551615 bytes",
                "only 48 bytes",
            ],
        ),
        (
            json!(49),
            vec!["binary_data_size is 49 bytes, but only 48 bytes of binary data are left"],
        ),
        (
            json!(40),
            vec!["8 bytes of binary data after the last input's"],
        ),
    ] {
        let answer = send_binary(&app, &with_size(size.clone()), &tensors).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{size}");
        for part in parts {
            assert!(
                answer.error().contains(part),
                "{size}: {:?} lacks {part:?}",
                answer.error()
            );
        }
    }
    // A size that does not match the shape: [1, 6] of FP64 is 48 bytes, not 24.
    let (h, t) = binary_matrix(&[SAMPLE_ROW], "FP32");
    let mut h = h;
    h["inputs"][0]["datatype"] = json!("FP64");
    let answer = send_binary(&app, &h, &t).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer
            .error()
            .contains("shape [1, 6] of FP64 takes 48 bytes, but its binary data has 24"),
        "{}",
        answer.error()
    );
    // Trailing bytes after the last tensor.
    let answer = send_binary(&app, &header, &[tensors[0].clone(), vec![0; 5]]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer
            .error()
            .contains("5 bytes of binary data after the last input's"),
        "{}",
        answer.error()
    );
    // A truncated tensor: the body ends 8 bytes early.
    let answer = send_binary(&app, &header, &[tensors[0][..40].to_vec()]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer
            .error()
            .contains("binary_data_size is 48 bytes, but only 40"),
        "{}",
        answer.error()
    );
    // Binary data without the header that says where the JSON ends.
    let answer = send(&app, &[], good.clone()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.error().contains("Malformed JSON"),
        "{}",
        answer.error()
    );
    let answer = send(&app, &[], header.to_string().into_bytes()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer
            .error()
            .contains("no Inference-Header-Content-Length"),
        "{}",
        answer.error()
    );
    // Data and binary at once.
    let mut both = header.clone();
    both["inputs"][0]["data"] = json!(SAMPLE_ROW);
    let answer = send_binary(&app, &both, &tensors).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer
            .error()
            .contains("both data and parameter \"binary_data_size\"")
    );
}

#[tokio::test]
async fn huge_shapes_cost_nothing_and_are_refused() {
    let app = default_app();
    for shape in [
        json!([u64::MAX, 6]),
        json!([1u64 << 62, 6]),
        json!([4_000_000_000u64, 6]),
    ] {
        let header = json!({"inputs": [{"name": "input-0", "shape": shape, "datatype": "FP64", "parameters": {"binary_data_size": 48}}]});
        let answer = send_binary(&app, &header, &[vec![0; 48]]).await;
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{shape}");
        assert!(
            answer.error().contains("Too many rows"),
            "{}",
            answer.error()
        );
    }
    // Per-feature tensors [N, 1] with a huge N, one of them binary.
    let (mut header, tensors) = binary_columns(&[SAMPLE_ROW], "FP64");
    for input in header["inputs"].as_array_mut().unwrap() {
        input["shape"] = json!([u64::MAX, 1]);
    }
    let answer = send_binary(&app, &header, &tensors).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
}

// ------------------------------------------------------------------ encodings

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn gzip_and_deflate_bodies_are_inflated_binary_included() {
    let app = default_app();
    let rows = [SAMPLE_ROW, BENIGN_ROW];
    let (header, tensors) = binary_matrix(&rows, "FP64");
    let (mut headers, body) = binary_body(&header, &tensors);
    let plain = send(&app, &headers, body.clone()).await;
    assert_eq!(plain.status, StatusCode::OK);
    for (name, encoded) in [("gzip", gzip(&body)), ("deflate", zlib(&body))] {
        headers.push(("content-encoding", name.to_string()));
        let answer = send(&app, &headers, encoded).await;
        headers.pop();
        assert_eq!(answer.status, StatusCode::OK, "{name}: {}", answer.json());
        assert_eq!(answer.outputs(), plain.outputs(), "{name}");
    }
    headers.push(("content-encoding", "gzip".to_string()));
    let answer = send(&app, &headers, body.clone()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.error().contains("not valid gzip data"),
        "{}",
        answer.error()
    );
    headers.pop();
    headers.push(("content-encoding", "br".to_string()));
    let answer = send(&app, &headers, body).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(answer.error().contains("\"br\""), "{}", answer.error());
}

#[tokio::test]
async fn a_body_that_inflates_past_the_limit_is_413() {
    let (_, app) = Setup {
        body_bytes: 64 * 1024,
        ..Setup::default()
    }
    .app();
    // 64 MiB of spaces after a valid request: about 64 KiB compressed, a thousand times the limit.
    let mut body = json!({"inputs": [{"name": "input-0", "shape": [1, 6], "datatype": "FP64", "data": SAMPLE_ROW}]}).to_string().into_bytes();
    body.resize(64 * 1024 * 1024, b' ');
    let bomb = gzip(&body);
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let answer = send(&app, &[("content-encoding", "gzip".to_string())], bomb).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer.error().contains("65536 bytes"), "{}", answer.error());
    // Within the limit once inflated: answered.
    body.truncate(60 * 1024);
    let answer = send(
        &app,
        &[("content-encoding", "gzip".to_string())],
        gzip(&body),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
}

#[tokio::test]
async fn answers_are_gzipped_when_the_client_accepts_it() {
    let app = default_app();
    let rows = bundled_feature_rows();
    let (mut header, tensors) = binary_matrix(&rows, "FP64");
    header["parameters"] = json!({"binary_data_output": true});
    let (mut headers, body) = binary_body(&header, &tensors);
    let plain = send(&app, &headers, body.clone()).await;
    assert!(plain.headers.get("content-encoding").is_none());
    headers.push(("accept-encoding", "gzip, deflate".to_string()));
    let mut zipped = send(&app, &headers, body).await;
    assert_eq!(zipped.status, StatusCode::OK);
    assert_eq!(zipped.headers["content-encoding"], "gzip");
    assert!(zipped.body.len() < plain.body.len() / 2);
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(&zipped.body[..])
        .read_to_end(&mut inflated)
        .unwrap();
    zipped.body = inflated;
    assert_eq!(zipped.outputs(), plain.outputs());
}

#[tokio::test]
async fn the_openapi_schema_requires_an_input() {
    let app = default_app();
    let (_, doc) = get(&app, "/openapi.json").await;
    let request = &doc["components"]["schemas"]["InferenceRequest"];
    assert_eq!(request["properties"]["inputs"]["minItems"], 1, "{request}");
    let answer = send(&app, &[], br#"{"inputs": []}"#.to_vec()).await;
    assert_eq!(
        answer.status,
        StatusCode::BAD_REQUEST,
        "the server refuses what the schema refuses"
    );
}

// ------------------------------------------------------------------ property tests

fn check(headers: Vec<(&'static str, String)>, body: Vec<u8>) -> Result<(), TestCaseError> {
    let answer = with_small_app(|app| async move { send(&app, &headers, body).await })?;
    prop_assert!(
        [
            StatusCode::OK,
            StatusCode::BAD_REQUEST,
            StatusCode::PAYLOAD_TOO_LARGE
        ]
        .contains(&answer.status),
        "unexpected {}",
        answer.status
    );
    if answer.status != StatusCode::OK {
        prop_assert!(!answer.error().is_empty());
    }
    Ok(())
}

/// A plausible header for binary data: every field the reader looks at, often near right.
fn binary_header() -> impl Strategy<Value = Value> {
    let name = prop::sample::select(vec!["input-0", "concavity_mean", "area_se", "x"]);
    let datatype = prop::sample::select(vec!["FP64", "FP32", "INT8", "UINT16", "INT64", "BYTES"]);
    let dim = prop_oneof![0u64..10, Just(6u64), any::<u64>()];
    let size = prop_oneof![
        (0u64..200).prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        Just(json!(null)),
        Just(json!("8")),
    ];
    let input = (name, datatype, prop::collection::vec(dim, 0..3), size).prop_map(
        |(name, datatype, shape, size)| {
            json!({"name": name, "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": size}})
        },
    );
    (prop::collection::vec(input, 0..8), any::<bool>()).prop_map(|(inputs, binary_out)| {
        json!({"inputs": inputs, "parameters": {"binary_data_output": binary_out}})
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_after_a_header(
        header in binary_header(),
        tail in prop::collection::vec(any::<u8>(), 0..256),
        length_shift in -3i64..3,
    ) {
        let mut body = header.to_string().into_bytes();
        let length = (body.len() as i64 + length_shift).max(0);
        body.extend_from_slice(&tail);
        check(vec![("inference-header-content-length", length.to_string())], body)?;
    }

    #[test]
    fn arbitrary_bytes_with_any_header_length(
        body in prop::collection::vec(any::<u8>(), 0..512),
        length in prop_oneof![0usize..600, Just(usize::MAX)],
    ) {
        check(vec![("inference-header-content-length", length.to_string())], body)?;
    }

    #[test]
    fn arbitrary_gzip_bodies(body in prop::collection::vec(any::<u8>(), 0..512), encode in any::<bool>()) {
        let body = if encode { gzip(&body) } else { body };
        check(vec![("content-encoding", "gzip".to_string())], body)?;
    }
}
