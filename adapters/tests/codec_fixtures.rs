//! The codec against payloads from real LangGraph runs (`tests/fixtures/langgraph`, written by
//! `tests/python/generate_fixtures.py` with the pinned Python versions):
//!
//! * every typed payload in the fixtures decodes and re-encodes byte for byte;
//! * every `messages` value becomes `Message`s that match Python's own view and encode back to
//!   Python's exact bytes;
//! * every SQLite `checkpoints` row decomposes and recomposes to `SqliteSaver`'s exact blob,
//!   and its metadata renders to the exact stored bytes.
//!
//! When the fixture directory is missing the tests say so and pass, unless
//! `WAYMARK_REQUIRE_FIXTURES=1`.

use std::path::PathBuf;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sea_orm::sqlx::{self, Row};
use serde_json::Value as Json;
use waymark_adapters::codec::{
    Message, compose_checkpoint_blob, compose_checkpoint_blob_ordered, decode, decode_messages,
    decode_msgpack, decompose_checkpoint_blob_ordered, encode, encode_messages, encode_msgpack,
    python_json_bytes,
};
use waymark_domain::checkpoint::TypedValue;

fn fixture_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/langgraph");
    if dir.join("manifest.json").exists() {
        return Some(dir);
    }
    if std::env::var("WAYMARK_REQUIRE_FIXTURES").as_deref() == Ok("1") {
        panic!("LangGraph fixtures missing at {}", dir.display());
    }
    eprintln!(
        "SKIPPED: LangGraph fixtures missing at {} (run tests/python/generate_fixtures.py)",
        dir.display()
    );
    None
}

fn read_json(dir: &std::path::Path, file: &str) -> Json {
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// `{"type", "hex"}` objects (expected.json) and `{"type", "blob"}` rows (tables.json).
fn typed_payloads(json: &Json, out: &mut Vec<(String, TypedValue)>, path: &str) {
    match json {
        Json::Object(obj) => {
            let tag = obj.get("type").and_then(Json::as_str);
            let hex = obj
                .get("hex")
                .or_else(|| obj.get("blob"))
                .and_then(Json::as_str);
            if let (Some(tag), Some(hex)) = (tag, hex) {
                out.push((
                    path.to_owned(),
                    TypedValue::new(tag, unhex(hex)).expect("valid typed value"),
                ));
            }
            for (k, v) in obj {
                typed_payloads(v, out, &format!("{path}.{k}"));
            }
        }
        Json::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                typed_payloads(v, out, &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

#[test]
fn every_fixture_payload_round_trips_byte_for_byte() {
    let Some(dir) = fixture_dir() else { return };
    let mut payloads = Vec::new();
    for file in [
        "sqlite/expected.json",
        "postgres/expected.json",
        "postgres/tables.json",
    ] {
        typed_payloads(&read_json(&dir, file), &mut payloads, file);
    }
    assert!(payloads.len() > 100, "only {} payloads", payloads.len());
    let mut msgpack = 0;
    for (path, typed) in &payloads {
        let decoded = decode(typed).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(&encode(&decoded), typed, "{path}");
        if typed.type_tag() == "msgpack" {
            let value = decode_msgpack(typed.bytes()).unwrap();
            assert_eq!(encode_msgpack(&value), typed.bytes(), "{path}");
            msgpack += 1;
        }
    }
    eprintln!(
        "{} fixture payloads round-tripped byte for byte ({msgpack} msgpack)",
        payloads.len()
    );
}

/// Python's `message_view`: these fields, `None` where the class has none.
const VIEW_FIELDS: [&str; 7] = [
    "type",
    "content",
    "id",
    "name",
    "tool_calls",
    "tool_call_id",
    "usage_metadata",
];

fn check_messages(typed: &TypedValue, expected: &Json, path: &str) -> usize {
    let messages = decode_messages(typed).unwrap_or_else(|e| panic!("{path}: {e}"));
    let expected = expected.as_array().unwrap();
    assert_eq!(messages.len(), expected.len(), "{path}");
    for (m, want) in messages.iter().zip(expected) {
        let dump = m.to_json();
        for field in VIEW_FIELDS {
            assert_eq!(
                dump.get(field).unwrap_or(&Json::Null),
                &want[field],
                "{path}: field {field}"
            );
        }
    }
    // Written back from the Rust model: Python's exact bytes.
    assert_eq!(&encode_messages(&messages).unwrap(), typed, "{path}");
    messages.len()
}

#[test]
fn fixture_messages_match_python_and_re_encode_exactly() {
    let Some(dir) = fixture_dir() else { return };
    let mut checked = 0;
    for file in ["sqlite/expected.json", "postgres/expected.json"] {
        let json = read_json(&dir, file);
        for (i, t) in json["tuples"].as_array().unwrap().iter().enumerate() {
            let path = format!("{file} tuple {i}");
            if !t["messages"].is_null() {
                let v = &t["checkpoint"]["channel_values"]["messages"];
                let typed = TypedValue::new(
                    v["type"].as_str().unwrap(),
                    unhex(v["hex"].as_str().unwrap()),
                )
                .unwrap();
                checked += check_messages(&typed, &t["messages"], &path);
            }
            let writes = t["pending_writes"].as_array().unwrap();
            for (w, expected) in writes.iter().zip(t["write_messages"].as_array().unwrap()) {
                if expected.is_null() {
                    continue;
                }
                let typed = TypedValue::new(
                    w["value"]["type"].as_str().unwrap(),
                    unhex(w["value"]["hex"].as_str().unwrap()),
                )
                .unwrap();
                checked += check_messages(&typed, expected, &format!("{path} write"));
            }
        }
    }
    assert!(checked > 0);
    eprintln!("{checked} fixture messages matched Python's view and re-encoded exactly");
}

#[tokio::test]
async fn sqlite_fixture_blobs_and_metadata_are_reproduced_byte_for_byte() {
    let Some(dir) = fixture_dir() else { return };
    // Work on a copy: the file is in WAL mode and must not change.
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("checkpoints.db");
    std::fs::copy(dir.join("sqlite/checkpoints.db"), &db).unwrap();
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(&db))
        .await
        .unwrap();
    let expected = read_json(&dir, "sqlite/expected.json");
    let expected_values = |id: &str| {
        expected["tuples"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["checkpoint_id"] == id)
            .map(|t| t["checkpoint"]["channel_values"].clone())
    };

    let rows = sqlx::query("SELECT checkpoint_id, type, checkpoint, metadata FROM checkpoints")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(!rows.is_empty());
    let mut compared_values = 0;
    for row in &rows {
        let id: String = row.get("checkpoint_id");
        let tag: String = row.get("type");
        let blob: Vec<u8> = row.get("checkpoint");
        let metadata: Vec<u8> = row.get("metadata");
        assert_eq!(tag, "msgpack", "{id}");

        let (checkpoint, order) =
            decompose_checkpoint_blob_ordered(&blob).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(checkpoint.id.as_str(), id);
        assert_eq!(
            compose_checkpoint_blob(&checkpoint).unwrap(),
            blob,
            "{id}: pregel order"
        );
        assert_eq!(
            compose_checkpoint_blob_ordered(&checkpoint, &order).unwrap(),
            blob
        );

        // Each decomposed value is what Python reading the whole blob gives.
        if let Some(values) = expected_values(&id) {
            for (channel, value) in &checkpoint.channel_values {
                let want = &values[channel.as_str()];
                assert_eq!(value.type_tag(), want["type"], "{id} {channel}");
                assert_eq!(
                    value.bytes(),
                    unhex(want["hex"].as_str().unwrap()),
                    "{id} {channel}"
                );
                compared_values += 1;
            }
        }

        let parsed: Json = serde_json::from_slice(&metadata).unwrap();
        assert_eq!(
            python_json_bytes(&parsed).unwrap(),
            metadata,
            "{id}: metadata {}",
            String::from_utf8_lossy(&metadata)
        );
    }
    assert!(compared_values > 0);

    let writes = sqlx::query("SELECT type, value FROM writes")
        .fetch_all(&pool)
        .await
        .unwrap();
    for row in &writes {
        let tag: String = row.get("type");
        let value: Vec<u8> = row.get::<Option<Vec<u8>>, _>("value").unwrap_or_default();
        let typed = TypedValue::new(tag, value).unwrap();
        assert_eq!(encode(&decode(&typed).unwrap()), typed);
    }
    eprintln!(
        "{} SQLite blobs and metadata reproduced byte for byte, {compared_values} channel values \
         matched, {} writes round-tripped",
        rows.len(),
        writes.len()
    );
    // Every message in a blob is a readable Message as well.
    for row in &rows {
        let blob: Vec<u8> = row.get("checkpoint");
        let (cp, _) = decompose_checkpoint_blob_ordered(&blob).unwrap();
        for (channel, value) in &cp.channel_values {
            if channel.as_str() == "messages" {
                let messages: Vec<Message> = decode_messages(value).unwrap();
                assert_eq!(&encode_messages(&messages).unwrap(), value);
            }
        }
    }
}
