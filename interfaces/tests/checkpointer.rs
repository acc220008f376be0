//! The remote checkpointer protocol over HTTP, against in-memory stores (and, for the rules
//! in which checkpoint layouts differ, against every layout).

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TestApp, drop_database, fresh_database, spawn_app, spawn_with};
use waymark_domain::checkpoint::CheckpointQuery;
use waymark_domain::{CheckpointNamespace, ThreadId};
use waymark_interfaces::http::ServerConfig;

const HELLO: &str = "pWhlbGxv"; // msgpack "hello"
const LIST12: &str = "kgEC"; // msgpack [1, 2]
const FORTY_TWO: &str = "Kg=="; // msgpack 42

fn checkpoint(id: &str, values: Value, versions: Value) -> Value {
    json!({
        "v": 4, "id": id, "ts": "2026-11-21T10:45:32.120433+00:00",
        "channel_versions": versions,
        "versions_seen": {"__input__": {}},
        "updated_channels": null,
        "channel_values": values,
        "extra": {},
    })
}

async fn put(
    app: &TestApp,
    thread: &str,
    ns: &str,
    parent: Option<&str>,
    id: &str,
    metadata: Value,
) -> Value {
    let (status, body) = app
        .post(
            "/checkpointer/put",
            &json!({
                "config": {"thread_id": thread, "checkpoint_ns": ns, "checkpoint_id": parent},
                "checkpoint": checkpoint(id, json!({"msg": {"type": "msgpack", "data": HELLO}}), json!({"msg": 1})),
                "metadata": metadata,
                "new_versions": {"msg": 1},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn all_checkpoints(app: &TestApp) -> usize {
    app.backend
        .stores
        .checkpoints
        .list(&CheckpointQuery::default())
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn capabilities_and_health_describe_the_server() {
    let app = spawn_app().await;
    let (s, body) = app.get("/checkpointer/capabilities").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        body,
        json!({"protocol_version": 1, "capabilities": ["delete_for_runs", "copy_thread", "prune"],
               "backend": "memory", "filter_semantics": "containment",
               "content_types": ["application/json", "application/vnd.waymark.checkpointer+msgpack"]})
    );
    let (s, body) = app.get("/checkpointer/health").await;
    assert_eq!((s, body), (StatusCode::OK, json!({"ok": true})));
}

#[tokio::test]
async fn put_then_get_tuple_round_trips_the_spec_example() {
    let app = spawn_app().await;
    let versions = json!({
        "msg": "00000000000000000000000000000002.0.6403418262468941",
        "items": "00000000000000000000000000000002.0.2219386509513264",
        "branch:to:agent": "00000000000000000000000000000001.0.8815150271838458"
    });
    let values = json!({
        "msg": {"type": "msgpack", "data": HELLO},
        "items": {"type": "msgpack", "data": LIST12},
        "branch:to:agent": {"type": "null", "data": ""}
    });
    let mut cp = checkpoint(
        "1f1e598a-d0a1-6c3e-8001-3c2f5e0b9a71",
        values.clone(),
        versions.clone(),
    );
    cp["versions_seen"] = json!({"__input__": {}, "agent": {"branch:to:agent": "00000000000000000000000000000001.0.8815150271838458"}});
    cp["updated_channels"] = json!(["items", "msg"]);
    cp["key_order"] = json!([
        "v",
        "ts",
        "id",
        "channel_values",
        "channel_versions",
        "versions_seen",
        "updated_channels"
    ]);
    let metadata =
        json!({"source": "loop", "step": 1, "parents": {}, "run_id": "run-7", "score": 1.0});
    let (s, body) = app
        .post(
            "/checkpointer/put",
            &json!({
                "config": {"thread_id": "t-1", "checkpoint_ns": "", "checkpoint_id": "1f1e598a-cacc-67c7-8000-11eeb8766e9a"},
                "checkpoint": cp,
                "metadata": metadata,
                "new_versions": {"msg": versions["msg"], "items": versions["items"]},
            }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"config": {"thread_id": "t-1", "checkpoint_ns": "", "checkpoint_id": "1f1e598a-d0a1-6c3e-8001-3c2f5e0b9a71"}})
    );
    let (s, _) = app
        .post(
            "/checkpointer/put_writes",
            &json!({
                "config": body["config"],
                "writes": [{"channel": "answer", "value": {"type": "msgpack", "data": FORTY_TWO}},
                           {"channel": "__interrupt__", "value": {"type": "msgpack", "data": HELLO}}],
                "task_id": "6f0c7c52-4a51-5d2e-9f7e-0b1a2c3d4e5f",
                "task_path": "~__pregel_pull, agent"
            }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .post(
            "/checkpointer/put_writes",
            &json!({
                "config": body["config"],
                "writes": [{"channel": "__resume__", "value": {"type": "null"}}],
                "task_id": "00000000-0000-0000-0000-000000000000",
            }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let (s, got) = app
        .post(
            "/checkpointer/get_tuple",
            &json!({"config": {"thread_id": "t-1", "checkpoint_ns": "", "checkpoint_id": null}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let t = &got["tuple"];
    assert_eq!(
        t["config"]["checkpoint_id"],
        "1f1e598a-d0a1-6c3e-8001-3c2f5e0b9a71"
    );
    assert_eq!(t["checkpoint"]["channel_values"], values);
    assert_eq!(t["checkpoint"]["channel_versions"], versions);
    assert_eq!(t["checkpoint"]["updated_channels"], json!(["items", "msg"]));
    assert_eq!(t["checkpoint"]["v"], 4);
    assert_eq!(t["metadata"], metadata);
    let meta_keys: Vec<_> = t["metadata"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(meta_keys, ["source", "step", "parents", "run_id", "score"]);
    assert!(t["metadata"]["score"].is_f64());
    assert_eq!(
        t["parent_config"],
        json!({"thread_id": "t-1", "checkpoint_ns": "", "checkpoint_id": "1f1e598a-cacc-67c7-8000-11eeb8766e9a"})
    );
    // (task_path, task_id, idx): the null task with path "" first, then the interrupt (-3)
    // before the regular write (0).
    let writes: Vec<(String, String)> = t["pending_writes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["task_id"].as_str().unwrap().to_owned(),
                w["channel"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        writes,
        [
            (
                "00000000-0000-0000-0000-000000000000".to_owned(),
                "__resume__".to_owned()
            ),
            (
                "6f0c7c52-4a51-5d2e-9f7e-0b1a2c3d4e5f".to_owned(),
                "__interrupt__".to_owned()
            ),
            (
                "6f0c7c52-4a51-5d2e-9f7e-0b1a2c3d4e5f".to_owned(),
                "answer".to_owned()
            ),
        ]
    );
    assert_eq!(
        t["pending_writes"][0]["value"],
        json!({"type": "null", "data": ""})
    );

    let (_, missing) = app
        .post(
            "/checkpointer/get_tuple",
            &json!({"config": {"thread_id": "nope"}}),
        )
        .await;
    assert_eq!(missing, json!({"tuple": null}));
}

#[tokio::test]
async fn int_versions_and_unknown_checkpoint_keys_round_trip() {
    let app = spawn_app().await;
    let mut cp = checkpoint("c1", json!({}), json!({"a": 1, "b": 2.5}));
    cp["v"] = json!(1);
    cp["extra"] = json!({"pending_sends": {"type": "msgpack", "data": "kA=="}});
    let (s, b) = app
        .post("/checkpointer/put", &json!({"config": {"thread_id": "t"}, "checkpoint": cp, "metadata": {}, "new_versions": {}}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, got) = app
        .post(
            "/checkpointer/get_tuple",
            &json!({"config": {"thread_id": "t"}}),
        )
        .await;
    let c = &got["tuple"]["checkpoint"];
    assert_eq!(c["v"], 1);
    assert!(c["channel_versions"]["a"].is_i64());
    assert!(c["channel_versions"]["b"].is_f64());
    assert_eq!(
        c["extra"],
        json!({"pending_sends": {"type": "msgpack", "data": "kA=="}})
    );
    assert_eq!(got["tuple"]["parent_config"], Value::Null);
    assert_eq!(got["tuple"]["pending_writes"], json!([]));
}

#[tokio::test]
async fn list_orders_newest_first_and_applies_filter_before_and_limit() {
    let app = spawn_app().await;
    put(
        &app,
        "t",
        "",
        None,
        "c1",
        json!({"source": "input", "step": -1}),
    )
    .await;
    put(
        &app,
        "t",
        "",
        Some("c1"),
        "c2",
        json!({"source": "loop", "step": 0}),
    )
    .await;
    put(
        &app,
        "t",
        "",
        Some("c2"),
        "c3",
        json!({"source": "loop", "step": 1, "nested": {"a": 1, "b": 2}}),
    )
    .await;
    put(
        &app,
        "t",
        "child:1",
        None,
        "c4",
        json!({"source": "loop", "step": 0}),
    )
    .await;
    put(&app, "other", "", None, "c9", json!({"source": "loop"})).await;

    let ids = |body: &Value| -> Vec<String> {
        body["tuples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["config"]["checkpoint_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, all_ns) = app
        .post(
            "/checkpointer/list",
            &json!({"config": {"thread_id": "t", "checkpoint_ns": null}}),
        )
        .await;
    assert_eq!(ids(&all_ns), ["c4", "c3", "c2", "c1"]);
    let (_, root) = app
        .post(
            "/checkpointer/list",
            &json!({"config": {"thread_id": "t", "checkpoint_ns": ""}}),
        )
        .await;
    assert_eq!(ids(&root), ["c3", "c2", "c1"]);
    let (_, everything) = app
        .post("/checkpointer/list", &json!({"config": null}))
        .await;
    assert_eq!(ids(&everything).len(), 5);
    let (_, loops) = app
        .post(
            "/checkpointer/list",
            &json!({"config": {"thread_id": "t"}, "filter": {"source": "loop"}}),
        )
        .await;
    assert_eq!(ids(&loops), ["c4", "c3", "c2"]);
    let (_, contained) = app
        .post(
            "/checkpointer/list",
            &json!({"config": {"thread_id": "t"}, "filter": {"nested": {"a": 1}}}),
        )
        .await;
    assert_eq!(ids(&contained), ["c3"], "memory uses containment semantics");
    let (_, before) = app
        .post("/checkpointer/list", &json!({"config": {"thread_id": "t", "checkpoint_ns": ""}, "before": {"checkpoint_id": "c3"}, "limit": 1}))
        .await;
    assert_eq!(ids(&before), ["c2"]);
    let (_, one) = app
        .post(
            "/checkpointer/list",
            &json!({"config": {"thread_id": "t", "checkpoint_id": "c2"}}),
        )
        .await;
    assert_eq!(ids(&one), ["c2"]);

    for bad in [json!(0), json!(-1), json!(1.5), json!("2"), json!(true)] {
        let (s, e) = app
            .post("/checkpointer/list", &json!({"config": null, "limit": bad}))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(e["kind"], "ValueError", "{bad}");
    }
}

#[tokio::test]
async fn deletes_copy_and_prune_follow_the_optional_contracts() {
    let app = spawn_app().await;
    put(&app, "src", "", None, "a1", json!({"run_id": "r1"})).await;
    put(&app, "src", "", Some("a1"), "a2", json!({"run_id": "r2"})).await;
    put(&app, "src", "child:1", None, "a3", json!({"run_id": "r1"})).await;

    let (s, _) = app
        .post(
            "/checkpointer/copy_thread",
            &json!({"source_thread_id": "src", "target_thread_id": "dst"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, copied) = app
        .post(
            "/checkpointer/list",
            &json!({"config": {"thread_id": "dst"}}),
        )
        .await;
    assert_eq!(copied["tuples"].as_array().unwrap().len(), 3);
    let (s, _) = app
        .post(
            "/checkpointer/copy_thread",
            &json!({"source_thread_id": "ghost", "target_thread_id": "empty"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let (s, _) = app
        .post("/checkpointer/delete_for_runs", &json!({"run_ids": ["r1"]}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, left) = app
        .post(
            "/checkpointer/list",
            &json!({"config": {"thread_id": "src"}}),
        )
        .await;
    assert_eq!(left["tuples"].as_array().unwrap().len(), 1);
    let (_, left_dst) = app
        .post(
            "/checkpointer/list",
            &json!({"config": {"thread_id": "dst"}}),
        )
        .await;
    assert_eq!(
        left_dst["tuples"].as_array().unwrap().len(),
        1,
        "delete_for_runs spans threads"
    );
    let (s, _) = app
        .post("/checkpointer/delete_for_runs", &json!({"run_ids": []}))
        .await;
    assert_eq!(s, StatusCode::OK);

    put(&app, "p", "", None, "p1", json!({})).await;
    put(&app, "p", "", Some("p1"), "p2", json!({})).await;
    let (s, _) = app
        .post("/checkpointer/prune", &json!({"thread_ids": ["p"]}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, pruned) = app
        .post("/checkpointer/list", &json!({"config": {"thread_id": "p"}}))
        .await;
    assert_eq!(pruned["tuples"][0]["config"]["checkpoint_id"], "p2");
    assert_eq!(pruned["tuples"].as_array().unwrap().len(), 1);
    let (s, _) = app
        .post(
            "/checkpointer/prune",
            &json!({"thread_ids": ["p"], "strategy": "delete"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, gone) = app
        .post("/checkpointer/list", &json!({"config": {"thread_id": "p"}}))
        .await;
    assert_eq!(gone["tuples"], json!([]));

    let (s, _) = app
        .post("/checkpointer/delete_thread", &json!({"thread_id": "src"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, none) = app
        .post(
            "/checkpointer/get_tuple",
            &json!({"config": {"thread_id": "src"}}),
        )
        .await;
    assert_eq!(none["tuple"], Value::Null);
    let (s, _) = app
        .post(
            "/checkpointer/delete_thread",
            &json!({"thread_id": "never-existed"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn malformed_requests_get_the_protocol_envelope_and_write_nothing() {
    let app = spawn_app().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/checkpointer/prune",
            json!({"thread_ids": "t-1", "strategy": "keep_latest"}),
            "TypeError",
        ),
        (
            "/checkpointer/prune",
            json!({"thread_ids": ["t"], "strategy": "sometimes"}),
            "ValueError",
        ),
        (
            "/checkpointer/put",
            json!({"checkpoint": checkpoint("c", json!({}), json!({}))}),
            "ValueError",
        ),
        (
            "/checkpointer/put",
            json!({"config": {"thread_id": 7}, "checkpoint": checkpoint("c", json!({}), json!({}))}),
            "TypeError",
        ),
        (
            "/checkpointer/put",
            json!({"config": {"thread_id": "t"}, "checkpoint": {"id": "c"}}),
            "ValueError",
        ),
        (
            "/checkpointer/put",
            json!({"config": {"thread_id": "t"}, "checkpoint": checkpoint("c", json!({"x": {"type": "msgpack", "data": "not base64!"}}), json!({}))}),
            "ValueError",
        ),
        (
            "/checkpointer/put",
            json!({"config": {"thread_id": "t"}, "checkpoint": checkpoint("c", json!({"x": {"json": 1}}), json!({}))}),
            "ValueError",
        ),
        (
            "/checkpointer/put",
            json!({"config": {"thread_id": "t\u{0}"}, "checkpoint": checkpoint("c", json!({}), json!({}))}),
            "ValueError",
        ),
        (
            "/checkpointer/put",
            json!({"config": {"thread_id": ""}, "checkpoint": checkpoint("c", json!({}), json!({}))}),
            "ValueError",
        ),
        (
            "/checkpointer/put_writes",
            json!({"config": {"thread_id": "t"}, "writes": [], "task_id": "x"}),
            "ValueError",
        ),
        (
            "/checkpointer/put_writes",
            json!({"config": {"thread_id": "t", "checkpoint_id": "c"}, "writes": {"a": 1}, "task_id": "x"}),
            "TypeError",
        ),
        (
            "/checkpointer/delete_for_runs",
            json!({"run_ids": "r1"}),
            "TypeError",
        ),
        ("/checkpointer/delete_thread", json!({}), "ValueError"),
    ];
    for (path, body, kind) in cases {
        let (s, e) = app.post(path, &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path} {body}: {e}");
        assert_eq!(e["kind"], kind, "{path} {body}: {e}");
        assert!(e["error"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (s, e) = app.post_raw("/checkpointer/put", "{\"config\": ").await;
    assert_eq!(
        (s, e["kind"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ValueError"))
    );
    let (s, e) = app.post_raw("/checkpointer/put", "[1, 2]").await;
    assert_eq!(
        (s, e["kind"].as_str()),
        (StatusCode::BAD_REQUEST, Some("TypeError"))
    );
    let (s, e) = app.post_raw("/checkpointer/put", "").await;
    assert_eq!(
        (s, e["kind"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ValueError"))
    );
    assert_eq!(
        all_checkpoints(&app).await,
        0,
        "a failed request has no effect"
    );

    let (s, e) = app.post("/checkpointer/nope", &json!({})).await;
    assert_eq!(
        (s, e["kind"].as_str()),
        (StatusCode::NOT_FOUND, Some("LookupError"))
    );
    let (s, e) = app.get("/checkpointer/put").await;
    assert_eq!(
        (s, e["kind"].as_str()),
        (StatusCode::NOT_FOUND, Some("LookupError"))
    );
}

#[tokio::test]
async fn an_unknown_protocol_version_is_refused() {
    let app = spawn_app().await;
    let (s, _) = app
        .send(
            app.client
                .get(app.url("/checkpointer/capabilities"))
                .header("waymark-protocol", "1"),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, e) = app
        .send(
            app.client
                .post(app.url("/checkpointer/delete_thread"))
                .header("waymark-protocol", "2")
                .json(&json!({"thread_id": "t"})),
        )
        .await;
    assert_eq!(
        (s, e["kind"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ValueError"))
    );
    assert!(e["error"].as_str().unwrap().contains("version 1"));
}

/// Metadata is stored as given on every layout but one: LangGraph's `PostgresSaver` drops a
/// top-level `"writes"` key (`get_serializable_checkpoint_metadata`, compat §1.3 step 3), and
/// so does Waymark on LangGraph's PostgreSQL tables. Waymark's native PostgreSQL tables keep
/// it, over HTTP exactly as through the Rust port; a nested `"writes"` survives everywhere.
#[tokio::test]
async fn only_the_langgraph_postgres_layout_drops_a_writes_metadata_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name).display().to_string();
    let mut urls = vec![
        ("memory", "memory://".to_owned()),
        ("sqlite", format!("sqlite://{}", file("native.db"))),
        (
            "langgraph+sqlite",
            format!("langgraph+sqlite://{}", file("lg.db")),
        ),
    ];
    let postgres = fresh_database("writes_metadata_key").await;
    if let Some((url, _)) = &postgres {
        urls.push(("postgres", url.clone()));
        urls.push(("langgraph+postgres", format!("langgraph+{url}")));
    }
    let result = tokio::spawn(async move {
        for (label, url) in urls {
            let backend = waymark_interfaces::backend::open(&url)
                .await
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            let app = spawn_with(backend, ServerConfig::admin()).await;
            let metadata = json!({
                "source": "loop", "step": 1,
                "writes": {"agent": {"messages": ["hi"]}},
                "parents": {}, "nested": {"writes": 1},
            });
            put(&app, "t-writes", "", None, "c1", metadata.clone()).await;
            let mut want = metadata;
            if label == "langgraph+postgres" {
                want.as_object_mut().unwrap().remove("writes");
            }
            let (s, body) = app
                .post(
                    "/checkpointer/get_tuple",
                    &json!({"config": {"thread_id": "t-writes"}}),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{label}: {body}");
            assert_eq!(body["tuple"]["metadata"], want, "{label}: get_tuple");
            let (s, body) = app
                .post(
                    "/checkpointer/list",
                    &json!({"config": {"thread_id": "t-writes"}, "filter": {"step": 1}}),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{label}: {body}");
            assert_eq!(body["tuples"][0]["metadata"], want, "{label}: list");
            let through_port = app
                .backend
                .stores
                .checkpoints
                .get_tuple(
                    &ThreadId::parse("t-writes").unwrap(),
                    &CheckpointNamespace::root(),
                    None,
                )
                .await
                .unwrap()
                .expect("the checkpoint is stored");
            assert_eq!(
                Value::Object(through_port.metadata.0),
                want,
                "{label}: the Rust port reads what HTTP reads"
            );
        }
    })
    .await;
    if let Some((_, name)) = postgres {
        drop_database(&name).await;
    }
    result.expect("every layout");
}
