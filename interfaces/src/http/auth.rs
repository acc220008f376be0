//! Bearer-token authentication: the shared service token and per-user tokens.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::caller::Credential;
use super::error::ApiError;
use super::state::AppState;

/// Paths that never need the bearer token (probes and documentation).
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/health" | "/metrics" | "/openapi.json" | "/docs" | "/checkpointer/health"
    )
}

/// Compares two secrets in time independent of where they first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks the bearer token and records which credential it is for [`super::caller::Caller`].
pub(crate) async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    if !state.config.needs_token() || is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let credential = presented.and_then(|p| {
        // Compare against every token so the time taken does not say which one matched.
        let mut found = None;
        if state
            .config
            .auth_token
            .as_deref()
            .is_some_and(|t| constant_time_eq(p.as_bytes(), t.as_bytes()))
        {
            found = Some(Credential::Service);
        }
        for (user, token) in &state.config.user_tokens {
            if constant_time_eq(p.as_bytes(), token.as_bytes()) && found.is_none() {
                found = Some(Credential::User(user.clone()));
            }
        }
        found
    });
    if let Some(c) = credential {
        req.extensions_mut().insert(c);
        return next.run(req).await;
    }
    let message = "missing or wrong bearer token (Authorization: Bearer <token>)";
    let mut resp = if req.uri().path().starts_with("/checkpointer") {
        crate::checkpointer::ProtoError::new(StatusCode::UNAUTHORIZED, "PermissionError", message)
            .into_response()
    } else {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response()
    };
    resp.headers_mut()
        .insert("www-authenticate", HeaderValue::from_static("Bearer"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_needs_equal_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(is_public("/health") && !is_public("/api/v1/threads"));
    }
}
