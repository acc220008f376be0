//! Builders shared by the contract cases: fresh random ids (so a case never collides with
//! another, even on a shared server), hand-encoded msgpack payloads, checkpoint puts, and a few
//! assertion helpers for typed errors.

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::Value;
use uuid::Uuid;
use waymark_domain::checkpoint::{
    ChannelVersion, ChannelVersions, Checkpoint, CheckpointMetadata, CheckpointPut, CheckpointRef,
    TypedValue, WriteBatch,
};
use waymark_domain::thread::NewThread;
use waymark_domain::{
    ChannelName, CheckpointId, CheckpointNamespace, DomainError, DomainResult, JsonObject, RunId,
    SessionId, TaskId, ThreadId, UserId, UserScope,
};

use crate::harness::TestBackend;

/// A short random suffix.
pub fn uid() -> String {
    Uuid::new_v4().simple().to_string()
}

/// A fresh thread id.
pub fn thread_id() -> ThreadId {
    ThreadId::parse(format!("t-{}", uid())).expect("valid thread id")
}

/// A fresh run id.
pub fn run_id() -> RunId {
    RunId::parse(format!("r-{}", uid())).expect("valid run id")
}

/// A fresh session id.
pub fn session_id() -> SessionId {
    SessionId::parse(format!("s-{}", uid())).expect("valid session id")
}

/// A fresh user.
pub fn user() -> UserId {
    UserId::parse(format!("u-{}", uid())).expect("valid user id")
}

/// The scope of a fresh user.
pub fn user_scope() -> UserScope {
    UserScope::User(user())
}

/// A task id from text.
pub fn task(s: &str) -> TaskId {
    TaskId::parse(s).expect("valid task id")
}

/// A fresh task id.
pub fn fresh_task() -> TaskId {
    TaskId::parse(Uuid::new_v4().to_string()).expect("valid task id")
}

/// A channel name.
pub fn ch(s: &str) -> ChannelName {
    ChannelName::parse(s).expect("valid channel")
}

/// A namespace.
pub fn ns(s: &str) -> CheckpointNamespace {
    CheckpointNamespace::parse(s).expect("valid namespace")
}

/// A checkpoint id from text (ids are opaque; any text is accepted).
pub fn cid(s: &str) -> CheckpointId {
    CheckpointId::parse(s).expect("valid checkpoint id")
}

/// A JSON object from a `json!` literal.
pub fn obj(v: Value) -> JsonObject {
    match v {
        Value::Object(m) => m,
        other => panic!("expected a JSON object, got {other}"),
    }
}

/// Hand-written canonical msgpack (the minimal forms ormsgpack emits), enough for the small
/// values the cases store. Canonical forms matter: a PostgreSQL layout inlines primitives as
/// jsonb and re-encodes them on read.
pub mod mp {
    /// A string.
    pub fn str(s: &str) -> Vec<u8> {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len() + 5);
        match b.len() {
            n if n < 32 => out.push(0xa0 | n as u8),
            n if n < 256 => out.extend([0xd9, n as u8]),
            n if n < 65_536 => {
                out.push(0xda);
                out.extend((n as u16).to_be_bytes());
            }
            n => {
                out.push(0xdb);
                out.extend((n as u32).to_be_bytes());
            }
        }
        out.extend_from_slice(b);
        out
    }

    /// An integer in its smallest form.
    pub fn int(i: i64) -> Vec<u8> {
        let mut out = Vec::new();
        if (0..=0x7f).contains(&i) {
            out.push(i as u8);
        } else if (-32..0).contains(&i) {
            out.push(i as i8 as u8);
        } else if i > 0 {
            if i <= u8::MAX as i64 {
                out.extend([0xcc, i as u8]);
            } else if i <= u16::MAX as i64 {
                out.push(0xcd);
                out.extend((i as u16).to_be_bytes());
            } else if i <= u32::MAX as i64 {
                out.push(0xce);
                out.extend((i as u32).to_be_bytes());
            } else {
                out.push(0xcf);
                out.extend((i as u64).to_be_bytes());
            }
        } else if i >= i8::MIN as i64 {
            out.extend([0xd0, i as i8 as u8]);
        } else if i >= i16::MIN as i64 {
            out.push(0xd1);
            out.extend((i as i16).to_be_bytes());
        } else if i >= i32::MIN as i64 {
            out.push(0xd2);
            out.extend((i as i32).to_be_bytes());
        } else {
            out.push(0xd3);
            out.extend(i.to_be_bytes());
        }
        out
    }

    /// A boolean.
    pub fn bool(b: bool) -> Vec<u8> {
        vec![if b { 0xc3 } else { 0xc2 }]
    }

    /// nil.
    pub fn nil() -> Vec<u8> {
        vec![0xc0]
    }

    /// An array of already-encoded elements (fewer than 16).
    pub fn array(items: Vec<Vec<u8>>) -> Vec<u8> {
        assert!(items.len() < 16, "fixarray only");
        let mut out = vec![0x90 | items.len() as u8];
        for i in items {
            out.extend(i);
        }
        out
    }

    /// A map of string keys to already-encoded values (fewer than 16 entries).
    pub fn map(entries: Vec<(&str, Vec<u8>)>) -> Vec<u8> {
        assert!(entries.len() < 16, "fixmap only");
        let mut out = vec![0x80 | entries.len() as u8];
        for (k, v) in entries {
            out.extend(str(k));
            out.extend(v);
        }
        out
    }
}

/// A msgpack string value.
pub fn mp_str(s: &str) -> TypedValue {
    TypedValue::msgpack(mp::str(s))
}

/// A msgpack integer value.
pub fn mp_int(i: i64) -> TypedValue {
    TypedValue::msgpack(mp::int(i))
}

/// A checkpoint shaped like the conformance suite's: `v = 1`, `pending_sends: []`, no updated
/// channels, the given values at int version 1.
///
/// A case that stores a *different* value for a channel of the same thread and namespace must
/// give it a new version: values are addressed by `(channel, version)` on the PostgreSQL layout
/// and in memory, as LangGraph's savers assume.
pub fn checkpoint(id: CheckpointId, values: &[(&str, TypedValue)]) -> Checkpoint {
    let mut channel_values = IndexMap::new();
    let mut channel_versions: ChannelVersions = IndexMap::new();
    for (name, value) in values {
        channel_values.insert(ch(name), value.clone());
        channel_versions.insert(ch(name), ChannelVersion::Int(1));
    }
    let mut extra = IndexMap::new();
    extra.insert(
        "pending_sends".to_owned(),
        TypedValue::msgpack(mp::array(vec![])),
    );
    Checkpoint {
        v: 1,
        id,
        ts: "2026-01-02T03:04:05.123456+00:00".to_owned(),
        channel_values,
        channel_versions,
        versions_seen: IndexMap::new(),
        updated_channels: None,
        extra,
    }
}

/// Metadata in the suite's shape: `{"source", "step", "parents": {}}` plus `extra`.
pub fn meta(source: &str, step: i64, extra: Value) -> CheckpointMetadata {
    let mut m = obj(serde_json::json!({"source": source, "step": step, "parents": {}}));
    if let Value::Object(e) = extra {
        m.extend(e);
    }
    CheckpointMetadata(m)
}

/// A put of `checkpoint` whose `new_versions` are all its channel versions (every value is
/// new), so every layout stores every value.
pub fn put_of(
    thread: &ThreadId,
    namespace: &CheckpointNamespace,
    parent: Option<&CheckpointId>,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
) -> CheckpointPut {
    CheckpointPut {
        thread_id: thread.clone(),
        namespace: namespace.clone(),
        parent_id: parent.cloned(),
        new_versions: checkpoint.channel_versions.clone(),
        checkpoint,
        metadata,
    }
}

/// Puts a checkpoint with a generated id and the given values; returns its reference.
pub async fn put_simple(
    b: &TestBackend,
    thread: &ThreadId,
    namespace: &CheckpointNamespace,
    parent: Option<&CheckpointId>,
    values: &[(&str, TypedValue)],
    metadata: CheckpointMetadata,
) -> CheckpointRef {
    let cp = checkpoint(CheckpointId::generate(0), values);
    b.stores
        .checkpoints
        .put(put_of(thread, namespace, parent, cp, metadata))
        .await
        .expect("put")
}

/// Puts `n` chained root-namespace checkpoints with metadata `{"source": "loop", "step": i}`;
/// returns their references oldest first.
pub async fn put_chain(b: &TestBackend, thread: &ThreadId, n: usize) -> Vec<CheckpointRef> {
    let mut refs: Vec<CheckpointRef> = Vec::new();
    for i in 0..n {
        let parent = refs.last().map(|r| r.checkpoint_id.clone());
        let mut cp = checkpoint(CheckpointId::generate(0), &[("step", mp_int(i as i64))]);
        cp.channel_versions
            .insert(ch("step"), ChannelVersion::Int(i as i64 + 1));
        let r = b
            .stores
            .checkpoints
            .put(put_of(
                thread,
                &CheckpointNamespace::root(),
                parent.as_ref(),
                cp,
                meta("loop", i as i64, serde_json::json!({})),
            ))
            .await
            .expect("put");
        refs.push(r);
    }
    refs
}

/// A write batch against `target`.
pub fn writes(
    target: &CheckpointRef,
    task_id: &TaskId,
    task_path: &str,
    writes: Vec<(&str, TypedValue)>,
) -> WriteBatch {
    WriteBatch {
        target: target.clone(),
        task_id: task_id.clone(),
        task_path: task_path.to_owned(),
        writes: writes.into_iter().map(|(c, v)| (ch(c), v)).collect(),
    }
}

/// The ids of the tuples, in the order given.
pub fn ids_of(tuples: &[waymark_domain::checkpoint::CheckpointTuple]) -> Vec<CheckpointId> {
    tuples.iter().map(|t| t.checkpoint.id.clone()).collect()
}

/// Creates a thread owned by the scope's user (or by nobody under `Unscoped`).
pub async fn create_thread(b: &TestBackend, scope: &UserScope) -> ThreadId {
    let id = thread_id();
    b.stores
        .threads
        .create(scope, NewThread::with_id(id.clone()))
        .await
        .expect("create thread");
    id
}

/// Asserts an `InvalidInput` error (not `MissingUser`) and returns its field.
#[track_caller]
pub fn expect_invalid<T: std::fmt::Debug>(r: DomainResult<T>) -> &'static str {
    match r {
        Err(DomainError::InvalidInput { field, .. }) => field,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

/// Asserts a `Conflict` error.
#[track_caller]
pub fn expect_conflict<T: std::fmt::Debug>(r: DomainResult<T>) {
    match r {
        Err(DomainError::Conflict { .. }) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
}

/// Asserts a `NotFound` error.
#[track_caller]
pub fn expect_not_found<T: std::fmt::Debug>(r: DomainResult<T>) {
    match r {
        Err(DomainError::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// Microsecond-truncated instant `secs` seconds after `base`.
pub fn at(base: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
    base + chrono::Duration::seconds(secs)
}

/// A session value to create: active, default policy, the clock's time.
pub fn session(b: &TestBackend, id: SessionId) -> waymark_domain::session::Session {
    use waymark_domain::clock::Clock;
    let now = b.clock.now();
    waymark_domain::session::Session {
        id,
        owner: None,
        title: None,
        metadata: JsonObject::new(),
        status: waymark_domain::session::SessionStatus::Active,
        checkpoint_policy: waymark_domain::session::CheckpointPolicy::default(),
        created_at: now,
        updated_at: now,
    }
}

/// Creates a session owned by the scope's user.
pub async fn create_session(b: &TestBackend, scope: &UserScope) -> SessionId {
    let id = session_id();
    b.stores
        .sessions
        .create(scope, session(b, id.clone()))
        .await
        .expect("create session");
    id
}
