//! The journal's acceptance behaviours (spec §2.7) and its failure paths, over a scripted
//! store whose writes can fail or block.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;
use waymark_domain::UserScope;
use waymark_domain::mocks::MockRunEventRepository;

use super::*;
use crate::test_support::{FakeEvents, clock, rid, tid};

fn journal_over(store: Arc<FakeEvents>, config: JournalConfig) -> RunJournal {
    RunJournal::new(
        store,
        UserScope::Unscoped,
        tid("t1"),
        rid("r1"),
        clock(),
        config,
    )
}

fn ev(i: usize) -> JournalEvent {
    JournalEvent::new("llm.tool.result", "message")
        .unwrap()
        .with_content(json!({"type": "tool", "content": format!("e{i}")}))
}

fn texts(batch: &[waymark_domain::run_event::NewRunEvent]) -> Vec<String> {
    batch
        .iter()
        .map(|e| e.content["content"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn range(a: usize, b: usize) -> Vec<String> {
    (a..b).map(|i| format!("e{i}")).collect()
}

fn fast() -> JournalConfig {
    JournalConfig {
        retry_backoff: Duration::from_millis(1),
        ..JournalConfig::default()
    }
}

// §2.7.1
#[tokio::test]
async fn nineteen_events_write_nothing_and_the_twentieth_writes_one_batch_in_order() {
    let store = Arc::new(FakeEvents::default());
    let mut j = journal_over(store.clone(), fast());
    for i in 0..19 {
        j.record(ev(i));
    }
    assert!(!j.flush_in_flight());
    tokio::task::yield_now().await;
    assert_eq!(store.calls(), 0);
    j.record(ev(19));
    assert!(j.flush_in_flight());
    assert!(j.settle().await);
    assert_eq!(store.calls(), 1);
    let batches = store.state.lock().unwrap().batches.clone();
    assert_eq!(batches.len(), 1);
    assert_eq!(texts(&batches[0]), range(0, 20));
    assert_eq!(j.events_written(), 20);
    assert_eq!(j.pending(), 0);
}

// §2.7.1, with mockall: exactly one put_batch, of 20 events.
#[tokio::test]
async fn threshold_flush_calls_put_batch_exactly_once_with_twenty_events() {
    let mut mock = MockRunEventRepository::new();
    mock.expect_put_batch()
        .times(1)
        .withf(|_, events| events.len() == 20)
        .returning(|_, _| Ok(Vec::new()));
    let mut j = RunJournal::new(
        Arc::new(mock),
        UserScope::Unscoped,
        tid("t1"),
        rid("r1"),
        clock(),
        fast(),
    );
    for i in 0..20 {
        j.record(ev(i));
    }
    j.settle().await;
}

// §2.7.2
#[tokio::test]
async fn a_blocked_flush_starts_no_second_one_and_the_next_flush_sends_the_backlog_in_order() {
    let gate = Arc::new(Semaphore::new(0));
    let store = Arc::new(FakeEvents::gated(gate.clone()));
    let (handle, task) = journal_over(store.clone(), fast()).spawn();
    for i in 0..20 {
        handle.record(ev(i)).unwrap();
    }
    // Wait until the first write has entered put_batch and is blocked there.
    while store.calls() == 0 {
        tokio::task::yield_now().await;
    }
    for i in 20..45 {
        handle.record(ev(i)).unwrap();
    }
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        store.calls(),
        1,
        "no second put_batch while one is in flight"
    );
    gate.add_permits(2);
    store.wait_batches(2).await;
    let batches = store.state.lock().unwrap().batches.clone();
    assert_eq!(texts(&batches[0]), range(0, 20));
    assert_eq!(texts(&batches[1]), range(20, 45));
    let report = handle
        .finish(RunOutcome::Cancelled, json!({}))
        .await
        .unwrap();
    assert_eq!(report.events_written, 45);
    assert_eq!(task.await.unwrap().unwrap().events_lost, 0);
}

// §2.7.3
#[tokio::test]
async fn a_failed_batch_goes_back_to_the_front_ahead_of_newer_events() {
    let gate = Arc::new(Semaphore::new(0));
    let store = Arc::new(FakeEvents::gated(gate.clone()));
    let mut j = journal_over(store.clone(), fast());
    for i in 0..20 {
        j.record(ev(i)); // batch A goes out and blocks in put_batch
    }
    assert!(j.flush_in_flight());
    for i in 20..25 {
        j.record(ev(i)); // B: buffered behind the in-flight write
    }
    store.fail_next(1);
    gate.add_permits(1);
    assert!(!j.settle().await, "the write of A fails");
    assert_eq!(j.pending(), 25, "A is back, ahead of B");
    gate.add_permits(1);
    assert!(j.try_start_flush(), "the next trigger retries");
    assert!(j.settle().await);
    let batches = store.state.lock().unwrap().batches.clone();
    assert_eq!(batches.len(), 1);
    assert_eq!(
        texts(&batches[0]),
        range(0, 25),
        "A first, then B, in one batch"
    );
    assert_eq!(store.calls(), 2);
}

// §2.7.4
#[test]
fn events_recorded_without_a_runtime_stay_buffered_until_an_explicit_flush() {
    let store = Arc::new(FakeEvents::default());
    let mut j = journal_over(store.clone(), fast());
    for i in 0..30 {
        j.record(ev(i));
    }
    assert_eq!(store.calls(), 0);
    assert_eq!(j.pending(), 30);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let written = rt.block_on(j.flush()).unwrap();
    assert_eq!(written, 30);
    assert_eq!(store.batch_sizes(), vec![20, 10]);
}

// §2.7.5 (first half)
#[tokio::test]
async fn run_end_is_buffered_and_flushed_at_once_below_the_threshold() {
    let store = Arc::new(FakeEvents::default());
    let mut j = journal_over(store.clone(), fast());
    for i in 0..7 {
        j.record(ev(i));
    }
    j.run_end(json!({"answer": 42})).await.unwrap();
    assert_eq!(store.batch_sizes(), vec![8]);
    let last = store.rows().pop().unwrap();
    assert_eq!(last.event_type.as_str(), "run.end");
    assert_eq!(last.category.as_str(), "outputs");
    assert_eq!(last.metadata["status"], json!("success"));
}

// §2.7.5 (second half)
#[test]
fn final_drain_writes_in_chunks_of_the_threshold() {
    let store = Arc::new(FakeEvents::default());
    let mut j = journal_over(store.clone(), fast());
    for i in 0..45 {
        j.record(ev(i));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt.block_on(j.drain());
    assert_eq!(report.written, 45);
    assert_eq!(store.batch_sizes(), vec![20, 20, 5]);
}

// §2.7.6
#[tokio::test]
async fn a_cancelled_run_persists_every_buffered_event() {
    let store = Arc::new(FakeEvents::default());
    let mut j = journal_over(store.clone(), fast());
    for i in 0..12 {
        j.record(ev(i));
    }
    let report = j
        .finish(RunOutcome::Cancelled, json!({"delivered": 0}))
        .await;
    assert_eq!(report.events_written, 12);
    assert_eq!(report.events_lost, 0);
    let rows = store.rows();
    assert_eq!(rows.len(), 13, "12 events and the receipt");
    assert!(rows.iter().all(|r| r.event_type.as_str() != "run.end"));
    assert_eq!(rows[12].event_type.as_str(), "run.delivery");
}

// §2.7.7
#[tokio::test]
async fn running_the_terminal_sequence_twice_writes_one_delivery_receipt() {
    let store = Arc::new(FakeEvents::default());
    let mut j = journal_over(store.clone(), fast());
    j.record(ev(0));
    let first = j
        .finish(
            RunOutcome::Success {
                output: json!("ok"),
            },
            json!({"n": 1}),
        )
        .await;
    let second = j
        .finish(
            RunOutcome::Success {
                output: json!("ok"),
            },
            json!({"n": 1}),
        )
        .await;
    let (r1, created1) = first.delivery.unwrap();
    let (r2, created2) = second.delivery.unwrap();
    assert!(created1 && !created2);
    assert_eq!(r1, r2);
    let rows = store.rows();
    assert_eq!(
        rows.iter()
            .filter(|r| r.event_type.as_str() == "run.delivery")
            .count(),
        1
    );
    assert_eq!(
        rows.iter()
            .filter(|r| r.event_type.as_str() == "run.end")
            .count(),
        1,
        "the terminal event is recorded once too"
    );
}

// §2.7.8
#[test]
fn one_llm_call_reported_twice_counts_once_and_a_zero_total_is_the_sum() {
    let store = Arc::new(FakeEvents::default());
    let mut j = journal_over(store, fast());
    let usage = LlmUsage {
        call_id: "call-1".into(),
        model: Some("gpt-x".into()),
        caller: "lead_agent".into(),
        input_tokens: 100,
        output_tokens: 50,
        total_tokens: 0,
    };
    assert!(j.record_usage(&usage));
    assert!(!j.record_usage(&usage));
    let sub = LlmUsage {
        call_id: "call-2".into(),
        caller: "subagent:research".into(),
        total_tokens: 200,
        ..usage.clone()
    };
    assert!(j.record_usage(&sub));
    let t = j.tokens();
    assert_eq!(t.total.calls, 2);
    assert_eq!(t.total.total_tokens, 350);
    assert_eq!(t.by_bucket[&CallerBucket::LeadAgent].total_tokens, 150);
    assert_eq!(t.by_bucket[&CallerBucket::Subagent].total_tokens, 200);
    assert_eq!(t.by_model["gpt-x"].input_tokens, 200);
}

// §2.7.9
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_parallel_tool_results_get_distinct_seqs_and_none_is_lost() {
    let store = Arc::new(FakeEvents::default());
    let (handle, _task) = journal_over(store.clone(), fast()).spawn();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let h = handle.clone();
        tasks.push(tokio::spawn(async move { h.record(ev(i)).unwrap() }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let report = handle
        .finish(RunOutcome::Cancelled, json!({}))
        .await
        .unwrap();
    assert_eq!(report.events_written, 8);
    let rows: Vec<_> = store
        .rows()
        .into_iter()
        .filter(|r| r.event_type.as_str() == "llm.tool.result")
        .collect();
    assert_eq!(rows.len(), 8);
    let mut seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), 8);
    let mut names: Vec<String> = rows
        .iter()
        .map(|r| r.content["content"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, range(0, 8));
}

// §2.7.10
#[test]
fn with_token_tracking_disabled_nothing_is_accumulated() {
    let store = Arc::new(FakeEvents::default());
    let mut j = journal_over(
        store,
        JournalConfig {
            track_tokens: false,
            ..fast()
        },
    );
    let counted = j.record_usage(&LlmUsage {
        call_id: "c".into(),
        model: None,
        caller: "lead_agent".into(),
        input_tokens: 10,
        output_tokens: 5,
        total_tokens: 0,
    });
    assert!(!counted);
    assert_eq!(j.tokens().total, TokenTotals::default());
}

#[tokio::test(start_paused = true)]
async fn the_final_drain_retries_a_failing_chunk_and_then_succeeds() {
    let store = Arc::new(FakeEvents::default());
    let mut j = journal_over(store.clone(), JournalConfig::default());
    for i in 0..5 {
        j.record(ev(i));
    }
    store.fail_next(3); // three failures, the fourth attempt (third retry) succeeds
    let report = j.drain().await;
    assert_eq!(report.written, 5);
    assert_eq!(report.lost, 0);
    assert_eq!(store.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn the_final_drain_gives_up_after_bounded_retries_and_reports_the_loss() {
    let store = Arc::new(FakeEvents::default());
    let mut j = journal_over(store.clone(), JournalConfig::default());
    for i in 0..25 {
        j.record(ev(i)); // the threshold flush of 20 succeeds
    }
    j.settle().await;
    store.fail_next(usize::MAX);
    let report = j.finish(RunOutcome::Cancelled, json!({})).await;
    assert_eq!(
        store.calls(),
        1 + 4,
        "one flush, then 1 + 3 retries of the chunk"
    );
    assert_eq!(report.events_written, 20);
    assert_eq!(report.events_lost, 5);
    assert!(report.drain_error.as_ref().unwrap().is_storage());
    assert!(
        report.delivery_error.is_some(),
        "the receipt write failed too"
    );
    let err = report.into_result().unwrap_err();
    assert!(
        matches!(err, ApplicationError::EventsLost { lost: 5, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn an_explicit_flush_keeps_a_failed_chunk_and_everything_after_it() {
    let store = Arc::new(FakeEvents::default());
    let mut j = journal_over(
        store.clone(),
        JournalConfig {
            flush_threshold: 3,
            ..fast()
        },
    );
    j.record(ev(0));
    j.record(ev(1));
    store.fail_next(1);
    let err = j.flush().await.unwrap_err();
    assert!(err.is_storage());
    assert_eq!(j.pending(), 2);
    j.flush().await.unwrap();
    assert_eq!(store.rows().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn pending_events_are_flushed_by_the_timer_below_the_threshold() {
    let store = Arc::new(FakeEvents::default());
    let (handle, _task) = journal_over(store.clone(), fast()).spawn();
    for i in 0..3 {
        handle.record(ev(i)).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(store.calls(), 0, "nothing before the interval");
    tokio::time::sleep(Duration::from_secs(2)).await;
    store.wait_batches(1).await;
    assert_eq!(store.batch_sizes(), vec![3]);
    drop(handle);
}

#[tokio::test]
async fn dropping_every_handle_drains_the_journal() {
    let store = Arc::new(FakeEvents::default());
    let (handle, task) = journal_over(store.clone(), fast()).spawn();
    for i in 0..4 {
        handle.record(ev(i)).unwrap();
    }
    drop(handle);
    assert!(task.await.unwrap().is_none());
    assert_eq!(store.rows().len(), 4);
}

#[tokio::test]
async fn dropping_a_journal_hands_its_events_to_a_background_drain() {
    let store = Arc::new(FakeEvents::default());
    let mut j = journal_over(store.clone(), fast());
    for i in 0..3 {
        j.record(ev(i));
    }
    drop(j);
    store.wait_batches(1).await;
    assert_eq!(store.rows().len(), 3);
}

#[tokio::test]
async fn a_lost_lease_writes_nothing_more() {
    let store = Arc::new(FakeEvents::default());
    let (handle, _task) = journal_over(store.clone(), fast()).spawn();
    for i in 0..5 {
        handle.record(ev(i)).unwrap();
    }
    assert_eq!(handle.clone().abandon().await.unwrap(), 5);
    assert!(matches!(
        handle.record(ev(9)),
        Err(ApplicationError::JournalClosed)
    ));
    assert_eq!(store.calls(), 0);
    assert!(store.rows().is_empty());
}

#[test]
fn only_the_first_lead_agent_human_input_and_one_memory_context_are_recorded() {
    let store = Arc::new(FakeEvents::default());
    let mut j = journal_over(store, fast());
    let msg = |t: &str| {
        json!({"type": "human", "content": t})
            .as_object()
            .unwrap()
            .clone()
    };
    let mut summary = msg("Here is a summary");
    summary.insert("name".into(), json!("summary"));
    assert!(!j.record_human_input(summary, "lead_agent").unwrap());
    assert!(!j.record_human_input(msg("sub"), "subagent:x").unwrap());
    assert!(j.record_human_input(msg("Q1"), "lead_agent").unwrap());
    assert!(!j.record_human_input(msg("Q2"), "lead_agent").unwrap());
    assert!(j.record_memory_context("abc").unwrap());
    assert!(!j.record_memory_context("abc").unwrap());
    assert_eq!(j.pending(), 2);
}

#[tokio::test]
async fn trace_content_is_truncated_on_capture_and_summaries_follow_the_rules() {
    let store = Arc::new(FakeEvents::default());
    let mut j = journal_over(
        store.clone(),
        JournalConfig {
            max_trace_content: 100,
            ..fast()
        },
    );
    j.record(
        JournalEvent::new("llm.error", "trace")
            .unwrap()
            .with_content(json!("x".repeat(150))),
    );
    let ai = |text: &str, caller: &str| {
        JournalEvent::new("llm.ai.response", "message")
            .unwrap()
            .with_content(json!({"type": "ai", "content": text, "tool_calls": []}))
            .with_metadata(json!({"caller": caller}).as_object().unwrap().clone())
    };
    j.record_human_input(
        json!({"type": "human", "content": "Q1"})
            .as_object()
            .unwrap()
            .clone(),
        "lead_agent",
    )
    .unwrap();
    j.record(ai("lead answer", "lead_agent"));
    j.record(ai("", "lead_agent")); // tool calls only
    j.record(ai("sub answer", "subagent:web"));
    let report = j.finish(RunOutcome::Cancelled, json!({})).await;
    assert_eq!(report.first_human_message.as_deref(), Some("Q1"));
    assert_eq!(report.last_ai_message.as_deref(), Some("lead answer"));
    assert_eq!(report.message_count, 4);
    let trace = &store.rows()[0];
    assert_eq!(trace.content.as_str().unwrap().len(), 100);
    assert_eq!(trace.metadata["original_byte_length"], json!(150));
}

#[test]
fn events_keep_their_capture_time_not_their_flush_time() {
    let store = Arc::new(FakeEvents::default());
    let c = clock();
    let mut j = RunJournal::new(
        store.clone(),
        UserScope::Unscoped,
        tid("t1"),
        rid("r1"),
        c.clone(),
        fast(),
    );
    let captured = c.now();
    j.record(ev(0));
    c.advance(chrono::Duration::seconds(30));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(j.flush()).unwrap();
    assert_eq!(store.rows()[0].created_at, captured);
}
