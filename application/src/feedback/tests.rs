//! Feedback use cases over mockall mocks.

use std::sync::Arc;

use chrono::Utc;
use waymark_domain::feedback::Rating;
use waymark_domain::mocks::{MockFeedbackRepository, MockRunEventRepository, MockThreadRepository};
use waymark_domain::run_event::RunEvent;
use waymark_domain::{EventCategory, EventType};

use super::*;
use crate::test_support::{rid, tid};

const U: UserScope = UserScope::Unscoped;

fn open_threads() -> Arc<MockThreadRepository> {
    let mut t = MockThreadRepository::new();
    t.expect_check_access()
        .returning(|_, id, _| Ok(id.as_str() != "denied"));
    Arc::new(t)
}

fn new_feedback(thread: &str, run: &str) -> NewFeedback {
    NewFeedback {
        thread_id: tid(thread),
        run_id: rid(run),
        rating: Rating::Positive,
        comment: Some("good".into()),
        message_id: None,
    }
}

fn row(thread: &str, run: &str) -> Feedback {
    Feedback {
        id: FeedbackId::new_random(),
        thread_id: tid(thread),
        run_id: rid(run),
        user_id: None,
        message_id: None,
        rating: Rating::Positive,
        comment: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn events_with_runs(runs: &'static [&'static str]) -> Arc<MockRunEventRepository> {
    let mut e = MockRunEventRepository::new();
    e.expect_list_events().returning(move |_, q| {
        Ok(if runs.contains(&q.run_id.as_str()) {
            vec![RunEvent {
                thread_id: q.thread_id.clone(),
                run_id: q.run_id.clone(),
                seq: 1,
                event_type: EventType::parse("run.start").unwrap(),
                category: EventCategory::parse("trace").unwrap(),
                content: serde_json::json!(""),
                metadata: Default::default(),
                created_at: Utc::now(),
                user_id: None,
            }]
        } else {
            Vec::new()
        })
    });
    Arc::new(e)
}

#[tokio::test]
async fn without_a_store_feedback_is_disabled() {
    let s = FeedbackService::new(None, open_threads());
    assert!(
        s.upsert(&U, new_feedback("t1", "r1"))
            .await
            .unwrap_err()
            .is_disabled()
    );
    assert!(
        s.stats(&U, &tid("t1"), &rid("r1"))
            .await
            .unwrap_err()
            .is_disabled()
    );
}

#[tokio::test]
async fn writes_need_an_accessible_thread_a_known_run_and_valid_text() {
    let mut repo = MockFeedbackRepository::new();
    repo.expect_upsert()
        .withf(|_, f| f.run_id.as_str() == "r1")
        .times(1)
        .returning(|_, f| Ok(row(f.thread_id.as_str(), f.run_id.as_str())));
    repo.expect_create().never();
    let s = FeedbackService::new(Some(Arc::new(repo)), open_threads())
        .with_run_check(events_with_runs(&["r1"]));
    s.upsert(&U, new_feedback("t1", "r1")).await.unwrap();
    assert!(
        s.create(&U, new_feedback("t1", "ghost"))
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        s.create(&U, new_feedback("denied", "r1"))
            .await
            .unwrap_err()
            .is_access_denied()
    );
    let mut long = new_feedback("t1", "r1");
    long.comment = Some("x".repeat(10_001));
    assert!(s.create(&U, long).await.unwrap_err().is_invalid_input());
}

#[tokio::test]
async fn a_create_conflict_is_reported_as_a_conflict() {
    let mut repo = MockFeedbackRepository::new();
    repo.expect_create().returning(|_, _| {
        Err(waymark_domain::DomainError::conflict(
            "feedback",
            "one per run and user",
        ))
    });
    let s = FeedbackService::new(Some(Arc::new(repo)), open_threads());
    assert!(
        s.create(&U, new_feedback("t1", "r1"))
            .await
            .unwrap_err()
            .is_conflict()
    );
}

#[tokio::test]
async fn delete_by_id_only_within_its_thread_and_run() {
    let mine = row("t1", "r1");
    let id = mine.id;
    let mut repo = MockFeedbackRepository::new();
    repo.expect_get()
        .returning(move |_, _| Ok(Some(mine.clone())));
    repo.expect_delete().times(1).returning(|_, _| Ok(true));
    repo.expect_delete_by_run().returning(|_, _, _| Ok(false));
    let s = FeedbackService::new(Some(Arc::new(repo)), open_threads());
    assert!(
        s.delete(&U, &tid("t1"), &rid("other"), id)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        s.delete(&U, &tid("t2"), &rid("r1"), id)
            .await
            .unwrap_err()
            .is_not_found()
    );
    s.delete(&U, &tid("t1"), &rid("r1"), id).await.unwrap();
    assert!(
        s.delete_mine(&U, &tid("t1"), &rid("r1"))
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn reads_check_access_and_pass_through() {
    let mut repo = MockFeedbackRepository::new();
    repo.expect_stats().times(1).returning(|_, r| {
        Ok(waymark_domain::feedback::FeedbackStats {
            run_id: r.clone(),
            total: 3,
            positive: 2,
            negative: 1,
        })
    });
    repo.expect_list_by_thread_grouped()
        .returning(|_, _| Ok(Default::default()));
    let s = FeedbackService::new(Some(Arc::new(repo)), open_threads());
    assert_eq!(
        s.stats(&U, &tid("t1"), &rid("r1")).await.unwrap().positive,
        2
    );
    assert!(
        s.stats(&U, &tid("denied"), &rid("r1"))
            .await
            .unwrap_err()
            .is_access_denied()
    );
    assert!(s.grouped_by_run(&U, &tid("t1")).await.unwrap().is_empty());
}
