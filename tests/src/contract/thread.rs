//! The thread contract (spec `history-and-streams.md` §6, the storage-level parts of §6.8):
//! idempotent creation, search order and exact filters, atomic metadata merges, the access
//! check, cascading deletes and scoping.

use std::collections::BTreeSet;

use chrono::{Duration, TimeZone, Utc};
use serde_json::json;
use waymark_domain::branch::{Branch, Snapshot, SnapshotKind};
use waymark_domain::checkpoint::CheckpointQuery;
use waymark_domain::clock::Clock;
use waymark_domain::paging::{Limit, OffsetPage, SeqPage};
use waymark_domain::run_event::NewRunEvent;
use waymark_domain::thread::{
    NewThread, Thread, ThreadFilter, ThreadQuery, ThreadStatus, ThreadUpdate,
};
use waymark_domain::token_usage::{TokenGrouping, TokenUsage, TokenUsageFilter};
use waymark_domain::{
    BranchId, CheckpointNamespace, EventCategory, EventType, ModelName, Name, SnapshotId, ThreadId,
    UserScope,
};

use super::fixtures::*;
use crate::harness::TestBackend;

async fn get(b: &TestBackend, scope: &UserScope, id: &ThreadId) -> Option<Thread> {
    b.stores.threads.get(scope, id).await.expect("get thread")
}

async fn update(b: &TestBackend, scope: &UserScope, id: &ThreadId, u: ThreadUpdate) -> Thread {
    b.stores
        .threads
        .update(scope, id, u)
        .await
        .expect("update thread")
}

fn patch(v: serde_json::Value, touch: bool) -> ThreadUpdate {
    ThreadUpdate {
        metadata_patch: Some(obj(v)),
        touch,
        ..ThreadUpdate::default()
    }
}

fn query(filter: serde_json::Value, limit: u32, offset: u64) -> ThreadQuery {
    ThreadQuery {
        filter: ThreadFilter::parse(obj(filter)).expect("filter").0,
        status: None,
        session_id: None,
        page: OffsetPage::new(limit, offset).expect("page"),
    }
}

async fn search_ids(b: &TestBackend, scope: &UserScope, q: &ThreadQuery) -> Vec<ThreadId> {
    b.stores
        .threads
        .search(scope, q)
        .await
        .expect("search")
        .items
        .into_iter()
        .map(|t| t.id)
        .collect()
}

async fn create_with(b: &TestBackend, scope: &UserScope, metadata: serde_json::Value) -> ThreadId {
    let id = thread_id();
    let t = NewThread {
        metadata: obj(metadata),
        ..NewThread::with_id(id.clone())
    };
    b.stores
        .threads
        .create(scope, t)
        .await
        .expect("create thread");
    id
}

/// 1: a new thread is idle, `created_at = updated_at` = the clock's UTC now; the given
/// fields and the owner are stored.
pub async fn new_thread_is_idle_with_equal_timestamps(b: &TestBackend) {
    let scope = user_scope();
    let session = create_session(b, &scope).await;
    let id = thread_id();
    let t = b
        .stores
        .threads
        .create(
            &scope,
            NewThread {
                id: id.clone(),
                session_id: Some(session.clone()),
                assistant_id: Some("lead_agent".into()),
                display_name: Some("Trip plan ✓".into()),
                metadata: obj(json!({"k": "v", "n": 1})),
            },
        )
        .await
        .unwrap();
    assert_eq!(t.status, ThreadStatus::Idle);
    assert_eq!(t.created_at, t.updated_at);
    assert_eq!(t.created_at, b.clock.now());
    assert!(t.created_at.to_rfc3339().ends_with("+00:00"));
    assert_eq!(t.owner.as_ref(), scope.owner());
    assert_eq!(t.session_id, Some(session));
    assert_eq!(t.assistant_id.as_deref(), Some("lead_agent"));
    assert_eq!(t.display_name.as_deref(), Some("Trip plan ✓"));
    assert_eq!(t.metadata, obj(json!({"k": "v", "n": 1})));
    assert_eq!(get(b, &scope, &id).await, Some(t));
}

/// Creating an existing id for the same owner returns the stored row unchanged.
pub async fn create_is_idempotent_for_the_same_owner(b: &TestBackend) {
    let scope = user_scope();
    let id = create_with(b, &scope, json!({"first": true})).await;
    let stored = get(b, &scope, &id).await.unwrap();
    b.clock.advance(Duration::seconds(30));
    let again = b
        .stores
        .threads
        .create(
            &scope,
            NewThread {
                display_name: Some("other".into()),
                metadata: obj(json!({"second": true})),
                ..NewThread::with_id(id.clone())
            },
        )
        .await
        .unwrap();
    assert_eq!(again, stored);
    assert_eq!(get(b, &scope, &id).await, Some(stored));
}

/// Creating another owner's id is a conflict and changes nothing.
pub async fn create_of_another_owners_id_conflicts(b: &TestBackend) {
    let a = user_scope();
    let id = create_with(b, &a, json!({"mine": 1})).await;
    let before = get(b, &a, &id).await.unwrap();
    expect_conflict(
        b.stores
            .threads
            .create(&user_scope(), NewThread::with_id(id.clone()))
            .await,
    );
    assert_eq!(get(b, &a, &id).await, Some(before));
}

/// A named session must exist and be visible to the scope; otherwise nothing is created.
pub async fn create_needs_a_visible_session(b: &TestBackend) {
    let scope = user_scope();
    let foreign = create_session(b, &user_scope()).await;
    for session in [session_id(), foreign] {
        let id = thread_id();
        let r = b
            .stores
            .threads
            .create(
                &scope,
                NewThread {
                    session_id: Some(session),
                    ..NewThread::with_id(id.clone())
                },
            )
            .await;
        let e = r.expect_err("a missing or foreign session is refused");
        assert!(e.is_not_found() || e.is_invalid_input(), "{e:?}");
        assert_eq!(get(b, &UserScope::Unscoped, &id).await, None);
    }
}

/// Over-long or NUL-holding text fields are refused with `InvalidInput`; nothing is written.
pub async fn create_refuses_bad_text(b: &TestBackend) {
    let scope = user_scope();
    let bad = [
        (
            "display_name",
            NewThread {
                display_name: Some("x".repeat(257)),
                ..NewThread::with_id(thread_id())
            },
        ),
        (
            "display_name",
            NewThread {
                display_name: Some("a\0b".into()),
                ..NewThread::with_id(thread_id())
            },
        ),
        (
            "assistant_id",
            NewThread {
                assistant_id: Some("a".repeat(129)),
                ..NewThread::with_id(thread_id())
            },
        ),
    ];
    for (field, t) in bad {
        let id = t.id.clone();
        assert_eq!(
            expect_invalid(b.stores.threads.create(&scope, t).await),
            field
        );
        assert_eq!(get(b, &UserScope::Unscoped, &id).await, None);
    }
}

/// 5: A (updated 10:00, pinned), B (11:00), C (12:00): search gives A, C, B; equal times
/// order by id descending.
pub async fn search_puts_pinned_first_then_newest(b: &TestBackend) {
    let scope = user_scope();
    let day = Utc.with_ymd_and_hms(2026, 2, 3, 0, 0, 0).unwrap();
    let mut ids = Vec::new();
    for hour in [10, 11, 12] {
        b.clock.set(day + Duration::hours(hour));
        ids.push(create_with(b, &scope, json!({})).await);
    }
    let (a, bb, c) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    b.clock.set(day + Duration::hours(13));
    let pinned = update(b, &scope, &a, patch(json!({"pinned": true}), false)).await;
    assert_eq!(
        pinned.updated_at,
        day + Duration::hours(10),
        "pinning does not touch"
    );
    assert!(pinned.is_pinned());
    assert_eq!(
        search_ids(b, &scope, &query(json!({}), 100, 0)).await,
        vec![a.clone(), c.clone(), bb.clone()]
    );

    // Two threads with the same updated_at: id descending.
    b.clock.set(day + Duration::hours(20));
    let (x, y) = (
        create_with(b, &scope, json!({})).await,
        create_with(b, &scope, json!({})).await,
    );
    let mut tied = [x, y];
    tied.sort();
    tied.reverse();
    let got = search_ids(b, &scope, &query(json!({}), 100, 0)).await;
    assert_eq!(got, vec![a, tied[0].clone(), tied[1].clone(), c, bb]);
}

/// 6: exact filters: `true` never matches `1`; null matches an explicit null, not a missing
/// key; numbers compare by value, never with strings.
pub async fn search_filter_matrix(b: &TestBackend) {
    let scope = user_scope();
    let one = create_with(b, &scope, json!({"flag": 1, "n": 1, "x": null})).await;
    let yes = create_with(b, &scope, json!({"flag": true, "n": "1"})).await;
    let bare = create_with(b, &scope, json!({})).await;
    let ids = |f| async {
        search_ids(b, &scope, &query(f, 100, 0))
            .await
            .into_iter()
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        ids(json!({"flag": true})).await,
        BTreeSet::from([yes.clone()])
    );
    assert_eq!(ids(json!({"flag": 1})).await, BTreeSet::from([one.clone()]));
    assert_eq!(ids(json!({"x": null})).await, BTreeSet::from([one.clone()]));
    assert_eq!(ids(json!({"n": 1.0})).await, BTreeSet::from([one.clone()]));
    assert_eq!(ids(json!({"n": "1"})).await, BTreeSet::from([yes.clone()]));
    assert_eq!(ids(json!({"flag": 1, "n": "1"})).await, BTreeSet::new());
    assert_eq!(ids(json!({})).await, BTreeSet::from([one, yes, bare]));
}

/// 6: with 250 matching threads out of 1,000, `limit = 100, offset = 200` returns exactly 50
/// and says nothing more exists; the pages tile the matches exactly.
pub async fn search_limit_and_offset_are_exact(b: &TestBackend) {
    let scope = user_scope();
    let mut hits = BTreeSet::new();
    for i in 0..1000 {
        let kind = if i % 4 == 0 { "hit" } else { "miss" };
        let id = create_with(b, &scope, json!({"kind": kind})).await;
        if kind == "hit" {
            hits.insert(id);
        }
    }
    let page = |offset| {
        let q = query(json!({"kind": "hit"}), 100, offset);
        let scope = scope.clone();
        async move { b.stores.threads.search(&scope, &q).await.unwrap() }
    };
    let last = page(200).await;
    assert_eq!(last.items.len(), 50);
    assert!(!last.has_more);
    let mut seen = BTreeSet::new();
    for offset in [0, 100] {
        let p = page(offset).await;
        assert_eq!(p.items.len(), 100);
        assert!(p.has_more);
        seen.extend(p.items.into_iter().map(|t| t.id));
    }
    seen.extend(last.items.into_iter().map(|t| t.id));
    assert_eq!(seen, hits);
    assert!(page(250).await.items.is_empty());
}

/// Search filters by stored status and by session.
pub async fn search_filters_by_status_and_session(b: &TestBackend) {
    let scope = user_scope();
    let session = create_session(b, &scope).await;
    let running = create_with(b, &scope, json!({})).await;
    update(
        b,
        &scope,
        &running,
        ThreadUpdate {
            status: Some(ThreadStatus::Running),
            touch: true,
            ..ThreadUpdate::default()
        },
    )
    .await;
    let in_session = thread_id();
    b.stores
        .threads
        .create(
            &scope,
            NewThread {
                session_id: Some(session.clone()),
                ..NewThread::with_id(in_session.clone())
            },
        )
        .await
        .unwrap();
    let q = ThreadQuery {
        status: Some(ThreadStatus::Running),
        ..query(json!({}), 10, 0)
    };
    assert_eq!(search_ids(b, &scope, &q).await, vec![running]);
    let q = ThreadQuery {
        session_id: Some(session),
        ..query(json!({}), 10, 0)
    };
    assert_eq!(search_ids(b, &scope, &q).await, vec![in_session]);
}

/// 7: two concurrent merges of disjoint keys keep both.
pub async fn concurrent_disjoint_merges_keep_both(b: &TestBackend) {
    let scope = user_scope();
    for _ in 0..5 {
        let id = create_with(b, &scope, json!({"base": 0})).await;
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (store, scope, id) = (b.stores.threads.clone(), scope.clone(), id.clone());
                tokio::spawn(async move {
                    store
                        .update(&scope, &id, patch(json!({ format!("k{i}"): i }), true))
                        .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().expect("merge");
        }
        let m = get(b, &scope, &id).await.unwrap().metadata;
        assert_eq!(m.len(), 9, "every key survives: {m:?}");
        for i in 0..8 {
            assert_eq!(m[&format!("k{i}")], json!(i));
        }
    }
}

/// 7: a merge replaces and adds top-level keys (null stores null, others kept);
/// `touch = false` keeps `updated_at`, `touch = true` sets it to now.
pub async fn merges_are_shallow_and_touch_is_honoured(b: &TestBackend) {
    let scope = user_scope();
    let id = create_with(b, &scope, json!({"a": {"deep": 1}, "b": 2, "keep": "me"})).await;
    let created = get(b, &scope, &id).await.unwrap().updated_at;
    b.clock.advance(Duration::minutes(1));
    let t = update(
        b,
        &scope,
        &id,
        patch(json!({"a": {"other": 2}, "b": null, "c": 3}), false),
    )
    .await;
    assert_eq!(
        t.metadata,
        obj(json!({"a": {"other": 2}, "b": null, "keep": "me", "c": 3}))
    );
    assert_eq!(t.updated_at, created);
    b.clock.advance(Duration::minutes(1));
    let t = update(b, &scope, &id, patch(json!({"d": 4}), true)).await;
    assert_eq!(t.updated_at, b.clock.now());
    assert_eq!(get(b, &scope, &id).await, Some(t));
}

/// Every field of an update applies; `Some(None)` clears; the session can move and detach.
pub async fn update_applies_every_field(b: &TestBackend) {
    let scope = user_scope();
    let (s1, s2) = (
        create_session(b, &scope).await,
        create_session(b, &scope).await,
    );
    let id = thread_id();
    b.stores
        .threads
        .create(
            &scope,
            NewThread {
                session_id: Some(s1),
                display_name: Some("old".into()),
                ..NewThread::with_id(id.clone())
            },
        )
        .await
        .unwrap();
    let t = update(
        b,
        &scope,
        &id,
        ThreadUpdate {
            display_name: Some(Some("new".into())),
            status: Some(ThreadStatus::Interrupted),
            session_id: Some(Some(s2.clone())),
            touch: true,
            ..ThreadUpdate::default()
        },
    )
    .await;
    assert_eq!(t.display_name.as_deref(), Some("new"));
    assert_eq!(t.status, ThreadStatus::Interrupted);
    assert_eq!(t.session_id, Some(s2));
    let t = update(
        b,
        &scope,
        &id,
        ThreadUpdate {
            display_name: Some(None),
            session_id: Some(None),
            status: Some(ThreadStatus::Error),
            touch: true,
            ..ThreadUpdate::default()
        },
    )
    .await;
    assert_eq!(
        (t.display_name.clone(), t.session_id.clone(), t.status),
        (None, None, ThreadStatus::Error)
    );
    assert_eq!(get(b, &scope, &id).await, Some(t));
}

/// An administrative owner change hands the thread over.
pub async fn owner_change_hands_the_thread_over(b: &TestBackend) {
    let (a, new_owner) = (user_scope(), user());
    let id = create_with(b, &a, json!({})).await;
    let t = update(
        b,
        &UserScope::Unscoped,
        &id,
        ThreadUpdate {
            owner: Some(Some(new_owner.clone())),
            ..ThreadUpdate::default()
        },
    )
    .await;
    assert_eq!(t.owner, Some(new_owner.clone()));
    assert_eq!(get(b, &a, &id).await, None);
    assert!(get(b, &UserScope::User(new_owner), &id).await.is_some());
}

/// Bad text in an update is refused with `InvalidInput`; the row is unchanged.
pub async fn update_refuses_bad_text(b: &TestBackend) {
    let scope = user_scope();
    let id = create_with(b, &scope, json!({})).await;
    let before = get(b, &scope, &id).await.unwrap();
    for name in ["x".repeat(257), "a\0b".to_owned()] {
        let r = b
            .stores
            .threads
            .update(
                &scope,
                &id,
                ThreadUpdate {
                    display_name: Some(Some(name)),
                    metadata_patch: Some(obj(json!({"z": 1}))),
                    touch: true,
                    ..ThreadUpdate::default()
                },
            )
            .await;
        assert_eq!(expect_invalid(r), "display_name");
    }
    assert_eq!(get(b, &scope, &id).await, Some(before));
}

/// 8: `check_access` for the eight cells of §6.6, plus `Unscoped` on an owner-less row.
pub async fn check_access_matrix(b: &TestBackend) {
    let me = user_scope();
    let mine = create_with(b, &me, json!({})).await;
    let theirs = create_with(b, &user_scope(), json!({})).await;
    let ownerless = create_with(b, &UserScope::Unscoped, json!({})).await;
    let missing = thread_id();
    let check = |scope: UserScope, id: ThreadId, require: bool| async move {
        b.stores
            .threads
            .check_access(&scope, &id, require)
            .await
            .unwrap()
    };
    let cells = [
        // Waymark ownership model: a missing row is nobody's, so a user may not use it.
        (&missing, false, false),
        (&missing, true, false),
        (&mine, false, true),
        (&mine, true, true),
        (&theirs, false, false),
        (&theirs, true, false),
        (&ownerless, false, false),
        (&ownerless, true, false),
    ];
    for (id, require, want) in cells {
        assert_eq!(
            check(me.clone(), id.clone(), require).await,
            want,
            "{id} require_existing={require}"
        );
    }
    assert!(check(UserScope::Unscoped, ownerless.clone(), false).await);
    assert!(check(UserScope::Unscoped, ownerless, true).await);
    assert!(check(UserScope::Unscoped, theirs, true).await);
    assert!(check(UserScope::Unscoped, missing.clone(), false).await);
    assert!(!check(UserScope::Unscoped, missing, true).await);
}

async fn claim(b: &TestBackend, scope: &UserScope, id: &ThreadId) -> Option<Thread> {
    b.stores.threads.claim(scope, id).await.expect("claim")
}

/// Ownership model: the first write claims a missing id (an idle row owned by the caller,
/// stamped now); the owner's later claims return the same row unchanged; another user's
/// claim, and a claim of an owner-less row, answer `None` and change nothing.
pub async fn claim_creates_then_returns_the_owners_row(b: &TestBackend) {
    let me = user_scope();
    let other = user_scope();
    let id = thread_id();
    let first = claim(b, &me, &id).await.expect("a missing id is claimed");
    assert_eq!(first.owner, me.owner().cloned());
    assert_eq!(first.status, ThreadStatus::Idle);
    assert_eq!(first.created_at, first.updated_at);
    assert_eq!(first.created_at, b.clock.now());
    let again = claim(b, &me, &id).await.expect("the owner claims again");
    assert_eq!(again, first);
    assert_eq!(claim(b, &other, &id).await, None, "another user's id");
    assert_eq!(get(b, &UserScope::Unscoped, &id).await, Some(first.clone()));
    assert_eq!(get(b, &other, &id).await, None);

    let ownerless = create_with(b, &UserScope::Unscoped, json!({})).await;
    assert_eq!(claim(b, &me, &ownerless).await, None, "an owner-less row");
    assert_eq!(
        get(b, &UserScope::Unscoped, &ownerless)
            .await
            .unwrap()
            .owner,
        None
    );
    // The administrator's claim of a missing id creates an owner-less row.
    let admin_id = thread_id();
    let t = claim(b, &UserScope::Unscoped, &admin_id).await.unwrap();
    assert_eq!(t.owner, None);
    assert_eq!(claim(b, &me, &admin_id).await, None);
    // Every row stays visible to the administrator's claim.
    assert!(claim(b, &UserScope::Unscoped, &id).await.is_some());
}

/// Row-less checkpoints (written without a thread row, e.g. by a Python process) are never
/// adopted by a user's claim or create; the administrator's claim gives them an owner-less
/// row.
pub async fn claim_never_adopts_rowless_checkpoints(b: &TestBackend) {
    let me = user_scope();
    let id = thread_id();
    put_chain(b, &id, 2).await;
    assert_eq!(claim(b, &me, &id).await, None);
    expect_conflict(
        b.stores
            .threads
            .create(&me, NewThread::with_id(id.clone()))
            .await,
    );
    assert_eq!(
        get(b, &UserScope::Unscoped, &id).await,
        None,
        "no row written"
    );
    assert!(
        !b.stores
            .threads
            .check_access(&me, &id, false)
            .await
            .unwrap()
    );
    let t = claim(b, &UserScope::Unscoped, &id)
        .await
        .expect("admin claim");
    assert_eq!(t.owner, None);
    assert_eq!(claim(b, &me, &id).await, None);
}

/// Two users claiming one id concurrently: exactly one becomes the owner, and every claim
/// agrees on who.
pub async fn concurrent_claims_leave_exactly_one_owner(b: &TestBackend) {
    for _ in 0..5 {
        let id = thread_id();
        let scopes: Vec<UserScope> = (0..8).map(|_| user_scope()).collect();
        let results = futures::future::join_all(
            scopes
                .iter()
                .map(|s| async { b.stores.threads.claim(s, &id).await.expect("claim") }),
        )
        .await;
        let winners: Vec<&Thread> = results.iter().flatten().collect();
        assert_eq!(winners.len(), 1, "exactly one claim wins");
        let stored = get(b, &UserScope::Unscoped, &id).await.expect("row");
        assert_eq!(&stored, winners[0]);
        let owner_scope = UserScope::User(stored.owner.clone().expect("owned"));
        assert!(scopes.contains(&owner_scope));
    }
}

/// 9: deleting a thread removes its events, feedback, chat stream, branches, snapshots, token
/// usage and checkpoints; re-creating the id gives an empty thread.
pub async fn delete_cascades_to_everything_owned(b: &TestBackend) {
    let scope = user_scope();
    let id = create_with(b, &scope, json!({})).await;
    let s = &b.stores;
    let (r1, r2) = (run_id(), run_id());
    let events: Vec<NewRunEvent> = (0..12)
        .map(|i| {
            let run = if i < 6 { &r1 } else { &r2 };
            let cat = if i % 2 == 0 { "message" } else { "trace" };
            NewRunEvent::new(
                id.clone(),
                run.clone(),
                EventType::parse("x").unwrap(),
                EventCategory::parse(cat).unwrap(),
            )
        })
        .collect();
    s.run_events.put_batch(&scope, events).await.unwrap();
    s.feedback
        .create(
            &scope,
            waymark_domain::feedback::NewFeedback {
                thread_id: id.clone(),
                run_id: r1.clone(),
                rating: waymark_domain::feedback::Rating::Positive,
                comment: None,
                message_id: None,
            },
        )
        .await
        .unwrap();
    s.chat_streams
        .append(&scope, &id, vec!["frame".into()])
        .await
        .unwrap();
    let cps = put_chain(b, &id, 5).await;
    let branch_thread = create_thread(b, &scope).await;
    s.branches
        .create(Branch {
            id: BranchId::new_random(),
            name: Name::parse("alt").unwrap(),
            source_thread_id: id.clone(),
            source_namespace: CheckpointNamespace::root(),
            source_checkpoint_id: cps[1].checkpoint_id.clone(),
            thread_id: branch_thread,
            metadata: Default::default(),
            created_at: b.clock.now(),
        })
        .await
        .unwrap();
    s.snapshots
        .create(Snapshot {
            id: SnapshotId::new_random(),
            thread_id: id.clone(),
            namespace: CheckpointNamespace::root(),
            checkpoint_id: cps[4].checkpoint_id.clone(),
            name: Name::parse("m1").unwrap(),
            description: None,
            kind: SnapshotKind::Milestone,
            metadata: Default::default(),
            created_at: b.clock.now(),
        })
        .await
        .unwrap();
    let usage = TokenUsage::new(
        None,
        Some(id.clone()),
        Some(r1.clone()),
        scope.owner().cloned(),
        ModelName::parse("m").unwrap(),
        10,
        5,
        0,
        b.clock.now(),
    )
    .unwrap();
    s.token_usage.record(usage).await.unwrap();

    assert!(s.threads.delete(&scope, &id).await.unwrap());

    assert_eq!(get(b, &scope, &id).await, None);
    assert_eq!(
        s.run_events
            .count_messages(&UserScope::Unscoped, &id)
            .await
            .unwrap(),
        0
    );
    assert!(
        s.run_events
            .list_messages(&UserScope::Unscoped, &id, SeqPage::default_latest())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.feedback.stats(&id, &r1).await.unwrap().total, 0);
    assert!(
        s.feedback
            .list_by_thread(&UserScope::Unscoped, &id, Limit::new(10).unwrap())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        s.chat_streams.get(&UserScope::Unscoped, &id).await.unwrap(),
        None
    );
    assert!(s.branches.list_for_thread(&id).await.unwrap().is_empty());
    assert!(s.snapshots.list_for_thread(&id).await.unwrap().is_empty());
    assert!(
        s.checkpoints
            .list(&CheckpointQuery::thread(id.clone()))
            .await
            .unwrap()
            .is_empty()
    );
    let usage = s
        .token_usage
        .stats(
            &TokenUsageFilter {
                thread_id: Some(id.clone()),
                ..TokenUsageFilter::default()
            },
            TokenGrouping::Total,
        )
        .await
        .unwrap();
    assert_eq!(usage[0].records, 0);

    let again = s
        .threads
        .create(&scope, NewThread::with_id(id.clone()))
        .await
        .unwrap();
    assert_eq!(again.metadata, Default::default());
    assert_eq!(s.run_events.count_messages(&scope, &id).await.unwrap(), 0);
    assert!(
        s.run_events
            .list_messages(&scope, &id, SeqPage::default_latest())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.checkpoints
            .get_tuple(&id, &CheckpointNamespace::root(), None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !s.threads.delete(&scope, &thread_id()).await.unwrap(),
        "a missing thread is false"
    );
}

/// 10: user B cannot read or change A's thread: reads are empty, updates are not found,
/// deletes are false, and A's row and data stay; `Unscoped` bypasses scoping.
pub async fn other_users_threads_are_out_of_reach(b: &TestBackend) {
    let a = user_scope();
    let id = create_with(b, &a, json!({"secret": 1})).await;
    b.stores
        .run_events
        .put(
            &a,
            NewRunEvent::new(
                id.clone(),
                run_id(),
                EventType::parse("x").unwrap(),
                EventCategory::parse("message").unwrap(),
            ),
        )
        .await
        .unwrap();
    let before = get(b, &a, &id).await.unwrap();
    let other = user_scope();
    let s = &b.stores.threads;
    assert_eq!(s.get(&other, &id).await.unwrap(), None);
    assert!(
        search_ids(b, &other, &query(json!({"secret": 1}), 10, 0))
            .await
            .is_empty()
    );
    expect_not_found(s.update(&other, &id, patch(json!({"x": 1}), true)).await);
    expect_not_found(
        s.update(&a, &thread_id(), patch(json!({"x": 1}), true))
            .await,
    );
    assert!(!s.delete(&other, &id).await.unwrap());
    assert_eq!(get(b, &a, &id).await, Some(before.clone()));
    assert_eq!(
        b.stores.run_events.count_messages(&a, &id).await.unwrap(),
        1
    );
    assert_eq!(get(b, &UserScope::Unscoped, &id).await, Some(before));
    assert_eq!(
        search_ids(b, &UserScope::Unscoped, &query(json!({"secret": 1}), 10, 0)).await,
        vec![id]
    );
}

/// Mutating a returned thread never changes the stored one.
pub async fn returned_threads_are_copies(b: &TestBackend) {
    let scope = user_scope();
    let id = create_with(b, &scope, json!({"k": "v"})).await;
    let mut t = get(b, &scope, &id).await.unwrap();
    let pristine = t.clone();
    t.metadata.insert("k".into(), json!("mutated"));
    let mut found = b
        .stores
        .threads
        .search(&scope, &query(json!({}), 10, 0))
        .await
        .unwrap();
    found.items[0].metadata.clear();
    assert_eq!(get(b, &scope, &id).await, Some(pristine));
}

/// 6: a filter holding `i64::MAX` is accepted and matched exactly; `2^64` is refused; a key
/// like `a.b` is skipped (reported) and the rest still filters.
pub async fn search_filter_edges(b: &TestBackend) {
    let scope = user_scope();
    let big = create_with(b, &scope, json!({"big": i64::MAX})).await;
    create_with(b, &scope, json!({"big": i64::MAX - 1})).await;
    let (f, skipped) = ThreadFilter::parse(obj(json!({"a.b": 1, "big": i64::MAX}))).unwrap();
    assert_eq!(skipped, vec!["a.b".to_owned()]);
    let q = ThreadQuery {
        filter: f,
        ..query(json!({}), 10, 0)
    };
    assert_eq!(search_ids(b, &scope, &q).await, vec![big]);
    assert!(
        ThreadFilter::parse(obj(json!({"big": u64::MAX})))
            .unwrap_err()
            .is_invalid_input()
    );
    assert!(
        ThreadFilter::parse(obj(json!({"a.b": 1, "x y": 2})))
            .unwrap_err()
            .is_invalid_input()
    );
}

/// An offset past every row (even `u64::MAX`) gives an empty page, or is refused as input;
/// it never fails in storage.
pub async fn search_with_a_huge_offset_is_empty(b: &TestBackend) {
    let scope = user_scope();
    create_with(b, &scope, json!({})).await;
    for offset in [1_000, i64::MAX as u64, u64::MAX] {
        match b
            .stores
            .threads
            .search(&scope, &query(json!({}), 10, offset))
            .await
        {
            Ok(p) => assert!(p.items.is_empty() && !p.has_more, "offset {offset}"),
            Err(e) => assert!(e.is_invalid_input(), "offset {offset}: {e:?}"),
        }
    }
}

// -- case list (every `pub async fn` above, in order) ----------------------------------------

/// Runs every thread case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `thread`.
#[macro_export]
macro_rules! thread_contract {
    ($factory:path) => {
        mod thread {
            $crate::__contract_cases!(
                $factory,
                thread,
                [
                    new_thread_is_idle_with_equal_timestamps,
                    create_is_idempotent_for_the_same_owner,
                    create_of_another_owners_id_conflicts,
                    create_needs_a_visible_session,
                    create_refuses_bad_text,
                    search_puts_pinned_first_then_newest,
                    search_filter_matrix,
                    search_limit_and_offset_are_exact,
                    search_filters_by_status_and_session,
                    concurrent_disjoint_merges_keep_both,
                    merges_are_shallow_and_touch_is_honoured,
                    update_applies_every_field,
                    owner_change_hands_the_thread_over,
                    update_refuses_bad_text,
                    check_access_matrix,
                    claim_creates_then_returns_the_owners_row,
                    claim_never_adopts_rowless_checkpoints,
                    concurrent_claims_leave_exactly_one_owner,
                    delete_cascades_to_everything_owned,
                    other_users_threads_are_out_of_reach,
                    returned_threads_are_copies,
                    search_filter_edges,
                    search_with_a_huge_offset_is_empty,
                ]
            );
        }
    };
}
