//! The records an export holds, typed: what each port can give back to another store.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use waymark_domain::branch::{Branch, Snapshot};
use waymark_domain::chat_stream::ChatStreamRecord;
use waymark_domain::checkpoint::{
    Checkpoint, CheckpointMetadata, CheckpointRef, CheckpointTuple, PendingWrite, TypedValue,
};
use waymark_domain::feedback::{Feedback, Rating};
use waymark_domain::kv::{Item, ItemNamespace};
use waymark_domain::run_event::RunEvent;
use waymark_domain::session::{CheckpointPolicy, Session, SessionStatus};
use waymark_domain::thread::{Thread, ThreadStatus};
use waymark_domain::{
    ChannelName, CheckpointId, CheckpointNamespace, ItemKey, JsonObject, RunId, SessionId, TaskId,
    ThreadId, UserId, UserScope,
};

/// One record of an export, in the order an importer can apply them: sessions and items,
/// then per thread its record, checkpoints oldest first with their writes, events, feedback,
/// chat stream, branches and snapshots.
#[derive(Debug, Clone, PartialEq)]
pub enum TransferRecord {
    /// A session.
    Session(SessionRecord),
    /// A thread record.
    Thread(ThreadRecord),
    /// A checkpoint (boxed: it is by far the largest record).
    Checkpoint(Box<CheckpointRecord>),
    /// The pending writes of one task on one checkpoint.
    Writes(WritesRecord),
    /// A run event (its seq is the source's; the target assigns its own).
    Event(RunEvent),
    /// A feedback row.
    Feedback(FeedbackRecord),
    /// A persisted chat stream.
    ChatStream(StreamRecord),
    /// A branch record.
    Branch(Branch),
    /// A snapshot record.
    Snapshot(Snapshot),
    /// A key-value item.
    Item(ItemRecord),
}

/// A session without its times (the target store stamps them).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// The id.
    pub id: SessionId,
    /// The owner.
    pub owner: Option<UserId>,
    /// The title.
    pub title: Option<String>,
    /// Metadata.
    pub metadata: JsonObject,
    /// The status.
    pub status: SessionStatus,
    /// The checkpoint policy.
    pub checkpoint_policy: CheckpointPolicy,
}

impl From<Session> for SessionRecord {
    fn from(s: Session) -> Self {
        Self {
            id: s.id,
            owner: s.owner,
            title: s.title,
            metadata: s.metadata,
            status: s.status,
            checkpoint_policy: s.checkpoint_policy,
        }
    }
}

/// A thread record without its times.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadRecord {
    /// The id.
    pub id: ThreadId,
    /// The session.
    pub session_id: Option<SessionId>,
    /// The owner.
    pub owner: Option<UserId>,
    /// The assistant.
    pub assistant_id: Option<String>,
    /// The display name.
    pub display_name: Option<String>,
    /// The status.
    pub status: ThreadStatus,
    /// Metadata.
    pub metadata: JsonObject,
}

impl From<Thread> for ThreadRecord {
    fn from(t: Thread) -> Self {
        Self {
            id: t.id,
            session_id: t.session_id,
            owner: t.owner,
            assistant_id: t.assistant_id,
            display_name: t.display_name,
            status: t.status,
            metadata: t.metadata,
        }
    }
}

/// A checkpoint without its pending writes (they follow as [`WritesRecord`]s).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointRecord {
    /// The thread.
    pub thread_id: ThreadId,
    /// The namespace.
    pub namespace: CheckpointNamespace,
    /// The parent.
    pub parent_id: Option<CheckpointId>,
    /// The checkpoint, values as stored.
    pub checkpoint: Checkpoint,
    /// The stored metadata.
    pub metadata: CheckpointMetadata,
}

/// One pending write with the index it is stored under.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedWrite {
    /// The channel.
    pub channel: ChannelName,
    /// The stored index (negative for the special channels).
    pub idx: i64,
    /// The value.
    pub value: TypedValue,
}

/// One task's pending writes on one checkpoint, ascending by index.
#[derive(Debug, Clone, PartialEq)]
pub struct WritesRecord {
    /// The checkpoint written to.
    pub target: CheckpointRef,
    /// The task.
    pub task_id: TaskId,
    /// The task path.
    pub task_path: String,
    /// The writes.
    pub writes: Vec<IndexedWrite>,
}

/// A feedback row without its id and times (the target assigns them).
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackRecord {
    /// The thread.
    pub thread_id: ThreadId,
    /// The run.
    pub run_id: RunId,
    /// The author.
    pub user_id: Option<UserId>,
    /// The message rated.
    pub message_id: Option<String>,
    /// The rating.
    pub rating: Rating,
    /// The comment.
    pub comment: Option<String>,
}

impl From<Feedback> for FeedbackRecord {
    fn from(f: Feedback) -> Self {
        Self {
            thread_id: f.thread_id,
            run_id: f.run_id,
            user_id: f.user_id,
            message_id: f.message_id,
            rating: f.rating,
            comment: f.comment,
        }
    }
}

/// A persisted chat stream's frames (the target stamps the times).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// The thread.
    pub thread_id: ThreadId,
    /// The owner.
    pub user_id: Option<UserId>,
    /// The frames, in order.
    pub frames: Vec<String>,
}

impl From<ChatStreamRecord> for StreamRecord {
    fn from(c: ChatStreamRecord) -> Self {
        Self {
            thread_id: c.thread_id,
            user_id: c.user_id,
            frames: c.frames,
        }
    }
}

/// A key-value item without its times; the expiry is an instant, turned back into a TTL on
/// import.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRecord {
    /// The namespace.
    pub namespace: ItemNamespace,
    /// The key.
    pub key: ItemKey,
    /// The value.
    pub value: JsonObject,
    /// When it expires.
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<Item> for ItemRecord {
    fn from(i: Item) -> Self {
        Self {
            namespace: i.namespace,
            key: i.key,
            value: i.value,
            expires_at: i.expires_at,
        }
    }
}

/// The scope a record is written under: its owner's, or unscoped for owner-less data.
pub(super) fn owner_scope(owner: &Option<UserId>) -> UserScope {
    owner.clone().map_or(UserScope::Unscoped, UserScope::User)
}

/// The checkpoint record and one writes record per task of a tuple (tasks ordered by id,
/// then path; writes ascending by index).
pub fn checkpoint_records(tuple: &CheckpointTuple) -> Vec<TransferRecord> {
    let mut out = vec![TransferRecord::Checkpoint(Box::new(CheckpointRecord {
        thread_id: tuple.thread_id.clone(),
        namespace: tuple.namespace.clone(),
        parent_id: tuple.parent_id.clone(),
        checkpoint: tuple.checkpoint.clone(),
        metadata: tuple.metadata.clone(),
    }))];
    let mut by_task: BTreeMap<(&str, &str), Vec<&PendingWrite>> = BTreeMap::new();
    for w in &tuple.pending_writes {
        by_task
            .entry((w.task_id.as_str(), w.task_path.as_str()))
            .or_default()
            .push(w);
    }
    for mut writes in by_task.into_values() {
        writes.sort_by_key(|w| w.idx);
        let Some(first) = writes.first().copied() else {
            continue;
        };
        out.push(TransferRecord::Writes(WritesRecord {
            target: tuple.reference(),
            task_id: first.task_id.clone(),
            task_path: first.task_path.clone(),
            writes: writes
                .iter()
                .map(|w| IndexedWrite {
                    channel: w.channel.clone(),
                    idx: w.idx,
                    value: w.value.clone(),
                })
                .collect(),
        }));
    }
    out
}
