//! Black-box tests of the server's resource bounds (issue 11): idle, header-read and
//! body-read timeouts, the connection limit, the budget of request bodies in flight and the
//! budget of chat-stream buffers. Each runs a server on 127.0.0.1:0 with short limits and
//! talks raw HTTP/1.1 over TCP where a well-behaved client would hide what is tested.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TestApp, spawn_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use waymark_domain::clock::SystemClock;
use waymark_interfaces::backend::Backend;
use waymark_interfaces::http::ServerConfig;

/// Settings with every bound long enough not to interfere, for one test to shorten.
fn relaxed() -> ServerConfig {
    ServerConfig {
        header_read_timeout: Duration::from_secs(30),
        body_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        ..ServerConfig::admin()
    }
}

async fn spawn(config: ServerConfig) -> TestApp {
    spawn_with(Backend::memory_with_clock(Arc::new(SystemClock)), config).await
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection; returns what it sent and how long the
/// close took. Fails the test if the connection is still open after `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, Duration) {
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(start + within),
            stream.read(&mut buf),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the connection was still open after {within:?}; received {:?}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
    (String::from_utf8_lossy(&seen).into_owned(), start.elapsed())
}

/// Reads one complete response with a `Content-Length` body from a kept-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .expect("read");
        assert!(n > 0, "closed before a whole answer: {seen:?}");
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if seen.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

fn body_of(response: &str) -> Value {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let app = spawn(ServerConfig {
        idle_timeout: Duration::from_millis(300),
        ..relaxed()
    })
    .await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let first = read_response(&mut s).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // Still open while within the timeout: a second request is served on it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
    let (rest, took) = read_until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(rest.is_empty(), "nothing more was sent: {rest:?}");
    assert!(
        took >= Duration::from_millis(250),
        "closed only after the idle timeout, took {took:?}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_client_sending_half_a_request_head_is_cut_off_after_the_header_timeout() {
    let app = spawn(ServerConfig {
        header_read_timeout: Duration::from_millis(300),
        ..relaxed()
    })
    .await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .unwrap();
    let (_, took) = read_until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(took >= Duration::from_millis(250), "took {took:?}");

    // A connection that never sends anything is closed by the same timeout, although the
    // idle timeout (between requests) is long.
    let mut silent = TcpStream::connect(addr(&app)).await.unwrap();
    read_until_closed(&mut silent, Duration::from_secs(3)).await;

    // The head timeout counts from the request's first byte, not from the previous answer:
    // a kept-alive connection idle for longer than it still serves the next request.
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_client_sending_half_a_body_is_answered_408_and_cut_off() {
    let app = spawn(ServerConfig {
        body_read_timeout: Duration::from_millis(300),
        ..relaxed()
    })
    .await;
    for (path, envelope) in [
        ("/api/v1/threads", "rest"),
        ("/checkpointer/get_tuple", "checkpointer"),
    ] {
        let mut s = TcpStream::connect(addr(&app)).await.unwrap();
        s.write_all(
            format!(
                "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                 content-length: 100\r\n\r\n{{\"thread_id\": "
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let (answer, took) = read_until_closed(&mut s, Duration::from_secs(3)).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
        assert!(took >= Duration::from_millis(250), "took {took:?}");
        let body = body_of(&answer);
        match envelope {
            "rest" => assert_eq!(body["error"]["code"], "body_timeout", "{body}"),
            _ => assert_eq!(body["kind"], "TimeoutError", "{body}"),
        }
    }
    // The server is fine afterwards.
    let (s, _) = app.get("/health").await;
    assert_eq!(s, StatusCode::OK);
    app.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_and_are_served_when_a_slot_frees() {
    let app = spawn(ServerConfig {
        max_connections: 2,
        ..relaxed()
    })
    .await;
    // Two silent connections hold both slots.
    let mut holders = Vec::new();
    for _ in 0..2 {
        holders.push(TcpStream::connect(addr(&app)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Many more clients connect meanwhile; none breaks the server.
    let mut waiting = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr(&app)).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        waiting.push(s);
    }
    let mut probe = waiting.remove(0);
    let mut buf = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), probe.read(&mut buf))
            .await
            .is_err(),
        "no answer while every slot is taken"
    );
    // One holder leaves: the waiting clients are served one after another.
    drop(holders.pop());
    let (answer, _) = read_until_closed(&mut probe, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    for mut s in waiting {
        let (answer, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    drop(holders);
    let (s, _) = app.get("/health").await;
    assert_eq!(s, StatusCode::OK);
    app.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_closes_idle_connections_without_waiting_for_the_idle_timeout() {
    let app = spawn(relaxed()).await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    app.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    read_until_closed(&mut s, Duration::from_secs(1)).await;
}

/// Sends the head and `sent` bytes of a body declared `declared` bytes long, leaving the
/// rest for later.
async fn start_upload(app: &TestApp, path: &str, declared: usize, sent: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr(app)).await.unwrap();
    s.write_all(
        format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {declared}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    s.write_all(&vec![b' '; sent]).await.unwrap();
    s
}

#[tokio::test]
async fn bodies_beyond_the_in_flight_budget_are_refused_with_503_and_retry_after() {
    const KIB: usize = 1024;
    let app = spawn(ServerConfig {
        max_body_bytes: 64 * KIB,
        max_checkpoint_body_bytes: 64 * KIB,
        max_inflight_body_bytes: 96 * KIB,
        ..relaxed()
    })
    .await;
    // A slow upload holds 64 KiB of the budget while it arrives.
    let mut slow = start_upload(&app, "/api/v1/threads", 64 * KIB, KIB).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    // 40 KiB more does not fit: refused at once, unread, in each surface's envelope.
    let big = json!({"thread_id": "x".repeat(40 * KIB)});
    let r = app
        .client
        .post(format!("{}/api/v1/threads", app.base))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("retry"),
        "{body}"
    );
    let r = app
        .client
        .post(format!("{}/checkpointer/put", app.base))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["kind"], "ConnectionError", "{body}");

    // A chunked body (no declared size) is charged as it arrives, and refused the same way.
    let mut chunked = TcpStream::connect(addr(&app)).await.unwrap();
    chunked
        .write_all(
            b"POST /api/v1/threads HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              transfer-encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    for _ in 0..40 {
        let mut chunk = b"400\r\n".to_vec();
        chunk.extend(vec![b' '; KIB]);
        chunk.extend(b"\r\n");
        if chunked.write_all(&chunk).await.is_err() {
            break; // the server answered and closed already
        }
    }
    let _ = chunked.write_all(b"0\r\n\r\n").await;
    let (answer, _) = read_until_closed(&mut chunked, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert_eq!(body_of(&answer)["error"]["code"], "overloaded", "{answer}");

    // Small bodies still fit beside the slow one.
    let (s, _) = app
        .post("/api/v1/threads", &json!({"thread_id": "small"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);

    // When the slow upload completes, its share returns and the large body is accepted.
    slow.write_all(&vec![b' '; 63 * KIB]).await.unwrap();
    let answer = read_response(&mut slow).await;
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "blank JSON is a 400: {answer}"
    );
    let (s, o) = app
        .post(
            "/api/v1/threads",
            &json!({"thread_id": "y".repeat(40 * KIB)}),
        )
        .await;
    assert_ne!(s, StatusCode::SERVICE_UNAVAILABLE, "{o}");
    app.shutdown().await;
}

#[tokio::test]
async fn chat_stream_buffers_share_one_budget_and_a_frame_beyond_it_is_refused_with_503() {
    let backend = Backend::memory_with_clock(Arc::new(SystemClock));
    let app = spawn_with(
        backend.clone(),
        ServerConfig {
            chat_streams: waymark_application::ChatStreamConfig {
                max_bytes: 100,
                max_total_bytes: 150,
                ..Default::default()
            },
            ..ServerConfig::admin()
        },
    )
    .await;
    for t in ["a", "b"] {
        let (s, o) = app
            .post(
                &format!("/api/v1/messages/streams/{t}"),
                &json!({"frame": "x".repeat(70), "finish_reason": "tool_calls"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{o}");
    }
    let r = app
        .client
        .post(format!("{}/api/v1/messages/streams/c", app.base))
        .json(&json!({"frame": "x".repeat(20), "finish_reason": "stop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "buffer_budget_exhausted", "{body}");
    let stored = backend
        .stores
        .chat_streams
        .get(
            &waymark_domain::UserScope::Unscoped,
            &waymark_domain::ThreadId::parse("c").unwrap(),
        )
        .await
        .unwrap();
    assert!(stored.is_none(), "nothing was stored for the refused frame");
    // Once a stream ends, its bytes return to the budget.
    let (s, _) = app.post("/api/v1/messages/streams/a/end", &json!({})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, o) = app
        .post(
            "/api/v1/messages/streams/c",
            &json!({"frame": "x".repeat(20), "finish_reason": "stop"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{o}");
    app.shutdown().await;
}
