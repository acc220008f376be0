//! Hostile input: every malformed request gets a clear 4xx with the error envelope, and
//! nothing is written.

mod support;

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TestApp, spawn_with};
use waymark_domain::UserScope;
use waymark_domain::checkpoint::CheckpointQuery;
use waymark_domain::clock::SystemClock;
use waymark_domain::paging::OffsetPage;
use waymark_domain::session::SessionQuery;
use waymark_domain::thread::{ThreadFilter, ThreadQuery};
use waymark_interfaces::backend::Backend;
use waymark_interfaces::http::ServerConfig;

async fn small_app() -> TestApp {
    let config = ServerConfig {
        max_body_bytes: 64 * 1024,
        max_checkpoint_body_bytes: 128 * 1024,
        // These requests name no user: they test input handling as the administrator.
        ..ServerConfig::admin()
    };
    spawn_with(Backend::memory_with_clock(Arc::new(SystemClock)), config).await
}

async fn assert_nothing_written(app: &TestApp) {
    let s = &app.backend.stores;
    let threads = s
        .threads
        .search(
            &UserScope::Unscoped,
            &ThreadQuery {
                filter: ThreadFilter::default(),
                status: None,
                session_id: None,
                page: OffsetPage::first(10).unwrap(),
            },
        )
        .await
        .unwrap();
    assert!(
        threads.items.is_empty(),
        "threads were written: {:?}",
        threads.items
    );
    let sessions = s
        .sessions
        .list(
            &UserScope::Unscoped,
            &SessionQuery {
                status: None,
                page: OffsetPage::first(10).unwrap(),
            },
        )
        .await
        .unwrap();
    assert!(sessions.items.is_empty(), "sessions were written");
    assert!(
        s.checkpoints
            .list(&CheckpointQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
}

fn assert_envelope(
    status: StatusCode,
    body: &Value,
    want_status: StatusCode,
    want_code: &str,
    what: &str,
) {
    assert_eq!(status, want_status, "{what}: {body}");
    assert_eq!(body["error"]["code"], want_code, "{what}: {body}");
    let msg = body["error"]["message"].as_str().unwrap_or("");
    assert!(!msg.is_empty(), "{what}: a message says why");
}

#[tokio::test]
async fn malformed_bodies_are_400_with_a_reason() {
    let app = small_app().await;
    let raw_cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated json",
            b"{\"thread_id\": ".to_vec(),
            "malformed_json",
        ),
        ("not json", b"thread_id=x".to_vec(), "malformed_json"),
        ("empty body", Vec::new(), "malformed_json"),
        (
            "invalid utf-8",
            b"{\"thread_id\": \"\xff\xfe\"}".to_vec(),
            "malformed_json",
        ),
        (
            "deep nesting",
            "[".repeat(10_000).into_bytes(),
            "malformed_json",
        ),
        (
            "array instead of object",
            b"[1, 2]".to_vec(),
            "invalid_body",
        ),
    ];
    for (what, body, code) in raw_cases {
        let (s, b) = app.post_raw("/api/v1/threads", body).await;
        assert_envelope(s, &b, StatusCode::BAD_REQUEST, code, what);
    }
    let json_cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "wrong id type",
            "/api/v1/threads",
            json!({"thread_id": 5}),
            "invalid_body",
        ),
        (
            "wrong metadata type",
            "/api/v1/threads",
            json!({"thread_id": "t", "metadata": "x"}),
            "invalid_body",
        ),
        (
            "unknown field",
            "/api/v1/threads",
            json!({"thread_id": "t", "owner": "mallory"}),
            "invalid_body",
        ),
        (
            "nul in metadata",
            "/api/v1/threads",
            json!({"thread_id": "t", "metadata": {"k": "v\u{0}"}}),
            "invalid_input",
        ),
        (
            "nul in key",
            "/api/v1/threads",
            json!({"thread_id": "t", "metadata": {"k\u{0}": 1}}),
            "invalid_input",
        ),
        (
            "nul in id",
            "/api/v1/threads",
            json!({"thread_id": "a\u{0}b"}),
            "invalid_input",
        ),
        (
            "control char in id",
            "/api/v1/threads",
            json!({"thread_id": "a\nb"}),
            "invalid_input",
        ),
        (
            "overlong id",
            "/api/v1/threads",
            json!({"thread_id": "x".repeat(256)}),
            "invalid_input",
        ),
        (
            "empty id",
            "/api/v1/threads",
            json!({"thread_id": ""}),
            "invalid_input",
        ),
        (
            "overlong display name",
            "/api/v1/threads",
            json!({"thread_id": "t", "display_name": "n".repeat(300)}),
            "invalid_input",
        ),
        (
            "zero policy limit",
            "/api/v1/sessions",
            json!({"checkpoint_policy": {"max_checkpoints_per_thread": 0}}),
            "invalid_input",
        ),
        (
            "negative policy limit",
            "/api/v1/sessions",
            json!({"checkpoint_policy": {"max_checkpoints_per_thread": -1}}),
            "invalid_body",
        ),
        (
            "title with nul",
            "/api/v1/sessions",
            json!({"title": "a\u{0}"}),
            "invalid_input",
        ),
        (
            "every filter key invalid",
            "/api/v1/threads/search",
            json!({"filter": {"a.b": 1, "c d": 2}}),
            "invalid_input",
        ),
        (
            "nested filter value",
            "/api/v1/threads/search",
            json!({"filter": {"a": {"b": 1}}}),
            "invalid_input",
        ),
        (
            "out-of-range filter",
            "/api/v1/threads/search",
            json!({"filter": {"n": u64::MAX}}),
            "invalid_input",
        ),
        (
            "unknown search field",
            "/api/v1/threads/search",
            json!({"where": {}}),
            "invalid_body",
        ),
        (
            "search limit too large",
            "/api/v1/threads/search",
            json!({"limit": 100_000}),
            "invalid_input",
        ),
        (
            "unknown status",
            "/api/v1/threads/search",
            json!({"status": "sleepy"}),
            "invalid_input",
        ),
        (
            "bad rating type",
            "/api/v1/threads/t/runs/r/feedback",
            json!({"rating": "up"}),
            "invalid_body",
        ),
        (
            "bad event time",
            "/api/v1/threads/t/events",
            json!({"events": [{"run_id": "r", "event_type": "x", "category": "message", "created_at": "yesterday"}]}),
            "invalid_body",
        ),
        (
            "overlong event type",
            "/api/v1/threads/t/events",
            json!({"events": [{"run_id": "r", "event_type": "e".repeat(33), "category": "message"}]}),
            "invalid_input",
        ),
        (
            "token count absurd",
            "/api/v1/token-usage",
            json!({"model": "m", "prompt_tokens": u64::MAX, "completion_tokens": 0}),
            "invalid_input",
        ),
        (
            "negative token count",
            "/api/v1/token-usage",
            json!({"model": "m", "prompt_tokens": -1, "completion_tokens": 0}),
            "invalid_body",
        ),
        (
            "item namespace with dot",
            "/api/v1/store/items/search",
            json!({"prefix": ["a.b"]}),
            "invalid_input",
        ),
        (
            "frame with nul",
            "/api/v1/messages/streams/t",
            json!({"frame": "x\u{0}"}),
            "invalid_input",
        ),
    ];
    for (what, path, body, code) in json_cases {
        let (s, b) = app.post(path, &body).await;
        assert_envelope(s, &b, StatusCode::BAD_REQUEST, code, what);
    }
    let (s, b) = app
        .send(
            app.client
                .put(app.url("/api/v1/store/items"))
                .json(&json!({"namespace": [], "key": "k", "value": {}})),
        )
        .await;
    assert_envelope(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "empty namespace",
    );
    let (s, b) = app
        .send(
            app.client
                .post(app.url("/api/v1/threads"))
                .header("content-type", "text/plain")
                .body("{}"),
        )
        .await;
    assert_envelope(
        s,
        &b,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "text/plain",
    );
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn bad_paths_and_queries_are_400() {
    let app = small_app().await;
    let cases: Vec<(&str, &str)> = vec![
        ("/api/v1/threads/a%00b", "invalid_input"),
        ("/api/v1/threads/a%0Ab/state", "invalid_input"),
        ("/api/v1/threads/%FF%FE", "invalid_path"),
        ("/api/v1/threads?colour=red", "invalid_query"),
        ("/api/v1/threads?limit=abc", "invalid_query"),
        ("/api/v1/threads?limit=-1", "invalid_query"),
        ("/api/v1/threads?limit=0", "invalid_input"),
        ("/api/v1/threads?limit=5000", "invalid_input"),
        ("/api/v1/threads?metadata=not-json", "invalid_query"),
        ("/api/v1/threads?status=x%00", "invalid_query"),
        ("/api/v1/sessions?status=weird", "invalid_input"),
        ("/api/v1/threads/t/messages?limit=0", "invalid_input"),
        ("/api/v1/threads/t/messages?before_seq=x", "invalid_query"),
        ("/api/v1/threads/t/checkpoints?before=", "invalid_input"),
        ("/api/v1/threads/t/snapshots/not-a-uuid", "invalid_input"),
        (
            "/api/v1/threads/t/runs/r/events?event_types=a,,b",
            "invalid_input",
        ),
        ("/api/v1/token-usage/stats?from=yesterday", "invalid_query"),
        (
            "/api/v1/store/items?namespace=a&key=k&extra=1",
            "invalid_query",
        ),
    ];
    for (path, code) in cases {
        let (s, b) = app.get(path).await;
        assert_envelope(s, &b, StatusCode::BAD_REQUEST, code, path);
    }
    let long = format!("/api/v1/threads/{}", "x".repeat(300));
    let (s, b) = app.get(&long).await;
    assert_envelope(
        s,
        &b,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "overlong path id",
    );
    let (s, b) = app.get("/api/v1/nothing-here").await;
    assert_envelope(
        s,
        &b,
        StatusCode::NOT_FOUND,
        "route_not_found",
        "unknown route",
    );
    let (s, b) = app
        .send(app.client.put(app.url("/api/v1/threads/search")))
        .await;
    assert_envelope(
        s,
        &b,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "wrong method",
    );
    assert_nothing_written(&app).await;
}

/// Sends `total` bytes of whitespace as a chunked body over a raw connection.
async fn chunked_post(app: &TestApp, path: &str, total: usize) -> (StatusCode, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 8192];
    let mut sent = 0;
    while sent < total {
        let frame = format!("{:x}\r\n", chunk.len());
        if conn.write_all(frame.as_bytes()).await.is_err()
            || conn.write_all(&chunk).await.is_err()
            || conn.write_all(b"\r\n").await.is_err()
        {
            break; // the server stopped reading: it has answered
        }
        sent += chunk.len();
    }
    let _ = conn.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = conn.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    // The body may itself be chunked; take the JSON object inside.
    let json_text = body
        .find('{')
        .zip(body.rfind('}'))
        .map(|(a, b)| &body[a..=b])
        .unwrap_or("null");
    (
        StatusCode::from_u16(status).unwrap(),
        serde_json::from_str(json_text).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn oversized_bodies_are_413_on_both_surfaces() {
    let app = small_app().await;
    let big = json!({"thread_id": "t", "metadata": {"blob": "x".repeat(100 * 1024)}});
    let (s, b) = app.post("/api/v1/threads", &big).await;
    assert_envelope(
        s,
        &b,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "content-length over the limit",
    );
    // A chunked body without Content-Length is cut off while it is read.
    let (s, b) = chunked_post(&app, "/api/v1/threads", 200 * 1024).await;
    assert_envelope(
        s,
        &b,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "chunked over the limit",
    );

    let huge_checkpoint = json!({"config": {"thread_id": "t"}, "checkpoint": {"v": 1, "id": "c", "ts": "",
        "channel_values": {"x": {"type": "bytes", "data": "A".repeat(200 * 1024)}}}});
    let (s, b) = app.post("/checkpointer/put", &huge_checkpoint).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert_eq!(b["kind"], "ValueError");
    assert_nothing_written(&app).await;
}
