//! The holes an adversarial review found, each kept closed: client-invented metric labels,
//! error amplification, API-key handling, settings, reload safety, decompression bombs,
//! connection bounds, shutdown and HTTP/1.1 details.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::process::*;
use common::*;
use tower::ServiceExt;

const BIN: &str = env!("CARGO_BIN_EXE_ml-serving");

// ------------------------------------------------------------------ in-process

#[tokio::test]
async fn invented_methods_share_one_metrics_label() {
    let app = default_app();
    let invented = "XYZZYINVENTEDMETHODTHATISLONG";
    let request = Request::builder()
        .method(invented)
        .uri("/health")
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(request).await.unwrap();
    let (_, metrics) = get(&app, "/metrics").await;
    let text = metrics.as_str().unwrap();
    assert!(!text.contains(invented), "a client's method became a label");
    assert!(text.contains(r#"method="other""#), "{text}");
}

#[tokio::test]
async fn a_body_of_repeated_unknown_keys_gets_a_bounded_answer() {
    let app = default_app();
    let mut body = String::from("{");
    for i in 0..5000 {
        body.push_str(&format!("\"unknown_key_{i}\":1,"));
    }
    body.push_str("\"x\":1}");
    let (status, answer) = post_json(&app, "/predict", &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let detail = answer["detail"].as_array().unwrap();
    assert_eq!(
        detail.len(),
        21,
        "20 errors listed, then one that counts the rest"
    );
    let last = detail.last().unwrap();
    assert_eq!(last["type"], "too_many_errors");
    // 5001 unknown keys + 6 missing features, 20 listed.
    assert!(
        last["msg"].as_str().unwrap().starts_with("4987 more"),
        "{last}"
    );
    let text = answer.to_string();
    assert_eq!(
        text.matches("concave_points_mean").count(),
        1,
        "the feature list appears once"
    );
    assert!(text.len() < 4096, "{} bytes", text.len());
}

#[tokio::test]
async fn a_huge_unknown_key_is_cut_in_the_error() {
    let app = default_app();
    let key = "k".repeat(100_000);
    let (status, answer) = post_json(&app, "/predict", &format!("{{\"{key}\":1}}")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.to_string().len() < 2048);
    assert_eq!(
        answer["detail"][0]["loc"][1]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        65
    );
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let (_, app) = Setup {
        api_key: Some("s3cret".to_string()),
        ..Setup::default()
    }
    .app();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let request = Request::post("/predict")
            .header("content-type", "application/json")
            .header("authorization", format!("{scheme} s3cret"))
            .body(Body::from(SAMPLE))
            .unwrap();
        let status = app.clone().oneshot(request).await.unwrap().status();
        assert_eq!(status, StatusCode::OK, "{scheme}");
    }
}

/// Trains into `dir/name` with `args` (a few ms).
fn train_named(dir: &Path, name: &str, args: &[&str]) -> std::path::PathBuf {
    let out = dir.join(name);
    train(&out, args);
    out
}

/// A model with other features.
fn train_other_model(dir: &Path) -> std::path::PathBuf {
    train_named(
        dir,
        "other.dat.gz",
        &["--features", "radius_mean,texture_mean,area_worst"],
    )
}

#[tokio::test]
async fn a_reload_that_would_change_the_features_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("model.dat.gz");
    std::fs::copy(bundled_model_path(), &live).unwrap();
    let (state, app) = Setup {
        model_path: live.clone(),
        ..Setup::default()
    }
    .app();
    let other = train_other_model(dir.path());
    std::fs::copy(&other, &live).unwrap();
    let err = state
        .reload()
        .expect_err("a model with other features was swapped in");
    assert!(err.to_string().contains("features"), "{err}");
    assert_eq!(post_json(&app, "/predict", SAMPLE).await.0, StatusCode::OK);
    let (_, doc) = get(&app, "/openapi.json").await;
    assert!(doc.to_string().contains("concave_points_mean"));
}

#[test]
fn a_gzip_bomb_is_refused_before_it_is_inflated() {
    use flate2::{Compression, write::GzEncoder};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.dat.gz");
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    let zeros = vec![b' '; 1 << 20];
    for _ in 0..64 {
        gz.write_all(&zeros).unwrap();
    }
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    let err = ml_serving::artifact::LoadedModel::load_bounded(&path, 1 << 20).unwrap_err();
    assert!(err.to_string().contains("more than 1048576 bytes"), "{err}");
    // The file itself is bounded too.
    let err = ml_serving::artifact::LoadedModel::load_bounded(&path, 1024).unwrap_err();
    assert!(err.to_string().contains("file is larger"), "{err}");
}

// ------------------------------------------------------------------ a real socket, in-process

/// A server on a real loopback socket with these connection bounds and this API key.
async fn socket_server(
    conn: ml_serving::server::ConnSettings,
    api_key: Option<&str>,
    timeout: Duration,
) -> (SocketAddr, tokio_util::sync::CancellationToken) {
    let (_, app) = Setup {
        api_key: api_key.map(str::to_string),
        timeout,
        ..Setup::default()
    }
    .app();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(ml_serving::server::serve(listener, app, stop.clone(), conn));
    (addr, stop)
}

fn short_timeouts() -> ml_serving::server::ConnSettings {
    ml_serving::server::ConnSettings {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..conn_settings(Duration::from_secs(5))
    }
}

/// Reads until the server closes; `None` if it has not within `limit`.
async fn closed_within(mut stream: TcpStream, limit: Duration) -> Option<Vec<u8>> {
    tokio::task::spawn_blocking(move || {
        stream.set_read_timeout(Some(limit)).unwrap();
        let mut got = Vec::new();
        match stream.read_to_end(&mut got) {
            Ok(_) => Some(got),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(got),
            Err(_) => None,
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_sent_a_byte_at_a_time_is_cut_at_the_header_timeout() {
    // Idle connections may stay an hour; a started head must end within 300 ms.
    let conn = ml_serving::server::ConnSettings {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(3600),
        ..conn_settings(Duration::from_secs(5))
    };
    let (addr, _stop) = socket_server(conn, None, Duration::from_secs(10)).await;
    let slow = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: abcdefghijklmnopqrstuvwxyz" {
            let mut buf = [0u8; 64];
            if matches!(stream.read(&mut buf), Ok(0)) || stream.write_all(&[*byte]).is_err() {
                return true; // closed by the server
            }
        }
        false
    });
    // 60 bytes at one per 100 ms would take 6 s, and the idle timeout is an hour.
    assert!(slow.await.unwrap(), "the slow head was not cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_and_an_idle_connection_are_closed() {
    let (addr, _stop) = socket_server(short_timeouts(), None, Duration::from_secs(10)).await;
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let idle = TcpStream::connect(addr).unwrap();
    // Without the timeouts neither would ever be closed; 20 s is a generous bound.
    assert!(closed_within(slow, Duration::from_secs(20)).await.is_some());
    assert!(closed_within(idle, Duration::from_secs(20)).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_serves_several_requests_before_going_idle() {
    let (addr, _stop) = socket_server(short_timeouts(), None, Duration::from_secs(10)).await;
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for _ in 0..3 {
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_until_one_closes() {
    let conn = ml_serving::server::ConnSettings {
        max_connections: 2,
        ..conn_settings(Duration::from_secs(5))
    };
    let (addr, _stop) = socket_server(conn, None, Duration::from_secs(10)).await;
    let first = TcpStream::connect(addr).unwrap();
    let _second = TcpStream::connect(addr).unwrap();
    let mut third = TcpStream::connect(addr).unwrap();
    third
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        third.read(&mut buf).is_err(),
        "a third connection was served"
    );
    drop(first);
    let answer = closed_within(third, Duration::from_secs(10)).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_head_is_431() {
    let (addr, _stop) = socket_server(
        conn_settings(Duration::from_secs(5)),
        None,
        Duration::from_secs(10),
    )
    .await;
    let mut stream = TcpStream::connect(addr).unwrap();
    let header = "a".repeat(40 * 1024);
    let _ = stream.write_all(
        format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {header}\r\n\r\n").as_bytes(),
    );
    let answer = closed_within(stream, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_length_over_the_limit_is_413_before_the_body() {
    let (addr, _stop) = socket_server(
        conn_settings(Duration::from_secs(5)),
        None,
        Duration::from_secs(60),
    )
    .await;
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 50000000\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    // The request timeout is 60 s: an answer within 10 s was not waiting for the body.
    let answer = closed_within(stream, Duration::from_secs(10))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(text.starts_with("http/1.1 413"), "{text}");
    assert!(!text.contains("100 continue"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_sent_before_the_body_is_read_says_connection_close() {
    let (addr, _stop) = socket_server(
        conn_settings(Duration::from_secs(5)),
        Some("s3cret"),
        Duration::from_secs(10),
    )
    .await;
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(
            format!(
                "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{SAMPLE}",
                SAMPLE.len()
            )
            .as_bytes(),
        )
        .unwrap();
    let answer = closed_within(stream, Duration::from_secs(10))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(text.starts_with("http/1.1 401"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    // A request whose body was read keeps the connection open.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(
            format!(
                "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Authorization: Bearer s3cret\r\nContent-Length: {}\r\n\r\n{SAMPLE}",
                SAMPLE.len()
            )
            .as_bytes(),
        )
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(!text.contains("connection: close"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_half_closes_still_gets_its_answer() {
    let (addr, _stop) = socket_server(
        conn_settings(Duration::from_secs(5)),
        None,
        Duration::from_secs(10),
    )
    .await;
    for _ in 0..5 {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let answer = closed_within(stream, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    }
}

// ------------------------------------------------------------------ the real process

/// Runs `ml-serving ARGS` with `env`, expecting a quick failure; returns the first line of
/// stderr.
fn fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("MODEL_PATH", bundled_model_path())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{args:?} {env:?} succeeded: {stderr}"
    );
    // The problem is on the first line (clap may add a pointer to --help after it).
    stderr.lines().next().unwrap_or("").to_string()
}

#[test]
fn bad_settings_are_one_line_errors_before_anything_starts() {
    for (var, value) in [
        ("MAX_IN_FLIGHT", "2305843009213693952"),
        ("MAX_CONNECTIONS", "0"),
        ("RELOAD_INTERVAL_SECS", "1e-9"),
        ("RUST_LOG", "ml_serving=notalevel"),
        ("MODEL_NAME", ""),
        ("MODEL_NAME", "a/b"),
        ("API_KEY", ""),
        ("API_KEY", "key\n"),
        ("API_KEY", " key"),
        ("LOG_JSON", "maybe"),
        ("MAX_HEADER_BYTES", "100"),
        ("HEADER_READ_TIMEOUT_SECS", "0"),
        ("SHUTDOWN_DELAY_SECS", "-1"),
    ] {
        let stderr = fails(&["serve"], &[(var, value)]);
        assert!(
            stderr.contains(var) || (var == "LOG_JSON" && stderr.contains("log-json")),
            "{var}={value:?}: {stderr}"
        );
    }
    // The usual spellings of a boolean are accepted (the run then stops at the next setting).
    for yes in ["1", "yes", "on", "true", "TRUE"] {
        let stderr = fails(&["serve"], &[("LOG_JSON", yes), ("MAX_BATCH_ROWS", "0")]);
        assert!(
            stderr.contains("MAX_BATCH_ROWS"),
            "LOG_JSON={yes}: {stderr}"
        );
    }
    let stderr = fails(&["loadtest", "--rate", "1e-20", "--duration", "1s"], &[]);
    assert!(stderr.contains("rate"), "{stderr}");
    let stderr = fails(&["healthcheck", "--timeout-secs", "0"], &[]);
    assert!(stderr.contains("timeout"), "{stderr}");
}

#[test]
fn an_empty_api_key_file_is_an_error_and_a_trailing_newline_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let stderr = fails(&["serve"], &[("API_KEY_FILE", empty.to_str().unwrap())]);
    assert!(stderr.contains("empty"), "{stderr}");

    let key = dir.path().join("key");
    std::fs::write(&key, "s3cret\n").unwrap();
    let server = Server::start(
        &bundled_model_path(),
        &[("API_KEY_FILE", key.to_str().unwrap())],
    );
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "POST /predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Authorization: Bearer s3cret\r\nContent-Length: {}\r\n\r\n{SAMPLE}",
        SAMPLE.len()
    )
    .unwrap();
    let (status, body) = read_response(&mut stream);
    assert_eq!(status, 200, "{body}");
    assert_eq!(http(server.addr, "POST", "/predict", Some(SAMPLE)).0, 401);
}

#[test]
fn a_failed_reload_is_retried_even_if_the_file_looks_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("model.dat.gz");
    std::fs::copy(bundled_model_path(), &live).unwrap();
    let server = Server::start(&live, &[("RELOAD_INTERVAL_SECS", "0.1")]);
    // A new model arrives broken (same size; then fixed keeping its time and size, as a
    // `chmod` would): the poller must try again while the last attempt failed.
    let other = std::fs::read(train_other_model_same_features(dir.path())).unwrap();
    let mut broken = other.clone();
    let n = broken.len();
    broken[n - 5] ^= 0xff; // the gzip CRC no longer matches
    let stamp = std::time::SystemTime::now() - Duration::from_secs(60);
    let write = |bytes: &[u8]| {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&live)
            .unwrap();
        (&file).write_all(bytes).unwrap();
        file.set_modified(stamp).unwrap();
    };
    write(&broken);
    assert!(
        eventually(Duration::from_secs(20), || server
            .logs()
            .contains("model reload refused")),
        "{}",
        server.logs()
    );
    write(&other);
    assert!(
        eventually(Duration::from_secs(20), || server
            .logs()
            .contains("model reloaded")),
        "{}",
        server.logs()
    );
}

/// The bundled model's features, trained with another seed: a different file that the live
/// server may swap in.
fn train_other_model_same_features(dir: &Path) -> std::path::PathBuf {
    train_named(dir, "seed7.dat.gz", &["--seed", "7"])
}

#[test]
fn after_sigterm_the_server_keeps_serving_for_the_delay_with_ready_503() {
    let mut server = Server::start(
        &bundled_model_path(),
        &[("SHUTDOWN_DELAY_SECS", "3"), ("DRAIN_TIMEOUT_SECS", "5")],
    );
    server.signal("TERM");
    assert!(eventually(Duration::from_secs(5), || server
        .get("/ready")
        .0
        == 503));
    // New connections are still accepted and answered during the delay.
    assert_eq!(http(server.addr, "POST", "/predict", Some(SAMPLE)).0, 200);
    let (status, _) = server.wait(Duration::from_secs(20)).expect("exited");
    assert!(status.success());
}

#[test]
fn a_connection_stuck_mid_headers_does_not_hold_the_exit() {
    let mut server = Server::start(&bundled_model_path(), &[("DRAIN_TIMEOUT_SECS", "60")]);
    let mut stuck = TcpStream::connect(server.addr).unwrap();
    stuck
        .write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert_eq!(server.get("/health").0, 200);
    let started = Instant::now();
    server.signal("TERM");
    let (status, _) = server.wait(Duration::from_secs(30)).expect("exited");
    assert!(status.success());
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_second_signal_exits_at_once() {
    let mut server = Server::start(&bundled_model_path(), &[("SHUTDOWN_DELAY_SECS", "600")]);
    server.signal("TERM");
    assert!(eventually(Duration::from_secs(5), || server
        .get("/ready")
        .0
        == 503));
    server.signal("INT");
    let (status, _) = server.wait(Duration::from_secs(30)).expect("exited");
    assert!(!status.success(), "a forced exit is not a clean one");
}

#[test]
fn a_sighup_as_soon_as_the_port_opens_does_not_kill_the_server() {
    let server = Server::start(&bundled_model_path(), &[]);
    server.signal("HUP");
    assert!(eventually(Duration::from_secs(10), || server
        .logs()
        .contains("nothing to reload")));
    assert_eq!(server.get("/health").0, 200);
}
