//! Acceptance behaviours of spec §3.6 and the reader's failure paths.

use std::collections::HashMap;
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::{Value, json};
use waymark_domain::checkpoint::{Checkpoint, CheckpointMetadata, CheckpointTuple};
use waymark_domain::feedback::{Feedback, Rating};
use waymark_domain::mocks::{
    MockCheckpointRepository, MockFeedbackRepository, MockThreadRepository,
};
use waymark_domain::paging::{Limit, SeqPage};
use waymark_domain::run_event::NewRunEvent;
use waymark_domain::{
    ChannelName, CheckpointNamespace, DomainError, EventCategory, EventType, FeedbackId,
    JsonObject, ThreadId, UserScope,
};

use super::*;
use crate::codec::test_codec::{JsonCodec, messages_value};
use crate::test_support::{FakeEvents, rid, tid};

const T: &str = "thread-1";

fn open_threads() -> Arc<MockThreadRepository> {
    let mut m = MockThreadRepository::new();
    m.expect_check_access().returning(|_, _, _| Ok(true));
    Arc::new(m)
}

fn no_checkpoints() -> Arc<MockCheckpointRepository> {
    let mut m = MockCheckpointRepository::new();
    m.expect_get_tuple().never();
    Arc::new(m)
}

fn event(run: &str, et: &str, cat: &str, content: Value, caller: Option<&str>) -> NewRunEvent {
    let mut e = NewRunEvent::new(
        tid(T),
        rid(run),
        EventType::parse(et).unwrap(),
        EventCategory::parse(cat).unwrap(),
    )
    .with_content(content);
    if let Some(c) = caller {
        e.metadata.insert("caller".into(), json!(c));
    }
    e
}

fn human(run: &str, text: &str) -> NewRunEvent {
    event(
        run,
        "llm.human.input",
        "message",
        json!({"type": "human", "content": text, "id": null}),
        None,
    )
}

fn ai(run: &str, id: &str, text: &str) -> NewRunEvent {
    event(
        run,
        "llm.ai.response",
        "message",
        json!({"type": "ai", "content": text, "id": id}),
        Some("lead_agent"),
    )
}

fn tool(run: &str, text: &str) -> NewRunEvent {
    event(
        run,
        "llm.tool.result",
        "message",
        json!({"type": "tool", "content": text}),
        None,
    )
}

fn trace(run: &str) -> NewRunEvent {
    event(run, "llm.error", "trace", json!("t"), None)
}

async fn store_with(events: Vec<NewRunEvent>) -> Arc<FakeEvents> {
    let store = Arc::new(FakeEvents::default());
    for chunk in events.chunks(1000) {
        store
            .put_batch(&UserScope::Unscoped, chunk.to_vec())
            .await
            .unwrap();
    }
    store
}

fn service(
    events: Arc<FakeEvents>,
    checkpoints: Arc<MockCheckpointRepository>,
) -> ThreadHistoryService {
    ThreadHistoryService::new(open_threads(), events, checkpoints)
}

fn content(m: &JsonObject) -> &str {
    m["content"].as_str().unwrap()
}

fn checkpoint_with_messages(messages: Value) -> CheckpointTuple {
    let mut values = IndexMap::new();
    values.insert(
        ChannelName::parse("messages").unwrap(),
        messages_value(messages),
    );
    let mut cp = Checkpoint::empty(1);
    cp.channel_values = values;
    CheckpointTuple {
        thread_id: tid(T),
        namespace: CheckpointNamespace::root(),
        checkpoint: cp,
        metadata: CheckpointMetadata::default(),
        parent_id: None,
        pending_writes: Vec::new(),
    }
}

// §3.6.1
#[tokio::test]
async fn history_after_summarization_comes_from_the_event_store_in_full() {
    let mut events = vec![human("r1", "Q1")];
    for i in 1..16 {
        events.push(if i % 2 == 1 {
            ai("r1", &format!("lc_run--{i}"), &format!("A{i}"))
        } else {
            tool("r1", &format!("T{i}"))
        });
    }
    let store = store_with(events).await;
    // The checkpoint holds 12 messages starting with a summary; it must not be read.
    let svc = service(store, no_checkpoints());
    let h = svc.history(&UserScope::Unscoped, &tid(T)).await.unwrap();
    assert_eq!(h.source, HistorySource::EventStore);
    assert_eq!(h.messages.len(), 16);
    assert_eq!(content(&h.messages[0]), "Q1");
}

// §3.6.2
#[tokio::test]
async fn a_long_thread_is_read_completely_in_forward_pages_of_500() {
    let mut events = Vec::new();
    for i in 0..1203 {
        events.push(tool("r1", &format!("m{i}")));
        if i % 3 == 0 {
            events.push(trace("r1"));
        }
    }
    let store = store_with(events).await;
    let svc = service(store.clone(), no_checkpoints());
    let h = svc.history(&UserScope::Unscoped, &tid(T)).await.unwrap();
    assert_eq!(h.messages.len(), 1203);
    let texts: Vec<&str> = h.messages.iter().map(content).collect();
    let expected: Vec<String> = (0..1203).map(|i| format!("m{i}")).collect();
    assert_eq!(
        texts,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let msg_seqs: Vec<i64> = store
        .rows()
        .iter()
        .filter(|r| r.category.is_message())
        .map(|r| r.seq)
        .collect();
    let l = Limit::new(500).unwrap();
    assert_eq!(
        store.state.lock().unwrap().pages,
        vec![
            SeqPage::After(0, l),
            SeqPage::After(msg_seqs[499], l),
            SeqPage::After(msg_seqs[999], l)
        ]
    );
}

// §3.6.3 and §3.6.4
#[tokio::test]
async fn id_less_messages_get_stable_uuid5_ids_and_ai_ids_are_kept() {
    let store = store_with(vec![
        human("r1", "hi"),
        ai("r1", "lc_run--abc", "hello"),
        tool("r1", "x"),
    ])
    .await;
    let svc = service(store.clone(), no_checkpoints());
    let first = svc.history(&UserScope::Unscoped, &tid(T)).await.unwrap();
    let ids: Vec<&str> = first
        .messages
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            "898b1e91-813c-5278-92fb-80eb15899a68",
            "lc_run--abc",
            "a28e739e-8125-5b21-ba0d-ac6e03226219"
        ]
    );
    let again = svc.history(&UserScope::Unscoped, &tid(T)).await.unwrap();
    assert_eq!(first.messages, again.messages);
    let stored = store.rows();
    assert_eq!(
        stored[0].content["id"],
        Value::Null,
        "the stored record is untouched"
    );
    assert!(stored[2].content.get("id").is_none());
    assert!(stored.iter().all(|r| r.content.get("run_id").is_none()));
    assert!(first.messages.iter().all(|m| m["run_id"] == json!("r1")));
}

// §3.6.5
#[test]
fn legacy_command_representations_are_sanitized() {
    assert_eq!(
        sanitize_command_repr(
            "Command(update={'messages': [ToolMessage(content='X', tool_call_id='c1')]})"
        )
        .as_deref(),
        Some("X")
    );
    assert_eq!(
        sanitize_command_repr(
            r#"Command(update={'messages': [ToolMessage(content="it's", tool_call_id='c1')]})"#
        )
        .as_deref(),
        Some("it's")
    );
    assert_eq!(
        sanitize_command_repr(
            "Command(update={'messages': [ToolMessage(content='line1\nline2', tool_call_id='c')]})"
        )
        .as_deref(),
        Some("line1\nline2")
    );
    assert_eq!(sanitize_command_repr("Command(update={})"), None);
    assert_eq!(sanitize_command_repr("plain text"), None);
    assert_eq!(
        sanitize_command_repr("Command(update=ToolMessage(content=x ToolMessage(content='Y')")
            .as_deref(),
        Some("Y"),
        "the first occurrence followed by a quote"
    );
}

// §3.6.5 through the reader: only tool messages are touched.
#[tokio::test]
async fn only_tool_messages_are_sanitized() {
    let cmd = "Command(update={'messages': [ToolMessage(content='X', tool_call_id='c1')]})";
    let store = store_with(vec![
        human("r1", cmd),
        tool("r1", cmd),
        tool("r1", "Command(update={})"),
    ])
    .await;
    let h = service(store, no_checkpoints())
        .history(&UserScope::Unscoped, &tid(T))
        .await
        .unwrap();
    assert_eq!(content(&h.messages[0]), cmd);
    assert_eq!(content(&h.messages[1]), "X");
    assert_eq!(content(&h.messages[2]), "Command(update={})");
}

fn feedback_row(run: &str, rating: i64) -> Feedback {
    Feedback {
        id: FeedbackId::new_random(),
        thread_id: tid(T),
        run_id: rid(run),
        user_id: None,
        message_id: None,
        rating: Rating::new(rating).unwrap(),
        comment: Some("c".into()),
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
    }
}

async fn feedback_thread() -> Arc<FakeEvents> {
    store_with(vec![
        human("r1", "Q1"),       // 1
        tool("r1", "t"),         // 2
        ai("r1", "a3", "first"), // 3
        event(
            "r1",
            "llm.ai.response",
            "message",
            json!({"type": "ai", "content": "sum", "id": "m"}),
            Some("middleware:summarize"),
        ), // 4
        tool("r1", "t2"),        // 5
        ai("r1", "a6", "last of r1"), // 6
        event(
            "r1",
            "llm.ai.response",
            "message",
            json!({"type": "ai", "content": "sub", "id": "s"}),
            Some("subagent:web"),
        ), // 7
        human("r2", "Q2"),       // 8
        event(
            "r2",
            "ai_message",
            "message",
            json!({"type": "ai", "content": "legacy", "id": "a9"}),
            None,
        ), // 9
    ])
    .await
}

// §3.6.6
#[tokio::test]
async fn feedback_lands_on_the_last_displayed_ai_message_of_each_run() {
    let store = feedback_thread().await;
    let mut fb = MockFeedbackRepository::new();
    let row = feedback_row("r1", 1);
    let id = row.id;
    fb.expect_list_by_thread_grouped()
        .times(1)
        .returning(move |_, _| Ok(HashMap::from([(rid("r1"), row.clone())])));
    let svc = service(store, no_checkpoints()).with_feedback(Arc::new(fb));
    let h = svc.history(&UserScope::Unscoped, &tid(T)).await.unwrap();
    assert!(h.feedback_attached);
    let with_key: Vec<(usize, &Value)> = h
        .messages
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.get("feedback").map(|f| (i, f)))
        .collect();
    assert_eq!(with_key.len(), 2, "{with_key:?}");
    assert_eq!(
        with_key[0].0, 5,
        "seq 6, not seq 3, nor the subagent's seq 7"
    );
    assert_eq!(with_key[0].1["rating"], json!(1));
    assert_eq!(with_key[0].1["feedback_id"], json!(id.to_string()));
    assert_eq!(with_key[1].0, 8, "r2's legacy ai_message row");
    assert_eq!(with_key[1].1, &Value::Null);
}

// §3.6.6 (lookup failure)
#[tokio::test]
async fn a_failed_feedback_lookup_leaves_the_key_off_every_message() {
    let store = feedback_thread().await;
    let mut fb = MockFeedbackRepository::new();
    fb.expect_list_by_thread_grouped()
        .returning(|_, _| Err(DomainError::storage("feedback.list", "down")));
    let svc = service(store, no_checkpoints()).with_feedback(Arc::new(fb));
    let h = svc.history(&UserScope::Unscoped, &tid(T)).await.unwrap();
    assert!(!h.feedback_attached);
    assert!(h.messages.iter().all(|m| !m.contains_key("feedback")));
    assert_eq!(h.messages.len(), 9);
}

#[tokio::test]
async fn a_thread_without_ai_messages_issues_no_feedback_query() {
    let store = store_with(vec![human("r1", "Q1")]).await;
    let mut fb = MockFeedbackRepository::new();
    fb.expect_list_by_thread_grouped().never();
    let svc = service(store, no_checkpoints()).with_feedback(Arc::new(fb));
    let h = svc.history(&UserScope::Unscoped, &tid(T)).await.unwrap();
    assert!(!h.messages[0].contains_key("feedback"));
}

// §3.6.7
#[tokio::test]
async fn an_empty_event_store_falls_back_to_the_checkpoint_messages() {
    let store = Arc::new(FakeEvents::default());
    let mut cps = MockCheckpointRepository::new();
    cps.expect_get_tuple()
        .withf(|t, ns, id| t.as_str() == T && ns.is_root() && id.is_none())
        .returning(|_, _, _| {
            Ok(Some(checkpoint_with_messages(json!([
                {"type": "human", "content": "summary", "id": "h0"},
                {"type": "ai", "content": "A", "id": "a1"}
            ]))))
        });
    let svc = service(store, Arc::new(cps)).with_codec(Arc::new(JsonCodec));
    let h = svc.history(&UserScope::Unscoped, &tid(T)).await.unwrap();
    assert_eq!(h.source, HistorySource::Checkpoint);
    assert_eq!(h.messages.len(), 2);
    assert_eq!(content(&h.messages[1]), "A");
}

#[tokio::test]
async fn an_unavailable_event_store_also_falls_back_and_no_checkpoint_means_empty() {
    let mut events = waymark_domain::mocks::MockRunEventRepository::new();
    events
        .expect_count_messages()
        .returning(|_, _| Err(DomainError::storage("run_events.count", "down")));
    events.expect_list_messages().never();
    let mut cps = MockCheckpointRepository::new();
    cps.expect_get_tuple().returning(|_, _, _| Ok(None));
    let svc = ThreadHistoryService::new(open_threads(), Arc::new(events), Arc::new(cps));
    let h = svc.history(&UserScope::Unscoped, &tid(T)).await.unwrap();
    assert_eq!(h.source, HistorySource::Empty);
    assert!(h.messages.is_empty());
}

#[tokio::test]
async fn a_checkpoint_fallback_without_a_codec_is_empty_and_a_bad_value_is_a_codec_error() {
    let mut cps = MockCheckpointRepository::new();
    cps.expect_get_tuple()
        .returning(|_, _, _| Ok(Some(checkpoint_with_messages(json!([{"type": "human"}])))));
    let cps = Arc::new(cps);
    let svc = service(Arc::new(FakeEvents::default()), cps.clone());
    assert_eq!(
        svc.history(&UserScope::Unscoped, &tid(T))
            .await
            .unwrap()
            .source,
        HistorySource::Empty
    );
    let mut bad = MockCheckpointRepository::new();
    bad.expect_get_tuple().returning(|_, _, _| {
        let mut t = checkpoint_with_messages(json!([]));
        t.checkpoint.channel_values.insert(
            ChannelName::parse("messages").unwrap(),
            waymark_domain::checkpoint::TypedValue::msgpack(vec![0x90]),
        );
        Ok(Some(t))
    });
    let svc =
        service(Arc::new(FakeEvents::default()), Arc::new(bad)).with_codec(Arc::new(JsonCodec));
    let err = svc
        .history(&UserScope::Unscoped, &tid(T))
        .await
        .unwrap_err();
    assert!(matches!(err, ApplicationError::Codec(_)), "{err}");
}

// §3.6.8
#[tokio::test]
async fn a_page_that_does_not_advance_is_an_error_not_a_loop() {
    let seed = store_with(vec![tool("r1", "a"), tool("r1", "b")]).await;
    let rows = seed.rows();
    // A full page of 500 rows whose last seq is 2: the second request (after 2) gets the
    // same page back.
    let mut page = Vec::new();
    for _ in 0..250 {
        page.extend(rows.clone());
    }
    let stuck = FakeEvents {
        stuck_page: Some(page),
        ..FakeEvents::default()
    };
    stuck
        .put_batch(&UserScope::Unscoped, vec![tool("r1", "a")])
        .await
        .unwrap();
    let stuck = Arc::new(stuck);
    let svc = service(stuck.clone(), no_checkpoints());
    let err = svc
        .history(&UserScope::Unscoped, &tid(T))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApplicationError::StalledScan {
                cursor: 2,
                last_seq: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_storage());
    assert_eq!(stuck.state.lock().unwrap().pages.len(), 2);
}

// §3.6.9
#[tokio::test]
async fn feed_pages_skip_hidden_rows_and_page_without_gaps() {
    let mut events = Vec::new();
    let mut visible = 0;
    for run in 0..3 {
        let r = format!("r{run}");
        for i in 0..15 {
            events.push(tool(&r, &format!("v{visible}")));
            visible += 1;
            for _ in 0..20 {
                events.push(event(
                    &r,
                    "llm.ai.response",
                    "message",
                    json!({"type": "ai", "content": "mw"}),
                    Some("middleware:guardrail"),
                ));
            }
            if i == 7 {
                events.push(event(
                    &r,
                    "llm.ai.response",
                    "message",
                    json!({"type": "ai", "content": "sub"}),
                    Some("subagent:x"),
                ));
            }
        }
    }
    // 45 visible rows, 900 middleware rows and 3 subagent AI rows.
    let store = store_with(events).await;
    let svc = service(store, no_checkpoints());
    let first = svc
        .feed_page(&UserScope::Unscoped, &tid(T), None, 20)
        .await
        .unwrap();
    assert_eq!(first.data.len(), 20);
    assert!(first.has_more);
    assert_eq!(first.next_before_seq, Some(first.data[0].seq));
    let texts = |p: &FeedPage| {
        p.data
            .iter()
            .map(|d| content(&d.message).to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        texts(&first),
        (25..45).map(|i| format!("v{i}")).collect::<Vec<_>>()
    );
    let second = svc
        .feed_page(&UserScope::Unscoped, &tid(T), first.next_before_seq, 20)
        .await
        .unwrap();
    assert_eq!(
        texts(&second),
        (5..25).map(|i| format!("v{i}")).collect::<Vec<_>>()
    );
    assert!(second.has_more);
    let third = svc
        .feed_page(&UserScope::Unscoped, &tid(T), second.next_before_seq, 20)
        .await
        .unwrap();
    assert_eq!(
        texts(&third),
        (0..5).map(|i| format!("v{i}")).collect::<Vec<_>>()
    );
    assert!(!third.has_more);
    assert_eq!(third.next_before_seq, None);
    assert!(third.data.iter().all(|d| d.message.contains_key("id")));
}

#[tokio::test]
async fn feed_limits_are_bounded_and_feedback_is_attached_on_the_page() {
    let store = feedback_thread().await;
    let svc = service(store.clone(), no_checkpoints());
    for bad in [0, 201] {
        assert!(
            svc.feed_page(&UserScope::Unscoped, &tid(T), None, bad)
                .await
                .unwrap_err()
                .is_invalid_input()
        );
    }
    let mut fb = MockFeedbackRepository::new();
    fb.expect_list_by_run_ids()
        .returning(|_, _, _| Ok(HashMap::from([(rid("r1"), feedback_row("r1", -1))])));
    let svc = service(store, no_checkpoints()).with_feedback(Arc::new(fb));
    let page = svc
        .feed_page(&UserScope::Unscoped, &tid(T), None, 50)
        .await
        .unwrap();
    let seqs: Vec<i64> = page.data.iter().map(|d| d.seq).collect();
    assert_eq!(
        seqs,
        vec![1, 2, 3, 5, 6, 8, 9],
        "middleware and subagent AI rows are hidden"
    );
    let six = page.data.iter().find(|d| d.seq == 6).unwrap();
    assert_eq!(six.message["feedback"]["rating"], json!(-1));
    let nine = page.data.iter().find(|d| d.seq == 9).unwrap();
    assert_eq!(nine.message["feedback"], Value::Null);
    assert!(
        !page
            .data
            .iter()
            .find(|d| d.seq == 3)
            .unwrap()
            .message
            .contains_key("feedback")
    );
}

#[tokio::test]
async fn a_denied_thread_reads_nothing() {
    let mut threads = MockThreadRepository::new();
    threads.expect_check_access().returning(|_, _, _| Ok(false));
    let mut events = waymark_domain::mocks::MockRunEventRepository::new();
    events.expect_count_messages().never();
    let svc = ThreadHistoryService::new(Arc::new(threads), Arc::new(events), no_checkpoints());
    let scope = UserScope::User(waymark_domain::UserId::parse("b").unwrap());
    let err = svc.history(&scope, &tid(T)).await.unwrap_err();
    assert!(err.is_access_denied());
    let err = svc.feed_page(&scope, &tid(T), None, 10).await.unwrap_err();
    assert!(err.is_access_denied());
}

#[test]
fn stable_ids_match_pythons_uuid5() {
    let t = ThreadId::parse("thread-1").unwrap();
    assert_eq!(
        stable_message_id(&t, 1),
        "898b1e91-813c-5278-92fb-80eb15899a68"
    );
    assert_eq!(
        stable_message_id(&t, 3),
        "a28e739e-8125-5b21-ba0d-ac6e03226219"
    );
}

#[tokio::test]
async fn on_an_older_feed_page_a_run_whose_last_ai_message_is_newer_carries_no_feedback() {
    let store = store_with(vec![
        ai("r1", "a1", "old"),
        tool("r1", "t"),
        ai("r1", "a3", "new"),
    ])
    .await;
    let mut fb = MockFeedbackRepository::new();
    fb.expect_list_by_run_ids()
        .returning(|_, _, _| Ok(HashMap::from([(rid("r1"), feedback_row("r1", 1))])));
    let svc = service(store, no_checkpoints()).with_feedback(Arc::new(fb));
    let newest = svc
        .feed_page(&UserScope::Unscoped, &tid(T), None, 1)
        .await
        .unwrap();
    assert_eq!(newest.data[0].seq, 3);
    assert_eq!(newest.data[0].message["feedback"]["rating"], json!(1));
    let oldest = svc
        .feed_page(&UserScope::Unscoped, &tid(T), Some(2), 1)
        .await
        .unwrap();
    assert_eq!(oldest.data[0].seq, 1);
    assert!(!oldest.data[0].message.contains_key("feedback"));
    assert!(!oldest.has_more);
}
