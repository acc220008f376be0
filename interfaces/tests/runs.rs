//! The runs API end to end over HTTP, against in-memory stores: the lifecycle and the thread
//! status it leaves, cursor paging, bad input, another user's runs, and the derived status of
//! the thread read endpoint.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{TestApp, spawn_app};

async fn call(
    app: &TestApp,
    user: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app.client.request(method, app.url(path));
    if let Some(u) = user {
        req = req.header("x-waymark-user", u);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    app.send(req).await
}

async fn thread(app: &TestApp, user: Option<&str>, id: &str) {
    let (s, b) = call(
        app,
        user,
        Method::POST,
        "/api/v1/threads",
        Some(json!({"thread_id": id})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}

async fn thread_status(app: &TestApp, id: &str) -> (String, String) {
    let (s, t) = app.get(&format!("/api/v1/threads/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    (
        t["status"].as_str().unwrap().to_owned(),
        t["stored_status"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_run_goes_through_its_lifecycle_and_sets_the_thread_status() {
    let app = spawn_app().await;
    thread(&app, None, "t").await;
    let (s, run) = app
        .post(
            "/api/v1/threads/t/runs",
            &json!({"run_id": "r1", "metadata": {"graph": "agent"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{run}");
    assert_eq!(run["status"], "pending");
    assert_eq!(run["metadata"], json!({"graph": "agent"}));
    assert!(run["created_at"].as_str().unwrap().ends_with("+00:00"));
    assert_eq!(
        thread_status(&app, "t").await,
        ("running".into(), "running".into())
    );
    let (s, e) = app.post("/api/v1/threads/t/runs", &json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "one active run per thread: {e}");

    let (s, started) = app
        .post(
            "/api/v1/threads/t/runs/r1/start",
            &json!({"worker_id": "w1", "lease_seconds": 60}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{started}");
    assert_eq!(started["status"], "running");
    assert_eq!(started["worker_id"], "w1");
    assert_eq!(started["attempt"], 1);
    assert!(started["lease_expires_at"].is_string());
    let (s, _) = app
        .post(
            "/api/v1/threads/t/runs/r1/start",
            &json!({"worker_id": "w2"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "start is a compare-and-set");

    let (s, _) = app
        .post(
            "/api/v1/threads/t/runs/r1/heartbeat",
            &json!({"worker_id": "w2"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "only the lease holder renews");
    let (s, beat) = app
        .post(
            "/api/v1/threads/t/runs/r1/heartbeat",
            &json!({"worker_id": "w1", "progress": {"step": 2}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{beat}");
    assert_eq!(beat["progress"], json!({"step": 2}));

    let (s, done) = app
        .post(
            "/api/v1/threads/t/runs/r1/finish",
            &json!({"status": "success"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "success");
    assert!(done["ended_at"].is_string() && done["worker_id"].is_null());
    assert_eq!(
        thread_status(&app, "t").await,
        ("idle".into(), "idle".into())
    );
    let (s, _) = app
        .post(
            "/api/v1/threads/t/runs/r1/finish",
            &json!({"status": "error"}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "a final status is never overwritten"
    );
    let (s, again) = app
        .post(
            "/api/v1/threads/t/runs/r1/finish",
            &json!({"status": "success"}),
        )
        .await;
    assert_eq!((s, &again["status"]), (StatusCode::OK, &json!("success")));
    let (s, _) = app
        .post(
            "/api/v1/threads/t/runs/r1/heartbeat",
            &json!({"worker_id": "w1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "an ended run takes no heartbeat");

    // error -> error, timeout -> timeout, cancel -> interrupted.
    for (id, status, want) in [("r2", "error", "error"), ("r3", "timeout", "timeout")] {
        app.post("/api/v1/threads/t/runs", &json!({"run_id": id}))
            .await;
        let (s, b) = app
            .post(
                &format!("/api/v1/threads/t/runs/{id}/finish"),
                &json!({"status": status, "error": "why"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["error"], "why");
        assert_eq!(thread_status(&app, "t").await.1, want);
    }
    app.post("/api/v1/threads/t/runs", &json!({"run_id": "r4"}))
        .await;
    let (s, cancelled) = app
        .post("/api/v1/threads/t/runs/r4/cancel", &json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "interrupted");
    assert_eq!(cancelled["error"], "cancelled");
    assert_eq!(thread_status(&app, "t").await.1, "interrupted");

    let (s, got) = app.get("/api/v1/threads/t/runs/r1").await;
    assert_eq!((s, &got["progress"]), (StatusCode::OK, &json!({"step": 2})));
    let (s, _) = app.get("/api/v1/threads/t/runs/ghost").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Deleting the thread removes its runs.
    let (s, _) = app
        .send(app.client.delete(app.url("/api/v1/threads/t")))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.get("/api/v1/threads/t/runs/r1").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn run_lists_are_newest_first_with_a_cursor() {
    let app = spawn_app().await;
    thread(&app, None, "t").await;
    for i in 0..5 {
        let id = format!("r{i}");
        let (s, _) = app
            .post("/api/v1/threads/t/runs", &json!({"run_id": id}))
            .await;
        assert_eq!(s, StatusCode::CREATED);
        app.post(&format!("/api/v1/threads/t/runs/{id}/cancel"), &json!({}))
            .await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/threads/t/runs?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let (s, page) = app.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        pages += 1;
        for r in page["data"].as_array().unwrap() {
            seen.push(r["run_id"].as_str().unwrap().to_owned());
        }
        if page["has_more"] == false {
            assert!(page["next_cursor"].is_null());
            break;
        }
        let cursor = page["next_cursor"].as_str().unwrap();
        path = format!(
            "/api/v1/threads/t/runs?limit=2&cursor={}",
            urlencode(cursor)
        );
    }
    assert_eq!(pages, 3);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 5, "every run once: {seen:?}");
    // Created one after another, so the newest (r4) comes first.
    assert_eq!(seen[0], "r4");

    let (s, _) = app.get("/api/v1/threads/t/runs?cursor=garbage").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app.get("/api/v1/threads/t/runs?limit=0").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app.get("/api/v1/threads/t/runs?limit=1001").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn bad_input_is_a_400_and_writes_nothing() {
    let app = spawn_app().await;
    thread(&app, None, "t").await;
    for body in [
        json!({"run_id": ""}),
        json!({"metadata": {"k": "\u{0}"}}),
        json!({"unknown": 1}),
    ] {
        let (s, e) = app.post("/api/v1/threads/t/runs", &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {e}");
    }
    let (_, list) = app.get("/api/v1/threads/t/runs").await;
    assert_eq!(list["data"], json!([]));
    assert_eq!(thread_status(&app, "t").await.1, "idle");

    app.post("/api/v1/threads/t/runs", &json!({"run_id": "r"}))
        .await;
    for (path, body) in [
        ("start", json!({"worker_id": "w", "lease_seconds": 0})),
        ("start", json!({"worker_id": ""})),
        ("finish", json!({"status": "pending"})),
        ("finish", json!({"status": "error", "error": "x\u{0}"})),
    ] {
        let (s, e) = app
            .post(&format!("/api/v1/threads/t/runs/r/{path}"), &body)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path} {body}: {e}");
    }
    let (_, r) = app.get("/api/v1/threads/t/runs/r").await;
    assert_eq!(r["status"], "pending");
    let (s, _) = app.post("/api/v1/threads/missing/runs", &json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_users_runs_read_as_not_found() {
    let app = spawn_app().await;
    thread(&app, Some("alice"), "mine").await;
    let (s, _) = call(
        &app,
        Some("alice"),
        Method::POST,
        "/api/v1/threads/mine/runs",
        Some(json!({"run_id": "r"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    for (method, path, body) in [
        (Method::GET, "/api/v1/threads/mine/runs/r", None),
        (Method::GET, "/api/v1/threads/mine/runs", None),
        (Method::POST, "/api/v1/threads/mine/runs", Some(json!({}))),
        (
            Method::POST,
            "/api/v1/threads/mine/runs/r/start",
            Some(json!({"worker_id": "w"})),
        ),
        (
            Method::POST,
            "/api/v1/threads/mine/runs/r/finish",
            Some(json!({"status": "error"})),
        ),
        (Method::POST, "/api/v1/threads/mine/runs/r/cancel", None),
    ] {
        let (s, e) = call(&app, Some("bob"), method.clone(), path, body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path}: {e}");
    }
    let (_, r) = call(
        &app,
        Some("alice"),
        Method::GET,
        "/api/v1/threads/mine/runs/r",
        None,
    )
    .await;
    assert_eq!(r["status"], "pending");
}

#[tokio::test]
async fn the_thread_read_endpoint_derives_its_status_from_the_latest_checkpoint() {
    let app = spawn_app().await;
    thread(&app, None, "t").await;
    assert_eq!(
        thread_status(&app, "t").await,
        ("idle".into(), "idle".into())
    );
    let (s, b) = app
        .post(
            "/checkpointer/put",
            &json!({
                "config": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": null},
                "checkpoint": {"v": 4, "id": "c1", "ts": "2026-01-01T00:00:00+00:00",
                    "channel_versions": {}, "versions_seen": {}, "updated_channels": null,
                    "channel_values": {}, "extra": {}},
                "metadata": {"source": "loop", "step": 0, "parents": {}},
                "new_versions": {},
            }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let put_write = |channel: &'static str| {
        json!({"config": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c1"},
               "writes": [{"channel": channel, "value": {"type": "msgpack", "data": "pWhlbGxv"}}],
               "task_id": format!("task-{channel}")})
    };
    let (s, b) = app
        .post("/checkpointer/put_writes", &put_write("__interrupt__"))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        thread_status(&app, "t").await,
        ("interrupted".into(), "idle".into())
    );
    app.post("/checkpointer/put_writes", &put_write("__error__"))
        .await;
    assert_eq!(thread_status(&app, "t").await.0, "error");
    // While a run is active the thread reports running.
    app.post("/api/v1/threads/t/runs", &json!({"run_id": "r"}))
        .await;
    assert_eq!(thread_status(&app, "t").await.0, "running");
    // Search still filters on the stored column.
    let (_, found) = app.get("/api/v1/threads?status=running").await;
    assert_eq!(found["data"][0]["thread_id"], "t");
    assert!(found["data"][0].get("stored_status").is_none());
}
