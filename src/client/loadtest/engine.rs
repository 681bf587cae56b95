//! The load generator's engine: one kept-alive connection per concurrency slot, driven closed
//! loop (each connection sends again as soon as its answer is in) or open loop (a constant
//! arrival rate, every latency measured from the request's intended start).
//!
//! Open loop without coordinated omission: request `i` is due at `start + i / rate`, whatever
//! happened before. Connections claim due times in order from one shared counter; a free
//! connection waits for its claimed time, a busy one claims nothing, so when every connection
//! is busy the next request simply waits until one is free, and that wait is part of its
//! latency. A server that stalls therefore shows the stall in every request scheduled during
//! it, not in one request only.
//!
//! Over gRPC (V2 `ModelInfer`) each slot holds its own HTTP/2 channel instead, and a status
//! code is reported as its usual HTTP equivalent (OK 200, INVALID_ARGUMENT 400, ...).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::report::{ConnectionStats, Report, RequestRecord, Run, StopReason, histogram};
use super::timer::Timer;
use crate::client::http::{Connection, Target};
use crate::grpc_proto::ModelInferRequest;
use crate::grpc_proto::grpc_inference_service_client::GrpcInferenceServiceClient;

type GrpcClient = GrpcInferenceServiceClient<tonic::transport::Channel>;

/// At most this many distinct transport error messages are kept per connection; the rest
/// are counted under "other".
const MAX_ERROR_KINDS: usize = 16;

/// What to send, how hard, and for how long.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server, `http://host:port` (any base path is kept).
    pub url: String,
    pub method: Method,
    /// The route, e.g. `/predict`.
    pub path: String,
    /// Request bodies, used in turn (request `i` sends `bodies[i % len]`); empty: no body.
    pub bodies: Vec<Bytes>,
    /// More headers, sent with every request (e.g. `Inference-Header-Content-Length`).
    pub headers: Vec<(hyper::header::HeaderName, HeaderValue)>,
    /// gRPC instead of HTTP: V2 `ModelInfer` requests, used in turn (`url` is then the gRPC
    /// server, and `method`, `path`, `bodies` and `headers` are unused).
    pub grpc: Vec<ModelInferRequest>,
    /// Sent as `Authorization: Bearer <key>` (gRPC: metadata `authorization`).
    pub bearer: Option<String>,
    /// Connections, each with at most one request in flight.
    pub concurrency: usize,
    /// Open loop at this many requests per second; `None`: closed loop.
    pub rate: Option<f64>,
    /// Stop after this long...
    pub duration: Option<Duration>,
    /// ...or after this many requests, whichever comes first.
    pub requests: Option<u64>,
    /// A request (connecting included) that takes longer counts as a transport error.
    pub timeout: Duration,
    /// Keep one record per request in the report (for tests; costs memory).
    pub trace: bool,
    /// Counters for a progress display, updated as answers come in.
    pub live: Arc<LiveCounters>,
}

impl LoadConfig {
    /// `GET`/no body, one connection, closed loop, no bounds yet (set `duration` or
    /// `requests`), 10 s timeout.
    pub fn new(url: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            method: Method::GET,
            path: path.into(),
            bodies: Vec::new(),
            headers: Vec::new(),
            grpc: Vec::new(),
            bearer: None,
            concurrency: 1,
            rate: None,
            duration: None,
            requests: None,
            timeout: Duration::from_secs(10),
            trace: false,
            live: Arc::default(),
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.concurrency > 0, "the concurrency must be at least 1");
        anyhow::ensure!(
            self.path.starts_with('/'),
            "the path must start with /, not {:?}",
            self.path
        );
        anyhow::ensure!(
            self.requests != Some(0),
            "the number of requests must be at least 1"
        );
        anyhow::ensure!(
            self.duration.is_some() || self.requests.is_some(),
            "a load test needs a duration or a number of requests"
        );
        anyhow::ensure!(
            self.duration.is_none_or(|d| !d.is_zero()),
            "the duration must be positive"
        );
        anyhow::ensure!(!self.timeout.is_zero(), "the timeout must be positive");
        if let Some(rate) = self.rate {
            anyhow::ensure!(
                rate.is_finite() && rate > 0.0,
                "the rate must be a positive number of requests per second, not {rate}"
            );
        }
        Ok(())
    }
}

/// Running totals for a progress display.
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// Answers plus transport errors.
    pub completed: AtomicU64,
    /// Non-2xx answers plus transport errors.
    pub errors: AtomicU64,
}

/// The parts of every request, built once.
struct Template {
    target: Target,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    bodies: Vec<Bytes>,
    timeout: Duration,
    grpc: Vec<ModelInferRequest>,
    grpc_uri: String,
    bearer: Option<String>,
}

impl Template {
    fn new(config: &LoadConfig) -> anyhow::Result<Self> {
        let target = Target::parse(&config.url)?;
        let path = target.path(&config.path);
        let uri = Uri::from_maybe_shared(Bytes::from(path.clone()))
            .with_context(|| format!("{path:?} is not a valid path"))?;
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_str(&target.authority)?);
        if !config.bodies.is_empty() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(key) = &config.bearer {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                .context("the API key cannot be sent in a header")?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        for (name, value) in &config.headers {
            headers.insert(name.clone(), value.clone());
        }
        Ok(Self {
            target,
            method: config.method.clone(),
            uri,
            headers,
            bodies: config.bodies.clone(),
            timeout: config.timeout,
            grpc: config.grpc.clone(),
            grpc_uri: crate::client::v2::grpc_uri(&config.url),
            bearer: config.bearer.clone(),
        })
    }

    fn is_grpc(&self) -> bool {
        !self.grpc.is_empty()
    }

    async fn open(&self, timeout: Duration) -> anyhow::Result<Link> {
        if self.is_grpc() {
            let channel = tonic::transport::Endpoint::from_shared(self.grpc_uri.clone())
                .with_context(|| format!("{:?} is not a gRPC address", self.grpc_uri))?
                .connect_timeout(timeout)
                .tcp_nodelay(true)
                .connect()
                .await
                .with_context(|| format!("connecting to {}", self.grpc_uri))?;
            Ok(Link::Grpc(GrpcClient::new(channel)))
        } else {
            Ok(Link::Http(Connection::open(&self.target, timeout).await?))
        }
    }

    fn grpc_request(&self, slot: u64) -> Result<tonic::Request<ModelInferRequest>, String> {
        let n = self.grpc.len() as u64;
        let mut request = tonic::Request::new(self.grpc[(slot % n) as usize].clone());
        if let Some(key) = &self.bearer {
            let value = format!("Bearer {key}")
                .parse()
                .map_err(|_| "the API key cannot be sent as metadata".to_string())?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }

    fn request(&self, slot: u64) -> Request<Full<Bytes>> {
        let body = match self.bodies.len() {
            0 => Bytes::new(),
            n => self.bodies[(slot % n as u64) as usize].clone(),
        };
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// One slot's connection: HTTP/1.1, or a gRPC channel.
enum Link {
    Http(Connection),
    Grpc(GrpcClient),
}

/// A gRPC code as its usual HTTP status, for the report.
fn grpc_as_http(code: tonic::Code) -> StatusCode {
    use tonic::Code;
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What every connection shares.
struct Shared {
    template: Template,
    /// The next request number to claim.
    next: AtomicU64,
    /// No request number at or above this one is sent.
    limit: u64,
    started: Instant,
    deadline: Option<Instant>,
    /// Open loop: seconds between two intended starts.
    interval: Option<f64>,
    trace: bool,
    live: Arc<LiveCounters>,
}

impl Shared {
    fn intended_start(&self, slot: u64) -> Instant {
        match self.interval {
            Some(interval) => self.started + Duration::from_secs_f64(slot as f64 * interval),
            None => Instant::now(),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl ConnectionStats {
    fn new(open_loop: bool) -> Self {
        Self {
            sent: 0,
            unfinished: 0,
            statuses: vec![0; 1000],
            transport_errors: 0,
            error_kinds: HashMap::new(),
            latency: histogram(),
            service_time: open_loop.then(histogram),
            trace: Vec::new(),
        }
    }

    fn transport_error(&mut self, message: String) {
        self.transport_errors += 1;
        let kinds = self.error_kinds.len();
        match self.error_kinds.get_mut(&message) {
            Some(n) => *n += 1,
            None if kinds < MAX_ERROR_KINDS => {
                self.error_kinds.insert(message, 1);
            }
            None => *self.error_kinds.entry("other".to_string()).or_default() += 1,
        }
    }
}

/// Runs a load test until its request count is reached, its duration is over or `stop` is
/// cancelled (Ctrl-C), whichever comes first. Requests still in flight then are abandoned
/// and counted as unfinished. Fails only on a configuration error; transport errors and
/// error statuses are counted in the report.
pub async fn run_load(config: &LoadConfig, stop: CancellationToken) -> anyhow::Result<Report> {
    config.check()?;
    let template = Template::new(config)?;

    // Connect first, so that connection set-up is not part of the first requests' latency.
    // A connection that fails here is retried (and counted) by its first request. An
    // unreachable host must not hold the test up for longer than the test itself.
    let connect_within = config
        .duration
        .map_or(config.timeout, |d| d.min(config.timeout));
    let template = Arc::new(template);
    let mut connecting = JoinSet::new();
    for _ in 0..config.concurrency {
        let template = template.clone();
        connecting.spawn(async move { template.open(connect_within).await.ok() });
    }
    let connections = tokio::select! {
        connections = connecting.join_all() => connections,
        () = stop.cancelled() => Vec::new(),
    };

    let started = Instant::now();
    let template = Arc::try_unwrap(template)
        .map_err(|_| anyhow::anyhow!("a connection task outlived its set"))?;
    let shared = Arc::new(Shared {
        template,
        next: AtomicU64::new(0),
        limit: config.requests.unwrap_or(u64::MAX),
        started,
        deadline: config.duration.map(|d| started + d),
        interval: config.rate.map(|r| 1.0 / r),
        trace: config.trace,
        live: config.live.clone(),
    });
    let halt = stop.child_token();
    let timer = shared.deadline.map(|deadline| {
        let halt = halt.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline.into()).await;
            halt.cancel();
        })
    });
    let mut workers = JoinSet::new();
    for connection in connections {
        workers.spawn(drive(shared.clone(), connection, halt.clone()));
    }
    let per_connection = workers.join_all().await;
    let mut stopped = Instant::now();
    if let Some(timer) = timer {
        timer.abort();
    }

    let sent: u64 = per_connection.iter().map(|c| c.sent).sum();
    let stopped_by = if stop.is_cancelled() {
        StopReason::Interrupted
    } else if sent >= shared.limit {
        StopReason::Requests
    } else {
        // The last requests may have ended before the deadline (an open loop claims no
        // request due after it); the test still lasted its whole duration.
        stopped = stopped.max(shared.deadline.unwrap_or(stopped));
        StopReason::Duration
    };
    // Open loop: requests that were due before the end but found no free connection.
    let missed = config.rate.map_or(0, |rate| {
        let end = shared.deadline.map_or(stopped, |d| d.min(stopped));
        let due = ((end - started).as_secs_f64() * rate).ceil() as u64;
        due.min(shared.limit).saturating_sub(sent)
    });
    Ok(Report::merge(
        Run {
            method: config.method.to_string(),
            url: format!("{}{}", config.url.trim_end_matches('/'), config.path),
            concurrency: config.concurrency,
            rate: config.rate,
        },
        stopped_by,
        started,
        stopped - started,
        missed,
        per_connection,
    ))
}

/// One connection's loop: claim the next request, wait for its time (open loop), send it,
/// record the answer.
async fn drive(
    shared: Arc<Shared>,
    mut connection: Option<Link>,
    halt: CancellationToken,
) -> ConnectionStats {
    let mut stats = ConnectionStats::new(shared.interval.is_some());
    let mut timer = Timer::new();
    let halted = halt.cancelled();
    tokio::pin!(halted);
    loop {
        if halt.is_cancelled() {
            break;
        }
        let slot = shared.next.fetch_add(1, Ordering::Relaxed);
        if slot >= shared.limit {
            break;
        }
        let intended = shared.intended_start(slot);
        if shared.deadline.is_some_and(|d| intended >= d) {
            break;
        }
        if intended > Instant::now() {
            tokio::select! {
                biased;
                () = &mut halted => break,
                () = timer.sleep_until(intended) => {}
            }
        }
        stats.sent += 1;
        let sent_at = Instant::now();
        let exchange = tokio::time::timeout(
            shared.template.timeout,
            exchange(&mut connection, &shared.template, slot),
        );
        let outcome = tokio::select! {
            biased;
            () = &mut halted => {
                stats.unfinished += 1;
                break;
            }
            outcome = exchange => outcome,
        };
        let done = Instant::now();
        let status = match outcome {
            Ok(Ok(status)) => {
                stats.statuses[usize::from(status.as_u16())] += 1;
                stats.latency.saturating_record(micros(done - intended));
                if let Some(service) = &mut stats.service_time {
                    service.saturating_record(micros(done - sent_at));
                }
                Some(status.as_u16())
            }
            Ok(Err(message)) => {
                connection = None;
                stats.transport_error(message);
                None
            }
            Err(_elapsed) => {
                // hyper closes a connection whose request is abandoned.
                connection = None;
                stats.transport_error(format!("no answer within {:?}", shared.template.timeout));
                None
            }
        };
        shared.live.completed.fetch_add(1, Ordering::Relaxed);
        if !status.is_some_and(|s| (200..300).contains(&s)) {
            shared.live.errors.fetch_add(1, Ordering::Relaxed);
        }
        if shared.trace {
            stats.trace.push(RequestRecord {
                slot,
                intended: intended - shared.started,
                latency: done - intended,
                status,
            });
        }
    }
    stats
}

/// Sends request `slot` on the connection, reconnecting if it is closed, and reads the whole
/// answer. The error is a message for the report.
async fn exchange(
    connection: &mut Option<Link>,
    template: &Template,
    slot: u64,
) -> Result<StatusCode, String> {
    if let Some(Link::Http(open)) = connection
        && open.ready().await.is_err()
    {
        // Closed between two requests (e.g. by the server): nothing was sent, reconnect.
        *connection = None;
    }
    let link = match connection {
        Some(open) => open,
        None => connection.insert(
            template
                .open(template.timeout)
                .await
                .map_err(|e| format!("{e:#}"))?,
        ),
    };
    let open = match link {
        Link::Http(open) => open,
        Link::Grpc(client) => {
            return match client.model_infer(template.grpc_request(slot)?).await {
                Ok(_) => Ok(StatusCode::OK),
                // A transport failure surfaces as a status whose source is the error.
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    Err(status.message().to_string())
                }
                Err(status) => Ok(grpc_as_http(status.code())),
            };
        }
    };
    let response = open
        .send_request(template.request(slot))
        .await
        .map_err(|e| error_chain(&e))?;
    let status = response.status();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        frame.map_err(|e| error_chain(&e))?;
    }
    Ok(status)
}

fn error_chain(err: &dyn StdError) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
