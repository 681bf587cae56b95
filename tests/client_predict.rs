//! `ml-serving predict`, the built binary, against the real server (the library's `app` and
//! `serve` on a free loopback port, in process): the sample row, feature flags, a file,
//! standard input, a refused value and the API key.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::servers::Servers;
use common::{SAMPLE, repo};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ml-serving");

impl Servers {
    /// Runs `ml-serving predict --url <server> ARGS`, with `stdin` piped in if given.
    fn predict(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
        let mut child = Command::new(BIN)
            .args(["predict", "--url", &self.url])
            .args(args)
            .env_remove("API_KEY")
            .env_remove("ML_SERVING_URL")
            .envs(env.iter().copied())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_label(out: &Output, label: &str) {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        stderr(out)
    );
    assert!(
        stdout(out).starts_with("200 OK") && stdout(out).contains(&format!("label={label}")),
        "{}",
        stdout(out)
    );
}

#[test]
fn the_sample_row_is_malignant() {
    let server = Servers::start(None);
    assert_label(&server.predict(&[], None, &[]), "M");
    // From the artifact instead of the server's OpenAPI document.
    let model = repo("model/model_binary.dat.gz");
    assert_label(
        &server.predict(&["--model", model.to_str().unwrap()], None, &[]),
        "M",
    );
    // As JSON, for scripts.
    let out = server.predict(&["--json"], None, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"status": 200, "answer": {"label": "M", "prediction": 1}})
    );
}

#[test]
fn features_from_flags() {
    let server = Servers::start(None);
    let out = server.predict(
        &[
            "--concavity_mean",
            "0.3001",
            "--concave_points_mean",
            "0.1471",
            "--perimeter_se",
            "8.589",
            "--area_se=153.4",
            "--texture_worst",
            "17.33",
            "--area_worst",
            "2019.0",
        ],
        None,
        &[],
    );
    assert_label(&out, "M");
    // A small, smooth cell: benign; with the repeated --feature form.
    let out = server.predict(
        &[
            "--feature",
            "concavity_mean=0.01",
            "--feature",
            "concave_points_mean=0.01",
            "--feature",
            "perimeter_se=1",
            "--feature",
            "area_se=10",
            "--feature",
            "texture_worst=10",
            "--feature",
            "area_worst=300",
        ],
        None,
        &[],
    );
    assert_label(&out, "B");
}

#[test]
fn features_from_a_file_and_from_stdin() {
    let server = Servers::start(None);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("row.json");
    std::fs::write(&file, SAMPLE).unwrap();
    assert_label(
        &server.predict(&["--file", file.to_str().unwrap()], None, &[]),
        "M",
    );
    assert_label(&server.predict(&["-"], Some(SAMPLE), &[]), "M");
    assert_label(&server.predict(&["--stdin"], Some(SAMPLE), &[]), "M");
}

#[test]
fn a_bad_value_fails_with_the_servers_message() {
    let server = Servers::start(None);
    let out = server.predict(
        &[
            "--concavity_mean",
            "0.3001",
            "--concave_points_mean",
            "0.1471",
            "--perimeter_se",
            "8.589",
            "--area_se",
            "-1",
            "--texture_worst",
            "abc",
            "--area_worst",
            "2019.0",
        ],
        None,
        &[],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("422 Unprocessable Entity"), "{err}");
    // The server's own words, for every bad field.
    assert!(
        err.contains("area_se: Input should be greater than or equal to 0"),
        "{err}"
    );
    assert!(
        err.contains("texture_worst: Input should be a valid number"),
        "{err}"
    );
    assert!(stdout(&out).starts_with("422"), "{}", stdout(&out));

    // Malformed JSON on stdin: the server's 400 message.
    let out = server.predict(&["-"], Some("{not json"), &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("400 Bad Request: Malformed JSON"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_api_key_is_sent() {
    let server = Servers::start(Some("s3cret"));
    let out = server.predict(&[], None, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("401 Unauthorized"),
        "{}",
        stderr(&out)
    );
    let out = server.predict(&[], None, &[("API_KEY", "wrong")]);
    assert!(!out.status.success());
    assert_label(&server.predict(&[], None, &[("API_KEY", "s3cret")]), "M");
}

#[test]
fn no_server_is_an_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let out = Command::new(BIN)
        .args(["predict", "--url", &url, "--timeout-secs", "5"])
        .env_remove("API_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Connection refused"),
        "{}",
        stderr(&out)
    );
}
