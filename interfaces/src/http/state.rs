//! The state every handler shares: settings ([`ServerConfig`]) and the opened stores and
//! services ([`AppState`]). Handlers of both surfaces import it from here, never from the
//! router that mounts them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use waymark_application::ChatStreamConfig;
use waymark_domain::UserId;

use super::body_guard::BodyGuard;
use super::connections::ConnectionLimits;
use super::metrics::Metrics;
use super::timed;
use crate::backend::Backend;
use crate::services::Services;

/// The longest timeout accepted (longer ones are surely a unit mistake).
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// The most connections accepted as a limit.
const MAX_CONNECTIONS: usize = 1_000_000;

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
    /// <token>` with this or a per-user token, and [`USER_HEADER`](super::caller::USER_HEADER) names the user (for a
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
    /// Bytes of request bodies that all requests in flight may hold together; a body the
    /// rest does not cover is answered 503 with `Retry-After`. At least the larger body
    /// limit.
    pub max_inflight_body_bytes: usize,
    /// How long a client has to send a complete request head, from connecting or from the
    /// first byte of a request.
    pub header_read_timeout: Duration,
    /// How long a request body may take to arrive completely (408 after that).
    pub body_read_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
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

    /// Refuses settings the server cannot run with, naming the setting (as its `serve`
    /// flag) and why.
    pub fn validate(&self) -> Result<(), String> {
        for (flag, value) in [
            ("--header-read-timeout", self.header_read_timeout),
            ("--body-read-timeout", self.body_read_timeout),
            ("--idle-timeout", self.idle_timeout),
        ] {
            if value.is_zero() || value > MAX_TIMEOUT {
                return Err(format!(
                    "{flag} is {}; it must be more than 0 and at most 24h",
                    humantime::format_duration(value)
                ));
            }
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            return Err(format!(
                "--max-connections is {}; it must be 1 to {MAX_CONNECTIONS}",
                self.max_connections
            ));
        }
        if self.max_body_bytes == 0 || self.max_checkpoint_body_bytes == 0 {
            return Err(
                "--max-body-bytes and --max-checkpoint-body-bytes must be at least 1".into(),
            );
        }
        let largest = self.max_body_bytes.max(self.max_checkpoint_body_bytes);
        if self.max_inflight_body_bytes < largest {
            return Err(format!(
                "--max-inflight-body-bytes is {}; it must hold at least the largest accepted \
                 body ({largest} bytes), or that body could never be served",
                self.max_inflight_body_bytes
            ));
        }
        if self.chat_streams.max_total_bytes < self.chat_streams.max_bytes {
            return Err(format!(
                "--chat-stream-buffer-budget-bytes is {}; it must hold at least one thread's \
                 buffer ({} bytes)",
                self.chat_streams.max_total_bytes, self.chat_streams.max_bytes
            ));
        }
        self.chat_streams
            .validate()
            .map_err(|e| format!("invalid chat-stream settings: {e}"))
    }

    /// The accept loop's bounds.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
        }
    }

    /// Whether any bearer token is configured.
    pub(crate) fn needs_token(&self) -> bool {
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
            max_inflight_body_bytes: 512 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
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
    /// The body-read deadline and the budget of request bodies in flight.
    pub body_guard: Arc<BodyGuard>,
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
        let body_guard = Arc::new(BodyGuard::new(
            config.body_read_timeout,
            config.max_inflight_body_bytes,
            config.max_body_bytes.max(config.max_checkpoint_body_bytes),
        ));
        Self(Arc::new(AppInner {
            backend,
            services,
            config,
            metrics,
            started: Instant::now(),
            body_guard,
        }))
    }
}
