//! `copy_thread`: the 8 conformance checks.

use std::collections::{BTreeSet, HashMap};

use serde_json::json;
use waymark_domain::checkpoint::CheckpointQuery;

use super::helpers::*;
use crate::contract::fixtures::*;
use crate::harness::TestBackend;

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
