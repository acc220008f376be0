//! `list`: the 16 conformance checks.

use serde_json::json;
use waymark_domain::checkpoint::CheckpointQuery;

use super::helpers::*;
use crate::contract::fixtures::*;
use crate::harness::TestBackend;

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
