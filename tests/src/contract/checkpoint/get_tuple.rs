//! `get_tuple`: the 10 conformance checks.

use indexmap::IndexMap;
use serde_json::json;
use waymark_domain::CheckpointId;
use waymark_domain::checkpoint::ChannelVersion;

use super::helpers::*;
use crate::contract::fixtures::*;
use crate::harness::TestBackend;

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
