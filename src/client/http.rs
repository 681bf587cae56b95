//! A minimal HTTP/1.1 client over one kept-alive TCP connection (hyper), shared by the
//! command-line client, the health check and the load generator.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Response, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where a server is: `http://host:port`, with any base path.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port`, for connecting and for the Host header.
    pub authority: String,
    /// The base path without a trailing slash (usually empty).
    pub base_path: String,
}

impl Target {
    /// Parses `http://host[:port][/base]`; `host:port` alone is taken as http.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let with_scheme = if url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
        let uri: Uri = with_scheme
            .parse()
            .with_context(|| format!("{url:?} is not a valid URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!("{url:?}: only http:// is supported, not {other}://"),
            None => bail!("{url:?} has no scheme"),
        }
        let host = uri.host().with_context(|| format!("{url:?} has no host"))?;
        let port = uri.port_u16().unwrap_or(80);
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        Ok(Self {
            authority: format!("{host}:{port}"),
            base_path: uri.path().trim_end_matches('/').to_string(),
        })
    }

    pub fn path(&self, path: &str) -> String {
        format!("{}{path}", self.base_path)
    }
}

/// One open connection.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
}

/// A response with its whole body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Connection {
    /// Connects, within `timeout`.
    pub async fn open(target: &Target, timeout: Duration) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(&target.authority))
            .await
            .with_context(|| format!("connecting to {}: timed out", target.authority))?
            .with_context(|| format!("connecting to {}", target.authority))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            authority: target.authority.clone(),
        })
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        bearer: Option<&str>,
    ) -> anyhow::Result<Reply> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.authority);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(key) = bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let request = request.body(Full::new(body.unwrap_or_default()))?;
        self.sender.ready().await.context("connection closed")?;
        let response = self
            .sender
            .send_request(request)
            .await
            .context("sending the request")?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .context("reading the answer")?
            .to_bytes();
        Ok(Reply { status, body })
    }

    /// Waits until the connection can take a request; fails if it has been closed (for
    /// example by the server after an idle timeout), in which case nothing was sent.
    pub async fn ready(&mut self) -> hyper::Result<()> {
        self.sender.ready().await
    }

    /// Sends a request built by the caller and returns the response with its body unread:
    /// the load generator's hot path, which prepares everything it can once. The caller sets
    /// the Host header (see [`Connection::authority`]) and must read or drop the body before
    /// the next request.
    pub async fn send_request(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> hyper::Result<Response<Incoming>> {
        self.sender.send_request(request).await
    }

    /// `host:port`, as sent in the Host header.
    pub fn authority(&self) -> &str {
        &self.authority
    }
}

/// One request on a fresh connection, all within `timeout`.
pub async fn request_once(
    url: &str,
    method: Method,
    path: &str,
    body: Option<Bytes>,
    bearer: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<Reply> {
    let target = Target::parse(url)?;
    let path = target.path(path);
    tokio::time::timeout(timeout, async {
        let mut conn = Connection::open(&target, timeout).await?;
        conn.send(method, &path, body, bearer).await
    })
    .await
    .with_context(|| format!("{url}{path}: no answer within {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn urls() {
        let t = Target::parse("http://127.0.0.1:8000").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.base_path.as_str()),
            ("127.0.0.1:8000", "")
        );
        let t = Target::parse("192.168.49.2:30001/").unwrap();
        assert_eq!(t.authority, "192.168.49.2:30001");
        let t = Target::parse("http://example.com/api/").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path("/predict").as_str()),
            ("example.com:80", "/api/predict")
        );
        assert!(Target::parse("https://example.com").is_err());
        assert!(Target::parse("http://").is_err());
    }
}
