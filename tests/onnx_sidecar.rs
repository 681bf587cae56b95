//! The sidecar next to an ONNX model (`model.json` beside `model.onnx`): parsed strictly and
//! checked against the model at load, so that an export disagreeing with scikit-learn on the
//! sample rows (skl2onnx's hard-voting ensemble) is refused.

use std::path::{Path, PathBuf};

use ml_serving::onnx::{OnnxModel, Sidecar, SidecarError};
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/onnx/{name}"))
}

/// Copies `<model>.onnx` into a temporary folder with `sidecar` written beside it.
fn with_sidecar(model: &str, sidecar: &Value) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    std::fs::copy(fixture(&format!("{model}.onnx")), &path).unwrap();
    std::fs::write(
        dir.path().join("model.json"),
        serde_json::to_vec(sidecar).unwrap(),
    )
    .unwrap();
    (dir, path)
}

fn sidecar_json(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture(&format!("{name}.json"))).unwrap()).unwrap()
}

#[test]
fn a_sidecar_with_scikit_learns_answers_is_accepted() {
    let (model, sidecar) = OnnxModel::load_with_sidecar(&fixture("logreg_cancer.onnx")).unwrap();
    let sidecar = sidecar.expect("the fixture has a sidecar");
    assert_eq!(sidecar.name.as_deref(), Some("logreg-cancer"));
    assert_eq!(sidecar.feature_names.len(), model.input().width);
    assert_eq!(sidecar.feature_names[0], "mean radius");
    assert!(sidecar.samples.len() >= 20);

    let (_, sidecar) = OnnxModel::load_with_sidecar(&fixture("linreg_diabetes.onnx")).unwrap();
    assert!(sidecar.unwrap().samples.iter().all(|s| s.value.is_some()));
}

#[test]
fn a_model_without_a_sidecar_loads_without_one() {
    let (_, sidecar) = OnnxModel::load_with_sidecar(&fixture("tree_cancer.onnx")).unwrap();
    assert!(sidecar.is_none());
}

#[test]
fn the_hard_voting_export_that_disagrees_with_scikit_learn_is_refused() {
    // The first five samples agree; the others are the rows where onnxruntime's answer differs.
    let err = OnnxModel::load_with_sidecar(&fixture("voting_cancer.onnx")).unwrap_err();
    let SidecarError::Mismatch { sample, .. } = err else {
        panic!("{err:?}");
    };
    assert_eq!(sample, 5, "{err}");
}

#[test]
fn a_wrong_label_is_reported_with_its_sample() {
    let mut s = sidecar_json("logreg_cancer");
    let label = s["samples"][3]["label"].as_i64().unwrap();
    s["samples"][3]["label"] = json!(1 - label);
    let (_dir, path) = with_sidecar("logreg_cancer", &s);
    let err = OnnxModel::load_with_sidecar(&path).unwrap_err();
    assert!(
        matches!(err, SidecarError::Mismatch { sample: 3, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("sample 3"));

    let mut s = sidecar_json("linreg_diabetes");
    s["samples"][0]["value"] = json!(s["samples"][0]["value"].as_f64().unwrap() + 1.0);
    let (_dir, path) = with_sidecar("linreg_diabetes", &s);
    assert!(matches!(
        OnnxModel::load_with_sidecar(&path),
        Err(SidecarError::Mismatch { sample: 0, .. })
    ));
}

#[test]
fn bad_sidecars_are_refused_with_the_field() {
    let base = sidecar_json("logreg_cancer");
    let cases: Vec<(Value, &str)> = vec![
        (json!({"name": "x", "colour": "blue"}), "unknown field"),
        (json!({"name": "has space"}), "name"),
        (json!({"version": ""}), "version"),
        (json!({"feature_names": ["a", "a"]}), "repeated"),
        (json!({"class_labels": [0, 0]}), "repeated"),
        (
            json!({"samples": [{"features": [1.0], "label": 1, "value": 2.0}]}),
            "exactly one",
        ),
        (json!({"samples": [{"features": [1.0]}]}), "exactly one"),
        (json!([1, 2]), "invalid type"),
    ];
    for (doc, needle) in cases {
        let err = Sidecar::parse(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
        assert!(err.to_string().contains(needle), "{doc}: {err}");
    }
    let model = OnnxModel::load(&fixture("logreg_cancer.onnx")).unwrap();
    let mut short = base.clone();
    short["feature_names"] = json!(["only", "two"]);
    let err = Sidecar::parse(&serde_json::to_vec(&short).unwrap())
        .unwrap()
        .check(&model)
        .unwrap_err();
    assert!(
        err.to_string().contains("feature_names has 2 names"),
        "{err}"
    );
    let mut labels = base.clone();
    labels["class_labels"] = json!([0, 1, 2]);
    let err = Sidecar::parse(&serde_json::to_vec(&labels).unwrap())
        .unwrap()
        .check(&model)
        .unwrap_err();
    assert!(err.to_string().contains("3 labels"), "{err}");
    let mut width = base;
    width["samples"][0]["features"] = json!([1.0]);
    let err = Sidecar::parse(&serde_json::to_vec(&width).unwrap())
        .unwrap()
        .check(&model)
        .unwrap_err();
    assert!(err.to_string().contains("samples[0].features"), "{err}");
}

#[test]
fn an_oversized_sidecar_is_refused_unread() {
    let big = vec![b' '; ml_serving::onnx::sidecar::MAX_SIDECAR_BYTES as usize + 1];
    assert!(matches!(
        Sidecar::parse(&big),
        Err(SidecarError::TooLarge { .. })
    ));
}
