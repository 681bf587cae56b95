//! REST and gRPC over one state on free loopback ports, served by a runtime of their own on a
//! background thread: for tests that run the client binary against a real server.

use std::time::Duration;

use ml_serving::server::grpc::{GrpcSettings, serve as serve_grpc};
use ml_serving::server::{app, serve};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Setup, conn_settings};

/// REST and gRPC over one state, on their own runtime thread; stopped on drop.
pub struct Servers {
    pub url: String,
    pub grpc: String,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Servers {
    pub fn start(api_key: Option<&str>) -> Self {
        let setup = Setup {
            api_key: api_key.map(str::to_string),
            ..Setup::default()
        };
        let state = setup.state();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let rest = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let grpc = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", rest.local_addr().unwrap());
        let grpc_addr = grpc.local_addr().unwrap().to_string();
        let stop = CancellationToken::new();
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                runtime.block_on(async move {
                    let settings = GrpcSettings {
                        slots: ml_serving::server::Slots::new(64),
                        request_timeout: Duration::from_secs(10),
                        connections: conn_settings(Duration::from_secs(2)),
                    };
                    let g = tokio::spawn(serve_grpc(grpc, state.clone(), settings, stop.clone()));
                    serve(
                        rest,
                        app(state, 64, Duration::from_secs(10)),
                        stop,
                        conn_settings(Duration::from_secs(2)),
                    )
                    .await
                    .unwrap();
                    g.await.unwrap().unwrap();
                });
            }
        });
        Self {
            url,
            grpc: grpc_addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
