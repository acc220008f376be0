//! The HTTP server: the router that mounts the REST API, the remote checkpointer and the
//! service routes under the shared middleware, and serving with graceful shutdown.
//!
//! What both surfaces share lives in the submodules, which never import this module:
//! [`state`] (settings and application state), [`caller`] (who a request runs as), [`auth`]
//! (bearer tokens), [`error`] envelopes, [`extract`]ors, [`metrics`], [`timed`] stores and
//! the [`probes`] (`/health`, `/metrics`). Resource bounds: [`connections`] (the accept loop
//! with its connection limit, header-read and idle timeouts) and [`body_guard`] (the
//! body-read timeout and the budget of request bodies in flight).

pub mod auth;
pub mod body_guard;
pub mod caller;
pub mod connections;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod probes;
pub mod state;
pub mod timed;

pub use caller::{Caller, CallerRejection, USER_HEADER};
pub use state::{AppInner, AppState, ServerConfig};

use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::{CONNECTION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use error::ApiError;

async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let resp = next.run(req).await;
    state
        .metrics
        .record_request(&method, &route, resp.status().as_u16(), start.elapsed());
    resp
}

/// Gives the plain-text 413 of the body-limit layer the envelope of the surface it hit.
async fn envelope_oversized(req: Request, next: Next) -> Response {
    let checkpointer = req.uri().path().starts_with("/checkpointer");
    let resp = next.run(req).await;
    let is_json = resp
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if resp.status() != StatusCode::PAYLOAD_TOO_LARGE || is_json {
        return resp;
    }
    let message = "the request body is larger than this server accepts";
    if checkpointer {
        crate::checkpointer::ProtoError::new(StatusCode::PAYLOAD_TOO_LARGE, "ValueError", message)
            .into_response()
    } else {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message).into_response()
    }
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// Says `Connection: close` on 401 and 403 answers. A refused request's body is never read,
/// so the server cannot keep the connection for the next request; saying so lets a
/// keep-alive client open a new one instead of failing its next call on a closed socket.
async fn close_on_auth_failure(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    if matches!(
        resp.status(),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    ) {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let rest_limit = state.config.max_body_bytes;
    let cp_limit = state.config.max_checkpoint_body_bytes;
    let api = crate::api::router()
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(rest_limit));
    let checkpointer = crate::checkpointer::router()
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(cp_limit));
    Router::new()
        .route("/health", get(probes::health))
        .route("/metrics", get(probes::metrics_text))
        .route("/openapi.json", get(crate::openapi::openapi_json))
        .route("/docs", get(|| async { Html(crate::openapi::DOCS_HTML) }))
        .nest("/api/v1", api)
        .nest("/checkpointer", checkpointer)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(envelope_oversized))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(middleware::from_fn_with_state(
            state.body_guard.clone(),
            body_guard::guard_bodies,
        ))
        .layer(middleware::from_fn(close_on_auth_failure))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

/// Serves until ctrl-c or SIGTERM, then drains requests and flushes buffered data.
pub async fn serve(state: AppState, addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, backend = %state.backend.url, "waymark listening");
    serve_on(state, listener, shutdown_signal()).await
}

/// Serves on a bound listener until `shutdown` resolves (tests pass their own signal), within
/// the configured connection limits and timeouts; refuses settings that do not validate.
pub async fn serve_on(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    state
        .config
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut limits = state.config.connection_limits();
    limits.max_connections = connections::fit_descriptor_limit(limits.max_connections);
    let app = router(state.clone());
    let housekeeping = state.services.start_housekeeping();
    connections::serve(listener, app, limits, shutdown).await?;
    housekeeping.abort();
    tracing::info!("requests drained; flushing buffers");
    state.services.shutdown().await;
    tracing::info!("waymark stopped");
    Ok(())
}

/// Resolves on ctrl-c or (on Unix) SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received; shutting down"),
        () = term => tracing::info!("SIGTERM received; shutting down"),
    }
}
