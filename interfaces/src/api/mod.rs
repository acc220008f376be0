//! The REST API under `/api/v1`.

use axum::Router;

use crate::http::AppState;

/// The routes, relative to `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
}
