//! The feedback contract (spec `history-and-streams.md` §4.5): one row per (thread, run,
//! user), conflicts, atomic upserts, statistics over every user, scoping and bad input.

use std::collections::HashMap;

use chrono::Duration;
use waymark_domain::clock::Clock;
use waymark_domain::feedback::{Feedback, NewFeedback, Rating};
use waymark_domain::paging::Limit;
use waymark_domain::{FeedbackId, RunId, ThreadId, UserScope};

use super::fixtures::*;
use crate::harness::TestBackend;

fn fb(thread: &ThreadId, run: &RunId, rating: i64) -> NewFeedback {
    NewFeedback {
        thread_id: thread.clone(),
        run_id: run.clone(),
        rating: Rating::new(rating).expect("rating"),
        comment: None,
        message_id: None,
    }
}

fn limit(n: u32) -> Limit {
    Limit::new(n).expect("limit")
}

async fn by_run(
    b: &TestBackend,
    scope: &UserScope,
    thread: &ThreadId,
    run: &RunId,
) -> Vec<Feedback> {
    b.stores
        .feedback
        .list_by_run(scope, thread, run, limit(100))
        .await
        .expect("list_by_run")
        .items
}

/// 1: ratings, comment, message id and owner are stored as given; timestamps are the clock's.
pub async fn create_stores_every_field(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let (r1, r2) = (run_id(), run_id());
    let up = b
        .stores
        .feedback
        .create(&scope, fb(&thread, &r1, 1))
        .await
        .unwrap();
    assert_eq!(up.rating, Rating::Positive);
    assert_eq!(up.user_id.as_ref(), scope.owner());
    assert_eq!(
        (up.created_at, up.updated_at),
        (b.clock.now(), b.clock.now())
    );
    let mut down = fb(&thread, &r2, -1);
    down.comment = Some("wrong".into());
    down.message_id = Some("msg-7".into());
    let d = b.stores.feedback.create(&scope, down).await.unwrap();
    assert_eq!(d.rating.value(), -1);
    assert_eq!(d.comment.as_deref(), Some("wrong"));
    assert_eq!(d.message_id.as_deref(), Some("msg-7"));
    assert_eq!(
        (d.thread_id.clone(), d.run_id.clone()),
        (thread.clone(), r2.clone())
    );
    assert_eq!(b.stores.feedback.get(&scope, d.id).await.unwrap(), Some(d));
}

/// 2: free-text fields out of bounds (a NUL, an over-long comment or message id) are refused
/// with `InvalidInput` and nothing is stored; ratings other than ±1 cannot be built.
pub async fn bad_input_is_refused_and_nothing_stored(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let run = run_id();
    assert!(Rating::new(0).unwrap_err().is_invalid_input());
    assert!(Rating::new(5).unwrap_err().is_invalid_input());
    let bad = [
        NewFeedback {
            comment: Some("a\0b".into()),
            ..fb(&thread, &run, 1)
        },
        NewFeedback {
            comment: Some("x".repeat(10_001)),
            ..fb(&thread, &run, 1)
        },
        NewFeedback {
            message_id: Some("m".repeat(256)),
            ..fb(&thread, &run, 1)
        },
        NewFeedback {
            message_id: Some("m\0".into()),
            ..fb(&thread, &run, 1)
        },
    ];
    for f in bad {
        expect_invalid(b.stores.feedback.create(&scope, f.clone()).await);
        expect_invalid(b.stores.feedback.upsert(&scope, f).await);
    }
    assert!(by_run(b, &scope, &thread, &run).await.is_empty());
    assert_eq!(
        b.stores.feedback.stats(&thread, &run).await.unwrap().total,
        0
    );
}

/// 3: a second `create` for the same (thread, run, user) is a conflict; the first row stays.
pub async fn second_create_conflicts_and_keeps_the_first(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let run = run_id();
    let first = b
        .stores
        .feedback
        .create(&scope, fb(&thread, &run, 1))
        .await
        .unwrap();
    b.clock.advance(Duration::seconds(5));
    let mut again = fb(&thread, &run, -1);
    again.comment = Some("changed my mind".into());
    expect_conflict(b.stores.feedback.create(&scope, again).await);
    assert_eq!(by_run(b, &scope, &thread, &run).await, vec![first]);
}

/// 4: `upsert` on nothing inserts (`created_at = updated_at`); again with -1 keeps the id,
/// `created_at` and `message_id`, changes rating and comment, advances `updated_at`.
pub async fn upsert_inserts_then_updates_in_place(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let run = run_id();
    let mut first = fb(&thread, &run, 1);
    first.comment = Some("good".into());
    first.message_id = Some("msg-1".into());
    let a = b.stores.feedback.upsert(&scope, first).await.unwrap();
    assert_eq!(a.created_at, a.updated_at);
    b.clock.advance(Duration::seconds(30));
    let c = b
        .stores
        .feedback
        .upsert(&scope, fb(&thread, &run, -1))
        .await
        .unwrap();
    assert_eq!(c.id, a.id);
    assert_eq!(c.created_at, a.created_at);
    assert_eq!(c.updated_at, b.clock.now());
    assert!(c.updated_at > a.updated_at);
    assert_eq!(c.rating, Rating::Negative);
    assert_eq!(c.comment, None, "an absent comment clears it");
    assert_eq!(c.message_id.as_deref(), Some("msg-1"), "message_id kept");
    assert_eq!(by_run(b, &scope, &thread, &run).await, vec![c]);
}

/// 5: users A and B upserting on one run make two rows; anonymous upserts twice make one.
pub async fn one_row_per_user_and_one_anonymous(b: &TestBackend) {
    let (ua, ub) = (user_scope(), user_scope());
    let thread = create_thread(b, &ua).await;
    let run = run_id();
    b.stores
        .feedback
        .upsert(&ua, fb(&thread, &run, 1))
        .await
        .unwrap();
    b.stores
        .feedback
        .upsert(&ub, fb(&thread, &run, -1))
        .await
        .unwrap();
    let anon = UserScope::Unscoped;
    let x = b
        .stores
        .feedback
        .upsert(&anon, fb(&thread, &run, 1))
        .await
        .unwrap();
    let y = b
        .stores
        .feedback
        .upsert(&anon, fb(&thread, &run, -1))
        .await
        .unwrap();
    assert_eq!(x.id, y.id);
    assert_eq!(y.user_id, None);
    let s = b.stores.feedback.stats(&thread, &run).await.unwrap();
    assert_eq!((s.total, s.positive, s.negative), (3, 1, 2));
    assert_eq!(by_run(b, &ua, &thread, &run).await.len(), 1);
}

/// 6: ten concurrent upserts by one user on one run leave exactly one row, no error.
pub async fn concurrent_upserts_leave_one_row(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let run = run_id();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (store, scope) = (b.stores.feedback.clone(), scope.clone());
            let f = fb(&thread, &run, if i % 2 == 0 { 1 } else { -1 });
            tokio::spawn(async move { store.upsert(&scope, f).await })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap().expect("no error under contention").id);
    }
    assert_eq!(ids.len(), 1, "every upsert addressed the same row");
    let rows = by_run(b, &scope, &thread, &run).await;
    assert_eq!(rows.len(), 1);
    let s = b.stores.feedback.stats(&thread, &run).await.unwrap();
    assert_eq!(s.total, 1);
}

/// 7: statistics count every user's rows; a run without feedback counts zeros.
pub async fn stats_count_every_users_rows(b: &TestBackend) {
    let owner = user_scope();
    let thread = create_thread(b, &owner).await;
    let run = run_id();
    for r in [1, 1, -1] {
        b.stores
            .feedback
            .create(&user_scope(), fb(&thread, &run, r))
            .await
            .unwrap();
    }
    let s = b.stores.feedback.stats(&thread, &run).await.unwrap();
    assert_eq!(s.run_id, run);
    assert_eq!((s.total, s.positive, s.negative), (3, 2, 1));
    let none = b.stores.feedback.stats(&thread, &run_id()).await.unwrap();
    assert_eq!((none.total, none.positive, none.negative), (0, 0, 0));
}

/// 8: `list_by_run_ids` with no runs is `{}`; other threads' and other owners' rows never
/// appear.
pub async fn list_by_run_ids_is_scoped_by_thread_and_owner(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let other_thread = create_thread(b, &scope).await;
    let (r1, r2, r3) = (run_id(), run_id(), run_id());
    let mine = b
        .stores
        .feedback
        .create(&scope, fb(&thread, &r1, 1))
        .await
        .unwrap();
    b.stores
        .feedback
        .create(&scope, fb(&other_thread, &r2, 1))
        .await
        .unwrap();
    b.stores
        .feedback
        .create(&user_scope(), fb(&thread, &r3, -1))
        .await
        .unwrap();
    let f = &b.stores.feedback;
    assert!(
        f.list_by_run_ids(&scope, &thread, vec![])
            .await
            .unwrap()
            .is_empty()
    );
    let got = f
        .list_by_run_ids(&scope, &thread, vec![r1.clone(), r2, r3])
        .await
        .unwrap();
    assert_eq!(got, HashMap::from([(r1, mine)]));
}

/// 9: grouped listing gives one row per run; an empty thread gives `{}`.
pub async fn grouped_listing_has_one_row_per_run(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let (r1, r2) = (run_id(), run_id());
    let a = b
        .stores
        .feedback
        .create(&scope, fb(&thread, &r1, 1))
        .await
        .unwrap();
    let c = b
        .stores
        .feedback
        .create(&scope, fb(&thread, &r2, -1))
        .await
        .unwrap();
    let got = b
        .stores
        .feedback
        .list_by_thread_grouped(&scope, &thread)
        .await
        .unwrap();
    assert_eq!(got, HashMap::from([(r1, a), (r2, c)]));
    let empty = create_thread(b, &scope).await;
    assert!(
        b.stores
            .feedback
            .list_by_thread_grouped(&scope, &empty)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Unscoped grouping with several users on one run keeps the most recently updated row.
pub async fn unscoped_grouping_keeps_the_latest_update(b: &TestBackend) {
    let owner = user_scope();
    let thread = create_thread(b, &owner).await;
    let run = run_id();
    b.stores
        .feedback
        .upsert(&user_scope(), fb(&thread, &run, 1))
        .await
        .unwrap();
    b.clock.advance(Duration::seconds(10));
    let late = b
        .stores
        .feedback
        .upsert(&user_scope(), fb(&thread, &run, -1))
        .await
        .unwrap();
    b.clock.advance(Duration::seconds(10));
    let f = &b.stores.feedback;
    let grouped = f
        .list_by_thread_grouped(&UserScope::Unscoped, &thread)
        .await
        .unwrap();
    assert_eq!(grouped, HashMap::from([(run.clone(), late.clone())]));
    let by_ids = f
        .list_by_run_ids(&UserScope::Unscoped, &thread, vec![run.clone()])
        .await
        .unwrap();
    assert_eq!(by_ids, HashMap::from([(run, late)]));
}

/// 10: deleting a missing id is false; `delete_by_run` removes only the caller's row.
pub async fn deletes_touch_only_the_callers_rows(b: &TestBackend) {
    let (ua, ub) = (user_scope(), user_scope());
    let thread = create_thread(b, &ua).await;
    let run = run_id();
    let a = b
        .stores
        .feedback
        .create(&ua, fb(&thread, &run, 1))
        .await
        .unwrap();
    let c = b
        .stores
        .feedback
        .create(&ub, fb(&thread, &run, -1))
        .await
        .unwrap();
    let f = &b.stores.feedback;
    assert!(!f.delete(&ua, FeedbackId::new_random()).await.unwrap());
    assert!(!f.delete(&ub, a.id).await.unwrap(), "another user's row");
    assert!(f.delete_by_run(&ua, &thread, &run).await.unwrap());
    assert!(!f.delete_by_run(&ua, &thread, &run).await.unwrap());
    assert_eq!(f.get(&ua, a.id).await.unwrap(), None);
    assert_eq!(f.get(&ub, c.id).await.unwrap(), Some(c.clone()));
    assert!(f.delete(&ub, c.id).await.unwrap());
    assert_eq!(f.stats(&thread, &run).await.unwrap().total, 0);
}

/// Another user's row reads as missing; `Unscoped` reads it.
pub async fn other_users_rows_are_invisible(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let run = run_id();
    let row = b
        .stores
        .feedback
        .create(&scope, fb(&thread, &run, 1))
        .await
        .unwrap();
    let other = user_scope();
    let f = &b.stores.feedback;
    assert_eq!(f.get(&other, row.id).await.unwrap(), None);
    assert!(by_run(b, &other, &thread, &run).await.is_empty());
    assert!(
        f.list_by_thread(&other, &thread, limit(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        f.list_by_thread_grouped(&other, &thread)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        f.get(&UserScope::Unscoped, row.id).await.unwrap(),
        Some(row)
    );
}

/// Lists are ascending by `created_at` and say when rows beyond the page exist.
pub async fn lists_are_oldest_first_with_has_more(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(
            b.stores
                .feedback
                .create(&scope, fb(&thread, &run_id(), 1))
                .await
                .unwrap(),
        );
        b.clock.advance(Duration::seconds(1));
    }
    let f = &b.stores.feedback;
    let page = f.list_by_thread(&scope, &thread, limit(2)).await.unwrap();
    assert_eq!(page.items, made[..2].to_vec());
    assert!(page.has_more);
    let all = f.list_by_thread(&scope, &thread, limit(3)).await.unwrap();
    assert_eq!(all.items, made);
    assert!(!all.has_more);
    let one = f
        .list_by_run(&scope, &thread, &made[1].run_id, limit(1))
        .await
        .unwrap();
    assert_eq!(one.items, vec![made[1].clone()]);
    assert!(!one.has_more);
}

/// Mutating a returned row never changes the stored one.
pub async fn returned_rows_are_copies(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let mut row = b
        .stores
        .feedback
        .create(&scope, fb(&thread, &run_id(), 1))
        .await
        .unwrap();
    let pristine = row.clone();
    row.comment = Some("mutated".into());
    let mut read = b
        .stores
        .feedback
        .get(&scope, pristine.id)
        .await
        .unwrap()
        .unwrap();
    read.rating = Rating::Negative;
    assert_eq!(
        b.stores.feedback.get(&scope, pristine.id).await.unwrap(),
        Some(pristine)
    );
}

// -- case list (every `pub async fn` above, in order) ----------------------------------------

/// Runs every feedback case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `feedback`.
#[macro_export]
macro_rules! feedback_contract {
    ($factory:path) => {
        mod feedback {
            $crate::__contract_cases!(
                $factory,
                feedback,
                [
                    create_stores_every_field,
                    bad_input_is_refused_and_nothing_stored,
                    second_create_conflicts_and_keeps_the_first,
                    upsert_inserts_then_updates_in_place,
                    one_row_per_user_and_one_anonymous,
                    concurrent_upserts_leave_one_row,
                    stats_count_every_users_rows,
                    list_by_run_ids_is_scoped_by_thread_and_owner,
                    grouped_listing_has_one_row_per_run,
                    unscoped_grouping_keeps_the_latest_update,
                    deletes_touch_only_the_callers_rows,
                    other_users_rows_are_invisible,
                    lists_are_oldest_first_with_has_more,
                    returned_rows_are_copies,
                ]
            );
        }
    };
}
