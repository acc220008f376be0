//! What the REST API and the remote checkpointer share: application state, the router, error
//! envelopes, extractors, authentication, user scoping, metrics, and serving with graceful
//! shutdown.

pub mod error;
pub mod extract;
pub mod metrics;
pub mod timed;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::ToSchema;
use waymark_application::ChatStreamConfig;
use waymark_domain::{UserId, UserScope};

use crate::backend::Backend;
use crate::services::Services;
use error::ApiError;
use metrics::Metrics;

/// The header that names the user every read and write is scoped to.
pub const USER_HEADER: &str = "x-waymark-user";

/// Server settings that handlers consult.
///
/// How a request maps to a user (REST and `/checkpointer` alike):
///
/// | credential presented | user | `X-Waymark-User` |
/// |---|---|---|
/// | a per-user token (`user_tokens`) | the token's user | optional; naming anyone else is 403 |
/// | the shared service token (`auth_token`), or none when no token is configured | the header's user | required, unless `admin_unscoped` |
///
/// A request with no user fails with 401 (spec §0.2); with `admin_unscoped` it runs
/// unscoped instead (administrative mode: every thread, owner-less and row-less ones
/// included). A per-user token never runs unscoped.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The shared service token: when set, requests (except `/health`, `/metrics`,
    /// `/openapi.json`, `/docs` and `/checkpointer/health`) need `Authorization: Bearer
    /// <token>` with this or a per-user token, and [`USER_HEADER`] names the user (for a
    /// trusted gateway in front of the server).
    pub auth_token: Option<String>,
    /// Per-user tokens: the token itself binds the user. When any is set, a bearer token is
    /// required as with `auth_token`.
    pub user_tokens: Vec<(UserId, String)>,
    /// Requests that name no user (and use no per-user token) run unscoped instead of
    /// failing: an explicit administrative mode, off by default.
    pub admin_unscoped: bool,
    /// The largest REST request body in bytes.
    pub max_body_bytes: usize,
    /// The largest checkpointer request body in bytes (checkpoints carry base64 payloads).
    pub max_checkpoint_body_bytes: usize,
    /// Chat-stream persistence: the on/off switch and retention days (spec §5); the other
    /// settings keep the application's defaults.
    pub chat_streams: ChatStreamConfig,
}

impl ServerConfig {
    /// Settings for a single-tenant administrative deployment: no token, and requests
    /// without a user run unscoped.
    pub fn admin() -> Self {
        Self {
            admin_unscoped: true,
            ..Self::default()
        }
    }

    /// Whether any bearer token is configured.
    fn needs_token(&self) -> bool {
        self.auth_token.is_some() || !self.user_tokens.is_empty()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            auth_token: None,
            user_tokens: Vec::new(),
            admin_unscoped: false,
            max_body_bytes: 4 * 1024 * 1024,
            chat_streams: ChatStreamConfig::default(),
            max_checkpoint_body_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Everything a handler may need. Cloning is cheap.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

/// The shared part of [`AppState`].
pub struct AppInner {
    /// The opened stores.
    pub backend: Backend,
    /// The application services built over the stores.
    pub services: Services,
    /// Settings.
    pub config: ServerConfig,
    /// The metrics registry (shared with the timed stores).
    pub metrics: Arc<Metrics>,
    /// When the server started.
    pub started: Instant,
}

impl std::ops::Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppState {
    /// State over an opened backend.
    pub fn new(backend: Backend, config: ServerConfig) -> Self {
        let metrics = Arc::new(Metrics::default());
        let services = Services::over_with(
            timed::timed(&backend.stores, &metrics),
            config.chat_streams.clone(),
        );
        Self(Arc::new(AppInner {
            backend,
            services,
            config,
            metrics,
            started: Instant::now(),
        }))
    }
}

/// Who presented which credential, as the token middleware established it.
#[derive(Debug, Clone)]
enum Credential {
    /// A per-user token: the user is bound.
    User(UserId),
    /// The shared token, or no token configured: the header names the user.
    Service,
}

/// Why a request has no usable caller.
#[derive(Debug, Clone)]
pub struct CallerRejection {
    /// 400 (malformed header), 401 (no user) or 403 (header names another user).
    pub status: StatusCode,
    /// A stable code.
    pub code: &'static str,
    /// Words.
    pub message: String,
}

/// The caller of a request: whose data it may see.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The scope every store call of the request uses.
    pub scope: UserScope,
}

impl Caller {
    /// The user, when the request named one.
    pub fn user(&self) -> Option<&UserId> {
        self.scope.owner()
    }

    /// Resolves the caller of a request from its credential and [`USER_HEADER`] (the table
    /// on [`ServerConfig`]).
    pub fn resolve(parts: &Parts, config: &ServerConfig) -> Result<Self, CallerRejection> {
        let named = match parts.headers.get(USER_HEADER) {
            Some(v) => {
                let text = v.to_str().map_err(|_| CallerRejection {
                    status: StatusCode::BAD_REQUEST,
                    code: "invalid_input",
                    message: "the X-Waymark-User header is not visible ASCII/UTF-8".into(),
                })?;
                Some(UserId::parse(text.trim()).map_err(|e| CallerRejection {
                    status: StatusCode::BAD_REQUEST,
                    code: "invalid_input",
                    message: e.to_string(),
                })?)
            }
            None => None,
        };
        let credential = parts
            .extensions
            .get::<Credential>()
            .cloned()
            .unwrap_or(Credential::Service);
        let user = match (credential, named) {
            (Credential::User(bound), Some(named)) if bound != named => {
                return Err(CallerRejection {
                    status: StatusCode::FORBIDDEN,
                    code: "forbidden",
                    message: "the X-Waymark-User header names another user than the token's".into(),
                });
            }
            (Credential::User(bound), _) => Some(bound),
            (Credential::Service, named) => named,
        };
        match user {
            Some(u) => Ok(Self {
                scope: UserScope::User(u),
            }),
            None if config.admin_unscoped => Ok(Self {
                scope: UserScope::Unscoped,
            }),
            None => Err(CallerRejection {
                status: StatusCode::UNAUTHORIZED,
                code: "missing_user",
                message: "this server requires a user: send the X-Waymark-User header or a \
                          per-user token"
                    .into(),
            }),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Self::resolve(parts, &state.config).map_err(|r| ApiError::new(r.status, r.code, r.message))
    }
}

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

async fn require_token(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
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
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(crate::openapi::openapi_json))
        .route("/docs", get(|| async { Html(crate::openapi::DOCS_HTML) }))
        .nest("/api/v1", api)
        .nest("/checkpointer", checkpointer)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(envelope_oversized))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
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

/// Serves on a bound listener until `shutdown` resolves (tests pass their own signal).
pub async fn serve_on(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let housekeeping = state.services.start_housekeeping();
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
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
