//! Checkpoints with LangGraph's semantics (spec `langgraph-compat.md` §1) and their port.
//!
//! Channel values are opaque typed payloads (a serializer tag plus bytes), exactly what
//! LangGraph's `dumps_typed` produces, so a store never needs to understand them and a value
//! written by Python comes back byte-for-byte. Decoding them is the adapters crate's job.
//!
//! [`prune`] holds the `keep_latest` rule every store executes.

pub mod prune;

use std::cmp::Ordering;

use async_trait::async_trait;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};
use crate::ids::{ChannelName, CheckpointId, CheckpointNamespace, RunId, TaskId, ThreadId};
use crate::json::{JsonObject, JsonValue, check_json_object, check_no_nul};

/// A value serialized by LangGraph's serializer: a type tag and the bytes.
///
/// Known tags: `msgpack`, `null` (always zero bytes), `bytes`, `bytearray`, `json`; others
/// (`pickle`, `msgpack+aes`, ...) are kept as they are.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TypedValue {
    type_tag: String,
    bytes: Vec<u8>,
}

impl TypedValue {
    /// The tag of msgpack payloads.
    pub const MSGPACK: &'static str = "msgpack";
    /// The tag of a null value (zero bytes).
    pub const NULL: &'static str = "null";
    /// The tag of raw bytes.
    pub const BYTES: &'static str = "bytes";
    /// The tag of a Python `bytearray`.
    pub const BYTEARRAY: &'static str = "bytearray";
    /// The legacy JSON tag.
    pub const JSON: &'static str = "json";
    /// The longest accepted tag.
    pub const MAX_TAG_BYTES: usize = 64;

    /// A typed value; the tag must be 1-64 printable ASCII characters, and a `null` value
    /// must have no bytes.
    pub fn new(type_tag: impl Into<String>, bytes: Vec<u8>) -> DomainResult<Self> {
        let type_tag = type_tag.into();
        if type_tag.is_empty() || type_tag.len() > Self::MAX_TAG_BYTES {
            return Err(DomainError::invalid(
                "type",
                format!("a serializer tag has 1 to {} bytes", Self::MAX_TAG_BYTES),
            ));
        }
        if !type_tag.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(DomainError::invalid(
                "type",
                "a serializer tag is printable ASCII without spaces",
            ));
        }
        if type_tag == Self::NULL && !bytes.is_empty() {
            return Err(DomainError::invalid("value", "a null value has no bytes"));
        }
        Ok(Self { type_tag, bytes })
    }

    /// LangGraph's null: tag `null`, zero bytes.
    pub fn null() -> Self {
        Self {
            type_tag: Self::NULL.to_owned(),
            bytes: Vec::new(),
        }
    }

    /// A msgpack payload.
    pub fn msgpack(bytes: Vec<u8>) -> Self {
        Self {
            type_tag: Self::MSGPACK.to_owned(),
            bytes,
        }
    }

    /// The serializer tag.
    pub fn type_tag(&self) -> &str {
        &self.type_tag
    }

    /// The serialized bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// True for tag `null`.
    pub fn is_null(&self) -> bool {
        self.type_tag == Self::NULL
    }

    /// Tag and bytes.
    pub fn into_parts(self) -> (String, Vec<u8>) {
        (self.type_tag, self.bytes)
    }

    /// Stored size: tag plus bytes.
    pub fn stored_len(&self) -> usize {
        self.type_tag.len() + self.bytes.len()
    }
}

/// A channel version: LangGraph savers write padded strings, the conformance suite ints; the
/// type is preserved (spec §1.7).
///
/// Deserialized through a JSON value rather than `#[serde(untagged)]`: with serde_json's
/// `arbitrary_precision` (on in this workspace) a number read from text reaches an untagged
/// enum as a private map and would match no variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ChannelVersion {
    /// An integer version.
    Int(i64),
    /// A float version (legal, but avoid: jsonb renders floats its own way).
    Float(f64),
    /// A string version such as `00000000000000000000000000000002.0.9006228878075907`.
    Str(String),
}

impl<'de> Deserialize<'de> for ChannelVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match JsonValue::deserialize(deserializer)? {
            JsonValue::String(s) => Ok(Self::Str(s)),
            JsonValue::Number(n) => match n.as_i64() {
                Some(i) if crate::json::is_integer(&n) => Ok(Self::Int(i)),
                _ => n.as_f64().map(Self::Float).ok_or_else(|| {
                    serde::de::Error::custom(format!("channel version {n} is not a finite float"))
                }),
            },
            other => Err(serde::de::Error::custom(format!(
                "a channel version is a string or a number, not {other}"
            ))),
        }
    }
}

impl ChannelVersion {
    /// The meaningful integer part: the int itself, or the digits before the first `.`.
    pub fn integer_prefix(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            Self::Float(f) if f.is_finite() => Some(f.trunc() as i64),
            Self::Float(_) => None,
            Self::Str(s) => s.split('.').next().and_then(|p| p.parse().ok()),
        }
    }

    /// The text PostgreSQL's `jsonb_each_text` gives for this version; the key of
    /// content-addressed channel blobs.
    pub fn as_key_text(&self) -> String {
        match self {
            Self::Int(i) => i.to_string(),
            Self::Float(f) => format_float(*f),
            Self::Str(s) => s.clone(),
        }
    }

    /// The next version in the saver's string format (spec §1.7): the integer part plus one,
    /// zero-padded to 32 digits, a `.`, and `random` (a float in `[0, 1)`) rendered to at
    /// least 16 characters.
    pub fn next(current: Option<&ChannelVersion>, random: f64) -> ChannelVersion {
        let n = current.and_then(|c| c.integer_prefix()).unwrap_or(0) + 1;
        let frac = format_float(random.clamp(0.0, 0.999_999_999_999_999_9));
        ChannelVersion::Str(format!("{n:032}.{frac:0>16}"))
    }

    /// Orders versions by their integer prefix (what pregel's `max` means).
    pub fn cmp_prefix(&self, other: &Self) -> Ordering {
        self.integer_prefix().cmp(&other.integer_prefix())
    }
}

/// Python-`repr`-like rendering of a float: always a decimal point, shortest round trip.
fn format_float(f: f64) -> String {
    let s = format!("{f:?}");
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

/// Versions by channel.
pub type ChannelVersions = IndexMap<ChannelName, ChannelVersion>;

/// A checkpoint (spec §1.2): the state of a graph after one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version (`4` from langgraph 1.x, `1` from the conformance suite). Never rejected.
    pub v: i64,
    /// The checkpoint id.
    pub id: CheckpointId,
    /// Creation time as LangGraph wrote it (ISO text); treated as opaque.
    pub ts: String,
    /// Channel values in the checkpoint's own order.
    pub channel_values: IndexMap<ChannelName, TypedValue>,
    /// Channel versions.
    pub channel_versions: ChannelVersions,
    /// Node name -> the versions that node last consumed.
    pub versions_seen: IndexMap<String, ChannelVersions>,
    /// Channels updated in this step; `None` for `update_state` checkpoints.
    pub updated_channels: Option<Vec<ChannelName>>,
    /// Top-level keys this model does not name (`pending_sends`, future keys), round-tripped
    /// unchanged in their order.
    pub extra: IndexMap<String, TypedValue>,
}

impl Checkpoint {
    /// Bytes of every payload in the checkpoint (what a store that inlines every value pays).
    pub fn payload_len(&self) -> usize {
        self.channel_values
            .values()
            .chain(self.extra.values())
            .map(TypedValue::stored_len)
            .sum()
    }
}

/// Checkpoint metadata: a JSON object with LangGraph's known keys (spec §1.3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CheckpointMetadata(pub JsonObject);

impl CheckpointMetadata {
    /// `source`: `input`, `loop`, `update` or `fork`.
    pub fn source(&self) -> Option<&str> {
        self.0.get("source").and_then(JsonValue::as_str)
    }

    /// `step`: -1 for the first input, then one per superstep.
    pub fn step(&self) -> Option<i64> {
        self.0.get("step").and_then(JsonValue::as_i64)
    }

    /// `run_id`, when the caller supplied one.
    pub fn run_id(&self) -> Option<&str> {
        self.0.get("run_id").and_then(JsonValue::as_str)
    }

    /// `parents`: namespace -> checkpoint id.
    pub fn parent_in(&self, namespace: &str) -> Option<&str> {
        self.0
            .get("parents")
            .and_then(JsonValue::as_object)
            .and_then(|p| p.get(namespace))
            .and_then(JsonValue::as_str)
    }
}

/// Where a checkpoint lives: LangGraph's normalized three-key config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CheckpointRef {
    /// The thread.
    pub thread_id: ThreadId,
    /// The namespace (`""` for the root graph).
    pub namespace: CheckpointNamespace,
    /// The checkpoint.
    pub checkpoint_id: CheckpointId,
}

/// The channels with a reserved negative write index (LangGraph's `WRITES_IDX_MAP`).
pub const SPECIAL_WRITE_CHANNELS: [(&str, i64); 4] = [
    ("__error__", -1),
    ("__scheduled__", -2),
    ("__interrupt__", -3),
    ("__resume__", -4),
];

/// The stored index of the write at `position` of a `put_writes` call on `channel`.
pub fn write_index(channel: &str, position: usize) -> i64 {
    SPECIAL_WRITE_CHANNELS
        .iter()
        .find(|(c, _)| *c == channel)
        .map(|(_, idx)| *idx)
        .unwrap_or(position as i64)
}

/// True for the four channels of [`SPECIAL_WRITE_CHANNELS`].
pub fn is_special_write_channel(channel: &str) -> bool {
    SPECIAL_WRITE_CHANNELS.iter().any(|(c, _)| *c == channel)
}

/// A pending write of a task to a channel, stored against a checkpoint (spec §1.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingWrite {
    /// The writing task.
    pub task_id: TaskId,
    /// The task's path (`""` for no task); opaque, used only for ordering.
    pub task_path: String,
    /// The channel written.
    pub channel: ChannelName,
    /// The value.
    pub value: TypedValue,
    /// Position in the call, or the special channel's negative index.
    pub idx: i64,
}

impl PendingWrite {
    /// The mandatory order: `(task_path, task_id, idx)` ascending, text by code point.
    pub fn sort_key(&self) -> (&str, &str, i64) {
        (&self.task_path, self.task_id.as_str(), self.idx)
    }
}

/// Sorts writes into LangGraph's mandatory order.
pub fn sort_pending_writes(writes: &mut [PendingWrite]) {
    writes.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
}

/// What `get_tuple` and `list` return (spec §1.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointTuple {
    /// The thread.
    pub thread_id: ThreadId,
    /// The namespace.
    pub namespace: CheckpointNamespace,
    /// The reassembled checkpoint.
    pub checkpoint: Checkpoint,
    /// The stored metadata (`{}` when none was stored).
    pub metadata: CheckpointMetadata,
    /// The parent checkpoint, when one was recorded (it may since have been deleted).
    pub parent_id: Option<CheckpointId>,
    /// Pending writes in the mandatory order.
    pub pending_writes: Vec<PendingWrite>,
}

impl CheckpointTuple {
    /// This checkpoint's reference.
    pub fn reference(&self) -> CheckpointRef {
        CheckpointRef {
            thread_id: self.thread_id.clone(),
            namespace: self.namespace.clone(),
            checkpoint_id: self.checkpoint.id.clone(),
        }
    }

    /// The parent's reference, when there is a parent.
    pub fn parent_reference(&self) -> Option<CheckpointRef> {
        self.parent_id.as_ref().map(|p| CheckpointRef {
            thread_id: self.thread_id.clone(),
            namespace: self.namespace.clone(),
            checkpoint_id: p.clone(),
        })
    }
}

/// One `put`: a checkpoint, its parent, its metadata and the channels whose values are new.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointPut {
    /// The thread.
    pub thread_id: ThreadId,
    /// The namespace.
    pub namespace: CheckpointNamespace,
    /// The parent (the config's `checkpoint_id` at `put` time); `None` for a root.
    pub parent_id: Option<CheckpointId>,
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Metadata as it is to be stored (merging with the config is the caller's job).
    pub metadata: CheckpointMetadata,
    /// Channels whose value changed in this step, with their new versions. Stores write
    /// payloads for these channels; a value whose version is already stored is not stored
    /// again.
    pub new_versions: ChannelVersions,
}

impl CheckpointPut {
    /// The top-level checkpoint keys the model names; `extra` may not repeat them.
    pub const MODELLED_KEYS: [&'static str; 7] = [
        "v",
        "id",
        "ts",
        "channel_values",
        "channel_versions",
        "versions_seen",
        "updated_channels",
    ];

    /// The rules every store applies before writing a put: a checkpoint is not its own parent;
    /// `extra` keys are non-empty, do not repeat a [modelled key](Self::MODELLED_KEYS) and hold
    /// no U+0000; `ts`, node names and string versions hold no U+0000; float versions are finite
    /// (both databases store versions as text); metadata holds no U+0000 anywhere.
    pub fn validate(&self) -> DomainResult<()> {
        let cp = &self.checkpoint;
        if self.parent_id.as_ref() == Some(&cp.id) {
            return Err(DomainError::invalid(
                "parent_id",
                format!("checkpoint {} cannot be its own parent", cp.id),
            ));
        }
        for key in cp.extra.keys() {
            if key.is_empty() || Self::MODELLED_KEYS.contains(&key.as_str()) {
                return Err(DomainError::invalid(
                    "checkpoint",
                    format!("extra key {key:?} is empty or repeats a modelled checkpoint key"),
                ));
            }
            check_no_nul("checkpoint", key)?;
        }
        check_no_nul("ts", &cp.ts)?;
        check_versions("channel_versions", &cp.channel_versions)?;
        check_versions("new_versions", &self.new_versions)?;
        for (node, versions) in &cp.versions_seen {
            check_no_nul("versions_seen", node)?;
            check_versions("versions_seen", versions)?;
        }
        check_json_object("metadata", &self.metadata.0)
    }
}

/// Versions must have a finite float and NUL-free text (both databases store them as text).
fn check_versions(field: &'static str, versions: &ChannelVersions) -> DomainResult<()> {
    for (channel, version) in versions {
        match version {
            ChannelVersion::Float(f) if !f.is_finite() => {
                return Err(DomainError::invalid(
                    field,
                    format!("version of {channel} is not a finite number"),
                ));
            }
            ChannelVersion::Str(s) => check_no_nul(field, s)?,
            _ => {}
        }
    }
    Ok(())
}

/// One `put_writes` call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteBatch {
    /// The checkpoint the writes belong to.
    pub target: CheckpointRef,
    /// The writing task.
    pub task_id: TaskId,
    /// The task's path (`""` when none).
    pub task_path: String,
    /// `(channel, value)` in call order; positions become indices (spec §1.8).
    pub writes: Vec<(ChannelName, TypedValue)>,
}

impl WriteBatch {
    /// True when every channel is special: the call upserts instead of insert-or-ignore.
    pub fn is_upsert(&self) -> bool {
        !self.writes.is_empty()
            && self
                .writes
                .iter()
                .all(|(c, _)| is_special_write_channel(c.as_str()))
    }

    /// The rows this call stores, with their indices.
    pub fn to_pending_writes(&self) -> Vec<PendingWrite> {
        self.writes
            .iter()
            .enumerate()
            .map(|(i, (channel, value))| PendingWrite {
                task_id: self.task_id.clone(),
                task_path: self.task_path.clone(),
                channel: channel.clone(),
                value: value.clone(),
                idx: write_index(channel.as_str(), i),
            })
            .collect()
    }
}

/// `list` arguments (spec §1.1, §3.5, §4.6). All predicates are ANDed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointQuery {
    /// Only this thread; `None` lists every thread.
    pub thread_id: Option<ThreadId>,
    /// Only this namespace; `None` lists every namespace.
    pub namespace: Option<CheckpointNamespace>,
    /// Only this checkpoint.
    pub checkpoint_id: Option<CheckpointId>,
    /// Metadata filter; its matching rule is the backend's (containment on PostgreSQL and in
    /// memory, `json_extract` equality on LangGraph's SQLite layout; spec §5).
    pub filter: JsonObject,
    /// Only checkpoints whose id sorts before this one.
    pub before: Option<CheckpointId>,
    /// At most this many, newest first.
    pub limit: Option<u32>,
}

impl CheckpointQuery {
    /// Every checkpoint of one thread, all namespaces.
    pub fn thread(thread_id: ThreadId) -> Self {
        Self {
            thread_id: Some(thread_id),
            ..Self::default()
        }
    }

    /// Every checkpoint of one thread and namespace.
    pub fn thread_ns(thread_id: ThreadId, namespace: CheckpointNamespace) -> Self {
        Self {
            thread_id: Some(thread_id),
            namespace: Some(namespace),
            ..Self::default()
        }
    }
}

/// What `prune` does to the listed threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PruneStrategy {
    /// Keep the newest checkpoint of each namespace (spec §4.9).
    KeepLatest,
    /// Delete everything of the thread.
    Delete,
}

impl std::str::FromStr for PruneStrategy {
    type Err = DomainError;
    fn from_str(s: &str) -> DomainResult<Self> {
        match s {
            "keep_latest" => Ok(Self::KeepLatest),
            "delete" => Ok(Self::Delete),
            other => Err(DomainError::invalid(
                "strategy",
                format!("unknown prune strategy {other:?}; use keep_latest or delete"),
            )),
        }
    }
}

/// Counts and sizes of one thread's checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointSummary {
    /// Checkpoints, all namespaces.
    pub checkpoints: u64,
    /// Pending writes, all namespaces.
    pub writes: u64,
    /// Distinct namespaces.
    pub namespaces: u64,
    /// The smallest checkpoint id.
    pub oldest: Option<CheckpointId>,
    /// The greatest checkpoint id.
    pub newest: Option<CheckpointId>,
    /// Payload bytes the store holds for the thread, where it can tell.
    pub stored_bytes: Option<u64>,
}

/// How a checkpoint store's `list` matches a metadata filter (spec `langgraph-compat.md` §5).
/// The store reports it ([`CheckpointRepository::capabilities`]); callers never guess it from
/// a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterSemantics {
    /// jsonb containment ([`json_contains`](crate::json::json_contains)): memory, Waymark's
    /// native tables, LangGraph's PostgreSQL layout.
    Containment,
    /// `json_extract` path equality, as LangGraph's SQLite saver builds it: a key is a dotted
    /// path and must match `^[a-zA-Z0-9_.-]+$`.
    SqliteJsonExtract,
}

impl FilterSemantics {
    /// Refuses a filter key this matching rule cannot use. `SqliteSaver` refuses keys outside
    /// `^[a-zA-Z0-9_.-]+$` (they would be spliced into a JSON path); containment takes any key.
    pub fn check_key(self, key: &str) -> DomainResult<()> {
        let ok = match self {
            Self::Containment => true,
            Self::SqliteJsonExtract => {
                !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            }
        };
        if ok {
            Ok(())
        } else {
            Err(DomainError::invalid(
                "filter",
                format!(
                    "metadata filter key {key:?} is not allowed: keys may contain only ASCII \
                     letters, digits, '_', '.' and '-' (a dot descends into nested objects)"
                ),
            ))
        }
    }
}

/// The rules in which checkpoint layouts differ, as a store reports them
/// ([`CheckpointRepository::capabilities`]). The store enforces them itself; callers read them
/// to describe the store (the checkpointer's `GET /capabilities`, the contract suite) and to
/// refuse bad input *before* doing anything else on its behalf (claiming a thread, listing the
/// caller's threads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckpointCapabilities {
    /// How `list` matches a metadata filter.
    pub filter_semantics: FilterSemantics,
    /// True when every channel value and extra key is embedded in one msgpack document
    /// (LangGraph's SQLite layout, spec `langgraph-compat.md` §3.3), so only values tagged
    /// [`EMBEDDABLE_TAGS`](Self::EMBEDDABLE_TAGS) can be stored. Pending writes keep any tag.
    pub embeds_channel_values: bool,
    /// True when the database cannot hold U+0000 in text (PostgreSQL): a filter containing it
    /// is refused, since no stored metadata can contain it and the database would fail on it.
    pub refuses_nul_in_filters: bool,
}

impl CheckpointCapabilities {
    /// The serializer tags a msgpack document can embed as values.
    pub const EMBEDDABLE_TAGS: [&'static str; 4] = [
        TypedValue::MSGPACK,
        TypedValue::NULL,
        TypedValue::BYTES,
        TypedValue::BYTEARRAY,
    ];

    /// A store with containment filters that stores every tag and any text.
    pub const fn containment() -> Self {
        Self {
            filter_semantics: FilterSemantics::Containment,
            embeds_channel_values: false,
            refuses_nul_in_filters: false,
        }
    }

    /// The layout rules of a put (on top of [`CheckpointPut::validate`], which every store
    /// applies): on a layout that embeds values, every channel value and extra value carries
    /// an [embeddable tag](Self::EMBEDDABLE_TAGS).
    pub fn check_put(&self, put: &CheckpointPut) -> DomainResult<()> {
        if !self.embeds_channel_values {
            return Ok(());
        }
        let cp = &put.checkpoint;
        let values = cp.channel_values.iter().map(|(k, v)| (k.as_str(), v));
        let extra = cp.extra.iter().map(|(k, v)| (k.as_str(), v));
        for (key, value) in values.chain(extra) {
            if !Self::EMBEDDABLE_TAGS.contains(&value.type_tag()) {
                return Err(DomainError::invalid(
                    "checkpoint",
                    format!(
                        "{key:?} has serializer tag {:?}; this layout embeds every value in the \
                         checkpoint document and stores only tags msgpack, null, bytes or bytearray",
                        value.type_tag()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The layout rules of a `list` filter: keys the [matching rule](FilterSemantics::check_key)
    /// accepts, and no U+0000 (in a key or any string value, at any depth) where the database
    /// cannot hold it.
    pub fn check_filter(&self, filter: &JsonObject) -> DomainResult<()> {
        for key in filter.keys() {
            self.filter_semantics.check_key(key)?;
        }
        if self.refuses_nul_in_filters {
            check_json_object("filter", filter)?;
        }
        Ok(())
    }
}

/// The checkpoint port: LangGraph's saver operations plus what the thread and session layers
/// need (atomic multi-thread put, targeted deletes, summaries).
///
/// Ordering contract: checkpoints order by id text, newest first; "latest" is the greatest id
/// of `(thread, namespace)`.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait CheckpointRepository: Send + Sync {
    /// The rules of this store's layout (filter matching, storable tags, text limits). The
    /// store enforces them in every operation; callers read them to describe the store and to
    /// refuse bad input before acting on it. Decorators must forward it.
    fn capabilities(&self) -> CheckpointCapabilities;

    /// Stores a checkpoint (replacing one with the same key) and returns its reference.
    async fn put(&self, put: CheckpointPut) -> DomainResult<CheckpointRef>;

    /// Stores several checkpoints, possibly of different threads, all or none (a session's
    /// sync point).
    async fn put_many(&self, puts: Vec<CheckpointPut>) -> DomainResult<Vec<CheckpointRef>>;

    /// Stores pending writes against a checkpoint with the upsert-vs-ignore rule (spec §1.8).
    /// An empty batch is a no-op.
    async fn put_writes(&self, batch: WriteBatch) -> DomainResult<()>;

    /// The checkpoint `checkpoint_id`, or the latest of `(thread, namespace)` when `None`.
    async fn get_tuple(
        &self,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        checkpoint_id: Option<CheckpointId>,
    ) -> DomainResult<Option<CheckpointTuple>>;

    /// Checkpoints matching the query, newest first, each with its pending writes.
    async fn list(&self, query: &CheckpointQuery) -> DomainResult<Vec<CheckpointTuple>>;

    /// Deletes every checkpoint, write and payload of the thread (all namespaces).
    async fn delete_thread(&self, thread_id: &ThreadId) -> DomainResult<()>;

    /// Copies every checkpoint and write of `source` to `target` with the same ids; rows
    /// already at the target are left as they are. A missing source is a no-op.
    async fn copy_thread(&self, source: &ThreadId, target: &ThreadId) -> DomainResult<()>;

    /// Prunes the listed threads (spec §4.9); unknown threads are a no-op.
    async fn prune(&self, thread_ids: Vec<ThreadId>, strategy: PruneStrategy) -> DomainResult<()>;

    /// Deletes every checkpoint (all threads and namespaces) whose metadata `run_id` is one of
    /// `run_ids`, with its writes. Survivors keep their parent ids.
    async fn delete_for_runs(&self, run_ids: Vec<RunId>) -> DomainResult<()>;

    /// Deletes the given checkpoints of one thread and namespace with their writes; returns
    /// how many existed. Survivors keep their parent ids.
    async fn delete_checkpoints(
        &self,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        checkpoint_ids: Vec<CheckpointId>,
    ) -> DomainResult<u64>;

    /// Counts and sizes of one thread's checkpoints.
    async fn summary(&self, thread_id: &ThreadId) -> DomainResult<CheckpointSummary>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(s: &str) -> ChannelName {
        ChannelName::parse(s).unwrap()
    }

    fn put() -> CheckpointPut {
        CheckpointPut {
            thread_id: ThreadId::parse("t-1").unwrap(),
            namespace: CheckpointNamespace::parse("").unwrap(),
            parent_id: None,
            checkpoint: Checkpoint::empty(0),
            metadata: CheckpointMetadata::default(),
            new_versions: IndexMap::new(),
        }
    }

    fn invalid_field(result: DomainResult<()>) -> &'static str {
        match result {
            Err(DomainError::InvalidInput { field, .. }) => field,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn a_plain_put_is_valid() {
        let mut p = put();
        p.checkpoint
            .channel_versions
            .insert(ch("a"), ChannelVersion::Str("00001.0.5".into()));
        p.checkpoint
            .channel_versions
            .insert(ch("b"), ChannelVersion::Float(2.5));
        p.new_versions.insert(ch("a"), ChannelVersion::Int(1));
        p.checkpoint.extra.insert(
            "pending_sends".into(),
            TypedValue::new("json", b"[]".to_vec()).unwrap(),
        );
        p.parent_id = Some(CheckpointId::generate(-1));
        assert!(p.validate().is_ok());
    }

    #[test]
    fn put_validation_names_the_field_at_fault() {
        let mut own_parent = put();
        own_parent.parent_id = Some(own_parent.checkpoint.id.clone());
        assert_eq!(invalid_field(own_parent.validate()), "parent_id");

        for key in ["", "channel_values", "bad\0key"] {
            let mut p = put();
            let value = TypedValue::new("json", b"1".to_vec()).unwrap();
            p.checkpoint.extra.insert(key.into(), value);
            assert_eq!(invalid_field(p.validate()), "checkpoint", "{key:?}");
        }

        let mut ts = put();
        ts.checkpoint.ts = "2024\0".into();
        assert_eq!(invalid_field(ts.validate()), "ts");

        let mut infinite = put();
        infinite
            .checkpoint
            .channel_versions
            .insert(ch("a"), ChannelVersion::Float(f64::INFINITY));
        assert_eq!(invalid_field(infinite.validate()), "channel_versions");

        let mut nul_version = put();
        nul_version
            .new_versions
            .insert(ch("a"), ChannelVersion::Str("1\0".into()));
        assert_eq!(invalid_field(nul_version.validate()), "new_versions");

        let mut node = put();
        node.checkpoint
            .versions_seen
            .insert("no\0de".into(), IndexMap::new());
        assert_eq!(invalid_field(node.validate()), "versions_seen");

        let mut seen = put();
        let mut versions = IndexMap::new();
        versions.insert(ch("a"), ChannelVersion::Float(f64::NAN));
        seen.checkpoint
            .versions_seen
            .insert("node".into(), versions);
        assert_eq!(invalid_field(seen.validate()), "versions_seen");

        let mut metadata = put();
        metadata
            .metadata
            .0
            .insert("source".into(), JsonValue::String("lo\0op".into()));
        assert_eq!(invalid_field(metadata.validate()), "metadata");
    }

    #[test]
    fn write_indices_follow_the_special_map() {
        assert_eq!(write_index("a", 0), 0);
        assert_eq!(write_index("__interrupt__", 1), -3);
        assert_eq!(write_index("b", 2), 2);
        assert_eq!(write_index("__error__", 7), -1);
        assert_eq!(write_index("__resume__", 0), -4);
        assert_eq!(write_index("__scheduled__", 0), -2);
        assert_eq!(write_index("__pregel_tasks", 3), 3);
    }

    #[test]
    fn write_batch_upserts_only_when_all_channels_are_special() {
        let mut batch = WriteBatch {
            target: CheckpointRef {
                thread_id: ThreadId::parse("t").unwrap(),
                namespace: CheckpointNamespace::root(),
                checkpoint_id: CheckpointId::parse("c").unwrap(),
            },
            task_id: TaskId::parse("task").unwrap(),
            task_path: String::new(),
            writes: vec![
                (ch("__error__"), TypedValue::null()),
                (ch("__interrupt__"), TypedValue::null()),
            ],
        };
        assert!(batch.is_upsert());
        batch.writes.push((ch("a"), TypedValue::null()));
        assert!(!batch.is_upsert());
        let idx: Vec<i64> = batch.to_pending_writes().iter().map(|w| w.idx).collect();
        assert_eq!(idx, vec![-1, -3, 2]);
        batch.writes.clear();
        assert!(!batch.is_upsert());
    }

    #[test]
    fn pending_writes_sort_by_path_task_then_signed_index() {
        let w = |path: &str, task: &str, idx: i64| PendingWrite {
            task_id: TaskId::parse(task).unwrap(),
            task_path: path.to_owned(),
            channel: ch("c"),
            value: TypedValue::null(),
            idx,
        };
        let mut v = vec![
            w("~b", "t1", 0),
            w("", "t9", 1),
            w("~a", "t2", 1),
            w("~a", "t2", -3),
            w("~a", "t1", 5),
        ];
        sort_pending_writes(&mut v);
        let keys: Vec<_> = v
            .iter()
            .map(|w| (w.task_path.clone(), w.task_id.to_string(), w.idx))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("".into(), "t9".into(), 1),
                ("~a".into(), "t1".into(), 5),
                ("~a".into(), "t2".into(), -3),
                ("~a".into(), "t2".into(), 1),
                ("~b".into(), "t1".into(), 0),
            ]
        );
    }

    #[test]
    fn channel_versions_compare_by_integer_prefix_and_keep_their_type() {
        let s = ChannelVersion::Str("00000000000000000000000000000002.0.9006228878075907".into());
        assert_eq!(s.integer_prefix(), Some(2));
        assert_eq!(ChannelVersion::Int(1).as_key_text(), "1");
        assert_eq!(
            s.as_key_text(),
            "00000000000000000000000000000002.0.9006228878075907"
        );
        let next = ChannelVersion::next(Some(&s), 0.5);
        assert_eq!(
            next,
            ChannelVersion::Str("00000000000000000000000000000003.00000000000000.5".into())
        );
        let first = ChannelVersion::next(None, 0.123_456_789_012_345_67);
        assert!(
            matches!(&first, ChannelVersion::Str(t) if t.starts_with("00000000000000000000000000000001.0.123"))
        );
        assert_eq!(ChannelVersion::Int(3).cmp_prefix(&s), Ordering::Greater);
        let json = serde_json::to_string(&vec![ChannelVersion::Int(1), s.clone()]).unwrap();
        let back: Vec<ChannelVersion> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, vec![ChannelVersion::Int(1), s]);
    }

    #[test]
    fn typed_values_validate_tag_and_null() {
        assert!(TypedValue::new("msgpack", vec![1]).is_ok());
        assert!(TypedValue::new("", vec![]).is_err());
        assert!(TypedValue::new("has space", vec![]).is_err());
        assert!(TypedValue::new("null", vec![0]).is_err());
        assert!(TypedValue::null().is_null());
        assert_eq!(TypedValue::msgpack(vec![1, 2]).stored_len(), 9);
    }

    #[test]
    fn channel_versions_deserialize_from_json_text_keeping_their_type() {
        let vs: IndexMap<String, ChannelVersion> =
            serde_json::from_str(r#"{"a": 3, "b": 2.5, "c": "0002.5", "d": 1.0}"#).unwrap();
        assert_eq!(vs["a"], ChannelVersion::Int(3));
        assert_eq!(vs["b"], ChannelVersion::Float(2.5));
        assert_eq!(vs["c"], ChannelVersion::Str("0002.5".into()));
        assert_eq!(vs["d"], ChannelVersion::Float(1.0));
        assert!(serde_json::from_str::<ChannelVersion>("[1]").is_err());
        assert!(serde_json::from_str::<ChannelVersion>("1e400").is_err());
        assert_eq!(
            serde_json::to_string(&vs).unwrap(),
            r#"{"a":3,"b":2.5,"c":"0002.5","d":1.0}"#
        );
    }

    #[test]
    fn metadata_accessors_read_langgraph_keys() {
        let m: CheckpointMetadata =
            serde_json::from_str(r#"{"source":"loop","step":3,"run_id":"r1","parents":{"":"c0"}}"#)
                .unwrap();
        assert_eq!(m.source(), Some("loop"));
        assert_eq!(m.step(), Some(3));
        assert_eq!(m.run_id(), Some("r1"));
        assert_eq!(m.parent_in(""), Some("c0"));
        assert_eq!(m.parent_in("x"), None);
    }

    #[test]
    fn prune_strategy_parses_langgraph_names() {
        assert_eq!(
            "keep_latest".parse::<PruneStrategy>().unwrap(),
            PruneStrategy::KeepLatest
        );
        assert_eq!(
            "delete".parse::<PruneStrategy>().unwrap(),
            PruneStrategy::Delete
        );
        assert!(
            "nope"
                .parse::<PruneStrategy>()
                .unwrap_err()
                .is_invalid_input()
        );
    }

    #[test]
    fn sqlite_filter_keys_follow_langgraphs_pattern() {
        let sqlite = FilterSemantics::SqliteJsonExtract;
        assert!(sqlite.check_key("source").is_ok());
        assert!(sqlite.check_key("a.b-c_d").is_ok());
        for bad in ["a b", "x') OR 1=1 --", "", "a'", "$x", "é"] {
            assert_eq!(invalid_field(sqlite.check_key(bad)), "filter", "{bad:?}");
        }
        assert!(FilterSemantics::Containment.check_key("a b").is_ok());
    }

    #[test]
    fn capabilities_check_filters_by_layout() {
        let nul = serde_json::json!({"a": {"b": ["x\u{0}"]}});
        let nul = nul.as_object().unwrap();
        let bad_key = serde_json::json!({"a b": 1});
        let bad_key = bad_key.as_object().unwrap();
        let containment = CheckpointCapabilities::containment();
        assert!(containment.check_filter(nul).is_ok());
        assert!(containment.check_filter(bad_key).is_ok());
        let postgres = CheckpointCapabilities {
            refuses_nul_in_filters: true,
            ..containment
        };
        assert_eq!(invalid_field(postgres.check_filter(nul)), "filter");
        let nul_key = serde_json::json!({"k\u{0}": 1});
        assert!(postgres.check_filter(nul_key.as_object().unwrap()).is_err());
        assert!(postgres.check_filter(bad_key).is_ok());
        let sqlite = CheckpointCapabilities {
            filter_semantics: FilterSemantics::SqliteJsonExtract,
            ..containment
        };
        assert_eq!(invalid_field(sqlite.check_filter(bad_key)), "filter");
        assert!(sqlite.check_filter(nul).is_ok());
    }

    #[test]
    fn embedding_layouts_refuse_opaque_tags_in_values_and_extra() {
        let embedding = CheckpointCapabilities {
            embeds_channel_values: true,
            ..CheckpointCapabilities::containment()
        };
        let mut ok = put();
        for tag in CheckpointCapabilities::EMBEDDABLE_TAGS {
            let bytes = if tag == TypedValue::NULL {
                vec![]
            } else {
                vec![1]
            };
            let value = TypedValue::new(tag, bytes).unwrap();
            ok.checkpoint.channel_values.insert(ch(tag), value);
        }
        assert!(embedding.check_put(&ok).is_ok());
        let pickle = TypedValue::new("pickle", vec![0x80]).unwrap();
        let mut in_values = put();
        in_values
            .checkpoint
            .channel_values
            .insert(ch("p"), pickle.clone());
        assert_eq!(invalid_field(embedding.check_put(&in_values)), "checkpoint");
        let mut in_extra = put();
        in_extra.checkpoint.extra.insert("x".into(), pickle);
        assert_eq!(invalid_field(embedding.check_put(&in_extra)), "checkpoint");
        let separate = CheckpointCapabilities::containment();
        assert!(separate.check_put(&in_values).is_ok());
        assert!(separate.check_put(&in_extra).is_ok());
    }
}
