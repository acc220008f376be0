//! The state every handler shares: settings ([`ServerConfig`]) and the opened stores and
//! services ([`AppState`]). Handlers of both surfaces import it from here, never from the
//! router that mounts them.

use std::sync::Arc;
use std::time::Instant;

use waymark_application::ChatStreamConfig;
use waymark_domain::UserId;

use super::metrics::Metrics;
use super::timed;
use crate::backend::Backend;
use crate::services::Services;

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
