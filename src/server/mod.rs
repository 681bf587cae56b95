//! `ml-serving serve`: the HTTP server. Loads and checks the model before binding the port,
//! answers the tutorial's API and its extensions, drains on SIGTERM, reloads on SIGHUP.

mod error;
mod extract;
pub mod grpc;
mod layers;
mod openapi;
mod reload;
mod routes;
mod state;
mod v2;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use utoipa_swagger_ui::SwaggerUi;

pub use error::ApiError;
pub use openapi::document as openapi_document;
pub use reload::reload_now;
pub use state::{AppState, Limits, ReloadOutcome, ServedModel};

use crate::artifact::{DEFAULT_MODEL_PATH, LoadedModel};

/// Serve a model artifact over HTTP.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// The model artifact to serve.
    #[arg(long, env = "MODEL_PATH", default_value = DEFAULT_MODEL_PATH)]
    pub model_path: PathBuf,
    /// Serve the model under this name instead of the one stored in the artifact.
    #[arg(long, env = "MODEL_NAME")]
    pub model_name: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one and logs it).
    #[arg(long, env = "PORT", default_value_t = 8000)]
    pub port: u16,
    /// Port of the V2 gRPC service (inference.GRPCInferenceService and grpc.health.v1.Health); 0 turns it off.
    #[arg(long, env = "GRPC_PORT", default_value_t = 8081)]
    pub grpc_port: u16,
    /// Largest request body accepted, in bytes (413 above it).
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 1024 * 1024)]
    pub body_limit_bytes: usize,
    /// Most rows in one batch request (413 above it).
    #[arg(long, env = "MAX_BATCH_ROWS", default_value_t = 1000)]
    pub max_batch_rows: usize,
    /// Most prediction requests handled at once; more get 429 at once.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,
    /// Longest time a prediction request may take, body included, in seconds (408 after).
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 10.0)]
    pub request_timeout_secs: f64,
    /// On SIGTERM or SIGINT, how long requests in flight may take to finish, in seconds.
    #[arg(long, env = "DRAIN_TIMEOUT_SECS", default_value_t = 10.0)]
    pub drain_timeout_secs: f64,
    /// Check the model file for changes every this many seconds and reload it (0 = off; SIGHUP always reloads).
    #[arg(long, env = "RELOAD_INTERVAL_SECS", default_value_t = 0.0)]
    pub reload_interval_secs: f64,
    /// Require `Authorization: Bearer <key>` on the prediction routes.
    #[arg(long, env = "API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Log filter, in `RUST_LOG` syntax.
    #[arg(long = "log", env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
    /// Log as JSON lines.
    #[arg(long, env = "LOG_JSON")]
    pub log_json: bool,
}

fn seconds(name: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{name} must be a positive number of seconds, got {value}"))
}

impl ServeArgs {
    fn check(&self) -> anyhow::Result<()> {
        seconds("REQUEST_TIMEOUT_SECS", self.request_timeout_secs)?;
        seconds("DRAIN_TIMEOUT_SECS", self.drain_timeout_secs)?;
        if self.reload_interval_secs != 0.0 {
            seconds("RELOAD_INTERVAL_SECS", self.reload_interval_secs)?;
        }
        anyhow::ensure!(self.max_batch_rows > 0, "MAX_BATCH_ROWS must be at least 1");
        anyhow::ensure!(self.max_in_flight > 0, "MAX_IN_FLIGHT must be at least 1");
        anyhow::ensure!(
            self.body_limit_bytes > 0,
            "BODY_LIMIT_BYTES must be at least 1"
        );
        Ok(())
    }

    /// Loads and checks the model, and builds the shared state.
    pub fn state(&self) -> anyhow::Result<AppState> {
        let model = LoadedModel::load(&self.model_path)?;
        Ok(AppState::new(
            ServedModel::new(model, self.model_name.as_deref()),
            self.model_path.clone(),
            self.model_name.clone(),
            Limits {
                body_bytes: self.body_limit_bytes,
                batch_rows: self.max_batch_rows,
            },
            self.api_key.clone(),
        ))
    }
}

/// The router with every route and layer, for a server or a test.
pub fn app(state: AppState, max_in_flight: usize, request_timeout: Duration) -> Router {
    let model = state.model();
    let doc = openapi::document(model.features(), &model.model.artifact.sample);
    drop(model);
    // Clones share one in-flight limit: /predict and the V2 inference routes draw on the same.
    let guards = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(layers::handle_tower_error))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::new(max_in_flight))
        .timeout(request_timeout);
    let predictions = Router::new()
        .route("/predict", post(routes::predict))
        .route("/predict/batch", post(routes::predict_batch))
        .route_layer(guards.clone());
    let v2_infer = v2::infer_routes()
        .route_layer(guards)
        .route_layer(axum::middleware::map_response(v2::error_body));
    Router::new()
        .route("/info", get(routes::info))
        .route("/health", get(routes::health))
        .route("/ready", get(routes::ready))
        .route("/metrics", get(routes::metrics))
        .merge(predictions)
        .merge(v2_infer)
        .merge(v2::open_routes())
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.limits().body_bytes))
        .layer(layers::MetricsLayer)
        .with_state(state)
}

/// Serves `app` on `listener` until `stop` is cancelled, then drains for at most `drain`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    stop: CancellationToken,
    drain: Duration,
) -> anyhow::Result<()> {
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(stop.clone().cancelled_owned())
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result.context("serving HTTP"),
        () = stop.cancelled() => {}
    }
    match tokio::time::timeout(drain, server).await {
        Ok(result) => result.context("serving HTTP"),
        Err(_) => {
            tracing::warn!(
                drain_secs = drain.as_secs_f64(),
                "drain timeout: closing the connections still open"
            );
            Ok(())
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = int.recv() => tracing::info!("SIGINT: draining"),
    }
}

/// `ml-serving serve`.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    crate::telemetry::init_logging(&args.log_filter, args.log_json);
    crate::telemetry::metrics_handle();
    args.check()?;
    let state = args.state().inspect_err(|_| {
        metrics::counter!("model_loads_total", "trigger" => "startup", "outcome" => "failure")
            .increment(1);
    })?;
    metrics::counter!("model_loads_total", "trigger" => "startup", "outcome" => "success")
        .increment(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let addr = SocketAddr::new(args.host, args.port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        {
            let model = state.model();
            tracing::info!(
                address = %local,
                model = %model.name,
                version = %model.model.artifact.version,
                path = %args.model_path.display(),
                sha256 = %model.model.sha256,
                "listening"
            );
        }
        let stop = CancellationToken::new();
        let app = app(
            state.clone(),
            args.max_in_flight,
            seconds("REQUEST_TIMEOUT_SECS", args.request_timeout_secs)?,
        );
        let poll = (args.reload_interval_secs > 0.0)
            .then(|| Duration::from_secs_f64(args.reload_interval_secs));
        tokio::spawn(reload::watch(state.clone(), poll, stop.clone()));
        tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut upkeep = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        _ = upkeep.tick() => crate::telemetry::metrics_handle().run_upkeep(),
                    }
                }
            }
        });
        // The V2 gRPC server (src/server/grpc/): same state, limits and drain.
        let grpc = match args.grpc_port {
            0 => None,
            port => Some(
                grpc::spawn(
                    SocketAddr::new(args.host, port),
                    state.clone(),
                    grpc::GrpcSettings {
                        max_in_flight: args.max_in_flight,
                        request_timeout: seconds(
                            "REQUEST_TIMEOUT_SECS",
                            args.request_timeout_secs,
                        )?,
                        drain: seconds("DRAIN_TIMEOUT_SECS", args.drain_timeout_secs)?,
                    },
                    stop.clone(),
                )
                .await?,
            ),
        };
        tokio::spawn({
            let (state, stop) = (state.clone(), stop.clone());
            async move {
                shutdown_signal().await;
                state.begin_shutdown();
                stop.cancel();
            }
        });
        serve(
            listener,
            app,
            stop,
            seconds("DRAIN_TIMEOUT_SECS", args.drain_timeout_secs)?,
        )
        .await?;
        if let Some(grpc) = grpc {
            grpc.await.context("the gRPC server task")??;
        }
        tracing::info!("stopped");
        Ok(())
    })
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
