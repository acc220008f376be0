//! The service routes outside both surfaces: `/health` and `/metrics`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::state::AppState;

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `"ok"` or `"unavailable"`.
    pub status: String,
    /// `memory`, `sqlite` or `postgres`.
    pub backend: String,
    /// `native` or `langgraph`.
    pub layout: String,
    /// The server version.
    pub version: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
}

/// Liveness and storage reachability.
#[utoipa::path(get, path = "/health", tag = "service", operation_id = "service_health",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(state): State<AppState>) -> Response {
    let ok = crate::checkpointer::probe_storage(&state).await;
    let body = Health {
        status: if ok { "ok" } else { "unavailable" }.to_owned(),
        backend: state.backend.engine().as_str().to_owned(),
        layout: match state.backend.url.layout {
            crate::backend::Layout::Native => "native",
            crate::backend::Layout::LangGraph => "langgraph",
        }
        .to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_seconds: state.started.elapsed().as_secs(),
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// Prometheus text metrics.
#[utoipa::path(get, path = "/metrics", tag = "service", operation_id = "service_metrics",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
        .into_response()
}
