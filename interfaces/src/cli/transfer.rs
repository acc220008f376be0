//! `waymark export`, `import` and `copy`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use waymark_domain::{Stores, ThreadId};

use super::{CliError, CliResult, DbArgs, FileArg};
use crate::backend::{self, redact};
use crate::transfer::{Exporter, FORMAT, FORMAT_VERSION, Importer, Record, verify_thread};

/// `waymark export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Where to write the JSON lines (`-` for standard output).
    #[arg(long, short, default_value = "-")]
    output: FileArg,
    /// Only these threads (repeatable); sessions they reference come along, items do not.
    #[arg(long = "thread")]
    threads: Vec<String>,
}

/// `waymark import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The JSON lines to read (`-` for standard input).
    #[arg(long, short, default_value = "-")]
    input: FileArg,
}

/// `waymark copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The source database URL (any scheme, e.g. langgraph+sqlite://checkpoints.db).
    #[arg(long)]
    from: String,
    /// The target database URL.
    #[arg(long)]
    to: String,
    /// Only these threads (repeatable).
    #[arg(long = "thread")]
    threads: Vec<String>,
    /// The file recording finished threads, so an interrupted copy resumes where it stopped
    /// (default: `.waymark-copy-<hash>.state` in the current directory).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Ignore the state file and copy every thread again.
    #[arg(long)]
    restart: bool,
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} threads {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_owned());
    bar
}

fn parse_threads(ids: &[String]) -> CliResult<Vec<ThreadId>> {
    ids.iter()
        .map(|t| ThreadId::parse(t.clone()).map_err(CliError::from))
        .collect()
}

async fn selected_threads(stores: &Stores, only: &[String]) -> CliResult<Vec<ThreadId>> {
    if only.is_empty() {
        Ok(Exporter::new(stores).thread_ids().await?)
    } else {
        parse_threads(only)
    }
}

fn write_line(out: &mut dyn Write, r: &Record) -> CliResult {
    let line = serde_json::to_string(r).map_err(|e| CliError::new(e.to_string()))?;
    writeln!(out, "{line}").map_err(|e| CliError::new(format!("cannot write the export: {e}")))
}

/// Sessions referenced by thread records.
fn referenced_sessions(records: &[Record]) -> BTreeSet<String> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Thread(t) => t.session_id.clone(),
            _ => None,
        })
        .collect()
}

/// Runs `waymark export`.
pub async fn export(a: ExportArgs) -> CliResult {
    let backend = a.db.open_read_only().await?;
    let stores = &backend.stores;
    let exporter = Exporter::new(stores);
    let mut out: Box<dyn Write> = match &a.output {
        FileArg::Std => Box::new(BufWriter::new(std::io::stdout().lock())),
        FileArg::Path(p) => {
            Box::new(BufWriter::new(std::fs::File::create(p).map_err(|e| {
                CliError::new(format!("cannot create {}: {e}", p.display()))
            })?))
        }
    };
    write_line(
        &mut out,
        &Record::Header {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            source: backend.url.to_string(),
            exported_at: crate::api::dto::ts(chrono::Utc::now()),
        },
    )?;
    let threads = selected_threads(stores, &a.threads).await?;
    let mut per_thread = Vec::with_capacity(threads.len());
    let bar = progress(threads.len() as u64, "export");
    for t in &threads {
        per_thread.push(exporter.thread_records(t).await?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let globals = exporter.global_records().await?;
    let wanted_sessions: Option<BTreeSet<String>> = if a.threads.is_empty() {
        None
    } else {
        Some(
            per_thread
                .iter()
                .flat_map(|r| referenced_sessions(r))
                .collect(),
        )
    };
    for r in &globals {
        let keep = match (r, &wanted_sessions) {
            (_, None) => true,
            (Record::Session(s), Some(w)) => w.contains(&s.session_id),
            (_, Some(_)) => false,
        };
        if keep {
            *counts.entry(kind(r)).or_default() += 1;
            write_line(&mut out, r)?;
        }
    }
    for records in &per_thread {
        for r in records {
            *counts.entry(kind(r)).or_default() += 1;
            write_line(&mut out, r)?;
        }
    }
    out.flush()
        .map_err(|e| CliError::new(format!("cannot write the export: {e}")))?;
    eprintln!("exported {} threads: {}", threads.len(), summary(&counts));
    Ok(())
}

fn kind(r: &Record) -> &'static str {
    match r {
        Record::Header { .. } => "header",
        Record::Session(_) => "sessions",
        Record::Thread(_) => "threads",
        Record::Checkpoint(_) => "checkpoints",
        Record::Writes(_) => "write groups",
        Record::Event(_) => "events",
        Record::Feedback(_) => "feedback",
        Record::ChatStream(_) => "chat streams",
        Record::Branch(_) => "branches",
        Record::Snapshot(_) => "snapshots",
        Record::Item(_) => "items",
    }
}

fn summary(counts: &BTreeMap<&'static str, u64>) -> String {
    if counts.is_empty() {
        return "nothing".into();
    }
    counts
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `waymark import`.
pub async fn import(a: ImportArgs) -> CliResult {
    let backend = a.db.open().await?;
    let importer = Importer::new(&backend.stores);
    let reader: Box<dyn BufRead> = match &a.input {
        FileArg::Std => Box::new(BufReader::new(std::io::stdin())),
        FileArg::Path(p) => {
            Box::new(BufReader::new(std::fs::File::open(p).map_err(|e| {
                CliError::new(format!("cannot open {}: {e}", p.display()))
            })?))
        }
    };
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut saw_header = false;
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| CliError::new(format!("line {}: {e}", n + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(&line)
            .map_err(|e| CliError::usage(format!("line {}: not an export record: {e}", n + 1)))?;
        if !saw_header && !matches!(record, Record::Header { .. }) {
            return Err(CliError::usage(format!(
                "line {}: an export starts with a header line ({FORMAT} v{FORMAT_VERSION})",
                n + 1
            )));
        }
        saw_header = true;
        importer
            .apply(&record)
            .await
            .map_err(|e| CliError::new(format!("line {}: {e}", n + 1)))?;
        if !matches!(record, Record::Header { .. }) {
            *counts.entry(kind(&record)).or_default() += 1;
        }
    }
    if !saw_header {
        return Err(CliError::usage("the input is empty: no export header"));
    }
    eprintln!("imported into {}: {}", backend.url, summary(&counts));
    Ok(())
}

fn default_state_path(from: &str, to: &str) -> PathBuf {
    // FNV-1a: a stable name per (from, to) pair without a hashing dependency.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in from.bytes().chain([0u8]).chain(to.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    PathBuf::from(format!(".waymark-copy-{h:016x}.state"))
}

/// Runs `waymark copy`.
pub async fn copy(a: CopyArgs) -> CliResult {
    let source = backend::open_read_only(&a.from).await?;
    let target = backend::open(&a.to).await?;
    if source.url == target.url {
        return Err(CliError::usage("--from and --to name the same database"));
    }
    let state_path = a
        .state
        .clone()
        .unwrap_or_else(|| default_state_path(&a.from, &a.to));
    let mut done: HashSet<String> = HashSet::new();
    if !a.restart
        && let Ok(text) = std::fs::read_to_string(&state_path)
    {
        done.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_owned));
    }
    let exporter = Exporter::new(&source.stores);
    let importer = Importer::new(&target.stores);
    let threads = selected_threads(&source.stores, &a.threads).await?;

    // Sessions first (threads name them), then items; both are idempotent.
    let globals = exporter.global_records().await?;
    for r in &globals {
        importer.apply(r).await?;
    }

    let mut state = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&state_path)
        .map_err(|e| CliError::new(format!("cannot open {}: {e}", state_path.display())))?;
    let bar = progress(threads.len() as u64, "copy");
    let (mut copied, mut skipped, mut checkpoints) = (0u64, 0u64, 0usize);
    for t in &threads {
        bar.set_message(t.to_string());
        if done.contains(t.as_str()) {
            skipped += 1;
            bar.inc(1);
            continue;
        }
        for r in exporter.thread_records(t).await? {
            importer
                .apply(&r)
                .await
                .map_err(|e| CliError::new(format!("thread {t}: {e}")))?;
        }
        checkpoints += verify_thread(&source.stores, &target.stores, t)
            .await
            .map_err(|e| CliError::new(format!("verification failed: {e}")))?;
        writeln!(state, "{t}")
            .and_then(|()| state.flush())
            .map_err(|e| CliError::new(format!("cannot record progress: {e}")))?;
        copied += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    eprintln!(
        "copied {copied} threads ({checkpoints} checkpoints, verified) from {} to {}; {skipped} already copied earlier (state: {})",
        redact(&a.from),
        redact(&a.to),
        state_path.display()
    );
    Ok(())
}
