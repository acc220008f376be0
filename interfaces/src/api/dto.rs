//! The REST API's response shapes. Domain types never go on the wire directly: these DTOs fix
//! the field names, render every timestamp as RFC 3339 UTC with microseconds and an explicit
//! `+00:00`, and carry the OpenAPI schemas.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map as JsonMap, Value as JsonValue, json};
use utoipa::ToSchema;
use waymark_domain::JsonObject;
use waymark_domain::branch::{Branch, Snapshot};
use waymark_domain::chat_stream::{ChatStreamRecord, ChatStreamSummary};
use waymark_domain::checkpoint::{CheckpointSummary, CheckpointTuple};
use waymark_domain::feedback::Feedback;
use waymark_domain::kv::Item;
use waymark_domain::run::{Run, RunList};
use waymark_domain::run_event::RunEvent;
use waymark_domain::session::{CheckpointPolicy, Session};
use waymark_domain::thread::Thread;
use waymark_domain::token_usage::{TokenStats, TokenUsage};

use crate::checkpointer::wire::version_json;
use crate::render;

/// RFC 3339, UTC, microseconds, `+00:00` (spec `history-and-streams.md` §0.1).
pub fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// A session's checkpoint policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyDto {
    /// Checkpoints kept per thread and namespace.
    pub max_checkpoints_per_thread: Option<u32>,
    /// Checkpoints older than this many seconds are removed.
    pub retention_seconds: Option<i64>,
    /// Checkpoints pinned by snapshots are kept.
    pub exempt_snapshots: bool,
}

impl From<&CheckpointPolicy> for PolicyDto {
    fn from(p: &CheckpointPolicy) -> Self {
        Self {
            max_checkpoints_per_thread: p.max_checkpoints_per_thread,
            retention_seconds: p.retention_seconds,
            exempt_snapshots: p.exempt_snapshots,
        }
    }
}

/// A session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDto {
    /// The id.
    pub session_id: String,
    /// The owner.
    pub owner: Option<String>,
    /// The title.
    pub title: Option<String>,
    /// Free-form metadata.
    #[schema(value_type = Object)]
    pub metadata: JsonObject,
    /// `active`, `archived` or `closed`.
    pub status: String,
    /// The checkpoint policy.
    pub checkpoint_policy: PolicyDto,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
}

impl From<Session> for SessionDto {
    fn from(s: Session) -> Self {
        Self {
            session_id: s.id.into_inner(),
            owner: s.owner.map(|o| o.into_inner()),
            title: s.title,
            metadata: s.metadata,
            status: s.status.as_str().to_owned(),
            checkpoint_policy: (&s.checkpoint_policy).into(),
            created_at: ts(s.created_at),
            updated_at: ts(s.updated_at),
        }
    }
}

/// A page of sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// The sessions.
    pub data: Vec<SessionDto>,
    /// More exist beyond this page.
    pub has_more: bool,
    /// The page size used.
    pub limit: u32,
    /// The offset used.
    pub offset: u64,
}

/// A thread.
#[derive(Debug, Serialize, ToSchema)]
pub struct ThreadDto {
    /// The id (LangGraph's `thread_id`).
    pub thread_id: String,
    /// The session holding it.
    pub session_id: Option<String>,
    /// The owner.
    pub owner: Option<String>,
    /// The assistant.
    pub assistant_id: Option<String>,
    /// The display name.
    pub display_name: Option<String>,
    /// The status: the stored one in lists and writes; on `GET /threads/{thread_id}` the
    /// reported one (`running` while a run is active, else derived from the latest
    /// checkpoint, spec §6.2).
    pub status: String,
    /// The stored status (what search filters on); only on `GET /threads/{thread_id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_status: Option<String>,
    /// Free-form metadata.
    #[schema(value_type = Object)]
    pub metadata: JsonObject,
    /// Pinned to the top of searches.
    pub pinned: bool,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
}

impl From<Thread> for ThreadDto {
    fn from(t: Thread) -> Self {
        let pinned = t.is_pinned();
        Self {
            thread_id: t.id.into_inner(),
            session_id: t.session_id.map(|s| s.into_inner()),
            owner: t.owner.map(|o| o.into_inner()),
            assistant_id: t.assistant_id,
            display_name: t.display_name,
            status: t.status.as_str().to_owned(),
            stored_status: None,
            metadata: t.metadata,
            pinned,
            created_at: ts(t.created_at),
            updated_at: ts(t.updated_at),
        }
    }
}

/// A page of threads.
#[derive(Debug, Serialize, ToSchema)]
pub struct ThreadList {
    /// The threads.
    pub data: Vec<ThreadDto>,
    /// More exist beyond this page.
    pub has_more: bool,
    /// The page size used.
    pub limit: u32,
    /// The offset used.
    pub offset: u64,
    /// Filter keys that were skipped because they are not `[A-Za-z0-9_-]+`.
    pub skipped_filter_keys: Vec<String>,
}

/// A branch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BranchDto {
    /// The id.
    pub branch_id: String,
    /// The name.
    pub name: String,
    /// The thread forked from.
    pub source_thread_id: String,
    /// The namespace of the fork point.
    pub source_checkpoint_ns: String,
    /// The fork point.
    pub source_checkpoint_id: String,
    /// The thread carrying the branch.
    pub thread_id: String,
    /// Metadata.
    #[schema(value_type = Object)]
    pub metadata: JsonObject,
    /// Created.
    pub created_at: String,
}

impl From<Branch> for BranchDto {
    fn from(b: Branch) -> Self {
        Self {
            branch_id: b.id.to_string(),
            name: b.name.to_string(),
            source_thread_id: b.source_thread_id.into_inner(),
            source_checkpoint_ns: b.source_namespace.into_inner(),
            source_checkpoint_id: b.source_checkpoint_id.into_inner(),
            thread_id: b.thread_id.into_inner(),
            metadata: b.metadata,
            created_at: ts(b.created_at),
        }
    }
}

/// A snapshot.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotDto {
    /// The id.
    pub snapshot_id: String,
    /// The thread.
    pub thread_id: String,
    /// The namespace of the pinned checkpoint.
    pub checkpoint_ns: String,
    /// The pinned checkpoint.
    pub checkpoint_id: String,
    /// The name.
    pub name: String,
    /// The description.
    pub description: Option<String>,
    /// `milestone` or `backup`.
    pub kind: String,
    /// Metadata.
    #[schema(value_type = Object)]
    pub metadata: JsonObject,
    /// Created.
    pub created_at: String,
}

impl From<Snapshot> for SnapshotDto {
    fn from(s: Snapshot) -> Self {
        Self {
            snapshot_id: s.id.to_string(),
            thread_id: s.thread_id.into_inner(),
            checkpoint_ns: s.namespace.into_inner(),
            checkpoint_id: s.checkpoint_id.into_inner(),
            name: s.name.to_string(),
            description: s.description,
            kind: s.kind.as_str().to_owned(),
            metadata: s.metadata,
            created_at: ts(s.created_at),
        }
    }
}

/// One checkpoint in a thread's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointEntry {
    /// The checkpoint.
    pub checkpoint_id: String,
    /// Its parent.
    pub parent_checkpoint_id: Option<String>,
    /// The namespace.
    pub checkpoint_ns: String,
    /// LangGraph's `ts`.
    pub ts: String,
    /// Metadata `step`.
    pub step: Option<i64>,
    /// Metadata `source` (`input`, `loop`, `update`, `fork`).
    pub source: Option<String>,
    /// Metadata `run_id`.
    pub run_id: Option<String>,
    /// Channels holding a value.
    pub channels: Vec<String>,
    /// Channels updated in this step.
    pub updated_channels: Option<Vec<String>>,
    /// How many pending writes it has.
    pub pending_writes: usize,
    /// The channels those writes target, in order.
    pub write_channels: Vec<String>,
    /// The full metadata.
    #[schema(value_type = Object)]
    pub metadata: JsonObject,
}

impl From<&CheckpointTuple> for CheckpointEntry {
    fn from(t: &CheckpointTuple) -> Self {
        Self {
            checkpoint_id: t.checkpoint.id.as_str().to_owned(),
            parent_checkpoint_id: t.parent_id.as_ref().map(|p| p.as_str().to_owned()),
            checkpoint_ns: t.namespace.as_str().to_owned(),
            ts: t.checkpoint.ts.clone(),
            step: t.metadata.step(),
            source: t.metadata.source().map(str::to_owned),
            run_id: t.metadata.run_id().map(str::to_owned),
            channels: t
                .checkpoint
                .channel_values
                .keys()
                .map(|k| k.as_str().to_owned())
                .collect(),
            updated_channels: t
                .checkpoint
                .updated_channels
                .as_ref()
                .map(|u| u.iter().map(|c| c.as_str().to_owned()).collect()),
            pending_writes: t.pending_writes.len(),
            write_channels: t
                .pending_writes
                .iter()
                .map(|w| w.channel.as_str().to_owned())
                .collect(),
            metadata: t.metadata.0.clone(),
        }
    }
}

/// A page of a thread's checkpoint history, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointHistory {
    /// The checkpoints.
    pub data: Vec<CheckpointEntry>,
    /// Older checkpoints exist.
    pub has_more: bool,
    /// Pass as `before` for the next page.
    pub next_before: Option<String>,
}

/// The state at one checkpoint: every channel decoded, the pending writes and interrupts.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointState {
    /// The thread.
    pub thread_id: String,
    /// The namespace.
    pub checkpoint_ns: String,
    /// The checkpoint.
    pub checkpoint_id: String,
    /// Its parent.
    pub parent_checkpoint_id: Option<String>,
    /// LangGraph's `ts`.
    pub ts: String,
    /// Format version.
    pub v: i64,
    /// Metadata `step`.
    pub step: Option<i64>,
    /// Metadata `source`.
    pub source: Option<String>,
    /// The metadata.
    #[schema(value_type = Object)]
    pub metadata: JsonObject,
    /// Channel versions, with their JSON type.
    #[schema(value_type = Object)]
    pub channel_versions: JsonObject,
    /// Channel -> `{type, bytes, value | decode_error, data?}`.
    #[schema(value_type = Object)]
    pub channels: JsonObject,
    /// The `messages` channel as LangChain message dicts, when it holds messages.
    #[schema(value_type = Option<Vec<Object>>)]
    pub messages: Option<Vec<JsonValue>>,
    /// Pending writes: `{task_id, task_path, channel, idx, type, bytes, value}`.
    #[schema(value_type = Vec<Object>)]
    pub pending_writes: Vec<JsonValue>,
    /// Decoded `__interrupt__` writes.
    #[schema(value_type = Vec<Object>)]
    pub interrupts: Vec<JsonValue>,
    /// Other top-level checkpoint keys, decoded.
    #[schema(value_type = Object)]
    pub extra: JsonObject,
}

impl CheckpointState {
    /// The state of a tuple; `raw` adds base64 payloads.
    pub fn of(t: &CheckpointTuple, raw: bool) -> Self {
        let channels: JsonMap<String, JsonValue> = t
            .checkpoint
            .channel_values
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), render::value_entry(v, raw)))
            .collect();
        let extra: JsonMap<String, JsonValue> = t
            .checkpoint
            .extra
            .iter()
            .map(|(k, v)| (k.clone(), render::value_entry(v, raw)))
            .collect();
        let versions: JsonMap<String, JsonValue> = t
            .checkpoint
            .channel_versions
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), version_json(v)))
            .collect();
        let mut writes = t.pending_writes.clone();
        waymark_domain::checkpoint::sort_pending_writes(&mut writes);
        let pending_writes = writes
            .iter()
            .map(|w| {
                let mut e = render::value_entry(&w.value, raw);
                if let JsonValue::Object(o) = &mut e {
                    o.insert("task_id".into(), json!(w.task_id.as_str()));
                    o.insert("task_path".into(), json!(w.task_path));
                    o.insert("channel".into(), json!(w.channel.as_str()));
                    o.insert("idx".into(), json!(w.idx));
                }
                e
            })
            .collect();
        Self {
            thread_id: t.thread_id.as_str().to_owned(),
            checkpoint_ns: t.namespace.as_str().to_owned(),
            checkpoint_id: t.checkpoint.id.as_str().to_owned(),
            parent_checkpoint_id: t.parent_id.as_ref().map(|p| p.as_str().to_owned()),
            ts: t.checkpoint.ts.clone(),
            v: t.checkpoint.v,
            step: t.metadata.step(),
            source: t.metadata.source().map(str::to_owned),
            metadata: t.metadata.0.clone(),
            channel_versions: versions,
            channels,
            messages: render::checkpoint_messages(t),
            pending_writes,
            interrupts: render::interrupts(t),
            extra,
        }
    }
}

/// Counts and sizes of a thread's checkpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryDto {
    /// Checkpoints, all namespaces.
    pub checkpoints: u64,
    /// Pending writes.
    pub writes: u64,
    /// Distinct namespaces.
    pub namespaces: u64,
    /// The smallest checkpoint id.
    pub oldest: Option<String>,
    /// The greatest checkpoint id.
    pub newest: Option<String>,
    /// Payload bytes, where the store can tell.
    pub stored_bytes: Option<u64>,
}

impl From<CheckpointSummary> for SummaryDto {
    fn from(s: CheckpointSummary) -> Self {
        Self {
            checkpoints: s.checkpoints,
            writes: s.writes,
            namespaces: s.namespaces,
            oldest: s.oldest.map(|c| c.into_inner()),
            newest: s.newest.map(|c| c.into_inner()),
            stored_bytes: s.stored_bytes,
        }
    }
}

/// A run event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDto {
    /// The thread.
    pub thread_id: String,
    /// The run.
    pub run_id: String,
    /// Per-thread sequence number.
    pub seq: i64,
    /// The event type.
    pub event_type: String,
    /// The category.
    pub category: String,
    /// The content (any JSON).
    #[schema(value_type = Object)]
    pub content: JsonValue,
    /// The metadata.
    #[schema(value_type = Object)]
    pub metadata: JsonObject,
    /// Captured.
    pub created_at: String,
    /// The owner.
    pub user_id: Option<String>,
}

impl From<RunEvent> for EventDto {
    fn from(e: RunEvent) -> Self {
        Self {
            thread_id: e.thread_id.into_inner(),
            run_id: e.run_id.into_inner(),
            seq: e.seq,
            event_type: e.event_type.into_inner(),
            category: e.category.into_inner(),
            content: e.content,
            metadata: e.metadata,
            created_at: ts(e.created_at),
            user_id: e.user_id.map(|u| u.into_inner()),
        }
    }
}

/// A page of message rows, ascending by seq.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    /// The rows.
    pub data: Vec<EventDto>,
    /// More rows exist in the paging direction.
    pub has_more: bool,
    /// Pass as `before_seq` for the older page (the first row's seq).
    pub next_before_seq: Option<i64>,
    /// Pass as `after_seq` for the newer page (the last row's seq).
    pub next_after_seq: Option<i64>,
}

/// Feedback on a run.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackDto {
    /// The id.
    pub feedback_id: String,
    /// The thread.
    pub thread_id: String,
    /// The run.
    pub run_id: String,
    /// The author; null for anonymous.
    pub user_id: Option<String>,
    /// The message it refers to.
    pub message_id: Option<String>,
    /// 1 or -1.
    pub rating: i64,
    /// The comment.
    pub comment: Option<String>,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
}

impl From<Feedback> for FeedbackDto {
    fn from(f: Feedback) -> Self {
        Self {
            feedback_id: f.id.to_string(),
            thread_id: f.thread_id.into_inner(),
            run_id: f.run_id.into_inner(),
            user_id: f.user_id.map(|u| u.into_inner()),
            message_id: f.message_id,
            rating: f.rating.value(),
            comment: f.comment,
            created_at: ts(f.created_at),
            updated_at: ts(f.updated_at),
        }
    }
}

/// A list of feedback rows.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackList {
    /// The rows, oldest first.
    pub data: Vec<FeedbackDto>,
    /// More rows exist.
    pub has_more: bool,
}

/// A run (spec §6.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct RunDto {
    /// The id.
    pub run_id: String,
    /// The thread.
    pub thread_id: String,
    /// The owner (the thread's).
    pub owner: Option<String>,
    /// `pending`, `running`, `success`, `error`, `timeout` or `interrupted`.
    pub status: String,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
    /// Latest start.
    pub started_at: Option<String>,
    /// When it ended.
    pub ended_at: Option<String>,
    /// Error text.
    pub error: Option<String>,
    /// Latest progress report.
    #[schema(value_type = Object)]
    pub progress: JsonObject,
    /// Metadata given at creation.
    #[schema(value_type = Object)]
    pub metadata: JsonObject,
    /// The lease holder while running.
    pub worker_id: Option<String>,
    /// When the lease lapses unless renewed.
    pub lease_expires_at: Option<String>,
    /// Starts so far.
    pub attempt: u32,
}

impl From<Run> for RunDto {
    fn from(r: Run) -> Self {
        let (worker_id, lease_expires_at) = match r.lease {
            Some(l) => (Some(l.worker_id.to_string()), Some(ts(l.expires_at))),
            None => (None, None),
        };
        Self {
            run_id: r.run_id.into_inner(),
            thread_id: r.thread_id.into_inner(),
            owner: r.owner.map(|o| o.into_inner()),
            status: r.status.as_str().to_owned(),
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
            started_at: r.started_at.map(ts),
            ended_at: r.ended_at.map(ts),
            error: r.error,
            progress: r.progress,
            metadata: r.metadata,
            worker_id,
            lease_expires_at,
            attempt: r.attempt,
        }
    }
}

/// A page of runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunListDto {
    /// The runs.
    pub data: Vec<RunDto>,
    /// Older runs exist beyond this page.
    pub has_more: bool,
    /// Pass as `cursor` for the next page; present exactly when `has_more`.
    pub next_cursor: Option<String>,
}

impl From<RunList> for RunListDto {
    fn from(l: RunList) -> Self {
        Self {
            data: l.items.into_iter().map(RunDto::from).collect(),
            has_more: l.has_more,
            next_cursor: l.next_cursor.map(|c| c.encode()),
        }
    }
}

/// A token-usage record.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenUsageDto {
    /// The id.
    pub id: String,
    /// The session.
    pub session_id: Option<String>,
    /// The thread.
    pub thread_id: Option<String>,
    /// The run.
    pub run_id: Option<String>,
    /// The owner.
    pub user_id: Option<String>,
    /// The model.
    pub model: String,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
    /// Recorded.
    pub recorded_at: String,
}

impl From<TokenUsage> for TokenUsageDto {
    fn from(u: TokenUsage) -> Self {
        Self {
            id: u.id.to_string(),
            session_id: u.session_id.map(|s| s.into_inner()),
            thread_id: u.thread_id.map(|s| s.into_inner()),
            run_id: u.run_id.map(|s| s.into_inner()),
            user_id: u.user_id.map(|s| s.into_inner()),
            model: u.model.into_inner(),
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens,
            recorded_at: ts(u.recorded_at),
        }
    }
}

/// Sums of one group of token-usage records.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenStatsDto {
    /// The group key (model, session or thread); null for the total.
    pub key: Option<String>,
    /// Records.
    pub records: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
}

impl From<TokenStats> for TokenStatsDto {
    fn from(s: TokenStats) -> Self {
        Self {
            key: s.key,
            records: s.records,
            prompt_tokens: s.prompt_tokens,
            completion_tokens: s.completion_tokens,
            total_tokens: s.total_tokens,
        }
    }
}

/// A persisted chat stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatStreamDto {
    /// The thread.
    pub thread_id: String,
    /// The owner.
    pub user_id: Option<String>,
    /// Every persisted frame, in order.
    pub frames: Vec<String>,
    /// Last append.
    pub ts: String,
    /// First append.
    pub created_at: String,
}

impl From<ChatStreamRecord> for ChatStreamDto {
    fn from(r: ChatStreamRecord) -> Self {
        Self {
            thread_id: r.thread_id.into_inner(),
            user_id: r.user_id.map(|u| u.into_inner()),
            frames: r.frames,
            ts: ts(r.ts),
            created_at: ts(r.created_at),
        }
    }
}

/// A line of the recent chat streams.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatStreamSummaryDto {
    /// The thread.
    pub thread_id: String,
    /// Last append.
    pub ts: String,
    /// Frames stored.
    pub frame_count: u64,
}

impl From<ChatStreamSummary> for ChatStreamSummaryDto {
    fn from(s: ChatStreamSummary) -> Self {
        Self {
            thread_id: s.thread_id.into_inner(),
            ts: ts(s.ts),
            frame_count: s.frame_count,
        }
    }
}

/// A key-value item.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemDto {
    /// The namespace labels (without the caller's user prefix).
    pub namespace: Vec<String>,
    /// The key.
    pub key: String,
    /// The value.
    #[schema(value_type = Object)]
    pub value: JsonObject,
    /// First written.
    pub created_at: String,
    /// Last written.
    pub updated_at: String,
    /// When it expires.
    pub expires_at: Option<String>,
}

impl ItemDto {
    /// The item with the first `strip` namespace labels (the user prefix) removed.
    pub fn of(item: Item, strip: usize) -> Self {
        Self {
            namespace: item.namespace.labels()[strip.min(item.namespace.labels().len())..].to_vec(),
            key: item.key.as_str().to_owned(),
            value: item.value,
            created_at: ts(item.created_at),
            updated_at: ts(item.updated_at),
            expires_at: item.expires_at.map(ts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_carry_an_explicit_utc_offset_and_microseconds() {
        let at = Utc.with_ymd_and_hms(2026, 8, 22, 9, 15, 2).unwrap();
        assert_eq!(ts(at), "2026-08-22T09:15:02.000000+00:00");
    }
}

/// How many rows a delete removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedCount {
    /// Rows removed.
    pub deleted: u64,
}

/// One row of the visible feed (spec §3.3).
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedItemDto {
    /// The row's seq.
    pub seq: i64,
    /// The run.
    #[schema(value_type = String)]
    pub run_id: waymark_domain::RunId,
    /// The event type.
    pub event_type: String,
    /// When it was captured (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// The enriched message copy.
    #[schema(value_type = Object)]
    pub message: JsonObject,
}

/// A page of the visible feed, oldest row first.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedPageDto {
    /// Rows in ascending seq order.
    pub data: Vec<FeedItemDto>,
    /// True when older visible rows exist.
    pub has_more: bool,
    /// The cursor for the next (older) page, when `has_more`.
    pub next_before_seq: Option<i64>,
}

impl From<waymark_application::thread_history::FeedPage> for FeedPageDto {
    fn from(p: waymark_application::thread_history::FeedPage) -> Self {
        Self {
            data: p
                .data
                .into_iter()
                .map(|i| FeedItemDto {
                    seq: i.seq,
                    run_id: i.run_id,
                    event_type: i.event_type,
                    created_at: i.created_at,
                    message: i.message,
                })
                .collect(),
            has_more: p.has_more,
            next_before_seq: p.next_before_seq,
        }
    }
}

/// A thread's full conversation (spec §3.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryDto {
    /// Messages in ascending order, each with `id`, `run_id` and (when feedback is available)
    /// `feedback` set.
    #[schema(value_type = Vec<Object>)]
    pub messages: Vec<JsonObject>,
    /// Where they came from: `event_store`, `checkpoint` or `empty`.
    #[schema(value_type = String)]
    pub source: HistorySourceDto,
    /// False when feedback was not configured or its lookup failed.
    pub feedback_attached: bool,
}

impl From<waymark_application::thread_history::ThreadHistory> for HistoryDto {
    fn from(h: waymark_application::thread_history::ThreadHistory) -> Self {
        Self {
            messages: h.messages,
            source: h.source.into(),
            feedback_attached: h.feedback_attached,
        }
    }
}

/// Where a thread's history came from, as the wire names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HistorySourceDto {
    /// The event store (the full transcript).
    EventStore,
    /// The latest checkpoint's `messages` channel.
    Checkpoint,
    /// Neither had messages.
    Empty,
}

impl HistorySourceDto {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EventStore => "event_store",
            Self::Checkpoint => "checkpoint",
            Self::Empty => "empty",
        }
    }
}

impl From<waymark_application::thread_history::HistorySource> for HistorySourceDto {
    fn from(s: waymark_application::thread_history::HistorySource) -> Self {
        use waymark_application::thread_history::HistorySource as S;
        match s {
            S::EventStore => Self::EventStore,
            S::Checkpoint => Self::Checkpoint,
            S::Empty => Self::Empty,
        }
    }
}

/// What recording one chat-stream frame did (`outcome` tells which).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum RecordOutcomeDto {
    /// The frame was buffered at this index.
    Buffered {
        /// The frame's chunk index.
        index: u64,
    },
    /// The frame was buffered and the buffer persisted.
    Persisted {
        /// The frame's chunk index before the persist.
        index: u64,
        /// Frames appended to the record.
        frames: usize,
        /// Frames the record holds now.
        record_frames: usize,
    },
}

impl From<waymark_application::chat_stream::RecordOutcome> for RecordOutcomeDto {
    fn from(o: waymark_application::chat_stream::RecordOutcome) -> Self {
        use waymark_application::chat_stream::RecordOutcome as O;
        match o {
            O::Buffered { index } => Self::Buffered { index },
            O::Persisted {
                index,
                frames,
                record_frames,
            } => Self::Persisted {
                index,
                frames,
                record_frames,
            },
        }
    }
}

/// What ending a chat stream persisted (`outcome` tells which).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum PersistOutcomeDto {
    /// Nothing was buffered.
    NothingToPersist,
    /// Frames were appended.
    Persisted {
        /// Frames appended.
        frames: usize,
        /// Frames the record holds now.
        record_frames: usize,
    },
}

impl From<waymark_application::chat_stream::PersistOutcome> for PersistOutcomeDto {
    fn from(o: waymark_application::chat_stream::PersistOutcome) -> Self {
        use waymark_application::chat_stream::PersistOutcome as O;
        match o {
            O::NothingToPersist => Self::NothingToPersist,
            O::Persisted {
                frames,
                record_frames,
            } => Self::Persisted {
                frames,
                record_frames,
            },
        }
    }
}

/// One message present on both sides of a diff with different content.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageChangeDto {
    /// The message id, or `#<position>` for id-less messages.
    pub key: String,
    /// The fields before.
    #[schema(value_type = Object)]
    pub before: JsonObject,
    /// The fields after.
    #[schema(value_type = Object)]
    pub after: JsonObject,
}

/// Messages added, removed and changed between two checkpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageDiffDto {
    /// In the newer checkpoint only.
    #[schema(value_type = Vec<Object>)]
    pub added: Vec<JsonObject>,
    /// In the older checkpoint only.
    #[schema(value_type = Vec<Object>)]
    pub removed: Vec<JsonObject>,
    /// On both sides, different.
    pub changed: Vec<MessageChangeDto>,
    /// On both sides, equal.
    pub unchanged: usize,
}

impl From<waymark_application::thread_checkpoints::MessageDiff> for MessageDiffDto {
    fn from(m: waymark_application::thread_checkpoints::MessageDiff) -> Self {
        Self {
            added: m.added,
            removed: m.removed,
            changed: m
                .changed
                .into_iter()
                .map(|x| MessageChangeDto {
                    key: x.key,
                    before: x.before,
                    after: x.after,
                })
                .collect(),
            unchanged: m.unchanged,
        }
    }
}

/// What changed in one channel between two checkpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelChangeDto {
    /// The channel.
    #[schema(value_type = String)]
    pub channel: waymark_domain::ChannelName,
    /// Its version in the older checkpoint (a string or an integer).
    #[schema(value_type = Option<serde_json::Value>)]
    pub from_version: Option<waymark_domain::checkpoint::ChannelVersion>,
    /// Its version in the newer checkpoint (a string or an integer).
    #[schema(value_type = Option<serde_json::Value>)]
    pub to_version: Option<waymark_domain::checkpoint::ChannelVersion>,
    /// Payload bytes before.
    pub from_bytes: usize,
    /// Payload bytes after.
    pub to_bytes: usize,
    /// True when the serializer tag changed too.
    pub type_changed: bool,
    /// Message-level changes, when the channel holds messages and both sides decoded.
    pub messages: Option<MessageDiffDto>,
    /// Why the channel could not be decoded, when decoding was tried and failed.
    pub decode_error: Option<String>,
}

/// The difference between two checkpoints of one thread and namespace.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointDiffDto {
    /// The older side.
    #[schema(value_type = String)]
    pub from: waymark_domain::CheckpointId,
    /// The newer side.
    #[schema(value_type = String)]
    pub to: waymark_domain::CheckpointId,
    /// Channels only in `to`.
    #[schema(value_type = Vec<String>)]
    pub added: Vec<waymark_domain::ChannelName>,
    /// Channels only in `from`.
    #[schema(value_type = Vec<String>)]
    pub removed: Vec<waymark_domain::ChannelName>,
    /// Channels in both whose tag or bytes differ.
    pub changed: Vec<ChannelChangeDto>,
    /// Channels in both with identical payloads.
    #[schema(value_type = Vec<String>)]
    pub unchanged: Vec<waymark_domain::ChannelName>,
}

impl From<waymark_application::thread_checkpoints::CheckpointDiff> for CheckpointDiffDto {
    fn from(d: waymark_application::thread_checkpoints::CheckpointDiff) -> Self {
        Self {
            from: d.from,
            to: d.to,
            added: d.added,
            removed: d.removed,
            changed: d
                .changed
                .into_iter()
                .map(|c| ChannelChangeDto {
                    channel: c.channel,
                    from_version: c.from_version,
                    to_version: c.to_version,
                    from_bytes: c.from_bytes,
                    to_bytes: c.to_bytes,
                    type_changed: c.type_changed,
                    messages: c.messages.map(MessageDiffDto::from),
                    decode_error: c.decode_error,
                })
                .collect(),
            unchanged: d.unchanged,
        }
    }
}

/// Counts and sizes of one thread's checkpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct ThreadSummaryFigures {
    /// Checkpoints, all namespaces.
    pub checkpoints: u64,
    /// Pending writes, all namespaces.
    pub writes: u64,
    /// Distinct namespaces.
    pub namespaces: u64,
    /// The smallest checkpoint id.
    #[schema(value_type = Option<String>)]
    pub oldest: Option<waymark_domain::CheckpointId>,
    /// The greatest checkpoint id.
    #[schema(value_type = Option<String>)]
    pub newest: Option<waymark_domain::CheckpointId>,
    /// Payload bytes the store holds for the thread, where it can tell.
    pub stored_bytes: Option<u64>,
}

impl From<CheckpointSummary> for ThreadSummaryFigures {
    fn from(s: CheckpointSummary) -> Self {
        Self {
            checkpoints: s.checkpoints,
            writes: s.writes,
            namespaces: s.namespaces,
            oldest: s.oldest,
            newest: s.newest,
            stored_bytes: s.stored_bytes,
        }
    }
}

/// Checkpoint figures of one thread of a session.
#[derive(Debug, Serialize, ToSchema)]
pub struct ThreadStatsDto {
    /// The thread.
    #[schema(value_type = String)]
    pub thread_id: waymark_domain::ThreadId,
    /// The store's summary, or null when reading it failed.
    pub summary: Option<ThreadSummaryFigures>,
    /// Why the summary is missing.
    pub error: Option<String>,
}

/// Checkpoint figures of a whole session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionStatsDto {
    /// The session.
    #[schema(value_type = String)]
    pub session_id: waymark_domain::SessionId,
    /// Threads in the session.
    pub threads: u64,
    /// Checkpoints across the threads whose summary could be read.
    pub checkpoints: u64,
    /// Pending writes across them.
    pub writes: u64,
    /// Payload bytes, when every summarized thread's store could tell.
    pub stored_bytes: Option<u64>,
    /// The oldest checkpoint id across the threads.
    #[schema(value_type = Option<String>)]
    pub oldest: Option<waymark_domain::CheckpointId>,
    /// The newest checkpoint id.
    #[schema(value_type = Option<String>)]
    pub newest: Option<waymark_domain::CheckpointId>,
    /// When the oldest checkpoint was taken, if its id carries a time (RFC 3339).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub oldest_at: Option<DateTime<Utc>>,
    /// When the newest was taken (RFC 3339).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub newest_at: Option<DateTime<Utc>>,
    /// Per-thread figures.
    pub per_thread: Vec<ThreadStatsDto>,
}

impl From<waymark_application::session_checkpoints::SessionCheckpointStats> for SessionStatsDto {
    fn from(s: waymark_application::session_checkpoints::SessionCheckpointStats) -> Self {
        Self {
            session_id: s.session_id,
            threads: s.threads,
            checkpoints: s.checkpoints,
            writes: s.writes,
            stored_bytes: s.stored_bytes,
            oldest: s.oldest,
            newest: s.newest,
            oldest_at: s.oldest_at,
            newest_at: s.newest_at,
            per_thread: s
                .per_thread
                .into_iter()
                .map(|t| ThreadStatsDto {
                    thread_id: t.thread_id,
                    summary: t.summary.map(Into::into),
                    error: t.error,
                })
                .collect(),
        }
    }
}

/// Checkpoints removed from one namespace.
#[derive(Debug, Serialize, ToSchema)]
pub struct RemovedCheckpointsDto {
    /// The namespace.
    #[schema(value_type = String)]
    pub namespace: waymark_domain::CheckpointNamespace,
    /// The removed ids, newest first.
    #[schema(value_type = Vec<String>)]
    pub checkpoint_ids: Vec<waymark_domain::CheckpointId>,
}

/// What applying the policy did to one thread.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionOutcomeDto {
    /// The thread.
    #[schema(value_type = String)]
    pub thread_id: waymark_domain::ThreadId,
    /// What was removed, per namespace.
    pub removed: Vec<RemovedCheckpointsDto>,
    /// Checkpoints selected but kept because a snapshot pins them.
    pub kept_pinned: usize,
    /// Checkpoints kept because their age could not be determined.
    pub kept_undated: usize,
    /// Snapshots deleted with their checkpoint.
    #[schema(value_type = Vec<String>)]
    pub snapshots_removed: Vec<waymark_domain::SnapshotId>,
    /// The failure that stopped this thread's cleanup part-way, if any.
    pub error: Option<String>,
}

/// What applying the checkpoint policy did across a session.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyReportDto {
    /// The session.
    #[schema(value_type = String)]
    pub session_id: waymark_domain::SessionId,
    /// The policy applied.
    pub policy: PolicyDto,
    /// One entry per thread, in processing order.
    pub threads: Vec<RetentionOutcomeDto>,
}

impl From<waymark_application::session_checkpoints::PolicyReport> for PolicyReportDto {
    fn from(r: waymark_application::session_checkpoints::PolicyReport) -> Self {
        Self {
            session_id: r.session_id,
            policy: PolicyDto::from(&r.policy),
            threads: r
                .threads
                .into_iter()
                .map(|t| RetentionOutcomeDto {
                    thread_id: t.thread_id,
                    removed: t
                        .removed
                        .into_iter()
                        .map(|r| RemovedCheckpointsDto {
                            namespace: r.namespace,
                            checkpoint_ids: r.checkpoint_ids,
                        })
                        .collect(),
                    kept_pinned: t.kept_pinned,
                    kept_undated: t.kept_undated,
                    snapshots_removed: t.snapshots_removed,
                    error: t.error.map(|e| e.to_string()),
                })
                .collect(),
        }
    }
}
