//! Connections: accepting under a cap, the header-read and idle timeouts of each connection,
//! and the graceful drain. hyper's HTTP/1 server (REST) or HTTP/2 server (gRPC, cleartext)
//! under our own accept loop, because `axum::serve` offers none of these bounds.
//!
//! A connection is *busy* while one of its requests is being handled, and *waiting* otherwise.
//! A waiting connection that has received nothing for `idle_timeout` is closed; one that has
//! started sending a request head must complete it within `header_read_timeout` of its first
//! byte. Once a head is complete, the request's own timeout (the prediction routes') applies.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulConnection;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

/// The connection-level bounds; every field is a setting of `serve`.
#[derive(Debug, Clone)]
pub struct ConnSettings {
    /// Connections open at once; more wait in the kernel's backlog until one closes.
    pub max_connections: usize,
    /// From the first byte of a request head to its end.
    pub header_read_timeout: Duration,
    /// A connection with no request in progress and nothing received is closed after this.
    pub idle_timeout: Duration,
    /// The largest request head (request line and headers); larger ones get 431.
    pub max_header_bytes: usize,
    /// How long requests in flight may take to finish once the server stops.
    pub drain_timeout: Duration,
}

/// hyper's smallest read buffer: a head limit below it would be refused by hyper.
pub const MIN_HEADER_BYTES: usize = 8192;

/// What `serve` can serve: the REST app, or the gRPC router.
pub trait HttpService:
    Service<
        axum::extract::Request,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> HttpService for S where
    S: Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// Which HTTP a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge (h2c), as gRPC clients speak it.
    Http2,
}

/// The most streams an HTTP/2 client may open at once on one connection.
const MAX_STREAMS_PER_CONNECTION: u32 = 128;

/// Serves `app` over HTTP/1.1 on `listener` until `stop` is cancelled, then stops accepting
/// and drains: a connection mid-request finishes it, any other closes at once; after
/// `drain_timeout` the rest are dropped.
pub async fn serve<S: HttpService>(
    listener: TcpListener,
    app: S,
    stop: CancellationToken,
    settings: ConnSettings,
) -> anyhow::Result<()> {
    serve_with(listener, app, stop, settings, Protocol::Http1).await
}

/// [`serve`], speaking `protocol`.
pub async fn serve_with<S: HttpService>(
    listener: TcpListener,
    app: S,
    stop: CancellationToken,
    settings: ConnSettings,
    protocol: Protocol,
) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let tracker = TaskTracker::new();
    let finish = CancellationToken::new();
    loop {
        let permit = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        tracker.spawn(connection(
            stream,
            app.clone(),
            settings.clone(),
            finish.clone(),
            permit,
            protocol,
        ));
    }
    drop(listener);
    finish.cancel();
    tracker.close();
    if tokio::time::timeout(settings.drain_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            drain_secs = settings.drain_timeout.as_secs_f64(),
            connections = tracker.len(),
            "drain timeout: closing the connections still open"
        );
    }
    Ok(())
}

/// Milliseconds since the first call: a clock that fits in an atomic.
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What a connection's watchdog needs to know, shared with its reader and its service.
#[derive(Debug, Default)]
struct Activity {
    /// Requests being handled (0 or 1 for HTTP/1).
    busy: AtomicUsize,
    /// When the connection last became waiting (opened, or its last request answered).
    waiting_since: AtomicU64,
    /// When the first byte of the next request head arrived; 0 while none has.
    head_started: AtomicU64,
    /// When the watchdog will next look (it may look sooner, never later).
    wake_at: AtomicU64,
    /// Wakes the watchdog when a head starts that must end before `wake_at`. Only then: a
    /// request on a busy keep-alive connection costs no wake-up and no new timer.
    head_began: tokio::sync::Notify,
}

/// Why the watchdog closes a connection, if it does.
enum Verdict {
    Keep { recheck: Duration },
    Close(&'static str),
}

impl Activity {
    fn new() -> Self {
        let activity = Self::default();
        activity.waiting_since.store(now_ms(), Ordering::Relaxed);
        activity
    }

    fn is_waiting(&self) -> bool {
        self.busy.load(Ordering::Relaxed) == 0
    }

    /// Bytes arrived. The first of a request head starts its deadline; the watchdog is woken
    /// only when that deadline comes before it would look anyway. `head_started` and `wake_at`
    /// are each stored before the other is read (sequentially consistent, here and in
    /// [`watch`]), so either this sees the watchdog's new `wake_at` or the watchdog sees this
    /// head: a deadline is never missed.
    fn on_read(&self, header_read_timeout_ms: u64) {
        if self.is_waiting() && self.head_started.load(Ordering::Relaxed) == 0 {
            let started = now_ms().max(1);
            self.head_started.store(started, Ordering::SeqCst);
            if started.saturating_add(header_read_timeout_ms) < self.wake_at.load(Ordering::SeqCst)
            {
                self.head_began.notify_one();
            }
        }
    }

    fn begin(self: &Arc<Self>) -> RequestGuard {
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(0, Ordering::Relaxed);
        RequestGuard(self.clone())
    }

    /// The verdict now, given the head's start as last read (`head_started`).
    fn verdict(&self, settings: &ConnSettings, head_started: u64) -> Verdict {
        let poll_busy = settings.header_read_timeout.min(settings.idle_timeout);
        if !self.is_waiting() {
            return Verdict::Keep { recheck: poll_busy };
        }
        let now = now_ms();
        let (since, limit, reason) = match head_started {
            0 => (
                self.waiting_since.load(Ordering::Relaxed),
                settings.idle_timeout,
                "idle_timeout",
            ),
            started => (started, settings.header_read_timeout, "header_timeout"),
        };
        let limit_ms = millis(limit);
        let elapsed = now.saturating_sub(since);
        if elapsed >= limit_ms {
            return Verdict::Close(reason);
        }
        let mut recheck = Duration::from_millis(limit_ms - elapsed);
        if head_started == 0 {
            // Look again within a header timeout even when the idle deadline is further: a
            // head that starts meanwhile then never needs the watchdog woken early (no wake-up
            // per request on a keep-alive connection), at the price of a look every
            // `header_read_timeout` on an idle one.
            recheck = recheck.min(settings.header_read_timeout);
        }
        Verdict::Keep { recheck }
    }
}

/// One request in progress on a connection; dropped when its response is ready (or the
/// request is abandoned).
struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.waiting_since.store(now_ms(), Ordering::Relaxed);
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project! {
    /// The socket, noting when bytes arrive while the connection waits for a request head.
    struct Watched {
        #[pin]
        inner: TcpStream,
        activity: Arc<Activity>,
        header_read_timeout_ms: u64,
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.on_read(*this.header_read_timeout_ms);
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Whether a request's body has been read to its end.
#[derive(Debug, Default)]
struct BodyProgress(std::sync::atomic::AtomicBool);

impl BodyProgress {
    fn set_finished(&self, finished: bool) {
        self.0.store(finished, Ordering::Relaxed);
    }
    fn is_finished(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

pin_project! {
    /// A request body that records when it has been read to its end.
    struct Tracked {
        #[pin]
        inner: Incoming,
        progress: Arc<BodyProgress>,
    }
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = this.inner.as_mut().poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) || this.inner.is_end_stream() {
            this.progress.set_finished(true);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// One connection, from accept to close.
async fn connection<S: HttpService>(
    stream: TcpStream,
    app: S,
    settings: Arc<ConnSettings>,
    finish: CancellationToken,
    _slot: OwnedSemaphorePermit,
    protocol: Protocol,
) {
    let _ = stream.set_nodelay(true);
    let open = OpenConnection::start();
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
        header_read_timeout_ms: millis(settings.header_read_timeout),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let guard = activity.begin();
            let body = Arc::new(BodyProgress::default());
            let req = req.map(|incoming| {
                body.set_finished(http_body::Body::is_end_stream(&incoming));
                Body::new(Tracked {
                    inner: incoming,
                    progress: body.clone(),
                })
            });
            let answer = app.clone().call(req);
            async move {
                let mut response = answer.await;
                drop(guard);
                // Answered before the body was read (401, 413, 415, ...): hyper will close the
                // connection rather than read the rest, so say so, or the client's next request
                // on it fails.
                if let Ok(response) = response.as_mut()
                    && !body.is_finished()
                {
                    response.headers_mut().insert(
                        axum::http::header::CONNECTION,
                        axum::http::HeaderValue::from_static("close"),
                    );
                }
                response
            }
        })
    };
    let reason = match protocol {
        Protocol::Http1 => {
            let conn = hyper::server::conn::http1::Builder::new()
                // A client that half-closes after sending its request still gets the answer.
                .half_close(true)
                .max_buf_size(settings.max_header_bytes.max(MIN_HEADER_BYTES))
                .serve_connection(io, service);
            watch(conn, &activity, &settings, &finish, true).await
        }
        Protocol::Http2 => {
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
                .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
                .serve_connection(io, service);
            // A stream (gRPC's Watch) outlives its response future, so the request count
            // cannot tell an idle HTTP/2 connection: no idle or header timeout there, and a
            // drain always lets the open streams finish (within the drain timeout).
            watch(conn, &activity, &settings, &finish, false).await
        }
    };
    open.close(reason);
}

/// Drives `conn` until it ends, the watchdog closes it, or the server drains; returns why it
/// ended.
async fn watch<C>(
    conn: C,
    activity: &Activity,
    settings: &ConnSettings,
    finish: &CancellationToken,
    timeouts: bool,
) -> &'static str
where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    tokio::pin!(conn);
    let mut draining = false;
    // One timer, one drain future and one wake-up future for the connection's life, re-armed
    // only when the watchdog looks (a deadline, a head that must end sooner, the drain), not
    // per request.
    let finished = finish.cancelled();
    tokio::pin!(finished);
    let mut head_began = std::pin::pin!(activity.head_began.notified());
    let sleep = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(sleep);
    loop {
        let recheck = loop {
            let head_started = activity.head_started.load(Ordering::SeqCst);
            let recheck = match activity.verdict(settings, head_started) {
                Verdict::Close(reason) if timeouts => return reason,
                Verdict::Close(_) => Duration::from_secs(3600),
                Verdict::Keep { recheck } => recheck,
            };
            let wake_at = now_ms().saturating_add(millis(recheck));
            activity.wake_at.store(wake_at, Ordering::SeqCst);
            // A head that started meanwhile may not have seen the new `wake_at`: look again.
            if activity.head_started.load(Ordering::SeqCst) == head_started {
                break recheck;
            }
        };
        sleep.as_mut().reset(tokio::time::Instant::now() + recheck);
        tokio::select! {
            // The connection first: it is what wakes the task nearly every time.
            biased;
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
                break "closed";
            }
            () = sleep.as_mut() => {}
            () = head_began.as_mut() => {
                head_began.set(activity.head_began.notified());
            }
            () = finished.as_mut(), if !draining => {
                draining = true;
                if timeouts && activity.is_waiting() {
                    break "shutdown";
                }
                // Finish the request in progress, then close.
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// `http_connections_open`, and `http_connections_closed_total` by reason when it ends.
struct OpenConnection(metrics::Gauge);

impl OpenConnection {
    fn start() -> Self {
        let gauge = metrics::gauge!("http_connections_open");
        gauge.increment(1.0);
        Self(gauge)
    }

    fn close(self, reason: &'static str) {
        metrics::counter!("http_connections_closed_total", "reason" => reason).increment(1);
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
