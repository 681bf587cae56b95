//! Trusting the load generator: its counts are exact, open-loop latencies include the time a
//! request waited behind a stalled one, it stops on time, and errors are counted as errors.
//! Every server here is a tiny axum app on 127.0.0.1:0 started by the test itself.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::{get, post};
use hyper::Method;
use ml_serving::client::loadtest::{LoadConfig, Report, StopReason, run_load};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_ml-serving");

/// Serves `app` on a free loopback port until the test's runtime ends; returns its URL.
async fn start(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A URL where nothing listens: a port that was free a moment ago.
async fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

fn config(url: &str, path: &str) -> LoadConfig {
    LoadConfig::new(url, path)
}

/// Runs a load to its end (no Ctrl-C).
async fn load(config: LoadConfig) -> Report {
    run_load(&config, CancellationToken::new()).await.unwrap()
}

fn status(report: &Report, code: u16) -> u64 {
    report.statuses.get(&code).copied().unwrap_or(0)
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    /// How many times each body was received, by its first byte.
    bodies: Mutex<std::collections::BTreeMap<u8, u64>>,
}

fn counting_app(counts: Arc<Counts>) -> Router {
    Router::new().route(
        "/count",
        post(move |body: Bytes| {
            let counts = counts.clone();
            async move {
                counts.requests.fetch_add(1, Ordering::SeqCst);
                *counts.bodies.lock().unwrap().entry(body[0]).or_default() += 1;
                "ok"
            }
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_counts_are_exact() {
    let counts = Arc::new(Counts::default());
    let url = start(counting_app(counts.clone())).await;
    let report = load(LoadConfig {
        method: Method::POST,
        bodies: vec![
            Bytes::from_static(b"a"),
            Bytes::from_static(b"b"),
            Bytes::from_static(b"c"),
        ],
        concurrency: 8,
        requests: Some(999),
        duration: Some(Duration::from_secs(60)),
        ..config(&url, "/count")
    })
    .await;
    assert_eq!(counts.requests.load(Ordering::SeqCst), 999);
    assert_eq!(
        (report.sent, report.answered(), status(&report, 200)),
        (999, 999, 999)
    );
    assert_eq!(
        (report.transport_errors, report.unfinished, report.errors()),
        (0, 0, 0)
    );
    assert_eq!(report.latency.len(), 999);
    assert_eq!(report.stopped_by, StopReason::Requests);
    // The bodies are used in turn.
    let bodies = counts.bodies.lock().unwrap().clone();
    assert_eq!(
        bodies.into_iter().collect::<Vec<_>>(),
        [(b'a', 333), (b'b', 333), (b'c', 333)]
    );
    report.check(0.0).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_counts_are_exact() {
    let counts = Arc::new(Counts::default());
    let url = start(counting_app(counts.clone())).await;
    let report = load(LoadConfig {
        method: Method::POST,
        bodies: vec![Bytes::from_static(b"x")],
        concurrency: 4,
        rate: Some(2000.0),
        requests: Some(500),
        ..config(&url, "/count")
    })
    .await;
    assert_eq!(counts.requests.load(Ordering::SeqCst), 500);
    assert_eq!(
        (report.sent, status(&report, 200), report.missed),
        (500, 500, 0)
    );
    assert_eq!(report.service_time.as_ref().unwrap().len(), 500);
}

/// The server holds request number `STALLED` for `STALL`, and notes when the stall began and
/// ended. Every other request is answered at once.
const STALLED: u64 = 20;
const STALL: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Stall {
    seen: AtomicU64,
    window: Mutex<Option<(Instant, Instant)>>,
}

fn stalling_app(stall: Arc<Stall>) -> Router {
    Router::new().route(
        "/",
        get(move || {
            let stall = stall.clone();
            async move {
                if stall.seen.fetch_add(1, Ordering::SeqCst) == STALLED {
                    let began = Instant::now();
                    tokio::time::sleep(STALL).await;
                    *stall.window.lock().unwrap() = Some((began, Instant::now()));
                }
                "ok"
            }
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_latency_includes_the_wait_behind_a_stall() {
    let stall = Arc::new(Stall::default());
    let url = start(stalling_app(stall.clone())).await;
    let interval = Duration::from_millis(5);
    let report = load(LoadConfig {
        concurrency: 1,
        rate: Some(1.0 / interval.as_secs_f64()),
        requests: Some(100),
        trace: true,
        ..config(&url, "/")
    })
    .await;
    assert_eq!((report.sent, status(&report, 200)), (100, 100));
    let (began, ended) = stall.window.lock().unwrap().expect("the server stalled");

    // Every request meant to start during the stall had to wait for its end: its latency
    // covers at least the rest of the stall.
    let mut scheduled_in_stall = 0;
    for record in &report.trace {
        let intended = report.started + record.intended;
        if intended >= began && intended < ended {
            scheduled_in_stall += 1;
            assert!(
                record.latency >= ended - intended,
                "request {} was due {:?} before the stall ended but reports only {:?}",
                record.slot,
                ended - intended,
                record.latency
            );
        }
    }
    let expected = (STALL.as_micros() / interval.as_micros()) as u64; // 40
    assert!(
        scheduled_in_stall >= expected - 1,
        "only {scheduled_in_stall} requests were due during the stall"
    );
    // The histogram shows it too: the stalled request itself, and roughly 30 others that
    // waited 50 ms or more (a generator with coordinated omission would show one).
    assert!(report.latency.max() >= STALL.as_micros() as u64);
    let waited_50ms = report.latency.count_between(50_000, u64::MAX);
    assert!(
        waited_50ms >= 30,
        "only {waited_50ms} requests report ≥ 50 ms"
    );
    assert!(report.latency.value_at_quantile(0.7) >= 50_000);
    // Service time (from the actual send) does not include the wait: one slow request only.
    let service = report.service_time.as_ref().unwrap();
    assert!(service.count_between(50_000, u64::MAX) <= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_sees_the_stall_once_as_it_should() {
    // The contrast that makes the test above meaningful: in a closed loop the requests that
    // would have been due during the stall are simply not sent, so one latency is long.
    let stall = Arc::new(Stall::default());
    let url = start(stalling_app(stall.clone())).await;
    let report = load(LoadConfig {
        concurrency: 1,
        requests: Some(100),
        ..config(&url, "/")
    })
    .await;
    assert_eq!(status(&report, 200), 100);
    assert!(report.latency.max() >= STALL.as_micros() as u64);
    assert!(report.latency.count_between(50_000, u64::MAX) <= 3);
}

fn slow_app() -> Router {
    Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_on_time_against_a_slow_server() {
    let url = start(slow_app()).await;
    for rate in [None, Some(100.0)] {
        let began = Instant::now();
        let report = load(LoadConfig {
            concurrency: 4,
            rate,
            duration: Some(Duration::from_secs(1)),
            timeout: Duration::from_secs(60),
            ..config(&url, "/slow")
        })
        .await;
        let took = began.elapsed();
        assert!(
            took < Duration::from_millis(1500),
            "{rate:?}: took {took:?} for a 1 s test"
        );
        assert!(
            report.elapsed >= Duration::from_secs(1),
            "{rate:?}: {:?}",
            report.elapsed
        );
        assert_eq!(report.stopped_by, StopReason::Duration);
        assert_eq!(
            (report.sent, report.unfinished, report.answered()),
            (4, 4, 0)
        );
        if rate.is_some() {
            // 100 requests were due in the second; 4 found a connection.
            assert!(
                (90..=97).contains(&report.missed),
                "missed {}",
                report.missed
            );
        }
        assert!(
            report.check(1.0).is_err(),
            "nothing completed: no measurement"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_and_still_reports() {
    let seen = Arc::new(AtomicU64::new(0));
    let hundred = Arc::new(Notify::new());
    let app = Router::new().route(
        "/",
        get({
            let (seen, hundred) = (seen.clone(), hundred.clone());
            move || {
                let (seen, hundred) = (seen.clone(), hundred.clone());
                async move {
                    if seen.fetch_add(1, Ordering::SeqCst) + 1 == 100 {
                        hundred.notify_one();
                    }
                    "ok"
                }
            }
        }),
    );
    let url = start(app).await;
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            hundred.notified().await;
            stop.cancel();
        }
    });
    let report = run_load(
        &LoadConfig {
            concurrency: 2,
            duration: Some(Duration::from_secs(60)),
            ..config(&url, "/")
        },
        stop,
    )
    .await
    .unwrap();
    assert_eq!(report.stopped_by, StopReason::Interrupted);
    assert!(report.answered() >= 98, "{}", report.answered());
    assert_eq!(report.sent, report.answered() + report.unfinished);
    assert!(report.elapsed < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_are_errors() {
    let seen = Arc::new(AtomicU64::new(0));
    let app = Router::new().route(
        "/flaky",
        get(move || {
            let seen = seen.clone();
            async move {
                if seen.fetch_add(1, Ordering::SeqCst).is_multiple_of(4) {
                    (StatusCode::INTERNAL_SERVER_ERROR, "boom")
                } else {
                    (StatusCode::OK, "ok")
                }
            }
        }),
    );
    let url = start(app).await;
    let report = load(LoadConfig {
        concurrency: 3,
        requests: Some(400),
        ..config(&url, "/flaky")
    })
    .await;
    assert_eq!((status(&report, 200), status(&report, 500)), (300, 100));
    assert_eq!((report.errors(), report.transport_errors), (100, 0));
    assert_eq!(report.error_rate(), Some(0.25));
    assert!(report.check(0.0).is_err());
    assert!(report.check(0.2).is_err());
    report.check(0.25).unwrap();
    assert_eq!(report.summary().statuses["500"], 100);

    // The command line exits non-zero above --max-error-rate, zero at or below it.
    let run = |max: &'static str| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(BIN)
                .args([
                    "loadtest", "--url", &url, "--path", "/flaky", "-n", "100", "-c", "2", "-q",
                ])
                .args(["--max-error-rate", max])
                .env_remove("API_KEY")
                .output()
                .unwrap()
        })
    };
    let strict = run("0").await.unwrap();
    assert!(!strict.status.success());
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert!(stderr.contains("above --max-error-rate"), "{stderr}");
    assert!(String::from_utf8_lossy(&strict.stdout).contains("500: 25"));
    assert!(run("30%").await.unwrap().status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_transport_errors() {
    let url = closed_port_url().await;
    let report = load(LoadConfig {
        concurrency: 2,
        requests: Some(50),
        ..config(&url, "/")
    })
    .await;
    assert_eq!(
        (report.sent, report.transport_errors, report.answered()),
        (50, 50, 0)
    );
    assert_eq!(report.error_rate(), Some(1.0));
    assert!(report.check(0.5).is_err());
    let kinds: Vec<&String> = report.transport_error_kinds.keys().collect();
    assert!(kinds.iter().all(|k| k.contains("refused")), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_closed_without_an_answer_are_transport_errors() {
    // A server that reads the request and hangs up without answering.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = socket.readable().await;
                let _ = socket.try_read(&mut buf);
            });
        }
    });
    let report = load(LoadConfig {
        concurrency: 2,
        requests: Some(30),
        ..config(&url, "/")
    })
    .await;
    assert_eq!(
        (report.sent, report.transport_errors, report.answered()),
        (30, 30, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_are_transport_errors() {
    let url = start(slow_app()).await;
    let report = load(LoadConfig {
        concurrency: 2,
        requests: Some(4),
        timeout: Duration::from_millis(100),
        ..config(&url, "/slow")
    })
    .await;
    assert_eq!((report.transport_errors, report.answered()), (4, 0));
    assert!(
        report
            .transport_error_kinds
            .keys()
            .all(|k| k.starts_with("no answer within"))
    );
}

/// The real server in process, on a free port, served as `ml-serving serve` serves it.
async fn start_model_server() -> String {
    let (_, app) = common::Setup {
        max_in_flight: 512,
        ..common::Setup::default()
    }
    .app();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conn = common::conn_settings(Duration::from_secs(5));
    tokio::spawn(ml_serving::server::serve(
        listener,
        app,
        CancellationToken::new(),
        conn,
    ));
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_drives_the_real_server() {
    let url = start_model_server().await;
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(BIN)
                .arg("loadtest")
                .args(args)
                .env_remove("API_KEY")
                .env_remove("ML_SERVING_URL")
                .output()
                .unwrap()
        })
    };
    let strings = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let csv = common::repo("data/breast_cancer.csv").display().to_string();
    // The sample row from the server, rows of the bundled CSV, and GET /health.
    for extra in [
        strings(&[]),
        strings(&["--data", &csv]),
        strings(&["--path", "/predict/batch", "--data", &csv]),
        strings(&["--path", "/health", "--rate", "2000"]),
    ] {
        let mut args = strings(&["--url", &url, "-n", "300", "-c", "4", "-q", "--json"]);
        args.extend(extra.clone());
        let out = run(args).await.unwrap();
        assert!(
            out.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["statuses"]["200"], 300, "{extra:?}: {summary}");
        assert_eq!(summary["errors"], 0);
        assert!(summary["latency_us"]["p99"].as_u64().unwrap() > 0);
    }
}
