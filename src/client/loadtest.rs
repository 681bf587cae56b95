//! `ml-serving loadtest`: drives a route (by default `POST /predict` with the model's sample
//! row) closed loop or open loop, and reports throughput and latency percentiles. The engine
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

use super::{DEFAULT_URL, feature_names, sample_row, write_stdout};

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
    /// Sent as `Authorization: Bearer <key>`.
    #[arg(long, env = "API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
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
        let bodies = bodies(args, args.timeout).await?;
        let method = match &args.method {
            Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .with_context(|| format!("{m:?} is not an HTTP method"))?,
            None if bodies.is_empty() => Method::GET,
            None => Method::POST,
        };
        let duration = match (args.duration, args.requests) {
            (None, None) => Some(Duration::from_secs(10)),
            (d, _) => d,
        };
        let config = LoadConfig {
            method,
            bodies,
            bearer: args.api_key.clone().filter(|k| !k.is_empty()),
            concurrency: args.concurrency,
            rate: args.rate,
            duration,
            requests: args.requests,
            timeout: args.timeout,
            ..LoadConfig::new(args.url.clone(), args.path.clone())
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
