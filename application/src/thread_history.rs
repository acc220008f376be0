//! Summarization-safe thread history (spec §3): the conversation is read from the append-only
//! event store, which summarization never rewrites, and only falls back to the checkpoint's
//! `messages` channel when the store has nothing for the thread.
//!
//! Every returned message is a copy (spec §0.3): ids are patched, legacy `Command` texts
//! sanitized, `run_id` and `feedback` attached on the copy, never on a stored record.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use waymark_domain::checkpoint::CheckpointRepository;
use waymark_domain::feedback::{Feedback, FeedbackRepository};
use waymark_domain::paging::{Limit, SeqPage};
use waymark_domain::run_event::{RunEvent, RunEventRepository};
use waymark_domain::thread::ThreadRepository;
use waymark_domain::{
    ChannelName, CheckpointNamespace, JsonObject, JsonValue, RunId, Stores, ThreadId, UserScope,
};

use crate::access::{Access, ensure};
use crate::codec::MessageCodec;
use crate::error::{AppResult, ApplicationError};
use crate::thread_checkpoints::MESSAGES_CHANNEL;

/// Rows per page of the forward scan (spec §1.4).
pub const SCAN_PAGE: u32 = 500;
/// Rows per backward batch of the feed scan (DeerFlow's legacy feed scans 201).
pub const FEED_SCAN_BATCH: u32 = 201;
/// The largest feed page.
pub const MAX_FEED_LIMIT: u32 = 200;

/// The text of `uuid.NAMESPACE_URL`, the namespace of stable message ids.
pub const NAMESPACE_URL: uuid::Uuid = uuid::Uuid::NAMESPACE_URL;

/// Where the history came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistorySource {
    /// The event store (the full transcript).
    EventStore,
    /// The latest checkpoint's `messages` channel (the event store had nothing).
    Checkpoint,
    /// Neither had messages (or the checkpoint could not be decoded).
    Empty,
}

/// A thread's conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadHistory {
    /// Messages in ascending order; each is a copy with `id`, `run_id` and (when feedback is
    /// available) `feedback` set.
    pub messages: Vec<JsonObject>,
    /// Where they came from.
    pub source: HistorySource,
    /// False when feedback was not configured or its lookup failed (no message then has a
    /// `feedback` key).
    pub feedback_attached: bool,
}

/// One row of the visible feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedItem {
    /// The row's seq.
    pub seq: i64,
    /// The run.
    pub run_id: RunId,
    /// The event type.
    pub event_type: String,
    /// When it was captured.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The enriched message copy.
    pub message: JsonObject,
}

/// A page of the visible feed (spec §3.3).
#[derive(Debug, Clone, PartialEq)]
pub struct FeedPage {
    /// Rows in ascending seq order.
    pub data: Vec<FeedItem>,
    /// True when older visible rows exist.
    pub has_more: bool,
    /// The cursor for the next (older) page: the seq of the first row, when `has_more`.
    pub next_before_seq: Option<i64>,
}

/// Reads thread history.
#[derive(Clone)]
pub struct ThreadHistoryService {
    threads: Arc<dyn ThreadRepository>,
    events: Arc<dyn RunEventRepository>,
    checkpoints: Arc<dyn CheckpointRepository>,
    feedback: Option<Arc<dyn FeedbackRepository>>,
    codec: Option<Arc<dyn MessageCodec>>,
}

impl std::fmt::Debug for ThreadHistoryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadHistoryService")
            .field("feedback", &self.feedback.is_some())
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl ThreadHistoryService {
    /// A reader without feedback or codec.
    pub fn new(
        threads: Arc<dyn ThreadRepository>,
        events: Arc<dyn RunEventRepository>,
        checkpoints: Arc<dyn CheckpointRepository>,
    ) -> Self {
        Self {
            threads,
            events,
            checkpoints,
            feedback: None,
            codec: None,
        }
    }

    /// A reader over a deployment's stores, with feedback.
    pub fn from_stores(stores: &Stores) -> Self {
        Self::new(
            stores.threads.clone(),
            stores.run_events.clone(),
            stores.checkpoints.clone(),
        )
        .with_feedback(stores.feedback.clone())
    }

    /// Attaches feedback to the last visible AI message of each run.
    pub fn with_feedback(mut self, feedback: Arc<dyn FeedbackRepository>) -> Self {
        self.feedback = Some(feedback);
        self
    }

    /// Decodes the checkpoint fallback's `messages` channel.
    pub fn with_codec(mut self, codec: Arc<dyn MessageCodec>) -> Self {
        self.codec = Some(codec);
        self
    }

    /// The thread's whole conversation (spec §3.2).
    pub async fn history(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
    ) -> AppResult<ThreadHistory> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        let count = match self.events.count_messages(scope, thread_id).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(%thread_id, error = %e, "event store unavailable; history falls back to the checkpoint");
                0
            }
        };
        if count == 0 {
            return self.checkpoint_history(thread_id).await;
        }
        let rows = self.scan_all(scope, thread_id).await?;
        let rows: Vec<&RunEvent> = rows.iter().filter(|r| is_message_row(r)).collect();
        let targets = feedback_targets(rows.iter().copied());
        let feedback = self
            .load_feedback(scope, thread_id, !targets.is_empty())
            .await;
        let messages = rows
            .into_iter()
            .map(|r| enrich(thread_id, r, &targets, feedback.as_ref()))
            .collect();
        Ok(ThreadHistory {
            messages,
            source: HistorySource::EventStore,
            feedback_attached: feedback.is_some(),
        })
    }

    /// Every message row, by forward pages of 500 until a short page (spec §1.4). A page that
    /// does not advance the cursor is a storage fault and raises instead of looping.
    async fn scan_all(&self, scope: &UserScope, thread_id: &ThreadId) -> AppResult<Vec<RunEvent>> {
        let limit = Limit::new(SCAN_PAGE)?;
        let mut out = Vec::new();
        let mut cursor = 0i64;
        loop {
            let page = self
                .events
                .list_messages(scope, thread_id, SeqPage::After(cursor, limit))
                .await?;
            let Some(last) = page.last().map(|r| r.seq) else {
                break;
            };
            if last <= cursor {
                let e = ApplicationError::StalledScan {
                    thread_id: thread_id.clone(),
                    cursor,
                    last_seq: last,
                };
                tracing::error!(error = %e, "event store returned a non-advancing page");
                return Err(e);
            }
            let short = page.len() < SCAN_PAGE as usize;
            out.extend(page);
            cursor = last;
            if short {
                break;
            }
        }
        Ok(out)
    }

    /// The latest root checkpoint's messages, through the codec.
    async fn checkpoint_history(&self, thread_id: &ThreadId) -> AppResult<ThreadHistory> {
        let empty = ThreadHistory {
            messages: Vec::new(),
            source: HistorySource::Empty,
            feedback_attached: false,
        };
        let Some(tuple) = self
            .checkpoints
            .get_tuple(thread_id, &CheckpointNamespace::root(), None)
            .await?
        else {
            return Ok(empty);
        };
        let channel = ChannelName::parse(MESSAGES_CHANNEL)?;
        let Some(value) = tuple.checkpoint.channel_values.get(&channel) else {
            return Ok(empty);
        };
        let Some(codec) = &self.codec else {
            tracing::warn!(%thread_id, "no message codec configured; checkpoint messages cannot be read");
            return Ok(empty);
        };
        let decoded = codec
            .decode_messages(value)
            .map_err(ApplicationError::Codec)?;
        if decoded.is_empty() {
            return Ok(empty);
        }
        Ok(ThreadHistory {
            messages: decoded.into_iter().map(|m| m.into_fields()).collect(),
            source: HistorySource::Checkpoint,
            feedback_attached: false,
        })
    }

    /// Feedback by run, or `None` when not configured, not needed, or the lookup failed.
    async fn load_feedback(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        needed: bool,
    ) -> Option<HashMap<RunId, Feedback>> {
        let repo = self.feedback.as_ref()?;
        if !needed {
            // No AI message to carry it: no query, and the key stays off.
            return None;
        }
        match repo.list_by_thread_grouped(scope, thread_id).await {
            Ok(map) => Some(map),
            Err(e) => {
                tracing::warn!(%thread_id, error = %e, "feedback lookup failed; history is returned without feedback");
                None
            }
        }
    }

    /// One page of the visible feed, backwards from `before_seq` (spec §3.3). Hidden rows
    /// (middleware, subagent AI messages, rows without a message object) are skipped before
    /// the page is filled, scanning on in batches until `limit + 1` visible rows are found or
    /// the thread is exhausted.
    pub async fn feed_page(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        before_seq: Option<i64>,
        limit: u32,
    ) -> AppResult<FeedPage> {
        if limit == 0 || limit > MAX_FEED_LIMIT {
            return Err(ApplicationError::invalid(
                "limit",
                format!("is {limit}; a feed page holds 1 to {MAX_FEED_LIMIT} rows"),
            ));
        }
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        let batch = Limit::new(FEED_SCAN_BATCH)?;
        let want = limit as usize + 1;
        let mut visible: Vec<RunEvent> = Vec::new(); // newest first
        let mut cursor = before_seq;
        loop {
            let page = match cursor {
                Some(c) => SeqPage::Before(c, batch),
                None => SeqPage::Latest(batch),
            };
            let rows = self.events.list_messages(scope, thread_id, page).await?;
            let Some(first) = rows.first().map(|r| r.seq) else {
                break;
            };
            if cursor.is_some_and(|c| first >= c) {
                return Err(ApplicationError::StalledScan {
                    thread_id: thread_id.clone(),
                    cursor: cursor.unwrap_or_default(),
                    last_seq: first,
                });
            }
            let exhausted = rows.len() < FEED_SCAN_BATCH as usize;
            for r in rows.into_iter().rev() {
                if visible.len() < want && is_feed_visible(&r) {
                    visible.push(r);
                }
            }
            cursor = Some(first);
            if visible.len() >= want || exhausted {
                break;
            }
        }
        let has_more = visible.len() > limit as usize;
        visible.truncate(limit as usize);
        visible.reverse();

        let candidates = feedback_targets(visible.iter());
        let (targets, feedback) = match &self.feedback {
            Some(repo) if !candidates.is_empty() => {
                let runs: Vec<RunId> = candidates.keys().cloned().collect();
                let lookup = async {
                    let mut targets = HashMap::new();
                    for (run, seq) in &candidates {
                        if !self.displayed_ai_after(scope, thread_id, run, *seq).await? {
                            targets.insert(run.clone(), *seq);
                        }
                    }
                    let fb = repo.list_by_run_ids(scope, thread_id, runs).await?;
                    Ok::<_, ApplicationError>((targets, fb))
                };
                match lookup.await {
                    Ok((targets, fb)) => (targets, Some(fb)),
                    Err(e) => {
                        tracing::warn!(%thread_id, error = %e, "feedback lookup failed; feed page is returned without feedback");
                        (HashMap::new(), None)
                    }
                }
            }
            _ => (HashMap::new(), None),
        };
        let next_before_seq = if has_more {
            visible.first().map(|r| r.seq)
        } else {
            None
        };
        let data = visible
            .iter()
            .map(|r| FeedItem {
                seq: r.seq,
                run_id: r.run_id.clone(),
                event_type: r.event_type.as_str().to_owned(),
                created_at: r.created_at,
                message: enrich(thread_id, r, &targets, feedback.as_ref()),
            })
            .collect();
        Ok(FeedPage {
            data,
            has_more,
            next_before_seq,
        })
    }
}

impl ThreadHistoryService {
    /// Whether the run has a displayed AI message after `seq` (on a newer page), in which
    /// case the run's feedback belongs there and not on this page.
    async fn displayed_ai_after(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        seq: i64,
    ) -> AppResult<bool> {
        let limit = Limit::new(SCAN_PAGE)?;
        let mut cursor = seq;
        loop {
            let rows = self
                .events
                .list_messages_by_run(scope, thread_id, run_id, SeqPage::After(cursor, limit))
                .await?;
            if rows.iter().any(is_displayed_ai) {
                return Ok(true);
            }
            match rows.last() {
                Some(last) if last.seq > cursor && rows.len() == SCAN_PAGE as usize => {
                    cursor = last.seq;
                }
                Some(last) if last.seq <= cursor => {
                    return Err(ApplicationError::StalledScan {
                        thread_id: thread_id.clone(),
                        cursor,
                        last_seq: last.seq,
                    });
                }
                _ => return Ok(false),
            }
        }
    }
}

/// True when the row's content is a message object (has a `type`).
fn is_message_row(r: &RunEvent) -> bool {
    r.content
        .as_object()
        .is_some_and(|o| o.contains_key("type"))
}

fn caller(r: &RunEvent) -> &str {
    r.metadata
        .get("caller")
        .and_then(JsonValue::as_str)
        .unwrap_or("")
}

/// An AI message the UI displays: visible per the store's rule and not a subagent's
/// (Waymark rule §3.5).
fn is_displayed_ai(r: &RunEvent) -> bool {
    r.is_visible_ai_message() && !caller(r).starts_with("subagent")
}

/// Whether the feed shows the row: message objects, minus middleware rows and subagent AI
/// rows (a subagent's root `task` tool result stays visible).
fn is_feed_visible(r: &RunEvent) -> bool {
    if !is_message_row(r) {
        return false;
    }
    let et = r.event_type.as_str();
    if et.starts_with("middleware") || caller(r).starts_with("middleware:") {
        return false;
    }
    let is_ai = et == waymark_domain::run_event::AI_RESPONSE_EVENT
        || et == waymark_domain::run_event::LEGACY_AI_MESSAGE_EVENT;
    !(is_ai && caller(r).starts_with("subagent"))
}

/// For each run, the seq of its last displayed AI message.
fn feedback_targets<'a>(rows: impl Iterator<Item = &'a RunEvent>) -> HashMap<RunId, i64> {
    let mut out = HashMap::new();
    for r in rows {
        if is_displayed_ai(r) {
            let e = out.entry(r.run_id.clone()).or_insert(r.seq);
            if r.seq > *e {
                *e = r.seq;
            }
        }
    }
    out
}

/// The stable id of an id-less message: `uuid5(NAMESPACE_URL, "{thread_id}:{seq}")`.
pub fn stable_message_id(thread_id: &ThreadId, seq: i64) -> String {
    uuid::Uuid::new_v5(&NAMESPACE_URL, format!("{thread_id}:{seq}").as_bytes()).to_string()
}

/// A copy of the row's message with id, sanitized content, run id and feedback.
fn enrich(
    thread_id: &ThreadId,
    row: &RunEvent,
    targets: &HashMap<RunId, i64>,
    feedback: Option<&HashMap<RunId, Feedback>>,
) -> JsonObject {
    let mut m = row.content.as_object().cloned().unwrap_or_default();
    let has_id = m.get("id").is_some_and(|v| !v.is_null());
    if !has_id {
        m.insert("id".into(), json!(stable_message_id(thread_id, row.seq)));
    }
    if m.get("type").and_then(JsonValue::as_str) == Some("tool")
        && let Some(text) = m.get("content").and_then(JsonValue::as_str)
        && let Some(clean) = sanitize_command_repr(text)
    {
        m.insert("content".into(), json!(clean));
    }
    m.insert("run_id".into(), json!(row.run_id.as_str()));
    if let Some(fb) = feedback
        && targets.get(&row.run_id) == Some(&row.seq)
    {
        let value = match fb.get(&row.run_id) {
            Some(f) => json!({
                "feedback_id": f.id.to_string(),
                "rating": f.rating.value(),
                "comment": f.comment,
            }),
            None => JsonValue::Null,
        };
        m.insert("feedback".into(), value);
    }
    m
}

/// The tool text inside a legacy `Command(update=...)` representation (spec §3.4), or `None`
/// when the text is not one or the inner text cannot be found.
pub fn sanitize_command_repr(text: &str) -> Option<String> {
    if !text.starts_with("Command(update=") {
        return None;
    }
    const MARK: &str = "ToolMessage(content=";
    let mut from = 0;
    while let Some(pos) = text[from..].find(MARK) {
        let start = from + pos + MARK.len();
        let rest = &text[start..];
        if let Some(q) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') {
            let body = &rest[1..];
            return body.find(q).map(|end| body[..end].to_owned());
        }
        from = start;
    }
    None
}

#[cfg(test)]
mod tests;
