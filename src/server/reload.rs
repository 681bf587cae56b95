//! Reloading the model without a restart: on SIGHUP, and when the artifact file changes
//! (polled, if an interval is set). A bad file is refused and the live model keeps serving.

use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::state::{AppState, ReloadOutcome};

/// Reloads once, off the async threads, and records the outcome in logs and metrics.
/// Returns `true` when the attempt failed (the live model kept serving).
pub async fn reload_now(state: &AppState, trigger: &'static str) -> bool {
    let worker = state.clone();
    let result = tokio::task::spawn_blocking(move || worker.reload()).await;
    let outcome = match result {
        Ok(Ok(ReloadOutcome::Swapped { sha256 })) => {
            tracing::info!(trigger, %sha256, path = %state.model_path().display(), "model reloaded");
            "success"
        }
        Ok(Ok(ReloadOutcome::Unchanged)) => {
            tracing::info!(trigger, "model file unchanged; nothing to reload");
            "unchanged"
        }
        Ok(Err(err)) => {
            tracing::error!(trigger, error = %err, "model reload refused; the previous model keeps serving");
            "failure"
        }
        Err(join) => {
            tracing::error!(trigger, error = %join, "model reload task failed; the previous model keeps serving");
            "failure"
        }
    };
    metrics::counter!("model_loads_total", "trigger" => trigger, "outcome" => outcome).increment(1);
    outcome == "failure"
}

/// The file's identity for change detection: modification time and length.
fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Runs until `stop`: reloads on SIGHUP, and, when `poll` is set, whenever the file changes
/// or the last attempt failed (a file fixed without changing its time or size, e.g. by
/// `chmod`, is picked up at the next tick).
pub async fn watch(
    state: AppState,
    poll: Option<Duration>,
    mut hangup: tokio::signal::unix::Signal,
    stop: CancellationToken,
) {
    let mut last = stamp(state.model_path());
    let mut failed = false;
    let mut ticker = poll.map(tokio::time::interval);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            Some(()) = hangup.recv() => {
                failed = reload_now(&state, "signal").await;
                last = stamp(state.model_path());
            }
            _ = async { match ticker.as_mut() { Some(t) => t.tick().await, None => std::future::pending().await } } => {
                let now = stamp(state.model_path());
                if now != last || failed {
                    last = now;
                    failed = reload_now(&state, "poll").await;
                }
            }
        }
    }
}
