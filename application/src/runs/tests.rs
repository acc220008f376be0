//! Run lifecycle over mockall mocks.

use std::sync::{Arc, Mutex};

use chrono::{TimeZone, Utc};
use waymark_domain::checkpoint::{
    Checkpoint, CheckpointMetadata, CheckpointTuple, PendingWrite, TypedValue,
};
use waymark_domain::mocks::{MockCheckpointRepository, MockRunRepository, MockThreadRepository};
use waymark_domain::paging::Page;
use waymark_domain::thread::Thread;
use waymark_domain::{ChannelName, DomainError, JsonObject, TaskId};

use super::*;
use crate::test_support::{rid, tid};

const U: UserScope = UserScope::Unscoped;

fn run(thread: &str, id: &str, status: RunStatus) -> Run {
    let mut r = NewRun::new(tid(thread), rid(id))
        .into_run(None, Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap());
    r.status = status;
    r
}

fn thread_row(id: &str) -> Thread {
    Thread {
        id: tid(id),
        session_id: None,
        owner: None,
        assistant_id: None,
        display_name: None,
        status: ThreadStatus::Running,
        metadata: JsonObject::new(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

/// Threads that allow access and record every status written.
fn threads_recording(statuses: Arc<Mutex<Vec<(ThreadId, ThreadStatus)>>>) -> MockThreadRepository {
    let mut t = MockThreadRepository::new();
    t.expect_check_access().returning(|_, _, _| Ok(true));
    t.expect_update().returning(move |_, id, u| {
        statuses
            .lock()
            .unwrap()
            .push((id.clone(), u.status.expect("a status update")));
        assert!(u.touch);
        let mut row = thread_row(id.as_str());
        row.status = u.status.unwrap();
        Ok(row)
    });
    t
}

fn service(runs: MockRunRepository, threads: MockThreadRepository) -> RunService {
    service_with(runs, threads, MockCheckpointRepository::new())
}

fn service_with(
    runs: MockRunRepository,
    threads: MockThreadRepository,
    checkpoints: MockCheckpointRepository,
) -> RunService {
    RunService::new(
        Arc::new(runs),
        Arc::new(threads),
        Arc::new(checkpoints),
        RunConfig::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn admitting_creates_a_pending_run_and_marks_the_thread_running() {
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let mut runs = MockRunRepository::new();
    runs.expect_create()
        .times(1)
        .returning(|_, n| Ok(n.into_run(None, Utc::now())));
    let s = service(runs, threads_recording(statuses.clone()));
    let r = s.admit(&U, NewRun::new(tid("t"), rid("r"))).await.unwrap();
    assert_eq!(r.status, RunStatus::Pending);
    assert_eq!(
        *statuses.lock().unwrap(),
        vec![(tid("t"), ThreadStatus::Running)]
    );
}

#[tokio::test]
async fn a_denied_thread_admits_nothing() {
    let mut threads = MockThreadRepository::new();
    threads.expect_check_access().returning(|_, _, _| Ok(false));
    threads.expect_update().never();
    let mut runs = MockRunRepository::new();
    runs.expect_create().never();
    let s = service(runs, threads);
    let err = s
        .admit(&U, NewRun::new(tid("t"), rid("r")))
        .await
        .unwrap_err();
    assert!(err.is_access_denied());
    let err = s
        .start(
            &U,
            &tid("t"),
            &rid("r"),
            &WorkerId::parse("w").unwrap(),
            None,
        )
        .await
        .unwrap_err();
    assert!(err.is_access_denied());
}

#[tokio::test]
async fn a_failed_thread_update_ends_the_admitted_run() {
    let mut threads = MockThreadRepository::new();
    threads.expect_check_access().returning(|_, _, _| Ok(true));
    threads
        .expect_update()
        .returning(|_, _, _| Err(DomainError::storage("threads.update", "down")));
    let mut runs = MockRunRepository::new();
    runs.expect_create()
        .returning(|_, n| Ok(n.into_run(None, Utc::now())));
    runs.expect_finish()
        .times(1)
        .withf(|_, _, r, o| r.as_str() == "r" && o.status == FinalStatus::Error)
        .returning(|_, t, r, _| Ok(run(t.as_str(), r.as_str(), RunStatus::Error)));
    let s = service(runs, threads);
    let err = s
        .admit(&U, NewRun::new(tid("t"), rid("r")))
        .await
        .unwrap_err();
    assert!(err.is_storage());
}

#[tokio::test]
async fn finishing_sets_the_thread_status_the_run_leaves() {
    for (fin, want) in [
        (FinalStatus::Success, ThreadStatus::Idle),
        (FinalStatus::Error, ThreadStatus::Error),
        (FinalStatus::Timeout, ThreadStatus::Timeout),
        (FinalStatus::Interrupted, ThreadStatus::Interrupted),
    ] {
        let statuses = Arc::new(Mutex::new(Vec::new()));
        let mut runs = MockRunRepository::new();
        runs.expect_finish()
            .times(1)
            .returning(move |_, t, r, o| Ok(run(t.as_str(), r.as_str(), o.status.status())));
        runs.expect_active().returning(|_, _| Ok(None));
        let s = service(runs, threads_recording(statuses.clone()));
        let outcome = RunOutcome {
            status: fin,
            error: None,
        };
        let r = s.finish(&U, &tid("t"), &rid("r"), outcome).await.unwrap();
        assert_eq!(r.status, fin.status());
        assert_eq!(*statuses.lock().unwrap(), vec![(tid("t"), want)]);
    }
}

#[tokio::test]
async fn finishing_an_old_run_keeps_a_newer_active_run_visible() {
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let mut runs = MockRunRepository::new();
    runs.expect_finish()
        .returning(|_, t, r, _| Ok(run(t.as_str(), r.as_str(), RunStatus::Success)));
    runs.expect_active()
        .returning(|_, t| Ok(Some(run(t.as_str(), "newer", RunStatus::Running))));
    let s = service(runs, threads_recording(statuses.clone()));
    let outcome = RunOutcome {
        status: FinalStatus::Success,
        error: None,
    };
    s.finish(&U, &tid("t"), &rid("old"), outcome).await.unwrap();
    assert!(statuses.lock().unwrap().is_empty());
}

#[tokio::test]
async fn cancel_interrupts_with_the_cancelled_text() {
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let mut runs = MockRunRepository::new();
    runs.expect_finish()
        .times(1)
        .withf(|_, _, _, o| {
            o.status == FinalStatus::Interrupted
                && o.error.as_ref().map(|e| e.as_str()) == Some(CANCELLED)
        })
        .returning(|_, t, r, _| Ok(run(t.as_str(), r.as_str(), RunStatus::Interrupted)));
    runs.expect_active().returning(|_, _| Ok(None));
    let s = service(runs, threads_recording(statuses.clone()));
    s.cancel(&U, &tid("t"), &rid("r")).await.unwrap();
    assert_eq!(
        *statuses.lock().unwrap(),
        vec![(tid("t"), ThreadStatus::Interrupted)]
    );
}

#[tokio::test]
async fn heartbeat_renews_then_reports_progress() {
    let mut runs = MockRunRepository::new();
    runs.expect_renew_lease()
        .times(2)
        .withf(|_, _, _, w, ttl| w.as_str() == "w" && ttl.duration().num_seconds() == 30)
        .returning(|_, t, r, _, _| Ok(run(t.as_str(), r.as_str(), RunStatus::Running)));
    runs.expect_update_progress()
        .times(1)
        .returning(|_, t, r, p| {
            let mut row = run(t.as_str(), r.as_str(), RunStatus::Running);
            row.progress = p.into_inner();
            Ok(row)
        });
    let mut threads = MockThreadRepository::new();
    threads.expect_check_access().returning(|_, _, _| Ok(true));
    let s = service(runs, threads);
    let w = WorkerId::parse("w").unwrap();
    let plain = s
        .heartbeat(&U, &tid("t"), &rid("r"), &w, None, None)
        .await
        .unwrap();
    assert!(plain.progress.is_empty());
    let mut p = JsonObject::new();
    p.insert("step".into(), 2.into());
    let with = s
        .heartbeat(
            &U,
            &tid("t"),
            &rid("r"),
            &w,
            None,
            Some(RunProgress::new(p.clone()).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(with.progress, p);
}

#[tokio::test]
async fn reconcile_errors_threads_left_running_without_a_live_run() {
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let mut runs = MockRunRepository::new();
    runs.expect_reclaim_expired()
        .times(1)
        .withf(|s, max| *s == UserScope::Unscoped && *max == 3)
        .returning(|_, _| {
            Ok(vec![
                run("dead", "r1", RunStatus::Error),
                run("requeued", "r2", RunStatus::Pending),
            ])
        });
    runs.expect_active().returning(|_, t| {
        Ok((t.as_str() == "live").then(|| run("live", "r3", RunStatus::Running)))
    });
    let mut threads = threads_recording(statuses.clone());
    threads
        .expect_search()
        .times(1)
        .withf(|s, q| {
            *s == UserScope::Unscoped
                && q.status == Some(ThreadStatus::Running)
                && q.page.offset == 0
        })
        .returning(|_, _| {
            Ok(Page {
                items: vec![thread_row("live"), thread_row("stale")],
                has_more: false,
            })
        });
    let s = service(runs, threads);
    let report = s.reconcile().await.unwrap();
    assert_eq!(report.reclaimed_runs.len(), 2);
    assert_eq!(report.errored_threads, vec![tid("stale")]);
    assert_eq!(
        *statuses.lock().unwrap(),
        vec![
            (tid("dead"), ThreadStatus::Error),
            (tid("stale"), ThreadStatus::Error)
        ]
    );
}

#[tokio::test]
async fn thread_status_is_running_while_active_else_derived() {
    let mut runs = MockRunRepository::new();
    let active = Arc::new(Mutex::new(true));
    let a = active.clone();
    runs.expect_active().returning(move |_, t| {
        Ok((*a.lock().unwrap()).then(|| run(t.as_str(), "r", RunStatus::Pending)))
    });
    let mut threads = MockThreadRepository::new();
    threads.expect_check_access().returning(|_, _, _| Ok(true));
    let mut checkpoints = MockCheckpointRepository::new();
    checkpoints.expect_get_tuple().returning(|t, ns, _| {
        Ok(Some(CheckpointTuple {
            thread_id: t.clone(),
            namespace: ns.clone(),
            checkpoint: Checkpoint::empty(0),
            metadata: CheckpointMetadata::default(),
            parent_id: None,
            pending_writes: vec![PendingWrite {
                task_id: TaskId::parse("task").unwrap(),
                task_path: String::new(),
                channel: ChannelName::parse("__error__").unwrap(),
                value: TypedValue::null(),
                idx: -1,
            }],
        }))
    });
    let s = service_with(runs, threads, checkpoints);
    assert_eq!(
        s.thread_status(&U, &tid("t")).await.unwrap(),
        ThreadStatus::Running
    );
    *active.lock().unwrap() = false;
    assert_eq!(
        s.thread_status(&U, &tid("t")).await.unwrap(),
        ThreadStatus::Error
    );
}

#[test]
fn zero_attempts_are_refused() {
    let cfg = RunConfig {
        max_attempts: 0,
        ..RunConfig::default()
    };
    let err = RunService::new(
        Arc::new(MockRunRepository::new()),
        Arc::new(MockThreadRepository::new()),
        Arc::new(MockCheckpointRepository::new()),
        cfg,
    )
    .unwrap_err();
    assert!(err.is_invalid_input());
}
