//! `ml-serving score` with ONNX models: Parquet output and per-class scores (`--scores`) give
//! onnxruntime's labels, values and probabilities (tests/fixtures/onnx, made by
//! scripts/onnx-fixtures) on every row; CSV and Parquet outputs hold the same cells; our own
//! model's scores are the share of its three votes; what a model cannot give is refused.

mod cli_common;

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int8Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use cli_common::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/onnx/{name}"))
}

fn read_json(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture(name)).unwrap()).unwrap()
}

/// onnxruntime's output `name` of `model` (its `.ort.json`).
fn reference(model: &str, output: &str) -> Value {
    read_json(&format!("{model}.ort.json"))["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == output)
        .unwrap_or_else(|| panic!("{model} has no output {output}"))
        .clone()
}

fn close(ours: f64, theirs: f64) -> bool {
    (ours - theirs).abs() <= 1e-6 + 1e-5 * theirs.abs()
}

/// The rows of the model's data set as a CSV with an `id` column (`r0`, `r1`, ...) and the
/// sidecar's feature names (else `x0`, `x1`, ...: read by position); a missing value is an
/// empty cell.
fn fixture_csv(dir: &Path, model: &str) -> PathBuf {
    let data = read_json(&format!("{model}.ort.json"))["data"]
        .as_str()
        .unwrap()
        .to_string();
    let rows = read_json(&format!("data_{data}.json"))["rows"].clone();
    let rows = rows.as_array().unwrap();
    let width = rows[0].as_array().unwrap().len();
    let names: Vec<String> = if fixture(&format!("{model}.json")).exists() {
        serde_json::from_value(read_json(&format!("{model}.json"))["feature_names"].clone())
            .unwrap()
    } else {
        (0..width).map(|i| format!("x{i}")).collect()
    };
    let mut text = format!("id,{}\n", names.join(","));
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().map_or_else(String::new, |v| format!("{v:?}")))
            .collect();
        text.push_str(&format!("r{i},{}\n", cells.join(",")));
    }
    let path = dir.join(format!("{model}.csv"));
    std::fs::write(&path, text).unwrap();
    path
}

fn score(dir: &Path, model: &Path, input: &Path, output: &Path, flags: &[&str]) -> String {
    let out = score_into(dir, model, input, output, flags);
    assert_success(&out);
    stderr(&out)
}

/// A Parquet file's batches, in order.
fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A Parquet file as its column names and text cells (a null is empty), for comparing with a CSV.
fn parquet_as_text(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let batches = read_parquet(path);
    let schema = batches[0].schema();
    let names = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut rows = Vec::new();
    for batch in &batches {
        for r in 0..batch.num_rows() {
            let cell = |c: &dyn Array| -> String {
                if c.is_null(r) {
                    return String::new();
                }
                match c.data_type() {
                    DataType::Utf8 => c.as_string::<i32>().value(r).to_string(),
                    DataType::Int8 => c.as_primitive::<Int8Type>().value(r).to_string(),
                    DataType::Int64 => c.as_primitive::<Int64Type>().value(r).to_string(),
                    DataType::Float32 => c.as_primitive::<Float32Type>().value(r).to_string(),
                    DataType::Float64 => c.as_primitive::<Float64Type>().value(r).to_string(),
                    other => panic!("unexpected column type {other}"),
                }
            };
            rows.push(batch.columns().iter().map(|c| cell(c.as_ref())).collect());
        }
    }
    (names, rows)
}

/// A CSV file as its header and cells.
fn csv_as_text(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

/// The CSV and the Parquet output hold the same cells (numbers compared as numbers).
fn assert_same_cells(csv: &Path, parquet: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let (csv_header, csv_rows) = csv_as_text(csv);
    let (names, rows) = parquet_as_text(parquet);
    assert_eq!(csv_header, names);
    assert_eq!(csv_rows.len(), rows.len());
    for (i, (a, b)) in csv_rows.iter().zip(&rows).enumerate() {
        let same = a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x == y || matches!((x.parse::<f64>(), y.parse::<f64>()), (Ok(x), Ok(y)) if x == y)
            });
        assert!(same, "row {i}: CSV {a:?}, Parquet {b:?}");
    }
    (names, rows)
}

/// For each classifier (with and without ZipMap, integer and text labels, with and without a
/// sidecar, with missing values): the label and the scores of every row are onnxruntime's, in
/// CSV and in Parquet, and the score columns are named by class.
#[test]
fn onnx_classifiers_write_onnxruntimes_labels_and_probabilities_as_csv_and_parquet() {
    let cases: [(&str, &str, &str, &[&str], DataType); 6] = [
        // Named features and class labels from the sidecar.
        (
            "logreg_cancer",
            "output_label",
            "output_probability",
            &["0", "1"],
            DataType::Int64,
        ),
        // No sidecar: the classes are ZipMap's keys.
        (
            "lgbm_iris_str",
            "label",
            "probabilities",
            &["setosa", "versicolor", "virginica"],
            DataType::Utf8,
        ),
        (
            "forest_wine",
            "output_label",
            "output_probability",
            &["0", "1", "2"],
            DataType::Int64,
        ),
        // No ZipMap and no sidecar: the classes' positions.
        (
            "logreg_iris_str_nozipmap",
            "label",
            "probabilities",
            &["0", "1", "2"],
            DataType::Utf8,
        ),
        (
            "xgb_wine",
            "label",
            "probabilities",
            &["0", "1", "2"],
            DataType::Int64,
        ),
        // Missing values (empty cells) go to the model.
        (
            "forest_missing",
            "output_label",
            "output_probability",
            &["0", "1"],
            DataType::Int64,
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (model, label_output, score_output, classes, prediction_type) in cases {
        let input = fixture_csv(dir.path(), model);
        let onnx = fixture(&format!("{model}.onnx"));
        let (csv, parquet) = (dir.path().join("out.csv"), dir.path().join("out.parquet"));
        score(dir.path(), &onnx, &input, &csv, &["--scores"]);
        score(dir.path(), &onnx, &input, &parquet, &["--scores"]);
        let (names, rows) = assert_same_cells(&csv, &parquet);

        let mut expected_names = vec!["id", "prediction", "label"];
        let score_names: Vec<String> = classes.iter().map(|c| format!("score_{c}")).collect();
        expected_names.extend(score_names.iter().map(String::as_str));
        assert_eq!(names, expected_names, "{model}");
        let schema = read_parquet(&parquet)[0].schema();
        assert_eq!(schema.field(1).data_type(), &prediction_type, "{model}");
        assert_eq!(schema.field(3).data_type(), &DataType::Float32, "{model}");

        let labels = reference(model, label_output)["values"].clone();
        let labels = labels.as_array().unwrap();
        let probabilities = reference(model, score_output);
        let k = classes.len();
        let probability = |row: usize, class: usize| -> f64 {
            let values = &probabilities["values"];
            match probabilities["kind"].as_str().unwrap() {
                "maps" => values[row][class].as_f64().unwrap(),
                _ => values[row * k + class].as_f64().unwrap(),
            }
        };
        assert_eq!(rows.len(), labels.len(), "{model}");
        for (i, row) in rows.iter().enumerate() {
            let label = match &labels[i] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(row[0], format!("r{i}"), "{model}");
            assert_eq!((&row[1], &row[2]), (&label, &label), "{model} row {i}");
            for class in 0..k {
                let ours: f64 = row[3 + class].parse().unwrap();
                let theirs = probability(i, class);
                assert!(
                    close(ours, theirs),
                    "{model} row {i} class {class}: {ours} vs {theirs}"
                );
            }
        }
    }
}

/// A regression model writes its values as float64 Parquet (no label), like onnxruntime's; it
/// has no per-class scores and no votes, and asking for them is refused before anything is
/// written.
#[test]
fn an_onnx_regression_writes_its_values_as_parquet_and_refuses_scores_and_votes() {
    let dir = tempfile::tempdir().unwrap();
    for model in ["linreg_diabetes", "linreg_diabetes_double"] {
        let input = fixture_csv(dir.path(), model);
        let onnx = fixture(&format!("{model}.onnx"));
        let (csv, parquet) = (dir.path().join("out.csv"), dir.path().join("out.parquet"));
        score(dir.path(), &onnx, &input, &csv, &[]);
        score(dir.path(), &onnx, &input, &parquet, &[]);
        let (names, rows) = assert_same_cells(&csv, &parquet);
        assert_eq!(names, ["id", "prediction", "label"]);
        let batches = read_parquet(&parquet);
        assert_eq!(batches[0].schema().field(1).data_type(), &DataType::Float64);
        assert_eq!(batches[0].column(2).null_count(), batches[0].num_rows());
        let values = reference(model, "variable")["values"].clone();
        let values = values.as_array().unwrap();
        assert_eq!(rows.len(), values.len());
        for (i, (row, v)) in rows.iter().zip(values).enumerate() {
            let ours: f64 = row[1].parse().unwrap();
            assert!(
                close(ours, v.as_f64().unwrap()),
                "{model} row {i}: {ours} vs {v}"
            );
            assert_eq!(row[2], "", "a regression has no label");
        }
        std::fs::remove_file(&parquet).unwrap();

        for (flag, says) in [
            ("--scores", "is a regression model"),
            ("--votes", "--scores gives its per-class scores"),
        ] {
            let out = ml_serving(
                dir.path(),
                &[
                    "score",
                    "--model-path",
                    s(&onnx),
                    "--input",
                    s(&input),
                    "--output",
                    s(&parquet),
                    flag,
                ],
            );
            let err = assert_failure(&out);
            assert!(err.contains(flag) && err.contains(says), "{err}");
            assert!(!parquet.exists(), "nothing is written");
        }
    }
}

/// An ONNX classifier has no votes either: --votes is refused, pointing to --scores.
#[test]
fn an_onnx_classifier_refuses_votes_pointing_to_scores() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture_csv(dir.path(), "forest_wine");
    let out = ml_serving(
        dir.path(),
        &[
            "score",
            "--model-path",
            s(&fixture("forest_wine.onnx")),
            "--input",
            s(&input),
            "--votes",
            "--scores",
        ],
    );
    let err = assert_failure(&out);
    assert!(err.contains("--votes") && err.contains("--scores"), "{err}");
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}

/// Our model's scores are the share of its three models' votes, named by its labels; with or
/// without them the predictions are the same, in CSV and in Parquet.
#[test]
fn our_models_scores_are_the_share_of_its_votes() {
    let dir = tempfile::tempdir().unwrap();
    let model = bundled_model();
    let input = bundled_csv();
    let (plain, csv, parquet) = (
        dir.path().join("plain.csv"),
        dir.path().join("all.csv"),
        dir.path().join("all.parquet"),
    );
    score(dir.path(), &model, &input, &plain, &[]);
    score(dir.path(), &model, &input, &csv, &["--votes", "--scores"]);
    score(
        dir.path(),
        &model,
        &input,
        &parquet,
        &["--votes", "--scores"],
    );
    let (names, rows) = assert_same_cells(&csv, &parquet);
    assert_eq!(
        names,
        [
            "id",
            "prediction",
            "label",
            "logistic_regression",
            "decision_tree",
            "svm",
            "score_B",
            "score_M"
        ]
    );
    let (_, plain_rows) = csv_as_text(&plain);
    assert_eq!(plain_rows.len(), rows.len());
    let mut shares = std::collections::BTreeSet::new();
    for (row, plain) in rows.iter().zip(&plain_rows) {
        assert_eq!(
            row[..3],
            plain[..],
            "the same answer with or without scores"
        );
        let votes: u32 = row[3..6].iter().map(|v| v.parse::<u32>().unwrap()).sum();
        let (negative, positive): (f64, f64) = (row[6].parse().unwrap(), row[7].parse().unwrap());
        assert!(close(positive, f64::from(votes) / 3.0), "{row:?}");
        assert!(close(negative + positive, 1.0), "{row:?}");
        assert_eq!(row[1] == "1", positive > 0.5, "{row:?}");
        shares.insert(votes);
    }
    assert!(
        shares.len() >= 3,
        "rows with several vote counts: {shares:?}"
    );
}
