//! Tests of the built `ml-serving` binary: `train` and `score` as a user runs them, in
//! temporary directories, with their exit codes, standard error and files.

mod cli_common;

use std::path::Path;

use cli_common::*;
use ml_serving::artifact::LoadedModel;
use ml_serving::dataset;
use ml_serving::train::{TrainArgs, train};

// ---------------------------------------------------------------------------------------------
// train
// ---------------------------------------------------------------------------------------------

#[test]
fn train_json_report_and_artifact_match_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("models/model.dat.gz");
    let out = ml_serving(
        dir.path(),
        &[
            "train",
            "--data",
            s(&bundled_csv()),
            "--out",
            s(&model),
            "--json",
        ],
    );
    assert_success(&out);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("--json prints JSON");

    let (mut expected, expected_report) = train(&TrainArgs {
        data: bundled_csv(),
        ..TrainArgs::default()
    })
    .unwrap();
    assert_eq!(report["train_rows"], 455);
    assert_eq!(report["test_rows"], 114);
    assert_eq!(report["model"], "breast_model");
    assert_eq!(
        report["metrics"],
        serde_json::to_value(&expected_report.metrics).unwrap()
    );
    assert!(report["metrics"]["accuracy"].as_f64().unwrap() >= 0.93);
    assert!(report["fit_seconds"].as_f64().unwrap() > 0.0);

    // The file is the library's artifact, byte for byte once the timestamps agree.
    let loaded = LoadedModel::load(&model).expect("the CLI's artifact loads");
    expected.created_at = loaded.artifact.created_at.clone();
    assert!(std::fs::read(&model).unwrap() == expected.to_bytes());
    assert_eq!(entries(&dir.path().join("models")), ["model.dat.gz"]);
}

#[test]
fn train_text_report_shows_metrics_confusion_matrix_and_each_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.dat.gz");
    let out = ml_serving(
        dir.path(),
        &["train", "--data", s(&bundled_csv()), "--out", s(&model)],
    );
    assert_success(&out);
    let text = stdout(&out);
    for needle in [
        "455 rows",
        "114 held-out rows",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "confusion matrix",
        "actual 0",
        "actual 1",
        "logistic regression",
        "decision tree",
        "SVM",
        "fit time",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    assert!(text.contains(s(&model)), "{text}");
}

#[test]
fn train_with_missing_cells_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("holes.csv");
    let text = with_cell(&bundled_text(), 0, "area_se", "");
    let text = with_cell(&text, 5, "texture_worst", "NaN");
    std::fs::write(&data, text).unwrap();
    let model = dir.path().join("m.dat.gz");
    assert_success(&ml_serving(
        dir.path(),
        &["train", "--data", s(&data), "--out", s(&model)],
    ));
    LoadedModel::load(&model).unwrap();
}

/// A bad training CSV: what to write, extra flags, and what the error must say.
struct BadCsv {
    what: &'static str,
    csv: String,
    flags: Vec<&'static str>,
    says: Vec<&'static str>,
}

fn bad_csvs() -> Vec<BadCsv> {
    let text = bundled_text();
    let lines: Vec<&str> = text.lines().collect();
    let header = lines[0];
    let only_b: Vec<&str> = std::iter::once(header)
        .chain(
            lines[1..]
                .iter()
                .copied()
                .filter(|l| l.split(',').nth(1) == Some("B")),
        )
        .collect();
    let first_b = lines
        .iter()
        .position(|l| l.split(',').nth(1) == Some("B"))
        .unwrap();
    vec![
        BadCsv {
            what: "empty file",
            csv: String::new(),
            flags: vec![],
            says: vec!["is empty"],
        },
        BadCsv {
            what: "header only",
            csv: format!("{header}\n"),
            flags: vec![],
            says: vec!["no data rows"],
        },
        BadCsv {
            what: "missing column",
            csv: text.clone(),
            flags: vec!["--features", "concavity_mean,nucleus_colour"],
            says: vec!["no column named \"nucleus_colour\""],
        },
        BadCsv {
            what: "non-numeric cell",
            // Data row 41 is line 43: line 1 is the header.
            csv: with_cell(&text, 41, "texture_worst", "high"),
            flags: vec![],
            says: vec![
                "line 43",
                "column \"texture_worst\"",
                "\"high\" is not a number",
            ],
        },
        BadCsv {
            what: "single class",
            csv: only_b.join("\n") + "\n",
            flags: vec![],
            says: vec!["exactly two classes", "[\"B\"]"],
        },
        BadCsv {
            what: "unknown positive class",
            csv: text.clone(),
            flags: vec!["--positive", "Malignant"],
            says: vec!["positive class \"Malignant\" never occurs"],
        },
        BadCsv {
            what: "too few rows",
            csv: format!("{header}\n{}\n{}\n", lines[1], lines[first_b]),
            flags: vec![],
            says: vec!["2 rows are too few"],
        },
    ]
}

#[test]
fn bad_training_csvs_fail_with_a_message_and_write_nothing() {
    for case in bad_csvs() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("bad.csv");
        std::fs::write(&data, &case.csv).unwrap();
        let out_dir = dir.path().join("out");
        std::fs::create_dir(&out_dir).unwrap();
        let model = out_dir.join("model.dat.gz");
        let mut args = vec!["train", "--data", s(&data), "--out", s(&model)];
        args.extend(&case.flags);
        let err = assert_failure(&ml_serving(dir.path(), &args));
        assert!(
            err.contains(s(&data)),
            "{}: the file is not named: {err}",
            case.what
        );
        for needle in &case.says {
            assert!(
                err.contains(needle),
                "{}: {needle:?} missing from: {err}",
                case.what
            );
        }
        assert!(
            entries(&out_dir).is_empty(),
            "{}: {:?} left in the output directory",
            case.what,
            entries(&out_dir)
        );
        assert_eq!(entries(dir.path()), ["bad.csv", "out"], "{}", case.what);
    }
}

#[test]
fn a_failed_training_leaves_the_existing_model_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    let before = std::fs::read(&model).unwrap();
    let data = dir.path().join("bad.csv");
    std::fs::write(&data, with_cell(&bundled_text(), 3, "area_worst", "2,019")).unwrap();
    let err = assert_failure(&ml_serving(
        dir.path(),
        &["train", "--data", s(&data), "--out", s(&model)],
    ));
    assert!(err.contains("line 5"), "{err}");
    assert_eq!(std::fs::read(&model).unwrap(), before);
    assert_eq!(entries(dir.path()), ["bad.csv", "model.dat.gz"]);
}

// ---------------------------------------------------------------------------------------------
// score
// ---------------------------------------------------------------------------------------------

/// The library's predictions for the bundled rows with `model`.
fn library_predictions(model: &Path) -> Vec<bool> {
    let loaded = LoadedModel::load(model).unwrap();
    let data = dataset::load_labeled(
        &bundled_csv(),
        &loaded.artifact.feature_names,
        "diagnosis",
        "M",
    )
    .unwrap();
    loaded
        .artifact
        .pipeline
        .predict(data.features.view())
        .unwrap()
}

#[test]
fn score_the_bundled_csv_like_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    let (out, output) = score_with(dir.path(), &model, &bundled_csv(), &[]);
    assert_success(&out);
    assert!(stderr(&out).contains("scored 569 rows"), "{}", stderr(&out));
    let scores = read_scores(&std::fs::read_to_string(&output).unwrap());
    assert_eq!(scores.len(), 569);

    let ids: Vec<String> = (1..=569).map(|i| i.to_string()).collect();
    assert_eq!(scores.iter().map(|r| r.0.clone()).collect::<Vec<_>>(), ids);
    let expected = library_predictions(&model);
    for ((id, prediction, label), &want) in scores.iter().zip(&expected) {
        assert_eq!(prediction, if want { "1" } else { "0" }, "row {id}");
        assert_eq!(label, if want { "M" } else { "B" }, "row {id}");
    }
    // Most rows are predicted as diagnosed, so the labels are the right way round.
    let data = dataset::load_labeled(
        &bundled_csv(),
        &dataset::default_features(),
        "diagnosis",
        "M",
    )
    .unwrap();
    let right = expected
        .iter()
        .zip(&data.targets)
        .filter(|(p, t)| p == t)
        .count();
    assert!(right >= 530, "{right} of 569 right");

    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&output).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode, 0o644);
}

#[test]
fn score_writes_to_standard_output_without_output() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    let out = ml_serving(
        dir.path(),
        &["score", "--model", s(&model), "--input", s(&bundled_csv())],
    );
    assert_success(&out);
    let (_, file) = score_with(dir.path(), &model, &bundled_csv(), &[]);
    assert_eq!(stdout(&out), std::fs::read_to_string(file).unwrap());
}

/// The bundled rows with the columns in reverse order, an extra text column, ids that are not
/// row numbers (one needs quoting), and the rows in reverse order.
fn reshuffled_csv() -> (String, Vec<String>) {
    let (header, rows) = bundled_records();
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut new_header: Vec<&str> = header.iter().rev().map(String::as_str).collect();
    new_header.insert(3, "note");
    writer.write_record(&new_header).unwrap();
    let mut ids = Vec::new();
    for (i, row) in rows.iter().enumerate().rev() {
        let id = if i == 7 {
            "case 8, left".to_string()
        } else {
            format!("P{:04}", 1000 + i)
        };
        let mut cells: Vec<String> = row.iter().rev().map(str::to_string).collect();
        *cells.last_mut().unwrap() = id.clone();
        cells.insert(3, format!("free text {i}"));
        writer.write_record(&cells).unwrap();
        ids.push(id);
    }
    (
        String::from_utf8(writer.into_inner().unwrap()).unwrap(),
        ids,
    )
}

#[test]
fn score_accepts_any_column_order_and_extra_columns_and_passes_ids_through() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    let (csv_text, ids) = reshuffled_csv();
    let input = dir.path().join("reshuffled.csv");
    std::fs::write(&input, csv_text).unwrap();
    let (out, output) = score_with(dir.path(), &model, &input, &[]);
    assert_success(&out);
    let scores = read_scores(&std::fs::read_to_string(&output).unwrap());
    assert_eq!(scores.iter().map(|r| r.0.clone()).collect::<Vec<_>>(), ids);
    let mut expected = library_predictions(&model);
    expected.reverse();
    let got: Vec<bool> = scores.iter().map(|r| r.1 == "1").collect();
    assert_eq!(got, expected);
}

#[test]
fn score_without_an_id_column_numbers_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    // Drop the id column and reverse the rows: the ids are then row numbers, not the old ids.
    let text = bundled_text();
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| l.split_once(',').unwrap().1.to_string())
        .collect();
    lines[1..].reverse();
    let input = dir.path().join("no_id.csv");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let (out, output) = score_with(dir.path(), &model, &input, &[]);
    assert_success(&out);
    let scores = read_scores(&std::fs::read_to_string(&output).unwrap());
    let ids: Vec<String> = (1..=569).map(|i| i.to_string()).collect();
    assert_eq!(scores.iter().map(|r| r.0.clone()).collect::<Vec<_>>(), ids);
    let mut expected = library_predictions(&model);
    expected.reverse();
    assert_eq!(
        scores.iter().map(|r| r.1 == "1").collect::<Vec<_>>(),
        expected
    );
}

#[test]
fn score_with_a_bad_cell_fails_naming_line_and_column_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    let input = dir.path().join("bad.csv");
    // Data row 99 is line 101.
    std::fs::write(
        &input,
        with_cell(&bundled_text(), 99, "perimeter_se", "8.5.9"),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let output = out_dir.join("scores.csv");
    let out = ml_serving(
        dir.path(),
        &[
            "score",
            "--model",
            s(&model),
            "--input",
            s(&input),
            "--output",
            s(&output),
        ],
    );
    let err = assert_failure(&out);
    assert!(err.contains(s(&input)), "{err}");
    assert!(err.contains("line 101"), "{err}");
    assert!(err.contains("column \"perimeter_se\""), "{err}");
    assert!(err.contains("\"8.5.9\""), "{err}");
    assert!(entries(&out_dir).is_empty(), "{:?}", entries(&out_dir));
    assert_eq!(entries(dir.path()), ["bad.csv", "model.dat.gz", "out"]);
}

#[test]
fn score_with_skip_invalid_scores_the_rest_and_reports_the_bad_row() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    let input = dir.path().join("bad.csv");
    std::fs::write(
        &input,
        with_cell(&bundled_text(), 99, "perimeter_se", "8.5.9"),
    )
    .unwrap();
    let (out, output) = score_with(dir.path(), &model, &input, &["--skip-invalid"]);
    assert_success(&out);
    let err = stderr(&out);
    assert!(
        err.contains("line 101") && err.contains("column \"perimeter_se\""),
        "{err}"
    );
    let scores = read_scores(&std::fs::read_to_string(&output).unwrap());
    assert_eq!(scores.len(), 568);
    assert!(
        scores.iter().all(|r| r.0 != "100"),
        "the bad row (id 100) was scored"
    );
    let mut expected = library_predictions(&model);
    expected.remove(99);
    assert_eq!(
        scores.iter().map(|r| r.1 == "1").collect::<Vec<_>>(),
        expected
    );
}

#[test]
fn a_row_with_the_wrong_number_of_fields_is_one_invalid_row() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    let input = dir.path().join("ragged.csv");
    // "8,59" splits into two cells: data row 99 (line 101) has one field too many.
    std::fs::write(
        &input,
        with_cell(&bundled_text(), 99, "perimeter_se", "8,59"),
    )
    .unwrap();
    let (out, output) = score_with(dir.path(), &model, &input, &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("line 101") && err.contains("33 fields where the header has 32"),
        "{err}"
    );
    assert!(
        !output.exists(),
        "nothing is written without --skip-invalid"
    );

    let (out, output) = score_with(dir.path(), &model, &input, &["--skip-invalid"]);
    assert_success(&out);
    assert!(stderr(&out).contains("line 101"));
    let scores = read_scores(&std::fs::read_to_string(&output).unwrap());
    assert_eq!(scores.len(), 568);
    assert!(
        scores.iter().all(|r| r.0 != "100"),
        "the ragged row was not scored"
    );
}

#[test]
fn score_with_missing_feature_column_fails() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    let input = dir.path().join("narrow.csv");
    std::fs::write(&input, "id,concavity_mean\n1,0.3\n").unwrap();
    let (out, output) = score_with(dir.path(), &model, &input, &[]);
    let err = assert_failure(&out);
    assert!(
        err.contains("no column named \"concave_points_mean\""),
        "{err}"
    );
    assert!(!output.exists());
}

#[test]
fn score_with_a_bad_model_fails_naming_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(trained_model(dir.path())).unwrap();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("missing.dat.gz", vec![], "no such file"),
        (
            "text.dat.gz",
            b"not a model\n".to_vec(),
            "not gzip-compressed",
        ),
        (
            "half.dat.gz",
            good[..good.len() / 2].to_vec(),
            "corrupt or truncated",
        ),
    ];
    for (name, bytes, says) in cases {
        let model = dir.path().join(name);
        if !bytes.is_empty() {
            std::fs::write(&model, bytes).unwrap();
        }
        let (out, output) = score_with(dir.path(), &model, &bundled_csv(), &[]);
        let err = assert_failure(&out);
        assert!(
            err.contains(&format!("model artifact {}", model.display())),
            "{err}"
        );
        assert!(err.contains(says), "{name}: {says:?} missing from {err}");
        assert!(!output.exists());
    }
}
