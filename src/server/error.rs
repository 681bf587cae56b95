//! `ApiError`: every error the HTTP API answers, and the one table of their status codes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::features::{FieldError, RowsError};
use super::registry::LookupError;
use crate::wire::{ErrorBody, ValidationErrorBody};

#[derive(Debug)]
pub enum ApiError {
    /// Some fields are missing, unknown or not valid numbers.
    Validation(Vec<FieldError>),
    /// The body is not JSON.
    MalformedJson(String),
    UnsupportedMediaType(String),
    BodyTooLarge {
        limit: usize,
    },
    TooManyRows {
        max: usize,
    },
    Unauthorized,
    NotFound(String),
    /// The path names no model or version served, or the model has none ready.
    Model(LookupError),
    /// The V2 repository calls are off, or failed.
    Repository(String),
    MethodNotAllowed,
    Overloaded,
    Timeout,
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MalformedJson(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTooLarge { .. } | Self::TooManyRows { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Model(LookupError::Unavailable { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Model(_) => StatusCode::NOT_FOUND,
            Self::Repository(_) => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The human-readable message (for every error but a validation one).
    pub fn message(&self) -> String {
        match self {
            Self::Validation(errors) => format!("{} invalid field(s)", errors.len()),
            Self::MalformedJson(m) => format!("Malformed JSON: {m}"),
            Self::UnsupportedMediaType(m) => m.clone(),
            Self::BodyTooLarge { limit } => {
                format!("Request body is larger than the limit of {limit} bytes")
            }
            Self::TooManyRows { max } => {
                format!("Too many rows: a batch holds at most {max} rows")
            }
            Self::Unauthorized => {
                "Missing or wrong API key: send Authorization: Bearer <key>".to_string()
            }
            Self::NotFound(path) => format!("Not Found: {path}"),
            Self::Model(e) => e.to_string(),
            Self::Repository(m) => m.clone(),
            Self::MethodNotAllowed => "Method Not Allowed".to_string(),
            Self::Overloaded => "Too many requests in flight; retry shortly".to_string(),
            Self::Timeout => "The request took longer than the server's timeout".to_string(),
            Self::Internal(m) => format!("Internal error: {m}"),
        }
    }
}

impl From<RowsError> for ApiError {
    fn from(err: RowsError) -> Self {
        match err {
            RowsError::Syntax(e) => Self::MalformedJson(e.to_string()),
            RowsError::Invalid(errors) => Self::Validation(errors),
            RowsError::TooManyRows { max } => Self::TooManyRows { max },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(status = status.as_u16(), error = %self.message(), "request failed");
        }
        let mut response = match self {
            Self::Validation(detail) => {
                (status, axum::Json(ValidationErrorBody { detail })).into_response()
            }
            other => (
                status,
                axum::Json(ErrorBody {
                    detail: other.message(),
                }),
            )
                .into_response(),
        };
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
