//! Middleware: request metrics by route template, the request id (`x-request-id`), the
//! optional access log and the request timeout, all in one service around the router.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::response::Response;
use metrics::{Counter, Gauge, Histogram, Label};
use pin_project_lite::pin_project;
use std::sync::atomic::{AtomicU64, Ordering};
use tower::Service;

/// Counts every request and times it, labelled by method, route template (never the raw URI)
/// and status: `http_requests_total`, `http_request_duration_seconds`, and the gauge
/// `http_requests_in_flight`, which also goes down when a client drops its request mid-way.
/// Gives every request an id: the client's `x-request-id` when it is a sane one (1 to 64
/// visible ASCII characters), else a new one; the response carries it. With the access log on,
/// each request runs in a span holding its id (so every log line of the request has it) and
/// ends with one `access` line. Answers a request of a timed route that takes longer than
/// `timeout` (from its arrival: reading the body and computing) with that route's own error.
///
/// One plain service wrapped once around the whole router, rather than `middleware::from_fn`,
/// three `tower-http` layers and tower's `Timeout` given to `Router::layer`: axum wraps and
/// boxes a layer's service and future again for every route, which cost every request about
/// 1,500 instructions a layer. Around the router, the route's template is not known yet, so
/// it is looked up in [`RouteTemplates`], the same matcher over the same templates.
#[derive(Debug, Clone, Copy)]
pub struct MetricsSettings {
    pub access_log: bool,
    pub timeout: std::time::Duration,
    /// The answer to a request over the timeout, by route template; `None`: not timed.
    pub timed: fn(&str) -> Option<TimeoutAnswer>,
}

/// Builds the answer to a request over the timeout.
pub type TimeoutAnswer = fn() -> Response;

/// The router's route templates, matched as axum matches them (the same `matchit`, the same
/// templates: each is added here as it is added to the router), so that a request's route is
/// known before it is routed. The index of a template is its place in the table.
#[derive(Debug, Clone, Default)]
pub struct RouteTemplates {
    matcher: matchit::Router<usize>,
    templates: Vec<&'static str>,
}

impl RouteTemplates {
    /// Adds a template; panics on one that conflicts with another, as axum does.
    pub fn insert(&mut self, template: &'static str) {
        if let Err(err) = self.matcher.insert(template, self.templates.len()) {
            panic!("route {template}: {err}");
        }
        self.templates.push(template);
    }

    /// The template `path` matches, and its index.
    pub fn find(&self, path: &str) -> Option<(&'static str, usize)> {
        let index = *self.matcher.at(path).ok()?.value;
        Some((self.templates[index], index))
    }

    pub fn templates(&self) -> &[&'static str] {
        &self.templates
    }
}

/// `inner` (the router) with the request metrics, ids, access log and timeout.
#[derive(Debug, Clone)]
pub struct Metrics<S> {
    inner: S,
    settings: MetricsSettings,
    templates: Arc<RouteTemplates>,
}

impl<S> Metrics<S> {
    pub fn new(inner: S, settings: MetricsSettings, templates: RouteTemplates) -> Self {
        Self {
            inner,
            settings,
            templates: Arc::new(templates),
        }
    }
}

#[cfg(test)]
impl<S> Metrics<S> {
    pub fn inner(&self) -> &S {
        &self.inner
    }

    pub fn route_templates(&self) -> &RouteTemplates {
        &self.templates
    }
}

/// The label of a request whose path matches no route.
const UNMATCHED: &str = "unmatched";

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
    // `{prefix:08x}-{n:016x}`, written on the stack: the header value is the only allocation.
    let mut id = [b'-'; 8 + 1 + 16];
    hex::encode_to_slice(prefix.to_be_bytes(), &mut id[..8]).expect("8 hex digits");
    hex::encode_to_slice(n.to_be_bytes(), &mut id[9..]).expect("16 hex digits");
    HeaderValue::from_bytes(&id).expect("hex digits")
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
        // The index past the table's for an unmatched path.
        let (route, route_index) = self
            .templates
            .find(req.uri().path())
            .unwrap_or((UNMATCHED, self.templates.templates.len()));
        let method = method_label(req.method());
        let id = request_id(&req);
        let span = if self.settings.access_log {
            let id = id.to_str().unwrap_or_default();
            tracing::info_span!("request", id, method = %method, route = %route)
        } else {
            tracing::Span::none()
        };
        let inner = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        let started = Instant::now();
        let on_timeout = if route_index < self.templates.templates.len() {
            (self.settings.timed)(route)
        } else {
            None
        };
        MetricsFuture {
            inner,
            labels: Some(Labels {
                method,
                route,
                route_index,
            }),
            id: Some(id),
            span,
            // Registered with the timer only if polled: a request answered at its first poll
            // never touches it.
            deadline: tokio::time::sleep_until((started + self.settings.timeout).into()),
            on_timeout,
            started,
            _in_flight: InFlight::start(),
        }
    }
}

/// A request's metric labels: its method's, and its route template with the template's index.
#[derive(Debug, Clone, Copy)]
struct Labels {
    method: &'static str,
    route: &'static str,
    route_index: usize,
}

pin_project! {
    /// The inner service's future, recording the request once it is answered.
    pub struct MetricsFuture<F> {
        #[pin]
        inner: F,
        labels: Option<Labels>,
        id: Option<HeaderValue>,
        span: tracing::Span,
        #[pin]
        deadline: tokio::time::Sleep,
        on_timeout: Option<TimeoutAnswer>,
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
        let polled = {
            let _entered = this.span.enter();
            this.inner.poll(cx)
        };
        let mut result = match (polled, *this.on_timeout) {
            (Poll::Ready(result), _) => result,
            (Poll::Pending, None) => return Poll::Pending,
            (Poll::Pending, Some(on_timeout)) => {
                std::task::ready!(this.deadline.poll(cx));
                Ok(on_timeout())
            }
        };
        if let (Ok(response), Some(labels)) = (&mut result, this.labels.take()) {
            let status = response.status().as_u16();
            let elapsed = this.started.elapsed().as_secs_f64();
            if !this.span.is_none() {
                let _entered = this.span.enter();
                tracing::info!(status, seconds = elapsed, "access");
            }
            let (total, duration) = request_metrics(labels, status);
            total.increment(1);
            duration.record(elapsed);
            if let Some(id) = this.id.take() {
                response.headers_mut().insert(REQUEST_ID, id);
            }
        }
        Poll::Ready(result)
    }
}

/// The metric handles of the requests, looked up in the recorder once per worker thread
/// rather than once per request (building a key allocates its labels, then hashes and looks
/// them up). Bounded: route templates, method labels and statuses are all finite.
#[derive(Default)]
struct Handles {
    in_flight: Option<Gauge>,
    /// By route template index (one past the templates: unmatched).
    by_route: Vec<Vec<RequestHandles>>,
}

/// The two handles of one method label and status on a route.
struct RequestHandles {
    method: &'static str,
    /// The template, compared too: another router's table may index its templates otherwise.
    route: &'static str,
    status: u16,
    total: Counter,
    duration: Histogram,
}

thread_local! {
    static HANDLES: RefCell<Handles> = RefCell::new(Handles::default());
}

/// Handles are kept only once our recorder is installed: one taken before would be a no-op
/// for ever.
fn cached<T>(lookup: impl FnOnce(&mut Handles) -> T, uncached: impl FnOnce() -> T) -> T {
    if crate::telemetry::recorder_installed() {
        HANDLES.with_borrow_mut(lookup)
    } else {
        uncached()
    }
}

/// `http_requests_total` and `http_request_duration_seconds` of one method, route and status.
fn request_metrics(labels: Labels, status: u16) -> (Counter, Histogram) {
    let Labels {
        method,
        route,
        route_index,
    } = labels;
    let register = || {
        let labels = [
            Label::new("method", method),
            Label::new("route", route),
            Label::new("status", status.to_string()),
        ];
        (
            metrics::counter!("http_requests_total", labels.iter()),
            metrics::histogram!("http_request_duration_seconds", labels.iter()),
        )
    };
    cached(
        |handles| {
            if let Some(entries) = handles.by_route.get(route_index)
                && let Some(known) = entries
                    .iter()
                    .find(|e| e.method == method && e.status == status && e.route == route)
            {
                return (known.total.clone(), known.duration.clone());
            }
            let (total, duration) = register();
            if handles.by_route.len() <= route_index {
                handles.by_route.resize_with(route_index + 1, Vec::new);
            }
            handles.by_route[route_index].push(RequestHandles {
                method,
                route,
                status,
                total: total.clone(),
                duration: duration.clone(),
            });
            (total, duration)
        },
        register,
    )
}

/// One request in `http_requests_in_flight`, for as long as this value lives.
struct InFlight(Gauge);

impl InFlight {
    fn start() -> Self {
        let register = || metrics::gauge!("http_requests_in_flight");
        let gauge = cached(
            |handles| handles.in_flight.get_or_insert_with(register).clone(),
            register,
        );
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        // Any other method is the client's invention: one label for all of them, or each
        // would add a time series that never expires.
        _ => "other",
    }
}
