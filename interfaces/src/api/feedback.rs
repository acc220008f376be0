//! Per-run feedback with DeerFlow's HTTP surface (spec `history-and-streams.md` §4.4).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use waymark_domain::FeedbackId;
use waymark_domain::feedback::{NewFeedback, Rating};
use waymark_domain::paging::Limit;

use super::dto::{FeedbackDto, FeedbackList};
use super::{run_id, thread_id, uuid_id};
use crate::http::caller::Caller;
use crate::http::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::state::AppState;

/// `PUT` (upsert) and `POST` (create) body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackIn {
    /// 1 (thumbs up) or -1 (thumbs down).
    pub rating: i64,
    /// A comment.
    pub comment: Option<String>,
    /// The message it refers to (create only; kept by upserts).
    pub message_id: Option<String>,
}

/// Paging of feedback lists.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedbackQuery {
    /// 1-1000 (default 100).
    pub limit: Option<u32>,
}

/// `GET /runs/{run_id}/feedback` needs the thread.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunFeedbackQuery {
    /// The thread the run belongs to (required: runs are stored per thread).
    pub thread_id: Option<String>,
    /// 1-1000 (default 100).
    pub limit: Option<u32>,
}

/// Counts over every user's rows of a run.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackStatsDto {
    /// The run.
    pub run_id: String,
    /// All rows.
    pub total: u64,
    /// Rating 1.
    pub positive: u64,
    /// Rating -1.
    pub negative: u64,
}

fn limit(l: Option<u32>) -> ApiResult<Limit> {
    let l = l.unwrap_or(100);
    if l > 1000 {
        return Err(ApiError::bad_request(
            "invalid limit: at most 1000 rows per page",
        ));
    }
    Ok(Limit::new(l)?)
}

fn new_feedback(thread: &str, run: &str, body: FeedbackIn) -> ApiResult<NewFeedback> {
    Ok(NewFeedback {
        thread_id: thread_id(thread)?,
        run_id: run_id(run)?,
        rating: Rating::new(body.rating)?,
        comment: body.comment,
        message_id: body.message_id,
    })
}

/// Set the caller's feedback on a run (insert or update).
#[utoipa::path(put, path = "/api/v1/threads/{thread_id}/runs/{run_id}/feedback", tag = "feedback", operation_id = "feedback_upsert",
    params(("thread_id" = String, Path), ("run_id" = String, Path)), request_body = FeedbackIn,
    responses((status = 200, body = FeedbackDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn upsert(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((t, r)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<FeedbackIn>,
) -> ApiResult<Json<FeedbackDto>> {
    let f = state
        .services
        .feedback
        .upsert(&caller.scope, new_feedback(&t, &r, body)?)
        .await?;
    Ok(Json(f.into()))
}

/// Create the caller's feedback on a run; a second one is a conflict.
#[utoipa::path(post, path = "/api/v1/threads/{thread_id}/runs/{run_id}/feedback", tag = "feedback", operation_id = "feedback_create",
    params(("thread_id" = String, Path), ("run_id" = String, Path)), request_body = FeedbackIn,
    responses((status = 201, body = FeedbackDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((t, r)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<FeedbackIn>,
) -> ApiResult<Response> {
    let f = state
        .services
        .feedback
        .create(&caller.scope, new_feedback(&t, &r, body)?)
        .await?;
    Ok((StatusCode::CREATED, Json(FeedbackDto::from(f))).into_response())
}

/// Delete the caller's feedback on a run.
#[utoipa::path(delete, path = "/api/v1/threads/{thread_id}/runs/{run_id}/feedback", tag = "feedback", operation_id = "feedback_delete_mine",
    params(("thread_id" = String, Path), ("run_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_mine(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((t, r)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .services
        .feedback
        .delete_mine(&caller.scope, &thread_id(&t)?, &run_id(&r)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's feedback rows on a run.
#[utoipa::path(get, path = "/api/v1/threads/{thread_id}/runs/{run_id}/feedback", tag = "feedback", operation_id = "feedback_list_for_run",
    params(("thread_id" = String, Path), ("run_id" = String, Path), FeedbackQuery),
    responses((status = 200, body = FeedbackList), (status = 404, body = ErrorEnvelope)))]
pub async fn list_for_run(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((t, r)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<FeedbackQuery>,
) -> ApiResult<Json<FeedbackList>> {
    let page = state
        .services
        .feedback
        .list_by_run(
            &caller.scope,
            &thread_id(&t)?,
            &run_id(&r)?,
            limit(q.limit)?,
        )
        .await?;
    Ok(Json(FeedbackList {
        data: page.items.into_iter().map(FeedbackDto::from).collect(),
        has_more: page.has_more,
    }))
}

/// Feedback of a run (`thread_id` query parameter required).
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/feedback", tag = "feedback", operation_id = "feedback_list_for_run_id",
    params(("run_id" = String, Path), RunFeedbackQuery),
    responses((status = 200, body = FeedbackList), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn list_for_run_id(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(r): ApiPath<String>,
    ApiQuery(q): ApiQuery<RunFeedbackQuery>,
) -> ApiResult<Json<FeedbackList>> {
    let Some(t) = q.thread_id.as_deref() else {
        return Err(ApiError::bad_request(
            "invalid thread_id: required; runs are stored per thread (?thread_id=...)",
        ));
    };
    let page = state
        .services
        .feedback
        .list_by_run(&caller.scope, &thread_id(t)?, &run_id(&r)?, limit(q.limit)?)
        .await?;
    Ok(Json(FeedbackList {
        data: page.items.into_iter().map(FeedbackDto::from).collect(),
        has_more: page.has_more,
    }))
}

/// The caller's feedback rows on a thread.
#[utoipa::path(get, path = "/api/v1/threads/{thread_id}/feedback", tag = "feedback", operation_id = "feedback_list_for_thread",
    params(("thread_id" = String, Path), FeedbackQuery),
    responses((status = 200, body = FeedbackList), (status = 404, body = ErrorEnvelope)))]
pub async fn list_for_thread(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(t): ApiPath<String>,
    ApiQuery(q): ApiQuery<FeedbackQuery>,
) -> ApiResult<Json<FeedbackList>> {
    let page = state
        .services
        .feedback
        .list_by_thread(&caller.scope, &thread_id(&t)?, limit(q.limit)?)
        .await?;
    Ok(Json(FeedbackList {
        data: page.items.into_iter().map(FeedbackDto::from).collect(),
        has_more: page.has_more,
    }))
}

/// Counts over every user's feedback on a run.
#[utoipa::path(get, path = "/api/v1/threads/{thread_id}/runs/{run_id}/feedback/stats", tag = "feedback", operation_id = "feedback_stats",
    params(("thread_id" = String, Path), ("run_id" = String, Path)),
    responses((status = 200, body = FeedbackStatsDto), (status = 404, body = ErrorEnvelope)))]
pub async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((t, r)): ApiPath<(String, String)>,
) -> ApiResult<Json<FeedbackStatsDto>> {
    let s = state
        .services
        .feedback
        .stats(&caller.scope, &thread_id(&t)?, &run_id(&r)?)
        .await?;
    Ok(Json(FeedbackStatsDto {
        run_id: s.run_id.into_inner(),
        total: s.total,
        positive: s.positive,
        negative: s.negative,
    }))
}

/// Delete one feedback row of this thread and run.
#[utoipa::path(delete, path = "/api/v1/threads/{thread_id}/runs/{run_id}/feedback/{feedback_id}", tag = "feedback", operation_id = "feedback_delete_one",
    params(("thread_id" = String, Path), ("run_id" = String, Path), ("feedback_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_one(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((t, r, f)): ApiPath<(String, String, String)>,
) -> ApiResult<StatusCode> {
    state
        .services
        .feedback
        .delete(
            &caller.scope,
            &thread_id(&t)?,
            &run_id(&r)?,
            uuid_id(&f, FeedbackId::parse)?,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
