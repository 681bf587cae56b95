//! `ml-serving score` streams: the same bytes as the whole-file way whatever the chunk size,
//! standard input and output, compressed CSV in and out, the models' votes, and shards whose
//! parts together are exactly the whole.

mod cli_common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cli_common::*;

fn score(dir: &Path, args: &[&str]) -> Output {
    let model = bundled_model();
    let mut all = vec!["score", "--model-path", s(&model)];
    all.extend(args);
    ml_serving(dir, &all)
}

/// Runs `score` with `stdin` as standard input; returns its output.
fn score_piped(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let model = bundled_model();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ml-serving"))
        .args(["score", "--model-path", s(&model)])
        .args(args)
        .current_dir(dir)
        .env_remove("MODEL_PATH")
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("SHARD_COUNT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let bytes = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&bytes));
    let out = child.wait_with_output().unwrap();
    // A command that refuses before reading its input closes the pipe: the write then fails
    // with a broken pipe, which is not the test's concern (its output is).
    if let Err(e) = writer.join().unwrap() {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    out
}

fn generated(dir: &Path, rows: usize) -> PathBuf {
    let path = dir.join("generated.csv");
    std::fs::write(&path, generated_csv(rows, 7)).unwrap();
    path
}

#[test]
fn streaming_gives_the_whole_file_bytes_whatever_the_chunk_size() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated(dir.path(), 8_000);
    let expected = whole_file_scores(&input);
    let output = dir.path().join("out.csv");
    for chunk in [None, Some("1"), Some("777"), Some("8192")] {
        let mut args = vec!["--input", s(&input), "--output", s(&output)];
        if let Some(c) = chunk {
            args.extend(["--chunk-rows", c]);
        }
        let out = score(dir.path(), &args);
        assert_success(&out);
        assert!(
            std::fs::read(&output).unwrap() == expected,
            "chunk {chunk:?}: not the whole-file bytes"
        );
    }
    let bundled = score(
        dir.path(),
        &["--input", s(&bundled_csv()), "--chunk-rows", "50"],
    );
    assert_success(&bundled);
    assert!(bundled.stdout == whole_file_scores(&bundled_csv()));
}

#[test]
fn standard_input_to_standard_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated(dir.path(), 5_000);
    let out = score_piped(
        dir.path(),
        &["--input", "-", "--output", "-", "--chunk-rows", "300"],
        &std::fs::read(&input).unwrap(),
    );
    assert_success(&out);
    assert!(out.stdout == whole_file_scores(&input));
    assert!(
        stderr(&out).contains("scored 5000 rows"),
        "{}",
        stderr(&out)
    );
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn compressed_csv_in_and_out() {
    let dir = tempfile::tempdir().unwrap();
    let plain = generated(dir.path(), 3_000);
    let expected = whole_file_scores(&plain);
    let text = std::fs::read(&plain).unwrap();
    let gz = dir.path().join("in.csv.gz");
    std::fs::write(&gz, gzip(&text)).unwrap();
    let zst = dir.path().join("in.csv.zst");
    std::fs::write(&zst, zstd::encode_all(&text[..], 3).unwrap()).unwrap();

    let out_gz = dir.path().join("out.csv.gz");
    let out_zst = dir.path().join("out.csv.zst");
    for input in [&gz, &zst] {
        for output in [&out_gz, &out_zst] {
            let out = score(
                dir.path(),
                &[
                    "--input",
                    s(input),
                    "--output",
                    s(output),
                    "--chunk-rows",
                    "1000",
                ],
            );
            assert_success(&out);
            let bytes = std::fs::read(output).unwrap();
            let decoded = if output == &out_gz {
                gunzip(&bytes)
            } else {
                zstd::decode_all(&bytes[..]).unwrap()
            };
            assert!(decoded == expected, "{input:?} -> {output:?}");
        }
    }
    // Standard input says its format with --input-format; --output-format overrides a name.
    let odd_name = dir.path().join("scores.out");
    let out = score_piped(
        dir.path(),
        &[
            "--input",
            "-",
            "--input-format",
            "csv.gz",
            "--output",
            s(&odd_name),
            "--output-format",
            "csv.zst",
        ],
        &gzip(&text),
    );
    assert_success(&out);
    assert!(zstd::decode_all(&std::fs::read(&odd_name).unwrap()[..]).unwrap() == expected);

    // A corrupt stream is an error, and nothing is written.
    let bad = dir.path().join("bad.csv.gz");
    let mut broken = gzip(&text);
    broken.truncate(broken.len() / 2);
    std::fs::write(&bad, broken).unwrap();
    let target = dir.path().join("never.csv");
    let out = score(dir.path(), &["--input", s(&bad), "--output", s(&target)]);
    assert_failure(&out);
    assert!(!target.exists());
}

#[test]
fn votes_are_each_models_and_the_prediction_is_their_majority() {
    let dir = tempfile::tempdir().unwrap();
    let out = score(
        dir.path(),
        &[
            "--input",
            s(&bundled_csv()),
            "--votes",
            "--chunk-rows",
            "100",
        ],
    );
    assert_success(&out);
    let model = ml_serving::artifact::LoadedModel::load(&bundled_model()).unwrap();
    let data = ml_serving::dataset::load_for_scoring(&bundled_csv(), &model.artifact.feature_names)
        .unwrap();
    let votes = model.artifact.pipeline.votes(data.features.view()).unwrap();
    let mut reader = csv::Reader::from_reader(&out.stdout[..]);
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "id",
            "prediction",
            "label",
            "logistic_regression",
            "decision_tree",
            "svm"
        ]
    );
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 569);
    let bit = |b: bool| if b { "1" } else { "0" };
    let mut disagreements = 0;
    for (r, v) in records.iter().zip(&votes) {
        assert_eq!(
            (&r[3], &r[4], &r[5]),
            (bit(v.logistic), bit(v.tree), bit(v.svm))
        );
        assert_eq!(&r[1], bit(v.majority()));
        disagreements += usize::from(!(v.logistic == v.tree && v.tree == v.svm));
    }
    assert!(disagreements > 0, "the models never disagree: a weak test");
    // Without --votes, the same predictions.
    let plain = score(dir.path(), &["--input", s(&bundled_csv())]);
    let plain = read_scores(&stdout(&plain));
    assert!(plain.iter().zip(&records).all(|(p, r)| p.1 == r[1]));
}

/// The data lines (header dropped) of a scores CSV.
fn body(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == b'\n').unwrap();
    &bytes[end + 1..]
}

#[test]
fn the_parts_of_n_shards_are_the_whole_each_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated(dir.path(), 2_345);
    // Blank lines are not rows, and must not shift the parts.
    let text = std::fs::read_to_string(&input).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(3, "");
    lines.insert(3, "\r");
    std::fs::write(&input, lines.join("\n") + "\n\n").unwrap();
    let whole = score(dir.path(), &["--input", s(&input)]);
    assert_success(&whole);
    for n in [1u64, 2, 3, 7, 10] {
        let mut joined = Vec::new();
        for i in 0..n {
            let shard = format!("{i}/{n}");
            let out = score(
                dir.path(),
                &[
                    "--input",
                    s(&input),
                    "--shard",
                    &shard,
                    "--chunk-rows",
                    "400",
                ],
            );
            assert_success(&out);
            assert!(stderr(&out).contains(&format!("part {shard}")));
            joined.extend_from_slice(body(&out.stdout));
        }
        assert!(joined == body(&whole.stdout), "{n} shards");
    }
    // The index from an Indexed Job, the count from SHARD_COUNT: the same part as --shard.
    let by_flag = score(dir.path(), &["--input", s(&input), "--shard", "1/3"]);
    let model = bundled_model();
    let by_env = Command::new(env!("CARGO_BIN_EXE_ml-serving"))
        .args(["score", "--model-path", s(&model), "--input", s(&input)])
        .current_dir(dir.path())
        .env("JOB_COMPLETION_INDEX", "1")
        .env("SHARD_COUNT", "3")
        .output()
        .unwrap();
    assert_success(&by_env);
    assert!(by_env.stdout == by_flag.stdout);
    assert!(by_flag.stdout.len() > 1000);
}

#[test]
fn bad_shards_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        (vec!["--shard", "3/3"], "part 3 does not exist"),
        (vec!["--shard", "1/0"], "between 1 and"),
        (vec!["--shard", "x"], "is not I/N"),
        (vec!["--shard-count", "4"], "JOB_COMPLETION_INDEX"),
    ] {
        let input = bundled_csv();
        let mut all = vec!["--input", s(&input)];
        all.extend(&args);
        let out = score(dir.path(), &all);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    let out = score_piped(dir.path(), &["--input", "-", "--shard", "0/2"], b"id\n");
    assert!(
        stderr(&out).contains("--shard needs a file"),
        "{}",
        stderr(&out)
    );

    // A header-only file has no rows, split or not; a part of a file may be empty.
    let header = dir.path().join("header.csv");
    let first_line = bundled_lines()[0].clone();
    std::fs::write(&header, format!("{first_line}\n")).unwrap();
    for shard in [None, Some("1/2")] {
        let mut args = vec!["--input", s(&header)];
        args.extend(shard.map(|s| ["--shard", s]).into_iter().flatten());
        let err = assert_failure(&score(dir.path(), &args));
        assert!(err.contains("no data rows"), "{shard:?}: {err}");
    }
    let two = dir.path().join("two.csv");
    let lines = bundled_lines();
    std::fs::write(&two, format!("{}\n{}\n{}\n", lines[0], lines[1], lines[2])).unwrap();
    // Of 2 rows in 5 parts, parts 0, 1 and 3 are empty.
    let out = score(dir.path(), &["--input", s(&two), "--shard", "3/5"]);
    assert_success(&out);
    assert_eq!(stdout(&out), "id,prediction,label\n");
}
