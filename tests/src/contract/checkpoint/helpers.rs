//! What the checkpoint cases share: port calls that unwrap, query builders, fixtures.

use serde_json::json;
use waymark_domain::checkpoint::{
    ChannelVersion, CheckpointQuery, CheckpointRef, CheckpointTuple, PruneStrategy, TypedValue,
};
use waymark_domain::{CheckpointId, CheckpointNamespace, RunId, ThreadId};

use crate::contract::fixtures::*;
use crate::harness::TestBackend;

pub(super) async fn get(b: &TestBackend, r: &CheckpointRef) -> Option<CheckpointTuple> {
    b.stores
        .checkpoints
        .get_tuple(&r.thread_id, &r.namespace, Some(r.checkpoint_id.clone()))
        .await
        .expect("get_tuple")
}

pub(super) async fn latest(
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

pub(super) async fn list(b: &TestBackend, q: CheckpointQuery) -> Vec<CheckpointTuple> {
    b.stores.checkpoints.list(&q).await.expect("list")
}

pub(super) async fn list_thread(b: &TestBackend, thread: &ThreadId) -> Vec<CheckpointTuple> {
    list(b, CheckpointQuery::thread(thread.clone())).await
}

pub(super) fn filtered(thread: &ThreadId, filter: serde_json::Value) -> CheckpointQuery {
    CheckpointQuery {
        filter: obj(filter),
        ..CheckpointQuery::thread(thread.clone())
    }
}

pub(super) fn root() -> CheckpointNamespace {
    CheckpointNamespace::root()
}

/// `(task_id, channel, value)` triples, what LangGraph returns as pending writes.
pub(super) fn triples(t: &CheckpointTuple) -> Vec<(String, String, TypedValue)> {
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

pub(super) fn values_of(t: &CheckpointTuple) -> Vec<(String, TypedValue)> {
    t.checkpoint
        .channel_values
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

pub(super) fn value(t: &CheckpointTuple, channel: &str) -> Option<TypedValue> {
    t.checkpoint.channel_values.get(&ch(channel)).cloned()
}

/// Puts a checkpoint with the given metadata and values, generated id.
pub(super) async fn put_meta(
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
pub(super) async fn put_id(
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
pub(super) async fn list_fixture(b: &TestBackend) -> (ThreadId, Vec<CheckpointRef>) {
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

pub(super) async fn put_run(
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

pub(super) fn rid(s: &str) -> RunId {
    RunId::parse(s).expect("run id")
}

/// Source for the copy cases: three chained root checkpoints with distinct values and a
/// `run_id`, one write on the last.
pub(super) async fn copy_source(b: &TestBackend) -> (ThreadId, Vec<CheckpointRef>) {
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

pub(super) async fn copy(b: &TestBackend, from: &ThreadId, to: &ThreadId) {
    b.stores
        .checkpoints
        .copy_thread(from, to)
        .await
        .expect("copy_thread");
}

pub(super) async fn prune(b: &TestBackend, threads: Vec<ThreadId>, strategy: PruneStrategy) {
    b.stores
        .checkpoints
        .prune(threads, strategy)
        .await
        .expect("prune");
}
