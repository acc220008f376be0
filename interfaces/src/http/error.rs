//! The REST API's one error envelope: `{"error": {"code": "<stable_code>", "message": "…"}}`.
//!
//! Codes are stable strings a client can branch on; messages are for people and never carry
//! SQL, stack traces or connection strings (storage failures are logged in full and answered
//! with a generic message).

use axum::Json;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use waymark_domain::DomainError;

/// An error answer of the REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code.
    pub code: &'static str,
    /// The human-readable message.
    pub message: String,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// The error inside the envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `invalid_input`, `not_found`, `conflict`.
    pub code: String,
    /// What went wrong, in words.
    pub message: String,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `invalid_input`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 503 `unavailable`: a subsystem this deployment does not have.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match &e {
            DomainError::NotFound { .. } => Self::not_found(e.to_string()),
            DomainError::Conflict { .. } => Self::conflict(e.to_string()),
            DomainError::InvalidInput { .. } => Self::bad_request(e.to_string()),
            DomainError::MissingUser => Self::new(
                StatusCode::UNAUTHORIZED,
                "missing_user",
                "this server requires a user: send the X-Waymark-User header",
            ),
            DomainError::Storage(f) => {
                tracing::error!(operation = %f.operation, error = %f.message, "storage failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "storage_failure",
                    format!("the storage backend failed during {}", f.operation),
                )
            }
        }
    }
}

/// Codes of 503 answers that pass once load drops; they say `Retry-After`.
const TRANSIENT_CODES: [&str; 3] = ["overloaded", "buffer_budget_exhausted", "buffer_full"];

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_later = TRANSIENT_CODES.contains(&self.code);
        let body = ErrorEnvelope {
            error: ErrorBody {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if retry_later {
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// The result type of REST handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_errors_map_to_statuses_and_hide_storage_details() {
        let e: ApiError = DomainError::invalid("limit", "must be at least 1").into();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "invalid_input")
        );
        assert_eq!(e.message, "invalid limit: must be at least 1");
        let e: ApiError = DomainError::not_found("thread", "t").into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let e: ApiError = DomainError::conflict("feedback", "exists").into();
        assert_eq!(e.status, StatusCode::CONFLICT);
        let e: ApiError =
            DomainError::storage("threads.get", "SELECT * FROM x failed: password=hunter2").into();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.message.contains("SELECT") && !e.message.contains("hunter2"));
    }
}
