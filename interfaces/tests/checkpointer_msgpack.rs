//! The msgpack body encoding of the remote checkpointer protocol (docs/checkpointer-msgpack.md)
//! over HTTP: it stores and answers exactly what the JSON path does, refuses bad input with
//! the JSON error envelope, and is chosen by Content-Type and Accept.

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TestApp, spawn_app, spawn_with};
use waymark_domain::checkpoint::CheckpointQuery;
use waymark_interfaces::backend;
use waymark_interfaces::http::ServerConfig;

const MSGPACK: &str = "application/vnd.waymark.checkpointer+msgpack";

/// A JSON request as msgpack: every `{"type", "data": base64}` value sends its bytes as bin.
fn to_msgpack(v: &Value) -> rmpv::Value {
    match v {
        Value::Null => rmpv::Value::Nil,
        Value::Bool(b) => rmpv::Value::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => rmpv::Value::from(i),
            (None, Some(u)) => rmpv::Value::from(u),
            _ => rmpv::Value::F64(n.as_f64().unwrap()),
        },
        Value::String(s) => rmpv::Value::from(s.as_str()),
        Value::Array(items) => rmpv::Value::Array(items.iter().map(to_msgpack).collect()),
        Value::Object(o) => {
            let is_value = o.len() == 2 && o.contains_key("type");
            rmpv::Value::Map(
                o.iter()
                    .map(|(k, v)| {
                        let v = match (is_value, k.as_str(), v) {
                            (true, "data", Value::String(b64)) => {
                                rmpv::Value::Binary(STANDARD.decode(b64).unwrap())
                            }
                            _ => to_msgpack(v),
                        };
                        (rmpv::Value::from(k.as_str()), v)
                    })
                    .collect(),
            )
        }
    }
}

/// A msgpack answer as JSON, bin as base64 (the JSON path's form).
fn from_msgpack(v: &rmpv::Value) -> Value {
    match v {
        rmpv::Value::Nil => Value::Null,
        rmpv::Value::Boolean(b) => json!(b),
        rmpv::Value::Integer(i) => match i.as_i64() {
            Some(i) => json!(i),
            None => json!(i.as_u64().unwrap()),
        },
        rmpv::Value::F32(f) => json!(f64::from(*f)),
        rmpv::Value::F64(f) => json!(f),
        rmpv::Value::String(s) => json!(s.as_str().unwrap()),
        rmpv::Value::Binary(b) => json!(STANDARD.encode(b)),
        rmpv::Value::Array(items) => Value::Array(items.iter().map(from_msgpack).collect()),
        rmpv::Value::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.as_str().unwrap().to_owned(), from_msgpack(v)))
                .collect(),
        ),
        rmpv::Value::Ext(..) => panic!("no ext in answers"),
    }
}

fn encode(v: &rmpv::Value) -> Vec<u8> {
    let mut buf = Vec::new();
    rmpv::encode::write_value(&mut buf, v).unwrap();
    buf
}

/// Status, content type and raw body.
async fn exchange(
    app: &TestApp,
    path: &str,
    body: Vec<u8>,
    content_type: &str,
    accept: Option<&str>,
) -> (StatusCode, String, Vec<u8>) {
    let mut req = app
        .client
        .post(app.url(path))
        .header("content-type", content_type)
        .body(body);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ctype, resp.bytes().await.unwrap().to_vec())
}

/// POSTs `body` as msgpack, accepting msgpack; the answer as JSON (bin as base64).
async fn post_mp(app: &TestApp, path: &str, body: &Value) -> (StatusCode, Value) {
    let (s, ctype, bytes) =
        exchange(app, path, encode(&to_msgpack(body)), MSGPACK, Some(MSGPACK)).await;
    if s.is_success() {
        assert_eq!(
            ctype, MSGPACK,
            "{path}: a success answers in the accepted encoding"
        );
        let v = rmpv::decode::read_value(&mut bytes.as_slice()).unwrap();
        (s, from_msgpack(&v))
    } else {
        assert!(
            ctype.starts_with("application/json"),
            "{path}: errors are JSON"
        );
        (s, serde_json::from_slice(&bytes).unwrap())
    }
}

fn put_body(thread: &str, parent: Option<&str>, id: &str) -> Value {
    json!({
        "config": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": parent},
        "checkpoint": {
            "v": 4, "id": id, "ts": "2026-11-21T10:45:32.120433+00:00",
            "channel_versions": {"msg": "00000000000000000000000000000002.0.64", "n": 3, "f": 1.5},
            "versions_seen": {"__input__": {}, "agent": {"msg": 1}},
            "updated_channels": ["msg"],
            "channel_values": {
                "msg": {"type": "msgpack", "data": "pWhlbGxv"},
                "items": {"type": "msgpack", "data": "kgEC"},
                "big": {"type": "bytes", "data": STANDARD.encode(vec![7u8; 300_000])},
                "none": {"type": "null", "data": ""}
            },
            "extra": {"pending_sends": {"type": "msgpack", "data": "kA=="}},
            "key_order": ["v", "ts", "id", "channel_values", "channel_versions", "versions_seen", "pending_sends", "updated_channels"]
        },
        "metadata": {"source": "loop", "step": 1, "score": 1.0, "parents": {}, "run_id": "run-7"},
        "new_versions": {"msg": "00000000000000000000000000000002.0.64", "n": 3}
    })
}

fn writes_body(thread: &str, id: &str) -> Value {
    json!({
        "config": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": id},
        "writes": [
            {"channel": "answer", "value": {"type": "msgpack", "data": "Kg=="}},
            {"channel": "raw", "value": {"type": "bytes", "data": ""}}
        ],
        "task_id": "task-1",
        "task_path": "~__pregel_pull, agent"
    })
}

/// Writes a thread through `post`, then reads it back.
async fn write_thread(app: &TestApp, thread: &str, msgpack: bool) {
    for (path, body) in [
        ("/checkpointer/put", put_body(thread, None, "c1")),
        ("/checkpointer/put", put_body(thread, Some("c1"), "c2")),
        ("/checkpointer/put_writes", writes_body(thread, "c2")),
    ] {
        let (s, b) = if msgpack {
            post_mp(app, path, &body).await
        } else {
            app.post(path, &body).await
        };
        assert_eq!(s, StatusCode::OK, "{path}: {b}");
        if path.ends_with("/put") {
            assert_eq!(b["config"]["thread_id"], thread);
        } else {
            assert_eq!(b, json!({}));
        }
    }
}

fn rename(mut v: Value, from: &str, to: &str) -> Value {
    let text = serde_json::to_string(&v).unwrap();
    v = serde_json::from_str(&text.replace(&format!("\"{from}\""), &format!("\"{to}\""))).unwrap();
    v
}

async fn stored_checkpoints(app: &TestApp) -> usize {
    app.backend
        .stores
        .checkpoints
        .list(&CheckpointQuery::default())
        .await
        .unwrap()
        .len()
}

async fn msgpack_round_trip_equals_json(app: &TestApp) {
    let (s, caps) = app.get("/checkpointer/capabilities").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        caps["content_types"],
        json!(["application/json", MSGPACK]),
        "the server advertises the msgpack encoding"
    );
    write_thread(app, "t-json", false).await;
    write_thread(app, "t-mp", true).await;

    let get =
        |t: &str| json!({"config": {"thread_id": t, "checkpoint_ns": "", "checkpoint_id": null}});
    // Written as JSON or as msgpack: the same tuple, read either way.
    let (_, json_of_json) = app.post("/checkpointer/get_tuple", &get("t-json")).await;
    let (_, json_of_mp) = app.post("/checkpointer/get_tuple", &get("t-mp")).await;
    let (_, mp_of_json) = post_mp(app, "/checkpointer/get_tuple", &get("t-json")).await;
    let (_, mp_of_mp) = post_mp(app, "/checkpointer/get_tuple", &get("t-mp")).await;
    assert!(json_of_json["tuple"]["checkpoint"]["channel_values"]["big"]["data"].is_string());
    assert_eq!(
        json_of_json["tuple"]["pending_writes"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(rename(json_of_mp, "t-mp", "t-json"), json_of_json);
    assert_eq!(mp_of_json, json_of_json);
    assert_eq!(rename(mp_of_mp, "t-mp", "t-json"), json_of_json);

    // Types survive msgpack: integers, floats and strings stay apart.
    let cp = &json_of_json["tuple"]["checkpoint"];
    assert_eq!(cp["channel_versions"]["n"], json!(3));
    assert_eq!(cp["channel_versions"]["f"], json!(1.5));
    assert_eq!(json_of_json["tuple"]["metadata"]["score"], json!(1.0));

    // The raw bytes come back as bin.
    let (_, _, raw) = exchange(
        app,
        "/checkpointer/get_tuple",
        encode(&to_msgpack(&get("t-mp"))),
        MSGPACK,
        Some(MSGPACK),
    )
    .await;
    let v = rmpv::decode::read_value(&mut raw.as_slice()).unwrap();
    let data = &v["tuple"]["checkpoint"]["channel_values"]["big"]["data"];
    assert_eq!(data.as_slice().unwrap(), vec![7u8; 300_000].as_slice());

    let list = json!({"config": {"thread_id": "t-mp"}, "filter": {"source": "loop"}, "before": null, "limit": 5});
    let (s, listed_json) = app.post("/checkpointer/list", &list).await;
    assert_eq!(s, StatusCode::OK);
    let (s, listed_mp) = post_mp(app, "/checkpointer/list", &list).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(listed_json["tuples"].as_array().unwrap().len(), 2);
    assert_eq!(listed_mp, listed_json);

    for (path, body) in [
        (
            "/checkpointer/copy_thread",
            json!({"source_thread_id": "t-mp", "target_thread_id": "t-copy"}),
        ),
        (
            "/checkpointer/delete_for_runs",
            json!({"run_ids": ["nope"]}),
        ),
        (
            "/checkpointer/prune",
            json!({"thread_ids": ["t-copy"], "strategy": "delete"}),
        ),
        ("/checkpointer/delete_thread", json!({"thread_id": "t-mp"})),
    ] {
        let (s, b) = post_mp(app, path, &body).await;
        assert_eq!((s, b), (StatusCode::OK, json!({})), "{path}");
    }
    let (_, gone) = post_mp(app, "/checkpointer/get_tuple", &get("t-mp")).await;
    assert_eq!(gone, json!({"tuple": null}));
}

#[tokio::test]
async fn msgpack_bodies_store_and_answer_what_json_does_in_memory() {
    let app = spawn_app().await;
    msgpack_round_trip_equals_json(&app).await;
}

#[tokio::test]
async fn msgpack_bodies_store_and_answer_what_json_does_on_sqlite_files() {
    for scheme in ["sqlite", "langgraph+sqlite"] {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("{scheme}://{}", dir.path().join("cp.db").display());
        let backend = backend::open(&url).await.unwrap();
        let app = spawn_with(backend, ServerConfig::admin()).await;
        msgpack_round_trip_equals_json(&app).await;
        app.shutdown().await;
    }
}

#[tokio::test]
async fn accept_chooses_the_answer_encoding() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(&json!({"thread_id": "t"})).unwrap();
    let json_ct = "application/json";
    for (accept, want) in [
        (None, "application/json"),
        (Some("*/*"), "application/json"),
        (Some("application/json"), "application/json"),
        (
            Some("application/msgpack;q=0, application/json"),
            "application/json",
        ),
        (Some("application/msgpack"), MSGPACK),
        (
            Some("application/json;q=0.5, application/vnd.waymark.checkpointer+msgpack"),
            MSGPACK,
        ),
    ] {
        let (s, ctype, bytes) = exchange(
            &app,
            "/checkpointer/delete_thread",
            body.clone(),
            json_ct,
            accept,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{accept:?}");
        assert!(ctype.starts_with(want), "{accept:?}: {ctype}");
        if want == MSGPACK {
            assert_eq!(bytes, vec![0x80], "an empty msgpack map");
        } else {
            assert_eq!(bytes, b"{}");
        }
    }
    // JSON answers are protocol v1's, byte for byte.
    let (_, _, bytes) = exchange(
        &app,
        "/checkpointer/get_tuple",
        br#"{"config": {"thread_id": "t"}}"#.to_vec(),
        json_ct,
        None,
    )
    .await;
    assert_eq!(bytes, br#"{"tuple":null}"#);
}

#[tokio::test]
async fn malformed_msgpack_gets_the_value_error_envelope_and_writes_nothing() {
    let app = spawn_app().await;
    let good = put_body("t", None, "c1");
    let mut bin_in_metadata = to_msgpack(&good);
    if let rmpv::Value::Map(entries) = &mut bin_in_metadata {
        for (k, v) in entries.iter_mut() {
            if k.as_str() == Some("metadata") {
                *v = rmpv::Value::Map(vec![("x".into(), rmpv::Value::Binary(vec![1, 2]))]);
            }
        }
    }
    let mut truncated = encode(&to_msgpack(&good));
    truncated.truncate(truncated.len() / 2);
    let mut trailing = encode(&to_msgpack(&good));
    trailing.push(0xc0);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("/checkpointer/put", truncated, "ValueError"),
        ("/checkpointer/put", trailing, "ValueError"),
        ("/checkpointer/put", vec![], "ValueError"),
        ("/checkpointer/put", vec![0xd9, 0x05, b'a'], "ValueError"),
        (
            "/checkpointer/put",
            br#"{"config": {}}"#.to_vec(),
            "ValueError",
        ),
        ("/checkpointer/put", encode(&bin_in_metadata), "ValueError"),
        ("/checkpointer/put", vec![0x92, 0x01, 0x02], "TypeError"),
        (
            "/checkpointer/put_writes",
            encode(&rmpv::Value::Map(vec![(
                rmpv::Value::from(1),
                rmpv::Value::Nil,
            )])),
            "ValueError",
        ),
        (
            "/checkpointer/list",
            encode(&rmpv::Value::Map(vec![(
                "filter".into(),
                rmpv::Value::Map(vec![("k".into(), rmpv::Value::Binary(vec![0]))]),
            )])),
            "ValueError",
        ),
        (
            "/checkpointer/delete_thread",
            encode(&rmpv::Value::Map(vec![(
                "thread_id".into(),
                rmpv::Value::Binary(b"t".to_vec()),
            )])),
            "ValueError",
        ),
    ];
    for (path, body, kind) in cases {
        let (s, ctype, bytes) = exchange(&app, path, body.clone(), MSGPACK, Some(MSGPACK)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path} {body:?}");
        assert!(ctype.starts_with("application/json"), "{ctype}");
        let e: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(e["kind"], kind, "{path} {body:?}: {e}");
        assert!(e["error"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let mut writes = to_msgpack(&writes_body("t", "c1"));
    if let rmpv::Value::Map(entries) = &mut writes {
        entries.push(("task_path".into(), rmpv::Value::Binary(vec![1])));
    }
    let (s, _, _) = exchange(
        &app,
        "/checkpointer/put_writes",
        encode(&writes),
        MSGPACK,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        stored_checkpoints(&app).await,
        0,
        "a failed request has no effect"
    );
    let (_, t) = app
        .post(
            "/checkpointer/get_tuple",
            &json!({"config": {"thread_id": "t"}}),
        )
        .await;
    assert_eq!(t, json!({"tuple": null}));
}
