//! Integration tests of the training library: the bundled data, training quality, determinism,
//! saving and loading the artifact, and the errors for bad CSVs and bad artifacts.

mod cli_common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cli_common::{bundled_csv, bundled_text, entries, with_cell};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use ml_serving::artifact::{ArtifactError, ArtifactProblem, LoadedModel, ModelArtifact};
use ml_serving::dataset::{self, DEFAULT_FEATURES, DatasetError};
use ml_serving::train::{TrainArgs, TrainReport, train};
use proptest::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The default training, reading the bundled data by absolute path (the artifact records only
/// the file name, so this is the same artifact as `ml-serving train` makes).
fn default_args() -> TrainArgs {
    TrainArgs {
        data: bundled_csv(),
        ..TrainArgs::default()
    }
}

fn train_default() -> (ModelArtifact, TrainReport) {
    train(&default_args()).expect("training on the bundled data")
}

/// The bundled data as the library reads it, with the default features.
fn bundled_labeled() -> dataset::LabeledData {
    dataset::load_labeled(
        &bundled_csv(),
        &dataset::default_features(),
        "diagnosis",
        "M",
    )
    .expect("reading the bundled data")
}

// ---------------------------------------------------------------------------------------------
// 1. The bundled data
// ---------------------------------------------------------------------------------------------

/// The ten measurements and three statistics named in data/README.md, in the file's order.
const MEASUREMENTS: [&str; 10] = [
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave_points",
    "symmetry",
    "fractal_dimension",
];
const STATISTICS: [&str; 3] = ["mean", "se", "worst"];

fn read_bundled_records() -> (csv::StringRecord, Vec<csv::StringRecord>) {
    let mut reader = csv::Reader::from_path(bundled_csv()).expect("opening the bundled CSV");
    let header = reader.headers().expect("a header row").clone();
    let rows = reader
        .records()
        .collect::<Result<Vec<_>, _>>()
        .expect("every row is valid CSV");
    (header, rows)
}

#[test]
fn bundled_data_has_the_documented_columns() {
    let (header, _) = read_bundled_records();
    let mut expected = vec!["id".to_string(), "diagnosis".to_string()];
    for stat in STATISTICS {
        for m in MEASUREMENTS {
            expected.push(format!("{m}_{stat}"));
        }
    }
    let got: Vec<&str> = header.iter().collect();
    assert_eq!(got.len(), 32);
    assert_eq!(got, expected);

    // The README names each measurement and statistic the way the header spells it.
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/README.md"))
            .expect("data/README.md");
    for m in MEASUREMENTS {
        assert!(
            readme.contains(&format!("`{m}`")),
            "data/README.md does not name `{m}`"
        );
    }
    for stat in STATISTICS {
        assert!(
            readme.contains(&format!("`{stat}`")),
            "data/README.md does not name `{stat}`"
        );
    }
    for example in [
        "radius_mean",
        "concave_points_se",
        "fractal_dimension_worst",
    ] {
        assert!(
            header.iter().any(|h| h == example),
            "{example} is not a column"
        );
    }
}

#[test]
fn bundled_data_has_569_rows_357_benign_212_malignant_and_ids_1_to_569() {
    let (header, rows) = read_bundled_records();
    assert_eq!(rows.len(), 569);
    let diagnosis = header.iter().position(|h| h == "diagnosis").unwrap();
    let count = |class: &str| rows.iter().filter(|r| &r[diagnosis] == class).count();
    assert_eq!((count("B"), count("M")), (357, 212));
    let ids: Vec<u64> = rows
        .iter()
        .map(|r| r[0].parse().expect("numeric id"))
        .collect();
    assert_eq!(ids, (1..=569).collect::<Vec<u64>>());
    // Every feature cell is a finite number.
    for (i, row) in rows.iter().enumerate() {
        for (name, cell) in header.iter().zip(row.iter()).skip(2) {
            let v: f64 = cell
                .parse()
                .unwrap_or_else(|_| panic!("row {}: {name} = {cell:?} is not a number", i + 1));
            assert!(v.is_finite(), "row {}: {name} = {v}", i + 1);
        }
    }

    // The library reads the same rows and classes.
    let data = bundled_labeled();
    assert_eq!(data.features.nrows(), 569);
    assert_eq!(data.targets.iter().filter(|&&t| t).count(), 212);
    assert_eq!(data.classes, ["B".to_string(), "M".to_string()]);
}

#[test]
fn bundled_data_first_row_is_the_tutorials_sample() {
    let (header, rows) = read_bundled_records();
    let first = &rows[0];
    let cell = |name: &str| -> &str {
        let i = header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name}"));
        &first[i]
    };
    assert_eq!(cell("id"), "1");
    assert_eq!(cell("diagnosis"), "M");
    assert_eq!(cell("radius_mean").parse::<f64>().unwrap(), 17.99);
    assert_eq!(cell("concavity_mean").parse::<f64>().unwrap(), 0.3001);
    assert_eq!(cell("area_worst").parse::<f64>().unwrap(), 2019.0);

    let data = bundled_labeled();
    assert!(data.targets[0], "the first row is malignant");
    assert_eq!(
        data.features.row(0).to_vec(),
        vec![0.3001, 0.1471, 8.589, 153.4, 17.33, 2019.0]
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Training on the bundled data
// ---------------------------------------------------------------------------------------------

#[test]
fn training_on_bundled_data_reaches_the_tutorials_accuracy() {
    let (artifact, report) = train_default();
    let m = &report.metrics;
    assert!(
        m.accuracy >= 0.93,
        "held-out accuracy {} < 0.93",
        m.accuracy
    );
    for (model, acc) in [
        ("logistic regression", m.logistic_accuracy),
        ("decision tree", m.tree_accuracy),
        ("SVM", m.svm_accuracy),
    ] {
        assert!(
            acc >= 0.85,
            "{model} alone has held-out accuracy {acc} < 0.85"
        );
    }
    assert_eq!((report.train_rows, report.test_rows), (455, 114));
    assert_eq!(
        (artifact.training.train_rows, artifact.training.test_rows),
        (455, 114)
    );
    assert_eq!(artifact.metrics, report.metrics);
    assert_eq!(artifact.feature_names, DEFAULT_FEATURES);
    assert_eq!(
        (
            artifact.labels.negative.as_str(),
            artifact.labels.positive.as_str()
        ),
        ("B", "M")
    );
    assert!(report.svm_gamma.is_finite() && report.svm_gamma > 0.0);
}

#[test]
fn held_out_metrics_agree_with_the_confusion_matrix() {
    let (_, report) = train_default();
    let m = &report.metrics;
    let c = &m.confusion;
    let (tp, fp, tn, fn_) = (
        c.true_positive as f64,
        c.false_positive as f64,
        c.true_negative as f64,
        c.false_negative as f64,
    );
    assert_eq!(
        c.true_positive + c.false_positive + c.true_negative + c.false_negative,
        114
    );
    assert_eq!(m.rows, 114);
    let close = |a: f64, b: f64, what: &str| assert!((a - b).abs() < 1e-12, "{what}: {a} != {b}");
    close(m.accuracy, (tp + tn) / 114.0, "accuracy");
    close(m.precision, tp / (tp + fp), "precision");
    close(m.recall, tp / (tp + fn_), "recall");
    close(m.f1, 2.0 * tp / (2.0 * tp + fp + fn_), "f1");
    // The held-out rows are a sample of the data: both classes occur, in plausible numbers.
    let positives = c.true_positive + c.false_negative;
    assert!(
        (20..=70).contains(&positives),
        "{positives} malignant rows of 114 held out"
    );
}

#[test]
fn imputer_and_scaler_are_learned_from_the_training_rows_only() {
    let (artifact, _) = train_default();
    let data = bundled_labeled();
    let p = &artifact.pipeline;
    for (j, name) in DEFAULT_FEATURES.iter().enumerate() {
        let column = data.features.column(j);
        let full_mean = column.sum() / column.len() as f64;
        let full_min = column.iter().copied().fold(f64::INFINITY, f64::min);
        let full_max = column.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_ne!(
            p.imputer.means[j], full_mean,
            "{name}: the mean is that of all 569 rows"
        );
        assert!(
            full_min <= p.scaler.min[j] && p.scaler.max[j] <= full_max,
            "{name}"
        );
        assert!(p.scaler.min[j] < p.imputer.means[j] && p.imputer.means[j] < p.scaler.max[j]);
        // The range is that of some of the data's values.
        assert!(
            column.iter().any(|&v| v == p.scaler.min[j]),
            "{name}: min is not a data value"
        );
        assert!(
            column.iter().any(|&v| v == p.scaler.max[j]),
            "{name}: max is not a data value"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Determinism
// ---------------------------------------------------------------------------------------------

#[test]
fn same_inputs_and_seed_give_the_same_artifact_byte_for_byte() {
    let (mut a, _) = train_default();
    let (mut b, _) = train_default();
    a.created_at = "2000-01-01T00:00:00Z".to_string();
    b.created_at = a.created_at.clone();
    assert!(
        a.to_bytes() == b.to_bytes(),
        "two trainings with the same args differ"
    );
}

#[test]
fn a_different_seed_gives_a_different_split() {
    let (a, _) = train_default();
    let (b, _) = train(&TrainArgs {
        seed: 7,
        ..default_args()
    })
    .unwrap();
    assert_eq!(b.training.seed, 7);
    assert_eq!(b.training.test_rows, 114);
    // A different training set has different column means (and so a different pipeline).
    assert_ne!(a.pipeline.imputer.means, b.pipeline.imputer.means);
    assert_ne!(a.pipeline, b.pipeline);
}

// ---------------------------------------------------------------------------------------------
// 4. Save and load
// ---------------------------------------------------------------------------------------------

#[test]
fn save_then_load_gives_identical_predictions_on_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models/model.dat.gz");
    let (artifact, _) = train_default();
    let data = bundled_labeled();
    let before = artifact.pipeline.predict(data.features.view()).unwrap();
    assert_eq!(before.len(), 569);

    artifact.save(&path).expect("saving into a new directory");
    let loaded = LoadedModel::load(&path).expect("loading what was saved");
    assert_eq!(loaded.artifact, artifact);
    assert_eq!(loaded.width(), 6);
    let after = loaded
        .artifact
        .pipeline
        .predict(data.features.view())
        .unwrap();
    assert_eq!(before, after);
    // The predictions are mostly right, so the comparison above compares something real.
    let right = after
        .iter()
        .zip(&data.targets)
        .filter(|(p, t)| p == t)
        .count();
    assert!(right as f64 / 569.0 >= 0.93, "{right} of 569 right");

    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(loaded.sha256, hex::encode(Sha256::digest(&bytes)));
    assert_eq!(bytes, artifact.to_bytes());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "artifact mode is {mode:o}");
    assert_eq!(entries(&dir.path().join("models")), ["model.dat.gz"]);
}

#[test]
fn the_short_cut_vote_equals_the_full_vote_on_every_row() {
    // `predict` asks the SVM only where logistic regression and the tree disagree.
    let (artifact, _) = train_default();
    let data = bundled_labeled();
    let votes = artifact.pipeline.votes(data.features.view()).unwrap();
    let full: Vec<bool> = votes.iter().map(|v| v.majority()).collect();
    assert_eq!(
        artifact.pipeline.predict(data.features.view()).unwrap(),
        full
    );
    let split = votes.iter().filter(|v| v.logistic != v.tree).count();
    assert!(
        split > 0,
        "some rows must need the SVM, or this test shows nothing"
    );
}

#[test]
fn a_failed_save_leaves_the_old_file_and_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("model.dat.gz");
    let (artifact, _) = train_default();
    artifact.save(&good).unwrap();
    let good_bytes = std::fs::read(&good).unwrap();

    // The parent of the target is a regular file (the good model): the save must fail.
    let (mut other, _) = train(&TrainArgs {
        seed: 7,
        ..default_args()
    })
    .unwrap();
    other.name = "other".to_string();
    let err = other.save(&good.join("model.dat.gz")).unwrap_err();
    assert!(err.to_string().contains("model.dat.gz"), "{err}");
    assert_eq!(std::fs::read(&good).unwrap(), good_bytes);
    assert_eq!(entries(dir.path()), ["model.dat.gz"]);

    // The target is a directory: the temporary file is written, the rename fails, and the
    // temporary file must be removed.
    let blocked = dir.path().join("blocked.dat.gz");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("keep"), b"x").unwrap();
    other.save(&blocked).unwrap_err();
    assert_eq!(entries(dir.path()), ["blocked.dat.gz", "model.dat.gz"]);
    assert_eq!(entries(&blocked), ["keep"]);

    // A successful save replaces the old file.
    other.save(&good).unwrap();
    assert_eq!(LoadedModel::load(&good).unwrap().artifact.name, "other");
    assert_eq!(entries(dir.path()), ["blocked.dat.gz", "model.dat.gz"]);
}

// ---------------------------------------------------------------------------------------------
// 5. Bad CSVs
// ---------------------------------------------------------------------------------------------

fn bundled_with_cell(row: usize, column: &str, value: &str) -> String {
    with_cell(&bundled_text(), row, column, value)
}

/// Trains on `csv` (written to a temp file) with `edit` applied to the default args; returns
/// the error's full message.
fn train_error(csv: &str, edit: impl FnOnce(&mut TrainArgs)) -> (String, anyhow::Error) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, csv).unwrap();
    let mut args = TrainArgs {
        data: path.clone(),
        out: dir.path().join("model.dat.gz"),
        ..TrainArgs::default()
    };
    edit(&mut args);
    let err = match train(&args) {
        Ok(_) => panic!("training on {csv:.200?} succeeded"),
        Err(e) => e,
    };
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&path.display().to_string()),
        "the message does not name the file: {msg}"
    );
    (msg, err)
}

fn dataset_error(err: &anyhow::Error) -> &DatasetError {
    err.downcast_ref::<DatasetError>()
        .unwrap_or_else(|| panic!("not a DatasetError: {err:#}"))
}

#[test]
fn an_empty_csv_is_an_error() {
    let (msg, err) = train_error("", |_| {});
    assert!(
        matches!(dataset_error(&err), DatasetError::NoHeader { .. }),
        "{msg}"
    );
    assert!(msg.contains("empty"), "{msg}");
}

#[test]
fn a_csv_with_only_a_header_is_an_error() {
    let text = bundled_text();
    let header = text.lines().next().unwrap();
    let (msg, err) = train_error(&format!("{header}\n"), |_| {});
    assert!(
        matches!(dataset_error(&err), DatasetError::NoRows { .. }),
        "{msg}"
    );
    assert!(msg.contains("no data rows"), "{msg}");
}

#[test]
fn a_missing_feature_column_is_named() {
    let (msg, err) = train_error(&bundled_text(), |a| {
        a.features.push("no_such_column".to_string());
    });
    assert!(
        matches!(dataset_error(&err), DatasetError::MissingColumn { .. }),
        "{msg}"
    );
    assert!(msg.contains("no column named \"no_such_column\""), "{msg}");
}

#[test]
fn a_missing_target_column_is_named() {
    let (msg, _) = train_error(&bundled_text(), |a| {
        a.target = "outcome".to_string();
    });
    assert!(msg.contains("no column named \"outcome\""), "{msg}");
}

#[test]
fn a_non_numeric_cell_is_reported_by_line_and_column() {
    // Data row 9 is line 11 of the file (line 1 is the header).
    let (msg, err) = train_error(&bundled_with_cell(9, "area_se", "12,5x"), |_| {});
    // "12,5x" splits into two cells, so the row has too many fields: a CSV error on line 11.
    assert!(msg.contains("line 11"), "{msg}");
    assert!(
        matches!(dataset_error(&err), DatasetError::Csv { line: 11, .. }),
        "{msg}"
    );

    let (msg, err) = train_error(&bundled_with_cell(9, "area_se", "twelve"), |_| {});
    assert!(
        matches!(
            dataset_error(&err),
            DatasetError::NotNumeric { line: 11, .. }
        ),
        "{msg}"
    );
    assert!(msg.contains("line 11"), "{msg}");
    assert!(msg.contains("column \"area_se\""), "{msg}");
    assert!(msg.contains("\"twelve\" is not a number"), "{msg}");
}

#[test]
fn a_non_numeric_cell_in_an_unused_column_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.csv");
    std::fs::write(&path, bundled_with_cell(3, "radius_mean", "n/a")).unwrap();
    train(&TrainArgs {
        data: path,
        ..default_args()
    })
    .expect("radius_mean is not a model feature");
}

#[test]
fn a_single_class_is_an_error() {
    let text = bundled_text();
    let only_m: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, l)| *i == 0 || l.split(',').nth(1) == Some("M"))
        .map(|(_, l)| l)
        .collect();
    assert_eq!(only_m.len(), 213);
    let (msg, err) = train_error(&(only_m.join("\n") + "\n"), |_| {});
    assert!(
        matches!(dataset_error(&err), DatasetError::ClassCount { .. }),
        "{msg}"
    );
    assert!(msg.contains("exactly two classes"), "{msg}");
    assert!(msg.contains("[\"M\"]"), "{msg}");
}

#[test]
fn an_unknown_positive_class_is_an_error() {
    let (msg, err) = train_error(&bundled_text(), |a| {
        a.positive = "malignant".to_string();
    });
    assert!(
        matches!(
            dataset_error(&err),
            DatasetError::PositiveClassAbsent { .. }
        ),
        "{msg}"
    );
    assert!(msg.contains("\"malignant\" never occurs"), "{msg}");
}

#[test]
fn too_few_rows_for_the_split_is_an_error() {
    let text = bundled_text();
    let lines: Vec<&str> = text.lines().collect();
    // Line 1 is M, the first B is further down: one row of each class.
    let first_b = lines
        .iter()
        .position(|l| l.split(',').nth(1) == Some("B"))
        .unwrap();
    let csv = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[first_b]);
    let (msg, _) = train_error(&csv, |_| {});
    assert!(msg.contains("2 rows are too few"), "{msg}");
}

#[test]
fn a_test_fraction_outside_zero_and_one_is_an_error() {
    for fraction in [0.0, 1.0, -0.5, f64::NAN] {
        let err = train(&TrainArgs {
            test_fraction: fraction,
            ..default_args()
        })
        .unwrap_err();
        assert!(err.to_string().contains("--test-fraction"), "{err}");
    }
}

#[test]
fn missing_cells_are_imputed_not_errors() {
    let mut text = bundled_with_cell(0, "area_se", "");
    for (row, column, value) in [
        (1, "concavity_mean", "NaN"),
        (2, "texture_worst", "nan"),
        (3, "area_worst", "NA"),
        (4, "perimeter_se", " "),
    ] {
        text = with_cell(&text, row, column, value);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("holes.csv");
    std::fs::write(&path, &text).unwrap();
    let (artifact, report) = train(&TrainArgs {
        data: path.clone(),
        ..default_args()
    })
    .expect("missing cells are imputed");
    assert!(report.metrics.accuracy >= 0.9);
    let data =
        dataset::load_labeled(&path, &dataset::default_features(), "diagnosis", "M").unwrap();
    assert!(data.features[[0, 3]].is_nan());
    assert!(data.features[[1, 0]].is_nan());
    // The stored sample (the first row) has its missing area_se replaced by the learned mean.
    assert_eq!(artifact.sample[3], artifact.pipeline.imputer.means[3]);
    assert!(artifact.sample.iter().all(|v| v.is_finite()));
    // Rows with missing cells still predict.
    let predictions = artifact.pipeline.predict(data.features.view()).unwrap();
    assert_eq!(predictions.len(), 569);
}

// ---------------------------------------------------------------------------------------------
// 6. Bad artifacts
// ---------------------------------------------------------------------------------------------

fn real_artifact_bytes() -> Vec<u8> {
    train_default().0.to_bytes()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn real_artifact_json() -> Value {
    serde_json::from_slice(&gunzip(&real_artifact_bytes())).unwrap()
}

fn edited(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut json = real_artifact_json();
    edit(&mut json);
    gzip(&serde_json::to_vec(&json).unwrap())
}

/// Writes `bytes` to a file, loads it, and returns the error (which must name the file).
fn load_error(bytes: &[u8]) -> (String, ArtifactError) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.dat.gz");
    std::fs::write(&path, bytes).unwrap();
    let err = LoadedModel::load(&path).expect_err("a bad artifact loaded");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "the message does not name the file: {msg}"
    );
    assert_eq!(err.path, path);
    (msg, err)
}

#[test]
fn the_unedited_round_trip_loads() {
    // The helpers below change one thing each; without a change the artifact is good.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.dat.gz");
    std::fs::write(&path, edited(|_| {})).unwrap();
    LoadedModel::load(&path).expect("a re-compressed real artifact loads");
}

#[test]
fn a_missing_artifact_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.dat.gz");
    let err = LoadedModel::load(&path).unwrap_err();
    assert!(matches!(err.problem, ArtifactProblem::NotFound));
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("no such file"),
        "{msg}"
    );
}

#[test]
fn random_bytes_are_not_an_artifact() {
    let bytes: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (msg, err) = load_error(&bytes);
    assert!(matches!(err.problem, ArtifactProblem::NotOurs(_)), "{msg}");
    assert!(
        msg.contains("not an ml-serving model") && msg.contains("not gzip"),
        "{msg}"
    );
}

#[test]
fn gzip_of_something_else_is_not_an_artifact() {
    let (msg, err) = load_error(&gzip(b"id,diagnosis\n1,M\n"));
    assert!(matches!(err.problem, ArtifactProblem::NotOurs(_)), "{msg}");
    assert!(
        msg.contains("not an ml-serving model") && msg.contains("JSON"),
        "{msg}"
    );
}

#[test]
fn another_format_name_is_not_an_artifact() {
    let (msg, err) = load_error(&edited(|j| j["format"] = "sklearn-pickle".into()));
    assert!(matches!(err.problem, ArtifactProblem::NotOurs(_)), "{msg}");
    assert!(msg.contains("\"sklearn-pickle\""), "{msg}");

    let (msg, _) = load_error(&edited(|j| {
        j.as_object_mut().unwrap().remove("format");
    }));
    assert!(msg.contains("no format name"), "{msg}");
}

#[test]
fn format_version_2_is_refused_by_number() {
    let (msg, err) = load_error(&edited(|j| j["format_version"] = 2.into()));
    assert!(
        matches!(
            err.problem,
            ArtifactProblem::UnsupportedFormat {
                found: 2,
                expected: 1
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("format version 2 is not supported"), "{msg}");
}

#[test]
fn a_truncated_artifact_is_corrupt() {
    let bytes = real_artifact_bytes();
    let (msg, err) = load_error(&bytes[..bytes.len() / 2]);
    assert!(matches!(err.problem, ArtifactProblem::Corrupt(_)), "{msg}");
    assert!(msg.contains("corrupt or truncated"), "{msg}");
}

#[test]
fn a_flipped_byte_is_corrupt() {
    let mut bytes = real_artifact_bytes();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    let (msg, err) = load_error(&bytes);
    assert!(matches!(err.problem, ArtifactProblem::Corrupt(_)), "{msg}");
    assert!(msg.contains("corrupt"), "{msg}");
}

#[test]
fn five_feature_names_for_a_six_wide_model_are_inconsistent() {
    let (msg, err) = load_error(&edited(|j| {
        j["feature_names"].as_array_mut().unwrap().pop();
    }));
    assert!(
        matches!(err.problem, ArtifactProblem::Inconsistent(_)),
        "{msg}"
    );
    assert!(
        msg.contains("inconsistent model") && msg.contains("5 feature names"),
        "{msg}"
    );
}

/// One change to an artifact's JSON.
type Edit = Box<dyn FnOnce(&mut Value)>;

#[test]
fn other_inconsistencies_are_errors_not_panics() {
    let cases: Vec<(&str, Edit)> = vec![
        (
            "listed twice",
            Box::new(|j: &mut Value| j["feature_names"][1] = j["feature_names"][0].clone()),
        ),
        (
            "sample row has 5",
            Box::new(|j: &mut Value| {
                j["sample"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "scaler's maximum has 7",
            Box::new(|j: &mut Value| {
                j["pipeline"]["scaler"]["max"]
                    .as_array_mut()
                    .unwrap()
                    .push(1.0.into());
            }),
        ),
        (
            "same label",
            Box::new(|j: &mut Value| j["labels"]["negative"] = "M".into()),
        ),
        (
            "bad model data",
            Box::new(|j: &mut Value| j["pipeline"]["imputer"]["means"][0] = "x".into()),
        ),
    ];
    for (expected, edit) in cases {
        let (msg, _) = load_error(&edited(edit));
        assert!(msg.contains(expected), "expected {expected:?} in: {msg}");
    }
}

/// linfa's Gaussian kernel zips the two rows, so an SVM whose support vectors are narrower
/// than the model would neither panic nor fail the self-check: loading must catch it.
#[test]
fn an_svm_narrower_than_the_model_is_inconsistent() {
    let (msg, _) = load_error(&edited(|j| {
        let sv = &mut j["pipeline"]["models"]["svm"]["sep_hyperplane"]["WeightedCombination"];
        let rows = sv["dim"][0].as_u64().unwrap() as usize;
        sv["dim"][1] = 5.into();
        sv["data"].as_array_mut().unwrap().truncate(rows * 5);
    }));
    assert!(msg.contains("SVM"), "{msg}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any damage to the file's bytes gets an answer, never a panic; damage to the compressed
    /// stream is always caught, unless it changes nothing the decoder reads (a bit of the code
    /// length of a symbol the stream never uses, say): then the very same model comes out.
    #[test]
    fn damaged_bytes_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4), cut in any::<prop::sample::Index>()) {
        let original = real_artifact_bytes_cached();
        let mut bytes = original.to_vec();
        // Leave alone the 10-byte gzip header (its time and OS bytes are not checked) and the
        // last byte of the deflate stream (its padding bits are ignored).
        let damageable: Vec<usize> = (10..bytes.len()).filter(|&i| i != bytes.len() - 9).collect();
        for (at, xor) in &flips {
            bytes[damageable[at.index(damageable.len())]] ^= xor;
        }
        if ModelArtifact::from_bytes(&bytes).is_ok() {
            prop_assert_eq!(gunzip(&bytes), gunzip(original), "a changed model was accepted");
        }
        let truncated = &original[..cut.index(original.len())];
        prop_assert!(ModelArtifact::from_bytes(truncated).is_err());
    }

    /// A feature list of any length is accepted exactly when it matches the model's width.
    #[test]
    fn feature_lists_of_the_wrong_length_are_refused(n in 0usize..12) {
        let mut json: Value = serde_json::from_slice(&gunzip(real_artifact_bytes_cached())).unwrap();
        json["feature_names"] = (0..n).map(|i| Value::from(format!("f{i}"))).collect();
        let result = ModelArtifact::from_bytes(&gzip(&serde_json::to_vec(&json).unwrap()));
        prop_assert_eq!(result.is_ok(), n == 6);
    }
}

fn real_artifact_bytes_cached() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(real_artifact_bytes)
}
