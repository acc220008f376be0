//! Tests of what only the SQL layout has: append deltas, their bases surviving deletes,
//! copies and prunes, and a second process (a cold cache) continuing a thread. Run on SQLite
//! in memory and in a file, and on PostgreSQL when `WAYMARK_TEST_POSTGRES_URL` (or the default
//! local server) answers.

use waymark_domain::checkpoint::{
    ChannelVersion, Checkpoint, CheckpointMetadata, CheckpointPut, CheckpointQuery, PruneStrategy,
    TypedValue,
};
use waymark_domain::{ChannelName, CheckpointId, CheckpointNamespace, RunId, Stores, ThreadId};

use crate::connect::{ConnectOptions, connect_sql};
use crate::sql::SqlBackend;

/// A msgpack array of `n` strings of ~300 bytes (element `i` depends only on `i` and `salt`).
fn messages(n: usize, salt: u8) -> Vec<u8> {
    let mut out = Vec::new();
    rmp::encode::write_array_len(&mut out, n as u32).unwrap();
    for i in 0..n {
        let s = format!("{salt}:{i}:{}", "x".repeat(300));
        rmp::encode::write_str(&mut out, &s).unwrap();
    }
    out
}

fn ch() -> ChannelName {
    ChannelName::parse("messages").unwrap()
}

fn put(thread: &str, id: &str, parent: Option<&str>, value: Vec<u8>, run: &str) -> CheckpointPut {
    let mut cp = Checkpoint::empty(0);
    cp.id = CheckpointId::parse(id).unwrap();
    cp.channel_values.insert(ch(), TypedValue::msgpack(value));
    let version = ChannelVersion::Str(format!("v-{id}"));
    cp.channel_versions.insert(ch(), version.clone());
    let mut new_versions = indexmap::IndexMap::new();
    new_versions.insert(ch(), version);
    let mut meta = serde_json::Map::new();
    meta.insert("run_id".into(), serde_json::json!(run));
    CheckpointPut {
        thread_id: ThreadId::parse(thread).unwrap(),
        namespace: CheckpointNamespace::root(),
        parent_id: parent.map(|p| CheckpointId::parse(p).unwrap()),
        checkpoint: cp,
        metadata: CheckpointMetadata(meta),
        new_versions,
    }
}

fn id(i: usize) -> String {
    format!("cp-{i:04}")
}

async fn value_of(stores: &Stores, thread: &str, id: &str) -> Option<Vec<u8>> {
    stores
        .checkpoints
        .get_tuple(
            &ThreadId::parse(thread).unwrap(),
            &CheckpointNamespace::root(),
            Some(CheckpointId::parse(id).unwrap()),
        )
        .await
        .unwrap()
        .map(|t| t.checkpoint.channel_values[&ch()].bytes().to_vec())
}

/// Writes `steps` checkpoints whose list grows by two messages a step.
async fn grow(stores: &Stores, thread: &str, steps: usize) {
    for i in 0..steps {
        let parent = i.checked_sub(1).map(id);
        stores
            .checkpoints
            .put(put(
                thread,
                &id(i),
                parent.as_deref(),
                messages(2 * i + 2, 0),
                &format!("run-{}", i / 10),
            ))
            .await
            .unwrap();
    }
}

async fn payload_rows(b: &SqlBackend, thread: &str) -> (i64, i64) {
    let db = &b.shared.db;
    let row = crate::sql::db::one(
        &db.conn,
        db.kind.stmt(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n, \
             CAST(COALESCE(SUM(CASE WHEN base_version IS NULL THEN 0 ELSE 1 END), 0) AS BIGINT) AS d \
             FROM waymark_checkpoint_payloads WHERE thread_id = $1",
            vec![crate::sql::db::text(thread)],
        ),
        "test",
    )
    .await
    .unwrap()
    .unwrap();
    let r = crate::sql::db::Row::new(&row, db.kind, "test");
    (r.i64("n").unwrap(), r.i64("d").unwrap())
}

async fn deltas_read_back_and_survive_deletes(b: &SqlBackend) {
    let stores = b.stores();
    grow(&stores, "t", 60).await;
    let (rows, deltas) = payload_rows(b, "t").await;
    assert_eq!(rows, 60);
    assert!(
        deltas > 40,
        "most payloads are deltas, got {deltas} of {rows}"
    );
    for i in 0..60 {
        assert_eq!(
            value_of(&stores, "t", &id(i)).await.unwrap(),
            messages(2 * i + 2, 0),
            "step {i}"
        );
    }
    let summary = stores
        .checkpoints
        .summary(&ThreadId::parse("t").unwrap())
        .await
        .unwrap();
    let full: usize = (0..60).map(|i| messages(2 * i + 2, 0).len()).sum();
    assert!(
        (summary.stored_bytes.unwrap() as usize) * 4 < full,
        "stored {:?} vs whole copies {full}",
        summary.stored_bytes
    );

    // A fork from step 10 that diverges, then grows again.
    let fork = messages(30, 1);
    stores
        .checkpoints
        .put(put("t", "fork-0", Some(&id(10)), fork.clone(), "fork"))
        .await
        .unwrap();
    stores
        .checkpoints
        .put(put("t", "fork-1", Some("fork-0"), messages(32, 1), "fork"))
        .await
        .unwrap();
    assert_eq!(value_of(&stores, "t", "fork-0").await.unwrap(), fork);
    assert_eq!(
        value_of(&stores, "t", "fork-1").await.unwrap(),
        messages(32, 1)
    );

    // Deleting most checkpoints keeps the bases the survivors need.
    let doomed: Vec<CheckpointId> = (0..59)
        .filter(|i| i % 7 != 3)
        .map(|i| CheckpointId::parse(id(i)).unwrap())
        .collect();
    stores
        .checkpoints
        .delete_checkpoints(
            &ThreadId::parse("t").unwrap(),
            &CheckpointNamespace::root(),
            doomed,
        )
        .await
        .unwrap();
    for i in (0..60).filter(|i| i % 7 == 3 || *i == 59) {
        assert_eq!(
            value_of(&stores, "t", &id(i)).await.unwrap(),
            messages(2 * i + 2, 0),
            "step {i}"
        );
    }
    assert!(value_of(&stores, "t", &id(5)).await.is_none());

    // Deleting by run, then keep-latest.
    stores
        .checkpoints
        .delete_for_runs(vec![RunId::parse("run-5").unwrap()])
        .await
        .unwrap();
    assert!(value_of(&stores, "t", &id(59)).await.is_none());
    assert_eq!(
        value_of(&stores, "t", &id(45)).await.unwrap(),
        messages(92, 0)
    );
    stores
        .checkpoints
        .prune(
            vec![ThreadId::parse("t").unwrap()],
            PruneStrategy::KeepLatest,
        )
        .await
        .unwrap();
    let left = stores
        .checkpoints
        .list(&CheckpointQuery::thread(ThreadId::parse("t").unwrap()))
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    // "fork-1" sorts after "cp-...": the fork's head is the latest.
    let head = &left[0];
    assert_eq!(head.checkpoint.id.as_str(), "fork-1");
    assert_eq!(
        head.checkpoint.channel_values[&ch()].bytes(),
        messages(32, 1).as_slice()
    );
}

async fn copies_carry_their_bases(b: &SqlBackend) {
    let stores = b.stores();
    grow(&stores, "src", 30).await;
    stores
        .checkpoints
        .copy_thread(
            &ThreadId::parse("src").unwrap(),
            &ThreadId::parse("dst").unwrap(),
        )
        .await
        .unwrap();
    stores
        .checkpoints
        .delete_thread(&ThreadId::parse("src").unwrap())
        .await
        .unwrap();
    for i in 0..30 {
        assert_eq!(
            value_of(&stores, "dst", &id(i)).await.unwrap(),
            messages(2 * i + 2, 0),
            "step {i}"
        );
    }
    // The copy keeps growing with deltas over the copied rows.
    stores
        .checkpoints
        .put(put("dst", &id(30), Some(&id(29)), messages(62, 0), "r"))
        .await
        .unwrap();
    assert_eq!(
        value_of(&stores, "dst", &id(30)).await.unwrap(),
        messages(62, 0)
    );
}

async fn a_cold_cache_continues_a_thread(b: &SqlBackend, other: &SqlBackend) {
    grow(&b.stores(), "shared", 20).await;
    let stores = other.stores();
    for i in 20..40 {
        let parent = id(i - 1);
        stores
            .checkpoints
            .put(put(
                "shared",
                &id(i),
                Some(&parent),
                messages(2 * i + 2, 0),
                "r",
            ))
            .await
            .unwrap();
    }
    for i in 0..40 {
        assert_eq!(
            value_of(&b.stores(), "shared", &id(i)).await.unwrap(),
            messages(2 * i + 2, 0),
            "step {i}"
        );
    }
    // The first backend's cache still names step 19 as its base; it must not be misled by
    // rows written elsewhere, nor by a delete of its base made elsewhere.
    stores
        .checkpoints
        .delete_checkpoints(
            &ThreadId::parse("shared").unwrap(),
            &CheckpointNamespace::root(),
            (0..40)
                .map(|i| CheckpointId::parse(id(i)).unwrap())
                .collect(),
        )
        .await
        .unwrap();
    b.stores()
        .checkpoints
        .put(put("shared", "late", None, messages(42, 0), "r"))
        .await
        .unwrap();
    assert_eq!(
        value_of(&b.stores(), "shared", "late").await.unwrap(),
        messages(42, 0)
    );
}

/// What this process wrote, deleted by another process, is written again: a later put that
/// carries the value unchanged (the writer skips values it knows are stored) and a put whose
/// value extends it (the writer would store a delta over it).
async fn payloads_deleted_elsewhere_are_written_again(b: &SqlBackend, other: &SqlBackend) {
    let thread = ThreadId::parse("again").unwrap();
    let cps = b.stores().checkpoints;
    cps.put(put("again", "a-1", None, messages(3, 5), "r"))
        .await
        .unwrap();
    other
        .stores()
        .checkpoints
        .delete_thread(&thread)
        .await
        .unwrap();
    // Unchanged: the same channel version as `a-1`.
    let mut same = put("again", "a-2", None, messages(3, 5), "r");
    same.checkpoint
        .channel_versions
        .insert(ch(), ChannelVersion::Str("v-a-1".into()));
    same.new_versions.clear();
    cps.put(same).await.unwrap();
    assert_eq!(
        value_of(&b.stores(), "again", "a-2").await.unwrap(),
        messages(3, 5)
    );
    other
        .stores()
        .checkpoints
        .delete_thread(&thread)
        .await
        .unwrap();
    // Extending: its delta base is gone.
    cps.put(put("again", "a-3", None, messages(4, 5), "r"))
        .await
        .unwrap();
    assert_eq!(
        value_of(&b.stores(), "again", "a-3").await.unwrap(),
        messages(4, 5)
    );
    assert_eq!(payload_rows(b, "again").await, (1, 0));
}

/// The payload read probes the primary key once per key and delta, whatever the thread
/// holds: never a scan of the payload table.
async fn payload_reads_probe_the_primary_key(b: &SqlBackend) {
    grow(&b.stores(), "plan", 70).await;
    let keys = [("messages".to_owned(), "v-cp-0069".to_owned())];
    let keys: Vec<&(String, String)> = keys.iter().collect();
    let guard = CheckpointId::parse(id(69)).unwrap();
    let mut q = super::read::payload_query(
        crate::sql::Kind::Sqlite,
        &ThreadId::parse("plan").unwrap(),
        &CheckpointNamespace::root(),
        &keys,
        Some(&guard),
    );
    q.prepend("EXPLAIN QUERY PLAN ");
    let rows = crate::sql::db::all(&b.shared.db.conn, q.build(crate::sql::Kind::Sqlite), "test")
        .await
        .unwrap();
    let plan: Vec<String> = rows
        .iter()
        .map(|r| {
            crate::sql::db::Row::new(r, crate::sql::Kind::Sqlite, "test")
                .text("detail")
                .unwrap()
        })
        .collect();
    eprintln!("payload query plan:\n  {}", plan.join("\n  "));
    assert!(
        plan.iter().any(|d| d.starts_with("SEARCH p USING")),
        "{plan:?}"
    );
    assert!(!plan.iter().any(|d| d.starts_with("SCAN p")), "{plan:?}");
}

/// Another process deletes a thread and writes it again under the same ids and versions but
/// other values: this process then reads the new values, not those it cached, and a value
/// that extends what it wrote before is not stored as a delta over the replaced row.
async fn a_thread_rewritten_elsewhere_is_not_taken_from_the_cache(
    b: &SqlBackend,
    other: &SqlBackend,
) {
    let thread = ThreadId::parse("rewritten").unwrap();
    let root = CheckpointNamespace::root();
    let cps = b.stores().checkpoints;
    cps.put(put("rewritten", "r-1", None, messages(3, 1), "r"))
        .await
        .unwrap();
    let latest = cps.get_tuple(&thread, &root, None).await.unwrap().unwrap();
    assert_eq!(
        latest.checkpoint.channel_values[&ch()].bytes(),
        messages(3, 1)
    );
    let elsewhere = other.stores().checkpoints;
    elsewhere.delete_thread(&thread).await.unwrap();
    elsewhere
        .put(put("rewritten", "r-1", None, messages(3, 2), "r"))
        .await
        .unwrap();
    let latest = cps.get_tuple(&thread, &root, None).await.unwrap().unwrap();
    assert_eq!(
        latest.checkpoint.channel_values[&ch()].bytes(),
        messages(3, 2)
    );
    cps.put(put("rewritten", "r-2", Some("r-1"), messages(5, 1), "r"))
        .await
        .unwrap();
    for stores in [b.stores(), other.stores()] {
        assert_eq!(
            value_of(&stores, "rewritten", "r-2").await.unwrap(),
            messages(5, 1)
        );
        assert_eq!(
            value_of(&stores, "rewritten", "r-1").await.unwrap(),
            messages(3, 2)
        );
    }
}

/// The latest checkpoint, read by the process that wrote it, is served from the delta cache
/// (its rows are checked, not read): a value changed behind the store's back under the same
/// key and nonce shows only to a second process, which has no cache.
async fn the_latest_value_written_here_is_read_from_the_cache(b: &SqlBackend, other: &SqlBackend) {
    let thread = ThreadId::parse("cached").unwrap();
    let root = CheckpointNamespace::root();
    grow(&b.stores(), "cached", 5).await;
    let db = &b.shared.db;
    crate::sql::db::exec(
        &db.conn,
        db.kind.stmt(
            "UPDATE waymark_checkpoint_payloads SET data = $1 WHERE thread_id = $2 AND version = $3",
            vec![
                crate::sql::db::bytes(messages(1, 7)),
                crate::sql::db::text("cached"),
                crate::sql::db::text(format!("v-{}", id(4))),
            ],
        ),
        "test",
    )
    .await
    .unwrap();
    let read = |stores: Stores| {
        let (thread, root) = (thread.clone(), root.clone());
        async move {
            stores
                .checkpoints
                .get_tuple(&thread, &root, None)
                .await
                .unwrap()
                .unwrap()
                .checkpoint
                .channel_values[&ch()]
                .bytes()
                .to_vec()
        }
    };
    assert_eq!(
        read(b.stores()).await,
        messages(10, 0),
        "served from the cache"
    );
    assert_ne!(
        read(other.stores()).await,
        messages(10, 0),
        "read from the rows"
    );
}

fn options() -> ConnectOptions {
    ConnectOptions {
        pool_size: 4,
        ..ConnectOptions::default()
    }
}

async fn open(url: &str, schema: Option<&str>) -> Option<SqlBackend> {
    let o = ConnectOptions {
        postgres_schema: schema.map(str::to_owned),
        ..options()
    };
    let b = match tokio::time::timeout(std::time::Duration::from_secs(5), connect_sql(url, &o))
        .await
    {
        Ok(Ok(b)) => b,
        _ if schema.is_some() && std::env::var("WAYMARK_REQUIRE_POSTGRES").is_err() => return None,
        other => panic!("connecting to {url}: {:?}", other.map(|r| r.err())),
    };
    b.migrate().await.unwrap();
    Some(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_memory() {
    let b = open("sqlite::memory:", None).await.unwrap();
    deltas_read_back_and_survive_deletes(&b).await;
    copies_carry_their_bases(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file() {
    let path =
        std::env::temp_dir().join(format!("waymark-unit-{}.db", uuid::Uuid::new_v4().simple()));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let b = open(&url, None).await.unwrap();
    let other = open(&url, None).await.unwrap();
    deltas_read_back_and_survive_deletes(&b).await;
    copies_carry_their_bases(&b).await;
    a_cold_cache_continues_a_thread(&b, &other).await;
    payloads_deleted_elsewhere_are_written_again(&b, &other).await;
    a_thread_rewritten_elsewhere_is_not_taken_from_the_cache(&b, &other).await;
    the_latest_value_written_here_is_read_from_the_cache(&b, &other).await;
    payload_reads_probe_the_primary_key(&b).await;
    b.close().await.unwrap();
    other.close().await.unwrap();
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", path.display()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let url = std::env::var("WAYMARK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("wm_unit_{}", uuid::Uuid::new_v4().simple());
    let Some(b) = open(&url, Some(&schema)).await else {
        eprintln!("SKIPPED sql::checkpoints::tests::postgres: no PostgreSQL server at {url}");
        return;
    };
    let other = open(&url, Some(&schema)).await.unwrap();
    // The schema is dropped whether the body passes or panics.
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
        deltas_read_back_and_survive_deletes(&b).await;
        copies_carry_their_bases(&b).await;
        a_cold_cache_continues_a_thread(&b, &other).await;
        payloads_deleted_elsewhere_are_written_again(&b, &other).await;
        a_thread_rewritten_elsewhere_is_not_taken_from_the_cache(&b, &other).await;
        the_latest_value_written_here_is_read_from_the_cache(&b, &other).await;
    }))
    .await;
    other.close().await.unwrap();
    b.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
    b.close().await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
