//! The history services of the application layer over real stores: a summarized thread whose
//! full conversation is recovered from the event store, the run journal's terminal sequence,
//! feedback attachment, chat-stream persistence with retention, token costs and the
//! cascading thread delete.

#[macro_use]
#[path = "app_common.rs"]
mod common;

use chrono::Duration;
use serde_json::json;
use waymark_application::history::{
    MessageRecord, MessageRole, ModelPrice, PriceTable, UsageReport,
};
use waymark_application::journal::{JournalConfig, JournalEvent, LlmUsage, RunOutcome};
use waymark_application::thread_history::HistorySource;
use waymark_application::{ChatStreamConfig, ChatStreamService, FeedbackService, RunJournal};
use waymark_domain::feedback::{NewFeedback, Rating};
use waymark_domain::token_usage::TokenUsageFilter;
use waymark_domain::{JsonObject, ModelName, RunId};
use waymark_tests::harness::TestBackend;

use common::*;

app_scenarios!(
    summarized_thread_history_is_recovered_from_events,
    journal_terminal_sequence_on_a_real_store,
    chat_streams_persist_append_and_expire,
    deleting_a_thread_removes_everything_it_held,
    token_costs_by_model,
);

fn obj(v: serde_json::Value) -> JsonObject {
    v.as_object().unwrap().clone()
}

fn run_id(s: &str) -> RunId {
    RunId::parse(format!("{s}-{}", uuid::Uuid::new_v4())).unwrap()
}

async fn summarized_thread_history_is_recovered_from_events(b: &TestBackend) {
    let app = App::new(b);
    let t = app.thread("summarized", None).await;
    let (r1, r2) = (run_id("r1"), run_id("r2"));
    // 16 messages over two runs: Q1, then AI and tool messages, then a second question.
    let mut records = vec![MessageRecord {
        thread_id: t.clone(),
        run_id: r1.clone(),
        role: MessageRole::Human,
        message: obj(human("Q1")),
        metadata: JsonObject::new(),
        created_at: None,
    }];
    for i in 1..16 {
        let run = if i < 10 { &r1 } else { &r2 };
        let (role, message) = match i % 3 {
            0 => (
                MessageRole::Tool,
                json!({"type": "tool", "content": format!("tool {i}"), "tool_call_id": "c"}),
            ),
            1 => (
                MessageRole::Ai,
                ai(&format!("lc_run--{i}"), &format!("answer {i}")),
            ),
            _ if i == 11 => (MessageRole::Human, human("Q2")),
            _ => (
                MessageRole::Ai,
                ai(&format!("lc_run--{i}"), &format!("more {i}")),
            ),
        };
        records.push(MessageRecord {
            thread_id: t.clone(),
            run_id: run.clone(),
            role,
            message: obj(message),
            metadata: obj(json!({"caller": "lead_agent"})),
            created_at: None,
        });
    }
    app.history
        .record_messages(&alice(), records)
        .await
        .unwrap();

    // Summarization rewrote the checkpoint: 12 messages starting with a summary.
    let mut summarized = vec![
        json!({"type": "human", "content": "Here is a summary of the conversation to date", "id": "sum"}),
    ];
    for i in 0..11 {
        summarized.push(ai(&format!("k{i}"), "kept"));
    }
    app.checkpoints
        .create_checkpoint(&alice(), &t, state(json!(summarized), 9))
        .await
        .unwrap();

    let fb = FeedbackService::from_stores(&b.stores);
    fb.upsert(
        &alice(),
        NewFeedback {
            thread_id: t.clone(),
            run_id: r1.clone(),
            rating: Rating::Positive,
            comment: Some("great".into()),
            message_id: None,
        },
    )
    .await
    .unwrap();

    let h = app.reader.history(&alice(), &t).await.unwrap();
    assert_eq!(h.source, HistorySource::EventStore);
    assert_eq!(h.messages.len(), 16);
    assert_eq!(h.messages[0]["content"], json!("Q1"));
    assert!(h.messages.iter().all(|m| m["id"].is_string()));
    assert!(h.feedback_attached);
    let with_feedback: Vec<&JsonObject> = h
        .messages
        .iter()
        .filter(|m| m.contains_key("feedback"))
        .collect();
    assert_eq!(with_feedback.len(), 2, "one per run");
    assert_eq!(with_feedback[0]["run_id"], json!(r1.as_str()));
    assert_eq!(with_feedback[0]["feedback"]["rating"], json!(1));
    assert_eq!(
        with_feedback[0]["content"],
        json!("more 8"),
        "r1's last AI message"
    );
    assert_eq!(with_feedback[1]["feedback"], serde_json::Value::Null);
    // The stored human message still has its null id.
    let stored = app
        .history
        .messages(
            &alice(),
            &t,
            waymark_domain::paging::SeqPage::default_latest(),
        )
        .await
        .unwrap();
    assert_eq!(stored[0].content["id"], serde_json::Value::Null);

    // A thread with no events falls back to its checkpoint.
    let fresh = app.thread("fresh", None).await;
    app.checkpoints
        .create_checkpoint(
            &alice(),
            &fresh,
            state(json!([human("only in checkpoint")]), 0),
        )
        .await
        .unwrap();
    let h = app.reader.history(&alice(), &fresh).await.unwrap();
    assert_eq!(h.source, HistorySource::Checkpoint);
    assert_eq!(h.messages[0]["content"], json!("only in checkpoint"));

    let page = app.reader.feed_page(&alice(), &t, None, 5).await.unwrap();
    assert_eq!(page.data.len(), 5);
    assert!(page.has_more);
}

async fn journal_terminal_sequence_on_a_real_store(b: &TestBackend) {
    let app = App::new(b);
    let t = app.thread("journal", None).await;
    let r = run_id("run");
    let journal = RunJournal::new(
        b.stores.run_events.clone(),
        alice(),
        t.clone(),
        r.clone(),
        app.clock.clone(),
        JournalConfig {
            flush_threshold: 5,
            ..JournalConfig::default()
        },
    );
    let (handle, task) = journal.spawn();
    let mut tools = Vec::new();
    for i in 0..8 {
        let h = handle.clone();
        tools.push(tokio::spawn(async move {
            h.record(
                JournalEvent::new("llm.tool.result", "message")
                    .unwrap()
                    .with_content(json!({"type": "tool", "content": format!("tool {i}")})),
            )
            .unwrap();
            h.record_usage(LlmUsage {
                call_id: format!("call-{}", i % 4),
                model: Some("m".into()),
                caller: "lead_agent".into(),
                input_tokens: 10,
                output_tokens: 5,
                total_tokens: 0,
            })
            .unwrap();
        }));
    }
    for tool in tools {
        tool.await.unwrap();
    }
    let report = handle
        .finish(
            RunOutcome::Success {
                output: json!({"ok": true}),
            },
            json!({"delivered": 1}),
        )
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert!(task.await.unwrap().is_some());
    assert_eq!(report.events_written, 9, "8 tool results and run.end");
    assert_eq!(
        report.tokens.total.calls, 4,
        "calls are counted once per id"
    );
    assert_eq!(report.tokens.total.total_tokens, 60);
    let (receipt, created) = report.delivery.unwrap();
    assert!(created);

    // Crash recovery retries the terminal sequence with a new journal: one receipt only.
    let mut retry = RunJournal::new(
        b.stores.run_events.clone(),
        alice(),
        t.clone(),
        r.clone(),
        app.clock.clone(),
        JournalConfig::default(),
    );
    let again = retry
        .finish(RunOutcome::Cancelled, json!({"delivered": 1}))
        .await;
    let (same, created) = again.delivery.unwrap();
    assert!(!created);
    assert_eq!(same.seq, receipt.seq);

    let events = b
        .stores
        .run_events
        .list_events(
            &alice(),
            &waymark_domain::run_event::EventQuery::run(t.clone(), r),
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 10);
    let mut seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), 10, "distinct seqs");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event_type.as_str() == "run.delivery")
            .count(),
        1
    );
    assert_eq!(
        app.reader
            .history(&alice(), &t)
            .await
            .unwrap()
            .messages
            .len(),
        8
    );
}

async fn chat_streams_persist_append_and_expire(b: &TestBackend) {
    let app = App::new(b);
    let t = thread_id("chat");
    for (frame, reason) in [("Hello", "partial"), (" World", "stop"), ("again", "stop")] {
        app.chat
            .record(&alice(), &t, frame.into(), reason)
            .await
            .unwrap();
    }
    app.chat
        .record(&alice(), &t, "trailing".into(), "tool_calls")
        .await
        .unwrap();
    let record = app.chat.get_history(&alice(), &t).await.unwrap().unwrap();
    assert_eq!(record.frames, vec!["Hello", " World", "again"]);
    app.chat.end_stream(&alice(), &t).await.unwrap();
    let record = app.chat.get_history(&alice(), &t).await.unwrap().unwrap();
    assert_eq!(record.frames.len(), 4);
    assert!(record.ts.to_rfc3339().ends_with("+00:00"));
    let recent = app.chat.list_recent(&alice(), 10).await.unwrap();
    assert!(
        recent
            .iter()
            .any(|r| r.thread_id == t && r.frame_count == 4)
    );

    // Retention: 31 days later the record is purged; with 0 days nothing would be.
    let keep_all = ChatStreamService::new(
        b.stores.chat_streams.clone(),
        app.clock.clone(),
        ChatStreamConfig {
            retention_days: 0,
            ..ChatStreamConfig::default()
        },
    )
    .unwrap();
    b.clock.advance(Duration::days(31));
    assert_eq!(keep_all.purge_expired().await.unwrap(), 0);
    assert!(app.chat.purge_expired().await.unwrap() >= 1);
    assert!(app.chat.get_history(&alice(), &t).await.unwrap().is_none());
    assert!(!app.chat.delete(&alice(), &t).await.unwrap());
}

async fn deleting_a_thread_removes_everything_it_held(b: &TestBackend) {
    let app = App::new(b);
    let t = app.thread("doomed", None).await;
    let r = run_id("r");
    app.history
        .record_message(
            &alice(),
            MessageRecord {
                thread_id: t.clone(),
                run_id: r.clone(),
                role: MessageRole::Ai,
                message: obj(ai("a1", "hi")),
                metadata: JsonObject::new(),
                created_at: None,
            },
        )
        .await
        .unwrap();
    app.checkpoints
        .create_checkpoint(&alice(), &t, state(json!([ai("a1", "hi")]), 0))
        .await
        .unwrap();
    app.chat
        .record(&alice(), &t, "persisted".into(), "stop")
        .await
        .unwrap();
    app.chat
        .record(&alice(), &t, "buffered".into(), "partial")
        .await
        .unwrap();

    let gone = app.threads.delete(&alice(), &t).await.unwrap();
    assert!(gone.existed);
    assert_eq!(gone.buffered_frames_dropped, 1);
    assert!(app.chat.buffered(&t).await.is_empty());
    assert!(app.chat.get_history(&alice(), &t).await.unwrap().is_none());
    // The feed answers not found (spec §6.8 item 9), and nothing is left even for the
    // administrator.
    assert!(
        app.history
            .count_messages(&alice(), &t)
            .await
            .unwrap_err()
            .is_access_denied()
    );
    let admin = waymark_domain::UserScope::Unscoped;
    assert_eq!(app.history.count_messages(&admin, &t).await.unwrap(), 0);
    assert!(
        app.checkpoints
            .list(&admin, &t, None)
            .await
            .unwrap()
            .is_empty()
    );

    // Re-creating the id yields an empty thread.
    let mut new = waymark_domain::thread::NewThread::with_id(t.clone());
    new.display_name = Some("again".into());
    app.threads.create(&alice(), new).await.unwrap();
    let h = app.reader.history(&alice(), &t).await.unwrap();
    assert!(h.messages.is_empty());
}

async fn token_costs_by_model(b: &TestBackend) {
    let app = App::new(b);
    let s = app.session().await;
    let t = app.thread("tokens", Some(&s)).await;
    for (model, p, c) in [("big", 1000, 500), ("big", 1000, 500), ("small", 400, 100)] {
        app.history
            .record_token_usage(
                &alice(),
                UsageReport {
                    thread_id: Some(t.clone()),
                    model: Some(ModelName::parse(model).unwrap()),
                    prompt_tokens: p,
                    completion_tokens: c,
                    ..UsageReport::default()
                },
            )
            .await
            .unwrap();
    }
    let per_session = app.history.session_tokens(&alice(), &s).await.unwrap();
    assert_eq!(
        per_session.records, 3,
        "the session came from the thread row"
    );
    assert_eq!(per_session.total_tokens, 3500);
    let mut prices = PriceTable::new();
    prices.insert(
        ModelName::parse("big").unwrap(),
        ModelPrice::new(1.0, 2.0).unwrap(),
    );
    let filter = TokenUsageFilter {
        thread_id: Some(t.clone()),
        ..TokenUsageFilter::default()
    };
    let report = app.history.cost(&alice(), filter, &prices).await.unwrap();
    assert!(
        (report.total_cost - 4.0).abs() < 1e-9,
        "{}",
        report.total_cost
    );
    assert_eq!(report.unpriced_models, vec!["small".to_owned()]);
    let window = app
        .history
        .tokens_by_model(&alice(), Some(app.clock.now() + Duration::hours(1)), None)
        .await
        .unwrap();
    assert!(
        window.is_empty(),
        "nothing was recorded in that window: {window:?}"
    );
}
