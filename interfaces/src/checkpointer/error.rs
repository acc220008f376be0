//! The protocol's error answers: the envelope `{"error": "…", "kind": "<PythonException>"}`
//! (spec §5) and the conversions from domain and application errors. Kept apart from the
//! handlers and the body codecs, which all produce them, so that neither depends on the other.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use waymark_application::ApplicationError;
use waymark_domain::DomainError;

/// An error answer of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The Python builtin exception the client raises.
    pub kind: &'static str,
    /// The message.
    pub message: String,
}

impl ProtoError {
    /// An error of `kind` with `status`.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }
}

impl IntoResponse for ProtoError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.message, "kind": self.kind})),
        )
            .into_response()
    }
}

impl From<DomainError> for ProtoError {
    fn from(e: DomainError) -> Self {
        match &e {
            DomainError::InvalidInput { .. } | DomainError::MissingUser => {
                value_error(e.to_string())
            }
            DomainError::NotFound { .. } => {
                ProtoError::new(StatusCode::NOT_FOUND, "LookupError", e.to_string())
            }
            DomainError::Conflict { .. } => value_error(e.to_string()),
            DomainError::Storage(f) => {
                tracing::error!(operation = %f.operation, error = %f.message, "checkpointer storage failure");
                ProtoError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "RuntimeError",
                    format!("storage failure during {}", f.operation),
                )
            }
        }
    }
}

impl From<ApplicationError> for ProtoError {
    fn from(e: ApplicationError) -> Self {
        match e {
            ApplicationError::Domain(d) => d.into(),
            ApplicationError::AccessDenied { thread_id } => ProtoError::new(
                StatusCode::NOT_FOUND,
                "LookupError",
                format!("thread not found: {thread_id}"),
            ),
            other => {
                tracing::error!(error = %other, "checkpointer service failure");
                ProtoError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "RuntimeError",
                    "service failure",
                )
            }
        }
    }
}

/// 400 `ValueError`.
pub fn value_error(message: impl Into<String>) -> ProtoError {
    ProtoError::new(StatusCode::BAD_REQUEST, "ValueError", message)
}

/// 400 `TypeError`.
pub fn type_error(message: impl Into<String>) -> ProtoError {
    ProtoError::new(StatusCode::BAD_REQUEST, "TypeError", message)
}

/// Domain validation failures become `ValueError`.
pub fn invalid(e: DomainError) -> ProtoError {
    value_error(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_hide_their_details() {
        let e: ProtoError = DomainError::storage("checkpoints.put", "INSERT INTO secret").into();
        assert_eq!(
            (e.status, e.kind),
            (StatusCode::INTERNAL_SERVER_ERROR, "RuntimeError")
        );
        assert!(!e.message.contains("INSERT"));
        let e: ProtoError = DomainError::invalid("limit", "x").into();
        assert_eq!(e.kind, "ValueError");
    }
}
