//! Decisions of the session layer, over mockall mocks; every checkpoint access goes through
//! a real `ThreadCheckpointManager` built on the same mocks.

use std::sync::{Arc, Mutex};

use chrono::Utc;
use indexmap::IndexMap;
use serde_json::json;
use waymark_domain::checkpoint::{
    Checkpoint, CheckpointMetadata, CheckpointPut, CheckpointTuple, TypedValue,
};
use waymark_domain::mocks::{
    MockBranchRepository, MockCheckpointRepository, MockSessionRepository, MockSnapshotRepository,
    MockThreadRepository,
};
use waymark_domain::paging::Page;
use waymark_domain::session::SessionStatus;
use waymark_domain::thread::ThreadStatus;
use waymark_domain::{ChannelName, CheckpointNamespace, DomainError, JsonObject};

use super::*;
use crate::test_support::{clock, tid};

const U: UserScope = UserScope::Unscoped;

fn sid() -> SessionId {
    SessionId::parse("s1").unwrap()
}

fn session(policy: CheckpointPolicy) -> Session {
    Session {
        id: sid(),
        owner: None,
        title: None,
        metadata: JsonObject::new(),
        status: SessionStatus::Active,
        checkpoint_policy: policy,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn thread(id: &str, session: Option<&str>) -> Thread {
    Thread {
        id: tid(id),
        session_id: session.map(|s| SessionId::parse(s).unwrap()),
        owner: None,
        assistant_id: None,
        display_name: None,
        status: ThreadStatus::Idle,
        metadata: JsonObject::new(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn tuple(thread: &str, id: &str) -> CheckpointTuple {
    let mut cp = Checkpoint::empty(0);
    cp.id = CheckpointId::parse(id).unwrap();
    CheckpointTuple {
        thread_id: tid(thread),
        namespace: CheckpointNamespace::root(),
        checkpoint: cp,
        metadata: CheckpointMetadata::default(),
        parent_id: None,
        pending_writes: Vec::new(),
    }
}

struct Ports {
    sessions: MockSessionRepository,
    threads: MockThreadRepository,
    checkpoints: MockCheckpointRepository,
    snapshots: MockSnapshotRepository,
}

impl Ports {
    fn new(policy: CheckpointPolicy) -> Self {
        let mut sessions = MockSessionRepository::new();
        sessions
            .expect_get()
            .returning(move |_, id| Ok((id.as_str() == "s1").then(|| session(policy.clone()))));
        let mut threads = MockThreadRepository::new();
        threads.expect_check_access().returning(|_, _, _| Ok(true));
        Self {
            sessions,
            threads,
            checkpoints: MockCheckpointRepository::new(),
            snapshots: MockSnapshotRepository::new(),
        }
    }

    /// The session holds `ids`, served in pages of two to exercise paging.
    fn with_threads(mut self, ids: &'static [&'static str]) -> Self {
        self.threads.expect_search().returning(move |_, q| {
            assert_eq!(q.session_id, Some(sid()));
            let start = q.page.offset as usize;
            let items: Vec<Thread> = ids
                .iter()
                .skip(start)
                .take(2)
                .map(|i| thread(i, Some("s1")))
                .collect();
            Ok(Page {
                has_more: start + items.len() < ids.len(),
                items,
            })
        });
        self
    }

    fn manager(self) -> SessionCheckpointManager {
        let threads: Arc<MockThreadRepository> = Arc::new(self.threads);
        let tcm = ThreadCheckpointManager::new(
            Arc::new(self.checkpoints),
            threads.clone(),
            Arc::new(MockBranchRepository::new()),
            Arc::new(self.snapshots),
            clock(),
        );
        SessionCheckpointManager::new(Arc::new(self.sessions), threads, tcm)
    }
}

#[tokio::test]
async fn applying_the_policy_isolates_a_failing_thread() {
    let policy = CheckpointPolicy::new(Some(1), None, true).unwrap();
    let mut p = Ports::new(policy).with_threads(&["t1", "t2", "t3"]);
    p.checkpoints.expect_list().returning(|q| {
        let t = q.thread_id.clone().unwrap();
        if t.as_str() == "t2" {
            return Err(DomainError::storage("checkpoints.list", "timeout"));
        }
        Ok(vec![tuple(t.as_str(), "c2"), tuple(t.as_str(), "c1")])
    });
    p.snapshots
        .expect_list_for_thread()
        .returning(|_| Ok(Vec::new()));
    p.checkpoints
        .expect_delete_checkpoints()
        .withf(|t, _, ids| t.as_str() != "t2" && ids == &vec![CheckpointId::parse("c1").unwrap()])
        .times(2)
        .returning(|_, _, _| Ok(1));
    let report = p.manager().apply_policy(&U, &sid()).await.unwrap();
    assert_eq!(report.threads.len(), 3);
    assert_eq!(report.removed_total(), 2);
    assert_eq!(report.failed_threads(), vec![&tid("t2")]);
    let t2 = &report.threads[1];
    assert!(t2.error.as_ref().unwrap().is_storage());
    assert!(t2.error.as_ref().unwrap().to_string().contains("timeout"));
}

#[tokio::test]
async fn a_missing_session_fails_the_whole_call() {
    let p = Ports::new(CheckpointPolicy::default());
    let m = p.manager();
    let other = SessionId::parse("nope").unwrap();
    assert!(m.apply_policy(&U, &other).await.unwrap_err().is_not_found());
    assert!(m.statistics(&U, &other).await.unwrap_err().is_not_found());
    assert!(m.policy(&U, &other).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn statistics_sum_the_threads_and_list_the_ones_that_failed() {
    let mut p = Ports::new(CheckpointPolicy::default()).with_threads(&["t1", "t2", "t3"]);
    let a = CheckpointId::generate(0);
    let b = CheckpointId::generate(0);
    let (a2, b2) = (a.clone(), b.clone());
    p.checkpoints
        .expect_summary()
        .returning(move |t| match t.as_str() {
            "t1" => Ok(CheckpointSummary {
                checkpoints: 3,
                writes: 2,
                namespaces: 1,
                oldest: Some(a2.clone()),
                newest: Some(a2.clone()),
                stored_bytes: Some(100),
            }),
            "t2" => Ok(CheckpointSummary {
                checkpoints: 4,
                writes: 0,
                namespaces: 2,
                oldest: Some(b2.clone()),
                newest: Some(b2.clone()),
                stored_bytes: None,
            }),
            _ => Err(DomainError::storage("checkpoints.summary", "down")),
        });
    let s = p.manager().statistics(&U, &sid()).await.unwrap();
    assert_eq!(s.threads, 3);
    assert_eq!(s.checkpoints, 7);
    assert_eq!(s.writes, 2);
    assert_eq!(s.stored_bytes, None, "t2's store cannot tell");
    assert_eq!(s.oldest, Some(a));
    assert_eq!(s.newest, Some(b));
    assert!(s.oldest_at.unwrap() <= s.newest_at.unwrap());
    assert_eq!(s.per_thread.len(), 3);
    assert!(s.per_thread[2].summary.is_none() && s.per_thread[2].error.is_some());
}

fn entry(thread: &str) -> SyncEntry {
    let mut values = IndexMap::new();
    values.insert(
        ChannelName::parse("state").unwrap(),
        TypedValue::msgpack(vec![1]),
    );
    SyncEntry {
        thread_id: tid(thread),
        checkpoint: NewCheckpoint {
            namespace: CheckpointNamespace::root(),
            channel_values: values,
            metadata: JsonObject::new(),
        },
    }
}

#[tokio::test]
async fn a_sync_point_writes_every_thread_in_one_put_many_tagged_with_one_id() {
    let mut p = Ports::new(CheckpointPolicy::default());
    p.threads
        .expect_get()
        .returning(|_, id| Ok(Some(thread(id.as_str(), Some("s1")))));
    p.checkpoints
        .expect_get_tuple()
        .returning(|_, _, _| Ok(None));
    p.checkpoints.expect_put().never();
    let seen: Arc<Mutex<Vec<CheckpointPut>>> = Arc::default();
    let sink = seen.clone();
    p.checkpoints
        .expect_put_many()
        .times(1)
        .returning(move |puts| {
            let refs = puts
                .iter()
                .map(|p| waymark_domain::checkpoint::CheckpointRef {
                    thread_id: p.thread_id.clone(),
                    namespace: p.namespace.clone(),
                    checkpoint_id: p.checkpoint.id.clone(),
                })
                .collect();
            *sink.lock().unwrap() = puts;
            Ok(refs)
        });
    let sp = p
        .manager()
        .sync_point(&U, &sid(), vec![entry("t1"), entry("t2"), entry("t3")])
        .await
        .unwrap();
    assert_eq!(sp.checkpoints.len(), 3);
    let puts = seen.lock().unwrap();
    assert!(
        puts.iter()
            .all(|p| p.metadata.0["sync_point"] == json!(sp.id))
    );
    let state = ChannelName::parse("state").unwrap();
    assert!(
        puts.iter()
            .all(|p| p.new_versions.contains_key(&state) && p.parent_id.is_none())
    );
    let threads: Vec<&str> = puts.iter().map(|p| p.thread_id.as_str()).collect();
    assert_eq!(threads, vec!["t1", "t2", "t3"]);
}

#[tokio::test]
async fn a_failed_put_many_fails_the_sync_point_without_single_writes() {
    let mut p = Ports::new(CheckpointPolicy::default());
    p.threads
        .expect_get()
        .returning(|_, id| Ok(Some(thread(id.as_str(), Some("s1")))));
    p.checkpoints
        .expect_get_tuple()
        .returning(|_, _, _| Ok(None));
    p.checkpoints.expect_put().never();
    p.checkpoints
        .expect_put_many()
        .times(1)
        .returning(|_| Err(DomainError::storage("checkpoints.put_many", "rolled back")));
    let err = p
        .manager()
        .sync_point(&U, &sid(), vec![entry("t1"), entry("t2")])
        .await
        .unwrap_err();
    assert!(err.is_storage());
}

#[tokio::test]
async fn a_sync_point_refuses_foreign_duplicate_or_no_threads_before_writing() {
    let mut p = Ports::new(CheckpointPolicy::default());
    p.threads.expect_get().returning(|_, id| {
        Ok(match id.as_str() {
            "t1" => Some(thread("t1", Some("s1"))),
            "elsewhere" => Some(thread("elsewhere", Some("s2"))),
            "loose" => Some(thread("loose", None)),
            _ => None,
        })
    });
    p.checkpoints.expect_put_many().never();
    p.checkpoints.expect_get_tuple().never();
    let m = p.manager();
    for bad in ["elsewhere", "loose"] {
        let err = m
            .sync_point(&U, &sid(), vec![entry("t1"), entry(bad)])
            .await
            .unwrap_err();
        assert!(err.is_invalid_input(), "{bad}: {err}");
    }
    let err = m
        .sync_point(&U, &sid(), vec![entry("t1"), entry("ghost")])
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    let err = m
        .sync_point(&U, &sid(), vec![entry("t1"), entry("t1")])
        .await
        .unwrap_err();
    assert!(err.is_invalid_input());
    assert!(
        m.sync_point(&U, &sid(), Vec::new())
            .await
            .unwrap_err()
            .is_invalid_input()
    );
}

#[tokio::test]
async fn setting_the_policy_updates_the_session() {
    let policy = CheckpointPolicy::new(Some(5), Some(3600), false).unwrap();
    let mut p = Ports::new(CheckpointPolicy::default());
    let expected = policy.clone();
    p.sessions
        .expect_update()
        .withf(move |_, id, u| {
            id.as_str() == "s1"
                && u.checkpoint_policy.as_ref() == Some(&expected)
                && u.title.is_none()
        })
        .times(1)
        .returning(|_, _, u| Ok(session(u.checkpoint_policy.unwrap())));
    let s = p
        .manager()
        .set_policy(&U, &sid(), policy.clone())
        .await
        .unwrap();
    assert_eq!(s.checkpoint_policy, policy);
}
