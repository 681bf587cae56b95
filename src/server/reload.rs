//! Reloading models without a restart: on SIGHUP, and when the model file or the repository
//! changes (polled, if an interval is set). A bad file is refused and the live model keeps
//! serving.

use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::registry::{RefreshError, ReloadOutcome, Source};
use super::state::AppState;

/// Reloads once, off the async threads, and records the outcome in logs and metrics.
/// Returns `true` when the attempt failed (the live models kept serving).
pub async fn reload_now(state: &AppState, trigger: &'static str) -> bool {
    let worker = state.clone();
    let result = tokio::task::spawn_blocking(move || worker.reload())
        .await
        .unwrap_or_else(|join| {
            Err(RefreshError::Startup(vec![format!(
                "the reload task failed: {join}"
            )]))
        });
    // A repository is read at every tick: a tick that finds nothing new is not counted.
    if trigger == "poll" && matches!(result, Ok(ReloadOutcome::Unchanged)) {
        return false;
    }
    record(&result, trigger) == "failure"
}

/// Logs a refresh's outcome and counts it in `model_loads_total`; returns the outcome label.
pub fn record(result: &Result<ReloadOutcome, RefreshError>, trigger: &'static str) -> &'static str {
    let outcome = match result {
        Ok(ReloadOutcome::Swapped { sha256 }) => {
            tracing::info!(trigger, %sha256, "model reloaded");
            "success"
        }
        Ok(ReloadOutcome::Unchanged) => {
            tracing::info!(trigger, "models unchanged; nothing to reload");
            "unchanged"
        }
        Ok(
            outcome @ ReloadOutcome::Repository {
                loaded, unloaded, ..
            },
        ) => {
            if !loaded.is_empty() || !unloaded.is_empty() {
                tracing::info!(trigger, loaded = ?loaded, unloaded = ?unloaded, "model repository refreshed");
            }
            // The problems themselves are logged once each by the registry.
            if outcome.failed() {
                "failure"
            } else {
                "success"
            }
        }
        Err(err) => {
            tracing::error!(trigger, error = %err, "model reload refused; the previous models keep serving");
            "failure"
        }
    };
    metrics::counter!("model_loads_total", "trigger" => trigger, "outcome" => outcome).increment(1);
    outcome
}

/// The model file's identity for change detection: modification time and length. A
/// repository is always read again (the registry compares each version file's stamp).
fn stamp(state: &AppState) -> Option<(SystemTime, u64)> {
    let Source::File { path, .. } = &state.registry().settings().source else {
        return None;
    };
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
    let repository = matches!(
        state.registry().settings().source,
        Source::Repository { .. }
    );
    let mut last = stamp(&state);
    let mut failed = false;
    let mut ticker = poll.map(tokio::time::interval);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            Some(()) = hangup.recv() => {
                failed = reload_now(&state, "signal").await;
                last = stamp(&state);
            }
            _ = async { match ticker.as_mut() { Some(t) => t.tick().await, None => std::future::pending().await } } => {
                let now = stamp(&state);
                if repository || now != last || failed {
                    last = now;
                    failed = reload_now(&state, "poll").await;
                }
            }
        }
    }
}
