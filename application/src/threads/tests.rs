//! Thread use cases over mockall mocks.

use std::sync::Arc;

use chrono::Utc;
use mockall::Sequence;
use serde_json::json;
use waymark_domain::DomainError;
use waymark_domain::mocks::{
    MockChatStreamRepository, MockCheckpointRepository, MockSessionRepository, MockThreadRepository,
};
use waymark_domain::session::{CheckpointPolicy, Session, SessionStatus};

use super::*;
use crate::chat_stream::ChatStreamConfig;
use crate::test_support::{clock, tid};

const U: UserScope = UserScope::Unscoped;

fn row(id: &str) -> Thread {
    Thread {
        id: tid(id),
        session_id: None,
        owner: None,
        assistant_id: None,
        display_name: None,
        status: ThreadStatus::Idle,
        metadata: JsonObject::new(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn session(id: &str) -> Session {
    Session {
        id: SessionId::parse(id).unwrap(),
        owner: None,
        title: None,
        metadata: JsonObject::new(),
        status: SessionStatus::Active,
        checkpoint_policy: CheckpointPolicy::default(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn sessions_with(ids: &'static [&'static str]) -> MockSessionRepository {
    let mut s = MockSessionRepository::new();
    s.expect_get()
        .returning(move |_, id| Ok(ids.contains(&id.as_str()).then(|| session(id.as_str()))));
    s
}

fn manager(
    threads: MockThreadRepository,
    sessions: MockSessionRepository,
    checkpoints: MockCheckpointRepository,
) -> ThreadManager {
    ThreadManager::new(Arc::new(threads), Arc::new(sessions), Arc::new(checkpoints))
}

#[tokio::test]
async fn creating_in_a_missing_session_is_not_found_and_writes_nothing() {
    let mut threads = MockThreadRepository::new();
    threads.expect_create().never();
    let m = manager(
        threads,
        sessions_with(&["s1"]),
        MockCheckpointRepository::new(),
    );
    let mut new = NewThread::with_id(tid("t1"));
    new.session_id = Some(SessionId::parse("ghost").unwrap());
    let err = m.create(&U, new.clone()).await.unwrap_err();
    assert!(err.is_not_found());
    new.session_id = None;
    new.display_name = Some("x".repeat(257));
    assert!(m.create(&U, new).await.unwrap_err().is_invalid_input());
}

#[tokio::test]
async fn creating_in_an_existing_session_passes_the_thread_on() {
    let mut threads = MockThreadRepository::new();
    threads
        .expect_create()
        .withf(|_, n| n.session_id.as_ref().map(|s| s.as_str()) == Some("s1"))
        .times(1)
        .returning(|_, n| {
            let mut t = row(n.id.as_str());
            t.session_id = n.session_id;
            Ok(t)
        });
    let m = manager(
        threads,
        sessions_with(&["s1"]),
        MockCheckpointRepository::new(),
    );
    let mut new = NewThread::with_id(tid("t1"));
    new.session_id = Some(SessionId::parse("s1").unwrap());
    assert!(m.create(&U, new).await.unwrap().session_id.is_some());
}

#[tokio::test]
async fn delete_removes_checkpoints_then_the_row_then_the_buffer() {
    let mut seq = Sequence::new();
    let mut threads = MockThreadRepository::new();
    threads
        .expect_check_access()
        .withf(|_, _, require| !require)
        .returning(|_, _, _| Ok(true));
    let mut checkpoints = MockCheckpointRepository::new();
    checkpoints
        .expect_delete_thread()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    threads
        .expect_delete()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(true));
    let chat = Arc::new(
        ChatStreamService::new(
            Arc::new(MockChatStreamRepository::new()),
            clock(),
            ChatStreamConfig::default(),
        )
        .unwrap(),
    );
    chat.record(&U, &tid("t1"), "frame".into(), "none")
        .await
        .unwrap();
    chat.record(&U, &tid("t1"), "frame2".into(), "partial")
        .await
        .unwrap();
    let m =
        manager(threads, MockSessionRepository::new(), checkpoints).with_chat_streams(chat.clone());
    let d = m.delete(&U, &tid("t1")).await.unwrap();
    assert_eq!(
        d,
        ThreadDeletion {
            existed: true,
            buffered_frames_dropped: 2
        }
    );
    assert!(chat.buffered(&tid("t1")).await.is_empty());
}

#[tokio::test]
async fn another_users_thread_is_not_deleted_and_a_checkpoint_failure_keeps_the_row() {
    let mut threads = MockThreadRepository::new();
    threads
        .expect_check_access()
        .returning(|_, id, _| Ok(id.as_str() != "theirs"));
    threads.expect_delete().never();
    let mut checkpoints = MockCheckpointRepository::new();
    checkpoints
        .expect_delete_thread()
        .withf(|t| t.as_str() == "mine")
        .returning(|_| Err(DomainError::storage("checkpoints.delete_thread", "down")));
    let m = manager(threads, MockSessionRepository::new(), checkpoints);
    assert!(
        m.delete(&U, &tid("theirs"))
            .await
            .unwrap_err()
            .is_access_denied()
    );
    assert!(m.delete(&U, &tid("mine")).await.unwrap_err().is_storage());
}

#[tokio::test]
async fn pinning_does_not_touch_and_moving_needs_the_target_session() {
    let mut threads = MockThreadRepository::new();
    threads
        .expect_update()
        .withf(|_, _, u| {
            u.metadata_patch
                .as_ref()
                .map(|p| p["pinned"] == json!(true))
                == Some(true)
                && !u.touch
        })
        .times(1)
        .returning(|_, id, _| Ok(row(id.as_str())));
    threads
        .expect_update()
        .withf(|_, _, u| u.session_id == Some(None) && u.touch)
        .times(1)
        .returning(|_, id, _| Ok(row(id.as_str())));
    let m = manager(
        threads,
        sessions_with(&["s1"]),
        MockCheckpointRepository::new(),
    );
    m.set_pinned(&U, &tid("t1"), true).await.unwrap();
    let err = m
        .move_to_session(&U, &tid("t1"), Some(SessionId::parse("ghost").unwrap()))
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    m.move_to_session(&U, &tid("t1"), None).await.unwrap();
}

#[tokio::test]
async fn get_of_a_missing_thread_is_not_found_and_long_names_are_refused() {
    let mut threads = MockThreadRepository::new();
    threads.expect_get().returning(|_, _| Ok(None));
    threads.expect_update().never();
    threads
        .expect_check_access()
        .returning(|_, _, require| Ok(!require));
    let m = manager(
        threads,
        MockSessionRepository::new(),
        MockCheckpointRepository::new(),
    );
    assert!(m.get(&U, &tid("t1")).await.unwrap_err().is_not_found());
    assert!(
        m.set_display_name(&U, &tid("t1"), Some("n".repeat(300)))
            .await
            .unwrap_err()
            .is_invalid_input()
    );
    assert!(m.check_access(&U, &tid("t1"), Access::Read).await.unwrap());
    assert!(
        m.ensure_access(&U, &tid("t1"), Access::Write)
            .await
            .unwrap_err()
            .is_access_denied()
    );
}
