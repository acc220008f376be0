//! History and token use cases over mockall mocks.

use std::sync::Arc;

use chrono::Utc;
use serde_json::json;
use waymark_domain::UserId;
use waymark_domain::mocks::{
    MockRunEventRepository, MockThreadRepository, MockTokenUsageRepository,
};
use waymark_domain::run_event::RunEvent;
use waymark_domain::thread::{Thread, ThreadStatus};

use super::*;
use crate::test_support::{clock, rid, tid};

fn open_threads() -> MockThreadRepository {
    let mut t = MockThreadRepository::new();
    t.expect_check_access().returning(|_, _, _| Ok(true));
    t.expect_claim().returning(|scope, id| {
        Ok(Some(
            waymark_domain::thread::NewThread::with_id(id.clone())
                .into_thread(scope.owner().cloned(), Utc::now()),
        ))
    });
    t
}

fn manager(
    events: MockRunEventRepository,
    usage: MockTokenUsageRepository,
    threads: MockThreadRepository,
) -> HistoryManager {
    HistoryManager::new(
        Arc::new(events),
        Arc::new(usage),
        Arc::new(threads),
        clock(),
    )
}

fn record(thread: &str, role: MessageRole, message: serde_json::Value) -> MessageRecord {
    MessageRecord {
        thread_id: tid(thread),
        run_id: rid("r1"),
        role,
        message: message.as_object().unwrap().clone(),
        metadata: JsonObject::new(),
        created_at: None,
    }
}

#[tokio::test]
async fn messages_are_stored_as_message_events_of_their_roles_type() {
    let mut events = MockRunEventRepository::new();
    events
        .expect_put()
        .withf(|_, e| {
            e.event_type.as_str() == "llm.ai.response"
                && e.category.is_message()
                && e.content["type"] == json!("ai")
        })
        .times(1)
        .returning(|scope, e| {
            Ok(RunEvent {
                thread_id: e.thread_id,
                run_id: e.run_id,
                seq: 1,
                event_type: e.event_type,
                category: e.category,
                content: e.content,
                metadata: e.metadata,
                created_at: Utc::now(),
                user_id: scope.owner().cloned(),
            })
        });
    let m = manager(events, MockTokenUsageRepository::new(), open_threads());
    let stored = m
        .record_message(
            &UserScope::Unscoped,
            record(
                "t1",
                MessageRole::Ai,
                json!({"type": "ai", "content": "hi"}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(stored.seq, 1);
}

#[tokio::test]
async fn a_message_without_a_type_or_a_mixed_batch_is_refused_before_the_store() {
    let mut events = MockRunEventRepository::new();
    events.expect_put().never();
    events.expect_put_batch().never();
    let m = manager(events, MockTokenUsageRepository::new(), open_threads());
    let err = m
        .record_message(
            &UserScope::Unscoped,
            record("t1", MessageRole::Human, json!({"content": "no type"})),
        )
        .await
        .unwrap_err();
    assert!(err.is_invalid_input());
    let err = m
        .record_messages(
            &UserScope::Unscoped,
            vec![
                record("t1", MessageRole::Human, json!({"type": "human"})),
                record("t2", MessageRole::Tool, json!({"type": "tool"})),
            ],
        )
        .await
        .unwrap_err();
    assert!(err.is_invalid_input());
    assert!(
        m.record_messages(&UserScope::Unscoped, Vec::new())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn token_usage_takes_the_session_from_the_thread_and_the_owner_from_the_scope() {
    let mut threads = open_threads();
    threads.expect_get().returning(|_, id| {
        Ok(Some(Thread {
            id: id.clone(),
            session_id: Some(SessionId::parse("s9").unwrap()),
            owner: None,
            assistant_id: None,
            display_name: None,
            status: ThreadStatus::Idle,
            metadata: JsonObject::new(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }))
    });
    let mut usage = MockTokenUsageRepository::new();
    usage
        .expect_record()
        .withf(|u| {
            u.session_id.as_ref().map(|s| s.as_str()) == Some("s9")
                && u.user_id.as_ref().map(|s| s.as_str()) == Some("alice")
                && u.total_tokens == 150
                && u.recorded_at == clock().now()
        })
        .times(1)
        .returning(Ok);
    let m = manager(MockRunEventRepository::new(), usage, threads);
    let scope = UserScope::User(UserId::parse("alice").unwrap());
    let report = UsageReport {
        thread_id: Some(tid("t1")),
        model: Some(ModelName::parse("gpt-x").unwrap()),
        prompt_tokens: 100,
        completion_tokens: 50,
        ..UsageReport::default()
    };
    m.record_token_usage(&scope, report.clone()).await.unwrap();
    let err = m
        .record_token_usage(
            &scope,
            UsageReport {
                model: None,
                ..report
            },
        )
        .await
        .unwrap_err();
    assert!(err.is_invalid_input());
}

#[tokio::test]
async fn statistics_are_restricted_to_the_scopes_user() {
    let mut usage = MockTokenUsageRepository::new();
    usage
        .expect_stats()
        .withf(|f, g| {
            f.user_id.as_ref().map(|u| u.as_str()) == Some("alice") && *g == TokenGrouping::Total
        })
        .times(1)
        .returning(|_, _| {
            Ok(vec![TokenStats {
                key: None,
                records: 2,
                prompt_tokens: 10,
                completion_tokens: 5,
                total_tokens: 15,
            }])
        });
    let m = manager(MockRunEventRepository::new(), usage, open_threads());
    let alice = UserScope::User(UserId::parse("alice").unwrap());
    let total = m.thread_tokens(&alice, &tid("t1")).await.unwrap();
    assert_eq!(total.total_tokens, 15);
    let other = TokenUsageFilter {
        user_id: Some(UserId::parse("bob").unwrap()),
        ..TokenUsageFilter::default()
    };
    assert!(
        m.token_stats(&alice, other, TokenGrouping::Model)
            .await
            .unwrap_err()
            .is_invalid_input()
    );
    let now = Utc::now();
    let backwards = TokenUsageFilter {
        from: Some(now),
        to: Some(now - chrono::Duration::hours(1)),
        ..TokenUsageFilter::default()
    };
    assert!(
        m.token_stats(&UserScope::Unscoped, backwards, TokenGrouping::Total)
            .await
            .unwrap_err()
            .is_invalid_input()
    );
}

#[tokio::test]
async fn costs_follow_the_price_table_and_name_unpriced_models() {
    let mut usage = MockTokenUsageRepository::new();
    usage
        .expect_stats()
        .withf(|_, g| *g == TokenGrouping::Model)
        .returning(|_, _| {
            Ok(vec![
                TokenStats {
                    key: Some("big".into()),
                    records: 1,
                    prompt_tokens: 2000,
                    completion_tokens: 1000,
                    total_tokens: 3000,
                },
                TokenStats {
                    key: Some("mystery".into()),
                    records: 1,
                    prompt_tokens: 10,
                    completion_tokens: 10,
                    total_tokens: 20,
                },
            ])
        });
    let m = manager(MockRunEventRepository::new(), usage, open_threads());
    let mut prices = PriceTable::new();
    prices.insert(
        ModelName::parse("big").unwrap(),
        ModelPrice::new(0.5, 1.5).unwrap(),
    );
    let report = m
        .cost(&UserScope::Unscoped, TokenUsageFilter::default(), &prices)
        .await
        .unwrap();
    assert!(
        (report.total_cost - 2.5).abs() < 1e-9,
        "{}",
        report.total_cost
    );
    assert_eq!(report.models[0].cost, Some(2.5));
    assert_eq!(report.models[1].cost, None);
    assert_eq!(report.unpriced_models, vec!["mystery".to_owned()]);
    assert!(ModelPrice::new(-1.0, 0.0).unwrap_err().is_invalid_input());
    assert!(ModelPrice::new(0.0, f64::NAN).is_err());
}

#[tokio::test]
async fn recording_into_a_thread_the_claim_refuses_writes_nothing() {
    let mut threads = MockThreadRepository::new();
    threads.expect_claim().times(1).returning(|_, _| Ok(None));
    let mut events = MockRunEventRepository::new();
    events.expect_put().never();
    events.expect_put_batch().never();
    let m = manager(events, MockTokenUsageRepository::new(), threads);
    let scope = UserScope::User(UserId::parse("mallory").unwrap());
    let err = m
        .record_message(
            &scope,
            record(
                "t1",
                MessageRole::Human,
                json!({"type": "human", "content": "x"}),
            ),
        )
        .await
        .unwrap_err();
    assert!(err.is_access_denied());
}

#[tokio::test]
async fn reading_a_denied_threads_messages_is_refused() {
    let mut threads = MockThreadRepository::new();
    threads.expect_check_access().returning(|_, _, _| Ok(false));
    let mut events = MockRunEventRepository::new();
    events.expect_list_messages().never();
    let m = manager(events, MockTokenUsageRepository::new(), threads);
    let err = m
        .messages(
            &UserScope::Unscoped,
            &tid("t1"),
            waymark_domain::paging::SeqPage::default_latest(),
        )
        .await
        .unwrap_err();
    assert!(err.is_access_denied());
}
