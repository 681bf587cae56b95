//! Logs (`tracing`, filtered by `RUST_LOG`, JSON on request) and the process-global Prometheus
//! recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds: from 50 µs (an in-process prediction) to 10 s (the timeout).
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder on first use and returns its handle. Metrics recorded
/// before the first call are lost, so `serve` calls it before anything else.
pub fn metrics_handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("http_request_duration_seconds".to_string()),
                LATENCY_BUCKETS,
            )
            .expect("the bucket list is not empty");
        let handle = builder
            .install_recorder()
            .expect("no other metrics recorder is installed in this process");
        describe_metrics();
        handle
    })
}

/// Whether [`metrics_handle`] has installed the recorder (metric handles taken before are
/// no-ops).
pub fn recorder_installed() -> bool {
    HANDLE.get().is_some()
}

fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time from receiving a request to its response, by method, route template and status"
    );
    describe_gauge!("http_requests_in_flight", "HTTP requests being handled now");
    describe_counter!("predictions_total", "Rows predicted, by label");
    describe_counter!(
        "model_loads_total",
        "Model artifact loads, by trigger (startup, signal, poll) and outcome (success, unchanged, failure)"
    );
}

/// Starts logging to standard error. `filter` uses `RUST_LOG`'s syntax; an invalid one is an
/// error, never a silent fallback.
pub fn init_logging(filter: &str, json: bool) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("RUST_LOG {filter:?} is not a valid log filter: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // A second call (tests) keeps the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    Ok(())
}
