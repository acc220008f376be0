//! Concurrent run-event writers on the SQL backends (spec `history-and-streams.md` §1.5,
//! acceptance 11): many tasks appending to one thread get unique, gap-free seqs; batches stay
//! contiguous; deletes interleaved with writers never lose a writer's events or reuse a seq.

use std::collections::BTreeSet;
use std::sync::Arc;

use waymark_domain::run_event::NewRunEvent;
use waymark_domain::{EventCategory, EventType, RunId, ThreadId, UserScope};
use waymark_tests::backends::sql::Fixture;

fn event(thread: &str, run: &str, category: &str) -> NewRunEvent {
    NewRunEvent::new(
        ThreadId::parse(thread).unwrap(),
        RunId::parse(run).unwrap(),
        EventType::parse("llm.ai.response").unwrap(),
        EventCategory::parse(category).unwrap(),
    )
}

/// 16 tasks x 25 single puts plus 4 tasks x 2 batches of 10, all on one thread.
async fn writers_get_unique_gap_free_seqs(f: &Fixture) {
    let stores = f.backend.stores();
    let events = stores.run_events.clone();
    let scope = UserScope::User(waymark_domain::UserId::parse("u").unwrap());
    let mut tasks = Vec::new();
    for w in 0..16 {
        let events = events.clone();
        let scope = scope.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for _ in 0..25 {
                let e = events
                    .put(&scope, event("t-conc", &format!("r{w}"), "message"))
                    .await
                    .unwrap();
                seqs.push(vec![e.seq]);
            }
            seqs
        }));
    }
    for w in 0..4 {
        let events = events.clone();
        let scope = scope.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for _ in 0..2 {
                let batch = (0..10)
                    .map(|_| event("t-conc", &format!("b{w}"), "trace"))
                    .collect();
                let stored = events.put_batch(&scope, batch).await.unwrap();
                seqs.push(stored.iter().map(|e| e.seq).collect::<Vec<_>>());
            }
            seqs
        }));
    }
    let mut all = BTreeSet::new();
    let mut total = 0;
    for t in tasks {
        for group in t.await.unwrap() {
            for pair in group.windows(2) {
                assert_eq!(
                    pair[1],
                    pair[0] + 1,
                    "{}: batch not contiguous: {group:?}",
                    f.name
                );
            }
            total += group.len();
            all.extend(group);
        }
    }
    assert_eq!(total, 480, "{}", f.name);
    assert_eq!(all.len(), 480, "{}: duplicate seqs", f.name);
    assert_eq!(all.first(), Some(&1));
    assert_eq!(all.last(), Some(&480), "{}: gaps in seqs", f.name);
    let count = events
        .count_messages(&scope, &ThreadId::parse("t-conc").unwrap())
        .await
        .unwrap();
    assert_eq!(count, 400, "{}", f.name);
}

/// Deletes racing writers: every seq handed out is unique and above every seq handed out
/// before it, and nothing written after the last delete is lost.
async fn deletes_share_the_writers_fence(f: &Fixture) {
    let stores = f.backend.stores();
    let events = stores.run_events.clone();
    let scope = UserScope::Unscoped;
    let thread = ThreadId::parse("t-del").unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let events = events.clone();
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                let e = events
                    .put(
                        &UserScope::Unscoped,
                        event("t-del", &format!("r{w}"), "message"),
                    )
                    .await
                    .unwrap();
                seen.lock().unwrap().push(e.seq);
            }
        }));
    }
    let deleter = {
        let events = events.clone();
        let thread = thread.clone();
        tokio::spawn(async move {
            let mut removed = 0;
            for _ in 0..5 {
                removed += events
                    .delete_by_thread(&UserScope::Unscoped, &thread)
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
            removed
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    let removed = deleter.await.unwrap();
    let seqs = seen.lock().unwrap().clone();
    let unique: BTreeSet<i64> = seqs.iter().copied().collect();
    assert_eq!(unique.len(), 160, "{}: a seq was handed out twice", f.name);
    assert_eq!(unique.last(), Some(&160), "{}", f.name);
    let left = events.count_messages(&scope, &thread).await.unwrap();
    assert_eq!(left + removed, 160, "{}: events lost or duplicated", f.name);
    let next = events
        .put(&scope, event("t-del", "after", "message"))
        .await
        .unwrap();
    assert_eq!(next.seq, 161, "{}: seqs must never be reused", f.name);
}

macro_rules! on_every_sql_backend {
    ($($test:ident),*) => {
        mod sqlite_memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                let f = super::Fixture::new("sqlite-memory").await.unwrap();
                super::$test(&f).await;
                f.finish().await;
            })*
        }
        mod sqlite_file {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                let f = super::Fixture::new("sqlite-file").await.unwrap();
                super::$test(&f).await;
                f.finish().await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                let Some(f) = super::Fixture::new("postgres").await else {
                    eprintln!("SKIPPED postgres::{}: no PostgreSQL server", stringify!($test));
                    return;
                };
                super::$test(&f).await;
                f.finish().await;
            })*
        }
    };
}

on_every_sql_backend!(
    writers_get_unique_gap_free_seqs,
    deletes_share_the_writers_fence
);
