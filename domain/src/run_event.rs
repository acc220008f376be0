//! The append-only run-event log of a thread (spec `history-and-streams.md` §1).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};
use crate::ids::{EventCategory, EventType, RunId, ThreadId, UserId};
use crate::json::{JsonObject, JsonValue, check_json, check_json_object};
use crate::paging::{Limit, SeqPage};
use crate::scope::UserScope;

/// The canonical AI-message event type.
pub const AI_RESPONSE_EVENT: &str = "llm.ai.response";
/// The legacy read-only alias of [`AI_RESPONSE_EVENT`].
pub const LEGACY_AI_MESSAGE_EVENT: &str = "ai_message";
/// Event types that a run records at most once (`put_if_absent`, partial unique index).
pub const SINGLETON_EVENT_TYPES: [&str; 1] = ["run.delivery"];
/// The default trace-content limit in bytes (spec §1.6).
pub const DEFAULT_MAX_TRACE_CONTENT: usize = 10_240;

/// A stored event: the full envelope of spec §1.1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    /// The thread.
    pub thread_id: ThreadId,
    /// The run.
    pub run_id: RunId,
    /// Per-thread sequence number, from 1, strictly increasing, never reused.
    pub seq: i64,
    /// The event type.
    pub event_type: EventType,
    /// The category.
    pub category: EventCategory,
    /// Any JSON value.
    pub content: JsonValue,
    /// A JSON object.
    pub metadata: JsonObject,
    /// When it was captured (UTC, microseconds).
    pub created_at: DateTime<Utc>,
    /// The owner.
    pub user_id: Option<UserId>,
}

impl RunEvent {
    /// True for an AI message row (canonical or legacy name) not produced by middleware
    /// (spec §1.3 `last_visible_ai_seq_by_run`).
    pub fn is_visible_ai_message(&self) -> bool {
        let et = self.event_type.as_str();
        self.category.is_message()
            && (et == AI_RESPONSE_EVENT || et == LEGACY_AI_MESSAGE_EVENT)
            && !self
                .metadata
                .get("caller")
                .and_then(JsonValue::as_str)
                .is_some_and(|c| c.starts_with("middleware:"))
    }
}

/// An event to append; the store assigns `seq` and stamps the owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRunEvent {
    /// The thread.
    pub thread_id: ThreadId,
    /// The run.
    pub run_id: RunId,
    /// The event type.
    pub event_type: EventType,
    /// The category.
    pub category: EventCategory,
    /// Content (default `""`).
    pub content: JsonValue,
    /// Metadata (default `{}`).
    pub metadata: JsonObject,
    /// Capture time; `None` means the time of `put`.
    pub created_at: Option<DateTime<Utc>>,
}

impl NewRunEvent {
    /// An event with empty content and metadata.
    pub fn new(
        thread_id: ThreadId,
        run_id: RunId,
        event_type: EventType,
        category: EventCategory,
    ) -> Self {
        Self {
            thread_id,
            run_id,
            event_type,
            category,
            content: JsonValue::String(String::new()),
            metadata: JsonObject::new(),
            created_at: None,
        }
    }

    /// Sets the content.
    pub fn with_content(mut self, content: JsonValue) -> Self {
        self.content = content;
        self
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: JsonObject) -> Self {
        self.metadata = metadata;
        self
    }

    /// Applies the trace-truncation rule (spec §1.6) in place: only `trace` content longer
    /// than `max_bytes` is cut, on a character boundary, with the original length recorded.
    pub fn truncate_trace(&mut self, max_bytes: usize) {
        if !self.category.is_trace() {
            return;
        }
        let text = match &self.content {
            JsonValue::String(s) => s.clone(),
            other => other.to_string(),
        };
        if text.len() <= max_bytes {
            return;
        }
        let mut cut = max_bytes;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        self.metadata
            .insert("content_truncated".into(), JsonValue::Bool(true));
        self.metadata.insert(
            "original_byte_length".into(),
            JsonValue::from(text.len() as u64),
        );
        self.content = JsonValue::String(text[..cut].to_owned());
    }
}

/// Checks a batch: non-empty events must all share one thread (spec §1.3).
pub fn validate_batch(events: &[NewRunEvent]) -> DomainResult<()> {
    if let Some(first) = events.first()
        && let Some(other) = events.iter().find(|e| e.thread_id != first.thread_id)
    {
        return Err(DomainError::invalid(
            "thread_id",
            format!(
                "a batch belongs to one thread; found {} and {}",
                first.thread_id, other.thread_id
            ),
        ));
    }
    Ok(())
}

/// The rules every store applies before appending a batch: [`validate_batch`], then no U+0000
/// in any event's `content` or `metadata`; afterwards each event gets the trace-truncation rule
/// ([`NewRunEvent::truncate_trace`]) with the store's `max_trace_content`. Runs before anything
/// is written, so a refused batch writes nothing.
pub fn prepare_batch(events: &mut [NewRunEvent], max_trace_content: usize) -> DomainResult<()> {
    validate_batch(events)?;
    for e in events.iter_mut() {
        check_json("content", &e.content)?;
        check_json_object("metadata", &e.metadata)?;
        e.truncate_trace(max_trace_content);
    }
    Ok(())
}

/// `list_events` arguments (spec §1.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventQuery {
    /// The thread.
    pub thread_id: ThreadId,
    /// The run.
    pub run_id: RunId,
    /// Only these event types (applied before the limit).
    pub event_types: Option<Vec<EventType>>,
    /// Only events whose `metadata.task_id` equals this (applied before the limit).
    pub task_id: Option<String>,
    /// Only events with a greater seq.
    pub after_seq: Option<i64>,
    /// At most this many, oldest first (default 500).
    pub limit: Limit,
}

impl EventQuery {
    /// Every event of a run, first page of 500.
    pub fn run(thread_id: ThreadId, run_id: RunId) -> Self {
        Self {
            thread_id,
            run_id,
            event_types: None,
            task_id: None,
            after_seq: None,
            limit: Limit::new(500).expect("500 is a valid limit"),
        }
    }
}

/// The run-event port. Seq allocation is per thread, serialized across writers (and across
/// processes on SQL backends), contiguous within a batch, and never reused after deletes.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait RunEventRepository: Send + Sync {
    /// Appends one event and returns the stored record.
    async fn put(&self, scope: &UserScope, event: NewRunEvent) -> DomainResult<RunEvent>;

    /// Appends events of one thread with contiguous seqs in one transaction; each keeps its
    /// own run id. An empty batch returns `[]` without touching storage.
    async fn put_batch(
        &self,
        scope: &UserScope,
        events: Vec<NewRunEvent>,
    ) -> DomainResult<Vec<RunEvent>>;

    /// Appends unless the run already has an event of this type: `(record, created)`.
    async fn put_if_absent(
        &self,
        scope: &UserScope,
        event: NewRunEvent,
    ) -> DomainResult<(RunEvent, bool)>;

    /// Message rows of the thread, ascending by seq, per the page.
    async fn list_messages(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        page: SeqPage,
    ) -> DomainResult<Vec<RunEvent>>;

    /// Message rows of one run, ascending by seq, per the page.
    async fn list_messages_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        page: SeqPage,
    ) -> DomainResult<Vec<RunEvent>>;

    /// Events of every category of one run, ascending.
    async fn list_events(
        &self,
        scope: &UserScope,
        query: &EventQuery,
    ) -> DomainResult<Vec<RunEvent>>;

    /// The number of message rows of the thread.
    async fn count_messages(&self, scope: &UserScope, thread_id: &ThreadId) -> DomainResult<u64>;

    /// For each run, the greatest seq of a visible AI message (spec §1.3); runs without one
    /// are absent.
    async fn last_visible_ai_seq_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_ids: Vec<RunId>,
    ) -> DomainResult<HashMap<RunId, i64>>;

    /// Deletes every event of the thread; returns the count.
    async fn delete_by_thread(&self, scope: &UserScope, thread_id: &ThreadId) -> DomainResult<u64>;

    /// Deletes every event of the run; returns the count.
    async fn delete_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
    ) -> DomainResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(category: &str, content: JsonValue) -> NewRunEvent {
        NewRunEvent::new(
            ThreadId::parse("t").unwrap(),
            RunId::parse("r").unwrap(),
            EventType::parse("x").unwrap(),
            EventCategory::parse(category).unwrap(),
        )
        .with_content(content)
    }

    #[test]
    fn prepare_batch_checks_thread_and_nul_then_truncates_traces() {
        let mut ok = vec![
            ev("trace", json!("a".repeat(20))),
            ev("message", json!({"k": "v"})),
        ];
        prepare_batch(&mut ok, 10).unwrap();
        assert_eq!(ok[0].content, json!("a".repeat(10)));
        assert_eq!(ok[1].content, json!({"k": "v"}));

        let mut nul_content = vec![ev("message", json!(["x\u{0}"]))];
        assert!(matches!(
            prepare_batch(&mut nul_content, 10),
            Err(DomainError::InvalidInput {
                field: "content",
                ..
            })
        ));

        let mut meta = JsonObject::new();
        meta.insert("k\u{0}".into(), json!(1));
        let mut nul_meta = vec![ev("message", json!("x")).with_metadata(meta)];
        assert!(matches!(
            prepare_batch(&mut nul_meta, 10),
            Err(DomainError::InvalidInput {
                field: "metadata",
                ..
            })
        ));

        let mut other = ev("message", json!("x"));
        other.thread_id = ThreadId::parse("t-2").unwrap();
        let mut mixed = vec![ev("message", json!("x")), other];
        assert!(matches!(
            prepare_batch(&mut mixed, 10),
            Err(DomainError::InvalidInput {
                field: "thread_id",
                ..
            })
        ));
    }

    #[test]
    fn trace_truncation_cuts_on_char_boundary_and_records_length() {
        let mut e = ev("trace", json!("a".repeat(150)));
        e.truncate_trace(100);
        assert_eq!(e.content.as_str().unwrap().len(), 100);
        assert_eq!(e.metadata["content_truncated"], json!(true));
        assert_eq!(e.metadata["original_byte_length"], json!(150));

        let mut m = ev("message", json!("a".repeat(150)));
        m.truncate_trace(100);
        assert_eq!(m.content.as_str().unwrap().len(), 150);
        assert!(m.metadata.is_empty());

        let mut accents = ev("trace", json!("é".repeat(60)));
        accents.truncate_trace(100);
        assert_eq!(accents.content, json!("é".repeat(50)));

        let mut obj = ev("trace", json!({"k": "v".repeat(200)}));
        obj.truncate_trace(100);
        assert!(obj.content.is_string());
    }

    #[test]
    fn batches_must_share_a_thread() {
        let a = ev("message", json!(""));
        let mut b = a.clone();
        b.thread_id = ThreadId::parse("other").unwrap();
        assert!(validate_batch(&[a.clone(), a.clone()]).is_ok());
        assert!(validate_batch(&[]).is_ok());
        assert!(validate_batch(&[a, b]).unwrap_err().is_invalid_input());
    }

    #[test]
    fn visible_ai_message_excludes_middleware_callers() {
        let mk = |et: &str, caller: Option<&str>| RunEvent {
            thread_id: ThreadId::parse("t").unwrap(),
            run_id: RunId::parse("r").unwrap(),
            seq: 1,
            event_type: EventType::parse(et).unwrap(),
            category: EventCategory::parse("message").unwrap(),
            content: json!({}),
            metadata: caller
                .map(|c| json!({"caller": c}).as_object().unwrap().clone())
                .unwrap_or_default(),
            created_at: Utc::now(),
            user_id: None,
        };
        assert!(mk("llm.ai.response", None).is_visible_ai_message());
        assert!(mk("ai_message", Some("lead_agent")).is_visible_ai_message());
        assert!(!mk("llm.ai.response", Some("middleware:summarize")).is_visible_ai_message());
        assert!(!mk("llm.human.input", None).is_visible_ai_message());
    }
}
