//! The body of a V2 inference request as clients send it: JSON with or without a Content-Type
//! (tritonclient sends none), the binary tensor extension's `Inference-Header-Content-Length`,
//! and `Content-Encoding: gzip`/`deflate` inflated within the same body limit; and whether the
//! answer may be gzipped (`Accept-Encoding`); and the API key, checked in V2's own error shape.

use std::io::Read;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::error::{V2Error, bad};
use crate::server::ApiError;
use crate::server::AppState;
use crate::server::extract::{Authorized, BodyError, read_body};

/// The binary tensor extension's header: the length of the JSON part of the body.
pub use crate::wire::V2_HEADER_LENGTH as HEADER_LENGTH;

/// A V2 inference body, inflated, with the length of its JSON header when it carries binary
/// tensor data.
#[derive(Debug)]
pub struct V2Body {
    pub bytes: Bytes,
    pub header_length: Option<usize>,
    /// The client accepts a gzipped answer.
    pub gzip_answer: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

fn text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap_or("(not text)"))
}

/// No Content-Type (read as JSON, as KServe, MLServer and Triton do), JSON, or
/// `application/octet-stream` (binary tensor data).
fn check_content_type(headers: &HeaderMap) -> Result<(), V2Error> {
    let Some(content_type) = text(headers, header::CONTENT_TYPE) else {
        return Ok(());
    };
    let mime = content_type.split(';').next().unwrap_or("").trim();
    let json = mime.eq_ignore_ascii_case("application/json")
        || mime.rsplit_once('+').is_some_and(|(kind, suffix)| {
            kind.starts_with("application/") && suffix.eq_ignore_ascii_case("json")
        });
    if json || mime.eq_ignore_ascii_case("application/octet-stream") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type must be application/json, application/octet-stream or absent, got {content_type:?}"
        ))
        .into())
    }
}

fn encoding(headers: &HeaderMap) -> Result<Encoding, V2Error> {
    match text(headers, header::CONTENT_ENCODING).map(str::trim) {
        None => Ok(Encoding::Identity),
        Some(e) if e.eq_ignore_ascii_case("identity") => Ok(Encoding::Identity),
        Some(e) if e.eq_ignore_ascii_case("gzip") || e.eq_ignore_ascii_case("x-gzip") => {
            Ok(Encoding::Gzip)
        }
        Some(e) if e.eq_ignore_ascii_case("deflate") => Ok(Encoding::Deflate),
        Some(other) => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Encoding must be gzip, deflate or identity, got {other:?}"
        ))
        .into()),
    }
}

/// `Inference-Header-Content-Length`: a whole number of bytes, at least 1.
pub fn header_length(value: Option<&str>) -> Result<Option<usize>, V2Error> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.trim().parse::<u64>() {
        Ok(0) => Err(bad(
            "Inference-Header-Content-Length is 0, but the JSON header cannot be empty",
        )),
        // A length that does not fit a usize is past the end of any body.
        Ok(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
        Err(_) => Err(bad(format!(
            "Inference-Header-Content-Length must be a whole number of bytes, got {value:?}"
        ))),
    }
}

/// Whether `Accept-Encoding` offers gzip (with a non-zero quality).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let Some(accept) = text(headers, header::ACCEPT_ENCODING) else {
        return false;
    };
    accept.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let quality = parts
            .find_map(|p| p.strip_prefix("q="))
            .map_or(1.0, |q| q.parse::<f32>().unwrap_or(0.0));
        coding.eq_ignore_ascii_case("gzip") && quality > 0.0
    })
}

/// Inflates `reader` into at most `limit` bytes: a body that inflates past the limit is a 413
/// as soon as it crosses it, and nothing larger than the limit (plus one read) is allocated.
pub fn inflate(mut reader: impl Read, limit: usize, name: &str) -> Result<Vec<u8>, V2Error> {
    const CHUNK: usize = 16 * 1024;
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = [0u8; CHUNK];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(bad(format!(
                    "the body is not valid {name} data (Content-Encoding: {name}): {e}"
                )));
            }
        };
        if out.len() + n > limit {
            return Err(ApiError::BodyTooLarge { limit }.into());
        }
        if out.capacity() < out.len() + n {
            // Double as a Vec would, but never past the limit.
            let target = (out.capacity() * 2).max(out.len() + n).min(limit);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

impl FromRequest<AppState> for V2Body {
    type Rejection = V2Error;

    /// The headers are checked before the returned future exists; it holds only the body.
    fn from_request(
        req: Request,
        state: &AppState,
    ) -> impl Future<Output = Result<Self, V2Error>> + Send {
        let limit = state.limits().body_bytes;
        let checked = check_headers(req.headers());
        let body = req.into_body();
        async move {
            let (encoding, header_length, gzip_answer) = checked?;
            let raw = read_body(body, limit).await.map_err(|e| match e {
                BodyError::TooLarge => V2Error::from(ApiError::BodyTooLarge { limit }),
                BodyError::Read(e) => bad(format!("could not read the body: {e}")),
            })?;
            let bytes = match encoding {
                Encoding::Identity => raw,
                Encoding::Gzip => {
                    inflate(flate2::read::GzDecoder::new(&raw[..]), limit, "gzip")?.into()
                }
                Encoding::Deflate => {
                    inflate(flate2::read::ZlibDecoder::new(&raw[..]), limit, "deflate")?.into()
                }
            };
            Ok(Self {
                bytes,
                header_length,
                gzip_answer,
            })
        }
    }
}

/// A V2 request's headers: its content type, then its body's encoding, the binary header's
/// length and whether the answer may be gzipped.
fn check_headers(headers: &HeaderMap) -> Result<(Encoding, Option<usize>, bool), V2Error> {
    check_content_type(headers)?;
    let encoding = encoding(headers)?;
    let header_length = header_length(text(headers, HEADER_LENGTH))?;
    Ok((encoding, header_length, accepts_gzip(headers)))
}

/// [`Authorized`] for the V2 routes: a missing or wrong key is V2's `{"error"}` 401, given
/// before the body is read.
pub struct V2Authorized;

impl FromRequestParts<AppState> for V2Authorized {
    type Rejection = V2Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, V2Error> {
        Authorized::from_request_parts(parts, state).await?;
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use std::io::Write;

    #[test]
    fn header_lengths() {
        assert_eq!(header_length(None).unwrap(), None);
        assert_eq!(header_length(Some("12")).unwrap(), Some(12));
        for bad in ["0", "-1", "abc", "", "1.5"] {
            assert!(header_length(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            header_length(Some("99999999999999999999"))
                .unwrap_err()
                .status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn accept_encoding() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, v.parse().unwrap());
            accepts_gzip(&h)
        };
        assert!(with("gzip"));
        assert!(with("deflate, GZIP;q=0.5"));
        assert!(!with("gzip;q=0"));
        assert!(!with("deflate"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_limit() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&vec![0u8; 8 * 1024 * 1024]).unwrap();
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
        let err = inflate(flate2::read::GzDecoder::new(&bomb[..]), 100_000, "gzip").unwrap_err();
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let small = inflate(
            flate2::read::GzDecoder::new(&bomb[..]),
            8 * 1024 * 1024,
            "gzip",
        );
        assert_eq!(small.unwrap().len(), 8 * 1024 * 1024);
        let err = inflate(&b"not gzip"[..], 100, "gzip");
        assert!(err.is_ok(), "a plain reader is read as is");
        let err = inflate(flate2::read::GzDecoder::new(&b"not gzip"[..]), 100, "gzip");
        assert!(err.unwrap_err().message().contains("not valid gzip"));
    }
}
