//! Messages and run events of a thread (spec `history-and-streams.md` §1, §3) and chat streams
//! (§5).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as JsonValue;
use utoipa::{IntoParams, ToSchema};
use waymark_application::Access;
use waymark_domain::paging::{Limit, SeqPage};
use waymark_domain::run_event::{EventQuery, NewRunEvent, RunEvent};
use waymark_domain::{EventCategory, EventType, JsonObject};

use super::dto::{
    ChatStreamDto, ChatStreamSummaryDto, DeletedCount, EventDto, FeedPageDto, HistoryDto,
    MessagePage, PersistOutcomeDto, RecordOutcomeDto,
};
use super::{run_id, thread_id};
use crate::http::caller::Caller;
use crate::http::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::state::AppState;

/// The largest message page.
pub const MAX_MESSAGE_PAGE: u32 = 500;

/// Cursor paging of message rows.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MessagesQuery {
    /// Rows with a smaller seq (older), newest of them.
    pub before_seq: Option<i64>,
    /// Rows with a greater seq (newer), oldest of them.
    pub after_seq: Option<i64>,
    /// Page size, 1-500 (default 50).
    pub limit: Option<u32>,
}

/// Builds a message page from `limit + 1` rows fetched for `page` (spec §1.4): for the newest
/// and backward pages the extra row is the oldest and is dropped from the front; forward, the
/// newest, dropped from the end.
pub fn message_page(mut rows: Vec<RunEvent>, page: SeqPage, limit: u32) -> MessagePage {
    let limit = limit as usize;
    let has_more = rows.len() > limit;
    if has_more {
        match page {
            SeqPage::After(..) => rows.truncate(limit),
            SeqPage::Latest(_) | SeqPage::Before(..) => {
                rows.drain(..rows.len() - limit);
            }
        }
    }
    let first = rows.first().map(|r| r.seq);
    let last = rows.last().map(|r| r.seq);
    MessagePage {
        data: rows.into_iter().map(EventDto::from).collect(),
        has_more,
        next_before_seq: first,
        next_after_seq: last,
    }
}

fn seq_page(q: &MessagesQuery) -> ApiResult<(SeqPage, u32)> {
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_MESSAGE_PAGE {
        return Err(ApiError::bad_request(format!(
            "invalid limit: is {limit}; a page holds 1 to {MAX_MESSAGE_PAGE} rows"
        )));
    }
    // One more row than asked proves whether more exist.
    Ok((
        SeqPage::from_cursors(q.before_seq, q.after_seq, limit + 1)?,
        limit,
    ))
}

/// A thread's message rows (the event store's `message` category), ascending by seq.
#[utoipa::path(get, path = "/api/v1/threads/{thread_id}/messages", tag = "messages", operation_id = "messages_thread_messages",
    params(("thread_id" = String, Path), MessagesQuery),
    responses((status = 200, body = MessagePage), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn thread_messages(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<MessagesQuery>,
) -> ApiResult<Json<MessagePage>> {
    let (page, limit) = seq_page(&q)?;
    let rows = state
        .services
        .history
        .messages(&caller.scope, &thread_id(&id)?, page)
        .await?;
    Ok(Json(message_page(rows, page, limit)))
}

/// One run's message rows.
#[utoipa::path(get, path = "/api/v1/threads/{thread_id}/runs/{run_id}/messages", tag = "messages", operation_id = "messages_run_messages",
    params(("thread_id" = String, Path), ("run_id" = String, Path), MessagesQuery),
    responses((status = 200, body = MessagePage), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn run_messages(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, run)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<MessagesQuery>,
) -> ApiResult<Json<MessagePage>> {
    let (page, limit) = seq_page(&q)?;
    let thread = thread_id(&id)?;
    let run = run_id(&run)?;
    state
        .services
        .threads
        .ensure_access(&caller.scope, &thread, Access::Read)
        .await?;
    let rows = state
        .services
        .stores
        .run_events
        .list_messages_by_run(&caller.scope, &thread, &run, page)
        .await?;
    Ok(Json(message_page(rows, page, limit)))
}

/// The full conversation, safe against summarization (spec §3.2): read from the event store,
/// falling back to the latest checkpoint's messages; feedback attached per run.
#[utoipa::path(get, path = "/api/v1/threads/{thread_id}/history", tag = "messages", operation_id = "messages_history",
    params(("thread_id" = String, Path)),
    responses((status = 200, body = HistoryDto), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope, description = "the latest checkpoint's messages cannot be decoded (`undecodable_messages`)")))]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<HistoryDto>> {
    let h = state
        .services
        .thread_history
        .history(&caller.scope, &thread_id(&id)?)
        .await?;
    Ok(Json(h.into()))
}

/// Backward paging of the visible feed.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Only rows older than this seq.
    pub before_seq: Option<i64>,
    /// Refused: the feed pages backwards only.
    pub after_seq: Option<i64>,
    /// Page size, 1-200 (default 50).
    pub limit: Option<u32>,
}

/// The UI's visible message feed, paged backwards (spec §3.3).
#[utoipa::path(get, path = "/api/v1/threads/{thread_id}/feed", tag = "messages", operation_id = "messages_feed",
    params(("thread_id" = String, Path), FeedQuery),
    responses((status = 200, body = FeedPageDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn feed(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<FeedQuery>,
) -> ApiResult<Json<FeedPageDto>> {
    if q.after_seq.is_some() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "forward_cursor_refused",
            "the feed pages backwards only; use before_seq",
        ));
    }
    let page = state
        .services
        .thread_history
        .feed_page(
            &caller.scope,
            &thread_id(&id)?,
            q.before_seq,
            q.limit.unwrap_or(50),
        )
        .await?;
    Ok(Json(page.into()))
}

/// An event to append.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// The run.
    pub run_id: String,
    /// The event type, e.g. `llm.ai.response` (at most 32 characters).
    pub event_type: String,
    /// The category, e.g. `message` or `trace` (at most 16 characters).
    pub category: String,
    /// Any JSON (default `""`).
    #[schema(value_type = Option<Object>)]
    pub content: Option<JsonValue>,
    /// A JSON object (default `{}`).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<JsonObject>,
    /// Capture time (RFC 3339); the time of the write when absent.
    pub created_at: Option<DateTime<Utc>>,
}

/// `POST /threads/{thread_id}/events`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendEvents {
    /// Events in order; they get contiguous seqs in one transaction.
    pub events: Vec<EventIn>,
}

/// The appended events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    /// The events, ascending by seq.
    pub data: Vec<EventDto>,
    /// More events exist after these.
    pub has_more: bool,
    /// Pass as `after_seq` for the next page.
    pub next_after_seq: Option<i64>,
}

/// The largest batch one request appends.
pub const MAX_EVENT_BATCH: usize = 1000;

/// Append run events to a thread (all or none); the first write claims the thread id.
#[utoipa::path(post, path = "/api/v1/threads/{thread_id}/events", tag = "events", operation_id = "messages_append_events",
    params(("thread_id" = String, Path)), request_body = AppendEvents,
    responses((status = 201, body = EventList), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn append_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AppendEvents>,
) -> ApiResult<Response> {
    let thread = thread_id(&id)?;
    if body.events.len() > MAX_EVENT_BATCH {
        return Err(ApiError::bad_request(format!(
            "invalid events: {} in one request; at most {MAX_EVENT_BATCH}",
            body.events.len()
        )));
    }
    let mut events = Vec::with_capacity(body.events.len());
    for e in body.events {
        let mut ev = NewRunEvent::new(
            thread.clone(),
            run_id(&e.run_id)?,
            EventType::parse(e.event_type)?,
            EventCategory::parse(e.category)?,
        );
        if let Some(c) = e.content {
            ev = ev.with_content(c);
        }
        if let Some(m) = e.metadata {
            ev = ev.with_metadata(m);
        }
        ev.created_at = e.created_at;
        events.push(ev);
    }
    waymark_domain::run_event::validate_batch(&events)?;
    if events.is_empty() {
        // Nothing to write: only the access check, no claim.
        state
            .services
            .threads
            .ensure_access(&caller.scope, &thread, Access::Read)
            .await?;
    } else {
        state.services.threads.claim(&caller.scope, &thread).await?;
    }
    let stored = state
        .services
        .stores
        .run_events
        .put_batch(&caller.scope, events)
        .await?;
    let last = stored.last().map(|e| e.seq);
    let body = EventList {
        data: stored.into_iter().map(EventDto::from).collect(),
        has_more: false,
        next_after_seq: last,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Filters of a run's events.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunEventsQuery {
    /// Comma-separated event types.
    pub event_types: Option<String>,
    /// Only events whose `metadata.task_id` equals this.
    pub task_id: Option<String>,
    /// Only events after this seq.
    pub after_seq: Option<i64>,
    /// Page size, 1-5000 (default 500).
    pub limit: Option<u32>,
}

/// Every event of one run, ascending by seq.
#[utoipa::path(get, path = "/api/v1/threads/{thread_id}/runs/{run_id}/events", tag = "events", operation_id = "messages_run_events",
    params(("thread_id" = String, Path), ("run_id" = String, Path), RunEventsQuery),
    responses((status = 200, body = EventList), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn run_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, run)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<RunEventsQuery>,
) -> ApiResult<Json<EventList>> {
    let thread = thread_id(&id)?;
    let run = run_id(&run)?;
    let limit = q.limit.unwrap_or(500);
    if limit == 0 || limit > 5000 {
        return Err(ApiError::bad_request(format!(
            "invalid limit: is {limit}; a page holds 1 to 5000 events"
        )));
    }
    let event_types = q
        .event_types
        .as_deref()
        .map(|s| {
            s.split(',')
                .map(|t| EventType::parse(t.trim()))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let query = EventQuery {
        thread_id: thread.clone(),
        run_id: run,
        event_types,
        task_id: q.task_id,
        after_seq: q.after_seq,
        limit: Limit::new(limit + 1)?,
    };
    state
        .services
        .threads
        .ensure_access(&caller.scope, &thread, Access::Read)
        .await?;
    let mut rows = state
        .services
        .stores
        .run_events
        .list_events(&caller.scope, &query)
        .await?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let last = rows.last().map(|e| e.seq);
    Ok(Json(EventList {
        data: rows.into_iter().map(EventDto::from).collect(),
        has_more,
        next_after_seq: last,
    }))
}

/// Delete every event of a run.
#[utoipa::path(delete, path = "/api/v1/threads/{thread_id}/runs/{run_id}/events", tag = "events", operation_id = "messages_delete_run_events",
    params(("thread_id" = String, Path), ("run_id" = String, Path)),
    responses((status = 200, body = DeletedCount), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_run_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, run)): ApiPath<(String, String)>,
) -> ApiResult<Json<DeletedCount>> {
    let thread = thread_id(&id)?;
    let run = run_id(&run)?;
    state
        .services
        .threads
        .ensure_access(&caller.scope, &thread, Access::Write)
        .await?;
    let n = state
        .services
        .stores
        .run_events
        .delete_by_run(&caller.scope, &thread, &run)
        .await?;
    Ok(Json(DeletedCount { deleted: n as u64 }))
}

/// How many recent chat streams.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamsQuery {
    /// 1-100 (default 10).
    pub limit: Option<u32>,
}

/// The most recently appended chat streams.
#[utoipa::path(get, path = "/api/v1/messages/streams", tag = "chat streams", operation_id = "messages_list_streams", params(StreamsQuery),
    responses((status = 200, body = Vec<ChatStreamSummaryDto>), (status = 400, body = ErrorEnvelope)))]
pub async fn list_streams(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<StreamsQuery>,
) -> ApiResult<Json<Vec<ChatStreamSummaryDto>>> {
    let limit = q.limit.unwrap_or(10);
    if limit == 0 || limit > 100 {
        return Err(ApiError::bad_request(format!(
            "invalid limit: is {limit}; list 1 to 100 streams"
        )));
    }
    let rows = state
        .services
        .chat_streams
        .list_recent(&caller.scope, limit)
        .await?;
    Ok(Json(
        rows.into_iter().map(ChatStreamSummaryDto::from).collect(),
    ))
}

/// A thread's persisted chat stream.
#[utoipa::path(get, path = "/api/v1/messages/streams/{thread_id}", tag = "chat streams", operation_id = "messages_get_stream",
    params(("thread_id" = String, Path)),
    responses((status = 200, body = ChatStreamDto), (status = 404, body = ErrorEnvelope)))]
pub async fn get_stream(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ChatStreamDto>> {
    let thread = thread_id(&id)?;
    state
        .services
        .threads
        .ensure_access(&caller.scope, &thread, Access::Read)
        .await?;
    match state
        .services
        .chat_streams
        .get_history(&caller.scope, &thread)
        .await?
    {
        Some(r) => Ok(Json(r.into())),
        None => Err(ApiError::not_found(format!(
            "no chat stream for thread {thread}"
        ))),
    }
}

/// Delete a thread's chat stream and its buffer.
#[utoipa::path(delete, path = "/api/v1/messages/streams/{thread_id}", tag = "chat streams", operation_id = "messages_delete_stream",
    params(("thread_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_stream(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let thread = thread_id(&id)?;
    state
        .services
        .threads
        .ensure_access(&caller.scope, &thread, Access::Read)
        .await?;
    if state
        .services
        .chat_streams
        .delete(&caller.scope, &thread)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "no chat stream for thread {thread}"
        )))
    }
}

/// `POST /messages/streams/{thread_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FrameIn {
    /// The frame (typically one SSE event), non-empty.
    pub frame: String,
    /// `stop` or `interrupt` persist the buffer; anything else only buffers.
    pub finish_reason: Option<String>,
}

/// Record one outgoing frame of a thread's stream.
#[utoipa::path(post, path = "/api/v1/messages/streams/{thread_id}", tag = "chat streams", operation_id = "messages_record_frame",
    params(("thread_id" = String, Path)), request_body = FrameIn,
    responses((status = 200, body = RecordOutcomeDto), (status = 400, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn record_frame(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<FrameIn>,
) -> ApiResult<Json<RecordOutcomeDto>> {
    let thread = thread_id(&id)?;
    // Bad input writes nothing, not even the thread claim.
    waymark_domain::chat_stream::validate_frames(std::slice::from_ref(&body.frame))?;
    state.services.threads.claim(&caller.scope, &thread).await?;
    let outcome = state
        .services
        .chat_streams
        .record(
            &caller.scope,
            &thread,
            body.frame,
            body.finish_reason.as_deref().unwrap_or(""),
        )
        .await?;
    state.services.note_streamed(&thread, &caller.scope);
    Ok(Json(outcome.into()))
}

/// Persist whatever the thread has buffered (frames after the last stop).
#[utoipa::path(post, path = "/api/v1/messages/streams/{thread_id}/end", tag = "chat streams", operation_id = "messages_end_stream",
    params(("thread_id" = String, Path)),
    responses((status = 200, body = PersistOutcomeDto), (status = 404, body = ErrorEnvelope)))]
pub async fn end_stream(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<PersistOutcomeDto>> {
    let thread = thread_id(&id)?;
    state
        .services
        .threads
        .ensure_access(&caller.scope, &thread, Access::Read)
        .await?;
    let outcome = state
        .services
        .chat_streams
        .end_stream(&caller.scope, &thread)
        .await?;
    Ok(Json(outcome.into()))
}
