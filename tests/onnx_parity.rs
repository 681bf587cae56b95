//! Our ONNX evaluator against onnxruntime: every fixture under tests/fixtures/onnx (made by
//! scripts/onnx-fixtures with the converters' default options and with zipmap=False), every
//! row, in one batch and one row at a time. Labels must be equal; scores and values must agree
//! within |ours - onnxruntime| <= 1e-6 + 1e-5 x |onnxruntime|.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ml_serving::onnx::{Data, Labels, OnnxModel, Value};
use serde_json::Value as Json;

const ATOL: f64 = 1e-6;
const RTOL: f64 = 1e-5;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

fn read_json(path: &Path) -> Json {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn data_set(name: &str, cache: &mut HashMap<String, (usize, Vec<f32>)>) -> (usize, Vec<f32>) {
    cache
        .entry(name.to_owned())
        .or_insert_with(|| {
            let j = read_json(&dir().join(format!("data_{name}.json")));
            let width = j["width"].as_u64().unwrap() as usize;
            let rows: Vec<f32> = j["rows"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| {
                    r.as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().map_or(f32::NAN, |v| v as f32))
                })
                .collect();
            (width, rows)
        })
        .clone()
}

fn close(ours: f64, theirs: f64) -> bool {
    (ours - theirs).abs() <= ATOL + RTOL * theirs.abs() || (ours.is_nan() && theirs.is_nan())
}

/// Compares one output for rows `first..first + n` of the expected output; describes the first
/// difference.
fn compare(ours: &Value, expected: &Json, first: usize, n: usize) -> Result<(), String> {
    let values = expected["values"].as_array().unwrap();
    match expected["kind"].as_str().unwrap() {
        "maps" => {
            let Value::Maps(m) = ours else {
                return Err("expected a sequence of maps, got a tensor".into());
            };
            let keys: Vec<Json> = match &m.keys {
                Labels::I64(k) => k.iter().map(|&k| Json::from(k)).collect(),
                Labels::Str(k) => k.iter().map(|k| Json::from(k.as_str())).collect(),
            };
            if &keys != expected["keys"].as_array().unwrap() {
                return Err(format!("keys {keys:?} differ from {}", expected["keys"]));
            }
            let k = keys.len();
            for r in 0..n {
                let row = values[first + r].as_array().unwrap();
                for (c, want) in row.iter().enumerate() {
                    let (o, t) = (
                        f64::from(m.values[r * k + c]),
                        want.as_f64().unwrap_or(f64::NAN),
                    );
                    if !close(o, t) {
                        return Err(format!(
                            "row {}: score {c} is {o}, onnxruntime {t}",
                            first + r
                        ));
                    }
                }
            }
            Ok(())
        }
        _ => {
            let Value::Tensor(t) = ours else {
                return Err("expected a tensor, got maps".into());
            };
            let shape: Vec<usize> = expected["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let per_row = shape[1..].iter().product::<usize>();
            let mut want_shape = shape.clone();
            want_shape[0] = n;
            if t.shape != want_shape {
                return Err(format!("shape {:?}, onnxruntime {want_shape:?}", t.shape));
            }
            let want = &values[first * per_row..(first + n) * per_row];
            for (i, w) in want.iter().enumerate() {
                let row = first + i / per_row.max(1);
                let ok = match &t.data {
                    Data::I64(v) => w.as_i64() == Some(v[i]),
                    Data::Str(v) => w.as_str() == Some(v[i].as_str()),
                    Data::F32(v) => close(f64::from(v[i]), w.as_f64().unwrap_or(f64::NAN)),
                    Data::F64(v) => close(v[i], w.as_f64().unwrap_or(f64::NAN)),
                    other => {
                        return Err(format!("unexpected element type {:?}", other.elem_type()));
                    }
                };
                if !ok {
                    let got = match &t.data {
                        Data::I64(v) => v[i].to_string(),
                        Data::Str(v) => v[i].clone(),
                        Data::F32(v) => v[i].to_string(),
                        Data::F64(v) => v[i].to_string(),
                        _ => unreachable!(),
                    };
                    return Err(format!(
                        "row {row}: element {} is {got}, onnxruntime {w}",
                        i % per_row.max(1)
                    ));
                }
            }
            Ok(())
        }
    }
}

#[test]
fn every_fixture_matches_onnxruntime_on_every_row() {
    let mut cache = HashMap::new();
    let mut expected_files: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".ort.json"))
        .collect();
    expected_files.sort();
    assert!(
        expected_files.len() >= 79,
        "only {} fixtures found",
        expected_files.len()
    );
    let mut failures = Vec::new();
    let mut passed = 0;
    for file in &expected_files {
        let name = file
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".ort.json")
            .to_owned();
        let model = OnnxModel::load(&dir().join(format!("{name}.onnx")));
        let model = match model {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: load failed: {e}"));
                continue;
            }
        };
        let expected = read_json(file);
        let (width, rows) = data_set(expected["data"].as_str().unwrap(), &mut cache);
        assert_eq!(model.input().width, width, "{name}");
        let n = rows.len() / width;
        let outputs = expected["outputs"].as_array().unwrap();
        assert_eq!(model.outputs().len(), outputs.len(), "{name}");
        let mut ok = true;
        // The whole data set in one batch.
        match model.predict_f32(&rows, n) {
            Ok(out) => {
                for (o, (ours, want)) in out.values.iter().zip(outputs).enumerate() {
                    if let Err(e) = compare(ours, want, 0, n) {
                        failures.push(format!("{name} (batch) output {o} {}: {e}", want["name"]));
                        ok = false;
                    }
                }
            }
            Err(e) => {
                failures.push(format!("{name} (batch): {e}"));
                ok = false;
            }
        }
        // One row at a time, as a server answers.
        'rows: for r in 0..n {
            let out = match model.predict_f32(&rows[r * width..(r + 1) * width], 1) {
                Ok(out) => out,
                Err(e) => {
                    failures.push(format!("{name} (row {r}): {e}"));
                    ok = false;
                    break;
                }
            };
            for (o, (ours, want)) in out.values.iter().zip(outputs).enumerate() {
                if let Err(e) = compare(ours, want, r, 1) {
                    failures.push(format!("{name} (one row) output {o} {}: {e}", want["name"]));
                    ok = false;
                    break 'rows;
                }
            }
        }
        if ok {
            passed += 1;
        }
    }
    println!("{passed} fixtures agree with onnxruntime on every row");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
