//! Inspection commands: `threads`, `history`, `show`, `diff`, `messages`. They run unscoped
//! (administrative) and work on any URL, LangGraph databases included.

use std::collections::BTreeMap;

use clap::Args;
use serde_json::{Value as JsonValue, json};
use waymark_application::thread_checkpoints::diff_messages;
use waymark_application::{ChannelMessage, MessageCodec};
use waymark_domain::checkpoint::{CheckpointQuery, CheckpointTuple};
use waymark_domain::paging::{Limit, OffsetPage, SeqPage};
use waymark_domain::thread::{Thread, ThreadFilter, ThreadQuery, ThreadStatus};
use waymark_domain::{CheckpointId, CheckpointNamespace, SessionId, ThreadId, UserScope};

use super::{CliError, CliResult, DbArgs, OutputArgs};
use crate::api::dto::{
    CheckpointEntry, CheckpointState, EventDto, HistoryDto, MessageDiffDto, ThreadDto,
};
use crate::render;
use crate::services::{LangGraphMessageCodec, Services};

/// A plain text table: a header, rows, columns padded to their widest cell.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// The widest a cell is printed; longer text ends in `…` (display only; `--json` is whole).
const MAX_CELL: usize = 60;

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn clip(s: &str) -> String {
        let one_line = s.replace('\n', " ");
        if one_line.chars().count() > MAX_CELL {
            let cut: String = one_line.chars().take(MAX_CELL - 1).collect();
            format!("{cut}…")
        } else {
            one_line
        }
    }

    /// The rendered text.
    pub fn render(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(|c| Self::clip(c)).collect())
            .collect();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &rows {
            for (i, c) in r.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(c.chars().count());
                }
            }
        }
        let line = |cells: &[String]| -> String {
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let pad = widths
                        .get(i)
                        .copied()
                        .unwrap_or(0)
                        .saturating_sub(c.chars().count());
                    format!("{c}{}", " ".repeat(pad))
                })
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        };
        let mut out = line(&self.header);
        out.push('\n');
        for r in &rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }
}

fn print_json(v: &impl serde::Serialize) -> CliResult {
    let text = serde_json::to_string_pretty(v).map_err(|e| CliError::new(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// `waymark threads`.
#[derive(Debug, Args)]
pub struct ThreadsArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    out: OutputArgs,
    /// Only this stored status.
    #[arg(long)]
    status: Option<String>,
    /// Only threads of this session.
    #[arg(long)]
    session: Option<String>,
    /// Exact-match metadata filter, a JSON object.
    #[arg(long)]
    metadata: Option<String>,
    /// At most this many thread records.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Skip this many thread records.
    #[arg(long, default_value_t = 0)]
    offset: u64,
    /// List thread records only (skip scanning checkpoints for threads without a record).
    #[arg(long)]
    records_only: bool,
}

/// One line of `waymark threads`.
#[derive(Debug, serde::Serialize)]
struct ThreadLine {
    thread_id: String,
    record: Option<ThreadDto>,
    checkpoints: Option<usize>,
    namespaces: Option<usize>,
    latest_checkpoint: Option<String>,
}

/// Runs `waymark threads`.
pub async fn threads(a: ThreadsArgs) -> CliResult {
    let backend = a.db.open_read_only().await?;
    let stores = &backend.stores;
    let filter = match &a.metadata {
        None => ThreadFilter::default(),
        Some(text) => {
            let obj = match serde_json::from_str::<JsonValue>(text) {
                Ok(JsonValue::Object(o)) => o,
                _ => return Err(CliError::usage("--metadata must be a JSON object")),
            };
            ThreadFilter::parse(obj)?.0
        }
    };
    let filtered = !filter.is_empty() || a.status.is_some() || a.session.is_some();
    let query = ThreadQuery {
        filter,
        status: a
            .status
            .as_deref()
            .map(str::parse::<ThreadStatus>)
            .transpose()?,
        session_id: a.session.clone().map(SessionId::parse).transpose()?,
        page: OffsetPage::new(a.limit, a.offset)?,
    };
    let page = stores.threads.search(&UserScope::Unscoped, &query).await?;
    // Checkpoint counts, and threads that exist only as checkpoints (LangGraph databases).
    let mut counts: BTreeMap<String, (usize, std::collections::BTreeSet<String>, String)> =
        BTreeMap::new();
    if !a.records_only {
        for t in stores.checkpoints.list(&CheckpointQuery::default()).await? {
            let e = counts.entry(t.thread_id.as_str().to_owned()).or_default();
            e.0 += 1;
            e.1.insert(t.namespace.as_str().to_owned());
            if t.namespace.is_root() && t.checkpoint.id.as_str() > e.2.as_str() {
                e.2 = t.checkpoint.id.as_str().to_owned();
            }
        }
    }
    let mut lines: Vec<ThreadLine> = Vec::new();
    let recorded: Vec<Thread> = page.items;
    for t in recorded {
        let c = counts.remove(t.id.as_str());
        lines.push(ThreadLine {
            thread_id: t.id.as_str().to_owned(),
            checkpoints: c
                .as_ref()
                .map(|c| c.0)
                .or(if a.records_only { None } else { Some(0) }),
            namespaces: c.as_ref().map(|c| c.1.len()),
            latest_checkpoint: c.and_then(|c| (!c.2.is_empty()).then_some(c.2)),
            record: Some(t.into()),
        });
    }
    if !filtered && a.offset == 0 {
        for (id, c) in counts {
            lines.push(ThreadLine {
                thread_id: id,
                record: None,
                checkpoints: Some(c.0),
                namespaces: Some(c.1.len()),
                latest_checkpoint: (!c.2.is_empty()).then_some(c.2),
            });
        }
    }
    if a.out.json {
        return print_json(&json!({"threads": lines, "has_more_records": page.has_more}));
    }
    let mut table = Table::new(&[
        "THREAD",
        "STATUS",
        "SESSION",
        "CHECKPOINTS",
        "LATEST",
        "UPDATED",
        "NAME",
    ]);
    for l in &lines {
        let r = l.record.as_ref();
        table.row(vec![
            l.thread_id.clone(),
            r.map(|r| r.status.clone())
                .unwrap_or_else(|| "(no record)".into()),
            r.and_then(|r| r.session_id.clone()).unwrap_or_default(),
            l.checkpoints
                .map(|n| match l.namespaces {
                    Some(ns) if ns > 1 => format!("{n} in {ns} ns"),
                    _ => n.to_string(),
                })
                .unwrap_or_default(),
            l.latest_checkpoint.clone().unwrap_or_default(),
            r.map(|r| r.updated_at.clone()).unwrap_or_default(),
            r.and_then(|r| r.display_name.clone()).unwrap_or_default(),
        ]);
    }
    print!("{}", table.render());
    if page.has_more {
        println!(
            "(more thread records: use --offset {})",
            a.offset + u64::from(a.limit)
        );
    }
    Ok(())
}

/// `waymark history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    out: OutputArgs,
    /// The thread.
    thread: String,
    /// Only this namespace (default: every namespace).
    #[arg(long)]
    ns: Option<String>,
    /// At most this many checkpoints, newest first.
    #[arg(long)]
    limit: Option<u32>,
    /// Only checkpoints older than this id.
    #[arg(long)]
    before: Option<String>,
}

/// Runs `waymark history`.
pub async fn history(a: HistoryArgs) -> CliResult {
    let backend = a.db.open_read_only().await?;
    let query = CheckpointQuery {
        thread_id: Some(ThreadId::parse(a.thread.clone())?),
        namespace: a.ns.clone().map(CheckpointNamespace::parse).transpose()?,
        before: a.before.clone().map(CheckpointId::parse).transpose()?,
        limit: a.limit.map(|l| Limit::new(l).map(Limit::get)).transpose()?,
        ..CheckpointQuery::default()
    };
    let tuples = backend.stores.checkpoints.list(&query).await?;
    let entries: Vec<CheckpointEntry> = tuples.iter().map(CheckpointEntry::from).collect();
    if a.out.json {
        return print_json(&entries);
    }
    if entries.is_empty() {
        println!("thread {} has no checkpoints", a.thread);
        return Ok(());
    }
    let mut table = Table::new(&[
        "CHECKPOINT",
        "NS",
        "STEP",
        "SOURCE",
        "PARENT",
        "WRITES",
        "TS",
    ]);
    for e in &entries {
        let mut writes: BTreeMap<&str, usize> = BTreeMap::new();
        for c in &e.write_channels {
            *writes.entry(c.as_str()).or_default() += 1;
        }
        table.row(vec![
            e.checkpoint_id.clone(),
            e.checkpoint_ns.clone(),
            e.step.map(|s| s.to_string()).unwrap_or_default(),
            e.source.clone().unwrap_or_default(),
            e.parent_checkpoint_id.clone().unwrap_or_default(),
            writes
                .iter()
                .map(|(c, n)| {
                    if *n > 1 {
                        format!("{c}×{n}")
                    } else {
                        (*c).to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
            e.ts.clone(),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

/// `waymark show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    out: OutputArgs,
    /// The thread.
    thread: String,
    /// The checkpoint (default: the latest).
    checkpoint: Option<String>,
    /// The namespace (default: the root graph).
    #[arg(long, default_value = "")]
    ns: String,
    /// Include each payload's bytes in base64 (with --json).
    #[arg(long)]
    raw: bool,
}

async fn load(
    stores: &waymark_domain::Stores,
    thread: &str,
    ns: &str,
    checkpoint: Option<&str>,
) -> CliResult<CheckpointTuple> {
    let thread = ThreadId::parse(thread.to_owned())?;
    let ns = CheckpointNamespace::parse(ns.to_owned())?;
    let id = checkpoint
        .map(|c| CheckpointId::parse(c.to_owned()))
        .transpose()?;
    stores
        .checkpoints
        .get_tuple(&thread, &ns, id.clone())
        .await?
        .ok_or_else(|| {
            CliError::new(match id {
                Some(id) => {
                    format!("checkpoint {id} of thread {thread} (namespace {ns:?}) not found")
                }
                None => format!("thread {thread} has no checkpoint in namespace {ns:?}"),
            })
        })
}

fn compact(v: &JsonValue) -> String {
    match v {
        JsonValue::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Runs `waymark show`.
pub async fn show(a: ShowArgs) -> CliResult {
    let backend = a.db.open_read_only().await?;
    let t = load(&backend.stores, &a.thread, &a.ns, a.checkpoint.as_deref()).await?;
    let state = CheckpointState::of(&t, a.raw);
    if a.out.json {
        return print_json(&state);
    }
    println!("thread      {}", state.thread_id);
    println!("namespace   {:?}", state.checkpoint_ns);
    println!("checkpoint  {}", state.checkpoint_id);
    println!(
        "parent      {}",
        state.parent_checkpoint_id.as_deref().unwrap_or("-")
    );
    println!("ts          {}", state.ts);
    println!(
        "step        {}   source {}   v {}",
        state.step.map(|s| s.to_string()).unwrap_or("-".into()),
        state.source.as_deref().unwrap_or("-"),
        state.v
    );
    println!("metadata    {}", JsonValue::Object(state.metadata.clone()));
    println!("\nchannels:");
    for (name, entry) in &state.channels {
        let version = state
            .channel_versions
            .get(name)
            .map(compact)
            .unwrap_or_default();
        if name == "messages" && state.messages.is_some() {
            println!(
                "  {name}  (v {version}, {} messages)",
                state.messages.as_ref().map_or(0, Vec::len)
            );
            continue;
        }
        let shown = match entry.get("decode_error") {
            Some(e) => format!(
                "<{} bytes, tag {}: {}>",
                entry["bytes"],
                entry["type"],
                e.as_str().unwrap_or("")
            ),
            None => compact(&entry["value"]),
        };
        println!("  {name}  (v {version}) = {shown}");
    }
    if let Some(messages) = &state.messages {
        println!("\nmessages:");
        for (i, m) in messages.iter().enumerate() {
            println!("  {i:>3}. {}", render::message_line(m));
        }
    }
    if !state.interrupts.is_empty() {
        println!("\ninterrupts:");
        for i in &state.interrupts {
            println!("  {}", compact(i));
        }
    }
    if !state.pending_writes.is_empty() {
        println!("\npending writes:");
        for w in &state.pending_writes {
            println!(
                "  task {} [{}] idx {} {} = {}",
                w["task_id"].as_str().unwrap_or(""),
                w["task_path"].as_str().unwrap_or(""),
                w["idx"],
                w["channel"].as_str().unwrap_or(""),
                compact(&w["value"])
            );
        }
    }
    if !state.extra.is_empty() {
        println!("\nother keys: {}", JsonValue::Object(state.extra.clone()));
    }
    Ok(())
}

/// `waymark diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    out: OutputArgs,
    /// The older state: `THREAD` (its latest checkpoint) or `THREAD@CHECKPOINT`.
    a: String,
    /// The newer state, same form.
    b: String,
    /// The namespace of both (default: the root graph).
    #[arg(long, default_value = "")]
    ns: String,
}

fn split_ref(s: &str) -> (&str, Option<&str>) {
    match s.rsplit_once('@') {
        Some((t, c)) if !c.is_empty() => (t, Some(c)),
        _ => (s, None),
    }
}

fn messages_of(t: &CheckpointTuple) -> Option<Vec<ChannelMessage>> {
    let v = t
        .checkpoint
        .channel_values
        .iter()
        .find(|(k, _)| k.as_str() == "messages")?
        .1;
    LangGraphMessageCodec.decode_messages(v).ok()
}

/// The differences between two checkpoints as JSON.
pub fn diff_json(a: &CheckpointTuple, b: &CheckpointTuple) -> JsonValue {
    let (va, vb) = (&a.checkpoint.channel_values, &b.checkpoint.channel_values);
    let version = |t: &CheckpointTuple, k| {
        t.checkpoint
            .channel_versions
            .get(k)
            .map(crate::checkpointer::wire::version_json)
    };
    let added: Vec<&str> = vb
        .keys()
        .filter(|k| !va.contains_key(*k))
        .map(|k| k.as_str())
        .collect();
    let removed: Vec<&str> = va
        .keys()
        .filter(|k| !vb.contains_key(*k))
        .map(|k| k.as_str())
        .collect();
    let mut changed = Vec::new();
    let mut unchanged = Vec::new();
    for (k, x) in va {
        let Some(y) = vb.get(k) else { continue };
        if x == y {
            unchanged.push(k.as_str());
            continue;
        }
        let mut entry = json!({
            "channel": k.as_str(),
            "from_version": version(a, k), "to_version": version(b, k),
            "from_bytes": x.bytes().len(), "to_bytes": y.bytes().len(),
            "from": render::typed_to_json(x).ok(), "to": render::typed_to_json(y).ok(),
        });
        if k.as_str() == "messages"
            && let (Some(ma), Some(mb)) = (messages_of(a), messages_of(b))
        {
            entry["messages"] = serde_json::to_value(MessageDiffDto::from(diff_messages(&ma, &mb)))
                .unwrap_or(JsonValue::Null);
        }
        changed.push(entry);
    }
    let mut meta_changes = serde_json::Map::new();
    for (k, v) in b.metadata.0.iter() {
        if a.metadata.0.get(k) != Some(v) {
            meta_changes.insert(k.clone(), json!({"from": a.metadata.0.get(k), "to": v}));
        }
    }
    json!({
        "from": {"thread_id": a.thread_id.as_str(), "checkpoint_id": a.checkpoint.id.as_str()},
        "to": {"thread_id": b.thread_id.as_str(), "checkpoint_id": b.checkpoint.id.as_str()},
        "added": added, "removed": removed, "changed": changed, "unchanged": unchanged,
        "metadata": meta_changes,
    })
}

/// Runs `waymark diff`.
pub async fn diff(a: DiffArgs) -> CliResult {
    let backend = a.db.open_read_only().await?;
    let (ta, ca) = split_ref(&a.a);
    let (tb, cb) = split_ref(&a.b);
    let x = load(&backend.stores, ta, &a.ns, ca).await?;
    let y = load(&backend.stores, tb, &a.ns, cb).await?;
    let d = diff_json(&x, &y);
    if a.out.json {
        return print_json(&d);
    }
    println!("--- {}@{}", x.thread_id, x.checkpoint.id);
    println!("+++ {}@{}", y.thread_id, y.checkpoint.id);
    for c in d["added"].as_array().into_iter().flatten() {
        println!("+ {}", c.as_str().unwrap_or(""));
    }
    for c in d["removed"].as_array().into_iter().flatten() {
        println!("- {}", c.as_str().unwrap_or(""));
    }
    for c in d["changed"].as_array().into_iter().flatten() {
        println!(
            "~ {} (version {} -> {}, {} -> {} bytes)",
            c["channel"].as_str().unwrap_or(""),
            compact(&c["from_version"]),
            compact(&c["to_version"]),
            c["from_bytes"],
            c["to_bytes"]
        );
        if let Some(m) = c.get("messages").filter(|m| !m.is_null()) {
            for added in m["added"].as_array().into_iter().flatten() {
                println!("    + {}", render::message_line(added));
            }
            for removed in m["removed"].as_array().into_iter().flatten() {
                println!("    - {}", render::message_line(removed));
            }
            for ch in m["changed"].as_array().into_iter().flatten() {
                println!("    ~ {}", render::message_line(&ch["after"]));
            }
        } else if c["channel"] != "messages" {
            println!("    {} -> {}", compact(&c["from"]), compact(&c["to"]));
        }
    }
    for (k, v) in d["metadata"].as_object().into_iter().flatten() {
        println!(
            "  metadata {k}: {} -> {}",
            compact(&v["from"]),
            compact(&v["to"])
        );
    }
    if d["added"].as_array().is_some_and(Vec::is_empty)
        && d["removed"].as_array().is_some_and(Vec::is_empty)
        && d["changed"].as_array().is_some_and(Vec::is_empty)
    {
        println!("(channel values are identical)");
    }
    Ok(())
}

/// `waymark messages`.
#[derive(Debug, Args)]
pub struct MessagesArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    out: OutputArgs,
    /// The thread.
    thread: String,
    /// Page of raw message rows: the newest N (or N before/after a seq).
    #[arg(long)]
    limit: Option<u32>,
    /// Rows before this seq (with --limit).
    #[arg(long)]
    before: Option<i64>,
    /// Rows after this seq (with --limit).
    #[arg(long)]
    after: Option<i64>,
}

/// Runs `waymark messages`: the summarization-safe history (event store first, the latest
/// checkpoint otherwise), or a page of raw message rows with `--limit`.
pub async fn messages(a: MessagesArgs) -> CliResult {
    let backend = a.db.open_read_only().await?;
    let services = Services::new(&backend);
    let thread = ThreadId::parse(a.thread.clone())?;
    let scope = UserScope::Unscoped;
    if a.limit.is_some() || a.before.is_some() || a.after.is_some() {
        let page = SeqPage::from_cursors(a.before, a.after, a.limit.unwrap_or(50))?;
        let rows = backend
            .stores
            .run_events
            .list_messages(&scope, &thread, page)
            .await?;
        let rows: Vec<EventDto> = rows.into_iter().map(EventDto::from).collect();
        if a.out.json {
            return print_json(&rows);
        }
        for r in &rows {
            println!(
                "{:>6}  [{}]  {}",
                r.seq,
                r.run_id,
                render::message_line(&r.content)
            );
        }
        return Ok(());
    }
    let history = services
        .thread_history
        .history(&scope, &thread)
        .await
        .map_err(|e| CliError::new(e.to_string()))?;
    let history = HistoryDto::from(history);
    if a.out.json {
        return print_json(&history);
    }
    println!(
        "{} messages of thread {thread} (from {})",
        history.messages.len(),
        history.source.as_str()
    );
    for m in &history.messages {
        let m = JsonValue::Object(m.clone());
        let run = m.get("run_id").and_then(JsonValue::as_str).unwrap_or("");
        let run = if run.is_empty() {
            String::new()
        } else {
            format!("[{run}] ")
        };
        println!("  {run}{}", render::message_line(&m));
    }
    Ok(())
}
