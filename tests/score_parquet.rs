//! `ml-serving score` with Parquet: numeric columns of any width and nulls score exactly like
//! the same values in CSV (empty cells), across row groups and chunks; Parquet output; bad rows
//! reported by row group and row; shards.

mod cli_common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, Float32Array, Float64Array, Int8Array, Int64Array, RecordBatch, StringArray,
    UInt16Array, UInt32Array,
};
use cli_common::*;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;

fn score(dir: &Path, args: &[&str]) -> Output {
    let model = bundled_model();
    let mut all = vec!["score", "--model-path", s(&model)];
    all.extend(args);
    ml_serving(dir, &all)
}

/// One row of the test table: an id, the six features (each maybe null), a note.
struct Row {
    id: i64,
    concavity_mean: Option<f32>,
    concave_points_mean: Option<f64>,
    perimeter_se: Option<u16>,
    area_se: Option<i64>,
    texture_worst: Option<i8>,
    area_worst: Option<u32>,
}

/// `n` rows from the bundled data, each value made representable in its column's type, with
/// about one cell in 30 null.
fn rows(n: usize) -> Vec<Row> {
    let model = ml_serving::artifact::LoadedModel::load(&bundled_model()).unwrap();
    let data = ml_serving::dataset::load_for_scoring(&bundled_csv(), &model.artifact.feature_names)
        .unwrap();
    let x = data.features;
    (0..n)
        .map(|i| {
            let r = x.row(i % x.nrows());
            let keep = |k: usize| !(i * 7 + k * 13).is_multiple_of(30);
            Row {
                id: 1_000_000 + i as i64,
                concavity_mean: keep(0).then_some(r[0] as f32),
                concave_points_mean: keep(1).then_some(r[1]),
                perimeter_se: keep(2).then_some((r[2] * 10.0).round() as u16),
                area_se: keep(3).then_some(r[3].round() as i64),
                texture_worst: keep(4).then_some(r[4].round().min(127.0) as i8),
                area_worst: keep(5).then_some(r[5].round() as u32),
            }
        })
        .collect()
}

fn write_parquet(path: &Path, rows: &[Row], row_group_rows: usize) {
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "note",
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| format!("n{}", r.id)),
            )),
        ),
        (
            "area_worst",
            Arc::new(rows.iter().map(|r| r.area_worst).collect::<UInt32Array>()),
        ),
        (
            "id",
            Arc::new(rows.iter().map(|r| Some(r.id)).collect::<Int64Array>()),
        ),
        (
            "concavity_mean",
            Arc::new(
                rows.iter()
                    .map(|r| r.concavity_mean)
                    .collect::<Float32Array>(),
            ),
        ),
        (
            "concave_points_mean",
            Arc::new(
                rows.iter()
                    .map(|r| r.concave_points_mean)
                    .collect::<Float64Array>(),
            ),
        ),
        (
            "perimeter_se",
            Arc::new(rows.iter().map(|r| r.perimeter_se).collect::<UInt16Array>()),
        ),
        (
            "area_se",
            Arc::new(rows.iter().map(|r| r.area_se).collect::<Int64Array>()),
        ),
        (
            "texture_worst",
            Arc::new(rows.iter().map(|r| r.texture_worst).collect::<Int8Array>()),
        ),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group_rows))
        .build();
    let mut writer =
        ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// The same rows as CSV, a null as an empty cell.
fn write_csv(path: &Path, rows: &[Row]) {
    fn cell<T: ToString>(v: Option<T>) -> String {
        v.map_or_else(String::new, |v| v.to_string())
    }
    let mut text = String::from(
        "id,concavity_mean,concave_points_mean,perimeter_se,area_se,texture_worst,area_worst\n",
    );
    for r in rows {
        text.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            r.id,
            cell(r.concavity_mean.map(f64::from)),
            cell(r.concave_points_mean),
            cell(r.perimeter_se),
            cell(r.area_se),
            cell(r.texture_worst),
            cell(r.area_worst)
        ));
    }
    std::fs::write(path, text).unwrap();
}

fn fixture(dir: &Path, n: usize) -> (PathBuf, PathBuf) {
    let rows = rows(n);
    let parquet = dir.join("rows.parquet");
    write_parquet(&parquet, &rows, 1000);
    let csv = dir.join("rows.csv");
    write_csv(&csv, &rows);
    (parquet, csv)
}

/// A scores Parquet file as (id, prediction, label) rows.
fn read_parquet_scores(path: &Path) -> Vec<(String, i8, String)> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let ids = batch.column_by_name("id").unwrap();
        let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
        let predictions = batch.column_by_name("prediction").unwrap();
        let predictions = predictions.as_any().downcast_ref::<Int8Array>().unwrap();
        let labels = batch.column_by_name("label").unwrap();
        let labels = labels.as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..batch.num_rows() {
            out.push((
                ids.value(i).to_string(),
                predictions.value(i),
                labels.value(i).to_string(),
            ));
        }
    }
    out
}

#[test]
fn parquet_of_any_numeric_width_with_nulls_scores_like_the_same_csv() {
    let dir = tempfile::tempdir().unwrap();
    let (parquet, csv) = fixture(dir.path(), 3_500);
    let from_csv = score(dir.path(), &["--input", s(&csv)]);
    assert_success(&from_csv);
    assert!(from_csv.stdout == whole_file_scores(&csv));
    for chunk in ["100000", "700", "1"] {
        let from_parquet = score(dir.path(), &["--input", s(&parquet), "--chunk-rows", chunk]);
        assert_success(&from_parquet);
        assert!(
            from_parquet.stdout == from_csv.stdout,
            "chunk {chunk}: Parquet and CSV disagree"
        );
    }

    // Parquet out holds the same scores.
    let out = dir.path().join("scores.parquet");
    assert_success(&score(
        dir.path(),
        &[
            "--input",
            s(&parquet),
            "--output",
            s(&out),
            "--chunk-rows",
            "900",
        ],
    ));
    let expected: Vec<(String, i8, String)> = read_scores(&stdout(&from_csv))
        .into_iter()
        .map(|(id, p, l)| (id, p.parse().unwrap(), l))
        .collect();
    assert_eq!(read_parquet_scores(&out), expected);

    // With the votes, three more int8 columns.
    assert_success(&score(
        dir.path(),
        &["--input", s(&csv), "--output", s(&out), "--votes"],
    ));
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&out).unwrap()).unwrap();
    let names: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "id",
            "prediction",
            "label",
            "logistic_regression",
            "decision_tree",
            "svm"
        ]
    );
    assert_eq!(builder.metadata().file_metadata().num_rows(), 3_500);
}

#[test]
fn bad_parquet_rows_are_reported_by_row_group_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = rows(2_500);
    rows[1_500].area_se = Some(-5); // row group 1, row 500
    rows[2_100].concave_points_mean = Some(f64::INFINITY); // row group 2, row 100
    rows[2_101].concave_points_mean = Some(f64::NAN); // a NaN is a missing value
    let parquet = dir.path().join("bad.parquet");
    write_parquet(&parquet, &rows, 1000);
    let output = dir.path().join("scores.csv");
    let out = score(
        dir.path(),
        &["--input", s(&parquet), "--output", s(&output)],
    );
    let err = assert_failure(&out);
    assert!(
        err.contains("row group 1, row 500: column \"area_se\": -5 is negative"),
        "{err}"
    );
    assert!(
        err.contains(
            "row group 2, row 100: column \"concave_points_mean\": \"inf\" is not a finite number"
        ),
        "{err}"
    );
    assert!(!output.exists());

    let out = score(
        dir.path(),
        &[
            "--input",
            s(&parquet),
            "--output",
            s(&output),
            "--skip-invalid",
        ],
    );
    assert_success(&out);
    assert_eq!(summary_counts(&stderr(&out)), (2_498, 2));
    let ids = score_ids(&output);
    assert!(!ids.contains(&"1001500".to_string()) && ids.contains(&"1002101".to_string()));
}

#[test]
fn parquet_shards_join_into_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (parquet, _) = fixture(dir.path(), 2_600);
    let whole = score(dir.path(), &["--input", s(&parquet)]);
    assert_success(&whole);
    let body = |b: &[u8]| b[b.iter().position(|&c| c == b'\n').unwrap() + 1..].to_vec();
    for n in [2u64, 3, 5] {
        let mut joined = Vec::new();
        for i in 0..n {
            let out = score(
                dir.path(),
                &[
                    "--input",
                    s(&parquet),
                    "--shard",
                    &format!("{i}/{n}"),
                    "--chunk-rows",
                    "300",
                ],
            );
            assert_success(&out);
            joined.extend(body(&out.stdout));
        }
        assert!(joined == body(&whole.stdout), "{n} shards");
    }
}

#[test]
fn unusable_parquet_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    // A feature column of text.
    let path = dir.path().join("text.parquet");
    let names = ml_serving::dataset::default_features();
    let columns: Vec<(&str, ArrayRef)> = names
        .iter()
        .map(|n| {
            let a: ArrayRef = if n == "area_se" {
                Arc::new(StringArray::from(vec!["1.5"]))
            } else {
                Arc::new(Float64Array::from(vec![1.0]))
            };
            (n.as_str(), a)
        })
        .collect();
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let err = assert_failure(&score(dir.path(), &["--input", s(&path)]));
    assert!(err.contains("column \"area_se\" holds Utf8"), "{err}");

    // Not Parquet at all.
    let err = assert_failure(&score(
        dir.path(),
        &["--input", s(&bundled_csv()), "--input-format", "parquet"],
    ));
    assert!(err.contains("not a readable Parquet file"), "{err}");

    // Parquet needs a file on both sides.
    let err = assert_failure(&score(
        dir.path(),
        &["--input", s(&bundled_csv()), "--output-format", "parquet"],
    ));
    assert!(
        err.contains("cannot be written to standard output"),
        "{err}"
    );
}
