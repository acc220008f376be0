//! `put_writes`: the 10 conformance checks.

use std::collections::HashMap;

use serde_json::json;
use waymark_domain::checkpoint::TypedValue;

use super::helpers::*;
use crate::contract::fixtures::*;
use crate::harness::TestBackend;

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
