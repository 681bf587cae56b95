//! `ml-serving score` on damaged input: every data line ends up either scored or reported by
//! line, the summary counts rows (not cells), and a feature is checked by `/predict`'s rules.

mod cli_common;

use std::collections::BTreeSet;
use std::path::Path;

use cli_common::*;

/// The bundled CSV with some data lines replaced (`row` counts data rows from 0; data row `r`
/// is on line `r + 2` and has id `r + 1`).
fn damaged(replace: &[(usize, Vec<u8>)]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = bundled_lines()
        .into_iter()
        .map(String::into_bytes)
        .collect();
    for (row, bytes) in replace {
        lines[row + 1] = bytes.clone();
    }
    let mut out = lines.join(&b"\n"[..]);
    out.push(b'\n');
    out
}

/// Data row `row` with `column` set to `value` (bytes, so that it may be invalid UTF-8).
fn row_with(row: usize, cells: &[(&str, &[u8])]) -> Vec<u8> {
    let lines = bundled_lines();
    let header: Vec<&str> = lines[0].split(',').collect();
    let mut fields: Vec<Vec<u8>> = lines[row + 1]
        .split(',')
        .map(|c| c.as_bytes().to_vec())
        .collect();
    for (column, value) in cells {
        let i = header.iter().position(|h| h == column).unwrap();
        fields[i] = value.to_vec();
    }
    fields.join(&b","[..])
}

fn all_ids() -> BTreeSet<String> {
    (1..=569).map(|i| i.to_string()).collect()
}

fn write(dir: &Path, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join("input.csv");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_stray_quote_spoils_only_its_own_line() {
    let dir = tempfile::tempdir().unwrap();
    // Data row 4 (line 6, id 5): a quote opens and never closes. The csv crate would read the
    // rest of the file as one field.
    let input = write(
        dir.path(),
        &damaged(&[(4, row_with(4, &[("area_se", b"\"153.4")]))]),
    );
    let (out, output) = score_file(dir.path(), &input, &["--skip-invalid"]);
    assert_success(&out);
    let err = stderr(&out);
    assert!(
        err.contains("line 6: a quoted field is not closed"),
        "{err}"
    );
    assert_eq!(summary_counts(&err), (568, 1), "{err}");
    let mut expected = all_ids();
    expected.remove("5");
    assert_eq!(
        score_ids(&output).into_iter().collect::<BTreeSet<_>>(),
        expected
    );

    // Without --skip-invalid the run fails on that line and writes nothing.
    std::fs::remove_file(&output).unwrap();
    let (out, output) = score_file(dir.path(), &input, &[]);
    let err = assert_failure(&out);
    assert!(err.contains("line 6"), "{err}");
    assert!(!output.exists());
}

#[test]
fn two_stray_quotes_in_the_id_column_do_not_merge_the_rows_between() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        &damaged(&[
            (9, row_with(9, &[("id", b"\"ten")])),
            (19, row_with(19, &[("id", b"twenty\"")])),
        ]),
    );
    let (out, output) = score_file(dir.path(), &input, &["--skip-invalid"]);
    assert_success(&out);
    let err = stderr(&out);
    assert!(
        err.contains("line 11: a quoted field is not closed"),
        "{err}"
    );
    assert!(err.contains("line 21: a '\"' inside a field"), "{err}");
    assert_eq!(summary_counts(&err), (567, 2), "{err}");
    let ids = score_ids(&output);
    assert_eq!(ids.len(), 567);
    // The rows between are all there.
    for id in 11..=19 {
        assert!(ids.contains(&id.to_string()), "row {id} lost");
    }
}

#[test]
fn a_row_with_two_bad_cells_is_one_skipped_row() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        &damaged(&[(
            7,
            row_with(7, &[("area_se", b"big"), ("texture_worst", b"x1")]),
        )]),
    );
    let (out, output) = score_file(dir.path(), &input, &["--skip-invalid"]);
    assert_success(&out);
    let err = stderr(&out);
    assert_eq!(summary_counts(&err), (568, 1), "{err}");
    assert!(err.contains("1 invalid row:"), "{err}");
    let report = err.lines().find(|l| l.contains("line 9")).unwrap();
    assert!(
        report.contains("column \"area_se\": \"big\" is not a number")
            && report.contains("column \"texture_worst\": \"x1\" is not a number"),
        "{report}"
    );
    assert_eq!(score_ids(&output).len(), 568);
}

#[test]
fn invalid_utf8_in_one_row_is_one_bad_row() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        &damaged(&[
            (2, row_with(2, &[("perimeter_se", b"8.5\xff")])),
            (3, row_with(3, &[("id", b"\xc3(")])),
        ]),
    );
    let (out, output) = score_file(dir.path(), &input, &["--skip-invalid"]);
    assert_success(&out);
    let err = stderr(&out);
    assert!(
        err.contains("line 4: column \"perimeter_se\": is not valid UTF-8"),
        "{err}"
    );
    assert!(
        err.contains("line 5: column \"id\": is not valid UTF-8"),
        "{err}"
    );
    assert_eq!(summary_counts(&err), (567, 2), "{err}");
    assert_eq!(score_ids(&output).len(), 567);
}

#[test]
fn features_follow_the_rules_of_predict() {
    let dir = tempfile::tempdir().unwrap();
    let names = ml_serving::dataset::default_features();
    let cases: [(&str, &[u8]); 4] = [
        ("negative", b"-1.5"),
        ("infinite", b"inf"),
        ("too large for a float", b"1e999"),
        ("not a number", b"-nan"),
    ];
    for (what, value) in cases {
        // The server's validator refuses the same value in a JSON body (`-nan` and `inf` are
        // not JSON, which is a refusal too).
        let text = std::str::from_utf8(value).unwrap();
        let body = format!(
            "{{{}}}",
            names
                .iter()
                .map(|n| format!("\"{n}\": {}", if n == "area_se" { text } else { "1.0" }))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(
            ml_serving::server::features::parse_row(&names, body.as_bytes(), true).is_err(),
            "{what}: /predict accepts it"
        );

        let input = write(
            dir.path(),
            &damaged(&[(30, row_with(30, &[("area_se", value)]))]),
        );
        let (out, output) = score_file(dir.path(), &input, &[]);
        let err = assert_failure(&out);
        assert!(err.contains("line 32: column \"area_se\""), "{what}: {err}");
        assert!(!output.exists(), "{what}");
    }
    // An empty cell is a missing value, filled by the model's imputer as in training.
    let input = write(
        dir.path(),
        &damaged(&[(30, row_with(30, &[("area_se", b"")]))]),
    );
    let (out, output) = score_file(dir.path(), &input, &[]);
    assert_success(&out);
    assert_eq!(score_ids(&output).len(), 569);
}

#[test]
fn every_data_line_is_scored_or_reported_and_the_summary_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!("{},{}", "9".repeat(1 << 20), bundled_lines()[40]);
    let damage: Vec<(usize, Vec<u8>)> = vec![
        (0, row_with(0, &[("area_se", b"\"1")])),
        (3, row_with(3, &[("concavity_mean", b"1,2")])),
        (5, b"5,M".to_vec()),
        (8, row_with(8, &[("area_worst", b"-3"), ("area_se", b"?")])),
        (13, row_with(13, &[("area_se", b"\"12\"3")])),
        (21, row_with(21, &[("texture_worst", b"\xfe")])),
        (34, row_with(34, &[("id", b"\"a\nb\"")])), // a quoted newline: two bad lines
        (39, long.into_bytes()),
        (55, row_with(55, &[("perimeter_se", b"1e400")])),
        (89, b"\"".to_vec()),
    ];
    let input = write(dir.path(), &damaged(&damage));
    let (out, output) = score_file(dir.path(), &input, &["--skip-invalid"]);
    assert_success(&out);
    let err = stderr(&out);
    // 10 damaged rows, one of which became two lines: 570 data lines, 11 reports, 559 scored.
    assert_eq!(summary_counts(&err), (559, 11), "{err}");
    let reported: BTreeSet<u64> = err
        .lines()
        .filter_map(|l| l.split(", line ").nth(1))
        .map(|l| l.split(':').next().unwrap().parse().unwrap())
        .collect();
    let expected_lines: BTreeSet<u64> = damage
        .iter()
        // Row 34's quoted newline splits it over lines 36 and 37, and moves the rows after it.
        .map(|&(row, _)| row as u64 + 2 + u64::from(row > 34))
        .chain([37])
        .collect();
    assert_eq!(reported, expected_lines, "{err}");
    let scored: BTreeSet<String> = score_ids(&output).into_iter().collect();
    let mut expected = all_ids();
    for (row, _) in &damage {
        expected.remove(&(row + 1).to_string());
    }
    assert_eq!(scored, expected);
}
