//! A real `ml-serving serve` process and raw HTTP/1.1 over TCP, for tests that need the real
//! binary, its signals and its sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_ml-serving");

/// A running `ml-serving serve` on a port of its own choosing (PORT=0), its logs collected.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(model: &Path, extra_env: &[(&str, &str)]) -> Self {
        Self::start_with(("MODEL_PATH", model), extra_env)
    }

    /// A server of the model repository at `root` (`MODEL_REPOSITORY`).
    pub fn start_repository(root: &Path, extra_env: &[(&str, &str)]) -> Self {
        Self::start_with(("MODEL_REPOSITORY", root), extra_env)
    }

    fn start_with(source: (&str, &Path), extra_env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(BIN)
            .arg("serve")
            .env(source.0, source.1)
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("GRPC_PORT", "0")
            .env("LOG_JSON", "true")
            .env("RUST_LOG", "info")
            .envs(extra_env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && let Some(addr) = v["fields"]["address"].as_str()
                {
                    let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                panic!(
                    "the server never said where it listens: {:?}",
                    logs.lock().unwrap()
                )
            });
        Self { child, addr, logs }
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        http(self.addr, "GET", path, None)
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn wait(&mut self, limit: Duration) -> Option<(ExitStatus, Duration)> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some((status, started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// The address logged with `message` (such as `"gRPC listening"`), waiting up to 20 s for it.
    pub fn logged_address(&self, message: &str) -> SocketAddr {
        let mut found = None;
        eventually(Duration::from_secs(20), || {
            found = self.logs.lock().unwrap().iter().find_map(|line| {
                let v: Value = serde_json::from_str(line).ok()?;
                let fields = &v["fields"];
                (fields["message"] == message).then_some(fields["address"].as_str()?.parse().ok()?)
            });
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no {message:?} in the logs: {}", self.logs()))
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection; the status and the JSON body.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    read_response(&mut stream)
}

pub fn read_response(stream: &mut TcpStream) -> (u16, Value) {
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::String(body.to_string())),
    )
}

/// Polls `check` every 20 ms until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Runs the real `train` on the bundled data with `args`, writing `out` (its folder is made).
pub fn train(out: &Path, args: &[&str]) {
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let status = Command::new(BIN)
        .arg("train")
        .args(args)
        .arg("--data")
        .arg(super::repo("data/breast_cancer.csv"))
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "train {args:?} failed");
}

/// Runs `serve` with `env` (loopback, ports 0), which must refuse to start; its stderr.
pub fn serve_refuses(env: &[(&str, &std::ffi::OsStr)]) -> String {
    let out = Command::new(BIN)
        .arg("serve")
        .env("PORT", "0")
        .env("GRPC_PORT", "0")
        .env("HOST", "127.0.0.1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(!out.status.success(), "serve started with {env:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
