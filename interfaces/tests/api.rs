//! The REST API end to end over HTTP, against in-memory stores.

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TestApp, spawn_app, spawn_with};
use waymark_adapters::codec::{Message, MessageClass, ToolCall, encode_messages};
use waymark_interfaces::backend::Backend;
use waymark_interfaces::http::ServerConfig;

const USER_A: &str = "alice";
const USER_B: &str = "bob";

impl TestApp {
    async fn as_user(
        &self,
        user: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, self.url(path))
            .header("x-waymark-user", user);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }
}

fn messages_value() -> Value {
    let human = Message::new(MessageClass::Human, "What is 6 x 7?");
    let mut ai = Message::new(MessageClass::Ai, "");
    ai.tool_calls = vec![ToolCall::new(
        "calc",
        json!({"expr": "6*7"}),
        Some("call-1".into()),
    )];
    let mut tool = Message::new(MessageClass::Tool, "42");
    tool.tool_call_id = Some("call-1".into());
    let answer = Message::new(MessageClass::Ai, "42");
    let typed = encode_messages(&[human, ai, tool, answer]).unwrap();
    json!({"type": typed.type_tag(), "data": STANDARD.encode(typed.bytes())})
}

async fn put_checkpoint(
    app: &TestApp,
    thread: &str,
    parent: Option<&str>,
    id: &str,
    step: i64,
    values: Value,
) {
    let versions: serde_json::Map<String, Value> = values
        .as_object()
        .unwrap()
        .keys()
        .map(|k| (k.clone(), json!(step + 2)))
        .collect();
    let (s, b) = app
        .post(
            "/checkpointer/put",
            &json!({
                "config": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": parent},
                "checkpoint": {"v": 4, "id": id, "ts": "2026-01-01T00:00:00+00:00",
                    "channel_versions": versions.clone(), "versions_seen": {}, "updated_channels": null,
                    "channel_values": values, "extra": {}},
                "metadata": {"source": "loop", "step": step, "parents": {}},
                "new_versions": versions,
            }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test]
async fn service_endpoints_answer() {
    let app = spawn_app().await;
    let (s, h) = app.get("/health").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["status"], "ok");
    assert_eq!(h["backend"], "memory");
    let (s, doc) = app.get("/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["paths"]["/api/v1/threads"].is_object());
    let docs = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    let html = docs.text().await.unwrap();
    assert!(
        html.contains("/openapi.json") && !html.contains("https://"),
        "no CDN at runtime"
    );
    app.get("/api/v1/threads").await;
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "waymark_http_requests_total{method=\"GET\",route=\"/api/v1/threads\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "waymark_store_operation_duration_seconds_count{operation=\"checkpoints.get_tuple\""
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "waymark_store_operation_duration_seconds_count{operation=\"threads.search\",outcome=\"ok\"} 1"
        ),
        "service calls are timed too: {metrics}"
    );
}

#[tokio::test]
async fn sessions_and_threads_lifecycle() {
    let app = spawn_app().await;
    let (s, session) = app
        .post("/api/v1/sessions", &json!({"session_id": "s1", "title": "Work", "checkpoint_policy": {"max_checkpoints_per_thread": 5}}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{session}");
    assert_eq!(
        session["checkpoint_policy"]["max_checkpoints_per_thread"],
        5
    );
    assert!(session["created_at"].as_str().unwrap().ends_with("+00:00"));
    let (s, _) = app
        .post("/api/v1/sessions", &json!({"session_id": "s1"}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);

    for (id, project) in [("t1", "x"), ("t2", "y"), ("t3", "x")] {
        let (s, t) = app
            .post(
                "/api/v1/threads",
                &json!({"thread_id": id, "session_id": "s1", "metadata": {"project": project}}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        assert_eq!(t["status"], "idle");
    }
    let (s, _) = app
        .post(
            "/api/v1/threads",
            &json!({"thread_id": "t9", "session_id": "missing"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (_, pinned) = app
        .send(app.client.put(app.url("/api/v1/threads/t1/pin")))
        .await;
    assert_eq!(pinned["pinned"], true);
    let (s, found) = app
        .post(
            "/api/v1/threads/search",
            &json!({"filter": {"project": "x"}, "limit": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(found["data"][0]["thread_id"], "t1", "pinned first");
    assert_eq!(found["has_more"], true);
    let (_, by_query) = app
        .get("/api/v1/threads?metadata=%7B%22project%22%3A%22y%22%7D")
        .await;
    assert_eq!(by_query["data"].as_array().unwrap().len(), 1);
    assert_eq!(by_query["data"][0]["thread_id"], "t2");

    let (s, patched) = app
        .send(app.client.patch(app.url("/api/v1/threads/t2")).json(
            &json!({"display_name": "Second", "status": "interrupted", "metadata": {"k": 1}}),
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{patched}");
    assert_eq!(
        (patched["display_name"].as_str(), patched["status"].as_str()),
        (Some("Second"), Some("interrupted"))
    );
    assert_eq!(patched["metadata"], json!({"project": "y", "k": 1}));
    let (_, cleared) = app
        .send(
            app.client
                .patch(app.url("/api/v1/threads/t2"))
                .json(&json!({"display_name": null, "session_id": null})),
        )
        .await;
    assert_eq!(cleared["display_name"], Value::Null);
    assert_eq!(cleared["session_id"], Value::Null);

    let (_, in_session) = app.get("/api/v1/sessions/s1/threads").await;
    assert_eq!(in_session["data"].as_array().unwrap().len(), 2);
    let (s, _) = app
        .send(
            app.client
                .delete(app.url("/api/v1/sessions/s1?delete_threads=true")),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.get("/api/v1/threads/t1").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.get("/api/v1/threads/t2").await;
    assert_eq!(s, StatusCode::OK, "detached threads survive");
    let (s, e) = app.get("/api/v1/sessions/s1").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(e["error"]["code"], "not_found");
}

#[tokio::test]
async fn another_users_data_reads_as_not_found() {
    let app = spawn_app().await;
    use reqwest::Method;
    let (s, _) = app
        .as_user(
            USER_A,
            Method::POST,
            "/api/v1/threads",
            Some(json!({"thread_id": "mine"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = app
        .as_user(USER_A, Method::GET, "/api/v1/threads/mine", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, e) = app
        .as_user(USER_B, Method::GET, "/api/v1/threads/mine", None)
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (s, _) = app
        .as_user(
            USER_B,
            Method::PATCH,
            "/api/v1/threads/mine",
            Some(json!({"display_name": "stolen"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .as_user(USER_B, Method::DELETE, "/api/v1/threads/mine", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, list) = app
        .as_user(USER_B, Method::GET, "/api/v1/threads", None)
        .await;
    assert_eq!(list["data"], json!([]));
    let (s, _) = app
        .as_user(
            USER_B,
            Method::POST,
            "/api/v1/threads",
            Some(json!({"thread_id": "mine"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "another owner's id");
    let (_, still) = app
        .as_user(USER_A, Method::GET, "/api/v1/threads/mine", None)
        .await;
    assert_eq!(still["display_name"], Value::Null);
    assert_eq!(still["owner"], USER_A);
    let too_long = "u".repeat(300);
    let (s, e) = app
        .as_user(&too_long, Method::GET, "/api/v1/threads", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
}

#[tokio::test]
async fn checkpoints_state_history_diff_branches_snapshots() {
    let app = spawn_app().await;
    app.post("/api/v1/threads", &json!({"thread_id": "t"}))
        .await;
    put_checkpoint(
        &app,
        "t",
        None,
        "c1",
        -1,
        json!({"counter": {"type": "msgpack", "data": "AQ=="}}),
    )
    .await;
    put_checkpoint(
        &app,
        "t",
        Some("c1"),
        "c2",
        0,
        json!({"counter": {"type": "msgpack", "data": "Ag=="}, "messages": messages_value()}),
    )
    .await;
    put_checkpoint(
        &app,
        "t",
        Some("c2"),
        "c3",
        1,
        json!({"counter": {"type": "msgpack", "data": "Aw=="}, "messages": messages_value()}),
    )
    .await;
    app.post(
        "/checkpointer/put_writes",
        &json!({"config": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c3"},
                "writes": [{"channel": "__interrupt__", "value": {"type": "msgpack", "data": "pWhlbGxv"}}],
                "task_id": "task-1"}),
    )
    .await;

    let (s, st) = app.get("/api/v1/threads/t/state").await;
    assert_eq!(s, StatusCode::OK, "{st}");
    assert_eq!(st["checkpoint_id"], "c3");
    assert_eq!(st["parent_checkpoint_id"], "c2");
    assert_eq!(st["channels"]["counter"]["value"], 3);
    assert_eq!(st["messages"].as_array().unwrap().len(), 4);
    assert_eq!(st["messages"][1]["tool_calls"][0]["name"], "calc");
    assert_eq!(st["interrupts"], json!(["hello"]));
    assert_eq!(st["pending_writes"][0]["idx"], -3);
    assert!(st["channels"]["counter"].get("data").is_none());
    let (_, raw) = app.get("/api/v1/threads/t/checkpoints/c1?raw=true").await;
    assert_eq!(raw["channels"]["counter"]["data"], "AQ==");

    let (_, page1) = app.get("/api/v1/threads/t/checkpoints?limit=2").await;
    let ids: Vec<&str> = page1["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["checkpoint_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c3", "c2"]);
    assert_eq!(page1["has_more"], true);
    assert_eq!(page1["data"][0]["write_channels"], json!(["__interrupt__"]));
    assert_eq!(page1["data"][1]["step"], 0);
    let next = page1["next_before"].as_str().unwrap();
    let (_, page2) = app
        .get(&format!(
            "/api/v1/threads/t/checkpoints?limit=2&before={next}"
        ))
        .await;
    assert_eq!(page2["data"][0]["checkpoint_id"], "c1");
    assert_eq!(page2["has_more"], false);

    let (s, diff) = app.get("/api/v1/threads/t/checkpoints/c1/diff/c2").await;
    assert_eq!(s, StatusCode::OK, "{diff}");
    assert_eq!(diff["added"], json!(["messages"]));
    let (_, summary) = app.get("/api/v1/threads/t/summary").await;
    assert_eq!(summary["checkpoints"], 3);
    assert_eq!(summary["newest"], "c3");

    let (s, snap) = app
        .post(
            "/api/v1/threads/t/snapshots",
            &json!({"name": "before change", "checkpoint_id": "c2"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{snap}");
    let (s, _) = app
        .post(
            "/api/v1/threads/t/snapshots",
            &json!({"name": "before change"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let sid = snap["snapshot_id"].as_str().unwrap();
    let (_, at_snap) = app.get(&format!("/api/v1/threads/t/snapshots/{sid}")).await;
    assert_eq!(at_snap["checkpoint_id"], "c2");

    let (s, fork) = app
        .post(
            "/api/v1/threads/t/branches",
            &json!({"name": "alt", "checkpoint_id": "c2", "thread_id": "t-alt"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{fork}");
    assert_eq!(fork["thread"]["thread_id"], "t-alt");
    let (_, alt) = app.get("/api/v1/threads/t-alt/state").await;
    assert_eq!(alt["channels"]["counter"]["value"], 2);
    let (_, branches) = app.get("/api/v1/threads/t/branches").await;
    assert_eq!(branches[0]["name"], "alt");

    let (s, rolled) = app
        .post(
            "/api/v1/threads/t/rollback",
            &json!({"checkpoint_id": "c1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{rolled}");
    assert_eq!(rolled["channels"]["counter"]["value"], 1);
    assert_ne!(rolled["checkpoint_id"], "c1");

    let (s, _) = app.get("/api/v1/threads/t/checkpoints/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .send(app.client.delete(app.url("/api/v1/threads/t")))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, gone) = app
        .post(
            "/checkpointer/get_tuple",
            &json!({"config": {"thread_id": "t"}}),
        )
        .await;
    assert_eq!(
        gone["tuple"],
        Value::Null,
        "deleting a thread deletes its checkpoints"
    );
}

async fn append(app: &TestApp, thread: &str, run: &str, events: Vec<(&str, &str, Value)>) -> Value {
    let events: Vec<Value> = events
        .into_iter()
        .map(|(et, cat, content)| json!({"run_id": run, "event_type": et, "category": cat, "content": content}))
        .collect();
    let (s, b) = app
        .post(
            &format!("/api/v1/threads/{thread}/events"),
            &json!({"events": events}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b
}

#[tokio::test]
async fn message_pages_look_ahead_both_directions() {
    let app = spawn_app().await;
    app.post("/api/v1/threads", &json!({"thread_id": "m"}))
        .await;
    let mut events = Vec::new();
    for i in 0..5 {
        events.push((
            "llm.human.input",
            "message",
            json!({"type": "human", "content": format!("q{i}"), "id": null}),
        ));
        events.push(("run.start", "trace", json!({"chain": "x"})));
    }
    let stored = append(&app, "m", "r1", events).await;
    assert_eq!(stored["data"][9]["seq"], 10);

    let (_, latest) = app.get("/api/v1/threads/m/messages?limit=2").await;
    let seqs = |p: &Value| -> Vec<i64> {
        p["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seq"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(seqs(&latest), [7, 9]);
    assert_eq!(latest["has_more"], true);
    assert_eq!(latest["next_before_seq"], 7);
    let (_, older) = app
        .get("/api/v1/threads/m/messages?limit=2&before_seq=7")
        .await;
    assert_eq!(seqs(&older), [3, 5]);
    assert_eq!(older["has_more"], true);
    let (_, oldest) = app
        .get("/api/v1/threads/m/messages?limit=2&before_seq=3")
        .await;
    assert_eq!(seqs(&oldest), [1]);
    assert_eq!(oldest["has_more"], false);
    let (_, forward) = app
        .get("/api/v1/threads/m/messages?limit=3&after_seq=1")
        .await;
    assert_eq!(seqs(&forward), [3, 5, 7]);
    assert_eq!(forward["has_more"], true);
    assert_eq!(forward["next_after_seq"], 7);
    let (_, end) = app
        .get("/api/v1/threads/m/messages?limit=3&after_seq=7")
        .await;
    assert_eq!(seqs(&end), [9]);
    assert_eq!(end["has_more"], false);
    let (s, e) = app
        .get("/api/v1/threads/m/messages?before_seq=3&after_seq=1")
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );

    let (_, run_events) = app
        .get("/api/v1/threads/m/runs/r1/events?event_types=run.start&limit=2")
        .await;
    assert_eq!(seqs(&run_events), [2, 4]);
    assert_eq!(run_events["has_more"], true);
    let (_, history) = app.get("/api/v1/threads/m/history").await;
    assert_eq!(history["source"], "event_store");
    assert_eq!(history["messages"].as_array().unwrap().len(), 5);
    assert!(
        history["messages"][0]["id"].is_string(),
        "stable ids are filled in"
    );
    let (_, feed) = app.get("/api/v1/threads/m/feed?limit=2").await;
    assert_eq!(feed["data"].as_array().unwrap().len(), 2);
    assert_eq!(feed["has_more"], true);
    let (s, _) = app.get("/api/v1/threads/m/feed?after_seq=1").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    let (s, deleted) = app
        .send(
            app.client
                .delete(app.url("/api/v1/threads/m/runs/r1/events")),
        )
        .await;
    assert_eq!((s, deleted["deleted"].as_u64()), (StatusCode::OK, Some(10)));
    // The first write to an unused id claims the thread for its writer; another user's
    // write to it is then refused like a write to a thread that does not exist.
    let events = json!({"events": [{"run_id": "r", "event_type": "x", "category": "message"}]});
    let path = "/api/v1/threads/new-thread/events";
    let (s, _) = app
        .as_user(USER_A, reqwest::Method::POST, path, Some(events.clone()))
        .await;
    assert_eq!(s, StatusCode::CREATED, "a first write claims the id");
    let (_, t) = app
        .as_user(
            USER_A,
            reqwest::Method::GET,
            "/api/v1/threads/new-thread",
            None,
        )
        .await;
    assert_eq!(t["owner"], USER_A);
    let (s, _) = app
        .as_user(USER_B, reqwest::Method::POST, path, Some(events))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another user's thread");
}

#[tokio::test]
async fn feedback_follows_deerflows_surface() {
    let app = spawn_app().await;
    app.post("/api/v1/threads", &json!({"thread_id": "f"}))
        .await;
    append(
        &app,
        "f",
        "r1",
        vec![(
            "llm.ai.response",
            "message",
            json!({"type": "ai", "content": "hi", "id": "ai-1"}),
        )],
    )
    .await;
    let path = "/api/v1/threads/f/runs/r1/feedback";
    let (s, e) = app.post(path, &json!({"rating": 5})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );
    let (s, created) = app
        .post(
            path,
            &json!({"rating": 1, "comment": "good", "message_id": "ai-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let (s, _) = app.post(path, &json!({"rating": -1})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, upserted) = app
        .send(app.client.put(app.url(path)).json(&json!({"rating": -1})))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(upserted["feedback_id"], created["feedback_id"]);
    assert_eq!(upserted["rating"], -1);
    assert_eq!(upserted["comment"], Value::Null);
    let (_, stats) = app.get(&format!("{path}/stats")).await;
    assert_eq!(
        stats,
        json!({"run_id": "r1", "total": 1, "positive": 0, "negative": 1})
    );
    let (_, list) = app.get("/api/v1/runs/r1/feedback?thread_id=f").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (s, _) = app.get("/api/v1/runs/r1/feedback").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, history) = app.get("/api/v1/threads/f/history").await;
    assert_eq!(history["messages"][0]["feedback"]["rating"], -1);
    let (s, _) = app
        .post(
            "/api/v1/threads/f/runs/no-run/feedback",
            &json!({"rating": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "the run must exist in the thread");
    let id = created["feedback_id"].as_str().unwrap();
    let (s, _) = app
        .send(
            app.client
                .delete(app.url(&format!("/api/v1/threads/f/runs/other/feedback/{id}"))),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "wrong run");
    let (s, _) = app
        .send(app.client.delete(app.url(&format!("{path}/{id}"))))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.send(app.client.delete(app.url(path))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn token_usage_is_recorded_and_grouped_per_user() {
    let app = spawn_app().await;
    use reqwest::Method;
    for (user, model, p, c) in [
        (USER_A, "m1", 10, 5),
        (USER_A, "m2", 1, 1),
        (USER_B, "m1", 100, 100),
    ] {
        let (s, u) = app
            .as_user(
                user,
                Method::POST,
                "/api/v1/token-usage",
                Some(json!({"model": model, "prompt_tokens": p, "completion_tokens": c})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{u}");
        assert_eq!(u["total_tokens"], p + c);
    }
    let (_, by_model) = app
        .as_user(
            USER_A,
            Method::GET,
            "/api/v1/token-usage/stats?group_by=model",
            None,
        )
        .await;
    assert_eq!(by_model[0]["key"], "m1");
    assert_eq!(by_model[0]["total_tokens"], 15);
    assert_eq!(by_model.as_array().unwrap().len(), 2);
    let (_, total) = app.get("/api/v1/token-usage/stats").await;
    assert_eq!(total[0]["total_tokens"], 217, "unscoped sees everyone");
    let (s, _) = app.get("/api/v1/token-usage/stats?group_by=color").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn chat_streams_buffer_persist_list_and_delete() {
    let app = spawn_app().await;
    let p = "/api/v1/messages/streams/t1";
    let (s, o) = app
        .post(p, &json!({"frame": "Hello", "finish_reason": "partial"}))
        .await;
    assert_eq!(
        (s, o["outcome"].as_str()),
        (StatusCode::OK, Some("buffered"))
    );
    let (s, _) = app.get(p).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "nothing persisted yet");
    let (_, o) = app
        .post(p, &json!({"frame": " World", "finish_reason": "stop"}))
        .await;
    assert_eq!(o["outcome"], "persisted");
    let (_, rec) = app.get(p).await;
    assert_eq!(rec["frames"], json!(["Hello", " World"]));
    app.post(
        "/api/v1/messages/streams/t2",
        &json!({"frame": "x", "finish_reason": "tool_calls"}),
    )
    .await;
    let (_, ended) = app
        .post("/api/v1/messages/streams/t2/end", &json!({}))
        .await;
    assert_eq!(ended["outcome"], "persisted");
    let (_, recent) = app.get("/api/v1/messages/streams?limit=10").await;
    assert_eq!(recent.as_array().unwrap().len(), 2);
    let (s, _) = app.get("/api/v1/messages/streams?limit=101").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, e) = app.post(p, &json!({"frame": ""})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );
    let (s, _) = app.send(app.client.delete(app.url(p))).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.send(app.client.delete(app.url(p))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// `serve --chat-streams false` (the server's `chat_streams.enabled`): recording a frame
/// answers 503 `unavailable` and nothing is buffered or stored.
#[tokio::test]
async fn disabled_chat_streams_store_nothing() {
    let config = ServerConfig {
        chat_streams: waymark_application::ChatStreamConfig {
            enabled: false,
            ..Default::default()
        },
        ..ServerConfig::admin()
    };
    let backend =
        Backend::memory_with_clock(std::sync::Arc::new(waymark_domain::clock::SystemClock));
    let app = spawn_with(backend.clone(), config).await;
    let p = "/api/v1/messages/streams/t1";
    for _ in 0..2 {
        let (s, o) = app
            .post(p, &json!({"frame": "Hello", "finish_reason": "stop"}))
            .await;
        assert_eq!(
            (s, o["error"]["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable")),
            "{o}"
        );
    }
    let (s, _) = app.get(p).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let stored = backend
        .stores
        .chat_streams
        .get(
            &waymark_domain::UserScope::Unscoped,
            &waymark_domain::ThreadId::parse("t1").unwrap(),
        )
        .await
        .unwrap();
    assert!(stored.is_none(), "nothing was stored: {stored:?}");
    app.shutdown().await;
    let stored = backend
        .stores
        .chat_streams
        .get(
            &waymark_domain::UserScope::Unscoped,
            &waymark_domain::ThreadId::parse("t1").unwrap(),
        )
        .await
        .unwrap();
    assert!(stored.is_none(), "nor flushed at shutdown: {stored:?}");
}

#[tokio::test]
async fn shutdown_flushes_buffered_frames() {
    let backend =
        Backend::memory_with_clock(std::sync::Arc::new(waymark_domain::clock::SystemClock));
    let stores = backend.stores.clone();
    let app = spawn_with(backend, ServerConfig::admin()).await;
    app.post(
        "/api/v1/messages/streams/late",
        &json!({"frame": "trailing", "finish_reason": "tool_calls"}),
    )
    .await;
    app.shutdown().await;
    let rec = stores
        .chat_streams
        .get(
            &waymark_domain::UserScope::Unscoped,
            &waymark_domain::ThreadId::parse("late").unwrap(),
        )
        .await
        .unwrap()
        .expect("persisted on shutdown");
    assert_eq!(rec.frames, ["trailing"]);
}

#[tokio::test]
async fn key_value_items_are_scoped_per_user() {
    let app = spawn_app().await;
    use reqwest::Method;
    let (s, item) = app
        .as_user(
            USER_A,
            Method::PUT,
            "/api/v1/store/items",
            Some(json!({"namespace": ["memories"], "key": "k1", "value": {"likes": "tea"}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{item}");
    assert_eq!(item["namespace"], json!(["memories"]));
    let (s, got) = app
        .as_user(
            USER_A,
            Method::GET,
            "/api/v1/store/items?namespace=memories&key=k1",
            None,
        )
        .await;
    assert_eq!(
        (s, got["value"]["likes"].as_str()),
        (StatusCode::OK, Some("tea"))
    );
    let (s, _) = app
        .as_user(
            USER_B,
            Method::GET,
            "/api/v1/store/items?namespace=memories&key=k1",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, raw) = app
        .get("/api/v1/store/items?namespace=users.alice.memories&key=k1")
        .await;
    assert_eq!(
        raw["namespace"],
        json!(["users", "alice", "memories"]),
        "unscoped sees raw namespaces"
    );
    let (_, found) = app
        .as_user(
            USER_A,
            Method::POST,
            "/api/v1/store/items/search",
            Some(json!({"prefix": ["memories"], "filter": {"likes": "tea"}})),
        )
        .await;
    assert_eq!(found["data"].as_array().unwrap().len(), 1);
    let (_, spaces) = app
        .as_user(
            USER_A,
            Method::POST,
            "/api/v1/store/namespaces",
            Some(json!({})),
        )
        .await;
    assert_eq!(spaces["data"], json!([["memories"]]));
    let (s, _) = app
        .as_user(
            USER_A,
            Method::DELETE,
            "/api/v1/store/items?namespace=memories&key=k1",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app
        .as_user(
            USER_A,
            Method::GET,
            "/api/v1/store/items?namespace=memories&key=k1",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bearer_token_and_required_user() {
    let backend =
        Backend::memory_with_clock(std::sync::Arc::new(waymark_domain::clock::SystemClock));
    let config = ServerConfig {
        auth_token: Some("s3cret".into()),
        ..ServerConfig::default()
    };
    let app = spawn_with(backend, config).await;
    let (s, e) = app.get("/api/v1/threads").await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (s, e) = app
        .send(app.client.get(app.url("/checkpointer/capabilities")))
        .await;
    assert_eq!(
        (s, e["kind"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("PermissionError"))
    );
    let (s, _) = app
        .send(
            app.client
                .get(app.url("/api/v1/threads"))
                .bearer_auth("wrong"),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, e) = app
        .send(
            app.client
                .get(app.url("/api/v1/threads"))
                .bearer_auth("s3cret"),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_user"))
    );
    let (s, _) = app
        .send(
            app.client
                .get(app.url("/api/v1/threads"))
                .bearer_auth("s3cret")
                .header("x-waymark-user", "u"),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .send(
            app.client
                .get(app.url("/checkpointer/capabilities"))
                .bearer_auth("s3cret"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "the checkpointer is not user-scoped");
    let (s, _) = app.get("/health").await;
    assert_eq!(s, StatusCode::OK, "probes stay public");
}

#[tokio::test]
async fn the_api_runs_on_sqlite_files_in_both_layouts() {
    let dir = tempfile::tempdir().unwrap();
    for scheme in ["sqlite", "langgraph+sqlite"] {
        let url = format!(
            "{scheme}://{}",
            dir.path()
                .join(format!("{}.db", scheme.replace('+', "-")))
                .display()
        );
        let backend = waymark_interfaces::backend::open(&url).await.expect("open");
        let app = spawn_with(backend, ServerConfig::admin()).await;
        let (s, _) = app
            .post("/api/v1/threads", &json!({"thread_id": "t"}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{scheme}");
        put_checkpoint(
            &app,
            "t",
            None,
            "c1",
            0,
            json!({"messages": messages_value()}),
        )
        .await;
        let (s, st) = app.get("/api/v1/threads/t/state").await;
        assert_eq!(s, StatusCode::OK, "{scheme}: {st}");
        assert_eq!(st["messages"].as_array().unwrap().len(), 4, "{scheme}");
        let (_, caps) = app.get("/checkpointer/capabilities").await;
        let want = if scheme == "sqlite" {
            "containment"
        } else {
            "sqlite"
        };
        assert_eq!(caps["filter_semantics"], want, "{scheme}");
        let (s, _) = app
            .send(app.client.delete(app.url("/api/v1/threads/t")))
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (_, gone) = app
            .post(
                "/checkpointer/get_tuple",
                &json!({"config": {"thread_id": "t"}}),
            )
            .await;
        assert_eq!(
            gone["tuple"],
            Value::Null,
            "{scheme}: the thread delete reaches the checkpoint layout"
        );
    }
}
