//! Reloading the model without a restart: on SIGHUP, and when the artifact file changes
//! (polled, if an interval is set). A bad file is refused and the live model keeps serving.

use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::state::{AppState, ReloadOutcome};

/// Reloads once, off the async threads, and records the outcome in logs and metrics.
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
    outcome == "success"
}

/// The file's identity for change detection: modification time and length.
fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Runs until `stop`: reloads on SIGHUP, and on a change of the file when `poll` is set.
pub async fn watch(state: AppState, poll: Option<Duration>, stop: CancellationToken) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGHUP; reload on signal is off");
            None
        }
    };
    let mut last = stamp(state.model_path());
    let mut ticker = poll.map(tokio::time::interval);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                reload_now(&state, "signal").await;
                last = stamp(state.model_path());
            }
            _ = async { match ticker.as_mut() { Some(t) => t.tick().await, None => std::future::pending().await } } => {
                let now = stamp(state.model_path());
                if now != last {
                    last = now;
                    reload_now(&state, "poll").await;
                }
            }
        }
    }
}
