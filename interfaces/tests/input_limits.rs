//! Inputs that used to answer 5xx: large `put_writes` batches (more writes than one SQL
//! statement may bind) must be stored whole, in one transaction, on every backend (the native
//! SQL stores write such a batch in chunks inside one transaction).

mod support;

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TestApp, drop_database, fresh_database, spawn_with};
use waymark_interfaces::backend::Backend;
use waymark_interfaces::http::ServerConfig;

/// More than SQLite's 32,766 bound variables over 9 columns, and more than PostgreSQL's 65,535
/// over 9 columns.
const WRITES: usize = 12_000;

async fn large_put_writes_are_stored_whole(app: &TestApp, label: &str) {
    let (s, b) = app
        .post(
            "/checkpointer/put",
            &json!({
                "config": {"thread_id": "big", "checkpoint_ns": ""},
                "checkpoint": {"v": 4, "id": "1f1e598a-d0a1-6c3e-8001-3c2f5e0b9a71",
                    "ts": "2026-11-21T10:45:32.120433+00:00", "channel_versions": {},
                    "versions_seen": {}, "updated_channels": null, "channel_values": {}, "extra": {}},
                "metadata": {"source": "loop", "step": 1, "parents": {}},
                "new_versions": {},
            }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{label}: {b}");
    let writes: Vec<Value> = (0..WRITES)
        .map(|i| json!({"channel": format!("c{i}"), "value": {"type": "msgpack", "data": "Kg=="}}))
        .collect();
    let (s, b) = app
        .post(
            "/checkpointer/put_writes",
            &json!({"config": b["config"], "writes": writes, "task_id": "task-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{label}: {b}");
    let (s, got) = app
        .post(
            "/checkpointer/get_tuple",
            &json!({"config": {"thread_id": "big", "checkpoint_ns": ""}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{label}: {got}");
    assert_eq!(
        got["tuple"]["pending_writes"].as_array().map(Vec::len),
        Some(WRITES),
        "{label}"
    );
}

async fn run(backend: Backend, label: &str) {
    let app = spawn_with(backend, ServerConfig::admin()).await;
    large_put_writes_are_stored_whole(&app, label).await;
    app.shutdown().await;
}

#[tokio::test]
async fn large_put_writes_memory() {
    run(
        Backend::memory_with_clock(Arc::new(waymark_domain::clock::SystemClock)),
        "memory",
    )
    .await;
}

#[tokio::test]
async fn large_put_writes_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    run(
        waymark_interfaces::backend::open(&url).await.unwrap(),
        "sqlite",
    )
    .await;
}

#[tokio::test]
async fn large_put_writes_langgraph_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("langgraph+sqlite://{}", dir.path().join("lg.db").display());
    run(
        waymark_interfaces::backend::open(&url).await.unwrap(),
        "langgraph+sqlite",
    )
    .await;
}

#[tokio::test]
async fn large_put_writes_langgraph_postgres() {
    let Some((url, name)) = fresh_database("large_put_writes_langgraph_postgres").await else {
        return;
    };
    let backend = waymark_interfaces::backend::open(&format!("langgraph+{url}"))
        .await
        .expect("open");
    let result = tokio::spawn(run(backend, "langgraph+postgres")).await;
    drop_database(&name).await;
    result.expect("langgraph+postgres");
}

#[tokio::test]
async fn large_put_writes_postgres() {
    let Some((url, name)) = fresh_database("large_put_writes_postgres").await else {
        return;
    };
    let backend = waymark_interfaces::backend::open(&url).await.expect("open");
    let result = tokio::spawn(run(backend, "postgres")).await;
    drop_database(&name).await;
    result.expect("postgres");
}

/// A NUL in a `list` filter answers 400 ValueError on PostgreSQL and changes nothing.
async fn nul_in_list_filter_is_a_value_error(app: &TestApp, label: &str) {
    for filter in [
        json!({"source": "lo\u{0}op"}),
        json!({"a\u{0}b": 1}),
        json!({"nested": {"deep": ["x", "\u{0}"]}}),
    ] {
        let (s, b) = app
            .post(
                "/checkpointer/list",
                &json!({"config": {"thread_id": "t"}, "filter": filter}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{label}: {b}");
        assert_eq!(b["kind"], "ValueError", "{label}: {b}");
    }
    // A clean filter still works.
    let (s, b) = app
        .post(
            "/checkpointer/list",
            &json!({"config": {"thread_id": "t"}, "filter": {"source": "loop"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{label}: {b}");
}

#[tokio::test]
async fn nul_filter_postgres() {
    for layout in ["", "langgraph+"] {
        let Some((url, name)) = fresh_database("nul_filter_postgres").await else {
            return;
        };
        let label = format!("{layout}postgres");
        let backend = waymark_interfaces::backend::open(&format!("{layout}{url}"))
            .await
            .expect("open");
        let result = tokio::spawn(async move {
            let app = spawn_with(backend, ServerConfig::admin()).await;
            nul_in_list_filter_is_a_value_error(&app, &label).await;
            app.shutdown().await;
        })
        .await;
        drop_database(&name).await;
        result.expect("nul filter");
    }
}

/// Records of the largest accepted count keep statistics working and exact; a larger count is
/// a 400 that writes nothing.
async fn token_stats_survive_the_largest_counts(app: &TestApp, label: &str) {
    let max = waymark_domain::token_usage::TokenUsage::MAX_COUNT;
    const RECORDS: u64 = 8;
    for _ in 0..RECORDS {
        let (s, b) = app
            .post(
                "/api/v1/token-usage",
                &json!({"model": "m", "prompt_tokens": max, "completion_tokens": max, "total_tokens": max}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{label}: {b}");
    }
    for body in [
        json!({"model": "m", "prompt_tokens": max + 1, "completion_tokens": 0}),
        json!({"model": "m", "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": max + 1}),
        // The derived total (prompt + completion) is bounded too.
        json!({"model": "m", "prompt_tokens": max, "completion_tokens": max}),
    ] {
        let (s, b) = app.post("/api/v1/token-usage", &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{label}: {body} -> {b}");
    }
    let (s, stats) = app.get("/api/v1/token-usage/stats").await;
    assert_eq!(s, StatusCode::OK, "{label}: {stats}");
    assert_eq!(
        stats[0]["records"], RECORDS,
        "{label}: nothing else written"
    );
    assert_eq!(stats[0]["prompt_tokens"], RECORDS * max, "{label}");
    assert_eq!(stats[0]["total_tokens"], RECORDS * max, "{label}");
    let (s, by_model) = app.get("/api/v1/token-usage/stats?group_by=model").await;
    assert_eq!(s, StatusCode::OK, "{label}: {by_model}");
}

#[tokio::test]
async fn token_stats_memory_and_sqlite() {
    let app = spawn_with(
        Backend::memory_with_clock(Arc::new(waymark_domain::clock::SystemClock)),
        ServerConfig::admin(),
    )
    .await;
    token_stats_survive_the_largest_counts(&app, "memory").await;
    app.shutdown().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let app = spawn_with(
        waymark_interfaces::backend::open(&url).await.unwrap(),
        ServerConfig::admin(),
    )
    .await;
    token_stats_survive_the_largest_counts(&app, "sqlite").await;
    app.shutdown().await;
}

#[tokio::test]
async fn token_stats_postgres() {
    let Some((url, name)) = fresh_database("token_stats_postgres").await else {
        return;
    };
    let backend = waymark_interfaces::backend::open(&url).await.expect("open");
    let result = tokio::spawn(async move {
        let app = spawn_with(backend, ServerConfig::admin()).await;
        token_stats_survive_the_largest_counts(&app, "postgres").await;
        app.shutdown().await;
    })
    .await;
    drop_database(&name).await;
    result.expect("token stats on postgres");
}

/// `/history` over a latest checkpoint whose `messages` value the codec cannot read answers 422
/// with a clear error (it used to be a 500), and writes nothing.
#[tokio::test]
async fn undecodable_history_is_a_422() {
    let app = spawn_with(
        Backend::memory_with_clock(Arc::new(waymark_domain::clock::SystemClock)),
        ServerConfig::admin(),
    )
    .await;
    let (s, b) = app
        .post(
            "/checkpointer/put",
            &json!({
                "config": {"thread_id": "h", "checkpoint_ns": ""},
                "checkpoint": {"v": 4, "id": "1f1e598a-d0a1-6c3e-8001-3c2f5e0b9a71",
                    "ts": "2026-11-21T10:45:32.120433+00:00", "channel_versions": {"messages": 1},
                    "versions_seen": {}, "updated_channels": null,
                    // msgpack 42: accepted by put, but not a message list.
                    "channel_values": {"messages": {"type": "msgpack", "data": "Kg=="}}, "extra": {}},
                "metadata": {"source": "loop", "step": 1, "parents": {}},
                "new_versions": {"messages": 1},
            }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, before) = app.get("/api/v1/threads").await;
    let (s, b) = app.get("/api/v1/threads/h/history").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "undecodable_messages", "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot be decoded")),
        "{b}"
    );
    let (_, after) = app.get("/api/v1/threads").await;
    assert_eq!(before, after, "history wrote nothing");
    app.shutdown().await;
}
