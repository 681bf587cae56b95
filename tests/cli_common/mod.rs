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
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("SHARD_COUNT")
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
    score_with(dir, &bundled_model(), input, flags)
}

/// `ml-serving score` of `input` with `model` into `dir/scores.csv`.
pub fn score_with(dir: &Path, model: &Path, input: &Path, flags: &[&str]) -> (Output, PathBuf) {
    let output = dir.join("scores.csv");
    (score_into(dir, model, input, &output, flags), output)
}

/// `ml-serving score` of `input` with `model` into `output`.
pub fn score_into(dir: &Path, model: &Path, input: &Path, output: &Path, flags: &[&str]) -> Output {
    let mut args = vec![
        "score",
        "--model-path",
        s(model),
        "--input",
        s(input),
        "--output",
        s(output),
    ];
    args.extend(flags);
    ml_serving(dir, &args)
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

/// The scores of a CSV computed the whole-file way: every row read at once by the library's
/// reader, the bundled model's prediction on the whole matrix, written by the `csv` crate.
pub fn whole_file_scores(input: &Path) -> Vec<u8> {
    let model = ml_serving::artifact::LoadedModel::load(&bundled_model()).unwrap();
    let rows = ml_serving::dataset::load_for_scoring(input, &model.artifact.feature_names).unwrap();
    assert!(rows.invalid.is_empty(), "{:?}", rows.invalid);
    let predictions = model
        .artifact
        .pipeline
        .predict(rows.features.view())
        .unwrap();
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    writer.write_record(["id", "prediction", "label"]).unwrap();
    for (id, &p) in rows.ids.iter().zip(&predictions) {
        let label = model.artifact.labels.name(p);
        writer
            .write_record([id.as_str(), if p { "1" } else { "0" }, label])
            .unwrap();
    }
    writer.into_inner().unwrap()
}

/// The bundled data set's header and records.
pub fn bundled_records() -> (Vec<String>, Vec<csv::StringRecord>) {
    let text = bundled_text();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    (header, reader.records().map(Result::unwrap).collect())
}

/// A CSV of `rows` rows made from the bundled ones, deterministically: values nudged, some
/// cells empty, the columns shuffled with an extra text column, ids that need quoting now and
/// then.
pub fn generated_csv(rows: usize, seed: u64) -> String {
    use rand::{Rng, SeedableRng, seq::SliceRandom};
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    let (header, records) = bundled_records();
    let features = ml_serving::dataset::default_features();
    let mut order: Vec<usize> = (0..header.len()).collect();
    order.shuffle(&mut rng);
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let mut out_header: Vec<&str> = order.iter().map(|&i| header[i].as_str()).collect();
    out_header.push("note");
    writer.write_record(&out_header).unwrap();
    for r in 0..rows {
        let record = &records[rng.gen_range(0..records.len())];
        let mut cells: Vec<String> = order
            .iter()
            .map(|&i| {
                let name = &header[i];
                if name == "id" {
                    if r % 1000 == 7 {
                        format!("case {r}, \"left\"")
                    } else {
                        format!("g{r}")
                    }
                } else if features.contains(name) {
                    if rng.gen_bool(0.01) {
                        String::new()
                    } else {
                        let v: f64 = record[i].parse().unwrap();
                        format!("{}", v * rng.gen_range(0.8..1.2))
                    }
                } else {
                    record[i].to_string()
                }
            })
            .collect();
        cells.push(format!("note {r}"));
        writer.write_record(&cells).unwrap();
    }
    String::from_utf8(writer.into_inner().unwrap()).unwrap()
}
