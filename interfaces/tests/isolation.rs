//! The isolation matrix: every thread-addressed route of the REST API and of `/checkpointer`
//! × (read, list, update, delete, claim) × (own, foreign, missing, row-less), on every
//! backend (memory, SQLite file, PostgreSQL, and the LangGraph SQLite and PostgreSQL layouts):
//! 63 routes × 4 targets + 2 run-id cells + 2 session cells = 256 cells per backend.
//!
//! The attacker (`mallory`) aims every route at four threads:
//! * **own**: a thread mallory created and filled (the positive control: the route works);
//! * **foreign**: alice's thread, filled with checkpoints, writes, events, feedback, a chat
//!   stream, token usage, a snapshot, a branch and a run (running under her worker's lease,
//!   with her progress report);
//! * **missing**: an id nobody used;
//! * **row-less**: checkpoints and run events written straight into the stores with no
//!   thread row (as a Python process sharing the database does).
//!
//! For foreign, missing and row-less the answers must be identical (status and body, with the
//! thread id masked), so no route tells "exists but not yours" from "does not exist"; writes
//! that claim a thread id succeed only on the missing id. List routes must hold no foreign
//! or row-less data. Afterwards alice's view (her runs included) and the administrator's
//! view of the row-less thread must be exactly what they were before.
//!
//! The runs routes need different starting states for their positive control (admitting needs
//! no active run, start a pending one, heartbeat/finish/cancel a running one): each route's
//! [`Prep`] puts the run of mallory's fresh own thread in that state first. Run ids are one
//! namespace across threads, so admitting under alice's run id is also checked: it must be
//! refused exactly like reusing one of mallory's own run ids.

mod support;

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{TestApp, drop_database, fresh_database, spawn_with};
use waymark_domain::checkpoint::{Checkpoint, CheckpointMetadata, CheckpointPut};
use waymark_domain::run_event::NewRunEvent;
use waymark_domain::{
    CheckpointId, CheckpointNamespace, EventCategory, EventType, RunId, ThreadId, UserScope,
};
use waymark_interfaces::backend::Backend;
use waymark_interfaces::http::ServerConfig;

const OWNER: &str = "alice";
const ATTACKER: &str = "mallory";
/// A marker stored in every piece of alice's and the row-less data; never in an answer to
/// mallory.
const SECRET: &str = "secret-of-alice";
const ROWLESS_SECRET: &str = "secret-of-the-rowless";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    List,
    Update,
    Delete,
    /// A first write: claims a missing id, refused on a taken one.
    Claim,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Own,
    Foreign,
    Missing,
    Rowless,
}

/// The ids a route is aimed with.
#[derive(Debug, Clone)]
struct Ids {
    thread: String,
    snapshot: String,
    branch: String,
    feedback: String,
    /// A thread of mallory's own (the source of a copy into the target).
    mine: String,
    /// The run seeded on the thread (runs table; a uuid, so it names no thread).
    run: String,
}

/// The state the seeded run of mallory's own thread is put in before a route is tried on it
/// (the positive control of each runs route needs its own starting state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prep {
    /// As seeded: `pending`.
    Pending,
    /// Started by the worker `w-seed`, with a progress report.
    Running,
    /// Finished (`success`): the thread has no active run.
    Ended,
}

type PathFn = fn(&Ids) -> String;
type BodyFn = fn(&Ids) -> Option<Value>;

struct Route {
    name: &'static str,
    op: Op,
    method: Method,
    path: PathFn,
    body: BodyFn,
    /// The status on mallory's own thread.
    own: u16,
    /// The state of the own thread's seeded run when the route is tried on it.
    prep: Prep,
}

fn none(_: &Ids) -> Option<Value> {
    None
}

/// A msgpack string value in the protocol's `{type, data}` form.
fn mp_value(text: &str) -> Value {
    use base64::Engine as _;
    assert!(text.len() < 32, "a msgpack fixstr");
    let mut bytes = vec![0xa0 | text.len() as u8];
    bytes.extend_from_slice(text.as_bytes());
    json!({"type": "msgpack", "data": base64::engine::general_purpose::STANDARD.encode(bytes)})
}

fn cp_body(thread: &str, parent: Option<&str>, id: &str, marker: &str) -> Value {
    json!({
        "config": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": parent},
        "checkpoint": {"v": 4, "id": id, "ts": "2026-01-01T00:00:00+00:00",
            "channel_versions": {"note": 2}, "versions_seen": {}, "updated_channels": null,
            "channel_values": {"note": mp_value(marker)}, "extra": {}},
        "metadata": {"source": "loop", "step": 0, "parents": {}, "run_id": format!("run-{thread}"),
            "marker": marker},
        "new_versions": {"note": 2},
    })
}

macro_rules! route {
    ($name:literal, $op:ident, $method:ident, $own:literal, $path:expr) => {
        Route {
            name: $name,
            op: Op::$op,
            method: Method::$method,
            path: $path,
            body: none,
            own: $own,
            prep: Prep::Pending,
        }
    };
    ($name:literal, $op:ident, $method:ident, $own:literal, $path:expr, $body:expr) => {
        Route {
            name: $name,
            op: Op::$op,
            method: Method::$method,
            path: $path,
            body: $body,
            own: $own,
            prep: Prep::Pending,
        }
    };
    ($name:literal, $op:ident, $method:ident, $own:literal, $prep:ident, $path:expr, $body:expr) => {
        Route {
            name: $name,
            op: Op::$op,
            method: Method::$method,
            path: $path,
            body: $body,
            own: $own,
            prep: Prep::$prep,
        }
    };
}

fn routes() -> Vec<Route> {
    vec![
        // -- REST reads
        route!("GET thread", Read, GET, 200, |i| format!(
            "/api/v1/threads/{}",
            i.thread
        )),
        route!("GET state", Read, GET, 200, |i| format!(
            "/api/v1/threads/{}/state",
            i.thread
        )),
        route!("GET checkpoints", Read, GET, 200, |i| format!(
            "/api/v1/threads/{}/checkpoints",
            i.thread
        )),
        route!("GET summary", Read, GET, 200, |i| format!(
            "/api/v1/threads/{}/summary",
            i.thread
        )),
        route!("GET checkpoint", Read, GET, 200, |i| format!(
            "/api/v1/threads/{}/checkpoints/c2",
            i.thread
        )),
        route!("GET diff", Read, GET, 200, |i| format!(
            "/api/v1/threads/{}/checkpoints/c1/diff/c2",
            i.thread
        )),
        route!("GET branches", Read, GET, 200, |i| format!(
            "/api/v1/threads/{}/branches",
            i.thread
        )),
        route!("GET snapshots", Read, GET, 200, |i| format!(
            "/api/v1/threads/{}/snapshots",
            i.thread
        )),
        route!("GET snapshot", Read, GET, 200, |i| format!(
            "/api/v1/threads/{}/snapshots/{}",
            i.thread, i.snapshot
        )),
        route!("GET messages", Read, GET, 200, |i| format!(
            "/api/v1/threads/{}/messages",
            i.thread
        )),
        route!("GET history", Read, GET, 200, |i| format!(
            "/api/v1/threads/{}/history",
            i.thread
        )),
        route!("GET feed", Read, GET, 200, |i| format!(
            "/api/v1/threads/{}/feed",
            i.thread
        )),
        route!("GET run events", Read, GET, 200, |i| format!(
            "/api/v1/threads/{}/runs/r1/events",
            i.thread
        )),
        route!("GET run messages", Read, GET, 200, |i| format!(
            "/api/v1/threads/{}/runs/r1/messages",
            i.thread
        )),
        route!("GET run feedback", Read, GET, 200, |i| format!(
            "/api/v1/threads/{}/runs/r1/feedback",
            i.thread
        )),
        route!("GET feedback stats", Read, GET, 200, |i| format!(
            "/api/v1/threads/{}/runs/r1/feedback/stats",
            i.thread
        )),
        route!("GET thread feedback", Read, GET, 200, |i| format!(
            "/api/v1/threads/{}/feedback",
            i.thread
        )),
        route!("GET run feedback by id", Read, GET, 200, |i| format!(
            "/api/v1/runs/r1/feedback?thread_id={}",
            i.thread
        )),
        route!("GET chat stream", Read, GET, 200, |i| format!(
            "/api/v1/messages/streams/{}",
            i.thread
        )),
        // -- REST updates
        route!(
            "PATCH thread",
            Update,
            PATCH,
            200,
            |i| format!("/api/v1/threads/{}", i.thread),
            |_| Some(json!({"display_name": "taken over", "metadata": {"x": 1}}))
        ),
        route!("PUT pin", Update, PUT, 200, |i| format!(
            "/api/v1/threads/{}/pin",
            i.thread
        )),
        route!("DELETE pin", Update, DELETE, 200, |i| format!(
            "/api/v1/threads/{}/pin",
            i.thread
        )),
        route!(
            "POST rollback",
            Update,
            POST,
            200,
            |i| format!("/api/v1/threads/{}/rollback", i.thread),
            |_| Some(json!({"checkpoint_id": "c1"}))
        ),
        route!(
            "POST snapshot",
            Update,
            POST,
            201,
            |i| format!("/api/v1/threads/{}/snapshots", i.thread),
            |_| Some(json!({"name": "mine now", "checkpoint_id": "c2"}))
        ),
        route!(
            "POST fork",
            Update,
            POST,
            201,
            |i| format!("/api/v1/threads/{}/branches", i.thread),
            |_| Some(json!({"name": "stolen", "checkpoint_id": "c2"}))
        ),
        route!(
            "PUT feedback",
            Update,
            PUT,
            200,
            |i| format!("/api/v1/threads/{}/runs/r1/feedback", i.thread),
            |_| Some(json!({"rating": -1}))
        ),
        route!(
            "POST feedback",
            Update,
            POST,
            409,
            |i| format!("/api/v1/threads/{}/runs/r1/feedback", i.thread),
            |_| Some(json!({"rating": -1}))
        ),
        route!(
            "POST stream end",
            Update,
            POST,
            200,
            |i| format!("/api/v1/messages/streams/{}/end", i.thread),
            |_| Some(json!({}))
        ),
        // -- REST deletes
        route!("DELETE branch", Delete, DELETE, 204, |i| format!(
            "/api/v1/threads/{}/branches/{}",
            i.thread, i.branch
        )),
        route!("DELETE snapshot", Delete, DELETE, 204, |i| format!(
            "/api/v1/threads/{}/snapshots/{}",
            i.thread, i.snapshot
        )),
        route!("DELETE run events", Delete, DELETE, 200, |i| format!(
            "/api/v1/threads/{}/runs/r1/events",
            i.thread
        )),
        route!("DELETE my feedback", Delete, DELETE, 204, |i| format!(
            "/api/v1/threads/{}/runs/r1/feedback",
            i.thread
        )),
        route!("DELETE feedback", Delete, DELETE, 204, |i| format!(
            "/api/v1/threads/{}/runs/r1/feedback/{}",
            i.thread, i.feedback
        )),
        route!("DELETE chat stream", Delete, DELETE, 204, |i| format!(
            "/api/v1/messages/streams/{}",
            i.thread
        )),
        route!("DELETE thread", Delete, DELETE, 204, |i| format!(
            "/api/v1/threads/{}",
            i.thread
        )),
        // -- first-class runs (the seeded run: pending, running or ended on the own thread;
        // running, with alice's progress report, on the foreign one)
        route!("GET runs", Read, GET, 200, |i| format!(
            "/api/v1/threads/{}/runs",
            i.thread
        )),
        route!("GET run", Read, GET, 200, |i| format!(
            "/api/v1/threads/{}/runs/{}",
            i.thread, i.run
        )),
        route!(
            "POST run (admit)",
            Update,
            POST,
            201,
            Ended,
            |i| format!("/api/v1/threads/{}/runs", i.thread),
            |_| Some(json!({"metadata": {"by": "mallory"}}))
        ),
        route!(
            "POST run start",
            Update,
            POST,
            200,
            Pending,
            |i| format!("/api/v1/threads/{}/runs/{}/start", i.thread, i.run),
            |_| Some(json!({"worker_id": "w-mallory", "lease_seconds": 3600}))
        ),
        route!(
            "POST run heartbeat",
            Update,
            POST,
            200,
            Running,
            |i| format!("/api/v1/threads/{}/runs/{}/heartbeat", i.thread, i.run),
            |_| Some(
                json!({"worker_id": "w-seed", "lease_seconds": 3600, "progress": {"by": "mallory"}})
            )
        ),
        route!(
            "POST run finish",
            Update,
            POST,
            200,
            Running,
            |i| format!("/api/v1/threads/{}/runs/{}/finish", i.thread, i.run),
            |_| Some(json!({"status": "error", "error": "by mallory"}))
        ),
        route!(
            "POST run cancel",
            Update,
            POST,
            200,
            Running,
            |i| format!("/api/v1/threads/{}/runs/{}/cancel", i.thread, i.run),
            none
        ),
        // -- REST first writes
        route!(
            "POST thread (create)",
            Claim,
            POST,
            201,
            |_| "/api/v1/threads".into(),
            |i| Some(json!({"thread_id": i.thread}))
        ),
        route!(
            "POST events",
            Claim,
            POST,
            201,
            |i| format!("/api/v1/threads/{}/events", i.thread),
            |_| Some(
                json!({"events": [{"run_id": "r9", "event_type": "llm.human.input", "category": "message",
                "content": {"type": "human", "content": "mine now", "id": null}}]})
            )
        ),
        route!(
            "POST stream frame",
            Claim,
            POST,
            200,
            |i| format!("/api/v1/messages/streams/{}", i.thread),
            |_| Some(json!({"frame": "data: mine", "finish_reason": "stop"}))
        ),
        route!(
            "POST token usage",
            Claim,
            POST,
            201,
            |_| "/api/v1/token-usage".into(),
            |i| Some(
                json!({"model": "m", "prompt_tokens": 1, "completion_tokens": 1, "thread_id": i.thread})
            )
        ),
        // -- REST lists
        route!("GET threads", List, GET, 200, |_| "/api/v1/threads".into()),
        route!(
            "POST threads/search",
            List,
            POST,
            200,
            |_| "/api/v1/threads/search".into(),
            |_| Some(json!({}))
        ),
        route!("GET chat streams", List, GET, 200, |_| {
            "/api/v1/messages/streams".into()
        }),
        route!("GET token stats", List, GET, 200, |_| {
            "/api/v1/token-usage/stats?group_by=thread".into()
        }),
        route!("GET run feedback list", List, GET, 200, |i| format!(
            "/api/v1/runs/r1/feedback?thread_id={}",
            i.mine
        )),
        // -- checkpointer reads
        route!(
            "cp get_tuple",
            Read,
            POST,
            200,
            |_| "/checkpointer/get_tuple".into(),
            |i| Some(json!({"config": {"thread_id": i.thread}}))
        ),
        route!(
            "cp get_tuple by id",
            Read,
            POST,
            200,
            |_| "/checkpointer/get_tuple".into(),
            |i| Some(
                json!({"config": {"thread_id": i.thread, "checkpoint_ns": "", "checkpoint_id": "c1"}})
            )
        ),
        route!(
            "cp list thread",
            Read,
            POST,
            200,
            |_| "/checkpointer/list".into(),
            |i| Some(json!({"config": {"thread_id": i.thread}}))
        ),
        route!(
            "cp copy_thread from",
            Read,
            POST,
            200,
            |_| "/checkpointer/copy_thread".into(),
            |i| Some(
                json!({"source_thread_id": i.thread, "target_thread_id": format!("{}-copy", i.mine)})
            )
        ),
        // -- checkpointer deletes
        route!(
            "cp delete_for_runs",
            Delete,
            POST,
            200,
            |_| "/checkpointer/delete_for_runs".into(),
            |i| Some(json!({"run_ids": [format!("run-{}", i.thread)]}))
        ),
        route!(
            "cp prune",
            Delete,
            POST,
            200,
            |_| "/checkpointer/prune".into(),
            |i| Some(json!({"thread_ids": [i.thread], "strategy": "delete"}))
        ),
        route!(
            "cp delete_thread",
            Delete,
            POST,
            200,
            |_| "/checkpointer/delete_thread".into(),
            |i| Some(json!({"thread_id": i.thread}))
        ),
        // -- checkpointer first writes
        route!(
            "cp put",
            Claim,
            POST,
            200,
            |_| "/checkpointer/put".into(),
            |i| Some(cp_body(&i.thread, Some("c2"), "c9", "mine now"))
        ),
        route!(
            "cp put_writes",
            Claim,
            POST,
            200,
            |_| "/checkpointer/put_writes".into(),
            |i| Some(
                json!({"config": {"thread_id": i.thread, "checkpoint_ns": "", "checkpoint_id": "c2"},
                "writes": [{"channel": "note", "value": mp_value("mine now")}],
                "task_id": "t-mallory", "task_path": ""})
            )
        ),
        route!(
            "cp copy_thread into",
            Claim,
            POST,
            200,
            |_| "/checkpointer/copy_thread".into(),
            |i| Some(json!({"source_thread_id": i.mine, "target_thread_id": i.thread}))
        ),
        // -- checkpointer lists
        route!(
            "cp list all",
            List,
            POST,
            200,
            |_| "/checkpointer/list".into(),
            |_| Some(json!({}))
        ),
        route!(
            "cp list filtered",
            List,
            POST,
            200,
            |_| "/checkpointer/list".into(),
            |_| Some(json!({"filter": {"source": "loop"}}))
        ),
    ]
}

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

async fn ok(app: &TestApp, user: &str, method: Method, path: &str, body: Value) -> Value {
    let (s, b) = call(app, Some(user), method, path, Some(body)).await;
    assert!(s.is_success(), "seeding {path} as {user}: {s} {b}");
    b
}

/// Fills a thread of `user` with every kind of data; returns the ids of what it made.
async fn seed(app: &TestApp, user: &str, thread: &str, marker: &str) -> Ids {
    ok(
        app,
        user,
        Method::POST,
        "/api/v1/threads",
        json!({"thread_id": thread, "metadata": {"m": marker}}),
    )
    .await;
    ok(
        app,
        user,
        Method::POST,
        "/checkpointer/put",
        cp_body(thread, None, "c1", marker),
    )
    .await;
    ok(
        app,
        user,
        Method::POST,
        "/checkpointer/put",
        cp_body(thread, Some("c1"), "c2", marker),
    )
    .await;
    ok(
        app,
        user,
        Method::POST,
        "/checkpointer/put_writes",
        json!({
        "config": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": "c2"},
        "writes": [{"channel": "note", "value": mp_value(marker)}],
        "task_id": "task-1", "task_path": ""}),
    )
    .await;
    ok(
        app,
        user,
        Method::POST,
        &format!("/api/v1/threads/{thread}/events"),
        json!({"events": [
        {"run_id": "r1", "event_type": "llm.human.input", "category": "message",
         "content": {"type": "human", "content": marker, "id": null}},
        {"run_id": "r1", "event_type": "llm.ai.response", "category": "message",
         "content": {"type": "ai", "content": marker, "id": "ai-1"}}]}),
    )
    .await;
    let fb = ok(
        app,
        user,
        Method::POST,
        &format!("/api/v1/threads/{thread}/runs/r1/feedback"),
        json!({"rating": 1, "comment": marker}),
    )
    .await;
    ok(
        app,
        user,
        Method::POST,
        &format!("/api/v1/messages/streams/{thread}"),
        json!({"frame": marker, "finish_reason": "stop"}),
    )
    .await;
    ok(
        app,
        user,
        Method::POST,
        "/api/v1/token-usage",
        json!({"model": marker, "prompt_tokens": 3, "completion_tokens": 4, "thread_id": thread}),
    )
    .await;
    let snap = ok(
        app,
        user,
        Method::POST,
        &format!("/api/v1/threads/{thread}/snapshots"),
        json!({"name": "s1", "checkpoint_id": "c2"}),
    )
    .await;
    let fork = ok(
        app,
        user,
        Method::POST,
        &format!("/api/v1/threads/{thread}/branches"),
        json!({"name": "b1", "checkpoint_id": "c2", "thread_id": format!("{thread}-branch")}),
    )
    .await;
    let run = ok(
        app,
        user,
        Method::POST,
        &format!("/api/v1/threads/{thread}/runs"),
        json!({"metadata": {"m": marker}}),
    )
    .await;
    Ids {
        thread: thread.to_owned(),
        snapshot: snap["snapshot_id"].as_str().unwrap().to_owned(),
        branch: fork["branch"]["branch_id"].as_str().unwrap().to_owned(),
        feedback: fb["feedback_id"].as_str().unwrap().to_owned(),
        mine: String::new(),
        run: run["run_id"].as_str().unwrap().to_owned(),
    }
}

/// Puts the seeded (pending) run of `ids` in the state `prep`, as `user`.
async fn prepare(app: &TestApp, user: &str, ids: &Ids, prep: Prep, marker: &str) {
    let run = format!("/api/v1/threads/{}/runs/{}", ids.thread, ids.run);
    if prep == Prep::Pending {
        return;
    }
    ok(
        app,
        user,
        Method::POST,
        &format!("{run}/start"),
        json!({"worker_id": "w-seed", "lease_seconds": 3600}),
    )
    .await;
    ok(
        app,
        user,
        Method::POST,
        &format!("{run}/heartbeat"),
        json!({"worker_id": "w-seed", "lease_seconds": 3600, "progress": {"note": marker}}),
    )
    .await;
    if prep == Prep::Ended {
        ok(
            app,
            user,
            Method::POST,
            &format!("{run}/finish"),
            json!({"status": "success"}),
        )
        .await;
    }
}

/// Checkpoints and run events under `thread` written straight into the stores, with no
/// thread row (as a Python LangGraph process writing the same database leaves them).
async fn seed_rowless(backend: &Backend, thread: &str) {
    let id = ThreadId::parse(thread).unwrap();
    let mut parent = None;
    for c in ["c1", "c2"] {
        let mut cp = Checkpoint::empty(0);
        cp.id = CheckpointId::parse(c).unwrap();
        let meta = json!({"source": "loop", "step": 0, "parents": {}, "marker": ROWLESS_SECRET,
            "run_id": format!("run-{thread}")});
        backend
            .stores
            .checkpoints
            .put(CheckpointPut {
                thread_id: id.clone(),
                namespace: CheckpointNamespace::root(),
                parent_id: parent.clone(),
                new_versions: cp.channel_versions.clone(),
                checkpoint: cp,
                metadata: CheckpointMetadata(meta.as_object().unwrap().clone()),
            })
            .await
            .expect("row-less put");
        parent = Some(CheckpointId::parse(c).unwrap());
    }
    let ev = NewRunEvent::new(
        id.clone(),
        RunId::parse("r1").unwrap(),
        EventType::parse("llm.human.input".to_owned()).unwrap(),
        EventCategory::parse("message".to_owned()).unwrap(),
    )
    .with_content(json!({"type": "human", "content": ROWLESS_SECRET, "id": null}));
    backend
        .stores
        .run_events
        .put_batch(&UserScope::Unscoped, vec![ev])
        .await
        .expect("row-less events");
}

/// What alice sees of her thread, and what the administrator sees of the row-less one.
async fn observed(app: &TestApp, foreign: &Ids, rowless: &str) -> Vec<Value> {
    let t = &foreign.thread;
    let mut out = Vec::new();
    for path in [
        format!("/api/v1/threads/{t}"),
        format!("/api/v1/threads/{t}/state"),
        format!("/api/v1/threads/{t}/checkpoints"),
        format!("/api/v1/threads/{t}/summary"),
        format!("/api/v1/threads/{t}/messages"),
        format!("/api/v1/threads/{t}/runs/r1/events"),
        format!("/api/v1/threads/{t}/runs"),
        format!("/api/v1/threads/{t}/runs/{}", foreign.run),
        format!("/api/v1/threads/{t}/feedback"),
        format!("/api/v1/threads/{t}/snapshots"),
        format!("/api/v1/threads/{t}/branches"),
        format!("/api/v1/messages/streams/{t}"),
        "/api/v1/token-usage/stats?group_by=thread".to_owned(),
    ] {
        let (s, b) = call(app, Some(OWNER), Method::GET, &path, None).await;
        out.push(json!({"path": path, "status": s.as_u16(), "body": b}));
    }
    for (user, thread) in [(Some(OWNER), t.as_str()), (None, rowless)] {
        let (s, b) = call(
            app,
            user,
            Method::POST,
            "/checkpointer/list",
            Some(json!({"config": {"thread_id": thread}})),
        )
        .await;
        out.push(json!({"list": thread, "status": s.as_u16(), "body": b}));
    }
    let (s, b) = call(
        app,
        None,
        Method::GET,
        &format!("/api/v1/threads/{rowless}/messages"),
        None,
    )
    .await;
    out.push(json!({"admin messages": rowless, "status": s.as_u16(), "body": b}));
    out
}

fn mask(v: &Value, thread: &str) -> String {
    v.to_string().replace(thread, "<thread>")
}

fn leaks(v: &Value, ids: &[&str]) -> Option<String> {
    let text = v.to_string();
    [SECRET, ROWLESS_SECRET]
        .iter()
        .chain(ids)
        .find(|s| text.contains(**s))
        .map(|s| s.to_string())
}

/// Runs the whole matrix on one backend; returns the number of cells checked.
async fn run_matrix(backend: Backend, label: &str) -> usize {
    let config = ServerConfig {
        admin_unscoped: true,
        ..ServerConfig::default()
    };
    let app = spawn_with(backend.clone(), config).await;
    let n = uuid::Uuid::new_v4().simple().to_string();
    let foreign_id = format!("alice-{n}");
    let rowless_id = format!("rowless-{n}");
    let mut foreign = seed(&app, OWNER, &foreign_id, SECRET).await;
    // Alice's run is running under her worker's lease, with her progress report.
    prepare(&app, OWNER, &foreign, Prep::Running, SECRET).await;
    seed_rowless(&backend, &rowless_id).await;
    let mine = format!("mallory-src-{n}");
    seed(&app, ATTACKER, &mine, "mallory-data").await;
    foreign.mine = mine.clone();
    let before = observed(&app, &foreign, &rowless_id).await;
    let forbidden = [foreign_id.as_str(), rowless_id.as_str()];

    let mut cells = 0;
    for (ri, route) in routes().iter().enumerate() {
        let mut answers: Vec<(Target, StatusCode, String)> = Vec::new();
        for target in [
            Target::Own,
            Target::Foreign,
            Target::Missing,
            Target::Rowless,
        ] {
            let ids = match target {
                Target::Own => {
                    // A fresh, filled thread of mallory's for each route (some delete it).
                    let own = format!("mallory-{ri}-{n}");
                    let mut ids = seed(&app, ATTACKER, &own, "mallory-data").await;
                    prepare(&app, ATTACKER, &ids, route.prep, "mallory-data").await;
                    ids.mine = mine.clone();
                    if route.op == Op::Claim && route.name == "POST thread (create)" {
                        ids.thread = format!("mallory-new-{ri}-{n}");
                    }
                    ids
                }
                Target::Foreign => foreign.clone(),
                Target::Missing => Ids {
                    thread: format!("missing-{ri}-{n}"),
                    ..foreign.clone()
                },
                Target::Rowless => Ids {
                    thread: rowless_id.clone(),
                    ..foreign.clone()
                },
            };
            let (status, body) = call(
                &app,
                Some(ATTACKER),
                route.method.clone(),
                &(route.path)(&ids),
                (route.body)(&ids),
            )
            .await;
            cells += 1;
            let cell = format!("[{label}] {} ({:?}) on {target:?}", route.name, route.op);
            // The requested id itself may be echoed in an error; nothing else may appear.
            let masked: Value = serde_json::from_str(&mask(&body, &ids.thread)).unwrap();
            if let Some(leak) = leaks(&masked, &forbidden) {
                panic!("{cell} leaks {leak:?}: {status} {body}");
            }
            assert!(
                status.as_u16() < 500,
                "{cell}: server error {status} {body}"
            );
            if target == Target::Own {
                assert_eq!(status.as_u16(), route.own, "{cell}: {body}");
                continue;
            }
            if route.op == Op::List {
                assert_eq!(status.as_u16(), route.own, "{cell}: {body}");
                continue;
            }
            if route.op == Op::Claim && target == Target::Missing {
                assert_eq!(
                    status.as_u16(),
                    route.own,
                    "{cell}: a first write claims: {body}"
                );
                continue;
            }
            answers.push((target, status, mask(&body, &ids.thread)));
        }
        if route.op == Op::List {
            continue;
        }
        let (_, s0, b0) = &answers[0];
        for (target, s, b) in &answers[1..] {
            assert_eq!(
                (s, b),
                (s0, b0),
                "[{label}] {}: {target:?} answers differently from {:?}",
                route.name,
                answers[0].0
            );
        }
        let protocol = route.name.starts_with("cp ");
        let want = if protocol && route.op != Op::Claim {
            // The protocol answers a thread the caller may not see as an empty one.
            StatusCode::OK
        } else if route.name == "POST thread (create)" {
            StatusCode::CONFLICT
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(*s0, want, "[{label}] {}: {b0}", route.name);
    }

    // Run ids are unique within their thread only: admitting under alice's run id on one of
    // mallory's own threads succeeds exactly as a fresh id does, so a run id tells nothing
    // about other users' threads.
    let fresh = format!("fresh-run-{n}");
    let mut admitted = Vec::new();
    for (k, run) in [&foreign.run, &fresh].into_iter().enumerate() {
        let own = format!("mallory-runs-{n}-{k}");
        let ids = seed(&app, ATTACKER, &own, "mallory-data").await;
        prepare(&app, ATTACKER, &ids, Prep::Ended, "mallory-data").await;
        let (s, b) = call(
            &app,
            Some(ATTACKER),
            Method::POST,
            &format!("/api/v1/threads/{own}/runs"),
            Some(json!({"run_id": run})),
        )
        .await;
        if let Some(leak) = leaks(&b, &forbidden) {
            panic!("[{label}] admitting under alice's run id leaks {leak:?}: {s} {b}");
        }
        assert_eq!(b["run_id"], json!(run), "[{label}] {b}");
        admitted.push(s);
    }
    assert_eq!(
        admitted,
        vec![StatusCode::CREATED, StatusCode::CREATED],
        "[{label}] alice's run id is not admitted like a fresh one"
    );
    cells += 2;

    let after = observed(&app, &foreign, &rowless_id).await;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a, "[{label}] alice's or the row-less data changed");
    }
    // The foreign thread is still alice's, and the row-less one still has no owner.
    let (_, t) = call(
        &app,
        None,
        Method::GET,
        &format!("/api/v1/threads/{foreign_id}"),
        None,
    )
    .await;
    assert_eq!(t["owner"], OWNER, "[{label}] {t}");
    let (s, _) = call(
        &app,
        None,
        Method::GET,
        &format!("/api/v1/threads/{rowless_id}"),
        None,
    )
    .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "[{label}] the row-less thread gained a row"
    );

    // Token usage naming alice's session is refused like a missing session.
    let (_, session) = call(
        &app,
        Some(OWNER),
        Method::POST,
        "/api/v1/sessions",
        Some(json!({"title": SECRET})),
    )
    .await;
    let sid = session["session_id"]
        .as_str()
        .expect("session id")
        .to_owned();
    let (s1, b1) = call(
        &app,
        Some(ATTACKER),
        Method::POST,
        "/api/v1/token-usage",
        Some(json!({"model": "m", "prompt_tokens": 1, "completion_tokens": 1, "session_id": sid})),
    )
    .await;
    let (s2, b2) = call(&app, Some(ATTACKER), Method::POST, "/api/v1/token-usage",
        Some(json!({"model": "m", "prompt_tokens": 1, "completion_tokens": 1, "session_id": format!("none-{n}")}))).await;
    assert_eq!(
        (s1, s2),
        (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND),
        "[{label}] {b1}"
    );
    assert_eq!(
        mask(&b1, &sid),
        mask(&b2, &format!("none-{n}")),
        "[{label}]"
    );
    cells += 2;

    println!(
        "isolation[{label}]: {} routes x 4 targets + 2 run-id + 2 session cells = {cells} cells, all passed",
        routes().len()
    );
    app.shutdown().await;
    cells
}

// -- backends --------------------------------------------------------------------------------

#[tokio::test]
async fn isolation_memory() {
    let backend = Backend::memory_with_clock(Arc::new(waymark_domain::clock::SystemClock));
    assert!(run_matrix(backend, "memory").await > 200);
}

#[tokio::test]
async fn isolation_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("iso.db").display());
    let backend = waymark_interfaces::backend::open(&url).await.expect("open");
    run_matrix(backend, "sqlite").await;
}

#[tokio::test]
async fn isolation_langgraph_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "langgraph+sqlite://{}",
        dir.path().join("iso-lg.db").display()
    );
    let backend = waymark_interfaces::backend::open(&url).await.expect("open");
    run_matrix(backend, "langgraph+sqlite").await;
}

#[tokio::test]
async fn isolation_postgres() {
    let Some((url, name)) = fresh_database("isolation_postgres").await else {
        return;
    };
    let backend = waymark_interfaces::backend::open(&url).await.expect("open");
    let result = tokio::spawn(run_matrix(backend, "postgres")).await;
    drop_database(&name).await;
    result.expect("matrix on postgres");
}

#[tokio::test]
async fn isolation_langgraph_postgres() {
    let Some((url, name)) = fresh_database("isolation_langgraph_postgres").await else {
        return;
    };
    let backend = waymark_interfaces::backend::open(&format!("langgraph+{url}"))
        .await
        .expect("open");
    let result = tokio::spawn(run_matrix(backend, "langgraph+postgres")).await;
    drop_database(&name).await;
    result.expect("matrix on langgraph+postgres");
}

// -- who the caller is -------------------------------------------------------------------------

#[tokio::test]
async fn a_request_without_a_user_fails_unless_admin_mode() {
    let backend = Backend::memory_with_clock(Arc::new(waymark_domain::clock::SystemClock));
    let app = spawn_with(backend.clone(), ServerConfig::default()).await;
    let (s, e) = call(&app, None, Method::GET, "/api/v1/threads", None).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_user"))
    );
    let (s, e) = call(
        &app,
        None,
        Method::POST,
        "/checkpointer/put",
        Some(cp_body("t", None, "c1", "x")),
    )
    .await;
    assert_eq!(
        (s, e["kind"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("PermissionError"))
    );
    let (s, e) = call(
        &app,
        None,
        Method::POST,
        "/checkpointer/get_tuple",
        Some(json!({"config": {"thread_id": "t"}})),
    )
    .await;
    assert_eq!(
        (s, e["kind"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("PermissionError"))
    );
    let all = backend
        .stores
        .checkpoints
        .list(&Default::default())
        .await
        .unwrap();
    assert!(all.is_empty(), "nothing was written");
    // A refused request says it closes the connection (its body is never read), so a
    // keep-alive client opens a new one instead of failing on a closed socket.
    let refused = app
        .client
        .post(format!("{}/checkpointer/put", app.base))
        .json(&cp_body("t", None, "c1", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused
            .headers()
            .get("connection")
            .and_then(|v| v.to_str().ok()),
        Some("close")
    );
    let too_long = "u".repeat(256);
    let (s, e) = call(&app, Some(&too_long), Method::GET, "/api/v1/threads", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, _) = call(&app, Some(OWNER), Method::GET, "/api/v1/threads", None).await;
    assert_eq!(s, StatusCode::OK);
    // Probes and the protocol's capabilities need no user.
    let (s, _) = call(&app, None, Method::GET, "/checkpointer/capabilities", None).await;
    assert_eq!(s, StatusCode::OK);
    app.shutdown().await;
}

#[tokio::test]
async fn per_user_tokens_bind_the_user_and_the_service_token_trusts_the_header() {
    let backend = Backend::memory_with_clock(Arc::new(waymark_domain::clock::SystemClock));
    let config = ServerConfig {
        auth_token: Some("service-token".into()),
        user_tokens: vec![
            (
                waymark_domain::UserId::parse(OWNER).unwrap(),
                "token-of-alice".into(),
            ),
            (
                waymark_domain::UserId::parse(ATTACKER).unwrap(),
                "token-of-mallory".into(),
            ),
        ],
        ..ServerConfig::default()
    };
    let app = spawn_with(backend, config).await;
    let send =
        |token: &str, user: Option<&str>, method: Method, path: &str, body: Option<Value>| {
            let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
            if let Some(u) = user {
                req = req.header("x-waymark-user", u);
            }
            if let Some(b) = body {
                req = req.json(&b);
            }
            app.send(req)
        };
    let (s, t) = send(
        "token-of-alice",
        None,
        Method::POST,
        "/api/v1/threads",
        Some(json!({"thread_id": "t-a"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    assert_eq!(t["owner"], OWNER);
    let (s, _) = send(
        "token-of-alice",
        None,
        Method::POST,
        "/checkpointer/put",
        Some(cp_body("t-a", None, "c1", SECRET)),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // The token binds the user: naming someone else is refused on both surfaces.
    let (s, e) = send(
        "token-of-mallory",
        Some(OWNER),
        Method::GET,
        "/api/v1/threads/t-a",
        None,
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (s, e) = send(
        "token-of-mallory",
        Some(OWNER),
        Method::POST,
        "/checkpointer/get_tuple",
        Some(json!({"config": {"thread_id": "t-a"}})),
    )
    .await;
    assert_eq!(
        (s, e["kind"].as_str()),
        (StatusCode::FORBIDDEN, Some("PermissionError"))
    );
    // Naming oneself is fine; another user's thread is not found.
    let (s, _) = send(
        "token-of-alice",
        Some(OWNER),
        Method::GET,
        "/api/v1/threads/t-a",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = send(
        "token-of-mallory",
        None,
        Method::GET,
        "/api/v1/threads/t-a",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = send(
        "token-of-mallory",
        None,
        Method::POST,
        "/checkpointer/get_tuple",
        Some(json!({"config": {"thread_id": "t-a"}})),
    )
    .await;
    assert_eq!((s, &b["tuple"]), (StatusCode::OK, &Value::Null));
    let (s, e) = send(
        "token-of-mallory",
        None,
        Method::POST,
        "/checkpointer/put",
        Some(cp_body("t-a", Some("c1"), "c2", "x")),
    )
    .await;
    assert_eq!(
        (s, e["kind"].as_str()),
        (StatusCode::NOT_FOUND, Some("LookupError"))
    );
    // The service token: the header names the user, and there is no admin fallback.
    let (s, e) = send("service-token", None, Method::GET, "/api/v1/threads", None).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_user"))
    );
    let (s, b) = send(
        "service-token",
        Some(OWNER),
        Method::POST,
        "/checkpointer/get_tuple",
        Some(json!({"config": {"thread_id": "t-a"}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["tuple"]["metadata"]["marker"], SECRET);
    let (s, _) = send(
        "not-a-token",
        Some(OWNER),
        Method::GET,
        "/api/v1/threads",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    app.shutdown().await;
}
