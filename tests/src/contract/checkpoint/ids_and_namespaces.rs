//! Beyond the conformance suite: ordering, namespaces, ids.

use std::collections::BTreeSet;

use serde_json::json;
use waymark_domain::checkpoint::{CheckpointQuery, CheckpointTuple};

use super::helpers::*;
use crate::contract::fixtures::*;
use crate::harness::TestBackend;

/// Checkpoints order by id text, newest (greatest) first, whatever the insertion order; ids
/// are opaque text and never format-checked.
pub async fn ordering_is_by_id_text_not_insertion(b: &TestBackend) {
    let thread = thread_id();
    for id in ["b-2", "c-3", "a-1"] {
        put_id(b, &thread, &root(), id, None).await;
    }
    let got: Vec<String> = ids_of(&list_thread(b, &thread).await)
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(got, vec!["c-3", "b-2", "a-1"]);
}

/// "Latest" is the greatest id of (thread, namespace), not the checkpoint written last and not
/// the tip of the branch just extended.
pub async fn latest_is_greatest_id_not_last_written(b: &TestBackend) {
    let thread = thread_id();
    put_id(b, &thread, &root(), "0001", None).await;
    put_id(b, &thread, &root(), "0002", Some("0001")).await;
    put_id(b, &thread, &root(), "0004", Some("0001")).await; // a fork of 0001
    put_id(b, &thread, &root(), "0003", Some("0002")).await; // extends the old branch, last
    let t = latest(b, &thread, &root()).await.unwrap();
    assert_eq!(t.checkpoint.id, cid("0004"));
    assert_eq!(t.parent_id, Some(cid("0001")));
}

/// `before` is a strict text comparison (`id < before`) and need not name a stored id.
pub async fn before_is_strict_text_comparison(b: &TestBackend) {
    let thread = thread_id();
    for id in ["a", "b", "c"] {
        put_id(b, &thread, &root(), id, None).await;
    }
    let q = |before: &str| CheckpointQuery {
        before: Some(cid(before)),
        ..CheckpointQuery::thread(thread.clone())
    };
    let names = |v: Vec<CheckpointTuple>| -> Vec<String> {
        ids_of(&v).into_iter().map(String::from).collect()
    };
    assert_eq!(names(list(b, q("b")).await), vec!["a"]);
    assert_eq!(names(list(b, q("bb")).await), vec!["b", "a"]);
    assert!(list(b, q("a")).await.is_empty());
}

/// `get_tuple` in the root namespace never answers with a subgraph checkpoint, even one with a
/// greater id.
pub async fn get_tuple_latest_is_per_namespace(b: &TestBackend) {
    let thread = thread_id();
    let r = put_id(b, &thread, &root(), "0001", None).await;
    put_id(b, &thread, &ns("child:x"), "0009", None).await;
    let t = latest(b, &thread, &root()).await.unwrap();
    assert_eq!(t.reference(), r);
}

/// A query without a namespace lists every namespace of the thread, newest id first.
pub async fn list_without_namespace_spans_namespaces(b: &TestBackend) {
    let thread = thread_id();
    put_id(b, &thread, &root(), "0001", None).await;
    put_id(b, &thread, &ns("child:1"), "0003", None).await;
    put_id(b, &thread, &ns("outer:1|inner:2"), "0002", None).await;
    let got: Vec<(String, String)> = list_thread(b, &thread)
        .await
        .into_iter()
        .map(|t| (t.namespace.to_string(), t.checkpoint.id.to_string()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("child:1".into(), "0003".into()),
            ("outer:1|inner:2".into(), "0002".into()),
            ("".into(), "0001".into()),
        ]
    );
}

/// A query with a checkpoint id returns only that checkpoint.
pub async fn list_by_checkpoint_id(b: &TestBackend) {
    let thread = thread_id();
    let refs = put_chain(b, &thread, 3).await;
    let got = list(
        b,
        CheckpointQuery {
            checkpoint_id: Some(refs[1].checkpoint_id.clone()),
            ..CheckpointQuery::thread(thread)
        },
    )
    .await;
    assert_eq!(ids_of(&got), vec![refs[1].checkpoint_id.clone()]);
}

/// A query without a thread lists every thread (scoped here by a unique metadata marker).
pub async fn list_without_thread_spans_threads(b: &TestBackend) {
    let marker = uid();
    let (t1, t2) = (thread_id(), thread_id());
    let a = put_meta(b, &t1, &root(), None, json!({"marker": marker})).await;
    let c = put_meta(b, &t2, &ns("child:1"), None, json!({"marker": marker})).await;
    put_meta(b, &t2, &root(), None, json!({"marker": "other"})).await;
    let got = list(
        b,
        CheckpointQuery {
            filter: obj(json!({"marker": marker})),
            ..CheckpointQuery::default()
        },
    )
    .await;
    assert_eq!(got.len(), 2);
    let refs: BTreeSet<_> = got.iter().map(|t| t.checkpoint.id.clone()).collect();
    assert_eq!(
        refs,
        BTreeSet::from([a.checkpoint_id.clone(), c.checkpoint_id.clone()])
    );
    assert!(got[0].checkpoint.id > got[1].checkpoint.id, "newest first");
}
