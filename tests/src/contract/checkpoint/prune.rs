//! `prune`: the 8 conformance checks.

use std::collections::HashMap;

use serde_json::json;
use waymark_domain::CheckpointId;
use waymark_domain::checkpoint::{CheckpointQuery, PruneStrategy};

use super::helpers::*;
use crate::contract::fixtures::*;
use crate::harness::TestBackend;

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
