//! `V2Error`: the V2 routes' one status table, and the `{"error"}` body every V2 answer uses.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::server::ApiError;

/// Every error the V2 routes answer, as `{"error": "..."}`.
#[derive(Debug)]
pub enum V2Error {
    /// Not a valid inference request for this model; the message says which input and element.
    BadRequest(String),
    /// No V2 route has this path.
    UnknownRoute(String),
    /// More rows than `MAX_BATCH_ROWS`: 413, as on `/predict/batch`.
    TooManyRows { rows: usize, max: usize },
    /// An error the rest of the server also answers (415, 413 body limit, 500): its status.
    Server(ApiError),
}

impl V2Error {
    /// The only table of the V2 API's statuses.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::UnknownRoute(_) => StatusCode::NOT_FOUND,
            Self::TooManyRows { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Server(e) => e.status(),
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::BadRequest(m) => m.clone(),
            Self::UnknownRoute(path) => format!("Not Found: {path}"),
            Self::TooManyRows { rows, max } => {
                format!("Too many rows: the inputs hold {rows} rows, a request at most {max}")
            }
            Self::Server(e) => e.message(),
        }
    }
}

impl From<ApiError> for V2Error {
    fn from(err: ApiError) -> Self {
        Self::Server(err)
    }
}

pub(super) fn bad(message: impl Into<String>) -> V2Error {
    V2Error::BadRequest(message.into())
}

/// The protocol's error object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct V2ErrorBody {
    /// What is wrong, naming the input and element when there is one.
    #[schema(example = "input \"area_se\": row 2 is -1, but a feature value must be ≥ 0")]
    pub error: String,
}

pub(super) fn error_response(status: StatusCode, error: String) -> Response {
    (status, Json(V2ErrorBody { error })).into_response()
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(status = status.as_u16(), error = %self.message(), "request failed");
        }
        let mut response = error_response(status, self.message());
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
