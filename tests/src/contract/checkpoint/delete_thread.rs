//! `delete_thread`: the 5 conformance checks.

use serde_json::json;

use super::helpers::*;
use crate::contract::fixtures::*;
use crate::harness::TestBackend;

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
