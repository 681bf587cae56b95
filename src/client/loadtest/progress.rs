//! Progress while a load test runs, on standard error: a bar on a terminal (current rate,
//! errors, elapsed), one plain line a second otherwise.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::engine::LiveCounters;

/// Shows progress until `done` is cancelled. The bar counts requests when the test is
/// bounded by a count, else seconds.
pub fn spawn(
    live: Arc<LiveCounters>,
    requests: Option<u64>,
    duration: Option<Duration>,
    done: CancellationToken,
) -> JoinHandle<()> {
    let terminal = std::io::stderr().is_terminal();
    tokio::spawn(async move {
        let started = Instant::now();
        let bar = terminal.then(|| new_bar(requests, duration));
        let period = if terminal {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(1)
        };
        let mut tick = tokio::time::interval_at((started + period).into(), period);
        let (mut last_count, mut last_at) = (0, started);
        loop {
            tokio::select! {
                () = done.cancelled() => break,
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            let completed = live.completed.load(Ordering::Relaxed);
            let errors = live.errors.load(Ordering::Relaxed);
            let rate = (completed - last_count) as f64 / (now - last_at).as_secs_f64();
            (last_count, last_at) = (completed, now);
            match &bar {
                Some(bar) => {
                    match requests {
                        Some(_) => bar.set_position(completed),
                        None => bar.set_position((now - started).as_millis() as u64),
                    }
                    bar.set_message(format!(
                        "{rate:>9.0} req/s  {errors} errors  {completed} done"
                    ));
                }
                None => eprintln!(
                    "loadtest: {:>6.1} s  {completed} done  {rate:.0} req/s  {errors} errors",
                    (now - started).as_secs_f64()
                ),
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
    })
}

fn new_bar(requests: Option<u64>, duration: Option<Duration>) -> ProgressBar {
    let (length, unit) = match (requests, duration) {
        (Some(n), _) => (n, "{pos}/{len}"),
        (None, Some(d)) => (d.as_millis() as u64, ""),
        (None, None) => (0, ""),
    };
    let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
    let template = format!("[{{elapsed_precise}}] {{wide_bar}} {unit} {{msg}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}
