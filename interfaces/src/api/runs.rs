//! `/api/v1/threads/{thread_id}/runs`: first-class runs (spec `history-and-streams.md` §6.2).
//!
//! A client admits a run (`POST .../runs`, the thread becomes `running`); a worker starts it
//! with its worker id (`.../start`, a compare-and-set that takes a lease), keeps the lease with
//! heartbeats (optionally reporting progress) and finishes it (`.../finish`), which sets the
//! thread status the run leaves behind. `.../cancel` ends it as `interrupted`. Lists are newest
//! first and cursor-paged with `has_more`. Every route checks thread access through the
//! [`RunService`](waymark_application::RunService) first; another user's runs read as not
//! found.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use waymark_domain::JsonObject;
use waymark_domain::paging::Limit;
use waymark_domain::run::{
    FinalStatus, LeaseTtl, NewRun, RunCursor, RunErrorText, RunOutcome, RunPage, RunProgress,
    WorkerId,
};

use super::dto::{RunDto, RunListDto};
use super::{run_id, thread_id};
use crate::http::caller::Caller;
use crate::http::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::state::AppState;

/// `POST /threads/{thread_id}/runs`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// The id; a uuid is generated when absent.
    pub run_id: Option<String>,
    /// Metadata (a JSON object).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<JsonObject>,
}

/// `POST .../start`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// The worker taking the lease.
    pub worker_id: String,
    /// Lease length, 1-3600 s (the server's default, 30 s, when absent).
    pub lease_seconds: Option<i64>,
}

/// `POST .../heartbeat`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The lease holder.
    pub worker_id: String,
    /// New lease length, 1-3600 s (the server's default when absent).
    pub lease_seconds: Option<i64>,
    /// A progress report replacing the previous one.
    #[schema(value_type = Option<Object>)]
    pub progress: Option<JsonObject>,
}

/// `POST .../finish`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishRun {
    /// `success`, `error`, `timeout` or `interrupted`.
    pub status: String,
    /// Error text.
    pub error: Option<String>,
}

/// Paging of run lists.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunListQuery {
    /// Page size, 1-1000 (default 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn ttl(seconds: Option<i64>) -> ApiResult<Option<LeaseTtl>> {
    Ok(seconds.map(LeaseTtl::seconds).transpose()?)
}

/// Admit a run on the thread: it is `pending`, the thread `running`. A thread with a pending
/// or running run answers 409.
#[utoipa::path(post, path = "/api/v1/threads/{thread_id}/runs", tag = "runs", operation_id = "runs_create",
    params(("thread_id" = String, Path)), request_body = CreateRun,
    responses((status = 201, body = RunDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(t): ApiPath<String>,
    ApiJson(body): ApiJson<CreateRun>,
) -> ApiResult<Response> {
    let id = match body.run_id.as_deref() {
        Some(r) => run_id(r)?,
        None => run_id(&uuid::Uuid::new_v4().to_string())?,
    };
    let mut new = NewRun::new(thread_id(&t)?, id);
    new.metadata = body.metadata.unwrap_or_default();
    let run = state.services.runs.admit(&caller.scope, new).await?;
    Ok((StatusCode::CREATED, Json(RunDto::from(run))).into_response())
}

/// The thread's runs, newest first.
#[utoipa::path(get, path = "/api/v1/threads/{thread_id}/runs", tag = "runs", operation_id = "runs_list",
    params(("thread_id" = String, Path), RunListQuery),
    responses((status = 200, body = RunListDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(t): ApiPath<String>,
    ApiQuery(q): ApiQuery<RunListQuery>,
) -> ApiResult<Json<RunListDto>> {
    let limit = q.limit.unwrap_or(100);
    if limit > 1000 {
        return Err(ApiError::bad_request(format!(
            "invalid limit: is {limit}; at most 1000 rows per page"
        )));
    }
    let page = RunPage {
        limit: Limit::new(limit)?,
        after: q.cursor.as_deref().map(RunCursor::parse).transpose()?,
    };
    let runs = state
        .services
        .runs
        .list(&caller.scope, &thread_id(&t)?, &page)
        .await?;
    Ok(Json(runs.into()))
}

/// One run.
#[utoipa::path(get, path = "/api/v1/threads/{thread_id}/runs/{run_id}", tag = "runs", operation_id = "runs_get",
    params(("thread_id" = String, Path), ("run_id" = String, Path)),
    responses((status = 200, body = RunDto), (status = 404, body = ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((t, r)): ApiPath<(String, String)>,
) -> ApiResult<Json<RunDto>> {
    let run = state
        .services
        .runs
        .get(&caller.scope, &thread_id(&t)?, &run_id(&r)?)
        .await?;
    Ok(Json(run.into()))
}

/// Start a pending run for a worker (compare-and-set; 409 when not pending).
#[utoipa::path(post, path = "/api/v1/threads/{thread_id}/runs/{run_id}/start", tag = "runs", operation_id = "runs_start",
    params(("thread_id" = String, Path), ("run_id" = String, Path)), request_body = StartRun,
    responses((status = 200, body = RunDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((t, r)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<StartRun>,
) -> ApiResult<Json<RunDto>> {
    let worker = WorkerId::parse(body.worker_id)?;
    let lease = ttl(body.lease_seconds)?;
    let run = state
        .services
        .runs
        .start(&caller.scope, &thread_id(&t)?, &run_id(&r)?, &worker, lease)
        .await?;
    Ok(Json(run.into()))
}

/// Renew the worker's lease and optionally report progress (409 when not running or not the
/// lease holder: the worker should stop).
#[utoipa::path(post, path = "/api/v1/threads/{thread_id}/runs/{run_id}/heartbeat", tag = "runs", operation_id = "runs_heartbeat",
    params(("thread_id" = String, Path), ("run_id" = String, Path)), request_body = Heartbeat,
    responses((status = 200, body = RunDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((t, r)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<Heartbeat>,
) -> ApiResult<Json<RunDto>> {
    let worker = WorkerId::parse(body.worker_id)?;
    let lease = ttl(body.lease_seconds)?;
    let progress = body.progress.map(RunProgress::new).transpose()?;
    let run = state
        .services
        .runs
        .heartbeat(
            &caller.scope,
            &thread_id(&t)?,
            &run_id(&r)?,
            &worker,
            lease,
            progress,
        )
        .await?;
    Ok(Json(run.into()))
}

/// End the run; the thread takes the matching status (success -> idle). Repeating the same
/// status is idempotent; a different one on an ended run answers 409.
#[utoipa::path(post, path = "/api/v1/threads/{thread_id}/runs/{run_id}/finish", tag = "runs", operation_id = "runs_finish",
    params(("thread_id" = String, Path), ("run_id" = String, Path)), request_body = FinishRun,
    responses((status = 200, body = RunDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn finish(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((t, r)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<FinishRun>,
) -> ApiResult<Json<RunDto>> {
    let outcome = RunOutcome {
        status: body.status.parse::<FinalStatus>()?,
        error: body.error.map(RunErrorText::parse).transpose()?,
    };
    let run = state
        .services
        .runs
        .finish(&caller.scope, &thread_id(&t)?, &run_id(&r)?, outcome)
        .await?;
    Ok(Json(run.into()))
}

/// Cancel the run: it ends `interrupted` with the error `cancelled`.
#[utoipa::path(post, path = "/api/v1/threads/{thread_id}/runs/{run_id}/cancel", tag = "runs", operation_id = "runs_cancel",
    params(("thread_id" = String, Path), ("run_id" = String, Path)),
    responses((status = 200, body = RunDto), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((t, r)): ApiPath<(String, String)>,
) -> ApiResult<Json<RunDto>> {
    let run = state
        .services
        .runs
        .cancel(&caller.scope, &thread_id(&t)?, &run_id(&r)?)
        .await?;
    Ok(Json(run.into()))
}
