//! Moving data between backends: the JSON-lines export format, reading every record out of a
//! [`Stores`], writing records into one, and verifying a copied thread.
//!
//! The format is one JSON object per line with a `kind` tag. Checkpoints use the remote
//! protocol's shapes (payload bytes in base64 with their serializer tag), so every checkpoint,
//! pending write and value round-trips byte for byte between any two backends, LangGraph
//! layouts included. What the ports cannot carry is stated, not hidden:
//!
//! * creation and update times of sessions, threads, feedback and items are set by the target
//!   store (the ports stamp them), and run-event seqs are reassigned by the target (they stay
//!   in order, and equal when the source's seqs were contiguous from 1);
//! * token-usage records have no listing port, so they are not exported;
//! * run events are found through the thread's message rows: events of runs that wrote no
//!   message row are not found (the event port lists events per run only).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map as JsonMap, Value as JsonValue};
use waymark_domain::branch::{Branch, Snapshot, SnapshotKind};
use waymark_domain::checkpoint::{
    ChannelVersions, CheckpointMetadata, CheckpointPut, CheckpointQuery, CheckpointRef,
    CheckpointTuple, PendingWrite, TypedValue, WriteBatch, is_special_write_channel,
};
use waymark_domain::feedback::{NewFeedback, Rating};
use waymark_domain::kv::{ItemNamespace, ItemSearch};
use waymark_domain::paging::{Limit, OffsetPage, SeqPage};
use waymark_domain::run_event::{EventQuery, NewRunEvent};
use waymark_domain::session::{CheckpointPolicy, Session, SessionQuery, SessionStatus};
use waymark_domain::thread::{NewThread, ThreadFilter, ThreadQuery, ThreadStatus, ThreadUpdate};
use waymark_domain::{
    BranchId, ChannelName, CheckpointId, CheckpointNamespace, DomainError, DomainResult,
    EventCategory, EventType, ItemKey, JsonObject, Name, RunId, SessionId, SnapshotId, Stores,
    TaskId, ThreadId, UserId, UserScope,
};

use crate::checkpointer::wire;

/// The format name in the header line.
pub const FORMAT: &str = "waymark-export";
/// The format version.
pub const FORMAT_VERSION: u32 = 1;

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// The first line.
    Header {
        /// Always [`FORMAT`].
        format: String,
        /// [`FORMAT_VERSION`].
        version: u32,
        /// The source URL, password redacted.
        source: String,
        /// When the export started.
        exported_at: String,
    },
    /// A session.
    Session(SessionRecord),
    /// A thread record.
    Thread(ThreadRecord),
    /// A checkpoint (protocol shapes).
    Checkpoint(CheckpointRecord),
    /// The pending writes of one task on one checkpoint.
    Writes(WritesRecord),
    /// A run event.
    Event(EventRecord),
    /// A feedback row.
    Feedback(FeedbackRecord),
    /// A persisted chat stream.
    ChatStream(ChatStreamRecord),
    /// A branch record.
    Branch(BranchRecord),
    /// A snapshot record.
    Snapshot(SnapshotRecord),
    /// A key-value item.
    Item(ItemRecord),
}

/// A session line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The id.
    pub session_id: String,
    /// The owner.
    pub owner: Option<String>,
    /// The title.
    pub title: Option<String>,
    /// Metadata.
    pub metadata: JsonObject,
    /// Status text.
    pub status: String,
    /// Policy: keep at most.
    pub max_checkpoints_per_thread: Option<u32>,
    /// Policy: retention.
    pub retention_seconds: Option<i64>,
    /// Policy: snapshots exempt.
    pub exempt_snapshots: bool,
}

/// A thread line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadRecord {
    /// The id.
    pub thread_id: String,
    /// The session.
    pub session_id: Option<String>,
    /// The owner.
    pub owner: Option<String>,
    /// The assistant.
    pub assistant_id: Option<String>,
    /// The display name.
    pub display_name: Option<String>,
    /// Status text.
    pub status: String,
    /// Metadata.
    pub metadata: JsonObject,
}

/// A checkpoint line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointRecord {
    /// The thread.
    pub thread_id: String,
    /// The namespace.
    pub checkpoint_ns: String,
    /// The parent.
    pub parent_checkpoint_id: Option<String>,
    /// The checkpoint in the protocol's shape (values base64).
    pub checkpoint: JsonMap<String, JsonValue>,
    /// The stored metadata.
    pub metadata: JsonObject,
}

/// One write of a writes line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteEntry {
    /// The channel.
    pub channel: String,
    /// The stored index.
    pub idx: i64,
    /// `{type, data}`.
    pub value: JsonValue,
}

/// A writes line: one task's pending writes on one checkpoint, by index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WritesRecord {
    /// The thread.
    pub thread_id: String,
    /// The namespace.
    pub checkpoint_ns: String,
    /// The checkpoint.
    pub checkpoint_id: String,
    /// The task.
    pub task_id: String,
    /// The task path.
    pub task_path: String,
    /// The writes, ascending by index.
    pub writes: Vec<WriteEntry>,
}

/// A run-event line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// The thread.
    pub thread_id: String,
    /// The run.
    pub run_id: String,
    /// The source seq (informational; the target assigns its own).
    pub seq: i64,
    /// The type.
    pub event_type: String,
    /// The category.
    pub category: String,
    /// The content.
    pub content: JsonValue,
    /// The metadata.
    pub metadata: JsonObject,
    /// Capture time.
    pub created_at: DateTime<Utc>,
    /// The owner.
    pub user_id: Option<String>,
}

/// A feedback line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    /// The thread.
    pub thread_id: String,
    /// The run.
    pub run_id: String,
    /// The author.
    pub user_id: Option<String>,
    /// The message.
    pub message_id: Option<String>,
    /// 1 or -1.
    pub rating: i64,
    /// The comment.
    pub comment: Option<String>,
}

/// A chat-stream line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatStreamRecord {
    /// The thread.
    pub thread_id: String,
    /// The owner.
    pub user_id: Option<String>,
    /// The frames.
    pub frames: Vec<String>,
}

/// A branch line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BranchRecord {
    /// The id.
    pub branch_id: String,
    /// The name.
    pub name: String,
    /// The source thread.
    pub source_thread_id: String,
    /// The fork point's namespace.
    pub source_checkpoint_ns: String,
    /// The fork point.
    pub source_checkpoint_id: String,
    /// The branch's thread.
    pub thread_id: String,
    /// Metadata.
    pub metadata: JsonObject,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// A snapshot line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// The id.
    pub snapshot_id: String,
    /// The thread.
    pub thread_id: String,
    /// The namespace.
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
    pub metadata: JsonObject,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// An item line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// The namespace labels.
    pub namespace: Vec<String>,
    /// The key.
    pub key: String,
    /// The value.
    pub value: JsonObject,
    /// The expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> DomainError {
    DomainError::invalid("record", format!("{what}: {e}"))
}

fn scope_of(owner: &Option<String>) -> DomainResult<UserScope> {
    Ok(match owner {
        Some(u) => UserScope::User(UserId::parse(u.clone())?),
        None => UserScope::Unscoped,
    })
}

const PAGE: u32 = 500;

/// Reads every record out of a set of stores (unscoped).
pub struct Exporter<'a> {
    stores: &'a Stores,
}

impl<'a> Exporter<'a> {
    /// An exporter over `stores`.
    pub fn new(stores: &'a Stores) -> Self {
        Self { stores }
    }

    /// Sessions and key-value items (records that belong to no thread).
    pub async fn global_records(&self) -> DomainResult<Vec<Record>> {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let page = self
                .stores
                .sessions
                .list(
                    &UserScope::Unscoped,
                    &SessionQuery {
                        status: None,
                        page: OffsetPage::new(PAGE, offset)?,
                    },
                )
                .await?;
            offset += page.items.len() as u64;
            for s in page.items {
                out.push(Record::Session(SessionRecord {
                    session_id: s.id.into_inner(),
                    owner: s.owner.map(UserId::into_inner),
                    title: s.title,
                    metadata: s.metadata,
                    status: s.status.as_str().to_owned(),
                    max_checkpoints_per_thread: s.checkpoint_policy.max_checkpoints_per_thread,
                    retention_seconds: s.checkpoint_policy.retention_seconds,
                    exempt_snapshots: s.checkpoint_policy.exempt_snapshots,
                }));
            }
            if !page.has_more {
                break;
            }
        }
        let mut offset = 0;
        loop {
            let items = self
                .stores
                .items
                .search(&ItemSearch {
                    prefix: Vec::new(),
                    filter: JsonObject::new(),
                    limit: Limit::new(PAGE)?,
                    offset,
                })
                .await?;
            let n = items.len();
            offset += n as u64;
            for i in items {
                out.push(Record::Item(ItemRecord {
                    namespace: i.namespace.labels().to_vec(),
                    key: i.key.into_inner(),
                    value: i.value,
                    expires_at: i.expires_at,
                }));
            }
            if n < PAGE as usize {
                break;
            }
        }
        Ok(out)
    }

    /// Every thread id: thread records, and threads that only have checkpoints (a LangGraph
    /// database has no thread records). Reads every checkpoint once to find the latter.
    pub async fn thread_ids(&self) -> DomainResult<Vec<ThreadId>> {
        let mut ids = BTreeSet::new();
        let mut offset = 0;
        loop {
            let page = self
                .stores
                .threads
                .search(
                    &UserScope::Unscoped,
                    &ThreadQuery {
                        filter: ThreadFilter::default(),
                        status: None,
                        session_id: None,
                        page: OffsetPage::new(PAGE, offset)?,
                    },
                )
                .await?;
            offset += page.items.len() as u64;
            ids.extend(page.items.into_iter().map(|t| t.id));
            if !page.has_more {
                break;
            }
        }
        for t in self
            .stores
            .checkpoints
            .list(&CheckpointQuery::default())
            .await?
        {
            ids.insert(t.thread_id);
        }
        Ok(ids.into_iter().collect())
    }

    /// Everything held for one thread, in an order an importer can apply: the thread record,
    /// checkpoints oldest first with their writes, events, feedback, chat stream, branches,
    /// snapshots.
    pub async fn thread_records(&self, thread: &ThreadId) -> DomainResult<Vec<Record>> {
        let scope = UserScope::Unscoped;
        let mut out = Vec::new();
        if let Some(t) = self.stores.threads.get(&scope, thread).await? {
            out.push(Record::Thread(ThreadRecord {
                thread_id: t.id.into_inner(),
                session_id: t.session_id.map(SessionId::into_inner),
                owner: t.owner.map(UserId::into_inner),
                assistant_id: t.assistant_id,
                display_name: t.display_name,
                status: t.status.as_str().to_owned(),
                metadata: t.metadata,
            }));
        }
        let mut tuples = self
            .stores
            .checkpoints
            .list(&CheckpointQuery::thread(thread.clone()))
            .await?;
        tuples.reverse();
        for t in &tuples {
            out.extend(checkpoint_records(t));
        }
        // Run events: runs are discovered through the message rows.
        let mut runs = BTreeSet::new();
        let mut cursor = 0;
        loop {
            let page = self
                .stores
                .run_events
                .list_messages(&scope, thread, SeqPage::After(cursor, Limit::new(PAGE)?))
                .await?;
            let Some(last) = page.last().map(|e| e.seq) else {
                break;
            };
            if last <= cursor {
                return Err(DomainError::storage(
                    "export.run_events",
                    format!("message page after seq {cursor} did not advance"),
                ));
            }
            runs.extend(page.iter().map(|e| e.run_id.clone()));
            cursor = last;
            if page.len() < PAGE as usize {
                break;
            }
        }
        let mut events = Vec::new();
        for run in &runs {
            let mut after = None;
            loop {
                let mut q = EventQuery::run(thread.clone(), run.clone());
                q.after_seq = after;
                q.limit = Limit::new(PAGE)?;
                let page = self.stores.run_events.list_events(&scope, &q).await?;
                let n = page.len();
                after = page.last().map(|e| e.seq);
                events.extend(page);
                if n < PAGE as usize {
                    break;
                }
            }
        }
        events.sort_by_key(|e| e.seq);
        for e in events {
            out.push(Record::Event(EventRecord {
                thread_id: e.thread_id.into_inner(),
                run_id: e.run_id.into_inner(),
                seq: e.seq,
                event_type: e.event_type.into_inner(),
                category: e.category.into_inner(),
                content: e.content,
                metadata: e.metadata,
                created_at: e.created_at,
                user_id: e.user_id.map(UserId::into_inner),
            }));
        }
        let feedback = self
            .stores
            .feedback
            .list_by_thread(&scope, thread, Limit::new(Limit::MAX)?)
            .await?;
        if feedback.has_more {
            return Err(DomainError::invalid(
                "feedback",
                format!(
                    "thread {thread} has more than {} feedback rows; the feedback port cannot page further",
                    Limit::MAX
                ),
            ));
        }
        for f in feedback.items {
            out.push(Record::Feedback(FeedbackRecord {
                thread_id: f.thread_id.into_inner(),
                run_id: f.run_id.into_inner(),
                user_id: f.user_id.map(UserId::into_inner),
                message_id: f.message_id,
                rating: f.rating.value(),
                comment: f.comment,
            }));
        }
        if let Some(c) = self.stores.chat_streams.get(&scope, thread).await? {
            out.push(Record::ChatStream(ChatStreamRecord {
                thread_id: c.thread_id.into_inner(),
                user_id: c.user_id.map(UserId::into_inner),
                frames: c.frames,
            }));
        }
        for b in self.stores.branches.list_for_thread(thread).await? {
            out.push(Record::Branch(BranchRecord {
                branch_id: b.id.to_string(),
                name: b.name.to_string(),
                source_thread_id: b.source_thread_id.into_inner(),
                source_checkpoint_ns: b.source_namespace.into_inner(),
                source_checkpoint_id: b.source_checkpoint_id.into_inner(),
                thread_id: b.thread_id.into_inner(),
                metadata: b.metadata,
                created_at: b.created_at,
            }));
        }
        for s in self.stores.snapshots.list_for_thread(thread).await? {
            out.push(Record::Snapshot(SnapshotRecord {
                snapshot_id: s.id.to_string(),
                thread_id: s.thread_id.into_inner(),
                checkpoint_ns: s.namespace.into_inner(),
                checkpoint_id: s.checkpoint_id.into_inner(),
                name: s.name.to_string(),
                description: s.description,
                kind: s.kind.as_str().to_owned(),
                metadata: s.metadata,
                created_at: s.created_at,
            }));
        }
        Ok(out)
    }
}

/// The checkpoint line and one writes line per task of a tuple.
pub fn checkpoint_records(t: &CheckpointTuple) -> Vec<Record> {
    let mut out = Vec::new();
    let checkpoint = match wire::checkpoint_json(&t.checkpoint) {
        JsonValue::Object(o) => o,
        _ => JsonMap::new(),
    };
    out.push(Record::Checkpoint(CheckpointRecord {
        thread_id: t.thread_id.as_str().to_owned(),
        checkpoint_ns: t.namespace.as_str().to_owned(),
        parent_checkpoint_id: t.parent_id.as_ref().map(|p| p.as_str().to_owned()),
        checkpoint,
        metadata: t.metadata.0.clone(),
    }));
    let mut by_task: BTreeMap<(String, String), Vec<&PendingWrite>> = BTreeMap::new();
    for w in &t.pending_writes {
        by_task
            .entry((w.task_id.as_str().to_owned(), w.task_path.clone()))
            .or_default()
            .push(w);
    }
    for ((task_id, task_path), mut writes) in by_task {
        writes.sort_by_key(|w| w.idx);
        out.push(Record::Writes(WritesRecord {
            thread_id: t.thread_id.as_str().to_owned(),
            checkpoint_ns: t.namespace.as_str().to_owned(),
            checkpoint_id: t.checkpoint.id.as_str().to_owned(),
            task_id,
            task_path,
            writes: writes
                .iter()
                .map(|w| WriteEntry {
                    channel: w.channel.as_str().to_owned(),
                    idx: w.idx,
                    value: wire::value_json(&w.value),
                })
                .collect(),
        }));
    }
    out
}

/// Arranges a task's writes into `put_writes` calls that store exactly their indices: regular
/// writes at their index position, special writes (whose index comes from their channel)
/// filling the gaps. Returns the calls; a call of special channels only is an upsert.
pub fn write_calls(
    entries: &[(ChannelName, TypedValue, i64)],
) -> Result<Vec<Vec<(ChannelName, TypedValue)>>, String> {
    let mut regular: Vec<&(ChannelName, TypedValue, i64)> = entries
        .iter()
        .filter(|(c, _, _)| !is_special_write_channel(c.as_str()))
        .collect();
    regular.sort_by_key(|e| e.2);
    let mut special: Vec<&(ChannelName, TypedValue, i64)> = entries
        .iter()
        .filter(|(c, _, _)| is_special_write_channel(c.as_str()))
        .collect();
    if regular.is_empty() {
        return Ok(if special.is_empty() {
            Vec::new()
        } else {
            vec![
                special
                    .iter()
                    .map(|(c, v, _)| (c.clone(), v.clone()))
                    .collect(),
            ]
        });
    }
    let mut call: Vec<(ChannelName, TypedValue)> = Vec::new();
    for (c, v, idx) in regular {
        if *idx < 0 {
            return Err(format!("write on {c} has negative index {idx}"));
        }
        while (call.len() as i64) < *idx {
            let Some((sc, sv, _)) = special.pop() else {
                return Err(format!(
                    "write on {c} has index {idx}, but nothing can fill position {}",
                    call.len()
                ));
            };
            call.push((sc.clone(), sv.clone()));
        }
        if call.len() as i64 != *idx {
            return Err(format!("duplicate index {idx}"));
        }
        call.push((c.clone(), v.clone()));
    }
    for (sc, sv, _) in special {
        call.push((sc.clone(), sv.clone()));
    }
    Ok(vec![call])
}

/// Writes records into a set of stores.
pub struct Importer<'a> {
    stores: &'a Stores,
}

impl<'a> Importer<'a> {
    /// An importer over `stores`.
    pub fn new(stores: &'a Stores) -> Self {
        Self { stores }
    }

    /// Applies one record. Re-applying a record is harmless (puts replace, writes and
    /// existing rows are left as they are), which makes interrupted copies resumable.
    pub async fn apply(&self, record: &Record) -> DomainResult<()> {
        match record {
            Record::Header {
                format, version, ..
            } => {
                if format != FORMAT || *version != FORMAT_VERSION {
                    return Err(corrupt(
                        "header",
                        format!(
                            "unsupported format {format} v{version}; expected {FORMAT} v{FORMAT_VERSION}"
                        ),
                    ));
                }
                Ok(())
            }
            Record::Session(s) => {
                let scope = scope_of(&s.owner)?;
                let session = Session {
                    id: SessionId::parse(s.session_id.clone())?,
                    owner: s.owner.clone().map(UserId::parse).transpose()?,
                    title: s.title.clone(),
                    metadata: s.metadata.clone(),
                    status: s.status.parse::<SessionStatus>()?,
                    checkpoint_policy: CheckpointPolicy::new(
                        s.max_checkpoints_per_thread,
                        s.retention_seconds,
                        s.exempt_snapshots,
                    )?,
                    created_at: Utc::now(),
                    updated_at: Utc::now(),
                };
                match self.stores.sessions.create(&scope, session).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_conflict() => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Record::Thread(t) => {
                let scope = scope_of(&t.owner)?;
                let id = ThreadId::parse(t.thread_id.clone())?;
                let new = NewThread {
                    id: id.clone(),
                    session_id: t.session_id.clone().map(SessionId::parse).transpose()?,
                    assistant_id: t.assistant_id.clone(),
                    display_name: t.display_name.clone(),
                    metadata: t.metadata.clone(),
                };
                self.stores.threads.create(&scope, new).await?;
                let status = t.status.parse::<ThreadStatus>()?;
                if status != ThreadStatus::Idle {
                    let update = ThreadUpdate {
                        status: Some(status),
                        touch: false,
                        ..ThreadUpdate::default()
                    };
                    self.stores.threads.update(&scope, &id, update).await?;
                }
                Ok(())
            }
            Record::Checkpoint(c) => {
                let checkpoint = wire::parse_checkpoint(&c.checkpoint)
                    .map_err(|e| corrupt("checkpoint", e.message))?;
                // Every channel with a value is written as new, so layouts that store values
                // per version (PostgreSQL) get a blob for each.
                let new_versions: ChannelVersions = checkpoint
                    .channel_versions
                    .iter()
                    .filter(|(k, _)| checkpoint.channel_values.contains_key(*k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let put = CheckpointPut {
                    thread_id: ThreadId::parse(c.thread_id.clone())?,
                    namespace: CheckpointNamespace::parse(c.checkpoint_ns.clone())?,
                    parent_id: c
                        .parent_checkpoint_id
                        .clone()
                        .filter(|p| !p.is_empty())
                        .map(CheckpointId::parse)
                        .transpose()?,
                    checkpoint,
                    metadata: CheckpointMetadata(c.metadata.clone()),
                    new_versions,
                };
                self.stores.checkpoints.put(put).await.map(|_| ())
            }
            Record::Writes(w) => {
                let mut entries = Vec::with_capacity(w.writes.len());
                for e in &w.writes {
                    let value = wire::parse_value(&e.value, "write")
                        .map_err(|err| corrupt("write", err.message))?;
                    entries.push((ChannelName::parse(e.channel.clone())?, value, e.idx));
                }
                let calls = write_calls(&entries).map_err(|e| corrupt("writes", e))?;
                let target = CheckpointRef {
                    thread_id: ThreadId::parse(w.thread_id.clone())?,
                    namespace: CheckpointNamespace::parse(w.checkpoint_ns.clone())?,
                    checkpoint_id: CheckpointId::parse(w.checkpoint_id.clone())?,
                };
                for writes in calls {
                    self.stores
                        .checkpoints
                        .put_writes(WriteBatch {
                            target: target.clone(),
                            task_id: TaskId::parse(w.task_id.clone())?,
                            task_path: w.task_path.clone(),
                            writes,
                        })
                        .await?;
                }
                Ok(())
            }
            Record::Event(e) => {
                let scope = scope_of(&e.user_id)?;
                let mut ev = NewRunEvent::new(
                    ThreadId::parse(e.thread_id.clone())?,
                    RunId::parse(e.run_id.clone())?,
                    EventType::parse(e.event_type.clone())?,
                    EventCategory::parse(e.category.clone())?,
                )
                .with_content(e.content.clone())
                .with_metadata(e.metadata.clone());
                ev.created_at = Some(e.created_at);
                self.stores.run_events.put(&scope, ev).await.map(|_| ())
            }
            Record::Feedback(f) => {
                let scope = scope_of(&f.user_id)?;
                let new = NewFeedback {
                    thread_id: ThreadId::parse(f.thread_id.clone())?,
                    run_id: RunId::parse(f.run_id.clone())?,
                    rating: Rating::new(f.rating)?,
                    comment: f.comment.clone(),
                    message_id: f.message_id.clone(),
                };
                match self.stores.feedback.create(&scope, new).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_conflict() => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Record::ChatStream(c) => {
                let scope = scope_of(&c.user_id)?;
                let thread = ThreadId::parse(c.thread_id.clone())?;
                if self
                    .stores
                    .chat_streams
                    .get(&scope, &thread)
                    .await?
                    .is_some()
                {
                    return Ok(());
                }
                if c.frames.is_empty() {
                    return Ok(());
                }
                self.stores
                    .chat_streams
                    .append(&scope, &thread, c.frames.clone())
                    .await
                    .map(|_| ())
            }
            Record::Branch(b) => {
                let id = BranchId::parse(&b.branch_id)?;
                if self.stores.branches.get(id).await?.is_some() {
                    return Ok(());
                }
                let branch = Branch {
                    id,
                    name: Name::parse(b.name.clone())?,
                    source_thread_id: ThreadId::parse(b.source_thread_id.clone())?,
                    source_namespace: CheckpointNamespace::parse(b.source_checkpoint_ns.clone())?,
                    source_checkpoint_id: CheckpointId::parse(b.source_checkpoint_id.clone())?,
                    thread_id: ThreadId::parse(b.thread_id.clone())?,
                    metadata: b.metadata.clone(),
                    created_at: b.created_at,
                };
                self.stores.branches.create(branch).await.map(|_| ())
            }
            Record::Snapshot(s) => {
                let id = SnapshotId::parse(&s.snapshot_id)?;
                if self.stores.snapshots.get(id).await?.is_some() {
                    return Ok(());
                }
                let snapshot = Snapshot {
                    id,
                    thread_id: ThreadId::parse(s.thread_id.clone())?,
                    namespace: CheckpointNamespace::parse(s.checkpoint_ns.clone())?,
                    checkpoint_id: CheckpointId::parse(s.checkpoint_id.clone())?,
                    name: Name::parse(s.name.clone())?,
                    description: s.description.clone(),
                    kind: s.kind.parse::<SnapshotKind>()?,
                    metadata: s.metadata.clone(),
                    created_at: s.created_at,
                };
                self.stores.snapshots.create(snapshot).await.map(|_| ())
            }
            Record::Item(i) => {
                let ttl = match i.expires_at {
                    None => None,
                    Some(at) => {
                        let left = (at - Utc::now()).num_seconds();
                        if left <= 0 {
                            return Ok(()); // already expired: nothing to carry over
                        }
                        Some(left as u64)
                    }
                };
                self.stores
                    .items
                    .put(
                        &ItemNamespace::parse(i.namespace.clone())?,
                        &ItemKey::parse(i.key.clone())?,
                        i.value.clone(),
                        ttl,
                    )
                    .await
                    .map(|_| ())
            }
        }
    }
}

/// A comparable digest of one tuple: ids, parent, metadata, every value's tag and bytes,
/// versions, and the writes with their indices.
fn tuple_digest(t: &CheckpointTuple) -> JsonValue {
    let values: JsonMap<String, JsonValue> = t
        .checkpoint
        .channel_values
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                serde_json::json!([v.type_tag(), STANDARD.encode(v.bytes())]),
            )
        })
        .collect();
    let mut writes: Vec<JsonValue> = t
        .pending_writes
        .iter()
        .map(|w| {
            serde_json::json!([
                w.task_id.as_str(),
                w.task_path,
                w.idx,
                w.channel.as_str(),
                w.value.type_tag(),
                STANDARD.encode(w.value.bytes())
            ])
        })
        .collect();
    writes.sort_by_key(|w| w.to_string());
    let mut metadata = t.metadata.0.clone();
    // LangGraph's PostgreSQL layout never stores a top-level "writes" key (compat §1.3).
    metadata.shift_remove("writes");
    serde_json::json!({
        "ns": t.namespace.as_str(),
        "id": t.checkpoint.id.as_str(),
        "parent": t.parent_id.as_ref().map(|p| p.as_str()),
        "v": t.checkpoint.v,
        "ts": t.checkpoint.ts,
        "values": values,
        "versions": wire::checkpoint_json(&t.checkpoint)["channel_versions"],
        "metadata": sorted(JsonValue::Object(metadata)),
        "writes": writes,
    })
}

/// JSON with object keys sorted (jsonb does not keep key order).
fn sorted(v: JsonValue) -> JsonValue {
    match v {
        JsonValue::Object(o) => {
            let mut entries: Vec<(String, JsonValue)> =
                o.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            JsonValue::Object(entries.into_iter().collect())
        }
        JsonValue::Array(a) => JsonValue::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Checks that the target holds the same checkpoints and writes for `thread` as the source.
pub async fn verify_thread(
    source: &Stores,
    target: &Stores,
    thread: &ThreadId,
) -> Result<usize, String> {
    let q = CheckpointQuery::thread(thread.clone());
    let a = source
        .checkpoints
        .list(&q)
        .await
        .map_err(|e| e.to_string())?;
    let b = target
        .checkpoints
        .list(&q)
        .await
        .map_err(|e| e.to_string())?;
    if a.len() != b.len() {
        return Err(format!(
            "thread {thread}: {} checkpoints at the source, {} at the target",
            a.len(),
            b.len()
        ));
    }
    let key = |t: &CheckpointTuple| {
        (
            t.namespace.as_str().to_owned(),
            t.checkpoint.id.as_str().to_owned(),
        )
    };
    let mut a: Vec<_> = a.iter().map(|t| (key(t), tuple_digest(t))).collect();
    let mut b: Vec<_> = b.iter().map(|t| (key(t), tuple_digest(t))).collect();
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    for ((ka, da), (_, db)) in a.iter().zip(&b) {
        if da != db {
            return Err(format!(
                "thread {thread}: checkpoint {} (namespace {:?}) differs after the copy",
                ka.1, ka.0
            ));
        }
    }
    Ok(a.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(s: &str) -> ChannelName {
        ChannelName::parse(s).unwrap()
    }

    #[test]
    fn write_calls_reproduce_indices_with_specials_in_the_gaps() {
        let v = TypedValue::null;
        let calls = write_calls(&[
            (ch("a"), v(), 0),
            (ch("__interrupt__"), v(), -3),
            (ch("b"), v(), 2),
        ])
        .unwrap();
        assert_eq!(calls.len(), 1);
        let batch = WriteBatch {
            target: CheckpointRef {
                thread_id: ThreadId::parse("t").unwrap(),
                namespace: CheckpointNamespace::root(),
                checkpoint_id: CheckpointId::parse("c").unwrap(),
            },
            task_id: TaskId::parse("x").unwrap(),
            task_path: String::new(),
            writes: calls[0].clone(),
        };
        let idx: Vec<i64> = batch.to_pending_writes().iter().map(|w| w.idx).collect();
        assert_eq!(idx, [0, -3, 2]);
        let only_special = write_calls(&[(ch("__error__"), v(), -1)]).unwrap();
        assert_eq!(only_special[0].len(), 1);
        assert!(
            write_calls(&[(ch("a"), v(), 1)]).is_err(),
            "a gap nothing can fill"
        );
    }

    #[test]
    fn records_round_trip_as_json_lines() {
        let r = Record::Item(ItemRecord {
            namespace: vec!["a".into()],
            key: "k".into(),
            value: JsonObject::new(),
            expires_at: None,
        });
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.starts_with("{\"kind\":\"item\""), "{line}");
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
    }
}
