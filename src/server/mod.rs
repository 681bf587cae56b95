//! `ml-serving serve`: the HTTP server. Loads and checks the model before binding the port,
//! answers the tutorial's API and its extensions, drains on SIGTERM, reloads on SIGHUP.

mod conn;
mod error;
mod extract;
pub mod features;
pub mod grpc;
mod layers;
mod openapi;
mod registry;
mod reload;
mod routes;
mod state;
mod v2;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa_swagger_ui::SwaggerUi;

pub use conn::{ConnSettings, Protocol, serve, serve_with};
pub use error::ApiError;
pub use extract::Slots;
pub use openapi::{document as openapi_document, document_for as openapi_document_for};
pub use registry::{
    LookupError, ModelEntry, RefreshError, Registry, RegistrySettings, ReloadOutcome, Snapshot,
    Source as ModelSource,
};
pub use reload::reload_now;
pub use state::{AppState, Limits, ServedModel};

use crate::artifact::DEFAULT_MODEL_PATH;

/// Serve a model artifact over HTTP.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// The model artifact to serve.
    #[arg(long, env = "MODEL_PATH", default_value = DEFAULT_MODEL_PATH)]
    pub model_path: PathBuf,
    /// Serve the model under this name instead of the one stored in the artifact.
    #[arg(long, env = "MODEL_NAME")]
    pub model_name: Option<String>,
    /// Serve every model of this directory instead of MODEL_PATH: <dir>/<name>/<version>/<model file> (docs/repository.md).
    #[arg(long, env = "MODEL_REPOSITORY", conflicts_with = "model_name")]
    pub model_repository: Option<PathBuf>,
    /// The repository model that /predict, /predict/batch and /info serve (default: the only one).
    #[arg(long, env = "DEFAULT_MODEL", requires = "model_repository")]
    pub default_model: Option<String>,
    /// Most models a repository may hold; more are refused (logged, and listed in GET /models).
    #[arg(long, env = "MAX_MODELS", default_value_t = 256)]
    pub max_models: usize,
    /// Open the V2 repository calls that load and unload models (behind API_KEY when it is set).
    #[arg(long, env = "REPOSITORY_CONTROL", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new(),
          requires = "model_repository")]
    pub repository_control: bool,
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
    /// Largest request head (request line and headers), in bytes (431 above it; at least 8192).
    #[arg(long, env = "MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,
    /// Most rows in one batch request (413 above it).
    #[arg(long, env = "MAX_BATCH_ROWS", default_value_t = 1000)]
    pub max_batch_rows: usize,
    /// Most prediction requests computed at once, once their body is in; more get 429 at once.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,
    /// Most connections open at once; more wait in the listen backlog.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Longest time a prediction request may take, body included, in seconds (408 after).
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 10.0)]
    pub request_timeout_secs: f64,
    /// Longest time from the first byte of a request head to its end, in seconds (then the connection is closed).
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = 5.0)]
    pub header_read_timeout_secs: f64,
    /// Close a connection that has no request in progress and sends nothing for this many seconds.
    #[arg(long, env = "IDLE_TIMEOUT_SECS", default_value_t = 30.0)]
    pub idle_timeout_secs: f64,
    /// On SIGTERM, keep serving (with /ready at 503) this many seconds before closing the listener.
    #[arg(long, env = "SHUTDOWN_DELAY_SECS", default_value_t = 0.0)]
    pub shutdown_delay_secs: f64,
    /// Then, how long requests in flight may take to finish, in seconds.
    #[arg(long, env = "DRAIN_TIMEOUT_SECS", default_value_t = 10.0)]
    pub drain_timeout_secs: f64,
    /// Check the model file for changes every this many seconds and reload it (0 = off, else at least 0.1; SIGHUP always reloads).
    #[arg(long, env = "RELOAD_INTERVAL_SECS", default_value_t = 0.0)]
    pub reload_interval_secs: f64,
    /// Largest model artifact, in bytes, compressed or inflated (bounds memory while loading).
    #[arg(long, env = "MAX_MODEL_BYTES", default_value_t = crate::artifact::DEFAULT_MAX_MODEL_BYTES)]
    pub max_model_bytes: u64,
    /// Require `Authorization: Bearer <key>` on the prediction routes (visible ASCII, no spaces).
    #[arg(long, env = "API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Read the API key from this file (a trailing newline is ignored), e.g. a mounted Kubernetes secret.
    #[arg(long, env = "API_KEY_FILE", conflicts_with = "api_key")]
    pub api_key_file: Option<PathBuf>,
    /// Log filter, in `RUST_LOG` syntax.
    #[arg(long = "log", env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
    /// Log one line per request (method, route, status, seconds, request id) at info level.
    #[arg(long, env = "ACCESS_LOG", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub access_log: bool,
    /// Log as JSON lines (true/false, yes/no, on/off, 1/0).
    #[arg(long, env = "LOG_JSON", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub log_json: bool,
}

/// The most any count setting may be: far above any real need, far below what overflows.
const MAX_COUNT: usize = 1_000_000;
/// The shortest polling interval: a shorter one would only burn a core.
const MIN_RELOAD_INTERVAL_SECS: f64 = 0.1;

fn seconds(name: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero() && *d <= Duration::from_secs(365 * 24 * 3600))
        .with_context(|| {
            format!("{name} must be a positive number of seconds (at most a year), got {value}")
        })
}

fn seconds_or_zero(name: &str, value: f64) -> anyhow::Result<Duration> {
    if value == 0.0 {
        Ok(Duration::ZERO)
    } else {
        seconds(name, value)
    }
}

fn count(name: &str, value: usize) -> anyhow::Result<usize> {
    anyhow::ensure!(
        (1..=MAX_COUNT).contains(&value),
        "{name} must be between 1 and {MAX_COUNT}, got {value}"
    );
    Ok(value)
}

/// A model name as it appears in URLs and metrics labels.
pub fn check_model_name(setting: &str, name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        crate::repository::valid_model_name(name),
        "{setting} must be 1 to 64 characters from A-Z, a-z, 0-9, '_', '-' and '.', got {name:?}"
    );
    Ok(())
}

/// The settings checked and converted, before anything starts.
#[derive(Debug, Clone)]
pub struct Settings {
    pub request_timeout: Duration,
    pub shutdown_delay: Duration,
    pub reload_interval: Option<Duration>,
    pub max_in_flight: usize,
    pub api_key: Option<String>,
    pub connections: ConnSettings,
}

impl ServeArgs {
    /// Checks every setting and returns them converted; each problem is one clear line.
    pub fn check(&self) -> anyhow::Result<Settings> {
        tracing_subscriber::EnvFilter::try_new(&self.log_filter).map_err(|e| {
            anyhow::anyhow!(
                "RUST_LOG {:?} is not a valid log filter: {e}",
                self.log_filter
            )
        })?;
        if let Some(name) = &self.model_name {
            check_model_name("MODEL_NAME", name)?;
        }
        if let Some(name) = &self.default_model {
            check_model_name("DEFAULT_MODEL", name)?;
        }
        count("MAX_MODELS", self.max_models)?;
        count("MAX_BATCH_ROWS", self.max_batch_rows)?;
        count("MAX_CONNECTIONS", self.max_connections)?;
        anyhow::ensure!(
            self.body_limit_bytes > 0 && self.body_limit_bytes <= 1 << 30,
            "BODY_LIMIT_BYTES must be between 1 and 1073741824, got {}",
            self.body_limit_bytes
        );
        anyhow::ensure!(
            (conn::MIN_HEADER_BYTES..=1 << 20).contains(&self.max_header_bytes),
            "MAX_HEADER_BYTES must be between {} and 1048576, got {}",
            conn::MIN_HEADER_BYTES,
            self.max_header_bytes
        );
        anyhow::ensure!(
            self.max_model_bytes >= 1024,
            "MAX_MODEL_BYTES must be at least 1024, got {}",
            self.max_model_bytes
        );
        let reload_interval = seconds_or_zero("RELOAD_INTERVAL_SECS", self.reload_interval_secs)?;
        anyhow::ensure!(
            reload_interval.is_zero() || reload_interval.as_secs_f64() >= MIN_RELOAD_INTERVAL_SECS,
            "RELOAD_INTERVAL_SECS must be 0 (off) or at least {MIN_RELOAD_INTERVAL_SECS}, got {}",
            self.reload_interval_secs
        );
        Ok(Settings {
            request_timeout: seconds("REQUEST_TIMEOUT_SECS", self.request_timeout_secs)?,
            shutdown_delay: seconds_or_zero("SHUTDOWN_DELAY_SECS", self.shutdown_delay_secs)?,
            reload_interval: (!reload_interval.is_zero()).then_some(reload_interval),
            max_in_flight: count("MAX_IN_FLIGHT", self.max_in_flight)?,
            api_key: self.api_key()?,
            connections: ConnSettings {
                max_connections: self.max_connections,
                header_read_timeout: seconds(
                    "HEADER_READ_TIMEOUT_SECS",
                    self.header_read_timeout_secs,
                )?,
                idle_timeout: seconds("IDLE_TIMEOUT_SECS", self.idle_timeout_secs)?,
                max_header_bytes: self.max_header_bytes,
                drain_timeout: seconds("DRAIN_TIMEOUT_SECS", self.drain_timeout_secs)?,
            },
        })
    }

    /// The API key from `API_KEY` or `API_KEY_FILE`, checked: set but empty is an error (a
    /// missing secret must not turn authentication off), and so is whitespace inside it.
    fn api_key(&self) -> anyhow::Result<Option<String>> {
        let (key, source) = match (&self.api_key, &self.api_key_file) {
            (Some(key), _) => (key.clone(), "API_KEY".to_string()),
            (None, Some(path)) => {
                let text = read_small_file(path, 4096)
                    .with_context(|| format!("API_KEY_FILE: reading {}", path.display()))?;
                // Key files usually end with a newline; nothing else is trimmed.
                let key = text.strip_suffix('\n').unwrap_or(&text);
                let key = key.strip_suffix('\r').unwrap_or(key).to_string();
                (key, format!("API_KEY_FILE {}", path.display()))
            }
            (None, None) => return Ok(None),
        };
        anyhow::ensure!(
            !key.is_empty(),
            "{source} is set but empty; unset it to serve without an API key"
        );
        anyhow::ensure!(
            key.bytes().all(|b| b.is_ascii_graphic()),
            "{source} must be visible ASCII with no spaces, tabs or newlines \
             (a bearer token cannot carry them); check for stray whitespace"
        );
        Ok(Some(key))
    }

    /// Loads and checks every model, and builds the shared state.
    pub fn state(&self, settings: &Settings) -> anyhow::Result<AppState> {
        let source = match &self.model_repository {
            Some(root) => ModelSource::Repository { root: root.clone() },
            None => ModelSource::File {
                path: self.model_path.clone(),
                name: self.model_name.clone(),
            },
        };
        let registry = Registry::load(RegistrySettings {
            source,
            model_bytes: self.max_model_bytes,
            max_models: self.max_models,
            batch_rows: self.max_batch_rows,
            default_model: self.default_model.clone(),
        })?;
        Ok(AppState::with_registry(
            registry,
            Limits {
                body_bytes: self.body_limit_bytes,
                batch_rows: self.max_batch_rows,
                model_bytes: self.max_model_bytes,
            },
            settings.api_key.clone(),
            self.repository_control,
        ))
    }
}

/// Reads a file of at most `limit` bytes as UTF-8.
fn read_small_file(path: &std::path::Path, limit: u64) -> anyhow::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_string(&mut text)?;
    anyhow::ensure!(text.len() as u64 <= limit, "larger than {limit} bytes");
    Ok(text)
}

/// The service that answers every HTTP request: the router inside the metrics layer.
pub type App = layers::Metrics<Router>;

/// The router with every route and layer, for a server or a test.
pub fn app(state: AppState, max_in_flight: usize, request_timeout: Duration) -> App {
    app_with_slots(state, Slots::new(max_in_flight), request_timeout)
}

/// [`app`], drawing on slots the caller also holds (a test takes one to see a 429).
pub fn app_with_slots(state: AppState, slots: Slots, request_timeout: Duration) -> App {
    router(state, slots, request_timeout, false)
}

/// Routes added to the router and to the metrics layer's table of templates at once, so the
/// two always hold the same ones.
struct Routes {
    router: Router<AppState>,
    templates: layers::RouteTemplates,
}

impl Routes {
    fn new() -> Self {
        Self {
            router: Router::new(),
            templates: layers::RouteTemplates::default(),
        }
    }

    fn route(mut self, template: &'static str, method: MethodRouter<AppState>) -> Self {
        self.templates.insert(template);
        self.router = self.router.route(template, method);
        self
    }
}

/// Where the Swagger UI is served, and the templates its router adds there (utoipa-swagger-ui:
/// the path, the path with a slash, and everything below it).
const DOCS: &str = "/docs";
const DOCS_TEMPLATES: [&str; 3] = ["/docs", "/docs/", "/docs/{*rest}"];

/// The router; with `access_log`, one `access` line per request, and every log line of a
/// request in a span holding its id.
fn router(state: AppState, slots: Slots, request_timeout: Duration, access_log: bool) -> App {
    // The timeout (`timeout_answer`) covers the body and the computation; the in-flight slot
    // is taken only once the body is in (`Slots`), so a client still uploading never holds
    // one. /predict and the V2 inference routes draw on the same slots.
    let routes = Routes::new()
        .route("/info", get(routes::info))
        .route("/health", get(routes::health))
        .route("/ready", get(routes::ready))
        .route("/metrics", get(routes::metrics))
        .route("/models", get(routes::models))
        .route("/models/{name}", get(routes::model_info))
        .route("/models/{name}/versions/{version}", get(routes::model_info))
        .route("/openapi.json", get(openapi::serve))
        .route("/predict", post(routes::predict))
        .route("/predict/batch", post(routes::predict_batch))
        .route("/models/{name}/predict", post(routes::model_predict))
        .route(
            "/models/{name}/predict/batch",
            post(routes::model_predict_batch),
        )
        .route(
            "/models/{name}/versions/{version}/predict",
            post(routes::model_predict),
        )
        .route(
            "/models/{name}/versions/{version}/predict/batch",
            post(routes::model_predict_batch),
        );
    let Routes {
        router,
        mut templates,
    } = v2::routes(routes);
    for template in DOCS_TEMPLATES {
        templates.insert(template);
    }
    let router = router
        .merge(SwaggerUi::new(DOCS).config(utoipa_swagger_ui::Config::from("/openapi.json")))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(state.with_slots(slots));
    let settings = layers::MetricsSettings {
        access_log,
        timeout: request_timeout,
        timed: timeout_answer,
    };
    layers::Metrics::new(router, settings, templates)
}

/// The answer to a request over `REQUEST_TIMEOUT`, by route template: the prediction routes
/// (`/predict`, `/predict/batch` and their per-model forms; V2 inference in V2's error shape)
/// are timed, the rest (health, metrics, documents, repository control) are not.
fn timeout_answer(route: &str) -> Option<layers::TimeoutAnswer> {
    if route.starts_with("/v2/") {
        route
            .ends_with("/infer")
            .then_some(|| v2::V2Error::from(ApiError::Timeout).into_response())
    } else if route.ends_with("/predict") || route.ends_with("/predict/batch") {
        Some(|| ApiError::Timeout.into_response())
    } else {
        None
    }
}

/// The signals the server answers, installed before the port is bound: a signal in the first
/// milliseconds is handled, never the default action (which would kill the process).
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    pub hangup: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing a SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing a SIGINT handler")?,
            hangup: signal(SignalKind::hangup()).context("installing a SIGHUP handler")?,
        })
    }
}

/// Resolves on the next SIGTERM or SIGINT.
async fn stop_signal(
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> &'static str {
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// The shutdown sequence: on SIGTERM or SIGINT readiness turns 503 at once; the server keeps
/// serving for `delay` (so load balancers see the 503 and stop sending), then `stop` is
/// cancelled (the listener closes and requests in flight drain). A second signal exits at once.
async fn shutdown_sequence(
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
    state: AppState,
    delay: Duration,
    stop: CancellationToken,
) {
    let first = stop_signal(&mut term, &mut int).await;
    state.begin_shutdown();
    tracing::info!(
        signal = first,
        delay_secs = delay.as_secs_f64(),
        "shutting down: /ready is 503; draining after the delay"
    );
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        second = stop_signal(&mut term, &mut int) => exit_now(second),
    }
    stop.cancel();
    let second = stop_signal(&mut term, &mut int).await;
    exit_now(second);
}

fn exit_now(signal: &str) -> ! {
    tracing::warn!(signal, "second signal: exiting at once without draining");
    std::process::exit(1)
}

/// `ml-serving serve`.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    // The Prometheus recorder first, so that every metric from here on counts (a handle taken
    // before it is a no-op for ever). Cheap: its clock is never calibrated (vendor/quanta).
    crate::telemetry::metrics_handle();
    let settings = args.check()?;
    crate::telemetry::init_logging(&args.log_filter, args.log_json)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let signals = Signals::install()?;
        let state = args.state(&settings).inspect_err(|_| {
            crate::telemetry::metrics_handle();
            metrics::counter!("model_loads_total", "trigger" => "startup", "outcome" => "failure")
                .increment(1);
        })?;
        metrics::counter!("model_loads_total", "trigger" => "startup", "outcome" => "success")
            .increment(1);
        if settings.api_key.is_none() {
            tracing::info!("no API_KEY: the prediction routes are open to every client");
        }
        let addr = SocketAddr::new(args.host, args.port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        for (name, entry) in &state.registry().snapshot().models {
            for v in &entry.versions {
                let model = &v.served.model;
                tracing::info!(
                    model = %name,
                    kind = model.kind(),
                    version = %v.served.version,
                    path = %model.path().display(),
                    sha256 = %model.sha256(),
                    "serving"
                );
            }
        }
        tracing::info!(address = %local, default_model = ?state.registry().default_name(), "listening");
        let stop = CancellationToken::new();
        // /predict, V2 REST and gRPC draw on the same prediction slots.
        let slots = Slots::new(settings.max_in_flight);
        let app = router(
            state.clone(),
            slots.clone(),
            settings.request_timeout,
            args.access_log,
        );
        let Signals { term, int, hangup } = signals;
        tokio::spawn(reload::watch(
            state.clone(),
            settings.reload_interval,
            hangup,
            stop.clone(),
        ));
        tokio::spawn({
            let stop = stop.clone();
            async move {
                // The recorder keeps each latency sample (16 bytes) until an upkeep folds it
                // into its histogram: once a second, that is at most a second of requests
                // (about 2 MB at 130,000 requests a second), where every 5 s held 10 MB.
                let mut upkeep = tokio::time::interval(Duration::from_secs(1));
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
                        slots,
                        request_timeout: settings.request_timeout,
                        connections: settings.connections.clone(),
                    },
                    stop.clone(),
                )
                .await?,
            ),
        };
        tokio::spawn(shutdown_sequence(
            term,
            int,
            state.clone(),
            settings.shutdown_delay,
            stop.clone(),
        ));
        serve(listener, app, stop, settings.connections).await?;
        if let Some(grpc) = grpc {
            grpc.await.context("the gRPC server task")??;
        }
        tracing::info!("stopped");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::{MatchedPath, Request};
    use axum::http::{HeaderValue, Method};
    use axum::middleware::Next;
    use tower::ServiceExt;

    use super::*;
    use crate::artifact::DEFAULT_MAX_MODEL_BYTES;

    /// The template axum matched, as a test-only layer on every route sees it.
    async fn matched(req: Request, next: Next) -> axum::response::Response {
        let template = req
            .extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned());
        let mut response = next.run(req).await;
        if let Some(template) = template {
            let value = HeaderValue::from_str(&template).unwrap();
            response.headers_mut().insert("x-matched", value);
        }
        response
    }

    /// For every route template (each filled in as a client would), on paths near them, and
    /// on paths of no route: the metrics layer's table finds the template axum's router
    /// matches, and nothing where axum matches nothing. A route added to the router but not
    /// to the table, or matched otherwise, fails here.
    #[tokio::test]
    async fn the_route_table_finds_what_axum_matches() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODEL_PATH);
        let model = crate::model::Model::load(&path, DEFAULT_MAX_MODEL_BYTES).unwrap();
        let state = AppState::new(
            ServedModel::new(model, None),
            path,
            None,
            Limits {
                body_bytes: 1024,
                batch_rows: 8,
                model_bytes: DEFAULT_MAX_MODEL_BYTES,
            },
            None,
        );
        let app = app(state, 4, Duration::from_secs(5));
        let table = app.route_templates();
        let seen = app
            .inner()
            .clone()
            .layer(axum::middleware::from_fn(matched));
        let mut paths: Vec<String> = vec![
            "/".into(),
            "/predict/".into(),
            "/predictx".into(),
            "/models/".into(),
            "/models/a/b".into(),
            "/models/a/versions/".into(),
            "/v2/".into(),
            "/v2x".into(),
            "/v2/models/a/infer/x".into(),
            "/docsx".into(),
            "/docs/a/b/c".into(),
            "/nowhere".into(),
            "/metrics/x".into(),
            "/%70redict".into(),
            "//predict".into(),
        ];
        for template in table.templates() {
            let filled = template
                .replace("{*rest}", "x/y")
                .replace("{name}", "cancer");
            let filled = filled.replace("{version}", "1");
            paths.push(format!("{filled}/"));
            paths.push(format!("{filled}/extra"));
            paths.push(filled);
        }
        assert!(paths.len() > 3 * 30, "{} paths", paths.len());
        for path in &paths {
            for method in [Method::GET, Method::POST, Method::DELETE] {
                let req = Request::builder()
                    .method(method.clone())
                    .uri(path.as_str())
                    .body(Body::empty())
                    .unwrap();
                let response = seen.clone().oneshot(req).await.unwrap();
                let axum = response
                    .headers()
                    .get("x-matched")
                    .map(|v| v.to_str().unwrap());
                let ours = table.find(path).map(|(template, _)| template);
                assert_eq!(ours, axum, "{method} {path}");
            }
        }
    }
}
