//! Beyond the conformance suite: write indices, order, upsert vs ignore.

use waymark_domain::checkpoint::TypedValue;

use super::helpers::*;
use crate::contract::fixtures::*;
use crate::harness::TestBackend;

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
