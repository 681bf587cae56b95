//! Shared helpers for the tests that run the built binary's `train` and `score`: running it,
//! its output, and CSV files made from the bundled data.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bundled_csv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/breast_cancer.csv")
}

pub fn bundled_text() -> String {
    std::fs::read_to_string(bundled_csv()).unwrap()
}

/// Runs `ml-serving` in `dir` (so no default path can touch the repository) without the
/// environment variables its flags read.
pub fn ml_serving(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ml-serving"))
        .args(args)
        .current_dir(dir)
        .env_remove("MODEL_PATH")
        .env_remove("MODEL_NAME")
        .output()
        .expect("running ml-serving")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn assert_success(out: &Output) {
    assert!(out.status.success(), "ml-serving failed: {}", stderr(out));
}

pub fn assert_failure(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "ml-serving succeeded; stdout: {}",
        stdout(out)
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// Trains the default model with the CLI into `dir/model.dat.gz`.
pub fn trained_model(dir: &Path) -> PathBuf {
    let model = dir.join("model.dat.gz");
    let out = ml_serving(
        dir,
        &["train", "--data", s(&bundled_csv()), "--out", s(&model)],
    );
    assert_success(&out);
    model
}

/// An output CSV as (id, prediction, label) rows, after checking its header.
pub fn read_scores(text: &str) -> Vec<(String, String, String)> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["id", "prediction", "label"]
    );
    reader
        .records()
        .map(|r| {
            let r = r.expect("the output is valid CSV");
            assert_eq!(r.len(), 3);
            (r[0].to_string(), r[1].to_string(), r[2].to_string())
        })
        .collect()
}

/// A CSV (as text) with one cell replaced (`row` counts data rows from 0).
pub fn with_cell(text: &str, row: usize, column: &str, value: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let col = lines[0].split(',').position(|h| h == column).unwrap();
    let mut cells: Vec<&str> = lines[row + 1].split(',').collect();
    cells[col] = value;
    lines[row + 1] = cells.join(",");
    lines.join("\n") + "\n"
}

/// The model the repository ships.
pub fn bundled_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("model/model_binary.dat.gz")
}

/// `ml-serving score` of `input` with the bundled model into `dir/scores.csv`.
pub fn score_file(dir: &Path, input: &Path, flags: &[&str]) -> (Output, PathBuf) {
    let output = dir.join("scores.csv");
    let model = bundled_model();
    let mut args = vec![
        "score",
        "--model-path",
        s(&model),
        "--input",
        s(input),
        "--output",
        s(&output),
    ];
    args.extend(flags);
    (ml_serving(dir, &args), output)
}

/// The ids of a scores CSV, in order.
pub fn score_ids(path: &Path) -> Vec<String> {
    read_scores(&std::fs::read_to_string(path).unwrap())
        .into_iter()
        .map(|r| r.0)
        .collect()
}

/// The bundled CSV's lines (line 0 is the header).
pub fn bundled_lines() -> Vec<String> {
    bundled_text().lines().map(str::to_string).collect()
}

/// The numbers in `scored N rows (M invalid ...)`, the summary `score` prints.
pub fn summary_counts(err: &str) -> (u64, u64) {
    let rest = err
        .split("scored ")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary in {err}"));
    let numbers: Vec<u64> = rest
        .split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .take(2)
        .map(|t| t.parse().unwrap())
        .collect();
    (numbers[0], numbers[1])
}
