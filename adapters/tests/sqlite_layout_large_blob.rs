//! LangGraph's SQLite layout writes a large checkpoint blob in place (zeroblob, then
//! SQLite's incremental blob I/O): the stored bytes must be exactly the blob `SqliteSaver`
//! would write, which `compose_checkpoint_blob` is proven to produce (codec fixtures).
#![cfg(feature = "sqlite-layout")]

use indexmap::IndexMap;
use waymark_adapters::codec::{Str, Value};
use waymark_adapters::codec::{
    checkpoint_blob_parts, compose_checkpoint_blob, encode_msgpack, python_json_bytes,
};
use waymark_adapters::sqlite_layout::LangGraphSqliteStore;
use waymark_domain::checkpoint::{
    ChannelVersion, Checkpoint, CheckpointMetadata, CheckpointPut, CheckpointRepository, TypedValue,
};
use waymark_domain::ids::{ChannelName, CheckpointId, CheckpointNamespace, ThreadId};

fn ch(name: &str) -> ChannelName {
    ChannelName::parse(name).unwrap()
}

/// A checkpoint holding a raw value of `raw_len` bytes, a msgpack string of `text_len`
/// characters and a small value, all changed in this step.
fn checkpoint_put(id: &str, raw_len: usize, text_len: usize, salt: u8) -> CheckpointPut {
    let raw: Vec<u8> = (0..raw_len).map(|i| (i * 7 % 251) as u8 ^ salt).collect();
    let text: String = (0..text_len)
        .map(|i| char::from(b'a' + ((i + usize::from(salt)) % 26) as u8))
        .collect();
    let packed = encode_msgpack(&Value::Str(Str::new(&text)));
    let mut channel_values = IndexMap::new();
    channel_values.insert(ch("raw"), TypedValue::new(TypedValue::BYTES, raw).unwrap());
    channel_values.insert(
        ch("packed"),
        TypedValue::new(TypedValue::MSGPACK, packed).unwrap(),
    );
    channel_values.insert(
        ch("small"),
        TypedValue::new(TypedValue::MSGPACK, encode_msgpack(&Value::from(7_i64))).unwrap(),
    );
    let versions: IndexMap<_, _> = ["raw", "packed", "small"]
        .into_iter()
        .map(|c| (ch(c), ChannelVersion::Int(1)))
        .collect();
    CheckpointPut {
        thread_id: ThreadId::parse("large").unwrap(),
        namespace: CheckpointNamespace::root(),
        parent_id: None,
        checkpoint: Checkpoint {
            v: 4,
            id: CheckpointId::parse(id).unwrap(),
            ts: "2026-12-03T21:00:00+00:00".into(),
            channel_values,
            channel_versions: versions.clone(),
            versions_seen: IndexMap::new(),
            updated_channels: None,
            extra: IndexMap::new(),
        },
        metadata: CheckpointMetadata(
            serde_json::json!({"source": "loop", "step": salt, "note": "ünïcode"})
                .as_object()
                .unwrap()
                .clone(),
        ),
        new_versions: versions,
    }
}

/// The stored `checkpoint` blob and `metadata` bytes of checkpoint `id`.
async fn stored_row(store: &LangGraphSqliteStore, id: &str) -> (Vec<u8>, Vec<u8>) {
    use sea_orm::sqlx::Row;
    let row = sea_orm::sqlx::query(
        "SELECT checkpoint, metadata FROM checkpoints WHERE checkpoint_id = ?",
    )
    .bind(id)
    .fetch_one(store.pool())
    .await
    .unwrap();
    (row.get(0), row.get(1))
}

/// What SqliteSaver stores for `put`: the composed blob and `json.dumps(metadata)` bytes.
fn expected_row(put: &CheckpointPut) -> (Vec<u8>, Vec<u8>) {
    let metadata = serde_json::Value::Object(put.metadata.0.clone());
    (
        compose_checkpoint_blob(&put.checkpoint).unwrap(),
        python_json_bytes(&metadata).unwrap(),
    )
}

#[tokio::test]
async fn a_large_blob_is_stored_exactly_as_sqlite_saver_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = LangGraphSqliteStore::open(dir.path().join("lg.sqlite"))
        .await
        .unwrap();
    store.setup().await.unwrap();
    let id = "1f1e598a-cacc-67c7-8000-11eeb8766e9a";
    // 3 MiB raw and 2 MiB of text: well over the in-place threshold, in several pieces.
    let put = checkpoint_put(id, 3 * 1024 * 1024 + 5, 2 * 1024 * 1024 + 1, 0);
    let expected = expected_row(&put);
    let parts = checkpoint_blob_parts(&put.checkpoint).unwrap();
    assert_eq!(parts.len(), expected.0.len());
    assert!(
        parts.pieces().count() > 2,
        "the large values are separate pieces"
    );
    drop(parts);
    store.put(put.clone()).await.unwrap();
    assert_eq!(stored_row(&store, id).await, expected);
    let back = store
        .get_tuple(&put.thread_id, &put.namespace, None)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(back.checkpoint, put.checkpoint);
    assert_eq!(back.metadata, put.metadata);

    // `put` replaces the whole row, as SqliteSaver's INSERT OR REPLACE does: a different
    // large checkpoint under the same id leaves only the new bytes.
    let replaced = checkpoint_put(id, 2 * 1024 * 1024, 1024 * 1024, 9);
    let expected = expected_row(&replaced);
    store.put(replaced).await.unwrap();
    assert_eq!(stored_row(&store, id).await, expected);
    let rows: i64 = {
        use sea_orm::sqlx::Row;
        sea_orm::sqlx::query("SELECT count(*) FROM checkpoints")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .get(0)
    };
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn a_small_blob_is_stored_exactly_too() {
    let store = LangGraphSqliteStore::open_in_memory().await.unwrap();
    store.setup().await.unwrap();
    let id = "1f1e598a-cacc-67c7-8000-11eeb8766e9b";
    let put = checkpoint_put(id, 5000, 10, 3);
    let expected = expected_row(&put);
    store.put(put).await.unwrap();
    assert_eq!(stored_row(&store, id).await, expected);
}
