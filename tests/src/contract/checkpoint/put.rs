//! `put`: the 17 conformance checks.

use indexmap::IndexMap;
use serde_json::json;
use waymark_domain::CheckpointId;
use waymark_domain::checkpoint::{ChannelVersion, TypedValue};

use super::helpers::*;
use crate::contract::fixtures::*;
use crate::harness::TestBackend;

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
