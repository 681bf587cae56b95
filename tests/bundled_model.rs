//! The committed model, `model/model_binary.dat.gz`: it loads, it calls the tutorial's sample
//! malignant, and it is exactly what the current code trains (so it never drifts from it).

use std::path::{Path, PathBuf};

use ml_serving::artifact::{DEFAULT_MODEL_PATH, LoadedModel, ModelArtifact};
use ml_serving::dataset::DEFAULT_FEATURES;
use ml_serving::train::{TrainArgs, train};

const RETRAIN: &str = "the committed model is stale: run `cargo run --release -- train` and commit model/model_binary.dat.gz";

fn committed_model_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODEL_PATH)
}

fn committed_model() -> LoadedModel {
    LoadedModel::load(&committed_model_path()).unwrap_or_else(|e| panic!("{e}\n{RETRAIN}"))
}

/// The tutorial's sample, in the tutorial's feature order.
const SAMPLE: [(&str, f64); 6] = [
    ("concavity_mean", 0.3001),
    ("concave_points_mean", 0.1471),
    ("perimeter_se", 8.589),
    ("area_se", 153.4),
    ("texture_worst", 17.33),
    ("area_worst", 2019.0),
];

#[test]
fn the_committed_model_loads_with_the_tutorials_features_and_name() {
    let model = committed_model();
    let a = &model.artifact;
    assert_eq!(a.name, "breast_model");
    assert_eq!(a.feature_names, DEFAULT_FEATURES);
    assert_eq!(a.feature_names, SAMPLE.map(|(name, _)| name));
    assert_eq!(
        (a.labels.negative.as_str(), a.labels.positive.as_str()),
        ("B", "M")
    );
    assert_eq!(a.sample, SAMPLE.map(|(_, v)| v));
    assert!(a.metrics.accuracy >= 0.93, "{}", a.metrics.accuracy);
}

#[test]
fn the_committed_model_calls_the_tutorials_sample_malignant() {
    let model = committed_model();
    let row = ndarray::Array2::from_shape_vec((1, 6), SAMPLE.map(|(_, v)| v).to_vec()).unwrap();
    let votes = model.artifact.pipeline.votes(row.view()).unwrap();
    assert!(
        votes[0].majority(),
        "the sample is predicted benign ({:?})",
        votes[0]
    );
    let prediction = model.artifact.pipeline.predict(row.view()).unwrap();
    assert_eq!(prediction, [true]);
    assert_eq!(model.artifact.labels.name(prediction[0]), "M");
}

#[test]
fn the_committed_model_is_what_the_code_trains() {
    let model = committed_model();
    let (mut fresh, _) = train(&TrainArgs {
        data: Path::new(env!("CARGO_MANIFEST_DIR")).join("data/breast_cancer.csv"),
        ..TrainArgs::default()
    })
    .expect("training with the default arguments");
    fresh.created_at = model.artifact.created_at.clone();
    let committed = std::fs::read(committed_model_path()).unwrap();
    if committed != fresh.to_bytes() {
        panic!("{RETRAIN}\n{}", first_difference(&model.artifact, &fresh));
    }
}

/// The first top-level field (or pipeline part) where two artifacts differ, for the message.
fn first_difference(committed: &ModelArtifact, fresh: &ModelArtifact) -> String {
    let a = serde_json::to_value(committed).unwrap();
    let b = serde_json::to_value(fresh).unwrap();
    let (a, b) = (a.as_object().unwrap(), b.as_object().unwrap());
    for (key, va) in a {
        let vb = &b[key];
        if va != vb {
            if let (Some(pa), Some(pb)) = (va.as_object(), vb.as_object()) {
                for (k, x) in pa {
                    if pb.get(k) != Some(x) {
                        return format!("first difference: {key}.{k}");
                    }
                }
            }
            let show = |v: &serde_json::Value| {
                let s = v.to_string();
                if s.len() > 200 {
                    format!("{}...", &s[..200])
                } else {
                    s
                }
            };
            return format!(
                "first difference: {key}: committed {} vs fresh {}",
                show(va),
                show(vb)
            );
        }
    }
    "the JSON is equal but the bytes differ (compression?)".to_string()
}
