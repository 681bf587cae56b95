//! The model repository in a real `serve` process, polled: versions and models added,
//! removed and broken while `ml-serving loadtest` keeps requests going to the changed model and
//! to an untouched one. No request may fail on either.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::process::{BIN, Server, eventually, http, serve_refuses, train};
use common::{SAMPLE, bundled_model_path, repo};
use serde_json::Value;

fn put(path: &Path, from: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Written aside then renamed, as a deployment should: the poller never sees half a file.
    let tmp = path.with_file_name(".incoming");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// `loadtest` against `path` for `seconds`, with `body`; its JSON report when it ends.
fn loadtest(server: &Server, path: &str, body: &Path, seconds: u32) -> Child {
    Command::new(BIN)
        .args([
            "loadtest",
            "--url",
            &format!("http://{}", server.addr),
            "--path",
            path,
        ])
        .arg("--body")
        .arg(body)
        .args(["-c", "2", "-d", &format!("{seconds}s"), "-q", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn report(child: Child) -> Value {
    let out = child.wait_with_output().unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("no report: {}", String::from_utf8_lossy(&out.stderr)))
}

fn latest(server: &Server, model: &str) -> Option<String> {
    let (_, listing) = server.get("/models");
    listing["models"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == model)?["latest"]
        .as_str()
        .map(str::to_string)
}

#[test]
fn models_change_under_load_without_a_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("models");
    put(&root.join("cancer/1/model.dat.gz"), &bundled_model_path());
    train(
        &root.join("other/1/model.dat.gz"),
        &["--features", "radius_mean,texture_mean,area_worst"],
    );
    for file in ["model.onnx", "model.json"] {
        let fixture = repo(&format!("tests/fixtures/onnx/logreg_cancer.{}", &file[6..]));
        put(&root.join("onnx/1").join(file), &fixture);
    }
    let cancer_body = dir.path().join("cancer.json");
    std::fs::write(&cancer_body, SAMPLE).unwrap();
    let other_body = dir.path().join("other.json");
    std::fs::write(
        &other_body,
        r#"{"radius_mean":17.99,"texture_mean":10.38,"area_worst":2019.0}"#,
    )
    .unwrap();
    let server = Server::start_repository(
        &root,
        &[
            ("RELOAD_INTERVAL_SECS", "0.1"),
            ("DEFAULT_MODEL", "cancer"),
            // As in the image: MODEL_PATH is set, and the repository takes its place.
            ("MODEL_PATH", "/nonexistent/model.dat.gz"),
        ],
    );
    assert_eq!(server.get("/ready").0, 200);
    let (_, listing) = server.get("/models");
    let kinds: Vec<&str> = listing["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["versions"][0]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ml-serving", "onnx", "ml-serving"], "{listing}");

    let changed = loadtest(&server, "/models/cancer/predict", &cancer_body, 8);
    let untouched = loadtest(&server, "/models/other/predict", &other_body, 8);
    let tutorial = loadtest(&server, "/predict", &cancer_body, 8);
    let wait = Duration::from_secs(5);

    // A new version: it becomes latest.
    put(&root.join("cancer/2/model.dat.gz"), &bundled_model_path());
    assert!(eventually(wait, || latest(&server, "cancer").as_deref() == Some("2")));
    // A broken version: refused, version 2 keeps serving.
    std::fs::create_dir_all(root.join("cancer/3")).unwrap();
    std::fs::write(root.join("cancer/3/model.dat.gz"), b"broken").unwrap();
    assert!(eventually(wait, || server
        .get("/models")
        .1
        .to_string()
        .contains("cancer/3/model.dat.gz")));
    assert_eq!(latest(&server, "cancer").as_deref(), Some("2"));
    std::fs::remove_dir_all(root.join("cancer/3")).unwrap();
    // A new model.
    put(&root.join("added/1/model.dat.gz"), &bundled_model_path());
    assert!(eventually(wait, || latest(&server, "added").is_some()));
    assert_eq!(
        http(server.addr, "POST", "/models/added/predict", Some(SAMPLE)).0,
        200
    );
    // A removed version: back to version 1.
    std::fs::remove_dir_all(root.join("cancer/2")).unwrap();
    assert!(eventually(wait, || latest(&server, "cancer").as_deref() == Some("1")));

    for (name, child) in [
        ("changed", changed),
        ("untouched", untouched),
        ("tutorial", tutorial),
    ] {
        let summary = report(child);
        let ok = summary["statuses"]["200"].as_u64().unwrap_or(0);
        assert!(ok > 0, "{name}: no request answered: {summary}");
        assert_eq!(summary["errors"], 0, "{name}: {summary}");
        assert_eq!(
            summary["statuses"].as_object().unwrap().len(),
            1,
            "{name}: {summary}"
        );
        eprintln!("{name}: {ok} requests, 0 failed");
    }
    let (_, metrics) = server.get("/metrics");
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        metrics.contains(r#"model_version_loads_total{model="cancer",outcome="failure"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"model_version_unloads_total{model="cancer"}"#));
}

#[test]
fn a_repository_with_a_broken_required_model_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("broken/1")).unwrap();
    std::fs::write(root.join("broken/1/model.onnx"), b"\x08garbage").unwrap();
    let stderr = serve_refuses(&[("MODEL_REPOSITORY", root.as_os_str())]);
    assert!(stderr.contains("broken/1/model.onnx"), "{stderr}");
    // MODEL_NAME names the one file's model: with a repository it is a mistake.
    let stderr = serve_refuses(&[
        ("MODEL_REPOSITORY", root.as_os_str()),
        ("MODEL_NAME", "x".as_ref()),
    ]);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}
