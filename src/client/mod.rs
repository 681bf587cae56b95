//! Talking to a running server: the health check used by container images, the command-line
//! client and the load generator.

pub mod http;
pub mod loadtest;
pub mod predict;
pub mod v2;

use std::time::Duration;

use hyper::Method;

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
        .map_err(|_| anyhow::anyhow!("--timeout-secs must be a positive number"))?;
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
