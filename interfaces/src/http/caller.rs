//! Who a request runs as: the caller resolution of the ownership model (ARCHITECTURE.md,
//! "Ownership"), shared by the REST API and the remote checkpointer.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use waymark_domain::{UserId, UserScope};

use super::error::ApiError;
use super::state::{AppState, ServerConfig};

/// The header that names the user every read and write is scoped to.
pub const USER_HEADER: &str = "x-waymark-user";

/// Who presented which credential, as the token middleware established it.
#[derive(Debug, Clone)]
pub(crate) enum Credential {
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
