//! The run contract (spec `history-and-streams.md` §6.2, rules in `waymark_domain::run`): at
//! most one active run per thread (also under concurrency), the start compare-and-set, final
//! statuses never overwritten, progress only while running, leases renewed by their holder
//! only and reclaimed when expired, newest-first cursor paging with `has_more`, scoping, and
//! the cascade of a thread delete.

use std::collections::HashSet;

use chrono::{Duration, SecondsFormat};
use futures::future::join_all;
use serde_json::json;
use waymark_domain::clock::Clock;
use waymark_domain::paging::Limit;
use waymark_domain::run::{
    FinalStatus, LEASE_EXPIRED_ERROR, LeaseTtl, NewRun, Run, RunCursor, RunErrorText, RunOutcome,
    RunPage, RunProgress, RunStatus, WorkerId,
};
use waymark_domain::thread::NewThread;
use waymark_domain::{RunId, ThreadId, UserScope};

use super::fixtures::*;
use crate::harness::TestBackend;

fn worker(s: &str) -> WorkerId {
    WorkerId::parse(s).expect("worker id")
}

fn ttl(secs: i64) -> LeaseTtl {
    LeaseTtl::seconds(secs).expect("ttl")
}

fn outcome(status: FinalStatus, error: Option<&str>) -> RunOutcome {
    RunOutcome {
        status,
        error: error.map(|e| RunErrorText::parse(e).expect("error text")),
    }
}

async fn create(b: &TestBackend, scope: &UserScope, thread: &ThreadId) -> Run {
    b.stores
        .runs
        .create(scope, NewRun::new(thread.clone(), run_id()))
        .await
        .expect("create run")
}

async fn start(b: &TestBackend, scope: &UserScope, r: &Run, w: &str, secs: i64) -> Run {
    b.stores
        .runs
        .start(scope, &r.thread_id, &r.run_id, &worker(w), ttl(secs))
        .await
        .expect("start run")
}

async fn finish(b: &TestBackend, scope: &UserScope, r: &Run, status: FinalStatus) -> Run {
    b.stores
        .runs
        .finish(scope, &r.thread_id, &r.run_id, outcome(status, None))
        .await
        .expect("finish run")
}

async fn get(b: &TestBackend, scope: &UserScope, r: &Run) -> Option<Run> {
    b.stores
        .runs
        .get(scope, &r.thread_id, &r.run_id)
        .await
        .expect("get run")
}

fn page(limit: u32, after: Option<RunCursor>) -> RunPage {
    RunPage {
        limit: Limit::new(limit).expect("limit"),
        after,
    }
}

/// 1: a new run is pending, owned by the thread's owner, stamped with the clock in UTC, with
/// its metadata, no lease and attempt 0; it reads back equal.
pub async fn create_stores_a_pending_run(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let mut new = NewRun::new(thread.clone(), run_id());
    new.metadata = obj(json!({"assistant": "agent", "n": 1}));
    let r = b.stores.runs.create(&scope, new.clone()).await.unwrap();
    assert_eq!(
        (r.run_id.clone(), r.thread_id.clone()),
        (new.run_id, thread)
    );
    assert_eq!(r.owner.as_ref(), scope.owner());
    assert_eq!(r.status, RunStatus::Pending);
    assert_eq!((r.created_at, r.updated_at), (b.clock.now(), b.clock.now()));
    assert!(
        r.created_at
            .to_rfc3339_opts(SecondsFormat::Micros, false)
            .ends_with("+00:00")
    );
    assert_eq!(
        (r.started_at, r.ended_at, r.error.clone()),
        (None, None, None)
    );
    assert_eq!(r.metadata, new.metadata);
    assert!(r.progress.is_empty() && r.lease.is_none() && r.attempt == 0);
    assert_eq!(get(b, &scope, &r).await, Some(r.clone()));
    // Another thread's id finds nothing.
    let other = create_thread(b, &scope).await;
    assert_eq!(
        b.stores.runs.get(&scope, &other, &r.run_id).await.unwrap(),
        None
    );
}

/// 2: the thread must exist and be visible; bad metadata is refused; nothing is stored.
pub async fn create_needs_a_visible_thread_and_valid_input(b: &TestBackend) {
    let a = user_scope();
    let other = user_scope();
    let missing = thread_id();
    expect_not_found(
        b.stores
            .runs
            .create(&a, NewRun::new(missing.clone(), run_id()))
            .await,
    );
    let thread = create_thread(b, &a).await;
    expect_not_found(
        b.stores
            .runs
            .create(&other, NewRun::new(thread.clone(), run_id()))
            .await,
    );
    let mut bad = NewRun::new(thread.clone(), run_id());
    bad.metadata = obj(json!({"k": "nul\u{0}"}));
    assert_eq!(
        expect_invalid(b.stores.runs.create(&a, bad).await),
        "metadata"
    );
    let listed = b
        .stores
        .runs
        .list(&a, &thread, &page(10, None))
        .await
        .unwrap();
    assert!(listed.items.is_empty() && !listed.has_more);
    // Unscoped (administrative) creates stamp the thread's owner.
    let r = b
        .stores
        .runs
        .create(&UserScope::Unscoped, NewRun::new(thread.clone(), run_id()))
        .await
        .unwrap();
    assert_eq!(r.owner.as_ref(), a.owner());
}

/// 3: at most one pending-or-running run per thread; a finished run frees the slot; a run id
/// is unique; other threads are independent.
pub async fn one_active_run_per_thread(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let first = create(b, &scope, &thread).await;
    expect_conflict(
        b.stores
            .runs
            .create(&scope, NewRun::new(thread.clone(), run_id()))
            .await,
    );
    start(b, &scope, &first, "w", 30).await;
    expect_conflict(
        b.stores
            .runs
            .create(&scope, NewRun::new(thread.clone(), run_id()))
            .await,
    );
    let elsewhere = create_thread(b, &scope).await;
    create(b, &scope, &elsewhere).await;
    finish(b, &scope, &first, FinalStatus::Success).await;
    let second = create(b, &scope, &thread).await;
    assert_eq!(
        b.stores.runs.active(&scope, &thread).await.unwrap(),
        Some(second.clone())
    );
    finish(b, &scope, &second, FinalStatus::Error).await;
    // A run id already used on this thread is refused even when the thread is free...
    expect_conflict(
        b.stores
            .runs
            .create(&scope, NewRun::new(thread.clone(), first.run_id.clone()))
            .await,
    );
    // ...but ids are unique within their thread only: another thread may use it.
    let third = create_thread(b, &scope).await;
    let reused = b
        .stores
        .runs
        .create(&scope, NewRun::new(third.clone(), first.run_id.clone()))
        .await
        .unwrap();
    assert_eq!((reused.thread_id, reused.run_id), (third, first.run_id));
}

/// 4: N concurrent creates on one thread admit exactly one run.
pub async fn concurrent_creates_admit_exactly_one(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let attempts = (0..8).map(|_| {
        b.stores
            .runs
            .create(&scope, NewRun::new(thread.clone(), run_id()))
    });
    let results = join_all(attempts).await;
    let ok: Vec<&Run> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(ok.len(), 1, "exactly one create wins: {results:?}");
    for r in results.iter().filter(|r| r.is_err()) {
        assert!(r.as_ref().unwrap_err().is_conflict(), "{r:?}");
    }
    let listed = b
        .stores
        .runs
        .list(&scope, &thread, &page(20, None))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].run_id, ok[0].run_id);
}

/// 5: start moves pending to running once: it takes the lease, stamps `started_at` and counts
/// the attempt; a second start, concurrent or later, and a start of a finished run conflict.
pub async fn start_is_a_compare_and_set(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let r = create(b, &scope, &thread).await;
    b.clock.advance(Duration::seconds(2));
    let workers = [worker("w1"), worker("w2"), worker("w3")];
    let starts = workers
        .iter()
        .map(|w| b.stores.runs.start(&scope, &thread, &r.run_id, w, ttl(30)));
    let results = join_all(starts).await;
    let won: Vec<&Run> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for e in results.iter().filter(|r| r.is_err()) {
        assert!(e.as_ref().unwrap_err().is_conflict());
    }
    let s = won[0].clone();
    assert_eq!(s.status, RunStatus::Running);
    assert_eq!(s.attempt, 1);
    assert_eq!(s.started_at, Some(b.clock.now()));
    assert_eq!(s.updated_at, b.clock.now());
    assert_eq!(s.created_at, r.created_at);
    let lease = s.lease.clone().expect("lease");
    assert_eq!(lease.expires_at, b.clock.now() + Duration::seconds(30));
    assert_eq!(get(b, &scope, &r).await, Some(s.clone()));
    expect_conflict(
        b.stores
            .runs
            .start(&scope, &thread, &r.run_id, &worker("w9"), ttl(30))
            .await,
    );
    finish(b, &scope, &s, FinalStatus::Success).await;
    expect_conflict(
        b.stores
            .runs
            .start(&scope, &thread, &r.run_id, &lease.worker_id, ttl(30))
            .await,
    );
    expect_not_found(
        b.stores
            .runs
            .start(&scope, &thread, &run_id(), &worker("w"), ttl(30))
            .await,
    );
}

/// 6: finishing sets the status, error, `ended_at` and clears the lease; a final status is
/// never replaced by a different one; repeating it is idempotent; an interrupted run may
/// still finish; a pending run may be finished directly.
pub async fn final_statuses_are_never_overwritten(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let r = create(b, &scope, &thread).await;
    start(b, &scope, &r, "w", 30).await;
    b.clock.advance(Duration::seconds(1));
    let done = b
        .stores
        .runs
        .finish(
            &scope,
            &thread,
            &r.run_id,
            outcome(FinalStatus::Error, Some("boom")),
        )
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Error);
    assert_eq!(done.error.as_deref(), Some("boom"));
    assert_eq!(done.ended_at, Some(b.clock.now()));
    assert!(done.lease.is_none());
    b.clock.advance(Duration::seconds(1));
    for other in [
        FinalStatus::Success,
        FinalStatus::Timeout,
        FinalStatus::Interrupted,
    ] {
        expect_conflict(
            b.stores
                .runs
                .finish(&scope, &thread, &r.run_id, outcome(other, None))
                .await,
        );
    }
    let again = b
        .stores
        .runs
        .finish(
            &scope,
            &thread,
            &r.run_id,
            outcome(FinalStatus::Error, None),
        )
        .await
        .unwrap();
    assert_eq!(again, done, "a repeat changes nothing");

    // interrupted -> interrupted is a repeat; interrupted -> success applies.
    let r2 = create(b, &scope, &thread).await;
    start(b, &scope, &r2, "w", 30).await;
    let int = finish(b, &scope, &r2, FinalStatus::Interrupted).await;
    b.clock.advance(Duration::seconds(1));
    assert_eq!(finish(b, &scope, &r2, FinalStatus::Interrupted).await, int);
    let resumed = finish(b, &scope, &r2, FinalStatus::Success).await;
    assert_eq!(resumed.status, RunStatus::Success);
    assert_eq!(resumed.ended_at, Some(b.clock.now()));

    // A pending run can be finished (cancelled before a worker took it).
    let r3 = create(b, &scope, &thread).await;
    let t = finish(b, &scope, &r3, FinalStatus::Timeout).await;
    assert_eq!(t.status, RunStatus::Timeout);
    expect_not_found(
        b.stores
            .runs
            .finish(
                &scope,
                &thread,
                &run_id(),
                outcome(FinalStatus::Success, None),
            )
            .await,
    );
}

/// 7: progress replaces the report only while running.
pub async fn progress_only_on_running_runs(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let r = create(b, &scope, &thread).await;
    let p = |v| RunProgress::new(obj(v)).expect("progress");
    expect_conflict(
        b.stores
            .runs
            .update_progress(&scope, &thread, &r.run_id, p(json!({"step": 0})))
            .await,
    );
    start(b, &scope, &r, "w", 30).await;
    b.clock.advance(Duration::seconds(1));
    let up = b
        .stores
        .runs
        .update_progress(&scope, &thread, &r.run_id, p(json!({"step": 1, "of": 3})))
        .await
        .unwrap();
    assert_eq!(up.progress, obj(json!({"step": 1, "of": 3})));
    assert_eq!(up.updated_at, b.clock.now());
    assert_eq!(get(b, &scope, &r).await.unwrap().progress, up.progress);
    finish(b, &scope, &r, FinalStatus::Success).await;
    expect_conflict(
        b.stores
            .runs
            .update_progress(&scope, &thread, &r.run_id, p(json!({"step": 2})))
            .await,
    );
    assert_eq!(get(b, &scope, &r).await.unwrap().progress, up.progress);
    assert!(
        RunProgress::new(obj(json!({"x": "\u{0}"})))
            .unwrap_err()
            .is_invalid_input()
    );
}

/// 8: only the lease holder renews, only while running; renewal moves the expiry.
pub async fn lease_renewed_by_its_holder_only(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let r = create(b, &scope, &thread).await;
    expect_conflict(
        b.stores
            .runs
            .renew_lease(&scope, &thread, &r.run_id, &worker("w"), ttl(30))
            .await,
    );
    start(b, &scope, &r, "w", 30).await;
    b.clock.advance(Duration::seconds(20));
    expect_conflict(
        b.stores
            .runs
            .renew_lease(&scope, &thread, &r.run_id, &worker("intruder"), ttl(30))
            .await,
    );
    let renewed = b
        .stores
        .runs
        .renew_lease(&scope, &thread, &r.run_id, &worker("w"), ttl(60))
        .await
        .unwrap();
    let lease = renewed.lease.expect("lease");
    assert_eq!(lease.worker_id, worker("w"));
    assert_eq!(lease.expires_at, b.clock.now() + Duration::seconds(60));
    assert_eq!(renewed.attempt, 1);
    finish(b, &scope, &r, FinalStatus::Success).await;
    expect_conflict(
        b.stores
            .runs
            .renew_lease(&scope, &thread, &r.run_id, &worker("w"), ttl(30))
            .await,
    );
}

/// 9: a running run whose lease expired goes back to pending while attempts remain, then
/// ends as an error; live leases are untouched; the old holder can no longer renew.
pub async fn expired_leases_are_reclaimed(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let live_thread = create_thread(b, &scope).await;
    let r = create(b, &scope, &thread).await;
    let live = create(b, &scope, &live_thread).await;
    start(b, &scope, &r, "w1", 10).await;
    start(b, &scope, &live, "w2", 100).await;
    b.clock.advance(Duration::seconds(5));
    assert!(
        b.stores
            .runs
            .reclaim_expired(&scope, 2)
            .await
            .unwrap()
            .is_empty()
    );
    b.clock.advance(Duration::seconds(5));
    let back = b.stores.runs.reclaim_expired(&scope, 2).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].run_id, r.run_id);
    assert_eq!(back[0].status, RunStatus::Pending);
    assert!(back[0].lease.is_none());
    assert_eq!(back[0].updated_at, b.clock.now());
    expect_conflict(
        b.stores
            .runs
            .renew_lease(&scope, &thread, &r.run_id, &worker("w1"), ttl(10))
            .await,
    );
    // Still the thread's active run: no second run is admitted meanwhile.
    expect_conflict(
        b.stores
            .runs
            .create(&scope, NewRun::new(thread.clone(), run_id()))
            .await,
    );
    let second = start(b, &scope, &r, "w3", 10).await;
    assert_eq!(second.attempt, 2);
    b.clock.advance(Duration::seconds(11));
    let failed = b.stores.runs.reclaim_expired(&scope, 2).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].status, RunStatus::Error);
    assert_eq!(failed[0].error.as_deref(), Some(LEASE_EXPIRED_ERROR));
    assert_eq!(failed[0].ended_at, Some(b.clock.now()));
    assert_eq!(get(b, &scope, &r).await, Some(failed[0].clone()));
    assert_eq!(
        get(b, &scope, &live).await.unwrap().status,
        RunStatus::Running
    );
}

/// 10: concurrent sweeps reclaim each expired run once; another user's sweep touches nothing.
pub async fn reclaim_is_scoped_and_happens_once(b: &TestBackend) {
    let scope = user_scope();
    let mut runs = Vec::new();
    for _ in 0..3 {
        let thread = create_thread(b, &scope).await;
        let r = create(b, &scope, &thread).await;
        start(b, &scope, &r, "w", 5).await;
        runs.push(r);
    }
    b.clock.advance(Duration::seconds(6));
    assert!(
        b.stores
            .runs
            .reclaim_expired(&user_scope(), 3)
            .await
            .unwrap()
            .is_empty()
    );
    let sweeps = (0..4).map(|_| b.stores.runs.reclaim_expired(&scope, 3));
    let mut seen = Vec::new();
    for s in join_all(sweeps).await {
        seen.extend(s.unwrap().into_iter().map(|r| r.run_id));
    }
    seen.sort();
    let mut want: Vec<RunId> = runs.iter().map(|r| r.run_id.clone()).collect();
    want.sort();
    assert_eq!(
        seen, want,
        "each expired run is reclaimed by exactly one sweep"
    );
}

/// 11: lists are newest first (ties by run id, descending) and cursor-paged with `has_more`
/// across more runs than a page holds; nothing is skipped or repeated.
pub async fn lists_are_newest_first_and_cursor_paged(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let mut made = Vec::new();
    for i in 0..7 {
        // Two runs share each instant, so the id breaks ties.
        if i % 2 == 0 {
            b.clock.advance(Duration::seconds(1));
        }
        let r = create(b, &scope, &thread).await;
        made.push(finish(b, &scope, &r, FinalStatus::Success).await);
    }
    let other_thread = create_thread(b, &scope).await;
    create(b, &scope, &other_thread).await;
    made.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.run_id.clone())));
    let want: Vec<RunId> = made.iter().map(|r| r.run_id.clone()).collect();

    let mut got = Vec::new();
    let mut after = None;
    let mut pages = Vec::new();
    loop {
        let p = b
            .stores
            .runs
            .list(&scope, &thread, &page(3, after))
            .await
            .unwrap();
        pages.push((p.items.len(), p.has_more));
        assert_eq!(p.has_more, p.next_cursor.is_some());
        got.extend(p.items.iter().map(|r| r.run_id.clone()));
        if !p.has_more {
            break;
        }
        let cursor = p.next_cursor.expect("cursor");
        after = Some(RunCursor::parse(&cursor.encode()).expect("cursor text round-trips"));
    }
    assert_eq!(pages, vec![(3, true), (3, true), (1, false)]);
    assert_eq!(got, want);
    let unique: HashSet<&RunId> = got.iter().collect();
    assert_eq!(unique.len(), 7);
    let exact = b
        .stores
        .runs
        .list(&scope, &thread, &page(7, None))
        .await
        .unwrap();
    assert_eq!((exact.items.len(), exact.has_more), (7, false));
}

/// 12: `active` answers the pending or running run and nothing once it ended.
pub async fn active_run_follows_the_lifecycle(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    assert_eq!(b.stores.runs.active(&scope, &thread).await.unwrap(), None);
    let r = create(b, &scope, &thread).await;
    assert_eq!(
        b.stores.runs.active(&scope, &thread).await.unwrap(),
        Some(r.clone())
    );
    let s = start(b, &scope, &r, "w", 30).await;
    assert_eq!(
        b.stores.runs.active(&scope, &thread).await.unwrap(),
        Some(s)
    );
    finish(b, &scope, &r, FinalStatus::Interrupted).await;
    assert_eq!(b.stores.runs.active(&scope, &thread).await.unwrap(), None);
}

/// 13: another user sees nothing and every mutation is not found; the row is unchanged.
pub async fn other_users_see_nothing(b: &TestBackend) {
    let a = user_scope();
    let intruder = user_scope();
    let thread = create_thread(b, &a).await;
    let r = create(b, &a, &thread).await;
    let s = start(b, &a, &r, "w", 30).await;
    assert_eq!(get(b, &intruder, &r).await, None);
    assert!(
        b.stores
            .runs
            .list(&intruder, &thread, &page(10, None))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        b.stores.runs.active(&intruder, &thread).await.unwrap(),
        None
    );
    let runs = &b.stores.runs;
    expect_not_found(
        runs.start(&intruder, &thread, &r.run_id, &worker("w"), ttl(5))
            .await,
    );
    expect_not_found(
        runs.renew_lease(&intruder, &thread, &r.run_id, &worker("w"), ttl(5))
            .await,
    );
    expect_not_found(
        runs.update_progress(
            &intruder,
            &thread,
            &r.run_id,
            RunProgress::new(obj(json!({"x": 1}))).unwrap(),
        )
        .await,
    );
    expect_not_found(
        runs.finish(
            &intruder,
            &thread,
            &r.run_id,
            outcome(FinalStatus::Error, None),
        )
        .await,
    );
    assert_eq!(get(b, &a, &r).await, Some(s.clone()));
    assert_eq!(get(b, &UserScope::Unscoped, &r).await, Some(s));
}

/// 14: deleting the thread ends and removes its runs (the active one included) in the same
/// unit; re-creating the id starts without runs and admits a new one.
pub async fn thread_delete_cascades_to_runs(b: &TestBackend) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let keep = create_thread(b, &scope).await;
    let old = create(b, &scope, &thread).await;
    finish(b, &scope, &old, FinalStatus::Success).await;
    let live = create(b, &scope, &thread).await;
    start(b, &scope, &live, "w", 30).await;
    let kept = create(b, &scope, &keep).await;
    assert!(b.stores.threads.delete(&scope, &thread).await.unwrap());
    assert_eq!(get(b, &scope, &old).await, None);
    assert_eq!(get(b, &UserScope::Unscoped, &live).await, None);
    expect_not_found(
        b.stores
            .runs
            .renew_lease(&scope, &thread, &live.run_id, &worker("w"), ttl(30))
            .await,
    );
    b.stores
        .threads
        .create(&scope, NewThread::with_id(thread.clone()))
        .await
        .unwrap();
    let listed = b
        .stores
        .runs
        .list(&scope, &thread, &page(10, None))
        .await
        .unwrap();
    assert!(listed.items.is_empty() && !listed.has_more);
    assert_eq!(b.stores.runs.active(&scope, &thread).await.unwrap(), None);
    create(b, &scope, &thread).await;
    assert_eq!(get(b, &scope, &kept).await, Some(kept));
}

/// Runs every run case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `run`.
#[macro_export]
macro_rules! run_contract {
    ($factory:path) => {
        mod run {
            $crate::__contract_cases!(
                $factory,
                run,
                [
                    create_stores_a_pending_run,
                    create_needs_a_visible_thread_and_valid_input,
                    one_active_run_per_thread,
                    concurrent_creates_admit_exactly_one,
                    start_is_a_compare_and_set,
                    final_statuses_are_never_overwritten,
                    progress_only_on_running_runs,
                    lease_renewed_by_its_holder_only,
                    expired_leases_are_reclaimed,
                    reclaim_is_scoped_and_happens_once,
                    lists_are_newest_first_and_cursor_paged,
                    active_run_follows_the_lifecycle,
                    other_users_see_nothing,
                    thread_delete_cascades_to_runs,
                ]
            );
        }
    };
}
