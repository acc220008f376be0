//! The checkpoint services of the application layer over real stores: cross-thread sync
//! points, session retention that keeps snapshots, forks that carry their ancestry and then
//! diverge, rollback, and session statistics.

#[macro_use]
#[path = "app_common.rs"]
mod common;

use chrono::Duration;
use serde_json::json;
use waymark_application::session_checkpoints::SyncEntry;
use waymark_application::thread_checkpoints::{ForkRequest, SnapshotRequest};
use waymark_domain::branch::SnapshotKind;
use waymark_domain::checkpoint::CheckpointQuery;
use waymark_domain::paging::Limit;
use waymark_domain::session::CheckpointPolicy;
use waymark_domain::{CheckpointId, CheckpointNamespace, Name};
use waymark_tests::harness::TestBackend;

use common::*;

fn root() -> CheckpointNamespace {
    CheckpointNamespace::root()
}

app_scenarios!(
    sync_point_is_all_or_none_across_three_threads,
    retention_keeps_snapshots_and_heads,
    fork_carries_the_ancestry_then_diverges,
    rollback_appends_a_head_and_statistics_count_everything,
);

async fn sync_point_is_all_or_none_across_three_threads(b: &TestBackend) {
    let app = App::new(b);
    let s = app.session().await;
    let mut threads = Vec::new();
    for name in ["planner", "coder", "tester"] {
        threads.push(app.thread(name, Some(&s)).await);
    }
    let outsider = app.thread("outsider", None).await;

    // The third thread's state carries a NUL in its metadata, which every store refuses: the
    // store's put_many fails on that one thread and must write none of the three.
    let mut entries: Vec<SyncEntry> = threads
        .iter()
        .map(|t| SyncEntry {
            thread_id: t.clone(),
            checkpoint: state(json!([human("go")]), 1),
        })
        .collect();
    entries[2]
        .checkpoint
        .metadata
        .insert("note".into(), json!("bad\u{0}value"));
    let err = app
        .sessions
        .sync_point(&alice(), &s, entries.clone())
        .await
        .unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    for t in &threads {
        let stored = b
            .stores
            .checkpoints
            .list(&CheckpointQuery::thread(t.clone()))
            .await
            .unwrap();
        assert!(
            stored.is_empty(),
            "{} got a checkpoint from a failed sync point",
            t
        );
    }

    // A thread of no session is refused before anything is written.
    let mut foreign = entries.clone();
    foreign[2] = SyncEntry {
        thread_id: outsider.clone(),
        checkpoint: state(json!([]), 1),
    };
    assert!(
        app.sessions
            .sync_point(&alice(), &s, foreign)
            .await
            .unwrap_err()
            .is_invalid_input()
    );

    entries[2].checkpoint.metadata.clear();
    let sp = app
        .sessions
        .sync_point(&alice(), &s, entries)
        .await
        .unwrap();
    assert_eq!(sp.checkpoints.len(), 3);
    for (t, r) in threads.iter().zip(&sp.checkpoints) {
        let head = app
            .checkpoints
            .restore(&alice(), t, &root(), None)
            .await
            .unwrap();
        assert_eq!(head.checkpoint.id, r.checkpoint_id);
        assert_eq!(head.metadata.0["sync_point"], json!(sp.id));
    }
    assert!(
        b.stores
            .checkpoints
            .list(&CheckpointQuery::thread(outsider))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn retention_keeps_snapshots_and_heads(b: &TestBackend) {
    let app = App::new(b);
    let s = app.session().await;
    let busy = app.thread("busy", Some(&s)).await;
    let quiet = app.thread("quiet", Some(&s)).await;
    let mut ids = Vec::new();
    for step in 0..6 {
        let t = app
            .checkpoints
            .create_checkpoint(
                &alice(),
                &busy,
                state(json!([human(&format!("m{step}"))]), step),
            )
            .await
            .unwrap();
        ids.push(t.checkpoint.id);
        b.clock.advance(Duration::minutes(1));
    }
    app.checkpoints
        .create_checkpoint(&alice(), &quiet, state(json!([]), 0))
        .await
        .unwrap();
    let pinned = app
        .checkpoints
        .create_snapshot(
            &alice(),
            SnapshotRequest {
                thread_id: busy.clone(),
                namespace: root(),
                checkpoint_id: ids[1].clone(),
                name: Name::parse("first draft").unwrap(),
                kind: SnapshotKind::Milestone,
                description: Some("worth keeping".into()),
                metadata: Default::default(),
            },
        )
        .await
        .unwrap();

    app.sessions
        .set_policy(
            &alice(),
            &s,
            CheckpointPolicy::new(Some(2), None, true).unwrap(),
        )
        .await
        .unwrap();
    let report = app.sessions.apply_policy(&alice(), &s).await.unwrap();
    assert!(report.failed_threads().is_empty());
    assert_eq!(report.removed_total(), 3);
    let busy_report = report.threads.iter().find(|t| t.thread_id == busy).unwrap();
    assert_eq!(busy_report.kept_pinned, 1);
    let left: Vec<CheckpointId> = app
        .checkpoints
        .list(&alice(), &busy, Some(root()))
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.checkpoint.id)
        .collect();
    assert_eq!(left, vec![ids[5].clone(), ids[4].clone(), ids[1].clone()]);
    let restored = app
        .checkpoints
        .restore_snapshot(&alice(), &busy, pinned.id)
        .await
        .unwrap();
    assert_eq!(restored.checkpoint.id, ids[1]);

    // Age-based retention a day later: everything but each head and the pinned checkpoint.
    b.clock.advance(Duration::days(1));
    app.sessions
        .set_policy(
            &alice(),
            &s,
            CheckpointPolicy::new(None, Some(3600), true).unwrap(),
        )
        .await
        .unwrap();
    let report = app.sessions.apply_policy(&alice(), &s).await.unwrap();
    assert_eq!(report.removed_total(), 1, "{report:?}");
    let left: Vec<CheckpointId> = app
        .checkpoints
        .list(&alice(), &busy, Some(root()))
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.checkpoint.id)
        .collect();
    assert_eq!(left, vec![ids[5].clone(), ids[1].clone()]);
    assert_eq!(
        app.checkpoints
            .list(&alice(), &quiet, None)
            .await
            .unwrap()
            .len(),
        1,
        "a thread's head survives any age"
    );
    assert_eq!(
        app.checkpoints
            .list_snapshots(&alice(), &busy)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn fork_carries_the_ancestry_then_diverges(b: &TestBackend) {
    let app = App::new(b);
    let s = app.session().await;
    let main = app.thread("main", Some(&s)).await;
    let mut ids = Vec::new();
    let mut convo = Vec::new();
    for (i, text) in ["Q1", "Q2", "Q3"].iter().enumerate() {
        convo.push(human(text));
        convo.push(ai(&format!("a{i}"), &format!("answer {i}")));
        let t = app
            .checkpoints
            .create_checkpoint(&alice(), &main, state(json!(convo.clone()), i as i64))
            .await
            .unwrap();
        ids.push(t.checkpoint.id);
    }
    let branch_thread = thread_id("branch");
    let out = app
        .checkpoints
        .fork(
            &alice(),
            ForkRequest {
                source_thread_id: main.clone(),
                namespace: root(),
                checkpoint_id: ids[1].clone(),
                new_thread_id: Some(branch_thread.clone()),
                name: Name::parse("what-if").unwrap(),
                display_name: Some("What if".into()),
                metadata: Default::default(),
            },
        )
        .await
        .unwrap();
    assert_eq!(out.copied_checkpoints, 2);
    assert_eq!(out.thread.session_id.as_ref(), Some(&s));

    // The branch lists the ancestor history with the same ids.
    let history = app
        .checkpoints
        .history(
            &alice(),
            &branch_thread,
            &root(),
            None,
            Limit::new(10).unwrap(),
        )
        .await
        .unwrap();
    let hist_ids: Vec<CheckpointId> = history
        .items
        .iter()
        .map(|t| t.checkpoint.id.clone())
        .collect();
    assert_eq!(hist_ids, vec![ids[1].clone(), ids[0].clone()]);
    assert!(!history.has_more);
    assert_eq!(history.items[1].parent_id, None);

    // Then it diverges: a new checkpoint on the branch leaves the source untouched.
    let mut alt = convo[..4].to_vec();
    alt.push(human("Q3-alt"));
    let diverged = app
        .checkpoints
        .create_checkpoint(&alice(), &branch_thread, state(json!(alt), 2))
        .await
        .unwrap();
    assert_eq!(diverged.parent_id, Some(ids[1].clone()));
    let source_head = app
        .checkpoints
        .restore(&alice(), &main, &root(), None)
        .await
        .unwrap();
    assert_eq!(source_head.checkpoint.id, ids[2]);

    let diff = app
        .checkpoints
        .diff(
            &alice(),
            &branch_thread,
            &root(),
            ids[1].clone(),
            diverged.checkpoint.id.clone(),
        )
        .await
        .unwrap();
    let messages = diff
        .changed
        .iter()
        .find(|c| c.channel.as_str() == "messages")
        .and_then(|c| c.messages.clone())
        .expect("message-level diff");
    assert_eq!(messages.added.len(), 1);
    assert_eq!(messages.added[0]["content"], json!("Q3-alt"));
    assert_eq!(messages.unchanged, 4);

    let branches = app
        .checkpoints
        .list_branches(&alice(), &main)
        .await
        .unwrap();
    assert_eq!(branches.len(), 1);
    assert_eq!(branches[0].thread_id, branch_thread);
    assert_eq!(
        app.checkpoints
            .branch_of(&alice(), &branch_thread)
            .await
            .unwrap()
            .map(|b| b.source_checkpoint_id),
        Some(ids[1].clone())
    );

    // The same branch name again is refused and leaves no half-made thread behind.
    let again = thread_id("again");
    let err = app
        .checkpoints
        .fork(
            &alice(),
            ForkRequest {
                source_thread_id: main.clone(),
                namespace: root(),
                checkpoint_id: ids[0].clone(),
                new_thread_id: Some(again.clone()),
                name: Name::parse("what-if").unwrap(),
                display_name: None,
                metadata: Default::default(),
            },
        )
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert!(
        app.threads
            .get(&alice(), &again)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        b.stores
            .checkpoints
            .list(&CheckpointQuery::thread(again))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn rollback_appends_a_head_and_statistics_count_everything(b: &TestBackend) {
    let app = App::new(b);
    let s = app.session().await;
    let t = app.thread("rb", Some(&s)).await;
    let other = app.thread("other", Some(&s)).await;
    let mut ids = Vec::new();
    for step in 0..3 {
        ids.push(
            app.checkpoints
                .create_checkpoint(
                    &alice(),
                    &t,
                    state(json!([human(&format!("v{step}"))]), step),
                )
                .await
                .unwrap()
                .checkpoint
                .id,
        );
    }
    app.checkpoints
        .create_checkpoint(&alice(), &other, state(json!([]), 0))
        .await
        .unwrap();
    let head = app
        .checkpoints
        .rollback(&alice(), &t, &root(), ids[0].clone())
        .await
        .unwrap();
    assert_eq!(head.parent_id, Some(ids[2].clone()));
    let restored = app
        .checkpoints
        .restore(&alice(), &t, &root(), None)
        .await
        .unwrap();
    assert_eq!(restored.checkpoint.id, head.checkpoint.id);
    let first = app
        .checkpoints
        .restore(&alice(), &t, &root(), Some(ids[0].clone()))
        .await
        .unwrap();
    assert_eq!(
        restored.checkpoint.channel_values,
        first.checkpoint.channel_values
    );
    assert_eq!(
        restored.metadata.0["rolled_back_to"],
        json!(ids[0].as_str())
    );
    assert_eq!(
        app.checkpoints
            .list(&alice(), &t, None)
            .await
            .unwrap()
            .len(),
        4
    );

    let stats = app.sessions.statistics(&alice(), &s).await.unwrap();
    assert_eq!(stats.threads, 2);
    assert_eq!(stats.checkpoints, 5);
    assert_eq!(stats.oldest, Some(ids[0].clone()));
    assert!(stats.per_thread.iter().all(|p| p.error.is_none()));
    if let Some(bytes) = stats.stored_bytes {
        assert!(bytes > 0);
    }
}
