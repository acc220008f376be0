//! Store benchmarks over memory, a SQLite file and PostgreSQL.
//!
//! ```text
//! cargo bench -p waymark-infrastructure --bench stores            # full run
//! cargo bench -p waymark-infrastructure --bench stores -- --quick # scaled down
//! ```
//!
//! (`WAYMARK_BENCH_QUICK=1` also scales down; `WAYMARK_BENCH_BACKENDS=sqlite-file,postgres`
//! picks backends; `WAYMARK_BENCH_SYNCHRONOUS=normal|full|both` picks the SQLite file's
//! durability, FULL reported as its own backend `sqlite-file-full`, default `both`;
//! `WAYMARK_BENCH_SQLITE_DIRECT=0` sends every SQLite statement through the sqlx pool instead of
//! the direct connections, for comparison;
//! `WAYMARK_BENCH_KEEP=1` keeps the databases for inspection and prints where.) PostgreSQL is taken from
//! `WAYMARK_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`) and runs in
//! a throwaway schema; it is skipped when no server answers.
//!
//! Workloads (checkpoints carry a `messages` channel of LangChain-like messages, 200-800
//! characters each, msgpack-encoded, growing by two per step, plus a few small channels):
//!
//! * W1: one thread, N steps of `put` + `put_writes` (steps/s, p50/p99 per call);
//! * W2: `get_tuple` latest, 500x (served by the delta cache of the process that wrote it),
//!   and again 500x through a second connection, as another process with no cache;
//!   W3: `get_tuple` by a random id, 500x;
//! * W4: `list` limit 20, 200x, and the full list;
//! * W5: 1,000 threads x 5 steps; W6: 16 concurrent writers x 50 steps;
//! * flatness: `get_tuple` latest and by id on threads of 10, 100 and 1,000 checkpoints whose
//!   state has the same size (a message window of at most 20), and the 1,000/10 ratios;
//! * bytes on disk after W1 next to what storing the whole message list in every checkpoint
//!   would cost;
//! * events: 100k events appended to one thread, then `list_messages` pages (first, middle,
//!   last), compared with the same pages at 1k events.
//!
//! Prints a table and writes `target/bench-stores.json`.

use std::time::{Duration, Instant};

use indexmap::IndexMap;
use rmpv::Value;
use serde_json::json;
use waymark_domain::Stores;
use waymark_domain::checkpoint::{
    ChannelVersion, Checkpoint, CheckpointMetadata, CheckpointPut, CheckpointQuery, TypedValue,
    WriteBatch,
};
use waymark_domain::paging::{Limit, SeqPage};
use waymark_domain::run_event::NewRunEvent;
use waymark_domain::{
    ChannelName, CheckpointId, CheckpointNamespace, EventCategory, EventType, RunId, TaskId,
    ThreadId, UserScope,
};
use waymark_infrastructure::connect::{
    Backend, ConnectOptions, Connected, SqliteSynchronous, connect,
};

/// Scale of one run.
#[derive(Clone, Copy)]
struct Scale {
    w1_steps: usize,
    reads: usize,
    lists: usize,
    w5_threads: usize,
    w6_steps: usize,
    events: usize,
}

const FULL: Scale = Scale {
    w1_steps: 200,
    reads: 500,
    lists: 200,
    w5_threads: 1000,
    w6_steps: 50,
    events: 100_000,
};

const QUICK: Scale = Scale {
    w1_steps: 60,
    reads: 100,
    lists: 50,
    w5_threads: 100,
    w6_steps: 10,
    events: 10_000,
};

/// A small deterministic generator (xorshift), so every backend sees the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn text(&mut self, len: usize) -> String {
        const WORDS: [&str; 12] = [
            "the",
            "agent",
            "checkpoint",
            "tool",
            "call",
            "returned",
            "a",
            "result",
            "about",
            "weather",
            "in",
            "Paris",
        ];
        let mut s = String::with_capacity(len + 12);
        while s.len() < len {
            s.push_str(WORDS[self.below(WORDS.len() as u64) as usize]);
            s.push(' ');
        }
        s.truncate(len);
        s
    }
}

/// One LangChain-like message, encoded as LangGraph encodes pydantic models: extension 5
/// wrapping `[module, class, fields]`.
fn message(rng: &mut Rng, i: usize) -> Value {
    let kind = if i.is_multiple_of(2) { "human" } else { "ai" };
    let class = if i.is_multiple_of(2) {
        "HumanMessage"
    } else {
        "AIMessage"
    };
    let len = 200 + rng.below(601) as usize;
    let fields = Value::Map(vec![
        (Value::from("content"), Value::from(rng.text(len))),
        (Value::from("additional_kwargs"), Value::Map(vec![])),
        (Value::from("response_metadata"), Value::Map(vec![])),
        (Value::from("type"), Value::from(kind)),
        (Value::from("name"), Value::Nil),
        (
            Value::from("id"),
            Value::from(format!("run-{:016x}-{i}", rng.next())),
        ),
    ]);
    let inner = Value::Array(vec![
        Value::from("langchain_core.messages"),
        Value::from(class),
        fields,
    ]);
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &inner).expect("vec write");
    Value::Ext(5, bytes)
}

fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, v).expect("vec write");
    out
}

fn ch(name: &str) -> ChannelName {
    ChannelName::parse(name).expect("channel")
}

/// A thread's growing state: the message list and the versions of its channels.
struct Conversation {
    thread: ThreadId,
    messages: Vec<Value>,
    versions: IndexMap<ChannelName, ChannelVersion>,
    parent: Option<CheckpointId>,
    step: i64,
    rng: Rng,
    /// Bytes a store keeping every value whole in every checkpoint would hold.
    full_bytes: u64,
    /// Start the message list afresh once it holds this many messages (bounded state).
    window: Option<usize>,
}

impl Conversation {
    fn new(thread: &str, seed: u64) -> Self {
        Self {
            thread: ThreadId::parse(thread).expect("thread"),
            messages: Vec::new(),
            versions: IndexMap::new(),
            parent: None,
            step: -1,
            rng: Rng(seed | 1),
            full_bytes: 0,
            window: None,
        }
    }

    /// A conversation whose message list restarts every `messages` messages, so its state
    /// stays the same size however long the thread gets.
    fn windowed(thread: &str, seed: u64, messages: usize) -> Self {
        Self {
            window: Some(messages),
            ..Self::new(thread, seed)
        }
    }

    /// The next step: two more messages, a turn counter and a routing channel.
    fn step(&mut self) -> (CheckpointPut, WriteBatch) {
        self.step += 1;
        if self.window.is_some_and(|w| self.messages.len() >= w) {
            self.messages.clear();
        }
        let n = self.messages.len();
        let m1 = message(&mut self.rng, n);
        let m2 = message(&mut self.rng, n + 1);
        self.messages.push(m1.clone());
        self.messages.push(m2.clone());
        let mut cp = Checkpoint::empty(self.step);
        let values = [
            (
                "messages",
                TypedValue::msgpack(encode(&Value::Array(self.messages.clone()))),
            ),
            (
                "turns",
                TypedValue::msgpack(encode(&Value::from(self.step))),
            ),
            ("branch:to:agent", TypedValue::null()),
            (
                "summary",
                TypedValue::msgpack(encode(&Value::from(format!("step {}", self.step)))),
            ),
        ];
        let mut new_versions = IndexMap::new();
        for (name, value) in values {
            let c = ch(name);
            let changed = name != "summary" || self.step % 10 == 0;
            if changed || !self.versions.contains_key(&c) {
                let next = ChannelVersion::next(
                    self.versions.get(&c),
                    (self.rng.below(1_000_000) as f64) / 1_000_000.0,
                );
                self.versions.insert(c.clone(), next.clone());
                new_versions.insert(c.clone(), next);
            }
            self.full_bytes += value.stored_len() as u64;
            cp.channel_values.insert(c, value);
        }
        cp.channel_versions = self.versions.clone();
        cp.updated_channels = Some(new_versions.keys().cloned().collect());
        let mut meta = serde_json::Map::new();
        meta.insert("source".into(), json!("loop"));
        meta.insert("step".into(), json!(self.step));
        meta.insert("run_id".into(), json!(format!("run-{}", self.step / 5)));
        meta.insert("parents".into(), json!({}));
        let put = CheckpointPut {
            thread_id: self.thread.clone(),
            namespace: CheckpointNamespace::root(),
            parent_id: self.parent.clone(),
            checkpoint: cp.clone(),
            metadata: CheckpointMetadata(meta),
            new_versions,
        };
        self.parent = Some(cp.id.clone());
        let writes = WriteBatch {
            target: waymark_domain::checkpoint::CheckpointRef {
                thread_id: self.thread.clone(),
                namespace: CheckpointNamespace::root(),
                checkpoint_id: cp.id,
            },
            task_id: TaskId::parse(format!("task-{}", self.step)).expect("task"),
            task_path: "~__pregel_pull, agent".into(),
            writes: vec![
                (
                    ch("messages"),
                    TypedValue::msgpack(encode(&Value::Array(vec![m2]))),
                ),
                (ch("branch:to:agent"), TypedValue::null()),
            ],
        };
        (put, writes)
    }
}

/// Latency samples of one operation.
#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    fn pct(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let mut v: Vec<f64> = self.0.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i.min(v.len() - 1)]
    }

    fn json(&self) -> serde_json::Value {
        json!({"n": self.0.len(), "p50_ms": round(self.pct(0.5)), "p99_ms": round(self.pct(0.99))})
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn rate(n: usize, d: Duration) -> f64 {
    (n as f64 / d.as_secs_f64()).round()
}

/// One backend under test.
struct Subject {
    name: &'static str,
    connected: Connected,
    cleanup: Option<Box<dyn FnOnce() + Send>>,
    schema: Option<String>,
    /// Where a second connection to the same database opens (not for `memory`).
    reopen: Option<(String, ConnectOptions)>,
}

impl Subject {
    fn stores(&self) -> &Stores {
        &self.connected.stores
    }

    /// A second connection to the same database, as another process would hold: its caches
    /// start empty, so its reads are served by the rows alone.
    async fn second_connection(&self) -> Option<Connected> {
        let (url, options) = self.reopen.clone()?;
        Some(connect(&url, options).await.expect("second connection"))
    }

    async fn stored_bytes(&self) -> Option<u64> {
        match &self.connected.backend {
            Backend::Sql(b) => b.stored_bytes().await.ok(),
            Backend::Memory(_) => None,
        }
    }

    async fn finish(self) {
        if let (Some(schema), Backend::Sql(b)) = (&self.schema, &self.connected.backend) {
            let _ = b
                .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .await;
        }
        let _ = self.connected.close().await;
        if let Some(c) = self.cleanup {
            c();
        }
    }
}

/// The backends, in report order (`sqlite-file` runs `synchronous = NORMAL`, the default,
/// `sqlite-file-full` `synchronous = FULL`).
const SUBJECTS: [&str; 4] = ["memory", "sqlite-file", "sqlite-file-full", "postgres"];

async fn open(name: &'static str) -> Option<Subject> {
    let mut options = ConnectOptions::default();
    match name {
        "memory" => Some(Subject {
            name,
            connected: connect("memory://", options).await.ok()?,
            cleanup: None,
            schema: None,
            reopen: None,
        }),
        "sqlite-file" | "sqlite-file-full" => {
            let path = std::env::temp_dir().join(format!(
                "waymark-bench-{}.db",
                uuid::Uuid::new_v4().simple()
            ));
            options.sqlite_synchronous = if name == "sqlite-file-full" {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            };
            // WAYMARK_BENCH_SQLITE_DIRECT=0: every statement through the sqlx pool (A/B).
            options.sqlite_direct =
                std::env::var("WAYMARK_BENCH_SQLITE_DIRECT").map_or(true, |v| v != "0");
            let url = format!("sqlite://{}?mode=rwc", path.display());
            eprintln!(
                "{name}: {} (direct connections: {})",
                path.display(),
                options.sqlite_direct
            );
            let connected = connect(&url, options.clone()).await.expect("sqlite");
            Some(Subject {
                reopen: Some((url, options)),
                name,
                connected,
                cleanup: Some(Box::new(move || {
                    for s in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{s}", path.display()));
                    }
                })),
                schema: None,
            })
        }
        "postgres" => {
            let url = std::env::var("WAYMARK_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let schema = format!("wm_bench_{}", uuid::Uuid::new_v4().simple());
            options.postgres_schema = Some(schema.clone());
            options.pool_size = 20;
            let second = options.clone();
            match tokio::time::timeout(Duration::from_secs(10), connect(&url, options)).await {
                Ok(Ok(connected)) => Some(Subject {
                    name,
                    connected,
                    cleanup: None,
                    schema: Some(schema),
                    reopen: Some((url, second)),
                }),
                _ => {
                    eprintln!("postgres: no server answers at {url}; skipped");
                    None
                }
            }
        }
        _ => None,
    }
}

async fn checkpoint_workloads(s: &Subject, scale: Scale) -> serde_json::Value {
    let cps = s.stores().checkpoints.clone();
    let base_bytes = s.stored_bytes().await;
    // W1
    let mut conv = Conversation::new("w1", 42);
    let mut put_lat = Samples::default();
    let mut writes_lat = Samples::default();
    let mut ids = Vec::new();
    let start = Instant::now();
    for _ in 0..scale.w1_steps {
        let (put, writes) = conv.step();
        ids.push(put.checkpoint.id.clone());
        let t = Instant::now();
        cps.put(put).await.expect("put");
        put_lat.push(t.elapsed());
        let t = Instant::now();
        cps.put_writes(writes).await.expect("put_writes");
        writes_lat.push(t.elapsed());
    }
    let w1_time = start.elapsed();
    let bytes_after = s.stored_bytes().await;
    let thread = conv.thread.clone();
    let root = CheckpointNamespace::root();
    // W2
    let mut latest = Samples::default();
    for _ in 0..scale.reads {
        let t = Instant::now();
        let tuple = cps.get_tuple(&thread, &root, None).await.expect("get");
        latest.push(t.elapsed());
        assert!(tuple.is_some());
    }
    // W2 again through a second connection (another process): no cache to serve from.
    let mut latest_cold = Samples::default();
    if let Some(second) = s.second_connection().await {
        let cold = second.stores.checkpoints.clone();
        for _ in 0..scale.reads {
            let t = Instant::now();
            let tuple = cold.get_tuple(&thread, &root, None).await.expect("get");
            latest_cold.push(t.elapsed());
            assert!(tuple.is_some());
        }
        drop(cold);
        second.close().await.expect("close");
    }
    // W3
    let mut rng = Rng(7);
    let mut by_id = Samples::default();
    for _ in 0..scale.reads {
        let id = ids[rng.below(ids.len() as u64) as usize].clone();
        let t = Instant::now();
        let tuple = cps.get_tuple(&thread, &root, Some(id)).await.expect("get");
        by_id.push(t.elapsed());
        assert!(tuple.is_some());
    }
    // W4
    let mut list20 = Samples::default();
    for _ in 0..scale.lists {
        let q = CheckpointQuery {
            limit: Some(20),
            ..CheckpointQuery::thread_ns(thread.clone(), root.clone())
        };
        let t = Instant::now();
        let page = cps.list(&q).await.expect("list");
        list20.push(t.elapsed());
        assert_eq!(page.len(), 20.min(scale.w1_steps));
    }
    let mut list_all = Samples::default();
    for _ in 0..5 {
        let t = Instant::now();
        let all = cps
            .list(&CheckpointQuery::thread(thread.clone()))
            .await
            .expect("list");
        list_all.push(t.elapsed());
        assert_eq!(all.len(), scale.w1_steps);
    }
    // W5
    let start = Instant::now();
    for t in 0..scale.w5_threads {
        let mut c = Conversation::new(&format!("w5-{t}"), t as u64 + 1);
        for _ in 0..5 {
            let (put, writes) = c.step();
            cps.put(put).await.expect("put");
            cps.put_writes(writes).await.expect("put_writes");
        }
    }
    let w5_time = start.elapsed();
    // W6
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let cps = cps.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Conversation::new(&format!("w6-{w}"), 1000 + w as u64);
            for _ in 0..scale.w6_steps {
                let (put, writes) = c.step();
                cps.put(put).await.expect("put");
                cps.put_writes(writes).await.expect("put_writes");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let w6_time = start.elapsed();
    json!({
        "w1": {
            "steps": scale.w1_steps,
            "steps_per_s": rate(scale.w1_steps, w1_time),
            "put": put_lat.json(),
            "put_writes": writes_lat.json(),
        },
        "w2_get_latest": latest.json(),
        "w2_get_latest_second_connection": latest_cold.json(),
        "w3_get_by_id": by_id.json(),
        "w4_list_20": list20.json(),
        "w4_list_all": list_all.json(),
        "w5": {"threads": scale.w5_threads, "steps": scale.w5_threads * 5,
               "steps_per_s": rate(scale.w5_threads * 5, w5_time)},
        "w6": {"writers": 16, "steps": 16 * scale.w6_steps,
               "steps_per_s": rate(16 * scale.w6_steps, w6_time)},
        "bytes": {
            "empty_db": base_bytes,
            "after_w1": bytes_after,
            "w1_growth": bytes_after.zip(base_bytes).map(|(a, b)| a.saturating_sub(b)),
            "full_copy_payload_bytes": conv.full_bytes,
        },
    })
}

/// Read latency against thread length: threads of 10, 100 and 1,000 checkpoints with the same
/// state size (a window of at most 20 messages, so the last checkpoints of every thread look
/// alike); `get_tuple` latest, and by a random id among the last 10 checkpoints.
async fn flatness_workload(s: &Subject, scale: Scale) -> serde_json::Value {
    let cps = s.stores().checkpoints.clone();
    let root = CheckpointNamespace::root();
    let mut out = serde_json::Map::new();
    let mut p50 = Vec::new();
    for len in [10_usize, 100, 1000] {
        let mut conv = Conversation::windowed(&format!("flat-{len}"), len as u64, 20);
        let mut ids = Vec::new();
        for _ in 0..len {
            let (put, writes) = conv.step();
            ids.push(put.checkpoint.id.clone());
            cps.put(put).await.expect("put");
            cps.put_writes(writes).await.expect("put_writes");
        }
        let thread = conv.thread.clone();
        let mut latest = Samples::default();
        for _ in 0..scale.reads {
            let t = Instant::now();
            let tuple = cps.get_tuple(&thread, &root, None).await.expect("get");
            latest.push(t.elapsed());
            assert!(tuple.is_some());
        }
        let mut rng = Rng(len as u64 + 3);
        let mut by_id = Samples::default();
        for _ in 0..scale.reads {
            let id = ids[len - 1 - rng.below(10) as usize].clone();
            let t = Instant::now();
            let tuple = cps.get_tuple(&thread, &root, Some(id)).await.expect("get");
            by_id.push(t.elapsed());
            assert!(tuple.is_some());
        }
        p50.push((latest.pct(0.5), by_id.pct(0.5)));
        out.insert(
            format!("n{len}"),
            json!({"checkpoints": len, "get_latest": latest.json(), "get_by_id": by_id.json()}),
        );
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { round(a / b) } else { 0.0 };
    out.insert(
        "get_latest_ratio_1000_over_10".into(),
        json!(ratio(p50[2].0, p50[0].0)),
    );
    out.insert(
        "get_by_id_ratio_1000_over_10".into(),
        json!(ratio(p50[2].1, p50[0].1)),
    );
    serde_json::Value::Object(out)
}

fn event(thread: &ThreadId, i: usize) -> NewRunEvent {
    let category = if i % 3 == 2 { "trace" } else { "message" };
    NewRunEvent::new(
        thread.clone(),
        RunId::parse(format!("run-{}", i / 100)).expect("run"),
        EventType::parse("llm.ai.response").expect("type"),
        EventCategory::parse(category).expect("category"),
    )
    .with_content(json!({"content": format!("message {i} with some text of a reply"), "id": i}))
}

async fn pages(s: &Subject, thread: &ThreadId, max_seq: i64, reps: usize) -> serde_json::Value {
    let events = s.stores().run_events.clone();
    let fifty = Limit::new(50).expect("limit");
    let mut out = serde_json::Map::new();
    for (name, page) in [
        ("first", SeqPage::After(0, fifty)),
        ("middle", SeqPage::Before(max_seq / 2, fifty)),
        ("last", SeqPage::Latest(fifty)),
    ] {
        let mut lat = Samples::default();
        for _ in 0..reps {
            let t = Instant::now();
            let rows = events
                .list_messages(&UserScope::Unscoped, thread, page)
                .await
                .expect("page");
            lat.push(t.elapsed());
            assert_eq!(rows.len(), 50);
        }
        out.insert(name.into(), lat.json());
    }
    serde_json::Value::Object(out)
}

async fn event_workloads(s: &Subject, scale: Scale) -> serde_json::Value {
    let events = s.stores().run_events.clone();
    let thread = ThreadId::parse("events").expect("thread");
    let mut single = Samples::default();
    for i in 0..1000 {
        let t = Instant::now();
        events
            .put(&UserScope::Unscoped, event(&thread, i))
            .await
            .expect("put");
        single.push(t.elapsed());
    }
    let at_1k = pages(s, &thread, 1000, 100).await;
    let start = Instant::now();
    let mut n = 1000;
    while n < scale.events {
        let batch: Vec<NewRunEvent> = (n..n + 500).map(|i| event(&thread, i)).collect();
        events
            .put_batch(&UserScope::Unscoped, batch)
            .await
            .expect("batch");
        n += 500;
    }
    let batch_time = start.elapsed();
    let at_full = pages(s, &thread, n as i64, 100).await;
    json!({
        "single_put": single.json(),
        "batched_events_per_s": rate(n - 1000, batch_time),
        "events": n,
        "pages_at_1k": at_1k,
        "pages_at_full": at_full,
    })
}

fn row(label: &str, v: &serde_json::Value) -> String {
    format!(
        "  {label:<28} p50 {:>9.3} ms   p99 {:>9.3} ms",
        v["p50_ms"].as_f64().unwrap_or(0.0),
        v["p99_ms"].as_f64().unwrap_or(0.0)
    )
}

fn print_flatness(f: &serde_json::Value) {
    for n in ["n10", "n100", "n1000"] {
        println!(
            "{}",
            row(&format!("flat get latest {n}"), &f[n]["get_latest"])
        );
        println!(
            "{}",
            row(&format!("flat get by id {n}"), &f[n]["get_by_id"])
        );
    }
    println!(
        "  flatness ratio 1000/10: get latest {}, get by id {}",
        f["get_latest_ratio_1000_over_10"], f["get_by_id_ratio_1000_over_10"]
    );
}

fn print(name: &str, c: &serde_json::Value, e: &serde_json::Value) {
    println!("\n== {name}");
    println!(
        "  W1 {} steps: {} steps/s",
        c["w1"]["steps"], c["w1"]["steps_per_s"]
    );
    println!("{}", row("W1 put", &c["w1"]["put"]));
    println!("{}", row("W1 put_writes", &c["w1"]["put_writes"]));
    println!("{}", row("W2 get latest", &c["w2_get_latest"]));
    if c["w2_get_latest_second_connection"]["n"].as_u64() > Some(0) {
        println!(
            "{}",
            row(
                "W2 ... another connection",
                &c["w2_get_latest_second_connection"]
            )
        );
    }
    println!("{}", row("W3 get by id", &c["w3_get_by_id"]));
    println!("{}", row("W4 list limit 20", &c["w4_list_20"]));
    println!("{}", row("W4 list all", &c["w4_list_all"]));
    println!(
        "  W5 {} threads x 5 steps: {} steps/s",
        c["w5"]["threads"], c["w5"]["steps_per_s"]
    );
    println!(
        "  W6 16 writers x {} steps: {} steps/s",
        c["w6"]["steps"].as_u64().unwrap_or(0) / 16,
        c["w6"]["steps_per_s"]
    );
    println!(
        "  bytes after W1: {} (empty db {}), full-copy payloads would be {}",
        c["bytes"]["after_w1"], c["bytes"]["empty_db"], c["bytes"]["full_copy_payload_bytes"]
    );
    println!("{}", row("event put (single)", &e["single_put"]));
    println!(
        "  events batched: {} events/s ({} events)",
        e["batched_events_per_s"], e["events"]
    );
    for p in ["first", "middle", "last"] {
        println!("{}", row(&format!("page {p} @1k"), &e["pages_at_1k"][p]));
        println!(
            "{}",
            row(
                &format!("page {p} @{}", e["events"]),
                &e["pages_at_full"][p]
            )
        );
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("WAYMARK_BENCH_QUICK").is_ok_and(|v| v == "1");
    let scale = if quick { QUICK } else { FULL };
    let mut report = serde_json::Map::new();
    report.insert("quick".into(), json!(quick));
    report.insert(
        "cpus".into(),
        json!(std::thread::available_parallelism().map_or(0, |n| n.get())),
    );
    let only = std::env::var("WAYMARK_BENCH_BACKENDS").ok();
    let sync = std::env::var("WAYMARK_BENCH_SYNCHRONOUS").unwrap_or_else(|_| "both".into());
    if !matches!(sync.as_str(), "normal" | "full" | "both") {
        eprintln!("WAYMARK_BENCH_SYNCHRONOUS must be normal, full or both, not {sync:?}");
        std::process::exit(2);
    }
    for name in SUBJECTS {
        let picked = match &only {
            // `sqlite-file` in the list stands for the SQLite file at the chosen durabilities.
            Some(o) => o
                .split(',')
                .any(|b| b == name || (b == "sqlite-file" && name == "sqlite-file-full")),
            None => true,
        };
        let sync_ok = match name {
            "sqlite-file" => sync != "full",
            "sqlite-file-full" => {
                sync != "normal"
                    || only
                        .as_ref()
                        .is_some_and(|o| o.split(',').any(|b| b == name))
            }
            _ => true,
        };
        if !picked || !sync_ok {
            continue;
        }
        let Some(subject) = open(name).await else {
            continue;
        };
        eprintln!("running {name} ...");
        let c = checkpoint_workloads(&subject, scale).await;
        let f = flatness_workload(&subject, scale).await;
        let e = event_workloads(&subject, scale).await;
        print(subject.name, &c, &e);
        print_flatness(&f);
        let mut entry = json!({"checkpoints": c, "events": e, "flatness": f});
        if let Some(sync) = match name {
            "sqlite-file" => Some("normal"),
            "sqlite-file-full" => Some("full"),
            _ => None,
        } {
            entry["synchronous"] = json!(sync);
        }
        report.insert(name.into(), entry);
        if std::env::var("WAYMARK_BENCH_KEEP").is_ok_and(|v| v == "1") {
            eprintln!("{name}: kept for inspection (schema {:?})", subject.schema);
        } else {
            subject.finish().await;
        }
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-stores.json");
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(report)).expect("json");
    match std::fs::write(&path, text) {
        Ok(()) => println!("\nwrote {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}
