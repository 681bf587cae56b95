//! `ml-serving loadtest`: drives a route (by default `POST /predict` with the model's sample
//! row; or the V2 REST route with JSON or binary tensors; or V2 gRPC `ModelInfer`) closed loop
//! or open loop, and reports throughput and latency percentiles. The engine
//! lives in `engine` (with `timer` for the open loop's schedule), the report in `report`,
//! the progress display in `progress`.

mod engine;
mod progress;
mod report;
mod timer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use hyper::Method;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

pub use engine::{LiveCounters, LoadConfig, run_load};
pub use report::{Percentiles, Report, RequestRecord, StopReason, Summary, format_us};

use super::v2;
use super::{DEFAULT_URL, feature_names, sample_row, write_stdout};

/// How V2 REST request bodies carry their tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum V2Encoding {
    /// JSON `data`.
    Json,
    /// Binary tensor data (`Inference-Header-Content-Length`), as tritonclient sends it.
    Binary,
}

/// Put load on a server and measure its throughput and latency.
///
/// Closed loop by default: `--concurrency` connections, each sending its next request as soon
/// as its answer is in. With `--rate`, open loop: requests start at a constant rate, spread
/// over the connections, and each latency counts from the request's intended start, so time
/// spent waiting for a free connection behind a slow answer is measured too. Stops after
/// `--duration` or `--requests`, whichever comes first (10 s when neither is given), or on
/// Ctrl-C, and prints the report. Exits non-zero when the share of failed requests (non-2xx
/// answers and transport errors) is above `--max-error-rate`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadtestArgs {
    /// The server.
    #[arg(long, env = "ML_SERVING_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// The route to load.
    #[arg(long, default_value = "/predict")]
    pub path: String,
    /// HTTP method (default: POST when there is a body, else GET).
    #[arg(long)]
    pub method: Option<String>,
    /// Connections, each with one request in flight at a time.
    #[arg(long, short = 'c', default_value_t = 8)]
    pub concurrency: usize,
    /// Open loop: start this many requests per second (0.001 to 10,000,000).
    #[arg(long, short = 'r', value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Stop after this long: `10s`, `500ms`, `2m`, `1h` (a bare number is seconds).
    #[arg(long, short = 'd', value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many requests.
    #[arg(long, short = 'n')]
    pub requests: Option<u64>,
    /// Draw request bodies from the model's feature columns of this CSV, row after row
    /// (rows with missing values are skipped).
    #[arg(long, value_name = "CSV")]
    pub data: Option<PathBuf>,
    /// Send this file as every request's body.
    #[arg(long, value_name = "FILE", conflicts_with = "data")]
    pub body: Option<PathBuf>,
    /// Take the sample row and the feature names from this model artifact instead of asking
    /// the server.
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// A request taking longer (connecting included) counts as a transport error.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Exit non-zero when the share of failed requests is above this: a fraction (0.01) or a
    /// percentage (1%).
    #[arg(long, value_parser = parse_error_rate, default_value = "0")]
    pub max_error_rate: f64,
    /// Worker threads for the load generator (1: a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress display.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Sent as `Authorization: Bearer <key>` (gRPC: metadata `authorization`).
    #[arg(long, env = "API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Load the V2 REST route (`/v2/models/<name>/infer` unless `--path` names another) with
    /// one FP64 tensor `input-0` of `--batch-rows` rows per request, in this encoding.
    #[arg(long, value_enum, conflicts_with = "body")]
    pub v2: Option<V2Encoding>,
    /// Load V2 gRPC `ModelInfer` at this address (`host:port`) instead of HTTP, with the same
    /// tensors as `--v2`; gRPC codes are reported as their HTTP equivalents (OK as 200, ...).
    /// Rows and names still come from `--data`, `--model` or the HTTP server at `--url`.
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["body", "v2"])]
    pub grpc: Option<String>,
    /// Rows per request with `--v2` or `--grpc` (taken from `--data` in turn, wrapping round;
    /// else copies of the sample row).
    #[arg(long, default_value_t = 1)]
    pub batch_rows: usize,
    /// The model name for `--v2` and `--grpc` (default: `--model`'s, else the server's `/info`).
    #[arg(long)]
    pub model_name: Option<String>,
}

/// Parses `10s`, `500ms`, `2m`, `1h`, `1.5s`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s, 500ms, 2m or 1h"))?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?} is not a positive duration"))
}

/// Parses `0.01` or `1%` into a fraction in [0, 1].
/// A request rate: a positive, finite number of requests per second within what a schedule
/// can hold (a tiny rate would put the next start centuries away and overflow the timer).
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of requests per second"))?;
    if (0.001..=10_000_000.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!(
            "the rate must be between 0.001 and 10000000 requests per second, got {text}"
        ))
    }
}

pub fn parse_error_rate(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let value = match t.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map(|p| p / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("{text:?} is not a fraction (0.01) or a percentage (1%)"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{text:?} is not between 0 and 1 (0 % and 100 %)"))
    }
}

/// One row as a request body for `path`: a batch route gets a one-row batch.
fn row_body(path: &str, row: Map<String, Value>) -> anyhow::Result<Bytes> {
    let value = if path.trim_end_matches('/').ends_with("/batch") {
        Value::Array(vec![Value::Object(row)])
    } else {
        Value::Object(row)
    };
    Ok(Bytes::from(serde_json::to_vec(&value)?))
}

/// The request bodies: the CSV's rows, the file, the sample row for the prediction routes,
/// or none.
async fn bodies(args: &LoadtestArgs, timeout: Duration) -> anyhow::Result<Vec<Bytes>> {
    let model = args.model.as_deref();
    if let Some(path) = &args.body {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(vec![Bytes::from(bytes)]);
    }
    if let Some(csv) = &args.data {
        let names = feature_names(&args.url, model, timeout).await?;
        return csv_bodies(csv, &names, &args.path);
    }
    let explicit_bodyless = args
        .method
        .as_deref()
        .is_some_and(|m| m.eq_ignore_ascii_case("GET") || m.eq_ignore_ascii_case("HEAD"));
    let route = args.path.trim_end_matches('/');
    if !explicit_bodyless && (route.ends_with("/predict") || route.ends_with("/predict/batch")) {
        let row = sample_row(&args.url, model, timeout).await?;
        return Ok(vec![row_body(&args.path, row)?]);
    }
    Ok(Vec::new())
}

fn csv_bodies(csv: &Path, names: &[String], path: &str) -> anyhow::Result<Vec<Bytes>> {
    let rows = crate::dataset::load_for_scoring(csv, names)?;
    let mut bodies = Vec::new();
    for values in rows.features.rows() {
        if values.iter().any(|v| !v.is_finite()) {
            continue;
        }
        let row = names
            .iter()
            .cloned()
            .zip(values.iter().map(|&v| serde_json::json!(v)))
            .collect();
        bodies.push(row_body(path, row)?);
    }
    if bodies.is_empty() {
        bail!("{}: no complete row of the model's features", csv.display());
    }
    Ok(bodies)
}

/// What a V2 or gRPC load sends: bodies and headers, or gRPC requests.
struct V2Load {
    path: String,
    bodies: Vec<Bytes>,
    headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    grpc: Vec<crate::grpc_proto::ModelInferRequest>,
}

/// Batches of `--batch-rows` rows (row-major), from the CSV's complete rows in turn (wrapping
/// round so that every batch is full) or from the sample row.
async fn batches(args: &LoadtestArgs, timeout: Duration) -> anyhow::Result<(Vec<Vec<f64>>, usize)> {
    anyhow::ensure!(args.batch_rows > 0, "--batch-rows must be at least 1");
    let model = args.model.as_deref();
    let names = feature_names(&args.url, model, timeout).await?;
    let width = names.len();
    let rows: Vec<Vec<f64>> = match &args.data {
        Some(csv) => crate::dataset::load_for_scoring(csv, &names)?
            .features
            .rows()
            .into_iter()
            .filter(|r| r.iter().all(|v| v.is_finite()))
            .map(|r| r.to_vec())
            .collect(),
        None => {
            let row = sample_row(&args.url, model, timeout).await?;
            let values = names
                .iter()
                .map(|n| row.get(n).and_then(Value::as_f64))
                .collect::<Option<Vec<f64>>>()
                .context("the sample row lacks a feature or holds a non-number")?;
            vec![values]
        }
    };
    anyhow::ensure!(!rows.is_empty(), "no complete row of the model's features");
    let count = rows.len().div_ceil(args.batch_rows);
    let batches = (0..count)
        .map(|b| {
            (0..args.batch_rows)
                .flat_map(|i| rows[(b * args.batch_rows + i) % rows.len()].iter().copied())
                .collect()
        })
        .collect();
    Ok((batches, width))
}

async fn v2_load(args: &LoadtestArgs, timeout: Duration) -> anyhow::Result<Option<V2Load>> {
    if args.v2.is_none() && args.grpc.is_none() {
        anyhow::ensure!(args.batch_rows == 1, "--batch-rows needs --v2 or --grpc");
        return Ok(None);
    }
    let name = match (&args.model_name, &args.model) {
        (Some(name), _) => name.clone(),
        (None, Some(path)) => crate::artifact::LoadedModel::load(path)?.artifact.name,
        (None, None) => {
            let reply =
                super::http::request_once(&args.url, Method::GET, "/info", None, None, timeout)
                    .await?;
            serde_json::from_slice::<Value>(&reply.body)
                .ok()
                .and_then(|v| v["name"].as_str().map(str::to_string))
                .with_context(|| format!("{}/info has no model name", args.url))?
        }
    };
    let (batches, width) = batches(args, timeout).await?;
    let path = if args.grpc.is_some() {
        "/inference.GRPCInferenceService/ModelInfer".to_string()
    } else if args.path == "/predict" {
        format!("/v2/models/{name}/infer")
    } else {
        args.path.clone()
    };
    let mut load = V2Load {
        path,
        bodies: Vec::new(),
        headers: Vec::new(),
        grpc: Vec::new(),
    };
    match (args.grpc.is_some(), args.v2) {
        (true, _) => {
            load.grpc = batches
                .iter()
                .map(|b| v2::grpc_request(&name, b, width))
                .collect();
        }
        (false, Some(V2Encoding::Json)) => {
            for b in &batches {
                load.bodies.push(Bytes::from(v2::json_body(b, width)?));
            }
        }
        (false, _) => {
            let mut length = None;
            for b in &batches {
                let (body, n) = v2::binary_body(b, width)?;
                // Every batch has as many rows, so every JSON header has the same length.
                anyhow::ensure!(
                    length.is_none_or(|l| l == n),
                    "JSON headers of different lengths"
                );
                length = Some(n);
                load.bodies.push(Bytes::from(body));
            }
            load.headers = vec![
                (
                    hyper::header::HeaderName::from_static(crate::wire::V2_HEADER_LENGTH),
                    hyper::header::HeaderValue::from(length.unwrap_or(0)),
                ),
                (
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/octet-stream"),
                ),
            ];
        }
    }
    Ok(Some(load))
}

/// `ml-serving loadtest`.
pub fn run(args: &LoadtestArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.threads > 0, "--threads must be at least 1");
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    let report = runtime.block_on(async {
        let v2 = v2_load(args, args.timeout).await?;
        let bodies = match &v2 {
            Some(load) => load.bodies.clone(),
            None => bodies(args, args.timeout).await?,
        };
        let method = match &args.method {
            Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .with_context(|| format!("{m:?} is not an HTTP method"))?,
            None if bodies.is_empty() && args.grpc.is_none() => Method::GET,
            None => Method::POST,
        };
        let duration = match (args.duration, args.requests) {
            (None, None) => Some(Duration::from_secs(10)),
            (d, _) => d,
        };
        let (url, path, headers, grpc) = match v2 {
            Some(load) => (
                args.grpc.clone().unwrap_or_else(|| args.url.clone()),
                load.path,
                load.headers,
                load.grpc,
            ),
            None => (args.url.clone(), args.path.clone(), Vec::new(), Vec::new()),
        };
        let config = LoadConfig {
            method,
            bodies,
            headers,
            grpc,
            bearer: args.api_key.clone().filter(|k| !k.is_empty()),
            concurrency: args.concurrency,
            rate: args.rate,
            duration,
            requests: args.requests,
            timeout: args.timeout,
            ..LoadConfig::new(url, path)
        };
        let stop = CancellationToken::new();
        tokio::spawn({
            let stop = stop.clone();
            async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    stop.cancel();
                }
                // A second Ctrl-C ends the process at once.
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        let done = CancellationToken::new();
        let progress = (!args.quiet)
            .then(|| progress::spawn(config.live.clone(), config.requests, duration, done.clone()));
        let report = run_load(&config, stop).await;
        done.cancel();
        if let Some(progress) = progress {
            let _ = progress.await;
        }
        report
    })?;
    runtime.shutdown_background();
    if args.json {
        write_stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report.summary())?
        ))?;
    } else {
        write_stdout(&report.to_string())?;
    }
    report.check(args.max_error_rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in ["", "s", "0s", "-1s", "10x", "1.2.3s", "ten"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn error_rates() {
        assert_eq!(parse_error_rate("0"), Ok(0.0));
        assert_eq!(parse_error_rate("0.01"), Ok(0.01));
        assert_eq!(parse_error_rate("5%"), Ok(0.05));
        for bad in ["-0.1", "1.5", "150%", "x"] {
            assert!(parse_error_rate(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn batch_routes_get_a_batch() {
        let row: Map<String, Value> = [("a".to_string(), serde_json::json!(1.0))]
            .into_iter()
            .collect();
        assert_eq!(
            &row_body("/predict", row.clone()).unwrap()[..],
            br#"{"a":1.0}"#
        );
        assert_eq!(
            &row_body("/predict/batch", row).unwrap()[..],
            br#"[{"a":1.0}]"#
        );
    }
}
