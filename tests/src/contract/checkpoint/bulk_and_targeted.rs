//! Beyond the conformance suite: `put_many`, targeted deletes, summaries, copies.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use waymark_domain::checkpoint::{CheckpointQuery, CheckpointRef, PendingWrite};
use waymark_domain::{CheckpointId, ThreadId};

use super::helpers::*;
use crate::contract::fixtures::*;
use crate::harness::TestBackend;

/// `put_many` stores checkpoints of several threads and returns their references in order.
pub async fn put_many_stores_every_entry(b: &TestBackend) {
    let threads: Vec<ThreadId> = (0..3).map(|_| thread_id()).collect();
    let puts: Vec<_> = threads
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let cp = checkpoint(CheckpointId::generate(0), &[("i", mp_int(i as i64))]);
            put_of(t, &root(), None, cp, meta("loop", 0, json!({})))
        })
        .collect();
    let want: Vec<CheckpointRef> = puts
        .iter()
        .map(|p| CheckpointRef {
            thread_id: p.thread_id.clone(),
            namespace: p.namespace.clone(),
            checkpoint_id: p.checkpoint.id.clone(),
        })
        .collect();
    let refs = b.stores.checkpoints.put_many(puts).await.unwrap();
    assert_eq!(refs, want);
    for (i, r) in refs.iter().enumerate() {
        assert_eq!(
            value(&get(b, r).await.unwrap(), "i"),
            Some(mp_int(i as i64))
        );
    }
}

/// An empty `put_many` succeeds with no references.
pub async fn put_many_empty_is_noop(b: &TestBackend) {
    assert!(
        b.stores
            .checkpoints
            .put_many(vec![])
            .await
            .unwrap()
            .is_empty()
    );
}

/// `put_many` is all-or-nothing as readers see it: while a batch of 24 checkpoints on 24
/// threads is written, a single cross-thread `list` (one consistent read) sees either none of
/// them or all of them, never a part.
///
/// Every input the port can be handed is representable-valid (ids and payloads are parsed
/// newtypes), so there is no portable invalid entry with which to provoke a rollback; the
/// concurrent observer checks the same property from the reading side.
pub async fn put_many_is_all_or_nothing_for_readers(b: &TestBackend) {
    let marker = uid();
    let store = b.stores.checkpoints.clone();
    let done = Arc::new(AtomicBool::new(false));
    let q = CheckpointQuery {
        filter: obj(json!({"batch": marker})),
        ..CheckpointQuery::default()
    };
    let observer = {
        let (store, done, q) = (store.clone(), done.clone(), q.clone());
        tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            while !done.load(Ordering::SeqCst) {
                let n = store.list(&q).await.expect("list").len();
                seen.insert(n);
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    for _ in 0..5 {
        let m = uid();
        let puts: Vec<_> = (0..24)
            .map(|_| {
                let cp = checkpoint(CheckpointId::generate(0), &[]);
                put_of(
                    &thread_id(),
                    &root(),
                    None,
                    cp,
                    meta("loop", 0, json!({"batch": marker, "round": m})),
                )
            })
            .collect();
        store.put_many(puts).await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let seen = observer.await.unwrap();
    assert!(
        seen.iter().all(|n| n % 24 == 0),
        "a reader saw a partial batch: counts {seen:?}"
    );
    assert_eq!(store.list(&q).await.unwrap().len(), 120);
}

/// `delete_checkpoints` removes the listed checkpoints of one namespace with their writes,
/// counts only those that existed, and leaves other namespaces alone.
pub async fn delete_checkpoints_removes_listed_with_writes(b: &TestBackend) {
    let thread = thread_id();
    let refs = put_chain(b, &thread, 3).await;
    let child = put_id(
        b,
        &thread,
        &ns("child:1"),
        refs[0].checkpoint_id.as_str(),
        None,
    )
    .await;
    for r in [&refs[0], &refs[2]] {
        b.stores
            .checkpoints
            .put_writes(writes(r, &fresh_task(), "", vec![("ch", mp_str("v"))]))
            .await
            .unwrap();
    }
    let n = b
        .stores
        .checkpoints
        .delete_checkpoints(
            &thread,
            &root(),
            vec![
                refs[0].checkpoint_id.clone(),
                refs[1].checkpoint_id.clone(),
                cid("never-stored"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert!(get(b, &refs[0]).await.is_none());
    assert!(get(b, &refs[1]).await.is_none());
    assert!(
        get(b, &child).await.is_some(),
        "same id in another namespace kept"
    );
    let s = b.stores.checkpoints.summary(&thread).await.unwrap();
    assert_eq!((s.checkpoints, s.writes), (2, 1));
}

/// Survivors of `delete_checkpoints` keep their parent ids, dangling or not.
pub async fn delete_checkpoints_keeps_survivor_parents(b: &TestBackend) {
    let thread = thread_id();
    let refs = put_chain(b, &thread, 3).await;
    b.stores
        .checkpoints
        .delete_checkpoints(&thread, &root(), vec![refs[1].checkpoint_id.clone()])
        .await
        .unwrap();
    let head = get(b, &refs[2]).await.unwrap();
    assert_eq!(head.parent_id, Some(refs[1].checkpoint_id.clone()));
}

/// Survivors of `delete_for_runs` keep their parent ids.
pub async fn delete_for_runs_keeps_survivor_parents(b: &TestBackend) {
    let thread = thread_id();
    let run = format!("run-{}", uid());
    let first = put_run(b, &thread, &root(), &run).await;
    let second = put_meta(
        b,
        &thread,
        &root(),
        Some(&first.checkpoint_id),
        json!({"source": "loop", "run_id": "survivor"}),
    )
    .await;
    b.stores
        .checkpoints
        .delete_for_runs(vec![rid(&run)])
        .await
        .unwrap();
    let t = get(b, &second).await.unwrap();
    assert_eq!(t.parent_id, Some(first.checkpoint_id));
}

/// The summary counts checkpoints, writes and namespaces of the thread and names its oldest
/// and newest ids; an unknown thread has an empty summary.
pub async fn summary_counts_the_thread(b: &TestBackend) {
    let thread = thread_id();
    put_id(b, &thread, &root(), "0002", None).await;
    let r = put_id(b, &thread, &root(), "0005", Some("0002")).await;
    put_id(b, &thread, &ns("child:1"), "0001", None).await;
    put_chain(b, &thread_id(), 2).await; // another thread
    b.stores
        .checkpoints
        .put_writes(writes(
            &r,
            &fresh_task(),
            "",
            vec![("a", mp_int(1)), ("b", mp_int(2))],
        ))
        .await
        .unwrap();
    let s = b.stores.checkpoints.summary(&thread).await.unwrap();
    assert_eq!(s.checkpoints, 3);
    assert_eq!(s.writes, 2);
    assert_eq!(s.namespaces, 2);
    assert_eq!(s.oldest, Some(cid("0001")));
    assert_eq!(s.newest, Some(cid("0005")));

    let empty = b.stores.checkpoints.summary(&thread_id()).await.unwrap();
    assert_eq!(
        (empty.checkpoints, empty.writes, empty.namespaces),
        (0, 0, 0)
    );
    assert_eq!((empty.oldest, empty.newest), (None, None));
}

/// Mutating a returned tuple never changes what is stored.
pub async fn returned_tuples_are_copies(b: &TestBackend) {
    let thread = thread_id();
    let r = put_simple(
        b,
        &thread,
        &root(),
        None,
        &[("v", mp_str("stored"))],
        meta("loop", 0, json!({})),
    )
    .await;
    b.stores
        .checkpoints
        .put_writes(writes(&r, &fresh_task(), "", vec![("ch", mp_str("w"))]))
        .await
        .unwrap();
    let original = get(b, &r).await.unwrap();
    let mut t = original.clone();
    t.checkpoint
        .channel_values
        .insert(ch("v"), mp_str("mutated"));
    t.metadata.0.insert("step".into(), json!(99));
    t.pending_writes.clear();
    let mut listed = list_thread(b, &thread).await;
    listed[0].checkpoint.channel_values.clear();
    assert_eq!(get(b, &r).await.unwrap(), original);
    assert_eq!(list_thread(b, &thread).await, vec![original]);
}

/// A copy keeps parents, namespaces and the full write rows (task path and index included).
pub async fn copy_thread_preserves_parents_and_write_rows(b: &TestBackend) {
    let (src, refs) = copy_source(b).await;
    let dst = thread_id();
    copy(b, &src, &dst).await;
    let head = latest(b, &dst, &root()).await.unwrap();
    assert_eq!(head.parent_id, Some(refs[1].checkpoint_id.clone()));
    assert_eq!(
        head.pending_writes,
        vec![PendingWrite {
            task_id: task("task-copy"),
            task_path: "~path".into(),
            channel: ch("ch"),
            value: mp_str("write_val"),
            idx: 0,
        }]
    );
}

/// Rows already at the target with the same key are left as they are.
pub async fn copy_thread_leaves_existing_target_rows(b: &TestBackend) {
    let (src, refs) = copy_source(b).await;
    let dst = thread_id();
    let existing = checkpoint(
        refs[0].checkpoint_id.clone(),
        &[("v", mp_str("target-own"))],
    );
    b.stores
        .checkpoints
        .put(put_of(
            &dst,
            &root(),
            None,
            existing,
            meta("fork", 9, json!({})),
        ))
        .await
        .unwrap();
    copy(b, &src, &dst).await;
    let kept = b
        .stores
        .checkpoints
        .get_tuple(&dst, &root(), Some(refs[0].checkpoint_id.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value(&kept, "v"), Some(mp_str("target-own")));
    assert_eq!(kept.metadata.step(), Some(9));
    assert_eq!(list_thread(b, &dst).await.len(), 3);
}
