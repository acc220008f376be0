//! `waymark export`, `import` and `copy`.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use waymark_application::transfer::{
    CopyCheck, Exporter, Importer, ThreadSelection, TransferRecord, verify_thread,
};
use waymark_domain::ThreadId;
use waymark_domain::clock::{Clock, SystemClock};

use super::{CliError, CliResult, DbArgs, FileArg};
use crate::backend::{self, Backend, redact};
use crate::transfer::{FORMAT, FORMAT_VERSION, Record};

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

fn selection(ids: &[String]) -> CliResult<ThreadSelection> {
    if ids.is_empty() {
        return Ok(ThreadSelection::All);
    }
    let ids = ids
        .iter()
        .map(|t| ThreadId::parse(t.clone()).map_err(CliError::from))
        .collect::<CliResult<Vec<_>>>()?;
    Ok(ThreadSelection::Only(ids))
}

fn write_line(out: &mut dyn Write, r: &Record) -> CliResult {
    let line = serde_json::to_string(r).map_err(|e| CliError::new(e.to_string()))?;
    writeln!(out, "{line}").map_err(|e| CliError::new(format!("cannot write the export: {e}")))
}

/// Runs `waymark export`.
pub async fn export(a: ExportArgs) -> CliResult {
    let backend = a.db.open_read_only().await?;
    let exporter = Exporter::new(backend.stores.clone());
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
        &Record::header(backend.url.to_string(), SystemClock.now()),
    )?;
    let selection = selection(&a.threads)?;
    let threads = exporter.selected_threads(&selection).await?;
    let mut thread_records = Vec::new();
    let bar = progress(threads.len() as u64, "export");
    for t in &threads {
        thread_records.extend(exporter.thread_records(t).await?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let globals = exporter
        .global_records_for(&selection, &thread_records)
        .await?;
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    for r in globals.into_iter().chain(thread_records) {
        *counts.entry(kind(&r)).or_default() += 1;
        write_line(&mut out, &Record::from(r))?;
    }
    out.flush()
        .map_err(|e| CliError::new(format!("cannot write the export: {e}")))?;
    eprintln!("exported {} threads: {}", threads.len(), summary(&counts));
    Ok(())
}

fn kind(r: &TransferRecord) -> &'static str {
    match r {
        TransferRecord::Session(_) => "sessions",
        TransferRecord::Thread(_) => "threads",
        TransferRecord::Checkpoint(_) => "checkpoints",
        TransferRecord::Writes(_) => "write groups",
        TransferRecord::Event(_) => "events",
        TransferRecord::Feedback(_) => "feedback",
        TransferRecord::ChatStream(_) => "chat streams",
        TransferRecord::Branch(_) => "branches",
        TransferRecord::Snapshot(_) => "snapshots",
        TransferRecord::Item(_) => "items",
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
    let importer = Importer::new(backend.stores.clone(), Arc::new(SystemClock));
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
        let at_line = |e: &dyn std::fmt::Display| CliError::new(format!("line {}: {e}", n + 1));
        let line = line.map_err(|e| at_line(&e))?;
        if line.trim().is_empty() {
            continue;
        }
        let record = Record::from_line(&line)
            .map_err(|e| CliError::usage(format!("line {}: not an export record: {e}", n + 1)))?;
        if !saw_header && !matches!(record, Record::Header { .. }) {
            return Err(CliError::usage(format!(
                "line {}: an export starts with a header line ({FORMAT} v{FORMAT_VERSION})",
                n + 1
            )));
        }
        saw_header = true;
        if let Record::Header { .. } = record {
            record.check_header().map_err(|e| at_line(&e))?;
            continue;
        }
        let record = record.into_transfer().map_err(|e| at_line(&e))?;
        importer.apply(&record).await.map_err(|e| at_line(&e))?;
        *counts.entry(kind(&record)).or_default() += 1;
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
    let exporter = Exporter::new(source.stores.clone());
    let importer = Importer::new(target.stores.clone(), Arc::new(SystemClock));
    let threads = exporter.selected_threads(&selection(&a.threads)?).await?;

    // Sessions first (threads name them), then items; both are idempotent.
    for r in &exporter.global_records().await? {
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
        checkpoints += verified(&source, &target, t).await?;
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

/// The number of checkpoints of `thread` the target holds exactly as the source does, or the
/// verification failure.
async fn verified(source: &Backend, target: &Backend, thread: &ThreadId) -> CliResult<usize> {
    let failed = |detail: String| CliError::new(format!("verification failed: {detail}"));
    let check = verify_thread(
        source.stores.checkpoints.as_ref(),
        target.stores.checkpoints.as_ref(),
        thread,
    )
    .await
    .map_err(|e| failed(e.to_string()))?;
    match check {
        CopyCheck::Identical { checkpoints } => Ok(checkpoints),
        CopyCheck::CountDiffers { source, target } => Err(failed(format!(
            "thread {thread}: {source} checkpoints at the source, {target} at the target"
        ))),
        CopyCheck::Differs {
            namespace,
            checkpoint_id,
        } => Err(failed(format!(
            "thread {thread}: checkpoint {checkpoint_id} (namespace {:?}) differs after the copy",
            namespace.as_str()
        ))),
    }
}
