//! The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`, from
//! `proto/grpc_predict_v2.proto`) and the standard `grpc.health.v1.Health`, on their own port
//! (`GRPC_PORT`), over the same model, limits, API key and drain as the HTTP server. The tonic
//! services are served by the same axum/hyper stack as REST (HTTP/2), so that the deadline and
//! the metrics are ours: tonic's own timeout answers CANCELLED where the protocol says
//! DEADLINE_EXCEEDED.

mod service;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics::SharedString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use service::{InferenceService, grpc_timeout, status};

use super::AppState;

pub use crate::grpc_proto as proto;

use proto::grpc_inference_service_server::GrpcInferenceServiceServer;

/// The service's full name (its health entry and its methods' path prefix).
pub const SERVICE_NAME: &str = "inference.GRPCInferenceService";

/// What the gRPC server needs beyond the shared state.
#[derive(Debug, Clone)]
pub struct GrpcSettings {
    /// The prediction slots, shared with the REST routes (`MAX_IN_FLIGHT`).
    pub slots: super::Slots,
    pub request_timeout: Duration,
    /// The same connection bounds and drain as the REST listener.
    pub connections: super::ConnSettings,
}

/// The gRPC router: both services, the deadline and the metrics. Health starts SERVING and
/// turns NOT_SERVING when `stop` is cancelled.
pub fn router(state: AppState, settings: GrpcSettings, stop: CancellationToken) -> axum::Router {
    let limit = state.limits().body_bytes;
    let inference = GrpcInferenceServiceServer::new(InferenceService::new(
        state,
        settings.slots.clone(),
        settings.request_timeout,
    ))
    .max_decoding_message_size(limit)
    .max_encoding_message_size(limit);
    let (health, health_service) = tonic_health::server::health_reporter();
    tokio::spawn(async move {
        use tonic_health::ServingStatus::{NotServing, Serving};
        health.set_service_status(SERVICE_NAME, Serving).await;
        stop.cancelled().await;
        health.set_service_status("", NotServing).await;
        health.set_service_status(SERVICE_NAME, NotServing).await;
    });
    tonic::service::Routes::new(health_service)
        .add_service(inference)
        .prepare()
        .into_axum_router()
        .layer(axum::middleware::from_fn_with_state(
            settings.request_timeout,
            deadline_and_metrics,
        ))
}

/// Serves gRPC on `listener` until `stop` is cancelled; then health turns NOT_SERVING, calls in
/// flight finish within `drain`, and the server returns.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    settings: GrpcSettings,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let connections = settings.connections.clone();
    let app = router(state, settings, stop.clone());
    super::serve_with(listener, app, stop, connections, super::Protocol::Http2)
        .await
        .context("serving gRPC")
}

/// Binds `addr` and serves gRPC there in a task; the task's result is the server's.
pub async fn spawn(
    addr: std::net::SocketAddr,
    state: AppState,
    settings: GrpcSettings,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr} for gRPC"))?;
    tracing::info!(address = %listener.local_addr()?, "gRPC listening");
    Ok(tokio::spawn(serve(listener, state, settings, stop)))
}

/// A call gets the sooner of the server's timeout (`REQUEST_TIMEOUT_SECS`) and the client's
/// deadline (`grpc-timeout`); past it, DEADLINE_EXCEEDED. Every call is then counted and timed
/// by method and code (one middleware for both: one boxed future per call, not two).
async fn deadline_and_metrics(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let method = method_label(request.uri().path());
    let started = Instant::now();
    let client = request
        .headers()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(grpc_timeout);
    let budget = client.map_or(timeout, |c| c.min(timeout));
    let response = match tokio::time::timeout(budget, next.run(request)).await {
        Ok(response) => response,
        Err(_) => service::deadline_exceeded().into_http(),
    };
    count(method, started, &response);
    response
}

// ------------------------------------------------------------------ metrics

const METHODS: [&str; 8] = [
    "ServerLive",
    "ServerReady",
    "ModelReady",
    "ServerMetadata",
    "ModelMetadata",
    "ModelInfer",
    "Check",
    "Watch",
];

/// The method label: a known method's name, never the raw path.
fn method_label(path: &str) -> SharedString {
    let method = path.rsplit('/').next().unwrap_or("");
    let known = path.starts_with("/inference.GRPCInferenceService/")
        || path.starts_with("/grpc.health.v1.Health/");
    METHODS
        .iter()
        .find(|m| known && **m == method)
        .map_or(SharedString::const_str("unknown"), |m| {
            SharedString::const_str(m)
        })
}

fn code_label(code: tonic::Code) -> String {
    match code {
        tonic::Code::Ok => "OK".to_string(),
        other => format!("{other:?}"),
    }
}

/// Counts and times a call by method and status code: `grpc_requests_total` and
/// `grpc_request_duration_seconds`, labels `method` (one of the services' methods, or
/// `unknown`) and `code` (`OK`, `InvalidArgument`, ...: gRPC's code names).
fn count(method: SharedString, started: Instant, response: &Response) {
    // An error is answered "trailers-only": its status is in the headers. A success carries
    // its status in the trailers, after the message.
    let code =
        tonic::Status::from_header_map(response.headers()).map_or(tonic::Code::Ok, |s| s.code());
    let labels = [("method", method), ("code", code_label(code).into())];
    metrics::counter!("grpc_requests_total", &labels).increment(1);
    metrics::histogram!("grpc_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_are_bounded() {
        assert_eq!(
            method_label("/inference.GRPCInferenceService/ModelInfer").as_ref(),
            "ModelInfer"
        );
        assert_eq!(
            method_label("/grpc.health.v1.Health/Check").as_ref(),
            "Check"
        );
        assert_eq!(
            method_label("/inference.GRPCInferenceService/Nope").as_ref(),
            "unknown"
        );
        assert_eq!(method_label("/evil/ModelInfer").as_ref(), "unknown");
        assert_eq!(code_label(tonic::Code::InvalidArgument), "InvalidArgument");
        assert_eq!(code_label(tonic::Code::Ok), "OK");
    }
}
