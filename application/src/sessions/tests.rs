//! Session use cases over mockall mocks.

use std::sync::{Arc, Mutex};

use chrono::Utc;
use waymark_domain::mocks::{
    MockCheckpointRepository, MockSessionRepository, MockThreadRepository,
};
use waymark_domain::thread::{Thread, ThreadStatus};
use waymark_domain::{DomainError, UserId};

use super::*;
use crate::test_support::{clock, tid};

fn thread(id: &str) -> Thread {
    Thread {
        id: tid(id),
        session_id: Some(SessionId::parse("s1").unwrap()),
        owner: None,
        assistant_id: None,
        display_name: None,
        status: ThreadStatus::Idle,
        metadata: JsonObject::new(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn manager(
    sessions: MockSessionRepository,
    threads: MockThreadRepository,
    checkpoints: MockCheckpointRepository,
) -> SessionManager {
    let sessions: Arc<MockSessionRepository> = Arc::new(sessions);
    let tm = ThreadManager::new(Arc::new(threads), sessions.clone(), Arc::new(checkpoints));
    SessionManager::new(sessions, tm, clock())
}

#[tokio::test]
async fn create_stamps_owner_time_status_and_a_fresh_id() {
    let mut sessions = MockSessionRepository::new();
    sessions.expect_create().times(1).returning(|_, s| Ok(s));
    let m = manager(
        sessions,
        MockThreadRepository::new(),
        MockCheckpointRepository::new(),
    );
    let scope = UserScope::User(UserId::parse("alice").unwrap());
    let s = m
        .create(
            &scope,
            NewSession {
                title: Some("Research".into()),
                ..NewSession::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(s.owner.as_ref().map(|u| u.as_str()), Some("alice"));
    assert_eq!(s.status, SessionStatus::Active);
    assert_eq!(s.created_at, clock().now());
    assert_eq!(s.created_at, s.updated_at);
    assert!(uuid::Uuid::parse_str(s.id.as_str()).is_ok());
    assert!(s.checkpoint_policy.exempt_snapshots);
}

#[tokio::test]
async fn invalid_titles_are_refused_before_the_store() {
    let mut sessions = MockSessionRepository::new();
    sessions.expect_create().never();
    sessions.expect_update().never();
    let m = manager(
        sessions,
        MockThreadRepository::new(),
        MockCheckpointRepository::new(),
    );
    let long = NewSession {
        title: Some("t".repeat(513)),
        ..NewSession::default()
    };
    assert!(
        m.create(&UserScope::Unscoped, long)
            .await
            .unwrap_err()
            .is_invalid_input()
    );
    let update = SessionUpdate {
        title: Some(Some("a\0b".into())),
        ..SessionUpdate::default()
    };
    let id = SessionId::parse("s1").unwrap();
    assert!(
        m.update(&UserScope::Unscoped, &id, update)
            .await
            .unwrap_err()
            .is_invalid_input()
    );
}

#[tokio::test]
async fn deleting_with_threads_deletes_each_thread_then_the_session() {
    let remaining = Arc::new(Mutex::new(vec!["t1", "t2", "t3"]));
    let mut sessions = MockSessionRepository::new();
    sessions.expect_get().returning(|_, id| {
        Ok(Some(Session {
            id: id.clone(),
            owner: None,
            title: None,
            metadata: JsonObject::new(),
            status: SessionStatus::Active,
            checkpoint_policy: CheckpointPolicy::default(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }))
    });
    sessions.expect_delete().times(1).returning(|_, _| Ok(true));
    let mut threads = MockThreadRepository::new();
    let listed = remaining.clone();
    threads.expect_search().returning(move |_, q| {
        assert_eq!(q.session_id.as_ref().map(|s| s.as_str()), Some("s1"));
        let items: Vec<Thread> = listed
            .lock()
            .unwrap()
            .iter()
            .take(2)
            .map(|i| thread(i))
            .collect();
        Ok(Page {
            has_more: false,
            items,
        })
    });
    threads.expect_check_access().returning(|_, _, _| Ok(true));
    let gone = remaining.clone();
    threads.expect_delete().times(3).returning(move |_, id| {
        gone.lock().unwrap().retain(|t| *t != id.as_str());
        Ok(true)
    });
    let mut checkpoints = MockCheckpointRepository::new();
    checkpoints
        .expect_delete_thread()
        .times(3)
        .returning(|_| Ok(()));
    let m = manager(sessions, threads, checkpoints);
    let out = m
        .delete(
            &UserScope::Unscoped,
            &SessionId::parse("s1").unwrap(),
            SessionDeletion::DeleteThreads,
        )
        .await
        .unwrap();
    assert!(out.existed);
    assert_eq!(out.deleted_threads, vec![tid("t1"), tid("t2"), tid("t3")]);
}

#[tokio::test]
async fn a_store_that_keeps_listing_deleted_threads_stops_the_delete() {
    let mut sessions = MockSessionRepository::new();
    sessions.expect_get().returning(|_, id| {
        Ok(Some(Session {
            id: id.clone(),
            owner: None,
            title: None,
            metadata: JsonObject::new(),
            status: SessionStatus::Active,
            checkpoint_policy: CheckpointPolicy::default(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }))
    });
    sessions.expect_delete().never();
    let mut threads = MockThreadRepository::new();
    threads.expect_search().returning(|_, _| {
        Ok(Page {
            has_more: false,
            items: vec![thread("t1")],
        })
    });
    threads.expect_check_access().returning(|_, _, _| Ok(true));
    threads.expect_delete().times(1).returning(|_, _| Ok(true));
    let mut checkpoints = MockCheckpointRepository::new();
    checkpoints.expect_delete_thread().returning(|_| Ok(()));
    let m = manager(sessions, threads, checkpoints);
    let err = m
        .delete(
            &UserScope::Unscoped,
            &SessionId::parse("s1").unwrap(),
            SessionDeletion::DeleteThreads,
        )
        .await
        .unwrap_err();
    assert!(err.is_storage(), "{err}");
}

#[tokio::test]
async fn detaching_delete_leaves_threads_to_the_store_and_missing_sessions_read_as_not_found() {
    let mut sessions = MockSessionRepository::new();
    sessions
        .expect_delete()
        .times(1)
        .returning(|_, _| Ok(false));
    sessions.expect_get().returning(|_, _| Ok(None));
    sessions
        .expect_update()
        .returning(|_, id, _| Err(DomainError::not_found("session", id)));
    let mut threads = MockThreadRepository::new();
    threads.expect_search().never();
    let m = manager(sessions, threads, MockCheckpointRepository::new());
    let id = SessionId::parse("s1").unwrap();
    let out = m
        .delete(&UserScope::Unscoped, &id, SessionDeletion::DetachThreads)
        .await
        .unwrap();
    assert!(!out.existed && out.deleted_threads.is_empty());
    assert!(
        m.get(&UserScope::Unscoped, &id)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        m.set_status(&UserScope::Unscoped, &id, SessionStatus::Archived)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        m.threads(&UserScope::Unscoped, &id, OffsetPage::first(10).unwrap())
            .await
            .unwrap_err()
            .is_not_found()
    );
}
