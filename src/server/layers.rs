//! Middleware: request metrics by route template, and the conversion of tower's
//! timeout errors into API errors.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use metrics::{Gauge, Label, SharedString};
use pin_project_lite::pin_project;
use tower::{BoxError, Layer, Service};

use super::error::ApiError;

/// Counts every request and times it, labelled by method, route template (never the raw URI)
/// and status: `http_requests_total`, `http_request_duration_seconds`, and the gauge
/// `http_requests_in_flight`, which also goes down when a client drops its request mid-way.
/// A plain tower layer rather than `middleware::from_fn`: no boxed service or future per request.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsLayer;

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Metrics<S> {
        Metrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Metrics<S> {
    inner: S,
}

impl<S> Service<Request> for Metrics<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = MetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or(SharedString::const_str("unmatched"), |p| {
                SharedString::from(p.as_str().to_string())
            });
        let method = method_label(req.method());
        MetricsFuture {
            inner: self.inner.call(req),
            labels: Some((method, route)),
            started: Instant::now(),
            _in_flight: InFlight::start(),
        }
    }
}

pin_project! {
    /// The inner service's future, recording the request once it is answered.
    pub struct MetricsFuture<F> {
        #[pin]
        inner: F,
        labels: Option<(SharedString, SharedString)>,
        started: Instant,
        _in_flight: InFlight,
    }
}

impl<F, E> Future for MetricsFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let (Ok(response), Some((method, route))) = (&result, this.labels.take()) {
            let labels = [
                Label::new("method", method),
                Label::new("route", route),
                Label::new("status", response.status().as_u16().to_string()),
            ];
            metrics::counter!("http_requests_total", labels.iter()).increment(1);
            metrics::histogram!("http_request_duration_seconds", labels.iter())
                .record(this.started.elapsed().as_secs_f64());
        }
        Poll::Ready(result)
    }
}

/// One request in `http_requests_in_flight`, for as long as this value lives.
struct InFlight(Gauge);

impl InFlight {
    fn start() -> Self {
        let gauge = metrics::gauge!("http_requests_in_flight");
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

fn method_label(method: &Method) -> SharedString {
    match *method {
        Method::GET => SharedString::const_str("GET"),
        Method::POST => SharedString::const_str("POST"),
        Method::HEAD => SharedString::const_str("HEAD"),
        Method::PUT => SharedString::const_str("PUT"),
        Method::DELETE => SharedString::const_str("DELETE"),
        Method::OPTIONS => SharedString::const_str("OPTIONS"),
        Method::PATCH => SharedString::const_str("PATCH"),
        Method::CONNECT => SharedString::const_str("CONNECT"),
        Method::TRACE => SharedString::const_str("TRACE"),
        // Any other method is the client's invention: one label for all of them, or each
        // would add a time series that never expires.
        _ => SharedString::const_str("other"),
    }
}

/// Turns the errors of tower's timeout layer into API errors.
pub async fn handle_tower_error(err: BoxError) -> ApiError {
    if err.is::<tower::timeout::error::Elapsed>() {
        ApiError::Timeout
    } else {
        ApiError::Internal(err.to_string())
    }
}
