//! The benchmark's reference (scripts/bench): the least an axum server can do for `/predict`.
//! It parses the same six-field JSON body as the bundled model's `/predict` (every field
//! required, none other allowed, each a number) and answers the constant
//! `{"label":"M","prediction":1}`; anything else is axum's own rejection. Same tokio runtime
//! (multi-threaded, one worker per core) and the same hyper HTTP/1 settings as `serve`
//! (TCP_NODELAY, half-close, the same read buffer), under a plain accept loop: no metrics, no
//! timeouts, no limits, no model.
//!
//!   HOST=127.0.0.1 PORT=0 cargo run --release --bin reference-server
//!
//! logs `{"address":"IP:PORT"}` on standard error once it listens (the form `serve` logs with
//! `LOG_JSON`), and serves until killed.

use std::net::SocketAddr;

use axum::routing::post;
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tower::Service;

/// The bundled model's features (README's `/predict` example).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Row {
    concavity_mean: f64,
    concave_points_mean: f64,
    perimeter_se: f64,
    area_se: f64,
    texture_worst: f64,
    area_worst: f64,
}

async fn predict(
    Json(_row): Json<Row>,
) -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        r#"{"label":"M","prediction":1}"#,
    )
}

fn main() -> anyhow::Result<()> {
    let host: std::net::IpAddr = std::env::var("HOST")
        .unwrap_or_else(|_| "127.0.0.1".into())
        .parse()?;
    let port: u16 = std::env::var("PORT")
        .unwrap_or_else(|_| "0".into())
        .parse()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(SocketAddr::new(host, port)).await?;
            eprintln!(r#"{{"address":"{}"}}"#, listener.local_addr()?);
            let app = Router::new().route("/predict", post(predict));
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        app.clone().call(req.map(axum::body::Body::new))
                    },
                );
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .half_close(true)
                        .max_buf_size(16 * 1024)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        })
}
