//! Middleware: request metrics by route template, the request id (`x-request-id`) and the
//! optional access log, all in one layer; and the conversion of tower's timeout errors into
//! API errors.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::response::Response;
use metrics::{Gauge, Label, SharedString};
use pin_project_lite::pin_project;
use std::sync::atomic::{AtomicU64, Ordering};
use tower::{BoxError, Layer, Service};

use super::error::ApiError;

/// Counts every request and times it, labelled by method, route template (never the raw URI)
/// and status: `http_requests_total`, `http_request_duration_seconds`, and the gauge
/// `http_requests_in_flight`, which also goes down when a client drops its request mid-way.
/// Gives every request an id: the client's `x-request-id` when it is a sane one (1 to 64
/// visible ASCII characters), else a new one; the response carries it. With the access log on,
/// each request runs in a span holding its id (so every log line of the request has it) and
/// ends with one `access` line. A plain tower layer rather than `middleware::from_fn` or three
/// `tower-http` layers: no boxed service or future per request, and nothing more than the
/// id when the access log is off.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsLayer {
    pub access_log: bool,
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Metrics<S> {
        Metrics {
            inner,
            access_log: self.access_log,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Metrics<S> {
    inner: S,
    access_log: bool,
}

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The client's request id if it is safe to log and echo, else a new one.
fn request_id(req: &Request) -> HeaderValue {
    if let Some(given) = req.headers().get(&REQUEST_ID)
        && (1..=64).contains(&given.len())
        && given.as_bytes().iter().all(u8::is_ascii_graphic)
    {
        return given.clone();
    }
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(rand::random::<u32>);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    HeaderValue::try_from(format!("{prefix:08x}-{n:x}")).expect("hex digits")
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
        let id = request_id(&req);
        let span = if self.access_log {
            let id = id.to_str().unwrap_or_default();
            tracing::info_span!("request", id, method = %method, route = %route)
        } else {
            tracing::Span::none()
        };
        let inner = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        MetricsFuture {
            inner,
            labels: Some((method, route)),
            id: Some(id),
            span,
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
        id: Option<HeaderValue>,
        span: tracing::Span,
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
        let mut result = {
            let _entered = this.span.enter();
            std::task::ready!(this.inner.poll(cx))
        };
        if let (Ok(response), Some((method, route))) = (&mut result, this.labels.take()) {
            let status = response.status().as_u16();
            let elapsed = this.started.elapsed().as_secs_f64();
            if !this.span.is_none() {
                let _entered = this.span.enter();
                tracing::info!(status, seconds = elapsed, "access");
            }
            let labels = [
                Label::new("method", method),
                Label::new("route", route),
                Label::new("status", status.to_string()),
            ];
            metrics::counter!("http_requests_total", labels.iter()).increment(1);
            metrics::histogram!("http_request_duration_seconds", labels.iter()).record(elapsed);
            if let Some(id) = this.id.take() {
                response.headers_mut().insert(REQUEST_ID, id);
            }
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
