//! `delete_for_runs`: the 7 conformance checks.

use super::helpers::*;
use crate::contract::fixtures::*;
use crate::harness::TestBackend;

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
