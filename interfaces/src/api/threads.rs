//! `/api/v1/threads`: thread records, and a thread's checkpoints, branches and snapshots.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use waymark_application::thread_checkpoints::{ForkRequest, SnapshotRequest};
use waymark_domain::branch::SnapshotKind;
use waymark_domain::paging::Limit;
use waymark_domain::thread::{NewThread, ThreadFilter, ThreadQuery, ThreadStatus, ThreadUpdate};
use waymark_domain::{BranchId, JsonObject, Name, SnapshotId, ThreadId};

use super::dto::{
    BranchDto, CheckpointEntry, CheckpointHistory, CheckpointState, SnapshotDto, SummaryDto,
    ThreadDto, ThreadList,
};
use super::sessions::{double_option, offset_page};
use super::{checkpoint_id, namespace, session_id, thread_id, uuid_id};
use crate::http::caller::Caller;
use crate::http::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::state::AppState;

/// `POST /threads`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateThread {
    /// The id (LangGraph's `thread_id`); a uuid is generated when absent.
    pub thread_id: Option<String>,
    /// The session to put it in.
    pub session_id: Option<String>,
    /// The assistant (graph).
    pub assistant_id: Option<String>,
    /// A display name.
    pub display_name: Option<String>,
    /// Metadata.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<JsonObject>,
}

/// `PATCH /threads/{thread_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateThread {
    /// New display name; null clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    /// `idle`, `running`, `interrupted`, `error` or `timeout`.
    pub status: Option<String>,
    /// Keys merged into the metadata (shallow; null stores null).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<JsonObject>,
    /// Move to this session; null detaches.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub session_id: Option<Option<String>>,
}

/// Filters of `GET /threads`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ThreadListQuery {
    /// Only this stored status.
    pub status: Option<String>,
    /// Only threads of this session.
    pub session_id: Option<String>,
    /// Exact-match metadata filter as a JSON object, e.g. `{"project":"x"}`.
    pub metadata: Option<String>,
    /// Page size, 1-1000 (default 100).
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u64>,
}

/// `POST /threads/search`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchThreads {
    /// Exact-match metadata conditions (keys `[A-Za-z0-9_-]+`; scalar values).
    #[schema(value_type = Option<Object>)]
    pub filter: Option<JsonObject>,
    /// Only this stored status.
    pub status: Option<String>,
    /// Only threads of this session.
    pub session_id: Option<String>,
    /// Page size, 1-1000 (default 100).
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u64>,
}

/// Which checkpoint namespace, and whether to include raw payloads.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StateQuery {
    /// The namespace (`""`, the root graph, by default).
    pub checkpoint_ns: Option<String>,
    /// Add each payload's bytes in base64.
    pub raw: Option<bool>,
}

/// Paging of the checkpoint history.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The namespace (`""` by default).
    pub checkpoint_ns: Option<String>,
    /// Only checkpoints older than this id.
    pub before: Option<String>,
    /// Page size, 1-1000 (default 20).
    pub limit: Option<u32>,
}

/// A namespace only.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NamespaceQuery {
    /// The namespace (`""` by default).
    pub checkpoint_ns: Option<String>,
}

/// `POST /threads/{thread_id}/rollback`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The checkpoint to return to; a new head checkpoint copies its state.
    pub checkpoint_id: String,
    /// Its namespace.
    pub checkpoint_ns: Option<String>,
}

/// `POST /threads/{thread_id}/branches`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForkBody {
    /// The branch name, unique on the source thread.
    pub name: String,
    /// The fork point (the latest checkpoint when absent).
    pub checkpoint_id: Option<String>,
    /// Its namespace.
    pub checkpoint_ns: Option<String>,
    /// The new thread's id (a uuid when absent).
    pub thread_id: Option<String>,
    /// The new thread's display name.
    pub display_name: Option<String>,
    /// Branch metadata.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<JsonObject>,
}

/// The result of a fork.
#[derive(Debug, Serialize, ToSchema)]
pub struct ForkResponse {
    /// The branch record.
    pub branch: BranchDto,
    /// The new thread.
    pub thread: ThreadDto,
    /// Checkpoints copied to it.
    pub copied_checkpoints: usize,
    /// Pending writes copied to it.
    pub copied_writes: usize,
}

/// `POST /threads/{thread_id}/snapshots`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotBody {
    /// The name, unique within the thread.
    pub name: String,
    /// The checkpoint to pin (the latest when absent).
    pub checkpoint_id: Option<String>,
    /// Its namespace.
    pub checkpoint_ns: Option<String>,
    /// `milestone` (default) or `backup`.
    pub kind: Option<String>,
    /// A description.
    pub description: Option<String>,
    /// Metadata.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<JsonObject>,
}

fn new_uuid_thread() -> ApiResult<ThreadId> {
    Ok(ThreadId::parse(uuid::Uuid::new_v4().to_string())?)
}

/// Create a thread (idempotent for the same owner).
#[utoipa::path(post, path = "/api/v1/threads", tag = "threads", operation_id = "threads_create", request_body = CreateThread,
    responses((status = 201, body = ThreadDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateThread>,
) -> ApiResult<Response> {
    let id = match body.thread_id.as_deref() {
        Some(t) => thread_id(t)?,
        None => new_uuid_thread()?,
    };
    let new = NewThread {
        id,
        session_id: body.session_id.as_deref().map(session_id).transpose()?,
        assistant_id: body.assistant_id,
        display_name: body.display_name,
        metadata: body.metadata.unwrap_or_default(),
    };
    let t = state.services.threads.create(&caller.scope, new).await?;
    Ok((StatusCode::CREATED, Json(ThreadDto::from(t))).into_response())
}

async fn run_search(
    state: &AppState,
    caller: &Caller,
    body: SearchThreads,
) -> ApiResult<ThreadList> {
    let (filter, skipped) = ThreadFilter::parse(body.filter.unwrap_or_default())?;
    if !skipped.is_empty() {
        tracing::warn!(?skipped, "thread search skipped invalid filter keys");
    }
    let page = offset_page(body.limit, body.offset, 100)?;
    let query = ThreadQuery {
        filter,
        status: body
            .status
            .as_deref()
            .map(str::parse::<ThreadStatus>)
            .transpose()?,
        session_id: body.session_id.as_deref().map(session_id).transpose()?,
        page,
    };
    let result = state.services.threads.search(&caller.scope, &query).await?;
    Ok(ThreadList {
        data: result.items.into_iter().map(ThreadDto::from).collect(),
        has_more: result.has_more,
        limit: page.limit.get(),
        offset: page.offset,
        skipped_filter_keys: skipped,
    })
}

/// List threads: pinned first, then most recently changed.
#[utoipa::path(get, path = "/api/v1/threads", tag = "threads", operation_id = "threads_list", params(ThreadListQuery),
    responses((status = 200, body = ThreadList), (status = 400, body = ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ThreadListQuery>,
) -> ApiResult<Json<ThreadList>> {
    let filter = match q.metadata.as_deref() {
        None => None,
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(o)) => Some(o),
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    "metadata must be a JSON object, e.g. {\"project\":\"x\"}",
                ));
            }
        },
    };
    let body = SearchThreads {
        filter,
        status: q.status,
        session_id: q.session_id,
        limit: q.limit,
        offset: q.offset,
    };
    Ok(Json(run_search(&state, &caller, body).await?))
}

/// Search threads by exact metadata matches.
#[utoipa::path(post, path = "/api/v1/threads/search", tag = "threads", operation_id = "threads_search", request_body = SearchThreads,
    responses((status = 200, body = ThreadList), (status = 400, body = ErrorEnvelope)))]
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<SearchThreads>,
) -> ApiResult<Json<ThreadList>> {
    Ok(Json(run_search(&state, &caller, body).await?))
}

/// One thread; `status` is the reported one (`running` while a run is active, else derived
/// from the latest checkpoint), `stored_status` the stored column.
#[utoipa::path(get, path = "/api/v1/threads/{thread_id}", tag = "threads", operation_id = "threads_get",
    params(("thread_id" = String, Path)),
    responses((status = 200, body = ThreadDto), (status = 404, body = ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ThreadDto>> {
    let id = thread_id(&id)?;
    let t = state.services.threads.get(&caller.scope, &id).await?;
    let reported = state
        .services
        .runs
        .thread_status(&caller.scope, &id)
        .await?;
    let mut dto = ThreadDto::from(t);
    dto.stored_status = Some(std::mem::replace(
        &mut dto.status,
        reported.as_str().to_owned(),
    ));
    Ok(Json(dto))
}

/// Change display name, status, metadata (merged) or session.
#[utoipa::path(patch, path = "/api/v1/threads/{thread_id}", tag = "threads", operation_id = "threads_update",
    params(("thread_id" = String, Path)), request_body = UpdateThread,
    responses((status = 200, body = ThreadDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateThread>,
) -> ApiResult<Json<ThreadDto>> {
    let id = thread_id(&id)?;
    let session = match body.session_id {
        None => None,
        Some(None) => Some(None),
        Some(Some(s)) => Some(Some(session_id(&s)?)),
    };
    let services = &state.services;
    if let Some(Some(target)) = &session {
        // The target session must exist and be the caller's; then one atomic update.
        services.sessions.get(&caller.scope, target).await?;
    }
    let update = ThreadUpdate {
        display_name: body.display_name,
        status: body
            .status
            .as_deref()
            .map(str::parse::<ThreadStatus>)
            .transpose()?,
        metadata_patch: body.metadata,
        session_id: session,
        owner: None,
        touch: true,
    };
    let t = services.threads.update(&caller.scope, &id, update).await?;
    Ok(Json(t.into()))
}

/// Delete a thread and everything held for it (checkpoints, events, feedback, chat stream,
/// branches, snapshots, token usage). Idempotent.
#[utoipa::path(delete, path = "/api/v1/threads/{thread_id}", tag = "threads", operation_id = "threads_delete",
    params(("thread_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state
        .services
        .threads
        .delete(&caller.scope, &thread_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pin a thread to the top of searches.
#[utoipa::path(put, path = "/api/v1/threads/{thread_id}/pin", tag = "threads", operation_id = "threads_pin",
    params(("thread_id" = String, Path)),
    responses((status = 200, body = ThreadDto), (status = 404, body = ErrorEnvelope)))]
pub async fn pin(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ThreadDto>> {
    let t = state
        .services
        .threads
        .set_pinned(&caller.scope, &thread_id(&id)?, true)
        .await?;
    Ok(Json(t.into()))
}

/// Unpin a thread.
#[utoipa::path(delete, path = "/api/v1/threads/{thread_id}/pin", tag = "threads", operation_id = "threads_unpin",
    params(("thread_id" = String, Path)),
    responses((status = 200, body = ThreadDto), (status = 404, body = ErrorEnvelope)))]
pub async fn unpin(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ThreadDto>> {
    let t = state
        .services
        .threads
        .set_pinned(&caller.scope, &thread_id(&id)?, false)
        .await?;
    Ok(Json(t.into()))
}

/// The latest checkpoint's state, values decoded.
#[utoipa::path(get, path = "/api/v1/threads/{thread_id}/state", tag = "checkpoints", operation_id = "threads_state",
    params(("thread_id" = String, Path), StateQuery),
    responses((status = 200, body = CheckpointState), (status = 404, body = ErrorEnvelope)))]
pub async fn state(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<StateQuery>,
) -> ApiResult<Json<CheckpointState>> {
    let ns = namespace(q.checkpoint_ns.as_deref())?;
    let t = state
        .services
        .checkpoints
        .restore(&caller.scope, &thread_id(&id)?, &ns, None)
        .await?;
    Ok(Json(CheckpointState::of(&t, q.raw.unwrap_or(false))))
}

/// The state at one checkpoint.
#[utoipa::path(get, path = "/api/v1/threads/{thread_id}/checkpoints/{checkpoint_id}", tag = "checkpoints", operation_id = "threads_checkpoint",
    params(("thread_id" = String, Path), ("checkpoint_id" = String, Path), StateQuery),
    responses((status = 200, body = CheckpointState), (status = 404, body = ErrorEnvelope)))]
pub async fn checkpoint(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, cid)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<StateQuery>,
) -> ApiResult<Json<CheckpointState>> {
    let ns = namespace(q.checkpoint_ns.as_deref())?;
    let t = state
        .services
        .checkpoints
        .restore(
            &caller.scope,
            &thread_id(&id)?,
            &ns,
            Some(checkpoint_id(&cid)?),
        )
        .await?;
    Ok(Json(CheckpointState::of(&t, q.raw.unwrap_or(false))))
}

/// A thread's checkpoints, newest first, paged with `before`.
#[utoipa::path(get, path = "/api/v1/threads/{thread_id}/checkpoints", tag = "checkpoints", operation_id = "threads_history",
    params(("thread_id" = String, Path), HistoryQuery),
    responses((status = 200, body = CheckpointHistory), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<CheckpointHistory>> {
    let ns = namespace(q.checkpoint_ns.as_deref())?;
    let limit = Limit::new(q.limit.unwrap_or(20))?;
    if limit.get() > super::sessions::MAX_PAGE {
        return Err(ApiError::bad_request(
            "invalid limit: at most 1000 checkpoints per page",
        ));
    }
    let before = q.before.as_deref().map(checkpoint_id).transpose()?;
    let page = state
        .services
        .checkpoints
        .history(&caller.scope, &thread_id(&id)?, &ns, before, limit)
        .await?;
    let data: Vec<CheckpointEntry> = page.items.iter().map(CheckpointEntry::from).collect();
    let next_before = if page.has_more {
        data.last().map(|e| e.checkpoint_id.clone())
    } else {
        None
    };
    Ok(Json(CheckpointHistory {
        data,
        has_more: page.has_more,
        next_before,
    }))
}

/// Counts and sizes of a thread's checkpoints.
#[utoipa::path(get, path = "/api/v1/threads/{thread_id}/summary", tag = "checkpoints", operation_id = "threads_summary",
    params(("thread_id" = String, Path)),
    responses((status = 200, body = SummaryDto), (status = 404, body = ErrorEnvelope)))]
pub async fn summary(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<SummaryDto>> {
    let s = state
        .services
        .checkpoints
        .summary(&caller.scope, &thread_id(&id)?)
        .await?;
    Ok(Json(s.into()))
}

/// What changed from one checkpoint to another (channels, versions, messages).
#[utoipa::path(get, path = "/api/v1/threads/{thread_id}/checkpoints/{checkpoint_id}/diff/{other_id}", tag = "checkpoints", operation_id = "threads_diff",
    params(("thread_id" = String, Path), ("checkpoint_id" = String, Path), ("other_id" = String, Path), NamespaceQuery),
    responses((status = 200, body = super::dto::CheckpointDiffDto), (status = 404, body = ErrorEnvelope)))]
pub async fn diff(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, from, to)): ApiPath<(String, String, String)>,
    ApiQuery(q): ApiQuery<NamespaceQuery>,
) -> ApiResult<Json<super::dto::CheckpointDiffDto>> {
    let ns = namespace(q.checkpoint_ns.as_deref())?;
    let d = state
        .services
        .checkpoints
        .diff(
            &caller.scope,
            &thread_id(&id)?,
            &ns,
            checkpoint_id(&from)?,
            checkpoint_id(&to)?,
        )
        .await?;
    Ok(Json(d.into()))
}

/// Make an older checkpoint's state the thread's head again (a new checkpoint).
#[utoipa::path(post, path = "/api/v1/threads/{thread_id}/rollback", tag = "checkpoints", operation_id = "threads_rollback",
    params(("thread_id" = String, Path)), request_body = RollbackRequest,
    responses((status = 200, body = CheckpointState), (status = 404, body = ErrorEnvelope)))]
pub async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RollbackRequest>,
) -> ApiResult<Json<CheckpointState>> {
    let ns = namespace(body.checkpoint_ns.as_deref())?;
    let t = state
        .services
        .checkpoints
        .rollback(
            &caller.scope,
            &thread_id(&id)?,
            &ns,
            checkpoint_id(&body.checkpoint_id)?,
        )
        .await?;
    Ok(Json(CheckpointState::of(&t, false)))
}

async fn latest_id(
    state: &AppState,
    caller: &Caller,
    thread: &ThreadId,
    ns: &waymark_domain::CheckpointNamespace,
) -> ApiResult<waymark_domain::CheckpointId> {
    Ok(state
        .services
        .checkpoints
        .restore(&caller.scope, thread, ns, None)
        .await?
        .checkpoint
        .id)
}

/// Fork a checkpoint into a new thread carrying a named branch.
#[utoipa::path(post, path = "/api/v1/threads/{thread_id}/branches", tag = "branches", operation_id = "threads_fork",
    params(("thread_id" = String, Path)), request_body = ForkBody,
    responses((status = 201, body = ForkResponse), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn fork(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ForkBody>,
) -> ApiResult<Response> {
    let source = thread_id(&id)?;
    let ns = namespace(body.checkpoint_ns.as_deref())?;
    let name = Name::parse(body.name)?;
    let cid = match body.checkpoint_id.as_deref() {
        Some(c) => checkpoint_id(c)?,
        None => latest_id(&state, &caller, &source, &ns).await?,
    };
    let request = ForkRequest {
        source_thread_id: source,
        namespace: ns,
        checkpoint_id: cid,
        new_thread_id: body.thread_id.as_deref().map(thread_id).transpose()?,
        name,
        display_name: body.display_name,
        metadata: body.metadata.unwrap_or_default(),
    };
    let out = state
        .services
        .checkpoints
        .fork(&caller.scope, request)
        .await?;
    let resp = ForkResponse {
        branch: out.branch.into(),
        thread: out.thread.into(),
        copied_checkpoints: out.copied_checkpoints,
        copied_writes: out.copied_writes,
    };
    Ok((StatusCode::CREATED, Json(resp)).into_response())
}

/// Branches forked from this thread, oldest first.
#[utoipa::path(get, path = "/api/v1/threads/{thread_id}/branches", tag = "branches", operation_id = "threads_branches",
    params(("thread_id" = String, Path)),
    responses((status = 200, body = Vec<BranchDto>), (status = 404, body = ErrorEnvelope)))]
pub async fn branches(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Vec<BranchDto>>> {
    let list = state
        .services
        .checkpoints
        .list_branches(&caller.scope, &thread_id(&id)?)
        .await?;
    Ok(Json(list.into_iter().map(BranchDto::from).collect()))
}

/// Delete a branch record (its thread stays).
#[utoipa::path(delete, path = "/api/v1/threads/{thread_id}/branches/{branch_id}", tag = "branches", operation_id = "threads_delete_branch",
    params(("thread_id" = String, Path), ("branch_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_branch(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, bid)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let bid = uuid_id(&bid, BranchId::parse)?;
    let deleted = state
        .services
        .checkpoints
        .delete_branch(&caller.scope, &thread_id(&id)?, bid)
        .await?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("branch not found: {bid}")))
    }
}

/// Pin a checkpoint with a named snapshot (never pruned).
#[utoipa::path(post, path = "/api/v1/threads/{thread_id}/snapshots", tag = "snapshots", operation_id = "threads_create_snapshot",
    params(("thread_id" = String, Path)), request_body = SnapshotBody,
    responses((status = 201, body = SnapshotDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn create_snapshot(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SnapshotBody>,
) -> ApiResult<Response> {
    let thread = thread_id(&id)?;
    let ns = namespace(body.checkpoint_ns.as_deref())?;
    let name = Name::parse(body.name)?;
    let kind = body
        .kind
        .as_deref()
        .map(str::parse::<SnapshotKind>)
        .transpose()?
        .unwrap_or(SnapshotKind::Milestone);
    let cid = match body.checkpoint_id.as_deref() {
        Some(c) => checkpoint_id(c)?,
        None => latest_id(&state, &caller, &thread, &ns).await?,
    };
    let request = SnapshotRequest {
        thread_id: thread,
        namespace: ns,
        checkpoint_id: cid,
        name,
        kind,
        description: body.description,
        metadata: body.metadata.unwrap_or_default(),
    };
    let s = state
        .services
        .checkpoints
        .create_snapshot(&caller.scope, request)
        .await?;
    Ok((StatusCode::CREATED, Json(SnapshotDto::from(s))).into_response())
}

/// The thread's snapshots, oldest first.
#[utoipa::path(get, path = "/api/v1/threads/{thread_id}/snapshots", tag = "snapshots", operation_id = "threads_snapshots",
    params(("thread_id" = String, Path)),
    responses((status = 200, body = Vec<SnapshotDto>), (status = 404, body = ErrorEnvelope)))]
pub async fn snapshots(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Vec<SnapshotDto>>> {
    let list = state
        .services
        .checkpoints
        .list_snapshots(&caller.scope, &thread_id(&id)?)
        .await?;
    Ok(Json(list.into_iter().map(SnapshotDto::from).collect()))
}

/// The state at a snapshot's checkpoint.
#[utoipa::path(get, path = "/api/v1/threads/{thread_id}/snapshots/{snapshot_id}", tag = "snapshots", operation_id = "threads_snapshot_state",
    params(("thread_id" = String, Path), ("snapshot_id" = String, Path), StateQuery),
    responses((status = 200, body = CheckpointState), (status = 404, body = ErrorEnvelope)))]
pub async fn snapshot_state(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, sid)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<StateQuery>,
) -> ApiResult<Json<CheckpointState>> {
    if q.checkpoint_ns.is_some() {
        return Err(ApiError::bad_request(
            "a snapshot names its own namespace; checkpoint_ns is not accepted here",
        ));
    }
    let t = state
        .services
        .checkpoints
        .restore_snapshot(
            &caller.scope,
            &thread_id(&id)?,
            uuid_id(&sid, SnapshotId::parse)?,
        )
        .await?;
    Ok(Json(CheckpointState::of(&t, q.raw.unwrap_or(false))))
}

/// Delete a snapshot (the checkpoint stays).
#[utoipa::path(delete, path = "/api/v1/threads/{thread_id}/snapshots/{snapshot_id}", tag = "snapshots", operation_id = "threads_delete_snapshot",
    params(("thread_id" = String, Path), ("snapshot_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_snapshot(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, sid)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let sid = uuid_id(&sid, SnapshotId::parse)?;
    let deleted = state
        .services
        .checkpoints
        .delete_snapshot(&caller.scope, &thread_id(&id)?, sid)
        .await?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("snapshot not found: {sid}")))
    }
}
