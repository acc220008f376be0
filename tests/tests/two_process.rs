//! Two OS processes writing the same SQLite file and the same PostgreSQL thread: no seq is
//! handed out twice and nothing is lost (spec `history-and-streams.md` §1.5).
//!
//! The test binary re-invokes itself: the parent creates and migrates the database, then runs
//! this binary twice more with `WAYMARK_TWO_PROCESS_URL` set, which turns the `child_writer`
//! test into a writer; both children write concurrently and the parent checks the result.

use std::process::Command;

use waymark_domain::checkpoint::{Checkpoint, CheckpointMetadata, CheckpointPut, CheckpointQuery};
use waymark_domain::paging::{Limit, SeqPage};
use waymark_domain::run_event::NewRunEvent;
use waymark_domain::{CheckpointNamespace, EventCategory, EventType, RunId, ThreadId, UserScope};
use waymark_infrastructure::connect::{ConnectOptions, connect_sql};
use waymark_tests::backends::sql::Fixture;

const EVENTS_PER_CHILD: usize = 150;
const CHECKPOINTS_PER_CHILD: usize = 25;
const THREAD: &str = "two-process";

/// The writer half; a no-op unless the parent set `WAYMARK_TWO_PROCESS_URL`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_writer() {
    let Ok(url) = std::env::var("WAYMARK_TWO_PROCESS_URL") else {
        return;
    };
    let writer = std::env::var("WAYMARK_TWO_PROCESS_WRITER").unwrap();
    let options = ConnectOptions {
        migrate: false,
        pool_size: 2,
        postgres_schema: std::env::var("WAYMARK_TWO_PROCESS_SCHEMA").ok(),
        ..ConnectOptions::default()
    };
    let backend = connect_sql(&url, &options).await.unwrap();
    let stores = backend.stores();
    let thread = ThreadId::parse(THREAD).unwrap();
    for i in 0..EVENTS_PER_CHILD {
        let e = NewRunEvent::new(
            thread.clone(),
            RunId::parse(format!("run-{writer}")).unwrap(),
            EventType::parse("llm.ai.response").unwrap(),
            EventCategory::parse("message").unwrap(),
        )
        .with_content(serde_json::json!({"writer": writer, "i": i}));
        stores
            .run_events
            .put(&UserScope::Unscoped, e)
            .await
            .unwrap();
        if i % (EVENTS_PER_CHILD / CHECKPOINTS_PER_CHILD) == 0 {
            stores
                .checkpoints
                .put(CheckpointPut {
                    thread_id: thread.clone(),
                    namespace: CheckpointNamespace::root(),
                    parent_id: None,
                    checkpoint: Checkpoint::empty(i as i64),
                    metadata: CheckpointMetadata::default(),
                    new_versions: Default::default(),
                })
                .await
                .unwrap();
        }
    }
    backend.close().await.unwrap();
}

fn spawn_child(f: &Fixture, writer: usize) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env("WAYMARK_TWO_PROCESS_URL", &f.url)
        .env("WAYMARK_TWO_PROCESS_WRITER", writer.to_string());
    match &f.schema {
        Some(s) => cmd.env("WAYMARK_TWO_PROCESS_SCHEMA", s),
        None => cmd.env_remove("WAYMARK_TWO_PROCESS_SCHEMA"),
    };
    // Captured, so the children's own test-harness lines do not mix into this run's report.
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

async fn two_writers(f: Fixture) {
    let children: Vec<_> = (0..2).map(|w| spawn_child(&f, w)).collect();
    let statuses = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for out in statuses {
        assert!(
            out.status.success(),
            "{}: a writer process failed: {}\n{}\n{}",
            f.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stores = f.backend.stores();
    let thread = ThreadId::parse(THREAD).unwrap();
    let events = stores
        .run_events
        .list_messages(
            &UserScope::Unscoped,
            &thread,
            SeqPage::After(0, Limit::new(10_000).unwrap()),
        )
        .await
        .unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<i64> = (1..=(2 * EVENTS_PER_CHILD) as i64).collect();
    assert_eq!(
        seqs, expected,
        "{}: seqs must be unique and gap-free",
        f.name
    );
    for w in 0..2 {
        let mine: Vec<i64> = events
            .iter()
            .filter(|e| e.content["writer"] == serde_json::json!(w.to_string()))
            .map(|e| e.content["i"].as_i64().unwrap())
            .collect();
        let expected: Vec<i64> = (0..EVENTS_PER_CHILD as i64).collect();
        assert_eq!(
            mine, expected,
            "{}: writer {w} lost or reordered events",
            f.name
        );
    }
    let cps = stores
        .checkpoints
        .list(&CheckpointQuery::thread(thread))
        .await
        .unwrap();
    assert_eq!(cps.len(), 2 * CHECKPOINTS_PER_CHILD, "{}", f.name);
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_a_sqlite_file() {
    if std::env::var("WAYMARK_TWO_PROCESS_URL").is_ok() {
        return;
    }
    two_writers(Fixture::new("sqlite-file").await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_a_postgres_thread() {
    if std::env::var("WAYMARK_TWO_PROCESS_URL").is_ok() {
        return;
    }
    let Some(f) = Fixture::new("postgres").await else {
        eprintln!("SKIPPED two_processes_share_a_postgres_thread: no PostgreSQL server");
        return;
    };
    two_writers(f).await;
}
