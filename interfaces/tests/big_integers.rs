//! Integers beyond 64 bits in checkpoint metadata keep every digit on the JSON wire of the
//! remote checkpointer (protocol §2), on every backend; a msgpack answer that would have to
//! carry one goes out as JSON instead; floats beyond the f64 range are refused.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TestApp, drop_database, fresh_database, spawn_app, spawn_with};
use waymark_interfaces::backend;
use waymark_interfaces::http::ServerConfig;

const MSGPACK: &str = "application/vnd.waymark.checkpointer+msgpack";

/// 2^70, -(2^70) - 1, 2^64 (one past u64) and a 30-digit integer inside a list.
const BIG: &str = "1180591620717411303424";
const NEG: &str = "-1180591620717411303425";
const PAST_U64: &str = "18446744073709551616";
const NESTED: &str = "123456789012345678901234567890";

fn metadata_text() -> String {
    format!(
        r#"{{"source": "loop", "step": 1, "parents": {{}}, "big": {BIG}, "neg": {NEG}, "past_u64": {PAST_U64}, "nested": {{"list": [{NESTED}, 2]}}, "ratio": 1.5, "small": 7}}"#
    )
}

fn put_text(thread: &str, id: &str, metadata: &str) -> String {
    format!(
        r#"{{"config": {{"thread_id": "{thread}", "checkpoint_ns": "", "checkpoint_id": null}},
 "checkpoint": {{"v": 4, "id": "{id}", "ts": "2026-11-21T10:45:32.120433+00:00",
   "channel_versions": {{"msg": 1}}, "versions_seen": {{"__input__": {{}}}},
   "updated_channels": null, "channel_values": {{"msg": {{"type": "msgpack", "data": "pWhlbGxv"}}}},
   "extra": {{}}}},
 "metadata": {metadata},
 "new_versions": {{"msg": 1}}}}"#
    )
}

/// POSTs raw JSON text; status, content type and the raw answer text.
async fn exchange(
    app: &TestApp,
    path: &str,
    body: String,
    accept: Option<&str>,
) -> (StatusCode, String, String) {
    let mut req = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json")
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
    (status, ctype, resp.text().await.unwrap())
}

fn assert_exact(what: &str, text: &str) {
    for digits in [BIG, NEG, PAST_U64, NESTED] {
        assert!(text.contains(digits), "{what}: {digits} lost in {text}");
    }
}

/// `sqlite_filters`: LangGraph's SQLite layout binds filter values like Python's sqlite3,
/// which cannot bind such an integer (a `ValueError`, never an approximate match).
async fn big_integers_round_trip_exactly(app: &TestApp, sqlite_filters: bool) {
    let want: Value = serde_json::from_str(&metadata_text()).unwrap();
    let id = "1f1e598a-d0a1-6c3e-8001-3c2f5e0b9a71";
    let (s, _, body) = exchange(
        app,
        "/checkpointer/put",
        put_text("t-big", id, &metadata_text()),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");

    let get = r#"{"config": {"thread_id": "t-big", "checkpoint_ns": ""}}"#.to_owned();
    let (s, ctype, text) = exchange(app, "/checkpointer/get_tuple", get.clone(), None).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert!(ctype.starts_with("application/json"), "{ctype}");
    assert_exact("get_tuple", &text);
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(got["tuple"]["metadata"], want, "{text}");
    assert!(got["tuple"]["metadata"]["ratio"].is_f64());

    // msgpack has no such integers: the answer falls back to JSON and says so.
    let (s, ctype, text) = exchange(
        app,
        "/checkpointer/get_tuple",
        get,
        Some(&format!("{MSGPACK}, application/json;q=0.5")),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert!(ctype.starts_with("application/json"), "{ctype}");
    assert_exact("get_tuple (msgpack accepted)", &text);
    let (s, ctype, text) = exchange(
        app,
        "/checkpointer/list",
        r#"{"config": {"thread_id": "t-big"}}"#.to_owned(),
        Some(MSGPACK),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert!(ctype.starts_with("application/json"), "{ctype}");
    assert_exact("list (msgpack accepted)", &text);

    // Filters compare such integers exactly (one past is another number).
    let list =
        |v: &str| format!(r#"{{"config": {{"thread_id": "t-big"}}, "filter": {{"big": {v}}}}}"#);
    let (s, _, hit) = exchange(app, "/checkpointer/list", list(BIG), None).await;
    if sqlite_filters {
        assert_eq!(s, StatusCode::BAD_REQUEST, "{hit}");
        assert!(hit.contains("ValueError"), "{hit}");
    } else {
        assert_eq!(s, StatusCode::OK, "{hit}");
        let hit: Value = serde_json::from_str(&hit).unwrap();
        assert_eq!(hit["tuples"].as_array().unwrap().len(), 1, "{hit}");
        let (s, _, miss) = exchange(
            app,
            "/checkpointer/list",
            list("1180591620717411303425"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{miss}");
        let miss: Value = serde_json::from_str(&miss).unwrap();
        assert_eq!(miss["tuples"], json!([]), "{miss}");
    }

    // A float beyond f64 has no faithful form anywhere: refused, nothing stored.
    let (s, _, text) = exchange(
        app,
        "/checkpointer/put",
        put_text(
            "t-huge-float",
            id,
            r#"{"source": "loop", "step": 1, "x": 1e400}"#,
        ),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("ValueError"), "{text}");
    let (_, _, gone) = exchange(
        app,
        "/checkpointer/get_tuple",
        r#"{"config": {"thread_id": "t-huge-float"}}"#.to_owned(),
        None,
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&gone).unwrap(),
        json!({"tuple": null})
    );
}

#[tokio::test]
async fn big_integers_round_trip_in_memory() {
    let app = spawn_app().await;
    big_integers_round_trip_exactly(&app, false).await;
}

#[tokio::test]
async fn big_integers_round_trip_on_sqlite_files() {
    for scheme in ["sqlite", "langgraph+sqlite"] {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("{scheme}://{}", dir.path().join("big.db").display());
        let app = spawn_with(backend::open(&url).await.unwrap(), ServerConfig::admin()).await;
        big_integers_round_trip_exactly(&app, scheme == "langgraph+sqlite").await;
        app.shutdown().await;
    }
}

#[tokio::test]
async fn big_integers_round_trip_on_postgres() {
    for prefix in ["", "langgraph+"] {
        let Some((url, name)) = fresh_database("big_integers_round_trip_on_postgres").await else {
            return;
        };
        let app = spawn_with(
            backend::open(&format!("{prefix}{url}")).await.unwrap(),
            ServerConfig::admin(),
        )
        .await;
        big_integers_round_trip_exactly(&app, false).await;
        app.shutdown().await;
        drop_database(&name).await;
    }
}
