//! Interop with real LangGraph: databases written by Python's `SqliteSaver` and
//! `PostgresSaver` (fixtures made by `tests/python/generate_fixtures.py`) read through Waymark's
//! layout stores, byte-stable payload re-encoding, and databases written by Waymark for
//! `tests/python/read_back.py` to read and resume.
//!
//! Fixtures: `tests/fixtures/langgraph/` (committed), or the directory in
//! `WAYMARK_LANGGRAPH_FIXTURES` (fresh ones from `scripts/test-langgraph`). With
//! `WAYMARK_LANGGRAPH_PG_SCHEMA` set, the PostgreSQL test reads that live schema written by
//! Python instead of loading `postgres/tables.json` into a fresh one. With
//! `WAYMARK_LANGGRAPH_OUT` set, the Waymark-written SQLite file and PostgreSQL schema are kept
//! there (with `rust_expected.json`) for `read_back.py`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use sea_orm::sqlx::{self, Row};
use serde_json::{Value, json};
use waymark_adapters::codec::{
    Message, Payload, compose_checkpoint_blob, decode, decode_messages, decompose_checkpoint_blob,
    encode, encode_messages,
};
use waymark_adapters::postgres_layout::{LangGraphPostgresStore, PostgresLayoutOptions};
use waymark_adapters::sqlite_layout::LangGraphSqliteStore;
use waymark_domain::checkpoint::{
    ChannelVersion, Checkpoint, CheckpointMetadata, CheckpointPut, CheckpointQuery,
    CheckpointRepository, CheckpointTuple, TypedValue, WriteBatch, is_special_write_channel,
};
use waymark_domain::{ChannelName, CheckpointId, CheckpointNamespace, TaskId, ThreadId};
use waymark_tests::backends::langgraph::{
    create_schema, drop_schema, fresh_postgres_store, schema_options,
};

fn fixture_dir() -> PathBuf {
    std::env::var_os("WAYMARK_LANGGRAPH_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/langgraph"))
}

fn load_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn typed_json(v: &TypedValue) -> Value {
    json!({"type": v.type_tag(), "hex": hex(v.bytes())})
}

fn versions_json(v: &IndexMap<ChannelName, ChannelVersion>) -> Value {
    serde_json::to_value(v).expect("versions serialize")
}

/// The message fields `generate_fixtures.py` records, from Waymark's own decoding.
fn message_views(value: &TypedValue) -> Value {
    let messages = decode_messages(value).expect("messages decode");
    Value::Array(
        messages
            .iter()
            .map(|m| {
                let full = m.to_json();
                let mut view = serde_json::Map::new();
                for field in [
                    "type",
                    "content",
                    "id",
                    "name",
                    "tool_calls",
                    "tool_call_id",
                    "usage_metadata",
                ] {
                    view.insert(
                        field.to_owned(),
                        full.get(field).cloned().unwrap_or(Value::Null),
                    );
                }
                Value::Object(view)
            })
            .collect(),
    )
}

/// A tuple in the shape `generate_fixtures.py` / `read_back.py` dump.
fn tuple_json(t: &CheckpointTuple) -> Value {
    let cp = &t.checkpoint;
    let messages = cp
        .channel_values
        .iter()
        .find(|(k, _)| k.as_str() == "messages")
        .map(|(_, v)| v)
        .filter(|v| v.type_tag() == TypedValue::MSGPACK)
        .map(message_views)
        .filter(|m| m.as_array().is_some_and(|a| !a.is_empty()))
        .unwrap_or(Value::Null);
    json!({
        "thread_id": t.thread_id.as_str(),
        "checkpoint_ns": t.namespace.as_str(),
        "checkpoint_id": cp.id.as_str(),
        "parent_checkpoint_id": t.parent_id.as_ref().map(|p| p.as_str()),
        "checkpoint": {
            "v": cp.v,
            "id": cp.id.as_str(),
            "ts": cp.ts,
            "channel_values": cp.channel_values.iter().map(|(k, v)| (k.to_string(), typed_json(v))).collect::<serde_json::Map<_, _>>(),
            "channel_versions": versions_json(&cp.channel_versions),
            "versions_seen": cp.versions_seen.iter().map(|(k, v)| (k.clone(), versions_json(v))).collect::<serde_json::Map<_, _>>(),
            "updated_channels": cp.updated_channels,
            "extra": cp.extra.iter().map(|(k, v)| (k.clone(), typed_json(v))).collect::<serde_json::Map<_, _>>(),
        },
        "metadata": Value::Object(t.metadata.0.clone()),
        "pending_writes": t.pending_writes.iter().map(|w| json!({
            "task_id": w.task_id.as_str(), "channel": w.channel.as_str(), "value": typed_json(&w.value)
        })).collect::<Vec<_>>(),
        "messages": messages,
        "write_messages": t.pending_writes.iter().map(|w| {
            if w.channel.as_str() == "messages" && w.value.type_tag() == TypedValue::MSGPACK {
                let m = message_views(&w.value);
                if m.as_array().is_some_and(|a| !a.is_empty()) { m } else { Value::Null }
            } else { Value::Null }
        }).collect::<Vec<_>>(),
    })
}

/// Compares what Waymark returned with what LangGraph returned; counts what was compared.
#[derive(Default, Debug)]
struct Tally {
    checkpoints: usize,
    writes: usize,
    messages: usize,
}

fn compare_tuple(expected: &Value, got: &CheckpointTuple, tally: &mut Tally, ctx: &str) {
    let got = tuple_json(got);
    let id = expected["checkpoint_id"].as_str().unwrap_or("?");
    for key in [
        "thread_id",
        "checkpoint_ns",
        "checkpoint_id",
        "parent_checkpoint_id",
        "metadata",
        "pending_writes",
        "messages",
        "write_messages",
    ] {
        assert_eq!(
            got[key], expected[key],
            "{ctx}: checkpoint {id}: {key} differs"
        );
    }
    for key in [
        "v",
        "id",
        "ts",
        "channel_values",
        "channel_versions",
        "versions_seen",
        "updated_channels",
        "extra",
    ] {
        assert_eq!(
            got["checkpoint"][key], expected["checkpoint"][key],
            "{ctx}: checkpoint {id}: checkpoint.{key} differs"
        );
    }
    tally.checkpoints += 1;
    tally.writes += expected["pending_writes"].as_array().map_or(0, Vec::len);
    tally.messages += expected["messages"].as_array().map_or(0, Vec::len)
        + expected["write_messages"].as_array().map_or(0, |w| {
            w.iter().filter_map(Value::as_array).map(Vec::len).sum()
        });
}

fn thread(s: &str) -> ThreadId {
    ThreadId::parse(s).expect("thread id")
}

fn ns(s: &str) -> CheckpointNamespace {
    CheckpointNamespace::parse(s).expect("namespace")
}

/// Everything `expected.json` records, asked of `store`.
async fn compare_with_langgraph(
    store: &dyn CheckpointRepository,
    expected: &Value,
    ctx: &str,
) -> Tally {
    let mut tally = Tally::default();
    let all = store
        .list(&CheckpointQuery::default())
        .await
        .expect("list all");
    let want = expected["tuples"].as_array().expect("tuples");
    assert_eq!(all.len(), want.len(), "{ctx}: number of checkpoints");
    for (w, g) in want.iter().zip(&all) {
        compare_tuple(w, g, &mut tally, ctx);
    }
    // get_tuple without an id: the latest of each (thread, namespace).
    for (key, id) in expected["latest"].as_object().expect("latest") {
        let (t, n) = key.split_once('|').expect("thread|ns");
        let got = store
            .get_tuple(&thread(t), &ns(n), None)
            .await
            .expect("get_tuple")
            .expect("a tuple");
        assert_eq!(
            got.checkpoint.id.as_str(),
            id.as_str().unwrap(),
            "{ctx}: latest of {key}"
        );
        let w = want
            .iter()
            .find(|w| w["checkpoint_id"] == *id)
            .expect("latest is listed");
        compare_tuple(w, &got, &mut Tally::default(), ctx);
    }
    // get_state_history = list of the root namespace.
    let history = store
        .list(&CheckpointQuery::thread_ns(thread("t-main"), ns("")))
        .await
        .expect("history");
    let want_history = expected["history"].as_array().expect("history");
    assert_eq!(history.len(), want_history.len(), "{ctx}: history length");
    for (w, g) in want_history.iter().zip(&history) {
        assert_eq!(
            g.checkpoint.id.as_str(),
            w["checkpoint_id"].as_str().unwrap(),
            "{ctx}: history order"
        );
        assert_eq!(
            Value::Object(g.metadata.0.clone()),
            w["metadata"],
            "{ctx}: history metadata"
        );
    }
    // Metadata filters, with this layout's own semantics.
    for case in expected["filters"].as_array().expect("filters") {
        let filter = case["filter"].as_object().expect("filter object").clone();
        let got = store
            .list(&CheckpointQuery {
                filter,
                ..CheckpointQuery::default()
            })
            .await;
        match case.get("ids") {
            Some(ids) => {
                let got: Vec<String> = got
                    .expect("filtered list")
                    .iter()
                    .map(|t| t.checkpoint.id.to_string())
                    .collect();
                let ids: Vec<String> = ids
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect();
                assert_eq!(got, ids, "{ctx}: filter {}", case["filter"]);
            }
            None => assert!(got.is_err(), "{ctx}: filter {} should fail", case["filter"]),
        }
    }
    // before + limit over all namespaces of one thread.
    let page = &expected["page"];
    let got = store
        .list(&CheckpointQuery {
            thread_id: Some(thread(page["thread_id"].as_str().unwrap())),
            before: Some(CheckpointId::parse(page["before"].as_str().unwrap()).unwrap()),
            limit: Some(page["limit"].as_u64().unwrap() as u32),
            ..CheckpointQuery::default()
        })
        .await
        .expect("page");
    let ids: Vec<&str> = got.iter().map(|t| t.checkpoint.id.as_str()).collect();
    let want_ids: Vec<&str> = page["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids, want_ids, "{ctx}: before/limit page");
    tally
}

/// A copy of the LangGraph-written SQLite fixture in a temporary directory (WAL files are
/// created next to it, and the committed file must stay untouched).
fn sqlite_fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("checkpoints.db");
    std::fs::copy(fixture_dir().join("sqlite/checkpoints.db"), &path).expect("copy fixture");
    (dir, path)
}

#[tokio::test]
async fn sqlite_reads_what_langgraph_wrote() {
    let (_dir, path) = sqlite_fixture_copy();
    let store = LangGraphSqliteStore::open(&path).await.expect("open");
    let expected = load_json(&fixture_dir().join("sqlite/expected.json"));
    let tally = compare_with_langgraph(&store, &expected, "sqlite").await;
    eprintln!(
        "sqlite: {} checkpoints, {} pending writes, {} messages equal to LangGraph's answers",
        tally.checkpoints, tally.writes, tally.messages
    );
    assert!(
        tally.checkpoints > 10 && tally.writes > 10 && tally.messages > 10,
        "{tally:?}"
    );
}

/// Opens the LangGraph-written PostgreSQL data: the live schema when one is named, else the
/// committed table dump loaded into a fresh schema. `None` when no server answers.
async fn postgres_fixture() -> Option<(LangGraphPostgresStore, Option<String>)> {
    if let Ok(schema) = std::env::var("WAYMARK_LANGGRAPH_PG_SCHEMA") {
        let store = LangGraphPostgresStore::connect_with(
            schema_options(&schema),
            PostgresLayoutOptions::default(),
        )
        .await
        .expect("open the live LangGraph schema");
        return Some((store, None));
    }
    let (store, schema) = fresh_postgres_store().await?;
    let tables = load_json(&fixture_dir().join("postgres/tables.json"));
    let pool = store.pool();
    let versions: Vec<i64> = tables["checkpoint_migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(
        versions,
        (0..=9).collect::<Vec<_>>(),
        "LangGraph recorded migrations 0-9"
    );
    for r in tables["checkpoints"].as_array().unwrap() {
        sqlx::query("INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)")
            .bind(r["thread_id"].as_str()).bind(r["checkpoint_ns"].as_str()).bind(r["checkpoint_id"].as_str())
            .bind(r["parent_checkpoint_id"].as_str()).bind(r["type"].as_str())
            .bind(r["checkpoint"].as_str()).bind(r["metadata"].as_str())
            .execute(pool).await.expect("load checkpoints");
    }
    for r in tables["checkpoint_blobs"].as_array().unwrap() {
        sqlx::query("INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob) VALUES ($1, $2, $3, $4, $5, decode($6, 'hex'))")
            .bind(r["thread_id"].as_str()).bind(r["checkpoint_ns"].as_str()).bind(r["channel"].as_str())
            .bind(r["version"].as_str()).bind(r["type"].as_str()).bind(r["blob"].as_str())
            .execute(pool).await.expect("load blobs");
    }
    for r in tables["checkpoint_writes"].as_array().unwrap() {
        sqlx::query("INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, decode($9, 'hex'))")
            .bind(r["thread_id"].as_str()).bind(r["checkpoint_ns"].as_str()).bind(r["checkpoint_id"].as_str())
            .bind(r["task_id"].as_str()).bind(r["task_path"].as_str()).bind(r["idx"].as_i64().map(|i| i as i32))
            .bind(r["channel"].as_str()).bind(r["type"].as_str()).bind(r["blob"].as_str())
            .execute(pool).await.expect("load writes");
    }
    Some((store, Some(schema)))
}

#[tokio::test]
async fn postgres_reads_what_langgraph_wrote() {
    let Some((store, schema)) = postgres_fixture().await else {
        eprintln!("SKIPPED postgres_reads_what_langgraph_wrote: PostgreSQL unavailable");
        return;
    };
    let expected = load_json(&fixture_dir().join("postgres/expected.json"));
    let migrations: Vec<i32> = sqlx::query_scalar("SELECT v FROM checkpoint_migrations ORDER BY v")
        .fetch_all(store.pool())
        .await
        .expect("migrations");
    let tally = compare_with_langgraph(&store, &expected, "postgres").await;
    store.pool().close().await;
    if let Some(schema) = schema {
        drop_schema(&schema).await;
    }
    assert_eq!(migrations, (0..=9).collect::<Vec<_>>());
    eprintln!(
        "postgres: {} checkpoints, {} pending writes, {} messages equal to LangGraph's answers",
        tally.checkpoints, tally.writes, tally.messages
    );
    assert!(
        tally.checkpoints > 10 && tally.writes > 10 && tally.messages > 10,
        "{tally:?}"
    );
}

/// Decodes and re-encodes one payload; returns whether it was a structured (msgpack) one.
fn assert_reencodes(value: &TypedValue, what: &str) -> bool {
    let payload = decode(value).unwrap_or_else(|e| panic!("{what}: decode: {e}"));
    assert_eq!(
        &encode(&payload),
        value,
        "{what}: re-encoding changed the payload"
    );
    matches!(payload, Payload::Msgpack(_))
}

#[tokio::test]
async fn every_langgraph_payload_reencodes_byte_identically() {
    let mut count = 0usize;
    // SQLite: whole checkpoint blobs, every embedded channel value, every write value.
    let (_dir, path) = sqlite_fixture_copy();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open");
    for row in sqlx::query("SELECT checkpoint_id, type, checkpoint FROM checkpoints")
        .fetch_all(&pool)
        .await
        .unwrap()
    {
        let id: String = row.get(0);
        let tag: String = row.get(1);
        let blob: Vec<u8> = row.get(2);
        assert_eq!(tag, "msgpack");
        let cp: Checkpoint =
            decompose_checkpoint_blob(&blob).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(
            compose_checkpoint_blob(&cp).expect("compose"),
            blob,
            "{id}: blob recomposed"
        );
        count += 1;
        for (channel, value) in &cp.channel_values {
            assert_reencodes(value, &format!("{id}/{channel}"));
            count += 1;
        }
    }
    for row in sqlx::query("SELECT checkpoint_id, task_id, idx, type, value FROM writes")
        .fetch_all(&pool)
        .await
        .unwrap()
    {
        let what = format!(
            "write {}/{}/{}",
            row.get::<String, _>(0),
            row.get::<String, _>(1),
            row.get::<i64, _>(2)
        );
        let value = TypedValue::new(row.get::<String, _>(3), row.get::<Vec<u8>, _>(4)).unwrap();
        assert_reencodes(&value, &what);
        count += 1;
    }
    pool.close().await;
    // PostgreSQL: every blob and write payload LangGraph stored.
    let tables = load_json(&fixture_dir().join("postgres/tables.json"));
    for (table, column) in [("checkpoint_blobs", "blob"), ("checkpoint_writes", "blob")] {
        for r in tables[table].as_array().unwrap() {
            let tag = r["type"].as_str().unwrap();
            if tag == "empty" {
                continue;
            }
            let value = TypedValue::new(tag, unhex(r[column].as_str().unwrap_or(""))).unwrap();
            assert_reencodes(&value, &format!("{table} {}", r["channel"]));
            count += 1;
        }
    }
    eprintln!("{count} LangGraph payloads re-encoded byte-identically");
    assert!(count > 100, "only {count} payloads");
}

// ---------------------------------------------------------------------------------------------
// Waymark writes, LangGraph reads (read_back.py)
// ---------------------------------------------------------------------------------------------

/// Copies `tuples` (oldest first) into `store` through the port: put, then put_writes per
/// task, reproducing every write index.
async fn copy_through_port(store: &dyn CheckpointRepository, tuples: &[CheckpointTuple]) {
    for t in tuples.iter().rev() {
        store
            .put(CheckpointPut {
                thread_id: t.thread_id.clone(),
                namespace: t.namespace.clone(),
                parent_id: t.parent_id.clone(),
                checkpoint: t.checkpoint.clone(),
                metadata: t.metadata.clone(),
                new_versions: t.checkpoint.channel_versions.clone(),
            })
            .await
            .expect("put");
        let mut by_task: BTreeMap<(String, String), Vec<_>> = BTreeMap::new();
        for w in &t.pending_writes {
            by_task
                .entry((w.task_id.to_string(), w.task_path.clone()))
                .or_default()
                .push(w.clone());
        }
        for ((task, path), writes) in by_task {
            // A plain channel's index is its position in the call, a special channel's index
            // is fixed: put each plain write at its index and fill the gaps with the specials.
            let mut slots: Vec<Option<_>> = vec![None; writes.len()];
            let mut specials = Vec::new();
            for w in writes {
                if is_special_write_channel(w.channel.as_str()) {
                    specials.push(w);
                } else {
                    let at = usize::try_from(w.idx).expect("plain index");
                    assert!(at < slots.len(), "plain write index {at} has no slot");
                    slots[at] = Some(w);
                }
            }
            let mut specials = specials.into_iter();
            let writes: Vec<_> = slots
                .into_iter()
                .map(|s| s.or_else(|| specials.next()).expect("a write per slot"))
                .collect();
            let batch = WriteBatch {
                target: t.reference(),
                task_id: TaskId::parse(task).unwrap(),
                task_path: path,
                writes: writes
                    .iter()
                    .map(|w| (w.channel.clone(), w.value.clone()))
                    .collect(),
            };
            let idx: Vec<i64> = batch.to_pending_writes().iter().map(|w| w.idx).collect();
            let want: Vec<i64> = writes.iter().map(|w| w.idx).collect();
            assert_eq!(
                idx, want,
                "write indices reproduce for task {}",
                batch.task_id
            );
            store.put_writes(batch).await.expect("put_writes");
        }
    }
}

/// A checkpoint Waymark authors itself: the echo graph's input checkpoint (pregel's layout:
/// the start and trigger channels at version 2, `__start__` seen at version 1) holding a
/// message Waymark encoded.
fn rust_echo_put() -> (CheckpointPut, TypedValue) {
    let ch = |s: &str| ChannelName::parse(s).unwrap();
    let v1 = ChannelVersion::next(None, 0.25);
    let v2 = ChannelVersion::next(Some(&v1), 0.5);
    let messages =
        encode_messages(&[Message::human("hello from rust ✓").with_id("h-rust")]).expect("encode");
    let mut cp = Checkpoint::empty(0);
    cp.channel_values.insert(ch("messages"), messages.clone());
    cp.channel_values
        .insert(ch("branch:to:echo"), TypedValue::null());
    for c in ["__start__", "messages", "branch:to:echo"] {
        cp.channel_versions.insert(ch(c), v2.clone());
    }
    cp.versions_seen.insert("__input__".into(), IndexMap::new());
    cp.versions_seen.insert(
        "__start__".into(),
        [(ch("__start__"), v1)].into_iter().collect(),
    );
    cp.updated_channels = Some(vec![ch("branch:to:echo"), ch("messages")]);
    let metadata: CheckpointMetadata = serde_json::from_value(json!({
        "source": "loop", "step": 0, "parents": {}, "written_by": "waymark", "run_id": "run-rust"
    }))
    .unwrap();
    (
        CheckpointPut {
            thread_id: thread("t-rust-echo"),
            namespace: ns(""),
            parent_id: None,
            new_versions: cp.channel_versions.clone(),
            checkpoint: cp,
            metadata,
        },
        messages,
    )
}

/// Writes the LangGraph fixture's checkpoints plus Waymark's own echo checkpoint into `store`,
/// reads everything back through the port, and returns what `read_back.py` must see.
async fn write_for_langgraph(
    store: &dyn CheckpointRepository,
    source: &dyn CheckpointRepository,
    ctx: &str,
) -> Value {
    let tuples = source
        .list(&CheckpointQuery::default())
        .await
        .expect("source list");
    copy_through_port(store, &tuples).await;
    let (put, messages) = rust_echo_put();
    store.put(put).await.expect("put echo");
    let back = store
        .list(&CheckpointQuery::default())
        .await
        .expect("list back");
    assert_eq!(
        back.len(),
        tuples.len() + 1,
        "{ctx}: every checkpoint written"
    );
    let mut tally = Tally::default();
    for original in &tuples {
        let got = back
            .iter()
            .find(|t| t.reference() == original.reference())
            .expect("copied");
        compare_tuple(&tuple_json(original), got, &mut tally, ctx);
    }
    let echo = back
        .iter()
        .find(|t| t.thread_id.as_str() == "t-rust-echo")
        .expect("echo");
    let echo_messages = echo
        .checkpoint
        .channel_values
        .get(&ChannelName::parse("messages").unwrap());
    assert_eq!(echo_messages, Some(&messages));
    let interrupted = tuples
        .iter()
        .find(|t| {
            t.thread_id.as_str() == "t-main"
                && t.pending_writes
                    .iter()
                    .any(|w| w.channel.as_str() == "__interrupt__")
        })
        .expect("an interrupted checkpoint");
    eprintln!(
        "{ctx}: wrote {} checkpoints and {} writes through the port; all read back equal",
        tally.checkpoints + 1,
        tally.writes
    );
    json!({
        "tuples": back.iter().map(tuple_json).collect::<Vec<_>>(),
        "resume": {
            "interrupted": {"thread_id": "t-main", "checkpoint_id": interrupted.checkpoint.id.as_str()},
            "echo": {"thread_id": "t-rust-echo", "text": "hello from rust ✓"}
        }
    })
}

/// Every row Waymark wrote for a checkpoint or write that Python also wrote has the same
/// bytes: checkpoint blob, metadata JSON, parent, task path, values (spec §3.3, §3.4).
async fn same_sqlite_rows(python: &Path, rust: &Path) -> usize {
    let py = sqlx::SqlitePool::connect(&format!("sqlite://{}", python.display()))
        .await
        .unwrap();
    let rs = sqlx::SqlitePool::connect(&format!("sqlite://{}", rust.display()))
        .await
        .unwrap();
    let mut same = 0;
    for (sql, what) in [
        (
            "SELECT thread_id || '|' || checkpoint_ns || '|' || checkpoint_id, \
             coalesce(parent_checkpoint_id, '<null>'), type, checkpoint, metadata, typeof(metadata) \
             FROM checkpoints ORDER BY 1",
            "checkpoint",
        ),
        (
            "SELECT thread_id || '|' || checkpoint_ns || '|' || checkpoint_id || '|' || task_id || '|' || idx, \
             task_path, channel, type, value, typeof(value) FROM writes ORDER BY 1",
            "write",
        ),
    ] {
        let a = sqlx::query(sql).fetch_all(&py).await.unwrap();
        let b = sqlx::query(sql).fetch_all(&rs).await.unwrap();
        let rows = |rows: &[sqlx::sqlite::SqliteRow]| -> BTreeMap<String, Vec<Vec<u8>>> {
            rows.iter()
                .map(|r| {
                    let key: String = r.get(0);
                    let cols = (1..6)
                        .map(|i| {
                            r.try_get::<Vec<u8>, _>(i)
                                .or_else(|_| r.try_get::<String, _>(i).map(String::into_bytes))
                                .unwrap_or_default()
                        })
                        .collect();
                    (key, cols)
                })
                .collect()
        };
        let (a, b) = (rows(&a), rows(&b));
        for (key, cols) in &a {
            assert_eq!(
                b.get(key),
                Some(cols),
                "{what} {key}: Waymark's row differs from SqliteSaver's"
            );
            same += 1;
        }
    }
    py.close().await;
    rs.close().await;
    same
}

#[tokio::test]
async fn waymark_writes_databases_langgraph_can_read() {
    let out = std::env::var_os("WAYMARK_LANGGRAPH_OUT").map(PathBuf::from);
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = out.clone().unwrap_or_else(|| scratch.path().to_path_buf());
    std::fs::create_dir_all(&dir).expect("out dir");
    let (_fx, fixture_path) = sqlite_fixture_copy();
    let source = LangGraphSqliteStore::open(&fixture_path)
        .await
        .expect("fixture");

    let sqlite_path = dir.join("rust_written.db");
    waymark_tests::backends::sql::remove_sqlite_files(&sqlite_path);
    let target = LangGraphSqliteStore::open(&sqlite_path)
        .await
        .expect("target");
    let sqlite_expected = write_for_langgraph(&target, &source, "sqlite").await;
    target.pool().close().await;
    let same = same_sqlite_rows(&fixture_path, &sqlite_path).await;
    eprintln!("sqlite: {same} Waymark-written rows byte-identical to SqliteSaver's");
    std::fs::write(
        dir.join("rust_expected_sqlite.json"),
        serde_json::to_vec_pretty(&sqlite_expected).unwrap(),
    )
    .unwrap();

    let schema = format!("lg_rust_{}", uuid::Uuid::new_v4().simple());
    if create_schema(&schema).await.is_none() {
        eprintln!("SKIPPED the PostgreSQL half: PostgreSQL unavailable");
        return;
    }
    let pg = LangGraphPostgresStore::connect_with(
        schema_options(&schema),
        PostgresLayoutOptions::default(),
    )
    .await
    .expect("pg target");
    let pg_expected = write_for_langgraph(&pg, &source, "postgres").await;
    pg.pool().close().await;
    std::fs::write(
        dir.join("rust_expected_postgres.json"),
        serde_json::to_vec_pretty(&pg_expected).unwrap(),
    )
    .unwrap();
    if out.is_some() {
        std::fs::write(dir.join("rust_postgres_schema.txt"), &schema).unwrap();
    } else {
        drop_schema(&schema).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Setup parity
// ---------------------------------------------------------------------------------------------

/// `PRAGMA table_info` of both tables, per column: what setup created.
async fn sqlite_schema(path: &Path) -> Vec<String> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let mut out = Vec::new();
    for table in ["checkpoints", "writes"] {
        for r in sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA table_info({table})")))
            .fetch_all(&pool)
            .await
            .unwrap()
        {
            out.push(format!(
                "{table}.{} {} notnull={} default={:?} pk={}",
                r.get::<String, _>("name"),
                r.get::<String, _>("type"),
                r.get::<i64, _>("notnull"),
                r.get::<Option<String>, _>("dflt_value"),
                r.get::<i64, _>("pk"),
            ));
        }
    }
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT type || ' ' || name FROM sqlite_master ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap();
    out.extend(tables);
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    out.push(format!("journal_mode={mode}"));
    pool.close().await;
    out
}

#[tokio::test]
async fn setup_creates_what_langgraph_setup_creates() {
    // SQLite: a fresh Waymark file against SqliteSaver's.
    let (_fx, python) = sqlite_fixture_copy();
    let dir = tempfile::tempdir().unwrap();
    let rust = dir.path().join("fresh.db");
    let store = LangGraphSqliteStore::open(&rust).await.expect("open");
    store.setup().await.expect("setup is idempotent");
    store.pool().close().await;
    assert_eq!(sqlite_schema(&rust).await, sqlite_schema(&python).await);

    // PostgreSQL: a fresh Waymark schema against the catalog PostgresSaver.setup() left.
    let Some((store, schema)) = fresh_postgres_store().await else {
        eprintln!("SKIPPED the PostgreSQL half: PostgreSQL unavailable");
        return;
    };
    let catalog = load_json(&fixture_dir().join("postgres/catalog.json"));
    let pool = store.pool();
    let columns: Vec<Value> = sqlx::query(
        "SELECT c.relname AS table_name, a.attnum AS position, a.attname AS column_name, \
         format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null, \
         pg_get_expr(d.adbin, d.adrelid) AS default_expr FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum \
         WHERE n.nspname = current_schema() AND c.relkind = 'r' ORDER BY c.relname, a.attnum",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        json!({
            "table_name": r.get::<String, _>("table_name"),
            "position": r.get::<i16, _>("position"),
            "column_name": r.get::<String, _>("column_name"),
            "type": r.get::<String, _>("type"),
            "not_null": r.get::<bool, _>("not_null"),
            "default_expr": r.get::<Option<String>, _>("default_expr"),
        })
    })
    .collect();
    let indexes: Vec<Value> = sqlx::query(
        "SELECT tablename::text AS tablename, indexname::text AS indexname, \
         replace(indexdef, current_schema() || '.', '') AS indexdef \
         FROM pg_indexes WHERE schemaname = current_schema() ORDER BY tablename, indexname",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        json!({
            "tablename": r.get::<String, _>("tablename"),
            "indexname": r.get::<String, _>("indexname"),
            "indexdef": r.get::<String, _>("indexdef"),
        })
    })
    .collect();
    let migrations: Vec<i32> = sqlx::query_scalar("SELECT v FROM checkpoint_migrations ORDER BY v")
        .fetch_all(pool)
        .await
        .unwrap();
    // A second setup (Python's or Waymark's) finds nothing to do.
    let again = LangGraphPostgresStore::from_pool(pool.clone()).await;
    pool.close().await;
    drop_schema(&schema).await;
    again.expect("setup again");
    assert_eq!(Value::Array(columns), catalog["columns"], "columns");
    assert_eq!(Value::Array(indexes), catalog["indexes"], "indexes");
    assert_eq!(migrations, (0..=9).collect::<Vec<_>>());
}

/// Refuses a ShallowPostgresSaver schema and a schema from a newer LangGraph; completes a
/// partly migrated schema the way Python's setup does.
#[tokio::test]
async fn postgres_setup_refuses_foreign_schemas_and_completes_partial_ones() {
    let schema = format!("lg_setup_{}", uuid::Uuid::new_v4().simple());
    if create_schema(&schema).await.is_none() {
        eprintln!("SKIPPED postgres setup checks: PostgreSQL unavailable");
        return;
    }
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(schema_options(&schema))
        .await
        .expect("connect");
    let open = || async {
        LangGraphPostgresStore::connect_with(
            schema_options(&schema),
            PostgresLayoutOptions::default(),
        )
        .await
    };
    // ShallowPostgresSaver's checkpoints table: keyed by thread and namespace, no checkpoint_id.
    sqlx::raw_sql(
        "CREATE TABLE checkpoints (thread_id TEXT NOT NULL, checkpoint_ns TEXT NOT NULL DEFAULT '', \
         type TEXT, checkpoint JSONB NOT NULL, metadata JSONB NOT NULL DEFAULT '{}', \
         PRIMARY KEY (thread_id, checkpoint_ns))",
    )
    .execute(&admin)
    .await
    .unwrap();
    let err = open().await.expect_err("a shallow schema is refused");
    assert!(err.is_conflict(), "{err}");
    let created: bool =
        sqlx::query_scalar("SELECT to_regclass('checkpoint_migrations') IS NOT NULL")
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!(!created, "nothing was created next to the shallow schema");
    sqlx::raw_sql("DROP TABLE checkpoints")
        .execute(&admin)
        .await
        .unwrap();

    // A partly migrated schema (versions 0-3, as an old LangGraph left it) is completed.
    for sql in &waymark_adapters::postgres_layout::setup::MIGRATIONS[..4] {
        sqlx::raw_sql(*sql).execute(&admin).await.unwrap();
    }
    sqlx::raw_sql("INSERT INTO checkpoint_migrations (v) VALUES (0), (1), (2), (3)")
        .execute(&admin)
        .await
        .unwrap();
    let store = open().await.expect("a partial schema is completed");
    store.pool().close().await;
    let versions: Vec<i32> = sqlx::query_scalar("SELECT v FROM checkpoint_migrations ORDER BY v")
        .fetch_all(&admin)
        .await
        .unwrap();
    assert_eq!(versions, (0..=9).collect::<Vec<_>>());
    let has_task_path: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() \
         AND table_name = 'checkpoint_writes' AND column_name = 'task_path')",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(has_task_path);

    // A version above 9 means a newer LangGraph changed the schema.
    sqlx::raw_sql("INSERT INTO checkpoint_migrations (v) VALUES (10)")
        .execute(&admin)
        .await
        .unwrap();
    let err = open().await.expect_err("a newer schema is refused");
    assert!(err.is_conflict(), "{err}");
    let forced = LangGraphPostgresStore::connect_with(
        schema_options(&schema),
        PostgresLayoutOptions {
            allow_newer_schema: true,
        },
    )
    .await
    .expect("opened when explicitly allowed");
    forced.pool().close().await;
    let max: i32 = sqlx::query_scalar("SELECT max(v) FROM checkpoint_migrations")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(max, 10, "Waymark never records versions of its own");
    admin.close().await;
    drop_schema(&schema).await;
}
