//! The `waymark` binary run as a process against SQLite files (native and LangGraph layout).

mod support;

use std::path::Path;
use std::process::{Command, Output};

use indexmap::IndexMap;
use serde_json::{Value, json};
use waymark_adapters::codec::{Message, MessageClass, ToolCall, encode_messages};
use waymark_domain::checkpoint::{
    ChannelVersion, Checkpoint, CheckpointMetadata, CheckpointPut, CheckpointRef,
    CheckpointRepository, TypedValue, WriteBatch,
};
use waymark_domain::thread::NewThread;
use waymark_domain::{ChannelName, CheckpointId, CheckpointNamespace, TaskId, ThreadId, UserScope};
use waymark_interfaces::backend;

fn waymark(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_waymark"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run waymark")
}

fn ok(args: &[&str]) -> String {
    let out = waymark(args);
    assert!(
        out.status.success(),
        "waymark {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn url(scheme: &str, dir: &Path, name: &str) -> String {
    format!("{scheme}://{}", dir.join(name).display())
}

fn messages(n: usize) -> TypedValue {
    let all = [
        Message::new(MessageClass::Human, "What is 6 x 7?"),
        {
            let mut ai = Message::new(MessageClass::Ai, "");
            ai.tool_calls = vec![ToolCall::new(
                "calc",
                json!({"expr": "6*7"}),
                Some("call-1".into()),
            )];
            ai
        },
        {
            let mut tool = Message::new(MessageClass::Tool, "42");
            tool.tool_call_id = Some("call-1".into());
            tool
        },
        Message::new(MessageClass::Ai, "It is 42."),
    ];
    encode_messages(&all[..n]).unwrap()
}

/// Writes a thread with two checkpoints (the second adds messages and has a pending write).
async fn seed(db: &str, with_record: bool) {
    let b = backend::open(db).await.expect("open the seed database");
    let thread = ThreadId::parse("t-cli").unwrap();
    if with_record {
        b.stores
            .threads
            .create(&UserScope::Unscoped, NewThread::with_id(thread.clone()))
            .await
            .unwrap();
    }
    seed_checkpoints(b.stores.checkpoints.as_ref()).await;
}

/// The checkpoints of [`seed`], through any checkpoint store.
async fn seed_checkpoints(checkpoints: &dyn CheckpointRepository) {
    let thread = ThreadId::parse("t-cli").unwrap();
    let ch = |s: &str| ChannelName::parse(s).unwrap();
    let mut parent = None;
    for (i, id) in [
        "1f000000-0000-6000-8000-000000000001",
        "1f000000-0000-6000-8001-000000000002",
    ]
    .iter()
    .enumerate()
    {
        let mut values = IndexMap::new();
        values.insert(ch("counter"), TypedValue::msgpack(vec![i as u8 + 1]));
        if i == 1 {
            values.insert(ch("messages"), messages(4));
        }
        let versions: IndexMap<ChannelName, ChannelVersion> = values
            .keys()
            .map(|k| (k.clone(), ChannelVersion::Int(i as i64 + 1)))
            .collect();
        let metadata: CheckpointMetadata =
            serde_json::from_value(json!({"source": "loop", "step": i, "parents": {}})).unwrap();
        let checkpoint = Checkpoint {
            v: 4,
            id: CheckpointId::parse(*id).unwrap(),
            ts: format!("2026-01-01T00:00:0{i}+00:00"),
            channel_values: values,
            channel_versions: versions.clone(),
            versions_seen: IndexMap::new(),
            updated_channels: None,
            extra: IndexMap::new(),
        };
        checkpoints
            .put(CheckpointPut {
                thread_id: thread.clone(),
                namespace: CheckpointNamespace::root(),
                parent_id: parent.clone(),
                checkpoint,
                metadata,
                new_versions: versions,
            })
            .await
            .unwrap();
        parent = Some(CheckpointId::parse(*id).unwrap());
    }
    checkpoints
        .put_writes(WriteBatch {
            target: CheckpointRef {
                thread_id: thread.clone(),
                namespace: CheckpointNamespace::root(),
                checkpoint_id: parent.clone().unwrap(),
            },
            task_id: TaskId::parse("task-1").unwrap(),
            task_path: "~__pregel_pull, agent".into(),
            writes: vec![
                (ch("answer"), TypedValue::msgpack(vec![42])),
                (
                    ch("__interrupt__"),
                    TypedValue::msgpack(vec![0xa2, b'o', b'k']),
                ),
                (ch("other"), TypedValue::null()),
            ],
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn inspection_commands_read_a_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = url("sqlite", dir.path(), "w.db");
    assert!(ok(&["migrate", "--database-url", &db]).contains("migrated"));
    seed(&db, true).await;

    let listed: Value =
        serde_json::from_str(&ok(&["threads", "--database-url", &db, "--json"])).unwrap();
    assert_eq!(listed["threads"][0]["thread_id"], "t-cli");
    assert_eq!(listed["threads"][0]["checkpoints"], 2);
    let table = ok(&["threads", "--database-url", &db]);
    assert!(
        table.starts_with("THREAD") && table.contains("t-cli") && table.contains("idle"),
        "{table}"
    );

    let history = ok(&["history", "t-cli", "--database-url", &db]);
    let lines: Vec<&str> = history.lines().collect();
    assert!(lines[0].contains("CHECKPOINT") && lines[0].contains("WRITES"));
    assert!(
        lines[1].contains("8001-000000000002") && lines[1].contains("loop"),
        "newest first: {history}"
    );
    assert!(
        lines[1].contains("__interrupt__") && lines[1].contains("answer"),
        "{history}"
    );
    let as_json: Value =
        serde_json::from_str(&ok(&["history", "t-cli", "--database-url", &db, "--json"])).unwrap();
    assert_eq!(as_json.as_array().unwrap().len(), 2);
    assert_eq!(as_json[0]["step"], 1);

    let shown = ok(&["show", "t-cli", "--database-url", &db]);
    assert!(shown.contains("human: What is 6 x 7?"), "{shown}");
    assert!(
        shown.contains("[tool calls: calc({\"expr\":\"6*7\"})]"),
        "{shown}"
    );
    assert!(shown.contains("tool: 42 [answers call-1]"), "{shown}");
    assert!(
        shown.contains("interrupts:") && shown.contains("\"ok\""),
        "{shown}"
    );
    assert!(shown.contains("counter  (v 2) = 2"), "{shown}");
    let older: Value = serde_json::from_str(&ok(&[
        "show",
        "t-cli",
        "1f000000-0000-6000-8000-000000000001",
        "--database-url",
        &db,
        "--json",
    ]))
    .unwrap();
    assert_eq!(older["channels"]["counter"]["value"], 1);

    let diff = ok(&[
        "diff",
        "t-cli@1f000000-0000-6000-8000-000000000001",
        "t-cli",
        "--database-url",
        &db,
    ]);
    assert!(diff.contains("+ messages"), "{diff}");
    assert!(diff.contains("~ counter (version 1 -> 2"), "{diff}");

    let msgs = ok(&["messages", "t-cli", "--database-url", &db]);
    assert!(
        msgs.starts_with("4 messages of thread t-cli (from checkpoint)"),
        "{msgs}"
    );

    let missing = waymark(&["show", "nope", "--database-url", &db]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("has no checkpoint"));
    let bad_url = waymark(&["threads", "--database-url", "mysql://x"]);
    assert_eq!(bad_url.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_url.stderr).contains("unknown database URL"));
    let bad_id = waymark(&["history", "bad\nid", "--database-url", &db]);
    assert_eq!(bad_id.status.code(), Some(2));
}

#[tokio::test]
async fn export_import_and_copy_are_lossless_across_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let langgraph = url("langgraph+sqlite", dir.path(), "lg.db");
    seed(&langgraph, false).await;

    // LangGraph file -> JSON lines -> native SQLite.
    let file = dir.path().join("export.jsonl");
    ok(&[
        "export",
        "--database-url",
        &langgraph,
        "--output",
        file.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.lines().next().unwrap().contains("\"kind\":\"header\""));
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("\"kind\":\"checkpoint\""))
            .count(),
        2
    );
    let native = url("sqlite", dir.path(), "native.db");
    ok(&[
        "import",
        "--database-url",
        &native,
        "--input",
        file.to_str().unwrap(),
    ]);
    let a: Value = serde_json::from_str(&ok(&[
        "show",
        "t-cli",
        "--database-url",
        &langgraph,
        "--json",
        "--raw",
    ]))
    .unwrap();
    let b: Value = serde_json::from_str(&ok(&[
        "show",
        "t-cli",
        "--database-url",
        &native,
        "--json",
        "--raw",
    ]))
    .unwrap();
    assert_eq!(a["channels"], b["channels"], "payload bytes survive");
    assert_eq!(
        a["pending_writes"], b["pending_writes"],
        "writes keep task path and indices"
    );
    assert_eq!(
        b["pending_writes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["idx"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [-3, 0, 2]
    );

    // Copy LangGraph -> a fresh native file, verified; a second run resumes (nothing to do).
    let copied = url("sqlite", dir.path(), "copy.db");
    let state = dir.path().join("copy.state");
    let out = waymark(&[
        "copy",
        "--from",
        &langgraph,
        "--to",
        &copied,
        "--state",
        state.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        said.contains("copied 1 threads (2 checkpoints, verified)"),
        "{said}"
    );
    let again = waymark(&[
        "copy",
        "--from",
        &langgraph,
        "--to",
        &copied,
        "--state",
        state.to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&again.stderr).to_string();
    assert!(
        said.contains("copied 0 threads") && said.contains("1 already copied"),
        "{said}"
    );
    let c: Value = serde_json::from_str(&ok(&[
        "show",
        "t-cli",
        "--database-url",
        &copied,
        "--json",
        "--raw",
    ]))
    .unwrap();
    assert_eq!(a["channels"], c["channels"]);

    let broken = dir.path().join("broken.jsonl");
    std::fs::write(&broken, "{\"kind\":\"thread\"}\n").unwrap();
    let r = waymark(&[
        "import",
        "--database-url",
        &native,
        "--input",
        broken.to_str().unwrap(),
    ]);
    assert_eq!(
        r.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
}

/// Starts `waymark serve` with `args`, waits for the checkpointer's health, stops it with
/// SIGTERM and checks the exit status.
fn serve_until_healthy_then_terminate(args: &[&str], bind: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_waymark"))
        .arg("serve")
        .args(args)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let mut healthy = false;
    for _ in 0..200 {
        if let Ok(mut s) = std::net::TcpStream::connect(bind) {
            use std::io::{Read, Write};
            let _ = s.write_all(
                format!(
                    "GET /checkpointer/health HTTP/1.1\r\nhost: {bind}\r\nconnection: close\r\n\r\n"
                )
                .as_bytes(),
            );
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.1 200") && buf.contains("{\"ok\":true}") {
                healthy = true;
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(healthy, "the server never became healthy ({args:?})");
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn serve_starts_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = url("sqlite", dir.path(), "serve.db");
    let bind = format!("127.0.0.1:{}", free_port());
    serve_until_healthy_then_terminate(&["--database-url", &db, "--bind", &bind], &bind);

    // The protocol harness's form (spec §9.2) stores in LangGraph's SQLite layout.
    let port = free_port();
    let file = dir.path().join("harness.db");
    serve_until_healthy_then_terminate(
        &[
            "--backend",
            "sqlite",
            "--port",
            &port.to_string(),
            "--sqlite-path",
            file.to_str().unwrap(),
        ],
        &format!("127.0.0.1:{port}"),
    );
    let conn = std::process::Command::new(env!("CARGO_BIN_EXE_waymark"))
        .args([
            "history",
            "x",
            "--database-url",
            &format!("langgraph+sqlite://{}", file.display()),
        ])
        .output()
        .unwrap();
    assert!(
        conn.status.success(),
        "LangGraph tables exist: {}",
        String::from_utf8_lossy(&conn.stderr)
    );
    let usage = waymark(&["serve", "--backend", "sqlite", "--port", "1"]);
    assert_eq!(
        usage.status.code(),
        Some(2),
        "--backend sqlite needs --sqlite-path"
    );
}

/// `waymark serve` reconciles runs before listening (spec §6.8.3): a thread a crashed server
/// left `running` with no live run becomes `error`; a thread whose run is pending stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reconciles_threads_left_running() {
    use waymark_domain::run::NewRun;
    use waymark_domain::thread::{ThreadStatus, ThreadUpdate};
    let dir = tempfile::tempdir().unwrap();
    let db = url("sqlite", dir.path(), "reconcile.db");
    let status_of = |b: &backend::Backend, id: &'static str| {
        let threads = b.stores.threads.clone();
        async move {
            threads
                .get(&UserScope::Unscoped, &ThreadId::parse(id).unwrap())
                .await
                .unwrap()
                .unwrap()
                .status
        }
    };
    {
        let b = backend::open(&db).await.expect("open the database");
        for id in ["crashed", "queued"] {
            let t = ThreadId::parse(id).unwrap();
            b.stores
                .threads
                .create(&UserScope::Unscoped, NewThread::with_id(t.clone()))
                .await
                .unwrap();
            let running = ThreadUpdate {
                status: Some(ThreadStatus::Running),
                touch: true,
                ..ThreadUpdate::default()
            };
            b.stores
                .threads
                .update(&UserScope::Unscoped, &t, running)
                .await
                .unwrap();
        }
        let queued = NewRun::new(
            ThreadId::parse("queued").unwrap(),
            waymark_domain::RunId::parse("r").unwrap(),
        );
        b.stores
            .runs
            .create(&UserScope::Unscoped, queued)
            .await
            .unwrap();
    }
    let bind = format!("127.0.0.1:{}", free_port());
    let args = [
        "--database-url".to_owned(),
        db.clone(),
        "--bind".to_owned(),
        bind.clone(),
    ];
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        serve_until_healthy_then_terminate(&args, &bind);
    })
    .await
    .unwrap();
    let b = backend::open(&db).await.unwrap();
    assert_eq!(status_of(&b, "crashed").await, ThreadStatus::Error);
    assert_eq!(status_of(&b, "queued").await, ThreadStatus::Running);
}

#[tokio::test]
async fn chown_gives_rowless_checkpoints_an_owner() {
    let dir = tempfile::tempdir().unwrap();
    let db = url("langgraph+sqlite", dir.path(), "lg.db");
    {
        // Checkpoints written with no thread row, as a Python process would.
        let b = backend::open(&db).await.unwrap();
        let mut cp = Checkpoint::empty(0);
        cp.id = CheckpointId::parse("c1").unwrap();
        b.stores
            .checkpoints
            .put(CheckpointPut {
                thread_id: ThreadId::parse("py-thread").unwrap(),
                namespace: CheckpointNamespace::root(),
                parent_id: None,
                new_versions: IndexMap::new(),
                checkpoint: cp,
                metadata: CheckpointMetadata::default(),
            })
            .await
            .unwrap();
    }
    let out = ok(&["chown", "py-thread", "alice", "--database-url", &db]);
    assert!(out.contains("owned by alice"), "{out}");
    let b = backend::open(&db).await.unwrap();
    let alice = UserScope::User(waymark_domain::UserId::parse("alice").unwrap());
    let t = b
        .stores
        .threads
        .get(&alice, &ThreadId::parse("py-thread").unwrap())
        .await
        .unwrap()
        .expect("alice sees the thread now");
    assert_eq!(t.owner.unwrap().as_str(), "alice");
    let out = ok(&["chown", "py-thread", "--no-owner", "--database-url", &db]);
    assert!(out.contains("no owner"), "{out}");
    assert!(
        waymark(&["chown", "py-thread", "--database-url", &db])
            .status
            .code()
            == Some(2)
    );
}

#[test]
fn commands_log_at_warn_by_default_and_verbose_raises_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = url("sqlite", dir.path(), "quiet.db");
    let run = |command: &[&str]| {
        let mut args = command.to_vec();
        args.extend_from_slice(&["--database-url", db.as_str()]);
        let out = Command::new(env!("CARGO_BIN_EXE_waymark"))
            .args(&args)
            .env_remove("RUST_LOG")
            .output()
            .expect("run waymark");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    // Creating and migrating the database (a write command): still nothing below warn.
    let quiet = run(&["migrate"]);
    assert!(!quiet.contains("INFO"), "default stderr: {quiet}");
    let quiet = run(&["threads"]);
    assert!(!quiet.contains("INFO"), "default stderr: {quiet}");
    let verbose = run(&["threads", "-v"]);
    assert!(verbose.contains("INFO"), "-v stderr: {verbose}");
}

/// `tests/fixtures/export-v1.jsonl` was written by `waymark export` before the transfer use
/// case moved to the application layer (every record kind: session, item, thread with a
/// non-idle status, checkpoints with string versions and a bytes value, a writes group with a
/// special channel between regular indices, events, feedback, a chat stream, a branch, a
/// snapshot, and a record-less thread in a subgraph namespace). It must keep importing, and
/// exporting what it imported must give back the same lines (the header aside).
#[test]
fn an_export_written_by_an_earlier_build_still_imports_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/export-v1.jsonl");
    let db = url("sqlite", dir.path(), "imported.db");
    ok(&[
        "import",
        "--database-url",
        &db,
        "--input",
        fixture.to_str().unwrap(),
    ]);
    let again = dir.path().join("again.jsonl");
    ok(&[
        "export",
        "--database-url",
        &db,
        "--output",
        again.to_str().unwrap(),
    ]);
    // Byte for byte, except the creation time of branches and snapshots, which the target
    // store stamps.
    let comparable = |text: String| -> Vec<String> {
        text.lines()
            .skip(1)
            .map(|l| {
                if l.starts_with("{\"kind\":\"branch\"") || l.starts_with("{\"kind\":\"snapshot\"")
                {
                    let at = l
                        .rfind(",\"created_at\":")
                        .expect("branch and snapshot lines end in created_at");
                    l[..at].to_owned()
                } else {
                    l.to_owned()
                }
            })
            .collect()
    };
    let before = comparable(std::fs::read_to_string(&fixture).unwrap());
    let after = comparable(std::fs::read_to_string(&again).unwrap());
    assert_eq!(before.len(), 15, "every record of the fixture");
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(a, b);
    }
    assert_eq!(after.len(), before.len());
}

/// Runs `waymark serve` expecting it to refuse its settings at start-up; kills it and fails
/// if it is still running after 20 s (it would be serving instead).
fn serve_refuses(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_waymark"))
        .args([
            "serve",
            "--database-url",
            "memory://",
            "--bind",
            "127.0.0.1:0",
        ])
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            panic!("serve {args:?} {env:?} started instead of refusing its settings");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An environment variable: name and value.
type Env<'a> = (&'a str, &'a str);

#[test]
fn serve_refuses_bad_limit_settings_at_start_up_naming_the_setting() {
    let cases: [(&[&str], &[Env], &str); 11] = [
        (
            &["--header-read-timeout", "0s"],
            &[],
            "--header-read-timeout",
        ),
        (&["--body-read-timeout", "25h"], &[], "--body-read-timeout"),
        (&["--idle-timeout", "soon"], &[], "--idle-timeout"),
        (&["--idle-timeout", "10"], &[], "--idle-timeout"),
        (&["--max-connections", "0"], &[], "--max-connections"),
        (&["--max-connections", "many"], &[], "--max-connections"),
        (
            &["--max-inflight-body-bytes", "1000"],
            &[],
            "--max-inflight-body-bytes",
        ),
        (
            &["--chat-stream-buffer-budget-bytes", "1024"],
            &[],
            "--chat-stream-buffer-budget-bytes",
        ),
        (&[], &[("WAYMARK_IDLE_TIMEOUT", "0ms")], "--idle-timeout"),
        (
            &[],
            &[("WAYMARK_MAX_CONNECTIONS", "-1")],
            "--max-connections",
        ),
        (
            &[],
            &[("WAYMARK_MAX_INFLIGHT_BODY_BYTES", "4096")],
            "--max-inflight-body-bytes",
        ),
    ];
    for (args, env, names) in cases {
        let (code, stderr) = serve_refuses(args, env);
        assert_eq!(code, Some(2), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains(names),
            "{args:?} {env:?} names {names}: {stderr}"
        );
    }
}
// -- read commands change nothing --------------------------------------------------------------

/// Every read command, each as a separate run, on `db` (the `t-cli` thread of [`seed`]).
fn read_commands(db: &str) -> Vec<Vec<String>> {
    let older = "t-cli@1f000000-0000-6000-8000-000000000001";
    [
        vec!["threads", "--json"],
        vec!["threads"],
        vec!["history", "t-cli"],
        vec!["show", "t-cli"],
        vec!["diff", older, "t-cli"],
        vec!["messages", "t-cli"],
        vec!["export", "--output", "-"],
    ]
    .into_iter()
    .map(|args| {
        let mut v: Vec<String> = args.into_iter().map(str::to_owned).collect();
        v.extend(["--database-url".to_owned(), db.to_owned()]);
        v
    })
    .collect()
}

/// The table names of a SQLite file, read through a fresh read-only connection.
async fn sqlite_tables(path: &Path) -> Vec<String> {
    use sea_orm::{ConnectionTrait, Statement};
    let conn = sea_orm::Database::connect(format!("sqlite://{}?mode=ro", path.display()))
        .await
        .unwrap();
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
        ))
        .await
        .unwrap();
    let _ = conn.close().await;
    rows.iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .collect()
}

/// Runs every read command on a SQLite file and checks the file's bytes and tables after
/// each one.
async fn read_commands_leave_the_file_alone(db: &str, path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let tables = sqlite_tables(path).await;
    for args in read_commands(db) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ok(&args);
        assert!(!out.trim().is_empty(), "{args:?} printed nothing");
        assert!(
            std::fs::read(path).unwrap() == bytes,
            "{args:?} changed the bytes of {}",
            path.display()
        );
        assert_eq!(
            sqlite_tables(path).await,
            tables,
            "{args:?} changed the tables"
        );
    }
}

#[tokio::test]
async fn read_commands_leave_a_langgraph_sqlite_file_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lg.db");
    // A file only LangGraph's layout ever touched (what a Python SqliteSaver leaves).
    let store = waymark_adapters::sqlite_layout::LangGraphSqliteStore::open(&path)
        .await
        .unwrap();
    seed_checkpoints(&store).await;
    store.pool().close().await;
    assert_eq!(sqlite_tables(&path).await, ["checkpoints", "writes"]);

    let db = format!("langgraph+sqlite://{}", path.display());
    read_commands_leave_the_file_alone(&db, &path).await;
    let listed: Value =
        serde_json::from_str(&ok(&["threads", "--database-url", &db, "--json"])).unwrap();
    assert_eq!(listed["threads"][0]["thread_id"], "t-cli", "{listed}");
    assert_eq!(listed["threads"][0]["checkpoints"], 2, "{listed}");

    // The native URL on the same file has no Waymark tables to read: a clear error.
    let native = waymark(&[
        "threads",
        "--database-url",
        &url("sqlite", dir.path(), "lg.db"),
    ]);
    assert_eq!(native.status.code(), Some(1));
    let err = String::from_utf8_lossy(&native.stderr);
    assert!(
        err.contains("no Waymark tables") && err.contains("waymark migrate"),
        "{err}"
    );
    assert_eq!(sqlite_tables(&path).await, ["checkpoints", "writes"]);

    // A command that writes says so and does write: chown migrates Waymark's tables in.
    ok(&["chown", "t-cli", "alice", "--database-url", &db]);
    assert!(
        sqlite_tables(&path)
            .await
            .contains(&"waymark_threads".to_owned())
    );
}

/// [`seed`] into a native SQLite file through a pool that is closed before returning (a
/// backend merely dropped, or the direct connections' threads, may still checkpoint the WAL
/// into the file afterwards, which would look like a change made by the next command); then
/// runs `admin_sql`, if any.
async fn seed_and_close(db: &str, admin_sql: Option<&str>) {
    let connected = waymark_infrastructure::connect::connect(
        db,
        waymark_infrastructure::connect::ConnectOptions {
            sqlite_direct: false,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    connected
        .stores
        .threads
        .create(
            &UserScope::Unscoped,
            NewThread::with_id(ThreadId::parse("t-cli").unwrap()),
        )
        .await
        .unwrap();
    seed_checkpoints(connected.stores.checkpoints.as_ref()).await;
    if let Some(sql) = admin_sql {
        let waymark_infrastructure::connect::Backend::Sql(b) = &connected.backend else {
            panic!("sqlite is a SQL backend");
        };
        b.execute_unprepared(sql).await.unwrap();
    }
    connected.close().await.unwrap();
}

#[tokio::test]
async fn read_commands_leave_a_native_sqlite_file_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = url("sqlite", dir.path(), "w.db");
    seed_and_close(&db, None).await;
    read_commands_leave_the_file_alone(&db, &dir.path().join("w.db")).await;
}

#[tokio::test]
async fn read_commands_refuse_a_missing_file_or_a_schema_behind() {
    let dir = tempfile::tempdir().unwrap();
    for scheme in ["sqlite", "langgraph+sqlite"] {
        let db = url(scheme, dir.path(), "none.db");
        for args in read_commands(&db) {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = waymark(&args);
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("no such database file"), "{args:?}: {err}");
        }
        assert!(
            !dir.path().join("none.db").exists(),
            "{scheme}: a file was created"
        );
    }

    // A database one migration behind: read commands do not migrate it, they say how to.
    let db = url("sqlite", dir.path(), "old.db");
    seed_and_close(
        &db,
        Some(
            "DELETE FROM waymark_migrations \
             WHERE version = (SELECT MAX(version) FROM waymark_migrations)",
        ),
    )
    .await;
    let path = dir.path().join("old.db");
    let bytes = std::fs::read(&path).unwrap();
    let out = waymark(&["threads", "--database-url", &db]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("behind") && err.contains("waymark migrate"),
        "{err}"
    );
    assert!(
        std::fs::read(&path).unwrap() == bytes,
        "the old database was changed"
    );
    ok(&["migrate", "--database-url", &db]);
    assert!(ok(&["threads", "--database-url", &db]).contains("t-cli"));
}

#[tokio::test]
async fn read_commands_run_no_ddl_on_a_langgraph_postgres_database() {
    use sea_orm::{ConnectionTrait, Statement};
    let Some((pg, name)) = support::fresh_database("read_commands_langgraph_postgres").await else {
        return;
    };
    let db = format!("langgraph+{pg}");
    let missing = waymark(&["threads", "--database-url", &db]);
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("LangGraph's checkpoint tables are missing"),
        "{err}"
    );

    let store = waymark_adapters::postgres_layout::LangGraphPostgresStore::connect(&pg)
        .await
        .unwrap();
    seed_checkpoints(&store).await;
    store.pool().close().await;
    let conn = sea_orm::Database::connect(&pg).await.unwrap();
    let tables = || async {
        conn.query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "tablename").unwrap())
        .collect::<Vec<_>>()
    };
    let before = tables().await;
    assert!(
        !before.iter().any(|t| t.starts_with("waymark_")),
        "{before:?}"
    );
    for args in read_commands(&db) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&args);
        assert_eq!(tables().await, before, "{args:?} changed the tables");
    }
    assert!(ok(&["history", "t-cli", "--database-url", &db]).contains("8001-000000000002"));

    // The native URL on the same database: no Waymark tables, a clear error, still no DDL.
    let native = waymark(&["threads", "--database-url", &pg]);
    assert_eq!(native.status.code(), Some(1));
    let err = String::from_utf8_lossy(&native.stderr);
    assert!(err.contains("no Waymark tables"), "{err}");
    assert_eq!(tables().await, before);

    // Once migrated, a read-only open reads, and its sessions refuse any write.
    ok(&["migrate", "--database-url", &pg]);
    let read_only = backend::open_read_only(&pg).await.unwrap();
    assert!(
        read_only
            .stores
            .threads
            .create(
                &UserScope::Unscoped,
                NewThread::with_id(ThreadId::parse("t-new").unwrap())
            )
            .await
            .is_err(),
        "a read-only PostgreSQL session wrote"
    );
    let _ = conn.close().await;
    support::drop_database(&name).await;
}

#[tokio::test]
async fn a_read_only_sqlite_open_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = url("sqlite", dir.path(), "w.db");
    ok(&["migrate", "--database-url", &db]);
    let read_only = backend::open_read_only(&db).await.unwrap();
    let id = ThreadId::parse("t-new").unwrap();
    let refused = read_only
        .stores
        .threads
        .create(&UserScope::Unscoped, NewThread::with_id(id.clone()))
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(
        read_only
            .stores
            .threads
            .get(&UserScope::Unscoped, &id)
            .await
            .unwrap()
            .is_none()
    );
}

// -- serve --config ----------------------------------------------------------------------------

#[test]
fn serve_settings_come_from_flags_then_env_then_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("waymark.toml");
    // Unknown schemes make `serve` stop right after reading its settings, naming the URL.
    std::fs::write(&config, "database_url = \"fromfile://x\"\n").unwrap();
    let config = config.to_str().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_waymark"))
            .args(args)
            .env_remove("WAYMARK_DATABASE_URL")
            .env_remove("WAYMARK_CONFIG")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run(&["serve", "--config", config], &[]).contains("fromfile://x"));
    assert!(run(&["serve"], &[("WAYMARK_CONFIG", config)]).contains("fromfile://x"));
    let env = [("WAYMARK_DATABASE_URL", "fromenv://x")];
    assert!(run(&["serve", "--config", config], &env).contains("fromenv://x"));
    let err = run(
        &[
            "serve",
            "--config",
            config,
            "--database-url",
            "fromflag://x",
        ],
        &env,
    );
    assert!(err.contains("fromflag://x"), "{err}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "max_body_bytes = -1\n").unwrap();
    let err = run(&["serve", "--config", bad.to_str().unwrap()], &[]);
    assert!(err.contains("key `max_body_bytes`"), "{err}");
}
