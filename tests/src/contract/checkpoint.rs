//! The checkpoint contract: LangGraph's saver semantics (spec `langgraph-compat.md` §1, §4.4-4.9,
//! §5, §6.3) as [`CheckpointRepository`](waymark_domain::checkpoint::CheckpointRepository)
//! cases.
//!
//! The first 81 cases carry the names of the 81 checks of langgraph-checkpoint-conformance 0.0.2
//! (§7.3) without their `test_` prefix and assert the same intent through the Rust port. The
//! cases after them cover what the suite does not: id ordering, namespaces, write indices and
//! the upsert-vs-ignore rule, payload fidelity, atomic multi-thread puts, targeted deletes,
//! summaries, copy-on-read and the backend's filter rule.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use indexmap::IndexMap;
use serde_json::json;
use waymark_domain::checkpoint::CheckpointRepository;
use waymark_domain::checkpoint::{
    ChannelVersion, CheckpointQuery, CheckpointRef, CheckpointTuple, FilterSemantics, PendingWrite,
    PruneStrategy, TypedValue,
};
use waymark_domain::{CheckpointId, CheckpointNamespace, DomainResult, RunId, ThreadId};

use super::fixtures::*;
use crate::harness::TestBackend;

// ---------------------------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------------------------

async fn get(b: &TestBackend, r: &CheckpointRef) -> Option<CheckpointTuple> {
    b.stores
        .checkpoints
        .get_tuple(&r.thread_id, &r.namespace, Some(r.checkpoint_id.clone()))
        .await
        .expect("get_tuple")
}

async fn latest(
    b: &TestBackend,
    thread: &ThreadId,
    namespace: &CheckpointNamespace,
) -> Option<CheckpointTuple> {
    b.stores
        .checkpoints
        .get_tuple(thread, namespace, None)
        .await
        .expect("get_tuple")
}

async fn list(b: &TestBackend, q: CheckpointQuery) -> Vec<CheckpointTuple> {
    b.stores.checkpoints.list(&q).await.expect("list")
}

async fn list_thread(b: &TestBackend, thread: &ThreadId) -> Vec<CheckpointTuple> {
    list(b, CheckpointQuery::thread(thread.clone())).await
}

fn filtered(thread: &ThreadId, filter: serde_json::Value) -> CheckpointQuery {
    CheckpointQuery {
        filter: obj(filter),
        ..CheckpointQuery::thread(thread.clone())
    }
}

fn root() -> CheckpointNamespace {
    CheckpointNamespace::root()
}

/// `(task_id, channel, value)` triples, what LangGraph returns as pending writes.
fn triples(t: &CheckpointTuple) -> Vec<(String, String, TypedValue)> {
    t.pending_writes
        .iter()
        .map(|w| {
            (
                w.task_id.to_string(),
                w.channel.to_string(),
                w.value.clone(),
            )
        })
        .collect()
}

fn values_of(t: &CheckpointTuple) -> Vec<(String, TypedValue)> {
    t.checkpoint
        .channel_values
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn value(t: &CheckpointTuple, channel: &str) -> Option<TypedValue> {
    t.checkpoint.channel_values.get(&ch(channel)).cloned()
}

/// Puts a checkpoint with the given metadata and values, generated id.
async fn put_meta(
    b: &TestBackend,
    thread: &ThreadId,
    namespace: &CheckpointNamespace,
    parent: Option<&CheckpointId>,
    metadata: serde_json::Value,
) -> CheckpointRef {
    let m = waymark_domain::checkpoint::CheckpointMetadata(obj(metadata));
    put_simple(b, thread, namespace, parent, &[], m).await
}

/// Puts a checkpoint with an explicit id.
async fn put_id(
    b: &TestBackend,
    thread: &ThreadId,
    namespace: &CheckpointNamespace,
    id: &str,
    parent: Option<&str>,
) -> CheckpointRef {
    let cp = checkpoint(cid(id), &[]);
    let parent = parent.map(cid);
    b.stores
        .checkpoints
        .put(put_of(
            thread,
            namespace,
            parent.as_ref(),
            cp,
            meta("loop", 0, json!({})),
        ))
        .await
        .expect("put")
}

/// The conformance list fixture: four chained checkpoints, sources input/loop/input/loop,
/// steps 0-3.
async fn list_fixture(b: &TestBackend) -> (ThreadId, Vec<CheckpointRef>) {
    let thread = thread_id();
    let mut refs: Vec<CheckpointRef> = Vec::new();
    for (step, source) in ["input", "loop", "input", "loop"].into_iter().enumerate() {
        let parent = refs.last().map(|r| r.checkpoint_id.clone());
        let r = put_meta(
            b,
            &thread,
            &root(),
            parent.as_ref(),
            json!({"source": source, "step": step, "parents": {}}),
        )
        .await;
        refs.push(r);
    }
    (thread, refs)
}

async fn put_run(
    b: &TestBackend,
    thread: &ThreadId,
    namespace: &CheckpointNamespace,
    run: &str,
) -> CheckpointRef {
    put_meta(
        b,
        thread,
        namespace,
        None,
        json!({"source": "loop", "step": 0, "parents": {}, "run_id": run}),
    )
    .await
}

fn rid(s: &str) -> RunId {
    RunId::parse(s).expect("run id")
}

// =============================================================================================
// put (17 conformance checks)
// =============================================================================================

/// `test_put_returns_config`.
pub async fn put_returns_config(b: &TestBackend) {
    let thread = thread_id();
    let id = CheckpointId::generate(0);
    let cp = checkpoint(id.clone(), &[]);
    let r = b
        .stores
        .checkpoints
        .put(put_of(
            &thread,
            &root(),
            None,
            cp,
            meta("loop", 0, json!({})),
        ))
        .await
        .unwrap();
    assert_eq!(r.thread_id, thread);
    assert_eq!(r.namespace, root());
    assert_eq!(r.checkpoint_id, id);
}

/// `test_put_roundtrip`.
pub async fn put_roundtrip(b: &TestBackend) {
    let thread = thread_id();
    let r = put_simple(
        b,
        &thread,
        &root(),
        None,
        &[("msg", mp_str("hello"))],
        meta("loop", 0, json!({})),
    )
    .await;
    let t = get(b, &r).await.expect("stored");
    assert_eq!(t.checkpoint.id, r.checkpoint_id);
    assert_eq!(values_of(&t), vec![("msg".to_owned(), mp_str("hello"))]);
}

/// `test_put_preserves_channel_values`: a string, an int, a list and a map.
pub async fn put_preserves_channel_values(b: &TestBackend) {
    let cases = [
        mp_str("hello"),
        mp_int(42),
        TypedValue::msgpack(mp::array(vec![mp::int(1), mp::int(2), mp::int(3)])),
        TypedValue::msgpack(mp::map(vec![("nested", mp::bool(true))])),
    ];
    for v in cases {
        let thread = thread_id();
        let r = put_simple(
            b,
            &thread,
            &root(),
            None,
            &[("v", v.clone())],
            meta("loop", 0, json!({})),
        )
        .await;
        let t = get(b, &r).await.expect("stored");
        assert_eq!(value(&t, "v"), Some(v));
    }
}

/// `test_put_preserves_channel_versions`.
pub async fn put_preserves_channel_versions(b: &TestBackend) {
    let thread = thread_id();
    let mut cp = checkpoint(
        CheckpointId::generate(0),
        &[("a", mp_str("x")), ("b", mp_str("y"))],
    );
    cp.channel_versions.insert(ch("b"), ChannelVersion::Int(2));
    let r = b
        .stores
        .checkpoints
        .put(put_of(
            &thread,
            &root(),
            None,
            cp,
            meta("loop", 0, json!({})),
        ))
        .await
        .unwrap();
    let t = get(b, &r).await.unwrap();
    let v = &t.checkpoint.channel_versions;
    assert_eq!(v.get(&ch("a")).and_then(|v| v.integer_prefix()), Some(1));
    assert_eq!(v.get(&ch("b")).and_then(|v| v.integer_prefix()), Some(2));
}

/// `test_put_preserves_versions_seen`.
pub async fn put_preserves_versions_seen(b: &TestBackend) {
    let thread = thread_id();
    let mut cp = checkpoint(CheckpointId::generate(0), &[]);
    for node in ["node1", "node2"] {
        let mut seen = IndexMap::new();
        seen.insert(ch("a"), ChannelVersion::Int(1));
        cp.versions_seen.insert(node.to_owned(), seen);
    }
    let r = b
        .stores
        .checkpoints
        .put(put_of(
            &thread,
            &root(),
            None,
            cp,
            meta("loop", 0, json!({})),
        ))
        .await
        .unwrap();
    let t = get(b, &r).await.unwrap();
    assert!(t.checkpoint.versions_seen.contains_key("node1"));
    assert!(t.checkpoint.versions_seen.contains_key("node2"));
}

/// `test_put_preserves_metadata`.
pub async fn put_preserves_metadata(b: &TestBackend) {
    let thread = thread_id();
    let r = put_meta(
        b,
        &thread,
        &root(),
        None,
        json!({"source": "loop", "step": 3, "parents": {}, "custom_key": "custom_value"}),
    )
    .await;
    let t = get(b, &r).await.unwrap();
    assert_eq!(t.metadata.source(), Some("loop"));
    assert_eq!(t.metadata.step(), Some(3));
    assert_eq!(t.metadata.0.get("custom_key"), Some(&json!("custom_value")));
}

/// `test_put_root_namespace`.
pub async fn put_root_namespace(b: &TestBackend) {
    let thread = thread_id();
    let r = put_meta(b, &thread, &root(), None, json!({"source": "loop"})).await;
    assert_eq!(r.namespace, root());
    let t = get(b, &r).await.unwrap();
    assert_eq!(t.namespace, root());
    assert_eq!(t.reference(), r);
}

/// `test_put_child_namespace`.
pub async fn put_child_namespace(b: &TestBackend) {
    let thread = thread_id();
    let child = ns("child:abc");
    let r = put_meta(b, &thread, &child, None, json!({"source": "loop"})).await;
    assert_eq!(r.namespace, child);
    let t = get(b, &r).await.unwrap();
    assert_eq!(t.namespace, child);
}

/// `test_put_default_namespace`: a root put without a parent is the thread's latest.
pub async fn put_default_namespace(b: &TestBackend) {
    let thread = thread_id();
    let r = put_meta(b, &thread, &root(), None, json!({"source": "input"})).await;
    let t = latest(b, &thread, &root()).await.expect("retrievable");
    assert_eq!(t.checkpoint.id, r.checkpoint_id);
}

/// `test_put_multiple_checkpoints_same_thread`.
pub async fn put_multiple_checkpoints_same_thread(b: &TestBackend) {
    let thread = thread_id();
    let refs = put_chain(b, &thread, 3).await;
    for (i, r) in refs.iter().enumerate() {
        let t = get(b, r).await.expect("each retrievable");
        assert_eq!(t.checkpoint.id, r.checkpoint_id);
        assert_eq!(value(&t, "step"), Some(mp_int(i as i64)));
    }
}

/// `test_put_multiple_threads_isolated`.
pub async fn put_multiple_threads_isolated(b: &TestBackend) {
    let (t1, t2) = (thread_id(), thread_id());
    let m = || meta("loop", 0, json!({}));
    put_simple(b, &t1, &root(), None, &[("x", mp_str("one"))], m()).await;
    put_simple(b, &t2, &root(), None, &[("x", mp_str("two"))], m()).await;
    let a = latest(b, &t1, &root()).await.unwrap();
    let c = latest(b, &t2, &root()).await.unwrap();
    assert_eq!(value(&a, "x"), Some(mp_str("one")));
    assert_eq!(value(&c, "x"), Some(mp_str("two")));
}

/// `test_put_parent_config`.
pub async fn put_parent_config(b: &TestBackend) {
    let thread = thread_id();
    let refs = put_chain(b, &thread, 2).await;
    let first = get(b, &refs[0]).await.unwrap();
    let second = get(b, &refs[1]).await.unwrap();
    assert_eq!(first.parent_id, None);
    assert_eq!(second.parent_id, Some(refs[0].checkpoint_id.clone()));
    assert_eq!(second.parent_reference(), Some(refs[0].clone()));
}

/// `test_put_incremental_channel_update`: `new_versions` lists only the changed channel.
pub async fn put_incremental_channel_update(b: &TestBackend) {
    let thread = thread_id();
    let cp1 = checkpoint(
        CheckpointId::generate(0),
        &[("a", mp_str("v1")), ("b", mp_str("v2"))],
    );
    let r1 = b
        .stores
        .checkpoints
        .put(put_of(
            &thread,
            &root(),
            None,
            cp1,
            meta("loop", 0, json!({})),
        ))
        .await
        .unwrap();
    let mut cp2 = checkpoint(
        CheckpointId::generate(1),
        &[("a", mp_str("v1_updated")), ("b", mp_str("v2"))],
    );
    cp2.channel_versions.insert(ch("a"), ChannelVersion::Int(2));
    let mut put2 = put_of(
        &thread,
        &root(),
        Some(&r1.checkpoint_id),
        cp2,
        meta("loop", 1, json!({})),
    );
    put2.new_versions = IndexMap::from([(ch("a"), ChannelVersion::Int(2))]);
    let r2 = b.stores.checkpoints.put(put2).await.unwrap();

    let t2 = get(b, &r2).await.unwrap();
    assert_eq!(value(&t2, "a"), Some(mp_str("v1_updated")));
    assert_eq!(value(&t2, "b"), Some(mp_str("v2")));
    let t1 = get(b, &r1).await.unwrap();
    assert_eq!(value(&t1, "a"), Some(mp_str("v1")));
    assert_eq!(value(&t1, "b"), Some(mp_str("v2")));
}

/// `test_put_new_channel_added`.
pub async fn put_new_channel_added(b: &TestBackend) {
    let thread = thread_id();
    let r1 = put_simple(
        b,
        &thread,
        &root(),
        None,
        &[("a", mp_str("v1"))],
        meta("loop", 0, json!({})),
    )
    .await;
    let cp2 = checkpoint(
        CheckpointId::generate(1),
        &[("a", mp_str("v1")), ("b", mp_str("new"))],
    );
    let mut put2 = put_of(
        &thread,
        &root(),
        Some(&r1.checkpoint_id),
        cp2,
        meta("loop", 1, json!({})),
    );
    put2.new_versions = IndexMap::from([(ch("b"), ChannelVersion::Int(1))]);
    let r2 = b.stores.checkpoints.put(put2).await.unwrap();
    let t2 = get(b, &r2).await.unwrap();
    assert_eq!(value(&t2, "a"), Some(mp_str("v1")));
    assert_eq!(value(&t2, "b"), Some(mp_str("new")));
}

/// `test_put_channel_removed`.
pub async fn put_channel_removed(b: &TestBackend) {
    let thread = thread_id();
    let r1 = put_simple(
        b,
        &thread,
        &root(),
        None,
        &[("a", mp_str("v1")), ("b", mp_str("v2"))],
        meta("loop", 0, json!({})),
    )
    .await;
    let mut cp2 = checkpoint(CheckpointId::generate(1), &[("a", mp_str("v1_new"))]);
    cp2.channel_versions.insert(ch("a"), ChannelVersion::Int(2));
    let r2 = b
        .stores
        .checkpoints
        .put(put_of(
            &thread,
            &root(),
            Some(&r1.checkpoint_id),
            cp2,
            meta("loop", 1, json!({})),
        ))
        .await
        .unwrap();
    let t2 = get(b, &r2).await.unwrap();
    assert_eq!(value(&t2, "a"), Some(mp_str("v1_new")));
    assert_eq!(value(&t2, "b"), None, "b must be absent from cp2");
    assert!(!t2.checkpoint.channel_versions.contains_key(&ch("b")));
}

/// `test_put_preserves_run_id`.
pub async fn put_preserves_run_id(b: &TestBackend) {
    let thread = thread_id();
    let run = format!("run-{}", uid());
    let r = put_run(b, &thread, &root(), &run).await;
    let t = get(b, &r).await.unwrap();
    assert_eq!(t.metadata.run_id(), Some(run.as_str()));
}

/// `test_put_preserves_versions_seen_values`.
pub async fn put_preserves_versions_seen_values(b: &TestBackend) {
    let thread = thread_id();
    let mut cp = checkpoint(CheckpointId::generate(0), &[]);
    let mut n1 = IndexMap::new();
    n1.insert(ch("a"), ChannelVersion::Int(1));
    n1.insert(ch("b"), ChannelVersion::Int(5));
    let mut n2 = IndexMap::new();
    n2.insert(
        ch("c"),
        ChannelVersion::Str("00000000000000000000000000000003.0.25".into()),
    );
    cp.versions_seen.insert("node1".into(), n1.clone());
    cp.versions_seen.insert("node2".into(), n2.clone());
    let r = b
        .stores
        .checkpoints
        .put(put_of(
            &thread,
            &root(),
            None,
            cp,
            meta("loop", 0, json!({})),
        ))
        .await
        .unwrap();
    let t = get(b, &r).await.unwrap();
    for (node, want) in [("node1", n1), ("node2", n2)] {
        let have = &t.checkpoint.versions_seen[node];
        for (c, v) in want {
            assert_eq!(
                have.get(&c).and_then(|h| h.integer_prefix()),
                v.integer_prefix(),
                "{node}.{c}"
            );
        }
    }
}

// =============================================================================================
// put_writes (10 conformance checks)
// =============================================================================================

/// `test_put_writes_basic`.
pub async fn put_writes_basic(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    let t = fresh_task();
    b.stores
        .checkpoints
        .put_writes(writes(&r, &t, "", vec![("channel1", mp_str("value1"))]))
        .await
        .unwrap();
    let tuple = get(b, &r).await.unwrap();
    assert_eq!(
        triples(&tuple),
        vec![(t.to_string(), "channel1".to_owned(), mp_str("value1"))]
    );
}

/// `test_put_writes_multiple_writes_same_task`.
pub async fn put_writes_multiple_writes_same_task(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    let t = fresh_task();
    b.stores
        .checkpoints
        .put_writes(writes(
            &r,
            &t,
            "",
            vec![
                ("ch1", mp_str("v1")),
                ("ch2", mp_str("v2")),
                ("ch3", mp_str("v3")),
            ],
        ))
        .await
        .unwrap();
    let tuple = get(b, &r).await.unwrap();
    let got: Vec<_> = tuple
        .pending_writes
        .iter()
        .map(|w| (w.channel.to_string(), w.value.clone(), w.idx))
        .collect();
    assert_eq!(
        got,
        vec![
            ("ch1".into(), mp_str("v1"), 0),
            ("ch2".into(), mp_str("v2"), 1),
            ("ch3".into(), mp_str("v3"), 2),
        ]
    );
}

/// `test_put_writes_multiple_tasks`.
pub async fn put_writes_multiple_tasks(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    let (t1, t2) = (task("task-a"), task("task-b"));
    for (t, v) in [(&t1, "from-a"), (&t2, "from-b")] {
        b.stores
            .checkpoints
            .put_writes(writes(&r, t, "", vec![("ch", mp_str(v))]))
            .await
            .unwrap();
    }
    let tuple = get(b, &r).await.unwrap();
    assert_eq!(
        triples(&tuple),
        vec![
            ("task-a".into(), "ch".into(), mp_str("from-a")),
            ("task-b".into(), "ch".into(), mp_str("from-b")),
        ]
    );
}

/// `test_put_writes_preserves_task_id`.
pub async fn put_writes_preserves_task_id(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    let t = fresh_task();
    b.stores
        .checkpoints
        .put_writes(writes(&r, &t, "", vec![("ch", mp_str("v"))]))
        .await
        .unwrap();
    let tuple = get(b, &r).await.unwrap();
    assert_eq!(tuple.pending_writes[0].task_id, t);
}

/// `test_put_writes_preserves_channel_and_value`: a map value.
pub async fn put_writes_preserves_channel_and_value(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    let v = TypedValue::msgpack(mp::map(vec![("data", mp::int(123))]));
    b.stores
        .checkpoints
        .put_writes(writes(
            &r,
            &fresh_task(),
            "",
            vec![("my_channel", v.clone())],
        ))
        .await
        .unwrap();
    let tuple = get(b, &r).await.unwrap();
    assert_eq!(tuple.pending_writes.len(), 1);
    assert_eq!(tuple.pending_writes[0].channel, ch("my_channel"));
    assert_eq!(tuple.pending_writes[0].value, v);
}

/// `test_put_writes_task_path`.
pub async fn put_writes_task_path(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    b.stores
        .checkpoints
        .put_writes(writes(
            &r,
            &fresh_task(),
            "a:b:c",
            vec![("ch", mp_str("v"))],
        ))
        .await
        .unwrap();
    let tuple = get(b, &r).await.unwrap();
    assert_eq!(tuple.pending_writes.len(), 1);
    assert_eq!(tuple.pending_writes[0].task_path, "a:b:c");
}

/// `test_put_writes_idempotent`.
pub async fn put_writes_idempotent(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    let batch = writes(&r, &fresh_task(), "", vec![("ch", mp_str("v"))]);
    b.stores
        .checkpoints
        .put_writes(batch.clone())
        .await
        .unwrap();
    b.stores.checkpoints.put_writes(batch).await.unwrap();
    assert_eq!(get(b, &r).await.unwrap().pending_writes.len(), 1);
}

/// `test_put_writes_special_channels`: `__error__` and `__interrupt__` in one call.
pub async fn put_writes_special_channels(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    let err = mp_str("something went wrong");
    let intr = TypedValue::msgpack(mp::map(vec![("reason", mp::str("human_input"))]));
    b.stores
        .checkpoints
        .put_writes(writes(
            &r,
            &fresh_task(),
            "",
            vec![("__error__", err.clone()), ("__interrupt__", intr.clone())],
        ))
        .await
        .unwrap();
    let tuple = get(b, &r).await.unwrap();
    let by_channel: HashMap<String, Vec<TypedValue>> =
        tuple
            .pending_writes
            .iter()
            .fold(HashMap::new(), |mut m, w| {
                m.entry(w.channel.to_string())
                    .or_default()
                    .push(w.value.clone());
                m
            });
    assert_eq!(by_channel.len(), 2);
    assert_eq!(by_channel["__error__"], vec![err]);
    assert_eq!(by_channel["__interrupt__"], vec![intr]);
}

/// `test_put_writes_across_namespaces`.
pub async fn put_writes_across_namespaces(b: &TestBackend) {
    let thread = thread_id();
    let m = || meta("loop", 0, json!({}));
    let r0 = put_simple(b, &thread, &root(), None, &[], m()).await;
    let r1 = put_simple(b, &thread, &ns("child:1"), None, &[], m()).await;
    let t = fresh_task();
    b.stores
        .checkpoints
        .put_writes(writes(&r0, &t, "", vec![("ch", mp_str("root"))]))
        .await
        .unwrap();
    b.stores
        .checkpoints
        .put_writes(writes(&r1, &t, "", vec![("ch", mp_str("child"))]))
        .await
        .unwrap();
    let a = get(b, &r0).await.unwrap();
    let c = get(b, &r1).await.unwrap();
    assert_eq!(
        triples(&a),
        vec![(t.to_string(), "ch".into(), mp_str("root"))]
    );
    assert_eq!(
        triples(&c),
        vec![(t.to_string(), "ch".into(), mp_str("child"))]
    );
}

/// `test_put_writes_cleared_on_next_checkpoint`.
pub async fn put_writes_cleared_on_next_checkpoint(b: &TestBackend) {
    let thread = thread_id();
    let r1 = put_chain(b, &thread, 1).await.remove(0);
    b.stores
        .checkpoints
        .put_writes(writes(&r1, &fresh_task(), "", vec![("ch", mp_str("v"))]))
        .await
        .unwrap();
    let r2 = put_simple(
        b,
        &thread,
        &root(),
        Some(&r1.checkpoint_id),
        &[],
        meta("loop", 1, json!({})),
    )
    .await;
    assert!(get(b, &r2).await.unwrap().pending_writes.is_empty());
    assert_eq!(get(b, &r1).await.unwrap().pending_writes.len(), 1);
}

// =============================================================================================
// get_tuple (10 conformance checks)
// =============================================================================================

/// `test_get_tuple_nonexistent_returns_none`.
pub async fn get_tuple_nonexistent_returns_none(b: &TestBackend) {
    assert!(latest(b, &thread_id(), &root()).await.is_none());
}

/// `test_get_tuple_latest_when_no_checkpoint_id`.
pub async fn get_tuple_latest_when_no_checkpoint_id(b: &TestBackend) {
    let thread = thread_id();
    let refs = put_chain(b, &thread, 3).await;
    let t = latest(b, &thread, &root()).await.unwrap();
    assert_eq!(t.checkpoint.id, refs[2].checkpoint_id);
    assert_eq!(t.metadata.step(), Some(2));
}

/// `test_get_tuple_specific_checkpoint_id`.
pub async fn get_tuple_specific_checkpoint_id(b: &TestBackend) {
    let thread = thread_id();
    let refs = put_chain(b, &thread, 3).await;
    let t = get(b, &refs[0]).await.unwrap();
    assert_eq!(t.checkpoint.id, refs[0].checkpoint_id);
    assert_eq!(t.metadata.step(), Some(0));
}

/// `test_get_tuple_config_structure`.
pub async fn get_tuple_config_structure(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    let t = latest(b, &thread, &root()).await.unwrap();
    assert_eq!(t.thread_id, thread);
    assert_eq!(t.namespace, root());
    assert_eq!(t.checkpoint.id, r.checkpoint_id);
    assert_eq!(t.reference(), r);
}

/// `test_get_tuple_checkpoint_fields`: `v == 1` preserved, ts, values, versions.
pub async fn get_tuple_checkpoint_fields(b: &TestBackend) {
    let thread = thread_id();
    let mut cp = checkpoint(CheckpointId::generate(0), &[("k", mp_str("v"))]);
    cp.versions_seen.insert(
        "node".into(),
        IndexMap::from([(ch("k"), ChannelVersion::Int(1))]),
    );
    let r = b
        .stores
        .checkpoints
        .put(put_of(
            &thread,
            &root(),
            None,
            cp.clone(),
            meta("loop", 0, json!({})),
        ))
        .await
        .unwrap();
    let t = get(b, &r).await.unwrap();
    assert_eq!(t.checkpoint.id, cp.id);
    assert_eq!(t.checkpoint.v, 1);
    assert!(!t.checkpoint.ts.is_empty());
    assert_eq!(values_of(&t), vec![("k".to_owned(), mp_str("v"))]);
    assert_eq!(t.checkpoint.channel_versions, cp.channel_versions);
    assert_eq!(t.checkpoint.versions_seen, cp.versions_seen);
}

/// `test_get_tuple_metadata`.
pub async fn get_tuple_metadata(b: &TestBackend) {
    let thread = thread_id();
    let r = put_meta(
        b,
        &thread,
        &root(),
        None,
        json!({"source": "input", "step": -1, "parents": {}}),
    )
    .await;
    let t = get(b, &r).await.unwrap();
    assert_eq!(t.metadata.source(), Some("input"));
    assert_eq!(t.metadata.step(), Some(-1));
}

/// `test_get_tuple_parent_config`.
pub async fn get_tuple_parent_config(b: &TestBackend) {
    let thread = thread_id();
    let refs = put_chain(b, &thread, 2).await;
    assert_eq!(get(b, &refs[0]).await.unwrap().parent_reference(), None);
    assert_eq!(
        get(b, &refs[1]).await.unwrap().parent_reference(),
        Some(refs[0].clone())
    );
}

/// `test_get_tuple_pending_writes`.
pub async fn get_tuple_pending_writes(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    let t = fresh_task();
    b.stores
        .checkpoints
        .put_writes(writes(&r, &t, "", vec![("ch", mp_str("val"))]))
        .await
        .unwrap();
    let tuple = latest(b, &thread, &root()).await.unwrap();
    assert_eq!(
        triples(&tuple),
        vec![(t.to_string(), "ch".into(), mp_str("val"))]
    );
}

/// `test_get_tuple_respects_namespace`.
pub async fn get_tuple_respects_namespace(b: &TestBackend) {
    let thread = thread_id();
    let m = || meta("loop", 0, json!({}));
    let r0 = put_simple(b, &thread, &root(), None, &[("w", mp_str("root"))], m()).await;
    let r1 = put_simple(
        b,
        &thread,
        &ns("child:1"),
        None,
        &[("w", mp_str("child"))],
        m(),
    )
    .await;
    let a = latest(b, &thread, &root()).await.unwrap();
    let c = latest(b, &thread, &ns("child:1")).await.unwrap();
    assert_eq!(a.checkpoint.id, r0.checkpoint_id);
    assert_eq!(value(&a, "w"), Some(mp_str("root")));
    assert_eq!(c.checkpoint.id, r1.checkpoint_id);
    assert_eq!(c.namespace, ns("child:1"));
    // An id of one namespace is not found under the other.
    let cross = b
        .stores
        .checkpoints
        .get_tuple(&thread, &root(), Some(r1.checkpoint_id.clone()))
        .await
        .unwrap();
    assert!(cross.is_none());
}

/// `test_get_tuple_nonexistent_checkpoint_id`.
pub async fn get_tuple_nonexistent_checkpoint_id(b: &TestBackend) {
    let thread = thread_id();
    put_chain(b, &thread, 1).await;
    let t = b
        .stores
        .checkpoints
        .get_tuple(&thread, &root(), Some(CheckpointId::generate(0)))
        .await
        .unwrap();
    assert!(t.is_none());
}

// =============================================================================================
// list (16 conformance checks)
// =============================================================================================

/// `test_list_all`.
pub async fn list_all(b: &TestBackend) {
    let (thread, _) = list_fixture(b).await;
    assert_eq!(list_thread(b, &thread).await.len(), 4);
}

/// `test_list_by_thread`.
pub async fn list_by_thread(b: &TestBackend) {
    let (thread, _) = list_fixture(b).await;
    assert!(list_thread(b, &thread_id()).await.is_empty());
    assert_eq!(list_thread(b, &thread).await.len(), 4);
}

/// `test_list_by_namespace`.
pub async fn list_by_namespace(b: &TestBackend) {
    let thread = thread_id();
    put_meta(b, &thread, &root(), None, json!({"source": "loop"})).await;
    put_meta(b, &thread, &ns("child:1"), None, json!({"source": "loop"})).await;
    for n in ["", "child:1"] {
        let got = list(b, CheckpointQuery::thread_ns(thread.clone(), ns(n))).await;
        assert_eq!(got.len(), 1, "namespace {n:?}");
        assert_eq!(got[0].namespace, ns(n));
    }
}

/// `test_list_ordering`.
pub async fn list_ordering(b: &TestBackend) {
    let (thread, refs) = list_fixture(b).await;
    let got = ids_of(&list_thread(b, &thread).await);
    let want: Vec<_> = refs.iter().rev().map(|r| r.checkpoint_id.clone()).collect();
    assert_eq!(got, want);
}

/// `test_list_metadata_filter_single_key`.
pub async fn list_metadata_filter_single_key(b: &TestBackend) {
    let (thread, _) = list_fixture(b).await;
    let got = list(b, filtered(&thread, json!({"source": "input"}))).await;
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|t| t.metadata.source() == Some("input")));
}

/// `test_list_metadata_filter_step`.
pub async fn list_metadata_filter_step(b: &TestBackend) {
    let (thread, refs) = list_fixture(b).await;
    let got = list(b, filtered(&thread, json!({"step": 1}))).await;
    assert_eq!(ids_of(&got), vec![refs[1].checkpoint_id.clone()]);
}

/// `test_list_metadata_filter_multiple_keys`.
pub async fn list_metadata_filter_multiple_keys(b: &TestBackend) {
    let thread = thread_id();
    put_meta(
        b,
        &thread,
        &root(),
        None,
        json!({"source": "input", "step": 1}),
    )
    .await;
    put_meta(
        b,
        &thread,
        &root(),
        None,
        json!({"source": "loop", "step": 1}),
    )
    .await;
    let want = put_meta(
        b,
        &thread,
        &root(),
        None,
        json!({"source": "input", "step": 2}),
    )
    .await;
    let got = list(b, filtered(&thread, json!({"source": "input", "step": 2}))).await;
    assert_eq!(ids_of(&got), vec![want.checkpoint_id]);
}

/// `test_list_metadata_filter_no_match`.
pub async fn list_metadata_filter_no_match(b: &TestBackend) {
    let (thread, _) = list_fixture(b).await;
    let got = list(
        b,
        filtered(&thread, json!({"source": "update", "step": 99})),
    )
    .await;
    assert!(got.is_empty());
}

/// `test_list_metadata_custom_keys`.
pub async fn list_metadata_custom_keys(b: &TestBackend) {
    let thread = thread_id();
    put_meta(
        b,
        &thread,
        &root(),
        None,
        json!({"source": "loop", "score": 7, "run_id": "run-other"}),
    )
    .await;
    let want = put_meta(
        b,
        &thread,
        &root(),
        None,
        json!({"source": "loop", "score": 42, "run_id": "run-abc"}),
    )
    .await;
    let got = list(b, filtered(&thread, json!({"score": 42}))).await;
    assert_eq!(ids_of(&got), vec![want.checkpoint_id]);
    assert_eq!(got[0].metadata.run_id(), Some("run-abc"));
}

/// `test_list_before`.
pub async fn list_before(b: &TestBackend) {
    let (thread, refs) = list_fixture(b).await;
    let got = list(
        b,
        CheckpointQuery {
            before: Some(refs[2].checkpoint_id.clone()),
            ..CheckpointQuery::thread(thread)
        },
    )
    .await;
    assert_eq!(
        ids_of(&got),
        vec![refs[1].checkpoint_id.clone(), refs[0].checkpoint_id.clone()]
    );
}

/// `test_list_limit`.
pub async fn list_limit(b: &TestBackend) {
    let (thread, refs) = list_fixture(b).await;
    for n in [1u32, 2] {
        let got = list(
            b,
            CheckpointQuery {
                limit: Some(n),
                ..CheckpointQuery::thread(thread.clone())
            },
        )
        .await;
        let want: Vec<_> = refs
            .iter()
            .rev()
            .take(n as usize)
            .map(|r| r.checkpoint_id.clone())
            .collect();
        assert_eq!(ids_of(&got), want, "limit {n} keeps the newest");
    }
}

/// `test_list_limit_plus_before`.
pub async fn list_limit_plus_before(b: &TestBackend) {
    let (thread, refs) = list_fixture(b).await;
    let got = list(
        b,
        CheckpointQuery {
            before: Some(refs[3].checkpoint_id.clone()),
            limit: Some(1),
            ..CheckpointQuery::thread(thread)
        },
    )
    .await;
    assert_eq!(ids_of(&got), vec![refs[2].checkpoint_id.clone()]);
}

/// `test_list_combined_thread_and_filter`.
pub async fn list_combined_thread_and_filter(b: &TestBackend) {
    let (thread, refs) = list_fixture(b).await;
    // Another thread with loop checkpoints must not leak in.
    list_fixture(b).await;
    let got = list(b, filtered(&thread, json!({"source": "loop"}))).await;
    assert_eq!(
        ids_of(&got),
        vec![refs[3].checkpoint_id.clone(), refs[1].checkpoint_id.clone()]
    );
}

/// `test_list_empty_result`.
pub async fn list_empty_result(b: &TestBackend) {
    list_fixture(b).await;
    let got = list(b, filtered(&thread_id(), json!({"source": "input"}))).await;
    assert!(got.is_empty());
}

/// `test_list_includes_pending_writes`.
pub async fn list_includes_pending_writes(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    let t = fresh_task();
    b.stores
        .checkpoints
        .put_writes(writes(&r, &t, "", vec![("ch", mp_str("val"))]))
        .await
        .unwrap();
    let got = list_thread(b, &thread).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        triples(&got[0]),
        vec![(t.to_string(), "ch".into(), mp_str("val"))]
    );
}

/// `test_list_multiple_namespaces`.
pub async fn list_multiple_namespaces(b: &TestBackend) {
    let thread = thread_id();
    for n in ["", "child:1", "child:2"] {
        put_meta(b, &thread, &ns(n), None, json!({"source": "loop"})).await;
    }
    let got = list(b, CheckpointQuery::thread_ns(thread.clone(), root())).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].namespace, root());
}

// =============================================================================================
// delete_thread (5 conformance checks)
// =============================================================================================

/// `test_delete_thread_removes_checkpoints`.
pub async fn delete_thread_removes_checkpoints(b: &TestBackend) {
    let thread = thread_id();
    put_chain(b, &thread, 2).await;
    b.stores.checkpoints.delete_thread(&thread).await.unwrap();
    assert!(latest(b, &thread, &root()).await.is_none());
    assert!(list_thread(b, &thread).await.is_empty());
}

/// `test_delete_thread_removes_writes`.
pub async fn delete_thread_removes_writes(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    b.stores
        .checkpoints
        .put_writes(writes(&r, &fresh_task(), "", vec![("ch", mp_str("v"))]))
        .await
        .unwrap();
    b.stores.checkpoints.delete_thread(&thread).await.unwrap();
    assert!(get(b, &r).await.is_none());
    assert_eq!(
        b.stores.checkpoints.summary(&thread).await.unwrap().writes,
        0
    );
}

/// `test_delete_thread_removes_all_namespaces`.
pub async fn delete_thread_removes_all_namespaces(b: &TestBackend) {
    let thread = thread_id();
    put_meta(b, &thread, &root(), None, json!({})).await;
    put_meta(b, &thread, &ns("child:1"), None, json!({})).await;
    b.stores.checkpoints.delete_thread(&thread).await.unwrap();
    assert!(latest(b, &thread, &root()).await.is_none());
    assert!(latest(b, &thread, &ns("child:1")).await.is_none());
}

/// `test_delete_thread_preserves_other_threads`.
pub async fn delete_thread_preserves_other_threads(b: &TestBackend) {
    let (gone, kept) = (thread_id(), thread_id());
    put_chain(b, &gone, 1).await;
    let k = put_chain(b, &kept, 2).await;
    b.stores.checkpoints.delete_thread(&gone).await.unwrap();
    assert_eq!(
        ids_of(&list_thread(b, &kept).await),
        vec![k[1].checkpoint_id.clone(), k[0].checkpoint_id.clone()]
    );
}

/// `test_delete_thread_nonexistent_noop`.
pub async fn delete_thread_nonexistent_noop(b: &TestBackend) {
    b.stores
        .checkpoints
        .delete_thread(&thread_id())
        .await
        .expect("deleting an unknown thread succeeds");
}

// =============================================================================================
// delete_for_runs (7 conformance checks)
// =============================================================================================

/// `test_delete_for_runs_single`.
pub async fn delete_for_runs_single(b: &TestBackend) {
    let thread = thread_id();
    let (run1, run2) = (format!("run1-{}", uid()), format!("run2-{}", uid()));
    let c1 = put_run(b, &thread, &root(), &run1).await;
    let c2 = put_run(b, &thread, &root(), &run2).await;
    b.stores
        .checkpoints
        .delete_for_runs(vec![rid(&run1)])
        .await
        .unwrap();
    assert!(get(b, &c1).await.is_none());
    assert!(get(b, &c2).await.is_some());
}

/// `test_delete_for_runs_multiple`.
pub async fn delete_for_runs_multiple(b: &TestBackend) {
    let thread = thread_id();
    let runs: Vec<String> = (1..=3).map(|i| format!("run{i}-{}", uid())).collect();
    let mut refs = Vec::new();
    for r in &runs {
        refs.push(put_run(b, &thread, &root(), r).await);
    }
    b.stores
        .checkpoints
        .delete_for_runs(vec![rid(&runs[0]), rid(&runs[1])])
        .await
        .unwrap();
    assert_eq!(
        ids_of(&list_thread(b, &thread).await),
        vec![refs[2].checkpoint_id.clone()]
    );
}

/// `test_delete_for_runs_preserves_other_runs`: an unrelated run on another thread remains.
pub async fn delete_for_runs_preserves_other_runs(b: &TestBackend) {
    let (t1, t2) = (thread_id(), thread_id());
    let (doomed, other) = (format!("run-{}", uid()), format!("run-{}", uid()));
    put_run(b, &t1, &root(), &doomed).await;
    let keep = put_run(b, &t2, &root(), &other).await;
    let keep_same_thread = put_run(b, &t1, &root(), &other).await;
    b.stores
        .checkpoints
        .delete_for_runs(vec![rid(&doomed)])
        .await
        .unwrap();
    assert!(get(b, &keep).await.is_some());
    assert!(get(b, &keep_same_thread).await.is_some());
}

/// `test_delete_for_runs_removes_writes`.
pub async fn delete_for_runs_removes_writes(b: &TestBackend) {
    let thread = thread_id();
    let run = format!("run-{}", uid());
    let r = put_run(b, &thread, &root(), &run).await;
    b.stores
        .checkpoints
        .put_writes(writes(&r, &fresh_task(), "", vec![("ch", mp_str("v"))]))
        .await
        .unwrap();
    b.stores
        .checkpoints
        .delete_for_runs(vec![rid(&run)])
        .await
        .unwrap();
    assert!(get(b, &r).await.is_none());
    assert_eq!(
        b.stores.checkpoints.summary(&thread).await.unwrap().writes,
        0
    );
}

/// `test_delete_for_runs_empty_list_noop`.
pub async fn delete_for_runs_empty_list_noop(b: &TestBackend) {
    let thread = thread_id();
    let r = put_run(b, &thread, &root(), &format!("run-{}", uid())).await;
    b.stores.checkpoints.delete_for_runs(vec![]).await.unwrap();
    assert!(get(b, &r).await.is_some());
}

/// `test_delete_for_runs_nonexistent_noop`.
pub async fn delete_for_runs_nonexistent_noop(b: &TestBackend) {
    let thread = thread_id();
    let r = put_run(b, &thread, &root(), &format!("run-{}", uid())).await;
    b.stores
        .checkpoints
        .delete_for_runs(vec![rid(&format!("missing-{}", uid()))])
        .await
        .unwrap();
    assert!(get(b, &r).await.is_some());
}

/// `test_delete_for_runs_across_namespaces`.
pub async fn delete_for_runs_across_namespaces(b: &TestBackend) {
    let thread = thread_id();
    let run = format!("run-{}", uid());
    let a = put_run(b, &thread, &root(), &run).await;
    let c = put_run(b, &thread, &ns("child:1"), &run).await;
    b.stores
        .checkpoints
        .delete_for_runs(vec![rid(&run)])
        .await
        .unwrap();
    assert!(get(b, &a).await.is_none());
    assert!(get(b, &c).await.is_none());
}

// =============================================================================================
// copy_thread (8 conformance checks)
// =============================================================================================

/// Source for the copy cases: three chained root checkpoints with distinct values and a
/// `run_id`, one write on the last.
async fn copy_source(b: &TestBackend) -> (ThreadId, Vec<CheckpointRef>) {
    let thread = thread_id();
    let mut refs: Vec<CheckpointRef> = Vec::new();
    for i in 0..3 {
        let parent = refs.last().map(|r| r.checkpoint_id.clone());
        let mut cp = checkpoint(
            CheckpointId::generate(i),
            &[("v", mp_str(&format!("value-{i}")))],
        );
        cp.channel_versions
            .insert(ch("v"), ChannelVersion::Int(i + 1));
        let r = b
            .stores
            .checkpoints
            .put(put_of(
                &thread,
                &root(),
                parent.as_ref(),
                cp,
                meta(
                    "loop",
                    i,
                    json!({"run_id": "run-copy", "custom": {"nested": [i]}}),
                ),
            ))
            .await
            .unwrap();
        refs.push(r);
    }
    b.stores
        .checkpoints
        .put_writes(writes(
            &refs[2],
            &task("task-copy"),
            "~path",
            vec![("ch", mp_str("write_val"))],
        ))
        .await
        .unwrap();
    (thread, refs)
}

async fn copy(b: &TestBackend, from: &ThreadId, to: &ThreadId) {
    b.stores
        .checkpoints
        .copy_thread(from, to)
        .await
        .expect("copy_thread");
}

/// `test_copy_thread_basic`.
pub async fn copy_thread_basic(b: &TestBackend) {
    let (src, refs) = copy_source(b).await;
    let dst = thread_id();
    copy(b, &src, &dst).await;
    let got: BTreeSet<_> = ids_of(&list_thread(b, &dst).await).into_iter().collect();
    let want: BTreeSet<_> = refs.into_iter().map(|r| r.checkpoint_id).collect();
    assert_eq!(got, want);
}

/// `test_copy_thread_all_checkpoints`.
pub async fn copy_thread_all_checkpoints(b: &TestBackend) {
    let (src, _) = copy_source(b).await;
    let dst = thread_id();
    copy(b, &src, &dst).await;
    let s = list_thread(b, &src).await;
    let d = list_thread(b, &dst).await;
    assert_eq!(s.len(), d.len());
    let by_id: HashMap<_, _> = d.iter().map(|t| (t.checkpoint.id.clone(), t)).collect();
    for t in &s {
        let copied = by_id.get(&t.checkpoint.id).expect("same id on target");
        assert_eq!(
            copied.checkpoint.channel_values,
            t.checkpoint.channel_values
        );
        assert_eq!(copied.thread_id, dst);
    }
}

/// `test_copy_thread_preserves_metadata`.
pub async fn copy_thread_preserves_metadata(b: &TestBackend) {
    let (src, _) = copy_source(b).await;
    let dst = thread_id();
    copy(b, &src, &dst).await;
    let s = list_thread(b, &src).await;
    let d = list_thread(b, &dst).await;
    for (a, c) in s.iter().zip(&d) {
        assert_eq!(a.metadata, c.metadata, "metadata verbatim, run_id included");
    }
}

/// `test_copy_thread_preserves_namespaces`.
pub async fn copy_thread_preserves_namespaces(b: &TestBackend) {
    let src = thread_id();
    put_meta(b, &src, &root(), None, json!({"source": "loop"})).await;
    put_meta(b, &src, &ns("child:1"), None, json!({"source": "loop"})).await;
    let dst = thread_id();
    copy(b, &src, &dst).await;
    for n in ["", "child:1"] {
        let got = list(b, CheckpointQuery::thread_ns(dst.clone(), ns(n))).await;
        assert_eq!(got.len(), 1, "namespace {n:?}");
    }
}

/// `test_copy_thread_preserves_writes`.
pub async fn copy_thread_preserves_writes(b: &TestBackend) {
    let (src, _) = copy_source(b).await;
    let dst = thread_id();
    copy(b, &src, &dst).await;
    let t = latest(b, &dst, &root()).await.unwrap();
    assert_eq!(
        triples(&t),
        vec![("task-copy".into(), "ch".into(), mp_str("write_val"))]
    );
}

/// `test_copy_thread_preserves_ordering`.
pub async fn copy_thread_preserves_ordering(b: &TestBackend) {
    let (src, _) = copy_source(b).await;
    let dst = thread_id();
    copy(b, &src, &dst).await;
    assert_eq!(
        ids_of(&list_thread(b, &dst).await),
        ids_of(&list_thread(b, &src).await)
    );
}

/// `test_copy_thread_source_unchanged`.
pub async fn copy_thread_source_unchanged(b: &TestBackend) {
    let (src, _) = copy_source(b).await;
    let before = list_thread(b, &src).await;
    copy(b, &src, &thread_id()).await;
    assert_eq!(list_thread(b, &src).await, before);
}

/// `test_copy_thread_nonexistent_source`: a no-op success (Waymark rule), target empty.
pub async fn copy_thread_nonexistent_source(b: &TestBackend) {
    let dst = thread_id();
    copy(b, &thread_id(), &dst).await;
    assert!(list_thread(b, &dst).await.is_empty());
}

// =============================================================================================
// prune (8 conformance checks)
// =============================================================================================

async fn prune(b: &TestBackend, threads: Vec<ThreadId>, strategy: PruneStrategy) {
    b.stores
        .checkpoints
        .prune(threads, strategy)
        .await
        .expect("prune");
}

/// `test_prune_keep_latest_single_thread`.
pub async fn prune_keep_latest_single_thread(b: &TestBackend) {
    let thread = thread_id();
    let refs = put_chain(b, &thread, 4).await;
    prune(b, vec![thread.clone()], PruneStrategy::KeepLatest).await;
    assert_eq!(
        ids_of(&list_thread(b, &thread).await),
        vec![refs[3].checkpoint_id.clone()]
    );
}

/// `test_prune_keep_latest_multiple_threads`.
pub async fn prune_keep_latest_multiple_threads(b: &TestBackend) {
    let (t1, t2) = (thread_id(), thread_id());
    let r1 = put_chain(b, &t1, 3).await;
    let r2 = put_chain(b, &t2, 2).await;
    prune(b, vec![t1.clone(), t2.clone()], PruneStrategy::KeepLatest).await;
    assert_eq!(
        ids_of(&list_thread(b, &t1).await),
        vec![r1[2].checkpoint_id.clone()]
    );
    assert_eq!(
        ids_of(&list_thread(b, &t2).await),
        vec![r2[1].checkpoint_id.clone()]
    );
}

/// `test_prune_keep_latest_across_namespaces`.
pub async fn prune_keep_latest_across_namespaces(b: &TestBackend) {
    let thread = thread_id();
    let mut last = HashMap::new();
    for (n, count) in [("", 3), ("child:1", 2)] {
        let mut parent: Option<CheckpointId> = None;
        for i in 0..count {
            let r = put_meta(
                b,
                &thread,
                &ns(n),
                parent.as_ref(),
                json!({"source": "loop", "step": i, "parents": {}}),
            )
            .await;
            parent = Some(r.checkpoint_id.clone());
        }
        last.insert(n, parent.unwrap());
    }
    prune(b, vec![thread.clone()], PruneStrategy::KeepLatest).await;
    for n in ["", "child:1"] {
        let got = list(b, CheckpointQuery::thread_ns(thread.clone(), ns(n))).await;
        assert_eq!(ids_of(&got), vec![last[n].clone()], "namespace {n:?}");
    }
}

/// `test_prune_keep_latest_preserves_writes`.
pub async fn prune_keep_latest_preserves_writes(b: &TestBackend) {
    let thread = thread_id();
    let refs = put_chain(b, &thread, 3).await;
    let t = fresh_task();
    b.stores
        .checkpoints
        .put_writes(writes(&refs[2], &t, "", vec![("ch", mp_str("kept"))]))
        .await
        .unwrap();
    b.stores
        .checkpoints
        .put_writes(writes(&refs[0], &t, "", vec![("ch", mp_str("dropped"))]))
        .await
        .unwrap();
    prune(b, vec![thread.clone()], PruneStrategy::KeepLatest).await;
    let head = latest(b, &thread, &root()).await.unwrap();
    assert_eq!(
        triples(&head),
        vec![(t.to_string(), "ch".into(), mp_str("kept"))]
    );
    assert_eq!(
        b.stores.checkpoints.summary(&thread).await.unwrap().writes,
        1,
        "the pruned checkpoints' writes are gone"
    );
}

/// `test_prune_delete_all`.
pub async fn prune_delete_all(b: &TestBackend) {
    let thread = thread_id();
    let refs = put_chain(b, &thread, 3).await;
    b.stores
        .checkpoints
        .put_writes(writes(
            &refs[2],
            &fresh_task(),
            "",
            vec![("ch", mp_str("v"))],
        ))
        .await
        .unwrap();
    put_meta(b, &thread, &ns("child:1"), None, json!({})).await;
    prune(b, vec![thread.clone()], PruneStrategy::Delete).await;
    assert!(list_thread(b, &thread).await.is_empty());
    assert_eq!(
        b.stores.checkpoints.summary(&thread).await.unwrap().writes,
        0
    );
}

/// `test_prune_preserves_other_threads`.
pub async fn prune_preserves_other_threads(b: &TestBackend) {
    let (pruned, other) = (thread_id(), thread_id());
    put_chain(b, &pruned, 3).await;
    let keep = put_chain(b, &other, 3).await;
    let before = ids_of(&list_thread(b, &other).await);
    prune(b, vec![pruned], PruneStrategy::KeepLatest).await;
    assert_eq!(ids_of(&list_thread(b, &other).await), before);
    assert_eq!(before.len(), keep.len());
}

/// `test_prune_empty_list_noop`.
pub async fn prune_empty_list_noop(b: &TestBackend) {
    let thread = thread_id();
    put_chain(b, &thread, 2).await;
    prune(b, vec![], PruneStrategy::KeepLatest).await;
    prune(b, vec![], PruneStrategy::Delete).await;
    assert_eq!(list_thread(b, &thread).await.len(), 2);
}

/// `test_prune_nonexistent_noop`.
pub async fn prune_nonexistent_noop(b: &TestBackend) {
    prune(b, vec![thread_id()], PruneStrategy::KeepLatest).await;
    prune(b, vec![thread_id()], PruneStrategy::Delete).await;
}

// =============================================================================================
// Beyond the suite: ordering, namespaces, ids
// =============================================================================================

/// Checkpoints order by id text, newest (greatest) first, whatever the insertion order; ids
/// are opaque text and never format-checked.
pub async fn ordering_is_by_id_text_not_insertion(b: &TestBackend) {
    let thread = thread_id();
    for id in ["b-2", "c-3", "a-1"] {
        put_id(b, &thread, &root(), id, None).await;
    }
    let got: Vec<String> = ids_of(&list_thread(b, &thread).await)
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(got, vec!["c-3", "b-2", "a-1"]);
}

/// "Latest" is the greatest id of (thread, namespace), not the checkpoint written last and not
/// the tip of the branch just extended.
pub async fn latest_is_greatest_id_not_last_written(b: &TestBackend) {
    let thread = thread_id();
    put_id(b, &thread, &root(), "0001", None).await;
    put_id(b, &thread, &root(), "0002", Some("0001")).await;
    put_id(b, &thread, &root(), "0004", Some("0001")).await; // a fork of 0001
    put_id(b, &thread, &root(), "0003", Some("0002")).await; // extends the old branch, last
    let t = latest(b, &thread, &root()).await.unwrap();
    assert_eq!(t.checkpoint.id, cid("0004"));
    assert_eq!(t.parent_id, Some(cid("0001")));
}

/// `before` is a strict text comparison (`id < before`) and need not name a stored id.
pub async fn before_is_strict_text_comparison(b: &TestBackend) {
    let thread = thread_id();
    for id in ["a", "b", "c"] {
        put_id(b, &thread, &root(), id, None).await;
    }
    let q = |before: &str| CheckpointQuery {
        before: Some(cid(before)),
        ..CheckpointQuery::thread(thread.clone())
    };
    let names = |v: Vec<CheckpointTuple>| -> Vec<String> {
        ids_of(&v).into_iter().map(String::from).collect()
    };
    assert_eq!(names(list(b, q("b")).await), vec!["a"]);
    assert_eq!(names(list(b, q("bb")).await), vec!["b", "a"]);
    assert!(list(b, q("a")).await.is_empty());
}

/// `get_tuple` in the root namespace never answers with a subgraph checkpoint, even one with a
/// greater id.
pub async fn get_tuple_latest_is_per_namespace(b: &TestBackend) {
    let thread = thread_id();
    let r = put_id(b, &thread, &root(), "0001", None).await;
    put_id(b, &thread, &ns("child:x"), "0009", None).await;
    let t = latest(b, &thread, &root()).await.unwrap();
    assert_eq!(t.reference(), r);
}

/// A query without a namespace lists every namespace of the thread, newest id first.
pub async fn list_without_namespace_spans_namespaces(b: &TestBackend) {
    let thread = thread_id();
    put_id(b, &thread, &root(), "0001", None).await;
    put_id(b, &thread, &ns("child:1"), "0003", None).await;
    put_id(b, &thread, &ns("outer:1|inner:2"), "0002", None).await;
    let got: Vec<(String, String)> = list_thread(b, &thread)
        .await
        .into_iter()
        .map(|t| (t.namespace.to_string(), t.checkpoint.id.to_string()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("child:1".into(), "0003".into()),
            ("outer:1|inner:2".into(), "0002".into()),
            ("".into(), "0001".into()),
        ]
    );
}

/// A query with a checkpoint id returns only that checkpoint.
pub async fn list_by_checkpoint_id(b: &TestBackend) {
    let thread = thread_id();
    let refs = put_chain(b, &thread, 3).await;
    let got = list(
        b,
        CheckpointQuery {
            checkpoint_id: Some(refs[1].checkpoint_id.clone()),
            ..CheckpointQuery::thread(thread)
        },
    )
    .await;
    assert_eq!(ids_of(&got), vec![refs[1].checkpoint_id.clone()]);
}

/// A query without a thread lists every thread (scoped here by a unique metadata marker).
pub async fn list_without_thread_spans_threads(b: &TestBackend) {
    let marker = uid();
    let (t1, t2) = (thread_id(), thread_id());
    let a = put_meta(b, &t1, &root(), None, json!({"marker": marker})).await;
    let c = put_meta(b, &t2, &ns("child:1"), None, json!({"marker": marker})).await;
    put_meta(b, &t2, &root(), None, json!({"marker": "other"})).await;
    let got = list(
        b,
        CheckpointQuery {
            filter: obj(json!({"marker": marker})),
            ..CheckpointQuery::default()
        },
    )
    .await;
    assert_eq!(got.len(), 2);
    let refs: BTreeSet<_> = got.iter().map(|t| t.checkpoint.id.clone()).collect();
    assert_eq!(
        refs,
        BTreeSet::from([a.checkpoint_id.clone(), c.checkpoint_id.clone()])
    );
    assert!(got[0].checkpoint.id > got[1].checkpoint.id, "newest first");
}

// =============================================================================================
// Beyond the suite: write indices, order, upsert vs ignore
// =============================================================================================

/// Special channels take their reserved negative index, others their position in the call;
/// the negative indices sort first within the task.
pub async fn special_write_indices(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    b.stores
        .checkpoints
        .put_writes(writes(
            &r,
            &fresh_task(),
            "",
            vec![
                ("a", mp_int(1)),
                ("__interrupt__", mp_str("x")),
                ("b", mp_int(2)),
                ("__error__", mp_str("e")),
                ("__scheduled__", mp_str("s")),
                ("__resume__", mp_str("r")),
                ("__pregel_tasks", mp_str("t")),
            ],
        ))
        .await
        .unwrap();
    let got: Vec<(String, i64)> = get(b, &r)
        .await
        .unwrap()
        .pending_writes
        .iter()
        .map(|w| (w.channel.to_string(), w.idx))
        .collect();
    assert_eq!(
        got,
        vec![
            ("__resume__".into(), -4),
            ("__interrupt__".into(), -3),
            ("__scheduled__".into(), -2),
            ("__error__".into(), -1),
            ("a".into(), 0),
            ("b".into(), 2),
            ("__pregel_tasks".into(), 6),
        ]
    );
}

/// Pending writes come back sorted by `(task_path, task_id, idx)`, whatever the write order.
pub async fn pending_writes_sort_by_path_task_idx(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    let calls = [
        ("~b", "t0", vec![("x", mp_int(0))]),
        ("~a", "t2", vec![("x", mp_int(1)), ("y", mp_int(2))]),
        ("", "t9", vec![("x", mp_int(3))]),
        ("~a", "t1", vec![("x", mp_int(4))]),
        ("~a", "t2", vec![("__interrupt__", mp_int(5))]),
    ];
    for (path, t, w) in calls {
        b.stores
            .checkpoints
            .put_writes(writes(&r, &task(t), path, w))
            .await
            .unwrap();
    }
    let got: Vec<(String, String, i64)> = get(b, &r)
        .await
        .unwrap()
        .pending_writes
        .iter()
        .map(|w| (w.task_path.clone(), w.task_id.to_string(), w.idx))
        .collect();
    assert_eq!(
        got,
        vec![
            ("".into(), "t9".into(), 0),
            ("~a".into(), "t1".into(), 0),
            ("~a".into(), "t2".into(), -3),
            ("~a".into(), "t2".into(), 0),
            ("~a".into(), "t2".into(), 1),
            ("~b".into(), "t0".into(), 0),
        ]
    );
}

/// A call whose channels are all special upserts: the second value replaces the first.
pub async fn all_special_call_upserts(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    let t = fresh_task();
    for v in ["first", "second"] {
        b.stores
            .checkpoints
            .put_writes(writes(&r, &t, "", vec![("__error__", mp_str(v))]))
            .await
            .unwrap();
    }
    let tuple = get(b, &r).await.unwrap();
    assert_eq!(
        triples(&tuple),
        vec![(t.to_string(), "__error__".into(), mp_str("second"))]
    );
    assert_eq!(tuple.pending_writes[0].idx, -1);
}

/// A mixed call is insert-or-ignore for every row, special channels included: the first
/// write of each `(task, idx)` wins.
pub async fn mixed_call_is_insert_or_ignore(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    let t = fresh_task();
    for v in ["first", "second"] {
        b.stores
            .checkpoints
            .put_writes(writes(
                &r,
                &t,
                "",
                vec![("a", mp_str(v)), ("__error__", mp_str(v))],
            ))
            .await
            .unwrap();
    }
    let got: Vec<(String, TypedValue, i64)> = get(b, &r)
        .await
        .unwrap()
        .pending_writes
        .iter()
        .map(|w| (w.channel.to_string(), w.value.clone(), w.idx))
        .collect();
    assert_eq!(
        got,
        vec![
            ("__error__".into(), mp_str("first"), -1),
            ("a".into(), mp_str("first"), 0),
        ]
    );
}

/// Pregel re-sends the accumulated writes of the null task with one more at the end: the
/// earlier rows are ignored, the new one added.
pub async fn resent_accumulated_writes_add_only_new(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    let t = waymark_domain::TaskId::null();
    b.stores
        .checkpoints
        .put_writes(writes(&r, &t, "", vec![("a", mp_str("1"))]))
        .await
        .unwrap();
    b.stores
        .checkpoints
        .put_writes(writes(
            &r,
            &t,
            "",
            vec![("a", mp_str("1")), ("b", mp_str("2"))],
        ))
        .await
        .unwrap();
    let got: Vec<(String, i64)> = get(b, &r)
        .await
        .unwrap()
        .pending_writes
        .iter()
        .map(|w| (w.channel.to_string(), w.idx))
        .collect();
    assert_eq!(got, vec![("a".into(), 0), ("b".into(), 1)]);
}

/// An empty write batch stores nothing and succeeds.
pub async fn put_writes_empty_batch_is_noop(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    b.stores
        .checkpoints
        .put_writes(writes(&r, &fresh_task(), "", vec![]))
        .await
        .unwrap();
    assert!(get(b, &r).await.unwrap().pending_writes.is_empty());
}

// =============================================================================================
// Beyond the suite: payload fidelity
// =============================================================================================

/// The whole checkpoint comes back equal: `v`, `ts`, values, int and string versions,
/// `versions_seen`, `updated_channels` and unknown top-level keys in their order.
pub async fn checkpoint_round_trips_whole(b: &TestBackend) {
    let thread = thread_id();
    let mut cp = checkpoint(
        CheckpointId::generate(3),
        &[
            (
                "messages",
                TypedValue::msgpack(mp::array(vec![mp::str("hi")])),
            ),
            ("count", mp_int(-7)),
        ],
    );
    cp.v = 4;
    cp.ts = "2026-11-21T10:45:31.999013+00:00".into();
    cp.channel_versions.insert(
        ch("messages"),
        ChannelVersion::Str("00000000000000000000000000000002.0.9006228878075907".into()),
    );
    cp.versions_seen.insert("__input__".into(), IndexMap::new());
    cp.versions_seen.insert(
        "agent".into(),
        IndexMap::from([
            (
                ch("messages"),
                ChannelVersion::Str("00000000000000000000000000000001.0.5".into()),
            ),
            (ch("count"), ChannelVersion::Int(1)),
        ]),
    );
    cp.updated_channels = Some(vec![ch("count"), ch("messages")]);
    cp.extra.insert(
        "future_key".into(),
        TypedValue::msgpack(mp::map(vec![("x", mp::int(1))])),
    );
    let r = b
        .stores
        .checkpoints
        .put(put_of(
            &thread,
            &root(),
            None,
            cp.clone(),
            meta("loop", 3, json!({})),
        ))
        .await
        .unwrap();
    assert_eq!(get(b, &r).await.unwrap().checkpoint, cp);
}

/// Channel versions keep their type: an int stays an int, a string stays that string.
pub async fn channel_version_types_are_preserved(b: &TestBackend) {
    let thread = thread_id();
    let s = ChannelVersion::Str("00000000000000000000000000000007.0.123456789".into());
    let mut cp = checkpoint(
        CheckpointId::generate(0),
        &[("i", mp_int(1)), ("s", mp_int(2))],
    );
    cp.channel_versions.insert(ch("i"), ChannelVersion::Int(3));
    cp.channel_versions.insert(ch("s"), s.clone());
    let r = b
        .stores
        .checkpoints
        .put(put_of(
            &thread,
            &root(),
            None,
            cp,
            meta("loop", 0, json!({})),
        ))
        .await
        .unwrap();
    let t = get(b, &r).await.unwrap();
    assert_eq!(
        t.checkpoint.channel_versions[&ch("i")],
        ChannelVersion::Int(3)
    );
    assert_eq!(t.checkpoint.channel_versions[&ch("s")], s);
    assert_eq!(
        value(&t, "s"),
        Some(mp_int(2)),
        "values found through string versions"
    );
}

/// Any format version is stored and returned as given, never rejected.
pub async fn any_format_version_is_kept(b: &TestBackend) {
    for v in [1, 2, 4, 99] {
        let thread = thread_id();
        let mut cp = checkpoint(CheckpointId::generate(0), &[]);
        cp.v = v;
        let r = b
            .stores
            .checkpoints
            .put(put_of(
                &thread,
                &root(),
                None,
                cp,
                meta("loop", 0, json!({})),
            ))
            .await
            .unwrap();
        assert_eq!(get(b, &r).await.unwrap().checkpoint.v, v);
    }
}

/// msgpack payloads of every length form and raw `bytes` (NUL and high bytes included) come
/// back byte-for-byte.
pub async fn payload_bytes_round_trip_exactly(b: &TestBackend) {
    let thread = thread_id();
    let raw: Vec<u8> = (0..=255u8).collect();
    let values = vec![
        ("fix", mp_str("hello")),
        ("str8", mp_str(&"x".repeat(200))),
        ("str16", mp_str(&"é".repeat(1000))),
        ("u64", mp_int(i64::MAX)),
        ("neg", mp_int(-40_000)),
        (
            "bytes",
            TypedValue::new(TypedValue::BYTES, raw.clone()).unwrap(),
        ),
        (
            "empty_bytes",
            TypedValue::new(TypedValue::BYTES, vec![]).unwrap(),
        ),
    ];
    let r = put_simple(
        b,
        &thread,
        &root(),
        None,
        &values,
        meta("loop", 0, json!({})),
    )
    .await;
    let t = get(b, &r).await.unwrap();
    for (name, v) in values {
        assert_eq!(value(&t, name), Some(v), "channel {name}");
    }
}

/// Write values keep every serializer tag and their bytes: `bytes`, `bytearray`, legacy
/// `json`, `pickle`, encrypted `msgpack+aes`.
pub async fn write_values_keep_opaque_tags(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    let vals = vec![
        (
            "bytes",
            TypedValue::new("bytes", vec![0, 1, 2, 0xff]).unwrap(),
        ),
        (
            "bytearray",
            TypedValue::new("bytearray", vec![9, 0]).unwrap(),
        ),
        (
            "json",
            TypedValue::new("json", br#"{"a": 1}"#.to_vec()).unwrap(),
        ),
        (
            "pickle",
            TypedValue::new("pickle", vec![0x80, 0x05, 0x4b, 0x01, 0x2e]).unwrap(),
        ),
        (
            "aes",
            TypedValue::new("msgpack+aes", (0..48u8).collect()).unwrap(),
        ),
    ];
    b.stores
        .checkpoints
        .put_writes(writes(&r, &fresh_task(), "", vals.clone()))
        .await
        .unwrap();
    let got: Vec<(String, TypedValue)> = get(b, &r)
        .await
        .unwrap()
        .pending_writes
        .iter()
        .map(|w| (w.channel.to_string(), w.value.clone()))
        .collect();
    let want: Vec<(String, TypedValue)> =
        vals.into_iter().map(|(c, v)| (c.to_owned(), v)).collect();
    assert_eq!(got, want);
}

/// Channel values with opaque tags (`pickle`, `msgpack+aes`) round-trip on layouts that store
/// values separately; a layout that embeds every value in one msgpack document refuses them
/// with `InvalidInput` and writes nothing.
pub async fn opaque_channel_values_round_trip_or_are_refused(b: &TestBackend) {
    let thread = thread_id();
    let vals = [
        (
            "p",
            TypedValue::new("pickle", vec![0x80, 0x05, 0x4b, 0x01, 0x2e]).unwrap(),
        ),
        (
            "e",
            TypedValue::new("msgpack+aes", (0..40u8).collect()).unwrap(),
        ),
    ];
    let cp = checkpoint(CheckpointId::generate(0), &vals);
    let res = b
        .stores
        .checkpoints
        .put(put_of(
            &thread,
            &root(),
            None,
            cp,
            meta("loop", 0, json!({})),
        ))
        .await;
    if b.opaque_channel_values() {
        let r = res.expect("opaque values are stored");
        let t = get(b, &r).await.unwrap();
        for (name, v) in vals {
            assert_eq!(value(&t, name), Some(v));
        }
    } else {
        expect_invalid(res);
        assert!(list_thread(b, &thread).await.is_empty(), "nothing written");
    }
}

/// A null write is stored as tag `null` with zero bytes.
pub async fn null_write_is_null_tag_with_no_bytes(b: &TestBackend) {
    let thread = thread_id();
    let r = put_chain(b, &thread, 1).await.remove(0);
    b.stores
        .checkpoints
        .put_writes(writes(
            &r,
            &fresh_task(),
            "",
            vec![("branch:to:agent", TypedValue::null())],
        ))
        .await
        .unwrap();
    let w = get(b, &r).await.unwrap().pending_writes.remove(0);
    assert_eq!(w.value.type_tag(), "null");
    assert!(w.value.bytes().is_empty());
}

/// A null channel value reads back as nil: tag `null`, or msgpack `c0` on layouts that embed
/// values in one msgpack document.
pub async fn null_channel_value_reads_back_as_nil(b: &TestBackend) {
    let thread = thread_id();
    let r = put_simple(
        b,
        &thread,
        &root(),
        None,
        &[("branch:to:agent", TypedValue::null())],
        meta("loop", 0, json!({})),
    )
    .await;
    let v = value(&get(b, &r).await.unwrap(), "branch:to:agent").expect("channel present");
    assert!(
        v.is_null() || v == TypedValue::msgpack(mp::nil()),
        "nil expected, got {v:?}"
    );
}

/// Putting an existing key again replaces the checkpoint's content and metadata (one row).
pub async fn put_replaces_existing_key(b: &TestBackend) {
    let thread = thread_id();
    let id = CheckpointId::generate(0);
    for (val, step) in [("old", 1), ("new", 2)] {
        let mut cp = checkpoint(id.clone(), &[("v", mp_str(val))]);
        // A new value needs a new version: values are addressed by (channel, version).
        cp.channel_versions
            .insert(ch("v"), ChannelVersion::Int(step));
        b.stores
            .checkpoints
            .put(put_of(
                &thread,
                &root(),
                None,
                cp,
                meta("loop", step, json!({})),
            ))
            .await
            .unwrap();
    }
    let all = list_thread(b, &thread).await;
    assert_eq!(all.len(), 1);
    assert_eq!(value(&all[0], "v"), Some(mp_str("new")));
    assert_eq!(all[0].metadata.step(), Some(2));
}

/// Metadata round-trips as given: nested objects, arrays, nulls, unicode, floats and 64-bit
/// integers. (Key order is not asserted: PostgreSQL's jsonb, which LangGraph's layout uses,
/// does not keep it.)
pub async fn metadata_round_trips_verbatim(b: &TestBackend) {
    let thread = thread_id();
    let m = json!({
        "source": "update", "step": 5, "parents": {"": "abc"},
        "zeta": {"b": [1, {"c": null}], "a": true}, "unicode": "héllo ✓", "float": 1.5,
        "neg": -3, "big": i64::MAX
    });
    let r = put_meta(b, &thread, &root(), None, m.clone()).await;
    let t = get(b, &r).await.unwrap();
    assert_eq!(serde_json::Value::Object(t.metadata.0.clone()), m);
}

// =============================================================================================
// Beyond the suite: put_many, targeted deletes, summaries, copies
// =============================================================================================

/// `put_many` stores checkpoints of several threads and returns their references in order.
pub async fn put_many_stores_every_entry(b: &TestBackend) {
    let threads: Vec<ThreadId> = (0..3).map(|_| thread_id()).collect();
    let puts: Vec<_> = threads
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let cp = checkpoint(CheckpointId::generate(0), &[("i", mp_int(i as i64))]);
            put_of(t, &root(), None, cp, meta("loop", 0, json!({})))
        })
        .collect();
    let want: Vec<CheckpointRef> = puts
        .iter()
        .map(|p| CheckpointRef {
            thread_id: p.thread_id.clone(),
            namespace: p.namespace.clone(),
            checkpoint_id: p.checkpoint.id.clone(),
        })
        .collect();
    let refs = b.stores.checkpoints.put_many(puts).await.unwrap();
    assert_eq!(refs, want);
    for (i, r) in refs.iter().enumerate() {
        assert_eq!(
            value(&get(b, r).await.unwrap(), "i"),
            Some(mp_int(i as i64))
        );
    }
}

/// An empty `put_many` succeeds with no references.
pub async fn put_many_empty_is_noop(b: &TestBackend) {
    assert!(
        b.stores
            .checkpoints
            .put_many(vec![])
            .await
            .unwrap()
            .is_empty()
    );
}

/// `put_many` is all-or-nothing as readers see it: while a batch of 24 checkpoints on 24
/// threads is written, a single cross-thread `list` (one consistent read) sees either none of
/// them or all of them, never a part.
///
/// Every input the port can be handed is representable-valid (ids and payloads are parsed
/// newtypes), so there is no portable invalid entry with which to provoke a rollback; the
/// concurrent observer checks the same property from the reading side.
pub async fn put_many_is_all_or_nothing_for_readers(b: &TestBackend) {
    let marker = uid();
    let store = b.stores.checkpoints.clone();
    let done = Arc::new(AtomicBool::new(false));
    let q = CheckpointQuery {
        filter: obj(json!({"batch": marker})),
        ..CheckpointQuery::default()
    };
    let observer = {
        let (store, done, q) = (store.clone(), done.clone(), q.clone());
        tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            while !done.load(Ordering::SeqCst) {
                let n = store.list(&q).await.expect("list").len();
                seen.insert(n);
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    for _ in 0..5 {
        let m = uid();
        let puts: Vec<_> = (0..24)
            .map(|_| {
                let cp = checkpoint(CheckpointId::generate(0), &[]);
                put_of(
                    &thread_id(),
                    &root(),
                    None,
                    cp,
                    meta("loop", 0, json!({"batch": marker, "round": m})),
                )
            })
            .collect();
        store.put_many(puts).await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let seen = observer.await.unwrap();
    assert!(
        seen.iter().all(|n| n % 24 == 0),
        "a reader saw a partial batch: counts {seen:?}"
    );
    assert_eq!(store.list(&q).await.unwrap().len(), 120);
}

/// `delete_checkpoints` removes the listed checkpoints of one namespace with their writes,
/// counts only those that existed, and leaves other namespaces alone.
pub async fn delete_checkpoints_removes_listed_with_writes(b: &TestBackend) {
    let thread = thread_id();
    let refs = put_chain(b, &thread, 3).await;
    let child = put_id(
        b,
        &thread,
        &ns("child:1"),
        refs[0].checkpoint_id.as_str(),
        None,
    )
    .await;
    for r in [&refs[0], &refs[2]] {
        b.stores
            .checkpoints
            .put_writes(writes(r, &fresh_task(), "", vec![("ch", mp_str("v"))]))
            .await
            .unwrap();
    }
    let n = b
        .stores
        .checkpoints
        .delete_checkpoints(
            &thread,
            &root(),
            vec![
                refs[0].checkpoint_id.clone(),
                refs[1].checkpoint_id.clone(),
                cid("never-stored"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert!(get(b, &refs[0]).await.is_none());
    assert!(get(b, &refs[1]).await.is_none());
    assert!(
        get(b, &child).await.is_some(),
        "same id in another namespace kept"
    );
    let s = b.stores.checkpoints.summary(&thread).await.unwrap();
    assert_eq!((s.checkpoints, s.writes), (2, 1));
}

/// Survivors of `delete_checkpoints` keep their parent ids, dangling or not.
pub async fn delete_checkpoints_keeps_survivor_parents(b: &TestBackend) {
    let thread = thread_id();
    let refs = put_chain(b, &thread, 3).await;
    b.stores
        .checkpoints
        .delete_checkpoints(&thread, &root(), vec![refs[1].checkpoint_id.clone()])
        .await
        .unwrap();
    let head = get(b, &refs[2]).await.unwrap();
    assert_eq!(head.parent_id, Some(refs[1].checkpoint_id.clone()));
}

/// Survivors of `delete_for_runs` keep their parent ids.
pub async fn delete_for_runs_keeps_survivor_parents(b: &TestBackend) {
    let thread = thread_id();
    let run = format!("run-{}", uid());
    let first = put_run(b, &thread, &root(), &run).await;
    let second = put_meta(
        b,
        &thread,
        &root(),
        Some(&first.checkpoint_id),
        json!({"source": "loop", "run_id": "survivor"}),
    )
    .await;
    b.stores
        .checkpoints
        .delete_for_runs(vec![rid(&run)])
        .await
        .unwrap();
    let t = get(b, &second).await.unwrap();
    assert_eq!(t.parent_id, Some(first.checkpoint_id));
}

/// The summary counts checkpoints, writes and namespaces of the thread and names its oldest
/// and newest ids; an unknown thread has an empty summary.
pub async fn summary_counts_the_thread(b: &TestBackend) {
    let thread = thread_id();
    put_id(b, &thread, &root(), "0002", None).await;
    let r = put_id(b, &thread, &root(), "0005", Some("0002")).await;
    put_id(b, &thread, &ns("child:1"), "0001", None).await;
    put_chain(b, &thread_id(), 2).await; // another thread
    b.stores
        .checkpoints
        .put_writes(writes(
            &r,
            &fresh_task(),
            "",
            vec![("a", mp_int(1)), ("b", mp_int(2))],
        ))
        .await
        .unwrap();
    let s = b.stores.checkpoints.summary(&thread).await.unwrap();
    assert_eq!(s.checkpoints, 3);
    assert_eq!(s.writes, 2);
    assert_eq!(s.namespaces, 2);
    assert_eq!(s.oldest, Some(cid("0001")));
    assert_eq!(s.newest, Some(cid("0005")));

    let empty = b.stores.checkpoints.summary(&thread_id()).await.unwrap();
    assert_eq!(
        (empty.checkpoints, empty.writes, empty.namespaces),
        (0, 0, 0)
    );
    assert_eq!((empty.oldest, empty.newest), (None, None));
}

/// Mutating a returned tuple never changes what is stored.
pub async fn returned_tuples_are_copies(b: &TestBackend) {
    let thread = thread_id();
    let r = put_simple(
        b,
        &thread,
        &root(),
        None,
        &[("v", mp_str("stored"))],
        meta("loop", 0, json!({})),
    )
    .await;
    b.stores
        .checkpoints
        .put_writes(writes(&r, &fresh_task(), "", vec![("ch", mp_str("w"))]))
        .await
        .unwrap();
    let original = get(b, &r).await.unwrap();
    let mut t = original.clone();
    t.checkpoint
        .channel_values
        .insert(ch("v"), mp_str("mutated"));
    t.metadata.0.insert("step".into(), json!(99));
    t.pending_writes.clear();
    let mut listed = list_thread(b, &thread).await;
    listed[0].checkpoint.channel_values.clear();
    assert_eq!(get(b, &r).await.unwrap(), original);
    assert_eq!(list_thread(b, &thread).await, vec![original]);
}

/// A copy keeps parents, namespaces and the full write rows (task path and index included).
pub async fn copy_thread_preserves_parents_and_write_rows(b: &TestBackend) {
    let (src, refs) = copy_source(b).await;
    let dst = thread_id();
    copy(b, &src, &dst).await;
    let head = latest(b, &dst, &root()).await.unwrap();
    assert_eq!(head.parent_id, Some(refs[1].checkpoint_id.clone()));
    assert_eq!(
        head.pending_writes,
        vec![PendingWrite {
            task_id: task("task-copy"),
            task_path: "~path".into(),
            channel: ch("ch"),
            value: mp_str("write_val"),
            idx: 0,
        }]
    );
}

/// Rows already at the target with the same key are left as they are.
pub async fn copy_thread_leaves_existing_target_rows(b: &TestBackend) {
    let (src, refs) = copy_source(b).await;
    let dst = thread_id();
    let existing = checkpoint(
        refs[0].checkpoint_id.clone(),
        &[("v", mp_str("target-own"))],
    );
    b.stores
        .checkpoints
        .put(put_of(
            &dst,
            &root(),
            None,
            existing,
            meta("fork", 9, json!({})),
        ))
        .await
        .unwrap();
    copy(b, &src, &dst).await;
    let kept = b
        .stores
        .checkpoints
        .get_tuple(&dst, &root(), Some(refs[0].checkpoint_id.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value(&kept, "v"), Some(mp_str("target-own")));
    assert_eq!(kept.metadata.step(), Some(9));
    assert_eq!(list_thread(b, &dst).await.len(), 3);
}

// =============================================================================================
// Beyond the suite: prune details (§4.9)
// =============================================================================================

/// A kept head whose parent was pruned loses its parent id.
pub async fn prune_keep_latest_clears_dangling_parent(b: &TestBackend) {
    let thread = thread_id();
    let refs = put_chain(b, &thread, 3).await;
    prune(b, vec![thread.clone()], PruneStrategy::KeepLatest).await;
    let head = get(b, &refs[2]).await.unwrap();
    assert_eq!(head.parent_id, None);
}

/// A subgraph namespace hanging from a root checkpoint that is not kept is dropped whole; one
/// hanging from the kept head keeps its own latest.
pub async fn prune_drops_subgraphs_of_pruned_roots(b: &TestBackend) {
    let thread = thread_id();
    let roots = put_chain(b, &thread, 2).await;
    let under =
        |root_id: &CheckpointId| json!({"source": "loop", "parents": {"": root_id.as_str()}});
    let old_ns = ns("sub:old");
    let new_ns = ns("sub:new");
    let o1 = put_meta(b, &thread, &old_ns, None, under(&roots[0].checkpoint_id)).await;
    put_meta(
        b,
        &thread,
        &old_ns,
        Some(&o1.checkpoint_id),
        under(&roots[0].checkpoint_id),
    )
    .await;
    let n1 = put_meta(b, &thread, &new_ns, None, under(&roots[1].checkpoint_id)).await;
    let n2 = put_meta(
        b,
        &thread,
        &new_ns,
        Some(&n1.checkpoint_id),
        under(&roots[1].checkpoint_id),
    )
    .await;
    prune(b, vec![thread.clone()], PruneStrategy::KeepLatest).await;
    assert!(
        list(b, CheckpointQuery::thread_ns(thread.clone(), old_ns))
            .await
            .is_empty()
    );
    assert_eq!(
        ids_of(&list(b, CheckpointQuery::thread_ns(thread.clone(), new_ns)).await),
        vec![n2.checkpoint_id]
    );
    assert_eq!(
        ids_of(&list(b, CheckpointQuery::thread_ns(thread, root())).await),
        vec![roots[1].checkpoint_id.clone()]
    );
}

/// A legacy head (`v` < 4) keeps its parent when the parent holds `__pregel_tasks` writes; a
/// current head (`v` = 4) does not.
pub async fn prune_keeps_legacy_parent_with_pregel_tasks(b: &TestBackend) {
    for (v, parent_kept) in [(1, true), (4, false)] {
        let thread = thread_id();
        let mut refs: Vec<CheckpointRef> = Vec::new();
        for i in 0..3 {
            let mut cp = checkpoint(CheckpointId::generate(i), &[]);
            cp.v = v;
            let parent = refs.last().map(|r| r.checkpoint_id.clone());
            refs.push(
                b.stores
                    .checkpoints
                    .put(put_of(
                        &thread,
                        &root(),
                        parent.as_ref(),
                        cp,
                        meta("loop", i, json!({})),
                    ))
                    .await
                    .unwrap(),
            );
        }
        b.stores
            .checkpoints
            .put_writes(writes(
                &refs[1],
                &fresh_task(),
                "",
                vec![("__pregel_tasks", mp_str("send"))],
            ))
            .await
            .unwrap();
        prune(b, vec![thread.clone()], PruneStrategy::KeepLatest).await;
        let mut want = vec![refs[2].checkpoint_id.clone()];
        if parent_kept {
            want.push(refs[1].checkpoint_id.clone());
        }
        assert_eq!(ids_of(&list_thread(b, &thread).await), want, "v = {v}");
    }
}

// =============================================================================================
// Filters (spec §5): flat string/int filters agree everywhere; the rest follows the backend
// =============================================================================================

/// A thread holding one checkpoint with known metadata, asked whether filters match it.
struct Probe {
    store: Arc<dyn CheckpointRepository>,
    thread: ThreadId,
}

impl Probe {
    async fn new(b: &TestBackend, metadata: serde_json::Value) -> Self {
        let thread = thread_id();
        put_meta(b, &thread, &root(), None, metadata).await;
        Self {
            store: b.stores.checkpoints.clone(),
            thread,
        }
    }

    /// §5's reference metadata.
    async fn reference(b: &TestBackend) -> Self {
        Self::new(
            b,
            json!({"flag": true, "nothing": null, "obj": {"a": 1, "b": 2}, "lst": [1, 2], "step": 1}),
        )
        .await
    }

    async fn try_hit(&self, filter: serde_json::Value) -> DomainResult<bool> {
        let q = filtered(&self.thread, filter);
        self.store.list(&q).await.map(|v| !v.is_empty())
    }

    async fn hit(&self, filter: serde_json::Value) -> bool {
        self.try_hit(filter).await.expect("list with filter")
    }
}

fn containment(b: &TestBackend) -> bool {
    b.filter_semantics() == FilterSemantics::Containment
}

/// Flat string and integer filters match the same way on every backend.
pub async fn filter_flat_scalars_agree_everywhere(b: &TestBackend) {
    let p = Probe::new(b, json!({"source": "loop", "step": 1, "user": "u"})).await;
    assert!(p.hit(json!({"source": "loop"})).await);
    assert!(p.hit(json!({"step": 1, "user": "u"})).await);
    assert!(p.hit(json!({})).await, "an empty filter matches everything");
    assert!(!p.hit(json!({"step": 2})).await);
    assert!(
        !p.hit(json!({"step": "1"})).await,
        "a string never matches an int"
    );
    assert!(
        !p.hit(json!({"user": "U"})).await,
        "strings compare exactly"
    );
    assert!(!p.hit(json!({"absent": "x"})).await);
}

/// `{"flag": true}` matches everywhere; `{"flag": 1}` only under `json_extract` (true == 1).
pub async fn filter_true_versus_one(b: &TestBackend) {
    let p = Probe::reference(b).await;
    assert!(p.hit(json!({"flag": true})).await);
    assert_eq!(p.hit(json!({"flag": 1})).await, !containment(b));
}

/// A null filter matches an explicit null everywhere, a missing key only under
/// `json_extract`.
pub async fn filter_null_versus_missing(b: &TestBackend) {
    let p = Probe::reference(b).await;
    assert!(p.hit(json!({"nothing": null})).await);
    assert_eq!(p.hit(json!({"missing": null})).await, !containment(b));
}

/// A nested object matches by subset (in any key order) under containment, only as exact
/// compact text under `json_extract`.
pub async fn filter_nested_object_subset(b: &TestBackend) {
    let p = Probe::reference(b).await;
    assert!(
        p.hit(json!({"obj": {"a": 1, "b": 2}})).await,
        "exact object"
    );
    assert_eq!(p.hit(json!({"obj": {"a": 1}})).await, containment(b));
    assert_eq!(
        p.hit(json!({"obj": {"b": 2, "a": 1}})).await,
        containment(b)
    );
    assert!(!p.hit(json!({"obj": {"a": 2}})).await);
}

/// A list filter matches when the stored list contains its elements under containment only.
pub async fn filter_list_containment(b: &TestBackend) {
    let p = Probe::reference(b).await;
    assert_eq!(p.hit(json!({"lst": [1]})).await, containment(b));
    assert!(!p.hit(json!({"lst": [3]})).await);
}

/// Numbers compare by value (`1.0` matches `1`) and a string never matches a number.
pub async fn filter_numbers_compare_by_value(b: &TestBackend) {
    let p = Probe::reference(b).await;
    assert!(p.hit(json!({"step": 1.0})).await);
    assert!(!p.hit(json!({"step": "1"})).await);
}

/// A dotted key is a nested path under `json_extract`, a plain (absent) key under containment.
pub async fn filter_dotted_key(b: &TestBackend) {
    let p = Probe::reference(b).await;
    assert_eq!(p.hit(json!({"obj.a": 1})).await, !containment(b));
}

/// A key outside `[A-Za-z0-9_.-]` is refused with `InvalidInput` under `json_extract` (the
/// Python saver raises `ValueError`); containment has no key rule and simply finds nothing.
pub async fn filter_key_outside_the_sqlite_charset(b: &TestBackend) {
    let p = Probe::reference(b).await;
    let r = p.try_hit(json!({"bad key": 1})).await;
    if containment(b) {
        assert!(!r.unwrap());
    } else {
        expect_invalid(r);
    }
}

/// A filter holding U+0000 is refused with `InvalidInput` where the store reports that its
/// database cannot hold it (PostgreSQL; sent as is, jsonb would fail on it); elsewhere it finds
/// nothing, since no stored metadata can hold U+0000.
pub async fn filter_with_nul_follows_the_reported_rule(b: &TestBackend) {
    let p = Probe::reference(b).await;
    let refuses = b.stores.checkpoints.capabilities().refuses_nul_in_filters;
    for filter in [
        json!({"source": "lo\u{0}op"}),
        json!({"obj": {"a": "\u{0}"}}),
    ] {
        let r = p.try_hit(filter.clone()).await;
        if refuses {
            expect_invalid(r);
        } else {
            assert!(!r.expect("list with a NUL filter"), "{filter}");
        }
    }
}

// -- case list (every `pub async fn` above, in order) ----------------------------------------

/// Runs every checkpoint case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `checkpoint`.
#[macro_export]
macro_rules! checkpoint_contract {
    ($factory:path) => {
        mod checkpoint {
            $crate::__contract_cases!(
                $factory,
                checkpoint,
                [
                    put_returns_config,
                    put_roundtrip,
                    put_preserves_channel_values,
                    put_preserves_channel_versions,
                    put_preserves_versions_seen,
                    put_preserves_metadata,
                    put_root_namespace,
                    put_child_namespace,
                    put_default_namespace,
                    put_multiple_checkpoints_same_thread,
                    put_multiple_threads_isolated,
                    put_parent_config,
                    put_incremental_channel_update,
                    put_new_channel_added,
                    put_channel_removed,
                    put_preserves_run_id,
                    put_preserves_versions_seen_values,
                    put_writes_basic,
                    put_writes_multiple_writes_same_task,
                    put_writes_multiple_tasks,
                    put_writes_preserves_task_id,
                    put_writes_preserves_channel_and_value,
                    put_writes_task_path,
                    put_writes_idempotent,
                    put_writes_special_channels,
                    put_writes_across_namespaces,
                    put_writes_cleared_on_next_checkpoint,
                    get_tuple_nonexistent_returns_none,
                    get_tuple_latest_when_no_checkpoint_id,
                    get_tuple_specific_checkpoint_id,
                    get_tuple_config_structure,
                    get_tuple_checkpoint_fields,
                    get_tuple_metadata,
                    get_tuple_parent_config,
                    get_tuple_pending_writes,
                    get_tuple_respects_namespace,
                    get_tuple_nonexistent_checkpoint_id,
                    list_all,
                    list_by_thread,
                    list_by_namespace,
                    list_ordering,
                    list_metadata_filter_single_key,
                    list_metadata_filter_step,
                    list_metadata_filter_multiple_keys,
                    list_metadata_filter_no_match,
                    list_metadata_custom_keys,
                    list_before,
                    list_limit,
                    list_limit_plus_before,
                    list_combined_thread_and_filter,
                    list_empty_result,
                    list_includes_pending_writes,
                    list_multiple_namespaces,
                    delete_thread_removes_checkpoints,
                    delete_thread_removes_writes,
                    delete_thread_removes_all_namespaces,
                    delete_thread_preserves_other_threads,
                    delete_thread_nonexistent_noop,
                    delete_for_runs_single,
                    delete_for_runs_multiple,
                    delete_for_runs_preserves_other_runs,
                    delete_for_runs_removes_writes,
                    delete_for_runs_empty_list_noop,
                    delete_for_runs_nonexistent_noop,
                    delete_for_runs_across_namespaces,
                    copy_thread_basic,
                    copy_thread_all_checkpoints,
                    copy_thread_preserves_metadata,
                    copy_thread_preserves_namespaces,
                    copy_thread_preserves_writes,
                    copy_thread_preserves_ordering,
                    copy_thread_source_unchanged,
                    copy_thread_nonexistent_source,
                    prune_keep_latest_single_thread,
                    prune_keep_latest_multiple_threads,
                    prune_keep_latest_across_namespaces,
                    prune_keep_latest_preserves_writes,
                    prune_delete_all,
                    prune_preserves_other_threads,
                    prune_empty_list_noop,
                    prune_nonexistent_noop,
                    ordering_is_by_id_text_not_insertion,
                    latest_is_greatest_id_not_last_written,
                    before_is_strict_text_comparison,
                    get_tuple_latest_is_per_namespace,
                    list_without_namespace_spans_namespaces,
                    list_by_checkpoint_id,
                    list_without_thread_spans_threads,
                    special_write_indices,
                    pending_writes_sort_by_path_task_idx,
                    all_special_call_upserts,
                    mixed_call_is_insert_or_ignore,
                    resent_accumulated_writes_add_only_new,
                    put_writes_empty_batch_is_noop,
                    checkpoint_round_trips_whole,
                    channel_version_types_are_preserved,
                    any_format_version_is_kept,
                    payload_bytes_round_trip_exactly,
                    write_values_keep_opaque_tags,
                    opaque_channel_values_round_trip_or_are_refused,
                    null_write_is_null_tag_with_no_bytes,
                    null_channel_value_reads_back_as_nil,
                    put_replaces_existing_key,
                    metadata_round_trips_verbatim,
                    put_many_stores_every_entry,
                    put_many_empty_is_noop,
                    put_many_is_all_or_nothing_for_readers,
                    delete_checkpoints_removes_listed_with_writes,
                    delete_checkpoints_keeps_survivor_parents,
                    delete_for_runs_keeps_survivor_parents,
                    summary_counts_the_thread,
                    returned_tuples_are_copies,
                    copy_thread_preserves_parents_and_write_rows,
                    copy_thread_leaves_existing_target_rows,
                    prune_keep_latest_clears_dangling_parent,
                    prune_drops_subgraphs_of_pruned_roots,
                    prune_keeps_legacy_parent_with_pregel_tasks,
                    filter_flat_scalars_agree_everywhere,
                    filter_true_versus_one,
                    filter_null_versus_missing,
                    filter_nested_object_subset,
                    filter_list_containment,
                    filter_numbers_compare_by_value,
                    filter_dotted_key,
                    filter_key_outside_the_sqlite_charset,
                    filter_with_nul_follows_the_reported_rule,
                ]
            );
        }
    };
}
