//! `/api/v1/token-usage`: recording model calls and aggregating their token counts.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use waymark_application::history::UsageReport;
use waymark_domain::ModelName;
use waymark_domain::token_usage::{TokenGrouping, TokenUsageFilter};

use super::dto::{TokenStatsDto, TokenUsageDto};
use super::{run_id, session_id, thread_id};
use crate::http::caller::Caller;
use crate::http::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::state::AppState;

/// `POST /token-usage`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageIn {
    /// The model.
    pub model: String,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Total as reported (0 or absent: prompt + completion).
    pub total_tokens: Option<u64>,
    /// The session (taken from the thread when absent).
    pub session_id: Option<String>,
    /// The thread.
    pub thread_id: Option<String>,
    /// The run.
    pub run_id: Option<String>,
}

/// Filters and grouping of `GET /token-usage/stats`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// `total` (default), `model`, `session` or `thread`.
    pub group_by: Option<String>,
    /// Only this session.
    pub session_id: Option<String>,
    /// Only this thread.
    pub thread_id: Option<String>,
    /// Only this run.
    pub run_id: Option<String>,
    /// Only this model.
    pub model: Option<String>,
    /// Recorded at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Recorded before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

/// Record the tokens of one model call, owned by the caller.
#[utoipa::path(post, path = "/api/v1/token-usage", tag = "token usage", operation_id = "token_usage_record", request_body = UsageIn,
    responses((status = 201, body = TokenUsageDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn record(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UsageIn>,
) -> ApiResult<Response> {
    let report = UsageReport {
        session_id: body.session_id.as_deref().map(session_id).transpose()?,
        thread_id: body.thread_id.as_deref().map(thread_id).transpose()?,
        run_id: body.run_id.as_deref().map(run_id).transpose()?,
        model: Some(ModelName::parse(body.model)?),
        prompt_tokens: body.prompt_tokens,
        completion_tokens: body.completion_tokens,
        total_tokens: body.total_tokens.unwrap_or(0),
    };
    if let Some(session) = &report.session_id {
        // Another user's session reads exactly like a missing one.
        state.services.sessions.get(&caller.scope, session).await?;
    }
    let u = state
        .services
        .history
        .record_token_usage(&caller.scope, report)
        .await?;
    Ok((StatusCode::CREATED, Json(TokenUsageDto::from(u))).into_response())
}

/// Token sums of the caller's records, grouped.
#[utoipa::path(get, path = "/api/v1/token-usage/stats", tag = "token usage", operation_id = "token_usage_stats", params(StatsQuery),
    responses((status = 200, body = Vec<TokenStatsDto>), (status = 400, body = ErrorEnvelope)))]
pub async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<Json<Vec<TokenStatsDto>>> {
    let grouping = match q.group_by.as_deref().unwrap_or("total") {
        "total" => TokenGrouping::Total,
        "model" => TokenGrouping::Model,
        "session" => TokenGrouping::Session,
        "thread" => TokenGrouping::Thread,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid group_by: {other:?}; use total, model, session or thread"
            )));
        }
    };
    let filter = TokenUsageFilter {
        session_id: q.session_id.as_deref().map(session_id).transpose()?,
        thread_id: q.thread_id.as_deref().map(thread_id).transpose()?,
        run_id: q.run_id.as_deref().map(run_id).transpose()?,
        model: q.model.map(ModelName::parse).transpose()?,
        user_id: None,
        from: q.from,
        to: q.to,
    };
    let rows = state
        .services
        .history
        .token_stats(&caller.scope, filter, grouping)
        .await?;
    Ok(Json(rows.into_iter().map(TokenStatsDto::from).collect()))
}
