//! Talking to a running server: the health check used by container images, the command-line
//! client and the load generator, and what they share (the default URL, the served model's
//! features and sample row from `GET /info`, writing to standard output).

pub mod http;
pub mod loadtest;
pub mod predict;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use hyper::Method;
use serde_json::{Map, Value};

use crate::artifact::LoadedModel;

/// The server the client talks to when no `--url` is given.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8000";

/// Exit 0 when the server answers 200 (for container health checks; needs no shell).
#[derive(Debug, Clone, clap::Args)]
pub struct HealthcheckArgs {
    /// URL to check; by default the readiness route on this machine's `PORT`.
    #[arg(long)]
    pub url: Option<String>,
    /// Port used by the default URL.
    #[arg(long, env = "PORT", default_value_t = 8000)]
    pub port: u16,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 2.0)]
    pub timeout_secs: f64,
}

pub fn healthcheck(args: &HealthcheckArgs) -> anyhow::Result<()> {
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{}/ready", args.port));
    let target = http::Target::parse(&url)?;
    let timeout = Duration::try_from_secs_f64(args.timeout_secs)
        .ok()
        .filter(|t| !t.is_zero() && *t <= Duration::from_secs(3600))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--timeout-secs must be a positive number of seconds (at most 3600), got {}",
                args.timeout_secs
            )
        })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reply = runtime.block_on(http::request_once(
        &format!("http://{}", target.authority),
        Method::GET,
        &target.base_path,
        None,
        None,
        timeout,
    ))?;
    anyhow::ensure!(
        reply.status.is_success(),
        "{url} answered {}: {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
    println!("{url}: {}", reply.status);
    Ok(())
}

/// The model's sample row as a JSON object: from the artifact when `model` is given, else
/// from the server's `GET /info` (its features and sample, in order).
pub async fn sample_row(
    url: &str,
    model: Option<&Path>,
    timeout: Duration,
) -> anyhow::Result<Map<String, Value>> {
    if let Some(path) = model {
        let loaded = LoadedModel::load(path)?;
        let a = &loaded.artifact;
        return Ok(a
            .feature_names
            .iter()
            .cloned()
            .zip(a.sample.iter().map(|&v| serde_json::json!(v)))
            .collect());
    }
    let info = get_json(url, "/info", timeout).await?;
    let names = names_of(url, &info)?;
    let values = info["sample"]
        .as_array()
        .with_context(|| format!("{url}/info has no sample row; give the features, or --model"))?;
    anyhow::ensure!(
        values.len() == names.len() && values.iter().all(Value::is_number),
        "{url}/info: the sample row does not match the feature list"
    );
    Ok(names.into_iter().zip(values.iter().cloned()).collect())
}

/// The model's feature names in order: from the artifact when `model` is given, else from
/// the server's `GET /info`.
pub async fn feature_names(
    url: &str,
    model: Option<&Path>,
    timeout: Duration,
) -> anyhow::Result<Vec<String>> {
    if let Some(path) = model {
        return Ok(LoadedModel::load(path)?.artifact.feature_names);
    }
    names_of(url, &get_json(url, "/info", timeout).await?)
}

fn names_of(url: &str, info: &Value) -> anyhow::Result<Vec<String>> {
    let names = info["features"]
        .as_array()
        .with_context(|| format!("{url}/info has no feature list"))?;
    names
        .iter()
        .map(|n| n.as_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .with_context(|| format!("{url}/info: the feature list holds a name that is not a string"))
}

async fn get_json(url: &str, path: &str, timeout: Duration) -> anyhow::Result<Value> {
    let reply = http::request_once(url, Method::GET, path, None, None, timeout).await?;
    if !reply.status.is_success() {
        bail!(
            "GET {url}{path} answered {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body).trim()
        );
    }
    serde_json::from_slice(&reply.body)
        .with_context(|| format!("GET {url}{path}: the answer is not JSON"))
}

/// Writes to standard output; a closed pipe (`| head`) is not an error.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing to standard output")
        }
        _ => Ok(()),
    }
}
