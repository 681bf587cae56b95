//! Extractors of the prediction routes: `JsonBody`, the raw bytes of a JSON request body, with
//! our JSON errors for a wrong content type (415) and a body over the limit (413) instead of
//! axum's plain-text ones; `Authorized`, the optional API key; and `Slots`, the in-flight
//! limit, taken by a handler only once the body is in.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::state::AppState;

pub struct JsonBody(pub Bytes);

/// Why a body could not be read.
pub enum BodyError {
    /// More than the limit arrived (whatever length was declared).
    TooLarge,
    /// The connection failed or the body was malformed (chunked encoding and the like).
    Read(axum::Error),
}

/// The whole body, refused as soon as more than `limit` bytes have arrived. The one body limit
/// of the prediction routes, read here rather than by a `DefaultBodyLimit` layer (which costs
/// every request an extension and a boxed layer). It takes the body alone, not the request, so
/// that the future of a handler reading it stays small: one that outgrows the allocator's
/// per-thread cache (1,032 bytes with glibc) costs every request a slow allocation.
pub async fn read_body(body: axum::body::Body, limit: usize) -> Result<Bytes, BodyError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            BodyError::TooLarge
        } else {
            BodyError::Read(e)
        }
    })
}

fn is_json(content_type: &str) -> bool {
    if content_type == "application/json" {
        return true; // what nearly every client sends
    }
    let mime = content_type.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/json")
        || mime.rsplit_once('+').is_some_and(|(kind, suffix)| {
            kind.starts_with("application/") && suffix.eq_ignore_ascii_case("json")
        })
}

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    /// The headers are checked before the returned future exists; it holds only the body.
    fn from_request(
        req: Request,
        state: &AppState,
    ) -> impl Future<Output = Result<Self, ApiError>> + Send {
        let checked = check_json_headers(req.headers(), state.limits().body_bytes);
        let body = req.into_body();
        async move {
            let limit = checked?;
            let bytes = read_body(body, limit).await.map_err(|e| match e {
                BodyError::TooLarge => ApiError::BodyTooLarge { limit },
                BodyError::Read(e) => {
                    ApiError::MalformedJson(format!("could not read the body: {e}"))
                }
            })?;
            Ok(Self(bytes))
        }
    }
}

/// A JSON content type, and no declared length over `limit` (refused before reading and before
/// a `100 Continue`, not after the client has sent it all); `Ok(limit)`.
fn check_json_headers(headers: &axum::http::HeaderMap, limit: usize) -> Result<usize, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    match content_type {
        Some(ct) if is_json(ct) => {}
        Some(ct) => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Type must be application/json, got {ct:?}"
            )));
        }
        None => {
            return Err(ApiError::UnsupportedMediaType(
                "Content-Type must be application/json, and the request has none".to_string(),
            ));
        }
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    Ok(limit)
}

/// When `API_KEY` is set, the request carries `Authorization: Bearer <key>` (compared in
/// constant time; never logged). An extractor rather than a middleware: on the hot path it
/// costs a header lookup, where a `from_fn` layer cost about 0.8 µs a request.
pub struct Authorized;

impl FromRequestParts<AppState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(expected) = state.api_key() else {
            return Ok(Self);
        };
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .unwrap_or("");
        if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            Ok(Self)
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is case-insensitive.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches(' '))
}

/// The prediction slots: at most `MAX_IN_FLIGHT` requests computing at once. A handler takes
/// one after reading its body; none free is a 429 at once, never a queue.
#[derive(Debug, Clone)]
pub struct Slots(std::sync::Arc<tokio::sync::Semaphore>, usize);

impl Slots {
    pub fn new(max_in_flight: usize) -> Self {
        Self(
            std::sync::Arc::new(tokio::sync::Semaphore::new(max_in_flight)),
            max_in_flight,
        )
    }

    /// How many there are (`MAX_IN_FLIGHT`).
    pub fn capacity(&self) -> usize {
        self.1
    }

    /// A slot, held until the returned permit drops.
    pub fn take(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
        self.0.try_acquire().map_err(|_| ApiError::Overloaded)
    }
}

#[cfg(test)]
mod tests {
    use super::{bearer_token, is_json};

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/problem+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json("text/json+xml"));
    }
}
