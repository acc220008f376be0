//! The run-event contract (spec `history-and-streams.md` §1.8 and §0): per-thread seqs under
//! concurrency and after deletes, paging, filters, content fidelity, trace truncation, user
//! scoping and copy-on-read.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use waymark_domain::clock::Clock;
use waymark_domain::paging::{Limit, SeqPage};
use waymark_domain::run_event::{DEFAULT_MAX_TRACE_CONTENT, EventQuery, NewRunEvent, RunEvent};
use waymark_domain::{DomainError, EventCategory, EventType, RunId, ThreadId, UserScope};

use super::fixtures::*;
use crate::harness::TestBackend;

fn new_event(thread: &ThreadId, run: &RunId, event_type: &str, category: &str) -> NewRunEvent {
    NewRunEvent::new(
        thread.clone(),
        run.clone(),
        EventType::parse(event_type).expect("event type"),
        EventCategory::parse(category).expect("category"),
    )
}

fn message(thread: &ThreadId, run: &RunId) -> NewRunEvent {
    new_event(thread, run, "llm.human.input", "message")
}

fn trace(thread: &ThreadId, run: &RunId) -> NewRunEvent {
    new_event(thread, run, "llm.error", "trace")
}

fn seqs(events: &[RunEvent]) -> Vec<i64> {
    events.iter().map(|e| e.seq).collect()
}

fn limit(n: u32) -> Limit {
    Limit::new(n).expect("limit")
}

/// A thread owned by a fresh user, with that user's scope.
async fn owned_thread(b: &TestBackend) -> (UserScope, ThreadId) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    (scope, thread)
}

async fn put(b: &TestBackend, scope: &UserScope, e: NewRunEvent) -> RunEvent {
    b.stores.run_events.put(scope, e).await.expect("put")
}

async fn messages(
    b: &TestBackend,
    scope: &UserScope,
    thread: &ThreadId,
    page: SeqPage,
) -> Vec<i64> {
    seqs(
        &b.stores
            .run_events
            .list_messages(scope, thread, page)
            .await
            .expect("list_messages"),
    )
}

/// Puts `kinds` in order (`'m'` message, `'t'` trace) on one run.
async fn put_pattern(
    b: &TestBackend,
    scope: &UserScope,
    thread: &ThreadId,
    run: &RunId,
    kinds: &str,
) {
    let events = kinds
        .chars()
        .map(|k| match k {
            'm' => message(thread, run),
            _ => trace(thread, run),
        })
        .collect();
    b.stores
        .run_events
        .put_batch(scope, events)
        .await
        .expect("put_batch");
}

fn query(thread: &ThreadId, run: &RunId) -> EventQuery {
    EventQuery::run(thread.clone(), run.clone())
}

async fn events(b: &TestBackend, scope: &UserScope, q: &EventQuery) -> Vec<RunEvent> {
    b.stores
        .run_events
        .list_events(scope, q)
        .await
        .expect("list_events")
}

// ---------------------------------------------------------------------------------------------
// §1.8 acceptance behaviours
// ---------------------------------------------------------------------------------------------

/// 1: the first put on a thread gets seq 1; three categories get 1, 2, 3; another thread
/// starts at 1 again.
pub async fn first_puts_get_one_two_three_per_thread(b: &TestBackend) {
    let (scope, t1) = owned_thread(b).await;
    let t2 = create_thread(b, &scope).await;
    let run = run_id();
    let a = put(b, &scope, message(&t1, &run)).await;
    let c = put(b, &scope, trace(&t1, &run)).await;
    let d = put(b, &scope, new_event(&t1, &run, "run.end", "outputs")).await;
    assert_eq!((a.seq, c.seq, d.seq), (1, 2, 3));
    assert_eq!(put(b, &scope, message(&t2, &run)).await.seq, 1);
}

/// 2: a supplied `created_at` comes back identical; metadata round-trips.
pub async fn supplied_created_at_and_metadata_round_trip(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    let at: DateTime<Utc> = "2026-01-02T03:04:05.123456+00:00".parse().unwrap();
    let mut e = message(&thread, &run_id()).with_metadata(obj(json!({"k": "v"})));
    e.created_at = Some(at);
    let stored = put(b, &scope, e).await;
    assert_eq!(stored.created_at, at);
    assert_eq!(stored.metadata, obj(json!({"k": "v"})));
    let read = b
        .stores
        .run_events
        .list_messages(&scope, &thread, SeqPage::default_latest())
        .await
        .unwrap();
    assert_eq!(read, vec![stored]);
    assert_eq!(
        read[0].created_at.to_rfc3339(),
        "2026-01-02T03:04:05.123456+00:00"
    );
}

/// Without a supplied time, `created_at` is the store clock's now.
pub async fn created_at_defaults_to_the_clock(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    b.clock.advance(chrono::Duration::milliseconds(1500));
    let stored = put(b, &scope, message(&thread, &run_id())).await;
    assert_eq!(stored.created_at, b.clock.now());
}

/// A returned record carries the full envelope, owner included.
pub async fn records_carry_the_full_envelope(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    let run = run_id();
    let e = new_event(&thread, &run, "llm.ai.response", "message")
        .with_content(json!({"type": "ai", "content": "hi"}))
        .with_metadata(obj(json!({"caller": "lead_agent"})));
    let r = put(b, &scope, e).await;
    assert_eq!(r.thread_id, thread);
    assert_eq!(r.run_id, run);
    assert_eq!(r.seq, 1);
    assert_eq!(r.event_type.as_str(), "llm.ai.response");
    assert_eq!(r.category.as_str(), "message");
    assert_eq!(r.content, json!({"type": "ai", "content": "hi"}));
    assert_eq!(r.metadata, obj(json!({"caller": "lead_agent"})));
    assert_eq!(r.user_id.as_ref(), scope.owner());
    let listed = events(b, &scope, &query(&thread, &run)).await;
    assert_eq!(listed, vec![r]);
}

/// 3: `put_if_absent` of `run.delivery` twice: `(r, true)` then `(r, false)`, one row.
pub async fn put_if_absent_records_a_singleton_once(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    let run = run_id();
    let e = new_event(&thread, &run, "run.delivery", "outputs").with_content(json!({"n": 1}));
    let (first, created) = b
        .stores
        .run_events
        .put_if_absent(&scope, e.clone())
        .await
        .unwrap();
    assert!(created);
    let (second, created) = b
        .stores
        .run_events
        .put_if_absent(&scope, e.with_content(json!({"n": 2})))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(second, first);
    assert_eq!(events(b, &scope, &query(&thread, &run)).await, vec![first]);
}

/// The singleton is per run: another run of the thread records its own.
pub async fn put_if_absent_is_per_run(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    for run in [run_id(), run_id()] {
        let (r, created) = b
            .stores
            .run_events
            .put_if_absent(&scope, new_event(&thread, &run, "run.delivery", "outputs"))
            .await
            .unwrap();
        assert!(created);
        assert_eq!(r.run_id, run);
    }
}

/// Ten concurrent `put_if_absent` calls for one run create exactly one row.
pub async fn concurrent_put_if_absent_creates_one(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    let run = run_id();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (store, scope) = (b.stores.run_events.clone(), scope.clone());
            let e = new_event(&thread, &run, "run.delivery", "outputs");
            tokio::spawn(async move { store.put_if_absent(&scope, e).await })
        })
        .collect();
    let mut created = 0;
    let mut seqs_seen = BTreeSet::new();
    for t in tasks {
        let (r, c) = t.await.unwrap().expect("no error under contention");
        created += usize::from(c);
        seqs_seen.insert(r.seq);
    }
    assert_eq!(created, 1);
    assert_eq!(seqs_seen.len(), 1, "every caller sees the same record");
    assert_eq!(events(b, &scope, &query(&thread, &run)).await.len(), 1);
}

/// 4: `list_messages` returns only message rows, ascending.
pub async fn list_messages_returns_only_messages_ascending(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    put_pattern(b, &scope, &thread, &run_id(), "mtmtmm").await;
    let got = b
        .stores
        .run_events
        .list_messages(&scope, &thread, SeqPage::default_latest())
        .await
        .unwrap();
    assert_eq!(seqs(&got), vec![1, 3, 5, 6]);
    assert!(got.iter().all(|e| e.category.is_message()));
}

/// 5: messages at 1..=10 paged by `Before`, `After` and `Latest`.
pub async fn seq_pages_over_contiguous_messages(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    put_pattern(b, &scope, &thread, &run_id(), "mmmmmmmmmm").await;
    let p = |page| messages(b, &scope, &thread, page);
    assert_eq!(p(SeqPage::Before(6, limit(3))).await, vec![3, 4, 5]);
    assert_eq!(p(SeqPage::After(7, limit(3))).await, vec![8, 9, 10]);
    assert_eq!(p(SeqPage::Latest(limit(3))).await, vec![8, 9, 10]);
    assert_eq!(
        p(SeqPage::Latest(limit(50))).await,
        (1..=10).collect::<Vec<_>>()
    );
    assert!(p(SeqPage::Before(1, limit(3))).await.is_empty());
    assert!(p(SeqPage::After(10, limit(3))).await.is_empty());
}

/// 6: messages at odd seqs with traces between: exclusive bounds that fall in gaps.
pub async fn seq_pages_across_gaps(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    put_pattern(b, &scope, &thread, &run_id(), "mtmtmtmtm").await;
    let p = |page| messages(b, &scope, &thread, page);
    assert_eq!(p(SeqPage::Before(6, limit(2))).await, vec![3, 5]);
    assert_eq!(p(SeqPage::Before(5, limit(2))).await, vec![1, 3]);
    assert_eq!(p(SeqPage::After(4, limit(2))).await, vec![5, 7]);
    assert_eq!(p(SeqPage::After(5, limit(2))).await, vec![7, 9]);
}

/// 7: runs interleaved on one thread share its seqs; `list_messages_by_run` keeps one run.
pub async fn messages_of_interleaved_runs(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    let (r1, r2) = (run_id(), run_id());
    for run in [&r1, &r2, &r1, &r2] {
        put(b, &scope, message(&thread, run)).await;
    }
    assert_eq!(
        messages(b, &scope, &thread, SeqPage::default_latest()).await,
        vec![1, 2, 3, 4]
    );
    let by_run = b
        .stores
        .run_events
        .list_messages_by_run(&scope, &thread, &r1, SeqPage::default_latest())
        .await
        .unwrap();
    assert_eq!(seqs(&by_run), vec![1, 3]);
    assert!(by_run.iter().all(|e| e.run_id == r1));
    let page = b
        .stores
        .run_events
        .list_messages_by_run(&scope, &thread, &r2, SeqPage::Before(4, limit(5)))
        .await
        .unwrap();
    assert_eq!(seqs(&page), vec![2]);
}

/// 8: `list_events` returns every category of its run and nothing of other runs.
pub async fn list_events_returns_every_category_of_one_run(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    let (r1, r2) = (run_id(), run_id());
    put(b, &scope, new_event(&thread, &r1, "run.start", "trace")).await;
    put(b, &scope, message(&thread, &r2)).await;
    put(b, &scope, message(&thread, &r1)).await;
    put(b, &scope, new_event(&thread, &r1, "run.end", "outputs")).await;
    put(b, &scope, new_event(&thread, &r1, "run.error", "error")).await;
    let got = events(b, &scope, &query(&thread, &r1)).await;
    assert_eq!(seqs(&got), vec![1, 3, 4, 5]);
    let cats: Vec<&str> = got.iter().map(|e| e.category.as_str()).collect();
    assert_eq!(cats, vec!["trace", "message", "outputs", "error"]);
}

/// 8: `event_types` filters to the given set.
pub async fn list_events_filters_event_types(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    let run = run_id();
    for (et, cat) in [
        ("run.start", "trace"),
        ("llm.human.input", "message"),
        ("llm.ai.response", "message"),
        ("run.end", "outputs"),
    ] {
        put(b, &scope, new_event(&thread, &run, et, cat)).await;
    }
    let q = EventQuery {
        event_types: Some(vec![
            EventType::parse("run.start").unwrap(),
            EventType::parse("run.end").unwrap(),
        ]),
        ..query(&thread, &run)
    };
    assert_eq!(seqs(&events(b, &scope, &q).await), vec![1, 4]);
}

/// 8: 600 events of which 20 carry `metadata.task_id = "t7"` spread over the run: the task
/// filter applies before the limit, and paging over the task never loses its tail.
pub async fn list_events_task_filter_applies_before_the_limit(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    let run = run_id();
    let batch: Vec<NewRunEvent> = (0..600)
        .map(|i| {
            let e = new_event(&thread, &run, "subagent.step", "subagent");
            if i % 30 == 29 {
                e.with_metadata(obj(json!({"task_id": "t7"})))
            } else {
                e.with_metadata(obj(json!({"task_id": "other"})))
            }
        })
        .collect();
    b.stores.run_events.put_batch(&scope, batch).await.unwrap();
    let want: Vec<i64> = (1..=600).filter(|s| s % 30 == 0).collect();
    let q = EventQuery {
        task_id: Some("t7".into()),
        limit: limit(500),
        ..query(&thread, &run)
    };
    assert_eq!(seqs(&events(b, &scope, &q).await), want);

    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let q = EventQuery {
            task_id: Some("t7".into()),
            after_seq: after,
            limit: limit(7),
            ..query(&thread, &run)
        };
        let page = events(b, &scope, &q).await;
        paged.extend(seqs(&page));
        if page.len() < 7 {
            break;
        }
        after = page.last().map(|e| e.seq);
    }
    assert_eq!(paged, want);
}

/// Without a cursor `list_events` returns the oldest `limit` rows; `after_seq` pages forward.
pub async fn list_events_pages_forward_from_the_oldest(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    let run = run_id();
    put_pattern(b, &scope, &thread, &run, &"t".repeat(12)).await;
    let q = EventQuery {
        limit: limit(5),
        ..query(&thread, &run)
    };
    assert_eq!(seqs(&events(b, &scope, &q).await), vec![1, 2, 3, 4, 5]);
    let q = EventQuery {
        after_seq: Some(10),
        ..q
    };
    assert_eq!(seqs(&events(b, &scope, &q).await), vec![11, 12]);
}

/// 9: `count_messages` counts message rows only.
pub async fn count_messages_counts_only_messages(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    put_pattern(b, &scope, &thread, &run_id(), "mttmtm").await;
    put_pattern(b, &scope, &thread, &run_id(), "tm").await;
    let n = b
        .stores
        .run_events
        .count_messages(&scope, &thread)
        .await
        .unwrap();
    assert_eq!(n, 4);
    let empty = create_thread(b, &scope).await;
    assert_eq!(
        b.stores
            .run_events
            .count_messages(&scope, &empty)
            .await
            .unwrap(),
        0
    );
}

/// 10: a batch of 50 on a new thread gets 1..=50 in input order.
pub async fn put_batch_assigns_contiguous_seqs_from_one(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    let run = run_id();
    let batch: Vec<_> = (0..50)
        .map(|i| message(&thread, &run).with_content(json!(i)))
        .collect();
    let got = b.stores.run_events.put_batch(&scope, batch).await.unwrap();
    assert_eq!(seqs(&got), (1..=50).collect::<Vec<_>>());
    for (i, e) in got.iter().enumerate() {
        assert_eq!(e.content, json!(i), "input order kept");
    }
}

/// 10: an empty batch returns `[]` and writes nothing.
pub async fn put_batch_of_nothing_returns_nothing(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    assert!(
        b.stores
            .run_events
            .put_batch(&scope, vec![])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(put(b, &scope, message(&thread, &run_id())).await.seq, 1);
}

/// 10: a batch mixing two threads is refused with `InvalidInput` and writes nothing.
pub async fn put_batch_mixing_threads_is_refused(b: &TestBackend) {
    let (scope, t1) = owned_thread(b).await;
    let t2 = create_thread(b, &scope).await;
    let run = run_id();
    let r = b
        .stores
        .run_events
        .put_batch(&scope, vec![message(&t1, &run), message(&t2, &run)])
        .await;
    assert_eq!(expect_invalid(r), "thread_id");
    for t in [&t1, &t2] {
        assert!(events(b, &scope, &query(t, &run)).await.is_empty());
    }
    assert_eq!(
        put(b, &scope, message(&t1, &run)).await.seq,
        1,
        "no seq consumed"
    );
}

/// 10: a batch with two runs stores each row under its own run.
pub async fn put_batch_keeps_each_rows_run(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    let (r1, r2) = (run_id(), run_id());
    let got = b
        .stores
        .run_events
        .put_batch(
            &scope,
            vec![
                message(&thread, &r1),
                message(&thread, &r2),
                trace(&thread, &r2),
            ],
        )
        .await
        .unwrap();
    let runs: Vec<&RunId> = got.iter().map(|e| &e.run_id).collect();
    assert_eq!(runs, vec![&r1, &r2, &r2]);
    assert_eq!(
        seqs(&events(b, &scope, &query(&thread, &r2)).await),
        vec![2, 3]
    );
    let n = b
        .stores
        .run_events
        .delete_by_run(&scope, &thread, &r2)
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        b.stores
            .run_events
            .delete_by_run(&scope, &thread, &r1)
            .await
            .unwrap(),
        1
    );
}

/// 11: ten concurrent puts on one thread get exactly {1..10}.
pub async fn concurrent_puts_get_one_to_ten(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    let run = run_id();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (store, scope, e) = (
                b.stores.run_events.clone(),
                scope.clone(),
                message(&thread, &run),
            );
            tokio::spawn(async move { store.put(&scope, e).await })
        })
        .collect();
    let mut got = BTreeSet::new();
    for t in tasks {
        got.insert(t.await.unwrap().expect("put").seq);
    }
    assert_eq!(got, (1..=10).collect());
}

/// 11: two concurrent batches of 25 get 50 distinct seqs, each batch contiguous.
pub async fn concurrent_batches_are_each_contiguous(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let run = run_id();
            let batch: Vec<_> = (0..25).map(|_| message(&thread, &run)).collect();
            let (store, scope) = (b.stores.run_events.clone(), scope.clone());
            tokio::spawn(async move { store.put_batch(&scope, batch).await })
        })
        .collect();
    let mut all = BTreeSet::new();
    for t in tasks {
        let s = seqs(&t.await.unwrap().expect("put_batch"));
        assert!(
            s.windows(2).all(|w| w[1] == w[0] + 1),
            "a batch is contiguous: {s:?}"
        );
        all.extend(s);
    }
    assert_eq!(all, (1..=50).collect());
}

/// 16 concurrent writers mixing single puts and small batches get unique, gap-free seqs.
pub async fn many_writers_get_gap_free_seqs(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    const WRITERS: usize = 16;
    const ROUNDS: usize = 10;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, scope, thread) =
                (b.stores.run_events.clone(), scope.clone(), thread.clone());
            let run = run_id();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for i in 0..ROUNDS {
                    if (w + i) % 3 == 0 {
                        let batch = vec![message(&thread, &run), trace(&thread, &run)];
                        mine.extend(seqs(&store.put_batch(&scope, batch).await.unwrap()));
                    } else {
                        mine.push(store.put(&scope, message(&thread, &run)).await.unwrap().seq);
                    }
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let n = all.len() as i64;
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "no seq handed out twice");
    assert_eq!(unique, (1..=n).collect(), "no gaps");
}

/// 12: deletes return the number of rows removed; missing threads and runs give 0.
pub async fn deletes_count_rows_and_missing_is_zero(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    let (r1, r2) = (run_id(), run_id());
    put_pattern(b, &scope, &thread, &r1, "mtm").await;
    put_pattern(b, &scope, &thread, &r2, "mm").await;
    let ev = &b.stores.run_events;
    assert_eq!(
        ev.delete_by_run(&scope, &thread, &run_id()).await.unwrap(),
        0
    );
    assert_eq!(
        ev.delete_by_run(&scope, &thread_id(), &r1).await.unwrap(),
        0
    );
    assert_eq!(ev.delete_by_thread(&scope, &thread_id()).await.unwrap(), 0);
    assert_eq!(ev.delete_by_run(&scope, &thread, &r1).await.unwrap(), 3);
    assert!(events(b, &scope, &query(&thread, &r1)).await.is_empty());
    assert_eq!(ev.delete_by_thread(&scope, &thread).await.unwrap(), 2);
    assert!(
        messages(b, &scope, &thread, SeqPage::default_latest())
            .await
            .is_empty()
    );
    assert_eq!(ev.delete_by_thread(&scope, &thread).await.unwrap(), 0);
}

/// 13: deleting the newest run (seqs 8-10) does not free its seqs: the next put gets 11.
pub async fn seqs_are_not_reused_after_delete_by_run(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    let (r1, r2) = (run_id(), run_id());
    put_pattern(b, &scope, &thread, &r1, "mmmmmmm").await;
    put_pattern(b, &scope, &thread, &r2, "mmm").await;
    b.stores
        .run_events
        .delete_by_run(&scope, &thread, &r2)
        .await
        .unwrap();
    assert_eq!(put(b, &scope, message(&thread, &r1)).await.seq, 11);
}

/// 13: after `delete_by_thread` on a thread whose last seq was 11, the next put gets 12.
pub async fn seqs_are_not_reused_after_delete_by_thread(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    put_pattern(b, &scope, &thread, &run_id(), "mmmmmtttttm").await;
    b.stores
        .run_events
        .delete_by_thread(&scope, &thread)
        .await
        .unwrap();
    assert_eq!(put(b, &scope, message(&thread, &run_id())).await.seq, 12);
    let batch = vec![message(&thread, &run_id()), message(&thread, &run_id())];
    let got = b.stores.run_events.put_batch(&scope, batch).await.unwrap();
    assert_eq!(seqs(&got), vec![13, 14]);
}

/// 14: trace content over the limit (default 10,240 bytes) is cut on a character boundary
/// with its original length recorded; message content of any size is stored intact.
pub async fn only_trace_content_is_truncated(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    let run = run_id();
    let max = DEFAULT_MAX_TRACE_CONTENT;
    let long = "a".repeat(max + 5_000);
    let t = put(b, &scope, trace(&thread, &run).with_content(json!(long))).await;
    let text = t
        .content
        .as_str()
        .expect("truncated trace content is a string");
    assert!(text.len() <= max);
    assert_eq!(t.metadata["content_truncated"], json!(true));
    assert_eq!(t.metadata["original_byte_length"], json!(max + 5_000));

    let accents = "é".repeat(max / 2 + 1_000);
    let a = put(b, &scope, trace(&thread, &run).with_content(json!(accents))).await;
    assert_eq!(a.content, json!("é".repeat(max / 2)));

    let m = put(b, &scope, message(&thread, &run).with_content(json!(long))).await;
    assert_eq!(m.content, json!(long));
    assert!(!m.metadata.contains_key("content_truncated"));

    let short = put(b, &scope, trace(&thread, &run).with_content(json!("short"))).await;
    assert_eq!(short.content, json!("short"));
    assert!(short.metadata.is_empty());

    let stored = events(b, &scope, &query(&thread, &run)).await;
    assert_eq!(stored, vec![t, a, m, short]);
}

/// 15: content keeps its JSON type; a string that looks like JSON stays a string.
pub async fn content_keeps_its_json_type(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    let run = run_id();
    let contents = [
        json!([1, "a"]),
        json!({"a": 1}),
        json!("{\"a\": 1}"),
        json!(null),
        json!(1.5),
        json!(true),
        json!(""),
    ];
    for c in &contents {
        put(b, &scope, message(&thread, &run).with_content(c.clone())).await;
    }
    let got: Vec<Value> = events(b, &scope, &query(&thread, &run))
        .await
        .into_iter()
        .map(|e| e.content)
        .collect();
    assert_eq!(got, contents);
}

/// 16: user B sees none of A's rows, counts 0 and deletes 0; A's rows remain; `Unscoped`
/// sees them.
pub async fn other_users_rows_read_as_empty(b: &TestBackend) {
    let (a, thread) = owned_thread(b).await;
    let run = run_id();
    put_pattern(b, &a, &thread, &run, "mmm").await;
    let other = user_scope();
    let ev = &b.stores.run_events;
    assert!(
        messages(b, &other, &thread, SeqPage::default_latest())
            .await
            .is_empty()
    );
    assert!(events(b, &other, &query(&thread, &run)).await.is_empty());
    assert_eq!(ev.count_messages(&other, &thread).await.unwrap(), 0);
    assert_eq!(ev.delete_by_thread(&other, &thread).await.unwrap(), 0);
    assert_eq!(ev.delete_by_run(&other, &thread, &run).await.unwrap(), 0);
    assert!(
        ev.last_visible_ai_seq_by_run(&other, &thread, vec![run.clone()])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        messages(b, &a, &thread, SeqPage::default_latest()).await,
        vec![1, 2, 3]
    );
    assert_eq!(
        messages(b, &UserScope::Unscoped, &thread, SeqPage::default_latest()).await,
        vec![1, 2, 3]
    );
}

/// 16: a `Current` scope without a user is refused before any store is reached.
pub async fn current_scope_without_a_user_fails(b: &TestBackend) {
    let (a, thread) = owned_thread(b).await;
    assert_eq!(UserScope::current(None), Err(DomainError::MissingUser));
    assert!(UserScope::current(None).unwrap_err().is_invalid_input());
    let owner = a.owner().cloned();
    let scope = UserScope::current(owner).unwrap();
    assert_eq!(scope, a);
    assert_eq!(put(b, &scope, message(&thread, &run_id())).await.seq, 1);
}

/// Rows written `Unscoped` have no owner and are visible only to `Unscoped` readers (§0.2).
pub async fn ownerless_rows_are_visible_only_unscoped(b: &TestBackend) {
    let thread = create_thread(b, &UserScope::Unscoped).await;
    let r = put(b, &UserScope::Unscoped, message(&thread, &run_id())).await;
    assert_eq!(r.user_id, None);
    assert!(
        messages(b, &user_scope(), &thread, SeqPage::default_latest())
            .await
            .is_empty()
    );
    assert_eq!(
        messages(b, &UserScope::Unscoped, &thread, SeqPage::default_latest()).await,
        vec![1]
    );
}

/// 17: mutating a returned record never changes the stored one.
pub async fn returned_records_are_copies(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    let run = run_id();
    let mut written = put(
        b,
        &scope,
        message(&thread, &run).with_content(json!({"id": "original", "content": "hi"})),
    )
    .await;
    let pristine = written.clone();
    written.content["id"] = json!("patched");
    let mut read = events(b, &scope, &query(&thread, &run)).await;
    assert_eq!(read, vec![pristine.clone()]);
    read[0].content["id"] = json!("patched-again");
    read[0]
        .metadata
        .insert("feedback".into(), json!({"rating": 1}));
    let again = b
        .stores
        .run_events
        .list_messages(&scope, &thread, SeqPage::default_latest())
        .await
        .unwrap();
    assert_eq!(again, vec![pristine]);
}

/// 19: with 1,200 messages the default page is the newest 50; a forward scan in pages of 500
/// from `After(0)` returns all 1,200 from the first.
pub async fn default_page_is_newest_fifty_and_a_forward_scan_reads_all(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    let run = run_id();
    for _ in 0..3 {
        let batch: Vec<_> = (0..400).map(|_| message(&thread, &run)).collect();
        b.stores.run_events.put_batch(&scope, batch).await.unwrap();
    }
    assert_eq!(
        messages(b, &scope, &thread, SeqPage::default_latest()).await,
        (1151..=1200).collect::<Vec<_>>()
    );
    let mut all = Vec::new();
    let mut cursor = 0;
    loop {
        let page = messages(b, &scope, &thread, SeqPage::After(cursor, limit(500))).await;
        let last = *page.last().unwrap_or(&cursor);
        let n = page.len();
        all.extend(page);
        if n < 500 {
            break;
        }
        assert!(last > cursor, "a page must advance");
        cursor = last;
    }
    assert_eq!(all, (1..=1200).collect::<Vec<_>>());
}

/// The greatest seq of a visible AI message per run: middleware callers excluded, the legacy
/// `ai_message` name included, runs without one absent, `[]` answers `{}`.
pub async fn last_visible_ai_seq_per_run(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    let (r1, r2, r3) = (run_id(), run_id(), run_id());
    let ai = |run: &RunId, caller: &str| {
        new_event(&thread, run, "llm.ai.response", "message")
            .with_metadata(obj(json!({"caller": caller})))
    };
    put(b, &scope, ai(&r1, "lead_agent")).await; // 1
    put(b, &scope, ai(&r1, "lead_agent")).await; // 2
    put(b, &scope, ai(&r1, "middleware:summarize")).await; // 3
    put(b, &scope, new_event(&thread, &r2, "ai_message", "message")).await; // 4
    put(
        b,
        &scope,
        new_event(&thread, &r2, "llm.ai.response", "trace"),
    )
    .await; // 5
    put(b, &scope, message(&thread, &r3)).await; // 6
    let ev = &b.stores.run_events;
    let got = ev
        .last_visible_ai_seq_by_run(&scope, &thread, vec![r1.clone(), r2.clone(), r3.clone()])
        .await
        .unwrap();
    assert_eq!(got, HashMap::from([(r1.clone(), 2), (r2.clone(), 4)]));
    let only = ev
        .last_visible_ai_seq_by_run(&scope, &thread, vec![r2.clone()])
        .await
        .unwrap();
    assert_eq!(only, HashMap::from([(r2, 4)]));
    assert!(
        ev.last_visible_ai_seq_by_run(&scope, &thread, vec![])
            .await
            .unwrap()
            .is_empty()
    );
}

/// Cursors at the extremes of the seq range select nothing (or everything) without failing.
pub async fn extreme_cursors_are_harmless(b: &TestBackend) {
    let (scope, thread) = owned_thread(b).await;
    put_pattern(b, &scope, &thread, &run_id(), "mmm").await;
    let p = |page| messages(b, &scope, &thread, page);
    assert!(p(SeqPage::Before(i64::MIN, limit(5))).await.is_empty());
    assert!(p(SeqPage::After(i64::MAX, limit(5))).await.is_empty());
    assert_eq!(p(SeqPage::Before(i64::MAX, limit(5))).await, vec![1, 2, 3]);
    assert_eq!(p(SeqPage::After(i64::MIN, limit(2))).await, vec![1, 2]);
    assert_eq!(p(SeqPage::Latest(limit(Limit::MAX))).await, vec![1, 2, 3]);
}

// -- case list (every `pub async fn` above, in order) ----------------------------------------

/// Runs every run_event case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `run_event`.
#[macro_export]
macro_rules! run_event_contract {
    ($factory:path) => {
        mod run_event {
            $crate::__contract_cases!(
                $factory,
                run_event,
                [
                    first_puts_get_one_two_three_per_thread,
                    supplied_created_at_and_metadata_round_trip,
                    created_at_defaults_to_the_clock,
                    records_carry_the_full_envelope,
                    put_if_absent_records_a_singleton_once,
                    put_if_absent_is_per_run,
                    concurrent_put_if_absent_creates_one,
                    list_messages_returns_only_messages_ascending,
                    seq_pages_over_contiguous_messages,
                    seq_pages_across_gaps,
                    messages_of_interleaved_runs,
                    list_events_returns_every_category_of_one_run,
                    list_events_filters_event_types,
                    list_events_task_filter_applies_before_the_limit,
                    list_events_pages_forward_from_the_oldest,
                    count_messages_counts_only_messages,
                    put_batch_assigns_contiguous_seqs_from_one,
                    put_batch_of_nothing_returns_nothing,
                    put_batch_mixing_threads_is_refused,
                    put_batch_keeps_each_rows_run,
                    concurrent_puts_get_one_to_ten,
                    concurrent_batches_are_each_contiguous,
                    many_writers_get_gap_free_seqs,
                    deletes_count_rows_and_missing_is_zero,
                    seqs_are_not_reused_after_delete_by_run,
                    seqs_are_not_reused_after_delete_by_thread,
                    only_trace_content_is_truncated,
                    content_keeps_its_json_type,
                    other_users_rows_read_as_empty,
                    current_scope_without_a_user_fails,
                    ownerless_rows_are_visible_only_unscoped,
                    returned_records_are_copies,
                    default_page_is_newest_fifty_and_a_forward_scan_reads_all,
                    last_visible_ai_seq_per_run,
                    extreme_cursors_are_harmless,
                ]
            );
        }
    };
}
