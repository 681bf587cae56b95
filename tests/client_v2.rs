//! `ml-serving predict --protocol v2`, `predict --grpc` and `loadtest --v2 json|binary` /
//! `--grpc`, the built binary, against a real server (REST and gRPC on free loopback ports, in
//! process): the answers of `/predict` on bundled rows, the server's errors, the API key.

mod common;

use std::process::{Command, Output};

use common::servers::Servers;
use common::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ml-serving");

impl Servers {
    fn run(&self, args: &[&str]) -> Output {
        // The subcommand, then --url (feature flags, if any, come last).
        Command::new(BIN)
            .arg(args[0])
            .args(["--url", &self.url])
            .args(&args[1..])
            .env_remove("API_KEY")
            .env_remove("ML_SERVING_URL")
            .output()
            .unwrap()
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `--name value` pairs for a bundled row.
fn flags(row: &serde_json::Map<String, Value>) -> Vec<String> {
    row.iter()
        .flat_map(|(k, v)| [format!("--{k}"), v.to_string()])
        .collect()
}

#[test]
fn predict_over_v2_and_grpc_gives_predicts_answers() {
    let servers = Servers::start(None);
    // Rows of both classes, by the file's own diagnosis.
    let rows = bundled_rows();
    let picked: Vec<_> = rows.iter().step_by(37).cloned().collect();
    for (row, _) in picked {
        let features = flags(&row);
        let features: Vec<&str> = features.iter().map(String::as_str).collect();
        let plain = servers.run(&[&["predict", "--json"][..], &features].concat());
        let expected: Value = serde_json::from_slice(&plain.stdout).unwrap();
        let expected = &expected["answer"];
        for how in [&["--protocol", "v2"][..], &["--grpc", &servers.grpc]] {
            let out = servers.run(&[&["predict", "--json"][..], how, &features].concat());
            let (stdout, stderr) = text(&out);
            assert!(out.status.success(), "{how:?}: {stderr}");
            let answer: Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(&answer["answer"], expected, "{how:?}");
        }
    }
    // The sample row, in the plain format.
    let out = servers.run(&["predict", "--grpc", &servers.grpc]);
    assert_eq!(text(&out).0, "OK  label=M prediction=1\n");
    let out = servers.run(&["predict", "--protocol", "v2"]);
    assert_eq!(text(&out).0, "200 OK  label=M prediction=1\n");
}

#[test]
fn predict_over_v2_and_grpc_reports_the_servers_errors() {
    let servers = Servers::start(None);
    let row: Vec<String> = flags(&bundled_rows()[0].0)
        .into_iter()
        .map(|f| if f == "153.4" { "-1".to_string() } else { f })
        .collect();
    let row: Vec<&str> = row.iter().map(String::as_str).collect();
    let out = servers.run(&[&["predict", "--protocol", "v2"][..], &row].concat());
    assert!(!out.status.success());
    assert!(
        text(&out)
            .1
            .contains("400 Bad Request: input \"input-0\": row 0, column 3 (area_se) is -1"),
        "{}",
        text(&out).1
    );
    let out = servers.run(&[&["predict", "--grpc", &servers.grpc][..], &row].concat());
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains(
            "answered InvalidArgument: input \"input-0\": row 0, column 3 (area_se) is -1"
        ),
        "{}",
        text(&out).1
    );
    let out = servers.run(&["predict", "--grpc", &servers.grpc, "--model-name", "nope"]);
    assert!(
        text(&out).1.contains("NotFound: Unknown model \"nope\""),
        "{}",
        text(&out).1
    );
    let out = servers.run(&["predict", "--grpc", &servers.grpc, "--area_se", "3"]);
    assert!(
        text(&out).1.contains("missing feature concavity_mean"),
        "{}",
        text(&out).1
    );
}

#[test]
fn the_api_key_goes_in_the_header_and_the_metadata() {
    let servers = Servers::start(Some("k3y"));
    for how in [&["--protocol", "v2"][..], &["--grpc", &servers.grpc]] {
        let out = servers.run(&[&["predict"][..], how].concat());
        assert!(!out.status.success(), "{how:?}");
        assert!(
            text(&out).1.contains("Missing or wrong API key"),
            "{}",
            text(&out).1
        );
        let out = servers.run(&[&["predict", "--api-key", "k3y"][..], how].concat());
        assert!(out.status.success(), "{how:?}: {}", text(&out).1);
        let load = if how[0] == "--grpc" {
            how.to_vec()
        } else {
            vec!["--v2", "binary"]
        };
        let base = ["loadtest", "-n", "20", "-c", "2", "-q", "--json"];
        let out = servers.run(&[&base[..], &load, &["--api-key", "k3y"]].concat());
        assert!(out.status.success(), "{load:?}: {}", text(&out).1);
        let out = servers.run(&[&base[..], &load].concat());
        let report: Value = serde_json::from_str(&text(&out).0).unwrap();
        assert_eq!(report["statuses"]["401"], 20, "{load:?}: {report}");
    }
}

#[test]
fn loadtest_drives_v2_json_binary_and_grpc_with_batches() {
    let servers = Servers::start(None);
    let data = repo("data/breast_cancer.csv");
    let data = data.to_str().unwrap();
    for how in [
        vec!["--v2", "json"],
        vec!["--v2", "binary"],
        vec!["--grpc", &servers.grpc],
    ] {
        let out = servers.run(
            &[
                &[
                    "loadtest",
                    "-n",
                    "30",
                    "-c",
                    "2",
                    "-q",
                    "--json",
                    "--batch-rows",
                    "100",
                    "--data",
                    data,
                ][..],
                &how,
            ]
            .concat(),
        );
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{how:?}: {stderr}");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["statuses"]["200"], 30, "{how:?}: {report}");
    }
    // A refused request counts as an error, not as a success: 2000 rows are over the limit.
    let out = servers.run(&[
        "loadtest",
        "-n",
        "4",
        "-q",
        "--json",
        "--v2",
        "binary",
        "--batch-rows",
        "2000",
    ]);
    assert!(!out.status.success());
    let report: Value = serde_json::from_str(&text(&out).0).unwrap();
    assert_eq!(report["statuses"]["413"], 4, "{report}");
    let out = servers.run(&[
        "loadtest",
        "-n",
        "4",
        "-q",
        "--json",
        "--grpc",
        &servers.grpc,
        "--batch-rows",
        "2000",
    ]);
    let report: Value = serde_json::from_str(&text(&out).0).unwrap();
    assert_eq!(
        report["statuses"]["400"], 4,
        "INVALID_ARGUMENT as 400: {report}"
    );
}
