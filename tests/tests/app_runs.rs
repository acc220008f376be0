//! The run lifecycle service over real stores (memory, a SQLite file, PostgreSQL): the thread
//! statuses a run leaves behind (spec §6.8.2) and startup reconciliation (§6.8.3), including a
//! live run of another worker that must be left alone.

#[macro_use]
#[path = "app_common.rs"]
mod common;

use chrono::Duration;
use waymark_application::runs::{RunConfig, RunService};
use waymark_domain::run::{FinalStatus, LeaseTtl, NewRun, RunOutcome, RunStatus, WorkerId};
use waymark_domain::thread::{NewThread, ThreadStatus, ThreadUpdate};
use waymark_domain::{RunId, ThreadId, UserId, UserScope};
use waymark_tests::harness::TestBackend;

app_scenarios!(
    a_run_sets_the_thread_status_it_leaves,
    startup_reconciliation_errors_threads_left_running,
);

fn service(b: &TestBackend) -> RunService {
    RunService::new(
        b.stores.runs.clone(),
        b.stores.threads.clone(),
        b.stores.checkpoints.clone(),
        RunConfig {
            lease: LeaseTtl::seconds(10).unwrap(),
            max_attempts: 2,
        },
    )
    .unwrap()
}

fn fresh(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

async fn new_thread(b: &TestBackend, scope: &UserScope) -> ThreadId {
    let id = ThreadId::parse(fresh("t")).unwrap();
    b.stores
        .threads
        .create(scope, NewThread::with_id(id.clone()))
        .await
        .unwrap();
    id
}

async fn stored_status(b: &TestBackend, id: &ThreadId) -> ThreadStatus {
    b.stores
        .threads
        .get(&UserScope::Unscoped, id)
        .await
        .unwrap()
        .unwrap()
        .status
}

async fn a_run_sets_the_thread_status_it_leaves(b: &TestBackend) {
    let scope = UserScope::User(UserId::parse(fresh("u")).unwrap());
    let runs = service(b);
    let thread = new_thread(b, &scope).await;
    let worker = WorkerId::parse("w").unwrap();
    for (fin, want) in [
        (FinalStatus::Success, ThreadStatus::Idle),
        (FinalStatus::Error, ThreadStatus::Error),
        (FinalStatus::Timeout, ThreadStatus::Timeout),
        (FinalStatus::Interrupted, ThreadStatus::Interrupted),
    ] {
        let run = RunId::parse(fresh("r")).unwrap();
        runs.admit(&scope, NewRun::new(thread.clone(), run.clone()))
            .await
            .unwrap();
        assert_eq!(stored_status(b, &thread).await, ThreadStatus::Running);
        assert_eq!(
            runs.thread_status(&scope, &thread).await.unwrap(),
            ThreadStatus::Running
        );
        runs.start(&scope, &thread, &run, &worker, None)
            .await
            .unwrap();
        let ended = runs
            .finish(
                &scope,
                &thread,
                &run,
                RunOutcome {
                    status: fin,
                    error: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(ended.status, fin.status());
        assert_eq!(stored_status(b, &thread).await, want, "{fin:?}");
    }
    // Another user cannot admit a run on the thread.
    let intruder = UserScope::User(UserId::parse(fresh("u")).unwrap());
    let err = runs
        .admit(
            &intruder,
            NewRun::new(thread.clone(), RunId::parse(fresh("r")).unwrap()),
        )
        .await
        .unwrap_err();
    assert!(err.is_access_denied() || err.is_not_found(), "{err:?}");
}

async fn startup_reconciliation_errors_threads_left_running(b: &TestBackend) {
    let scope = UserScope::User(UserId::parse(fresh("u")).unwrap());
    let runs = service(b);
    // A thread a crashed server left `running` with no run at all.
    let orphan = new_thread(b, &scope).await;
    b.stores
        .threads
        .update(
            &scope,
            &orphan,
            ThreadUpdate {
                status: Some(ThreadStatus::Running),
                touch: true,
                ..ThreadUpdate::default()
            },
        )
        .await
        .unwrap();
    // A run another worker still holds a live lease on.
    let live = new_thread(b, &scope).await;
    let live_run = RunId::parse(fresh("r")).unwrap();
    runs.admit(&scope, NewRun::new(live.clone(), live_run.clone()))
        .await
        .unwrap();
    runs.start(
        &scope,
        &live,
        &live_run,
        &WorkerId::parse("other").unwrap(),
        Some(LeaseTtl::seconds(3600).unwrap()),
    )
    .await
    .unwrap();
    // A run whose worker died: its lease lapses twice.
    let dead = new_thread(b, &scope).await;
    let dead_run = RunId::parse(fresh("r")).unwrap();
    runs.admit(&scope, NewRun::new(dead.clone(), dead_run.clone()))
        .await
        .unwrap();
    let w = WorkerId::parse("crashed").unwrap();
    runs.start(&scope, &dead, &dead_run, &w, None)
        .await
        .unwrap();
    b.clock.advance(Duration::seconds(11));

    let first = runs.reconcile().await.unwrap();
    assert_eq!(first.errored_threads, vec![orphan.clone()]);
    assert_eq!(first.reclaimed_runs.len(), 1);
    assert_eq!(first.reclaimed_runs[0].status, RunStatus::Pending);
    assert_eq!(stored_status(b, &orphan).await, ThreadStatus::Error);
    assert_eq!(stored_status(b, &live).await, ThreadStatus::Running);
    assert_eq!(
        stored_status(b, &dead).await,
        ThreadStatus::Running,
        "requeued"
    );

    runs.start(&scope, &dead, &dead_run, &w, None)
        .await
        .unwrap();
    b.clock.advance(Duration::seconds(11));
    let second = runs.reconcile().await.unwrap();
    assert!(second.errored_threads.is_empty());
    assert_eq!(second.reclaimed_runs.len(), 1);
    assert_eq!(second.reclaimed_runs[0].status, RunStatus::Error);
    assert_eq!(stored_status(b, &dead).await, ThreadStatus::Error);
    let live_now = runs.get(&scope, &live, &live_run).await.unwrap();
    assert_eq!(live_now.status, RunStatus::Running);
    assert_eq!(stored_status(b, &live).await, ThreadStatus::Running);
}
