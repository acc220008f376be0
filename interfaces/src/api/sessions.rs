//! `/api/v1/sessions`: a user's containers of threads with their checkpoint policy.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer};
use utoipa::{IntoParams, ToSchema};
use waymark_application::sessions::{NewSession, SessionDeletion};
use waymark_domain::JsonObject;
use waymark_domain::paging::OffsetPage;
use waymark_domain::session::{CheckpointPolicy, SessionStatus, SessionUpdate};

use super::dto::{SessionDto, SessionList, ThreadDto, ThreadList};
use super::session_id;
use crate::http::caller::Caller;
use crate::http::error::{ApiResult, ErrorEnvelope};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::state::AppState;

/// Reads `null` as `Some(None)` and absence (via `default`) as `None`, so a PATCH can clear a
/// field.
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A checkpoint policy as clients send it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyIn {
    /// Keep at most this many checkpoints per thread and namespace (at least 1).
    pub max_checkpoints_per_thread: Option<u32>,
    /// Remove checkpoints older than this many seconds (positive).
    pub retention_seconds: Option<i64>,
    /// Keep checkpoints pinned by snapshots (default true).
    pub exempt_snapshots: Option<bool>,
}

impl PolicyIn {
    fn parse(self) -> ApiResult<CheckpointPolicy> {
        Ok(CheckpointPolicy::new(
            self.max_checkpoints_per_thread,
            self.retention_seconds,
            self.exempt_snapshots.unwrap_or(true),
        )?)
    }
}

/// `POST /sessions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// The id; a uuid is generated when absent.
    pub session_id: Option<String>,
    /// A title.
    pub title: Option<String>,
    /// Metadata.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<JsonObject>,
    /// The checkpoint policy.
    pub checkpoint_policy: Option<PolicyIn>,
}

/// `PATCH /sessions/{session_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSession {
    /// New title; null clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub title: Option<Option<String>>,
    /// Keys merged into the metadata (shallow).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<JsonObject>,
    /// `active`, `archived` or `closed`.
    pub status: Option<String>,
    /// A new checkpoint policy.
    pub checkpoint_policy: Option<PolicyIn>,
}

/// Paging and filters of `GET /sessions`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SessionListQuery {
    /// Only sessions in this status.
    pub status: Option<String>,
    /// Page size, 1-1000 (default 50).
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u64>,
}

/// `DELETE /sessions/{session_id}` options.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteSessionQuery {
    /// Delete the session's threads too (default: detach them).
    pub delete_threads: Option<bool>,
}

/// Paging of a session's threads.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1-1000 (default 100).
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u64>,
}

/// The largest page a list endpoint returns.
pub const MAX_PAGE: u32 = 1000;

/// An offset page from optional query values.
pub fn offset_page(limit: Option<u32>, offset: Option<u64>, default: u32) -> ApiResult<OffsetPage> {
    let limit = limit.unwrap_or(default);
    if limit > MAX_PAGE {
        return Err(crate::http::error::ApiError::bad_request(format!(
            "invalid limit: is {limit}; at most {MAX_PAGE} rows per page"
        )));
    }
    Ok(OffsetPage::new(limit, offset.unwrap_or(0))?)
}

/// Create a session owned by the caller.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "sessions", operation_id = "sessions_create", request_body = CreateSession,
    responses((status = 201, body = SessionDto), (status = 400, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateSession>,
) -> ApiResult<Response> {
    let new = NewSession {
        id: body.session_id.as_deref().map(session_id).transpose()?,
        title: body.title,
        metadata: body.metadata.unwrap_or_default(),
        checkpoint_policy: body.checkpoint_policy.map(PolicyIn::parse).transpose()?,
    };
    let s = state.services.sessions.create(&caller.scope, new).await?;
    Ok((StatusCode::CREATED, Json(SessionDto::from(s))).into_response())
}

/// List the caller's sessions, most recently changed first.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", operation_id = "sessions_list", params(SessionListQuery),
    responses((status = 200, body = SessionList), (status = 400, body = ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<SessionListQuery>,
) -> ApiResult<Json<SessionList>> {
    let status = q
        .status
        .as_deref()
        .map(str::parse::<SessionStatus>)
        .transpose()?;
    let page = offset_page(q.limit, q.offset, 50)?;
    let result = state
        .services
        .sessions
        .list(&caller.scope, status, page)
        .await?;
    Ok(Json(SessionList {
        data: result.items.into_iter().map(SessionDto::from).collect(),
        has_more: result.has_more,
        limit: page.limit.get(),
        offset: page.offset,
    }))
}

/// One session.
#[utoipa::path(get, path = "/api/v1/sessions/{session_id}", tag = "sessions", operation_id = "sessions_get",
    params(("session_id" = String, Path)),
    responses((status = 200, body = SessionDto), (status = 404, body = ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<SessionDto>> {
    let s = state
        .services
        .sessions
        .get(&caller.scope, &session_id(&id)?)
        .await?;
    Ok(Json(s.into()))
}

/// Change title, metadata (merged), status or policy.
#[utoipa::path(patch, path = "/api/v1/sessions/{session_id}", tag = "sessions", operation_id = "sessions_update",
    params(("session_id" = String, Path)), request_body = UpdateSession,
    responses((status = 200, body = SessionDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateSession>,
) -> ApiResult<Json<SessionDto>> {
    let update = SessionUpdate {
        title: body.title,
        metadata_patch: body.metadata,
        status: body
            .status
            .as_deref()
            .map(str::parse::<SessionStatus>)
            .transpose()?,
        checkpoint_policy: body.checkpoint_policy.map(PolicyIn::parse).transpose()?,
    };
    let s = state
        .services
        .sessions
        .update(&caller.scope, &session_id(&id)?, update)
        .await?;
    Ok(Json(s.into()))
}

/// Delete a session; its threads are detached, or deleted with `delete_threads=true`.
#[utoipa::path(delete, path = "/api/v1/sessions/{session_id}", tag = "sessions", operation_id = "sessions_delete",
    params(("session_id" = String, Path), DeleteSessionQuery),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeleteSessionQuery>,
) -> ApiResult<StatusCode> {
    let mode = if q.delete_threads.unwrap_or(false) {
        SessionDeletion::DeleteThreads
    } else {
        SessionDeletion::DetachThreads
    };
    let id = session_id(&id)?;
    let done = state
        .services
        .sessions
        .delete(&caller.scope, &id, mode)
        .await?;
    if done.existed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(crate::http::error::ApiError::not_found(format!(
            "session not found: {id}"
        )))
    }
}

/// The session's threads.
#[utoipa::path(get, path = "/api/v1/sessions/{session_id}/threads", tag = "sessions", operation_id = "sessions_threads",
    params(("session_id" = String, Path), PageQuery),
    responses((status = 200, body = ThreadList), (status = 404, body = ErrorEnvelope)))]
pub async fn threads(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<ThreadList>> {
    let page = offset_page(q.limit, q.offset, 100)?;
    let result = state
        .services
        .sessions
        .threads(&caller.scope, &session_id(&id)?, page)
        .await?;
    Ok(Json(ThreadList {
        data: result.items.into_iter().map(ThreadDto::from).collect(),
        has_more: result.has_more,
        limit: page.limit.get(),
        offset: page.offset,
        skipped_filter_keys: Vec::new(),
    }))
}

/// Checkpoint counts and sizes across the session's threads.
#[utoipa::path(get, path = "/api/v1/sessions/{session_id}/statistics", tag = "sessions", operation_id = "sessions_statistics",
    params(("session_id" = String, Path)),
    responses((status = 200, body = super::dto::SessionStatsDto), (status = 404, body = ErrorEnvelope)))]
pub async fn statistics(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<super::dto::SessionStatsDto>> {
    let stats = state
        .services
        .session_checkpoints
        .statistics(&caller.scope, &session_id(&id)?)
        .await?;
    Ok(Json(stats.into()))
}

/// Apply the session's checkpoint policy to each of its threads now.
#[utoipa::path(post, path = "/api/v1/sessions/{session_id}/apply-policy", tag = "sessions", operation_id = "sessions_apply_policy",
    params(("session_id" = String, Path)),
    responses((status = 200, body = super::dto::PolicyReportDto), (status = 404, body = ErrorEnvelope)))]
pub async fn apply_policy(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<super::dto::PolicyReportDto>> {
    let report = state
        .services
        .session_checkpoints
        .apply_policy(&caller.scope, &session_id(&id)?)
        .await?;
    Ok(Json(report.into()))
}
