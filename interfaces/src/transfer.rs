//! The export file format: JSON lines, one object per line with a `kind` tag, the first line
//! a header. This module only maps lines to and from the application's typed records
//! ([`waymark_application::transfer`], which reads, writes and verifies them); the `waymark
//! export`, `import` and `copy` commands drive both.
//!
//! Checkpoints use the remote protocol's shapes (payload bytes in base64 with their serializer
//! tag), so every checkpoint, pending write and value round-trips byte for byte. The shapes
//! below are the format (version [`FORMAT_VERSION`]): files written by earlier builds must keep
//! importing (`interfaces/tests/fixtures/export-v1.jsonl`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map as JsonMap, Value as JsonValue};
use waymark_application::transfer::{
    CheckpointRecord as TypedCheckpoint, FeedbackRecord as TypedFeedback, IndexedWrite,
    ItemRecord as TypedItem, SessionRecord as TypedSession, StreamRecord,
    ThreadRecord as TypedThread, TransferRecord, WritesRecord as TypedWrites,
};
use waymark_domain::branch::{Branch, Snapshot, SnapshotKind};
use waymark_domain::checkpoint::{CheckpointMetadata, CheckpointRef};
use waymark_domain::feedback::Rating;
use waymark_domain::kv::ItemNamespace;
use waymark_domain::run_event::RunEvent;
use waymark_domain::session::{CheckpointPolicy, SessionStatus};
use waymark_domain::thread::ThreadStatus;
use waymark_domain::{
    BranchId, ChannelName, CheckpointId, CheckpointNamespace, DomainError, DomainResult,
    EventCategory, EventType, ItemKey, JsonObject, Name, RunId, SessionId, SnapshotId, TaskId,
    ThreadId, UserId,
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

/// A line that does not hold what its kind promises.
fn corrupt(what: &str, e: impl std::fmt::Display) -> DomainError {
    DomainError::invalid("record", format!("{what}: {e}"))
}

fn user(id: Option<String>) -> DomainResult<Option<UserId>> {
    id.map(UserId::parse).transpose()
}

/// A line's members with the first `kind` (the record's tag) taken aside.
///
/// Snapshot lines carry a second `kind` member, the snapshot's own (`milestone`/`backup`):
/// the derived internally tagged format writes the tag and then the field under the same name.
/// No derived reader accepts that, so lines are read here: the first `kind` is the tag, a
/// later one belongs to the record.
struct LineMembers {
    tag: String,
    members: JsonMap<String, JsonValue>,
}

impl<'de> Deserialize<'de> for LineMembers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = LineMembers;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an export record (a JSON object with a `kind`)")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<LineMembers, A::Error> {
                use serde::de::Error as _;
                let mut tag = None;
                let mut members = JsonMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "kind" && tag.is_none() {
                        tag = Some(map.next_value::<String>()?);
                    } else if members.contains_key(&key) {
                        return Err(A::Error::custom(format!("duplicate field `{key}`")));
                    } else {
                        let value = map.next_value::<JsonValue>()?;
                        members.insert(key, value);
                    }
                }
                let tag = tag.ok_or_else(|| A::Error::missing_field("kind"))?;
                Ok(LineMembers { tag, members })
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

impl Record {
    /// Reads one line of an export. Snapshot lines hold two `kind` members (the tag, then the
    /// snapshot's kind); the first is the tag.
    pub fn from_line(line: &str) -> serde_json::Result<Self> {
        let LineMembers { tag, mut members } = serde_json::from_str(line)?;
        if tag == "snapshot" {
            return SnapshotRecord::deserialize(JsonValue::Object(members)).map(Self::Snapshot);
        }
        if members.contains_key("kind") {
            return Err(serde::de::Error::custom("duplicate field `kind`"));
        }
        members.insert("kind".into(), JsonValue::String(tag));
        Self::deserialize(JsonValue::Object(members))
    }

    /// The header line of an export of `source` (a redacted URL) started at `exported_at`.
    pub fn header(source: String, exported_at: DateTime<Utc>) -> Self {
        Self::Header {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            source,
            exported_at: crate::api::dto::ts(exported_at),
        }
    }

    /// Refuses a header of another format or version; other lines pass.
    pub fn check_header(&self) -> DomainResult<()> {
        match self {
            Self::Header {
                format, version, ..
            } if format != FORMAT || *version != FORMAT_VERSION => Err(corrupt(
                "header",
                format!(
                    "unsupported format {format} v{version}; expected {FORMAT} v{FORMAT_VERSION}"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The typed record this line holds; every id and value is checked here. A header holds
    /// no record.
    pub fn into_transfer(self) -> DomainResult<TransferRecord> {
        Ok(match self {
            Self::Header { .. } => {
                return Err(corrupt("header", "a header line holds no record"));
            }
            Self::Session(s) => TransferRecord::Session(s.try_into()?),
            Self::Thread(t) => TransferRecord::Thread(t.try_into()?),
            Self::Checkpoint(c) => TransferRecord::Checkpoint(Box::new(c.try_into()?)),
            Self::Writes(w) => TransferRecord::Writes(w.try_into()?),
            Self::Event(e) => TransferRecord::Event(e.try_into()?),
            Self::Feedback(f) => TransferRecord::Feedback(f.try_into()?),
            Self::ChatStream(c) => TransferRecord::ChatStream(c.try_into()?),
            Self::Branch(b) => TransferRecord::Branch(b.try_into()?),
            Self::Snapshot(s) => TransferRecord::Snapshot(s.try_into()?),
            Self::Item(i) => TransferRecord::Item(i.try_into()?),
        })
    }
}

impl From<TransferRecord> for Record {
    fn from(r: TransferRecord) -> Self {
        match r {
            TransferRecord::Session(s) => Self::Session(s.into()),
            TransferRecord::Thread(t) => Self::Thread(t.into()),
            TransferRecord::Checkpoint(c) => Self::Checkpoint((*c).into()),
            TransferRecord::Writes(w) => Self::Writes(w.into()),
            TransferRecord::Event(e) => Self::Event(e.into()),
            TransferRecord::Feedback(f) => Self::Feedback(f.into()),
            TransferRecord::ChatStream(c) => Self::ChatStream(c.into()),
            TransferRecord::Branch(b) => Self::Branch(b.into()),
            TransferRecord::Snapshot(s) => Self::Snapshot(s.into()),
            TransferRecord::Item(i) => Self::Item(i.into()),
        }
    }
}

impl From<TypedSession> for SessionRecord {
    fn from(s: TypedSession) -> Self {
        Self {
            session_id: s.id.into_inner(),
            owner: s.owner.map(UserId::into_inner),
            title: s.title,
            metadata: s.metadata,
            status: s.status.as_str().to_owned(),
            max_checkpoints_per_thread: s.checkpoint_policy.max_checkpoints_per_thread,
            retention_seconds: s.checkpoint_policy.retention_seconds,
            exempt_snapshots: s.checkpoint_policy.exempt_snapshots,
        }
    }
}

impl TryFrom<SessionRecord> for TypedSession {
    type Error = DomainError;

    fn try_from(s: SessionRecord) -> DomainResult<Self> {
        Ok(Self {
            id: SessionId::parse(s.session_id)?,
            owner: user(s.owner)?,
            title: s.title,
            metadata: s.metadata,
            status: s.status.parse::<SessionStatus>()?,
            checkpoint_policy: CheckpointPolicy::new(
                s.max_checkpoints_per_thread,
                s.retention_seconds,
                s.exempt_snapshots,
            )?,
        })
    }
}

impl From<TypedThread> for ThreadRecord {
    fn from(t: TypedThread) -> Self {
        Self {
            thread_id: t.id.into_inner(),
            session_id: t.session_id.map(SessionId::into_inner),
            owner: t.owner.map(UserId::into_inner),
            assistant_id: t.assistant_id,
            display_name: t.display_name,
            status: t.status.as_str().to_owned(),
            metadata: t.metadata,
        }
    }
}

impl TryFrom<ThreadRecord> for TypedThread {
    type Error = DomainError;

    fn try_from(t: ThreadRecord) -> DomainResult<Self> {
        Ok(Self {
            id: ThreadId::parse(t.thread_id)?,
            session_id: t.session_id.map(SessionId::parse).transpose()?,
            owner: user(t.owner)?,
            assistant_id: t.assistant_id,
            display_name: t.display_name,
            status: t.status.parse::<ThreadStatus>()?,
            metadata: t.metadata,
        })
    }
}

impl From<TypedCheckpoint> for CheckpointRecord {
    fn from(c: TypedCheckpoint) -> Self {
        let checkpoint = match wire::checkpoint_json(&c.checkpoint) {
            JsonValue::Object(o) => o,
            _ => JsonMap::new(),
        };
        Self {
            thread_id: c.thread_id.into_inner(),
            checkpoint_ns: c.namespace.into_inner(),
            parent_checkpoint_id: c.parent_id.map(CheckpointId::into_inner),
            checkpoint,
            metadata: c.metadata.0,
        }
    }
}

impl TryFrom<CheckpointRecord> for TypedCheckpoint {
    type Error = DomainError;

    fn try_from(c: CheckpointRecord) -> DomainResult<Self> {
        let checkpoint =
            wire::parse_checkpoint(&c.checkpoint).map_err(|e| corrupt("checkpoint", e.message))?;
        Ok(Self {
            thread_id: ThreadId::parse(c.thread_id)?,
            namespace: CheckpointNamespace::parse(c.checkpoint_ns)?,
            // Early exports wrote the root's missing parent as "".
            parent_id: c
                .parent_checkpoint_id
                .filter(|p| !p.is_empty())
                .map(CheckpointId::parse)
                .transpose()?,
            checkpoint,
            metadata: CheckpointMetadata(c.metadata),
        })
    }
}

impl From<TypedWrites> for WritesRecord {
    fn from(w: TypedWrites) -> Self {
        Self {
            thread_id: w.target.thread_id.into_inner(),
            checkpoint_ns: w.target.namespace.into_inner(),
            checkpoint_id: w.target.checkpoint_id.into_inner(),
            task_id: w.task_id.into_inner(),
            task_path: w.task_path,
            writes: w
                .writes
                .into_iter()
                .map(|e| WriteEntry {
                    channel: e.channel.into_inner(),
                    idx: e.idx,
                    value: wire::value_json(&e.value),
                })
                .collect(),
        }
    }
}

impl TryFrom<WritesRecord> for TypedWrites {
    type Error = DomainError;

    fn try_from(w: WritesRecord) -> DomainResult<Self> {
        let mut writes = Vec::with_capacity(w.writes.len());
        for e in w.writes {
            let value = wire::parse_value(&e.value, "write")
                .map_err(|err| corrupt("write", err.message))?;
            writes.push(IndexedWrite {
                channel: ChannelName::parse(e.channel)?,
                idx: e.idx,
                value,
            });
        }
        Ok(Self {
            target: CheckpointRef {
                thread_id: ThreadId::parse(w.thread_id)?,
                namespace: CheckpointNamespace::parse(w.checkpoint_ns)?,
                checkpoint_id: CheckpointId::parse(w.checkpoint_id)?,
            },
            task_id: TaskId::parse(w.task_id)?,
            task_path: w.task_path,
            writes,
        })
    }
}

impl From<RunEvent> for EventRecord {
    fn from(e: RunEvent) -> Self {
        Self {
            thread_id: e.thread_id.into_inner(),
            run_id: e.run_id.into_inner(),
            seq: e.seq,
            event_type: e.event_type.into_inner(),
            category: e.category.into_inner(),
            content: e.content,
            metadata: e.metadata,
            created_at: e.created_at,
            user_id: e.user_id.map(UserId::into_inner),
        }
    }
}

impl TryFrom<EventRecord> for RunEvent {
    type Error = DomainError;

    fn try_from(e: EventRecord) -> DomainResult<Self> {
        Ok(Self {
            thread_id: ThreadId::parse(e.thread_id)?,
            run_id: RunId::parse(e.run_id)?,
            seq: e.seq,
            event_type: EventType::parse(e.event_type)?,
            category: EventCategory::parse(e.category)?,
            content: e.content,
            metadata: e.metadata,
            created_at: e.created_at,
            user_id: user(e.user_id)?,
        })
    }
}

impl From<TypedFeedback> for FeedbackRecord {
    fn from(f: TypedFeedback) -> Self {
        Self {
            thread_id: f.thread_id.into_inner(),
            run_id: f.run_id.into_inner(),
            user_id: f.user_id.map(UserId::into_inner),
            message_id: f.message_id,
            rating: f.rating.value(),
            comment: f.comment,
        }
    }
}

impl TryFrom<FeedbackRecord> for TypedFeedback {
    type Error = DomainError;

    fn try_from(f: FeedbackRecord) -> DomainResult<Self> {
        Ok(Self {
            thread_id: ThreadId::parse(f.thread_id)?,
            run_id: RunId::parse(f.run_id)?,
            user_id: user(f.user_id)?,
            message_id: f.message_id,
            rating: Rating::new(f.rating)?,
            comment: f.comment,
        })
    }
}

impl From<StreamRecord> for ChatStreamRecord {
    fn from(c: StreamRecord) -> Self {
        Self {
            thread_id: c.thread_id.into_inner(),
            user_id: c.user_id.map(UserId::into_inner),
            frames: c.frames,
        }
    }
}

impl TryFrom<ChatStreamRecord> for StreamRecord {
    type Error = DomainError;

    fn try_from(c: ChatStreamRecord) -> DomainResult<Self> {
        Ok(Self {
            thread_id: ThreadId::parse(c.thread_id)?,
            user_id: user(c.user_id)?,
            frames: c.frames,
        })
    }
}

impl From<Branch> for BranchRecord {
    fn from(b: Branch) -> Self {
        Self {
            branch_id: b.id.to_string(),
            name: b.name.to_string(),
            source_thread_id: b.source_thread_id.into_inner(),
            source_checkpoint_ns: b.source_namespace.into_inner(),
            source_checkpoint_id: b.source_checkpoint_id.into_inner(),
            thread_id: b.thread_id.into_inner(),
            metadata: b.metadata,
            created_at: b.created_at,
        }
    }
}

impl TryFrom<BranchRecord> for Branch {
    type Error = DomainError;

    fn try_from(b: BranchRecord) -> DomainResult<Self> {
        Ok(Self {
            id: BranchId::parse(&b.branch_id)?,
            name: Name::parse(b.name)?,
            source_thread_id: ThreadId::parse(b.source_thread_id)?,
            source_namespace: CheckpointNamespace::parse(b.source_checkpoint_ns)?,
            source_checkpoint_id: CheckpointId::parse(b.source_checkpoint_id)?,
            thread_id: ThreadId::parse(b.thread_id)?,
            metadata: b.metadata,
            created_at: b.created_at,
        })
    }
}

impl From<Snapshot> for SnapshotRecord {
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
            created_at: s.created_at,
        }
    }
}

impl TryFrom<SnapshotRecord> for Snapshot {
    type Error = DomainError;

    fn try_from(s: SnapshotRecord) -> DomainResult<Self> {
        Ok(Self {
            id: SnapshotId::parse(&s.snapshot_id)?,
            thread_id: ThreadId::parse(s.thread_id)?,
            namespace: CheckpointNamespace::parse(s.checkpoint_ns)?,
            checkpoint_id: CheckpointId::parse(s.checkpoint_id)?,
            name: Name::parse(s.name)?,
            description: s.description,
            kind: s.kind.parse::<SnapshotKind>()?,
            metadata: s.metadata,
            created_at: s.created_at,
        })
    }
}

impl From<TypedItem> for ItemRecord {
    fn from(i: TypedItem) -> Self {
        Self {
            namespace: i.namespace.labels().to_vec(),
            key: i.key.into_inner(),
            value: i.value,
            expires_at: i.expires_at,
        }
    }
}

impl TryFrom<ItemRecord> for TypedItem {
    type Error = DomainError;

    fn try_from(i: ItemRecord) -> DomainResult<Self> {
        Ok(Self {
            namespace: ItemNamespace::parse(i.namespace)?,
            key: ItemKey::parse(i.key)?,
            value: i.value,
            expires_at: i.expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(Record::from_line(&line).unwrap(), r);
    }

    #[test]
    fn snapshot_lines_read_back_despite_their_two_kind_members() {
        let r = Record::Snapshot(SnapshotRecord {
            snapshot_id: "0195f3a0-0000-7000-8000-000000000002".into(),
            thread_id: "t".into(),
            checkpoint_ns: String::new(),
            checkpoint_id: "c".into(),
            name: "m".into(),
            description: None,
            kind: "backup".into(),
            metadata: JsonObject::new(),
            created_at: Utc::now(),
        });
        let line = serde_json::to_string(&r).unwrap();
        assert!(
            line.starts_with("{\"kind\":\"snapshot\"") && line.contains("\"kind\":\"backup\""),
            "the format as written: {line}"
        );
        assert_eq!(Record::from_line(&line).unwrap(), r);
    }

    #[test]
    fn lines_that_are_not_records_are_refused() {
        for line in [
            "[]",
            "{}",
            "{\"kind\":\"thread\"}",
            "{\"kind\":\"nope\"}",
            "{\"kind\":\"item\",\"kind\":\"item\",\"namespace\":[],\"key\":\"k\",\"value\":{},\"expires_at\":null}",
            "{\"kind\":\"item\",\"namespace\":[],\"namespace\":[],\"key\":\"k\",\"value\":{},\"expires_at\":null}",
        ] {
            assert!(Record::from_line(line).is_err(), "{line}");
        }
        let item = "{\"kind\":\"item\",\"namespace\":[\"a\"],\"key\":\"k\",\"value\":{},\"expires_at\":null}";
        assert!(matches!(Record::from_line(item), Ok(Record::Item(_))));
    }

    #[test]
    fn a_header_of_another_version_is_refused() {
        let mut header = Record::header("memory://".into(), Utc::now());
        assert!(header.check_header().is_ok());
        if let Record::Header { version, .. } = &mut header {
            *version = 2;
        }
        let err = header.check_header().unwrap_err();
        assert!(
            err.to_string()
                .contains("unsupported format waymark-export v2"),
            "{err}"
        );
        assert!(header.into_transfer().is_err(), "a header holds no record");
    }

    #[test]
    fn a_line_with_a_bad_id_is_an_invalid_record() {
        let line = r#"{"kind":"thread","thread_id":"","session_id":null,"owner":null,"assistant_id":null,"display_name":null,"status":"idle","metadata":{}}"#;
        let record: Record = serde_json::from_str(line).unwrap();
        assert!(record.into_transfer().unwrap_err().is_invalid_input());
    }

    #[test]
    fn writes_lines_map_to_typed_writes_and_back() {
        let line = r#"{"kind":"writes","thread_id":"t","checkpoint_ns":"","checkpoint_id":"c","task_id":"k","task_path":"p","writes":[{"channel":"__interrupt__","idx":-3,"value":{"type":"msgpack","data":"og=="}},{"channel":"a","idx":0,"value":{"type":"null","data":""}}]}"#;
        let record: Record = serde_json::from_str(line).unwrap();
        let typed = record.clone().into_transfer().unwrap();
        let TransferRecord::Writes(w) = &typed else {
            panic!("{typed:?}")
        };
        assert_eq!(w.writes[0].idx, -3);
        assert_eq!(w.writes[0].value.bytes(), [0xa2]);
        assert_eq!(Record::from(typed), record);
    }
}
