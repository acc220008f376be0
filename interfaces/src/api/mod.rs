//! The REST API under `/api/v1`: sessions, threads, branches, snapshots, checkpoints,
//! messages, run events, runs, token usage, feedback, chat streams and key-value items.
//!
//! Handlers parse path ids into domain newtypes (a bad id is a 400), run every call under the
//! caller's [`UserScope`](waymark_domain::UserScope) (another user's thread reads as not
//! found), call the application services, and answer with the DTOs of [`dto`], which fix the
//! wire shape independently of the domain types. Lists never cut silently: offset lists answer
//! `has_more`, sequence feeds fetch `limit + 1` rows and answer the next cursor.

pub mod dto;
pub mod feedback;
pub mod messages;
pub mod runs;
pub mod sessions;
pub mod store;
pub mod threads;
pub mod tokens;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use waymark_application::ApplicationError;
use waymark_domain::{CheckpointId, CheckpointNamespace, DomainError, RunId, SessionId, ThreadId};

use crate::http::error::ApiError;
use crate::http::state::AppState;

impl From<ApplicationError> for ApiError {
    fn from(e: ApplicationError) -> Self {
        match e {
            ApplicationError::Domain(d) => d.into(),
            // Another user's thread reads exactly like a missing one.
            ApplicationError::AccessDenied { thread_id } => {
                ApiError::not_found(format!("thread not found: {thread_id}"))
            }
            ApplicationError::Disabled { feature } => {
                ApiError::unavailable(format!("{feature} is not available on this server"))
            }
            // Stored data the host's codec cannot read (e.g. a `messages` channel that is not
            // a message list): the request is fine but cannot be answered from it.
            ApplicationError::Codec(message) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "undecodable_messages",
                format!("the thread's latest checkpoint messages cannot be decoded: {message}"),
            ),
            ApplicationError::BufferBudgetExhausted { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "buffer_budget_exhausted",
                e.to_string(),
            ),
            ApplicationError::BufferFull { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "buffer_full",
                e.to_string(),
            ),
            other => {
                tracing::error!(error = %other, "service failure");
                ApiError::internal(other.to_string())
            }
        }
    }
}

/// Parses a thread id from a path or query.
pub fn thread_id(s: &str) -> Result<ThreadId, ApiError> {
    Ok(ThreadId::parse(s)?)
}

/// Parses a session id.
pub fn session_id(s: &str) -> Result<SessionId, ApiError> {
    Ok(SessionId::parse(s)?)
}

/// Parses a run id.
pub fn run_id(s: &str) -> Result<RunId, ApiError> {
    Ok(RunId::parse(s)?)
}

/// Parses a checkpoint id.
pub fn checkpoint_id(s: &str) -> Result<CheckpointId, ApiError> {
    Ok(CheckpointId::parse(s)?)
}

/// Parses an optional namespace (`""` when absent).
pub fn namespace(s: Option<&str>) -> Result<CheckpointNamespace, ApiError> {
    Ok(CheckpointNamespace::parse(s.unwrap_or(""))?)
}

/// Parses a uuid-shaped id.
pub fn uuid_id<T>(s: &str, parse: fn(&str) -> Result<T, DomainError>) -> Result<T, ApiError> {
    Ok(parse(s)?)
}

/// The routes, relative to `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        // sessions
        .route("/sessions", post(sessions::create).get(sessions::list))
        .route(
            "/sessions/{session_id}",
            get(sessions::get)
                .patch(sessions::update)
                .delete(sessions::delete),
        )
        .route("/sessions/{session_id}/threads", get(sessions::threads))
        .route(
            "/sessions/{session_id}/statistics",
            get(sessions::statistics),
        )
        .route(
            "/sessions/{session_id}/apply-policy",
            post(sessions::apply_policy),
        )
        // threads
        .route("/threads", post(threads::create).get(threads::list))
        .route("/threads/search", post(threads::search))
        .route(
            "/threads/{thread_id}",
            get(threads::get)
                .patch(threads::update)
                .delete(threads::delete),
        )
        .route(
            "/threads/{thread_id}/pin",
            put(threads::pin).delete(threads::unpin),
        )
        // checkpoints
        .route("/threads/{thread_id}/state", get(threads::state))
        .route("/threads/{thread_id}/checkpoints", get(threads::history))
        .route("/threads/{thread_id}/summary", get(threads::summary))
        .route(
            "/threads/{thread_id}/checkpoints/{checkpoint_id}",
            get(threads::checkpoint),
        )
        .route(
            "/threads/{thread_id}/checkpoints/{checkpoint_id}/diff/{other_id}",
            get(threads::diff),
        )
        .route("/threads/{thread_id}/rollback", post(threads::rollback))
        // branches and snapshots
        .route(
            "/threads/{thread_id}/branches",
            post(threads::fork).get(threads::branches),
        )
        .route(
            "/threads/{thread_id}/branches/{branch_id}",
            delete(threads::delete_branch),
        )
        .route(
            "/threads/{thread_id}/snapshots",
            post(threads::create_snapshot).get(threads::snapshots),
        )
        .route(
            "/threads/{thread_id}/snapshots/{snapshot_id}",
            get(threads::snapshot_state).delete(threads::delete_snapshot),
        )
        // messages and run events
        .route(
            "/threads/{thread_id}/messages",
            get(messages::thread_messages),
        )
        .route("/threads/{thread_id}/history", get(messages::history))
        .route("/threads/{thread_id}/feed", get(messages::feed))
        .route("/threads/{thread_id}/events", post(messages::append_events))
        .route(
            "/threads/{thread_id}/runs/{run_id}/events",
            get(messages::run_events).delete(messages::delete_run_events),
        )
        .route(
            "/threads/{thread_id}/runs/{run_id}/messages",
            get(messages::run_messages),
        )
        // runs
        .route(
            "/threads/{thread_id}/runs",
            post(runs::create).get(runs::list),
        )
        .route("/threads/{thread_id}/runs/{run_id}", get(runs::get))
        .route(
            "/threads/{thread_id}/runs/{run_id}/start",
            post(runs::start),
        )
        .route(
            "/threads/{thread_id}/runs/{run_id}/heartbeat",
            post(runs::heartbeat),
        )
        .route(
            "/threads/{thread_id}/runs/{run_id}/finish",
            post(runs::finish),
        )
        .route(
            "/threads/{thread_id}/runs/{run_id}/cancel",
            post(runs::cancel),
        )
        // feedback (DeerFlow's surface)
        .route(
            "/threads/{thread_id}/runs/{run_id}/feedback",
            put(feedback::upsert)
                .post(feedback::create)
                .delete(feedback::delete_mine)
                .get(feedback::list_for_run),
        )
        .route(
            "/threads/{thread_id}/runs/{run_id}/feedback/stats",
            get(feedback::stats),
        )
        .route(
            "/threads/{thread_id}/runs/{run_id}/feedback/{feedback_id}",
            delete(feedback::delete_one),
        )
        .route(
            "/threads/{thread_id}/feedback",
            get(feedback::list_for_thread),
        )
        .route("/runs/{run_id}/feedback", get(feedback::list_for_run_id))
        // token usage
        .route("/token-usage", post(tokens::record))
        .route("/token-usage/stats", get(tokens::stats))
        // chat streams
        .route("/messages/streams", get(messages::list_streams))
        .route(
            "/messages/streams/{thread_id}",
            get(messages::get_stream)
                .post(messages::record_frame)
                .delete(messages::delete_stream),
        )
        .route(
            "/messages/streams/{thread_id}/end",
            post(messages::end_stream),
        )
        // key-value store
        .route(
            "/store/items",
            put(store::put).get(store::get).delete(store::delete),
        )
        .route("/store/items/search", post(store::search))
        .route("/store/namespaces", post(store::namespaces))
}
