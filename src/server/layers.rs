//! Middleware: request metrics by route template, and the conversion of tower's load-shedding
//! and timeout errors into API errors.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tower::BoxError;

use super::error::ApiError;

/// Counts every request and times it, labelled by method, route template and status.
pub async fn track_metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let in_flight = metrics::gauge!("http_requests_in_flight");
    in_flight.increment(1.0);
    let started = Instant::now();
    let response = next.run(req).await;
    in_flight.decrement(1.0);
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Turns the errors of tower's load-shed and timeout layers into API errors.
pub async fn handle_tower_error(err: BoxError) -> ApiError {
    if err.is::<tower::load_shed::error::Overloaded>() {
        ApiError::Overloaded
    } else if err.is::<tower::timeout::error::Elapsed>() {
        ApiError::Timeout
    } else {
        ApiError::Internal(err.to_string())
    }
}
