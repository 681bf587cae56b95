//! `http_requests_in_flight` comes back down when a client gives up on a request mid-way.
//! Alone in its own test binary: the gauge is process-wide.

mod common;

use std::time::Duration;

use common::*;

fn in_flight() -> f64 {
    let text = ml_serving::telemetry::metrics_handle().render();
    text.lines()
        .find_map(|l| l.strip_prefix("http_requests_in_flight "))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn a_dropped_request_leaves_the_in_flight_gauge() {
    let app = default_app();
    let before = in_flight();
    let (tx, task) = hold_predict_in_flight(&app);
    let mut seen = false;
    for _ in 0..500 {
        if in_flight() == before + 1.0 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(seen, "the held request is counted as in flight");
    // The client goes away: hyper drops the request's future.
    task.abort();
    let _ = task.await;
    drop(tx);
    assert_eq!(in_flight(), before, "the gauge comes back down");
}
