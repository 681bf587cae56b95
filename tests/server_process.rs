//! Tests of the real server process and real sockets: start-up failures, a request over TCP,
//! draining on SIGTERM with a request in flight, and reloading on SIGHUP and on file change.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::process::*;
use common::*;

fn run_serve(model: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("serve")
        .env("MODEL_PATH", model)
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_model_stops_start_up_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.dat.gz");
    let (ok, stderr) = run_serve(&path);
    assert!(!ok);
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("no such file"), "{stderr}");
}

#[test]
fn a_corrupt_model_stops_start_up_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.dat.gz");
    let good = std::fs::read(bundled_model_path()).unwrap();
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let (ok, stderr) = run_serve(&path);
    assert!(!ok);
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("corrupt or truncated"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_bad_setting_is_refused_before_serving() {
    let out = Command::new(BIN)
        .args(["serve", "--port", "0", "--host", "127.0.0.1"])
        .env("DRAIN_TIMEOUT_SECS", "-1")
        .env("MODEL_PATH", bundled_model_path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DRAIN_TIMEOUT_SECS"));
}

#[tokio::test]
async fn a_real_socket_on_port_zero_answers_and_shuts_down_gracefully() {
    let (_, app) = Setup::default().app();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(ml_serving::server::serve(
        listener,
        app,
        stop.clone(),
        common::conn_settings(Duration::from_secs(5)),
    ));
    let url = format!("http://{addr}");
    let reply = ml_serving::client::http::request_once(
        &url,
        hyper::Method::POST,
        "/predict",
        Some(SAMPLE.into()),
        None,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(&reply.body[..], br#"{"label":"M","prediction":1}"#);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the port is closed"
    );
}

#[test]
fn sigterm_drains_a_request_in_flight_then_exits_zero() {
    let mut server = Server::start(&bundled_model_path(), &[("DRAIN_TIMEOUT_SECS", "5")]);
    // A request whose body has only half arrived is in flight.
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (head, tail) = SAMPLE.split_at(SAMPLE.len() / 2);
    write!(
        stream,
        "POST /predict HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{head}",
        SAMPLE.len()
    )
    .unwrap();
    stream.flush().unwrap();
    assert_eq!(server.get("/ready").0, 200);
    server.signal("TERM");
    // Shutdown has begun once the listener refuses new connections.
    let addr = server.addr;
    assert!(eventually(Duration::from_secs(5), || TcpStream::connect(
        addr
    )
    .is_err()));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "it waits for the request in flight"
    );
    stream.write_all(tail.as_bytes()).unwrap();
    let (status, body) = read_response(&mut stream);
    assert_eq!(
        (status, body),
        (200, serde_json::json!({"label": "M", "prediction": 1}))
    );
    let (exit, _) = server
        .wait(Duration::from_secs(5))
        .expect("exits after draining");
    assert!(
        exit.success(),
        "exit status {exit}; logs: {}",
        server.logs()
    );
}

#[test]
fn a_request_stuck_past_the_drain_timeout_does_not_hold_the_exit() {
    let mut server = Server::start(&bundled_model_path(), &[("DRAIN_TIMEOUT_SECS", "0.5")]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{",
        SAMPLE.len()
    )
    .unwrap();
    assert_eq!(server.get("/health").0, 200);
    server.signal("TERM");
    let (exit, took) = server
        .wait(Duration::from_secs(5))
        .expect("exits by itself");
    assert!(exit.success(), "exit status {exit}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(server.logs().contains("drain timeout"), "{}", server.logs());
}

fn train_into(path: &Path, seed: u64) {
    let args = ml_serving::train::TrainArgs {
        data: repo("data/breast_cancer.csv"),
        seed,
        out: path.to_path_buf(),
        ..ml_serving::train::TrainArgs::default()
    };
    let (artifact, _) = ml_serving::train::train(&args).unwrap();
    artifact.save(path).unwrap();
}

fn sha(server: &Server) -> String {
    server.get("/info").1["artifact"]["sha256"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn sighup_swaps_in_a_new_model_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.dat.gz");
    std::fs::copy(bundled_model_path(), &path).unwrap();
    let server = Server::start(&path, &[]);
    let first = sha(&server);

    train_into(&path, 7);
    server.signal("HUP");
    assert!(
        eventually(Duration::from_secs(10), || sha(&server) != first),
        "the new model is served"
    );
    let second = sha(&server);

    std::fs::write(&path, b"not a model").unwrap();
    server.signal("HUP");
    let refused = r#"model_loads_total{trigger="signal",outcome="failure"} 1"#;
    assert!(
        eventually(Duration::from_secs(10), || server
            .get("/metrics")
            .1
            .as_str()
            .unwrap_or("")
            .contains(refused)),
        "the refusal is counted"
    );
    assert_eq!(sha(&server), second, "the good model keeps serving");
    let (status, body) = http(server.addr, "POST", "/predict", Some(SAMPLE));
    assert_eq!((status, body["label"].as_str()), (200, Some("M")));
    // Logged before it is counted, but read from the server's stderr pipe by another thread:
    // the line may reach `logs()` a moment after the count reaches /metrics.
    assert!(
        eventually(Duration::from_secs(10), || server
            .logs()
            .contains("model reload refused")),
        "{}",
        server.logs()
    );
}

#[test]
fn a_changed_file_is_reloaded_when_polling_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.dat.gz");
    std::fs::copy(bundled_model_path(), &path).unwrap();
    let server = Server::start(&path, &[("RELOAD_INTERVAL_SECS", "0.1")]);
    let first = sha(&server);
    train_into(&path, 11);
    assert!(eventually(Duration::from_secs(10), || sha(&server) != first));
    let metrics = server.get("/metrics").1;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains(r#"model_loads_total{trigger="poll",outcome="success"} 1"#)
    );
}

#[test]
fn the_access_log_has_one_line_per_request_with_its_id() {
    let server = Server::start(&bundled_model_path(), &[("ACCESS_LOG", "true")]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "POST /predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Request-Id: req-42\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{SAMPLE}",
        SAMPLE.len()
    )
    .unwrap();
    assert_eq!(read_response(&mut stream).0, 200);
    let line = |logs: &str| {
        logs.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["fields"]["message"] == "access")
    };
    assert!(eventually(Duration::from_secs(10), || line(&server.logs()).is_some()));
    let access = line(&server.logs()).unwrap();
    assert_eq!(access["fields"]["status"], 200, "{access}");
    assert_eq!(access["span"]["id"], "req-42", "{access}");
    assert_eq!(access["span"]["route"], "/predict", "{access}");
    assert_eq!(access["span"]["method"], "POST", "{access}");
}

#[test]
fn without_the_access_log_requests_are_not_logged() {
    let server = Server::start(&bundled_model_path(), &[]);
    assert_eq!(http(server.addr, "POST", "/predict", Some(SAMPLE)).0, 200);
    assert_eq!(server.get("/health").0, 200);
    assert!(!server.logs().contains("\"access\""), "{}", server.logs());
}

#[test]
fn the_real_process_counts_from_its_first_request() {
    // `serve` builds the metrics recorder on a thread of its own while the model loads; the
    // model's counters, taken at start-up, must still land in it (a handle taken before the
    // recorder is installed counts nothing, for ever).
    let server = Server::start(&bundled_model_path(), &[]);
    let (status, body) = http(server.addr, "POST", "/predict", Some(SAMPLE));
    assert_eq!(status, 200, "{body}");
    let label = body["label"].as_str().unwrap().to_string();
    let metrics = server.get("/metrics").1;
    let text = metrics.as_str().unwrap();
    let counted = text.lines().any(|l| {
        l.starts_with("predictions_total{")
            && l.contains(&format!("label=\"{label}\""))
            && l.ends_with(" 1")
    });
    assert!(counted, "{text}");
    for line in [
        r#"model_loads_total{trigger="startup",outcome="success"} 1"#,
        r#"http_requests_total{method="POST",route="/predict",status="200"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
}
