//! The run journal (spec §2): buffers the events of one run and writes them to the run-event
//! store in batches, without ever running two writes of one run at once and without losing a
//! batch whose write failed.
//!
//! ## Ownership
//!
//! A [`RunJournal`] is a plain value owned by one task (`&mut self` everywhere), so capture
//! needs no locks. Callbacks of parallel tools do not touch it: [`RunJournal::spawn`] moves
//! the journal into its own task and hands out cloneable [`JournalHandle`]s whose
//! [`JournalHandle::record`] only sends the event over a channel (it works from any thread,
//! with or without a runtime). Every event is stamped with its `created_at` when captured.
//!
//! ## Flushes
//!
//! * **Threshold** (default 20, soft): when the buffer reaches it, the whole buffer is handed
//!   to a background write (one `put_batch`) while capture continues. If a write is already
//!   in flight nothing starts; events keep accumulating and leave with the next flush.
//! * **Run end / run error**: after `run.end` / `run.error` is buffered the buffer is written
//!   immediately, in chunks of the threshold.
//! * **Timer** (Waymark rule, default 5 s; only in the spawned task): pending events are
//!   flushed even when the threshold is never reached.
//! * **Final drain** on every terminal path ([`RunJournal::finish`]), on the owning task's
//!   exit and on drop: waits for the in-flight write, then writes the rest in chunks of the
//!   threshold, retrying a failed chunk a bounded number of times with backoff and reporting
//!   what could not be written.
//!
//! A failed write puts its batch back at the **front** of the buffer, ahead of events
//! captured since, so order is kept; the next trigger retries.
//!
//! ## What a crash can lose
//!
//! Only a hard kill or crash loses events; every orderly path drains. With a healthy store a
//! crash loses at most the events not yet handed to the store: fewer than `flush_threshold`
//! buffered events (at most `flush_threshold - 1`, and none older than `flush_interval` in
//! the spawned journal) **plus** the batch of an in-flight write that had not committed. If
//! the store was failing, every event captured since the last successful write is at risk
//! (failed batches are kept in memory, never dropped while the process lives).
//! In-memory token totals reach the caller only through [`JournalReport`].

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use waymark_domain::clock::Clock;
use waymark_domain::run_event::{
    DEFAULT_MAX_TRACE_CONTENT, NewRunEvent, RunEvent, RunEventRepository,
};
use waymark_domain::{
    DomainError, EventCategory, EventType, JsonObject, JsonValue, RunId, ThreadId, UserScope,
};

use crate::error::{AppResult, ApplicationError};

/// The longest convenience text kept for `first_human_message` / `last_ai_message`.
pub const MAX_SUMMARY_CHARS: usize = 2000;

/// Journal tuning.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalConfig {
    /// Buffer length that triggers a background flush (soft: the flush takes everything
    /// buffered, and nothing starts while a flush is in flight). Also the chunk size of
    /// explicit flushes and the final drain. At least 1.
    pub flush_threshold: usize,
    /// How often the spawned journal flushes pending events regardless of the threshold.
    pub flush_interval: Duration,
    /// Extra attempts for a chunk of the final drain (and for the delivery receipt).
    pub drain_retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_backoff: Duration,
    /// Byte limit of `trace` content (spec §1.6).
    pub max_trace_content: usize,
    /// Whether token usage is accumulated at all.
    pub track_tokens: bool,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            flush_threshold: 20,
            flush_interval: Duration::from_secs(5),
            drain_retries: 3,
            retry_backoff: Duration::from_millis(100),
            max_trace_content: DEFAULT_MAX_TRACE_CONTENT,
            track_tokens: true,
        }
    }
}

/// One event as a callback captures it; the journal adds thread, run and (when absent) the
/// capture time.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEvent {
    /// The event type (`llm.ai.response`, ...).
    pub event_type: EventType,
    /// The category (`message`, `trace`, ...).
    pub category: EventCategory,
    /// Content.
    pub content: JsonValue,
    /// Metadata.
    pub metadata: JsonObject,
    /// Capture time; stamped on capture when `None`.
    pub created_at: Option<DateTime<Utc>>,
}

impl JournalEvent {
    /// An event of the given type and category with empty content and metadata.
    pub fn new(event_type: &str, category: &str) -> AppResult<Self> {
        Ok(Self {
            event_type: EventType::parse(event_type)?,
            category: EventCategory::parse(category)?,
            content: JsonValue::String(String::new()),
            metadata: JsonObject::new(),
            created_at: None,
        })
    }

    /// Sets the content.
    pub fn with_content(mut self, content: JsonValue) -> Self {
        self.content = content;
        self
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: JsonObject) -> Self {
        self.metadata = metadata;
        self
    }
}

/// Which part of the agent made an LLM call, for token buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallerBucket {
    /// The lead agent (the default).
    LeadAgent,
    /// A subagent (`subagent:*` callers).
    Subagent,
    /// Middleware (`middleware:*` callers).
    Middleware,
}

impl CallerBucket {
    /// The bucket of a `caller` tag.
    pub fn of(caller: &str) -> Self {
        if caller.starts_with("subagent") {
            Self::Subagent
        } else if caller.starts_with("middleware:") {
            Self::Middleware
        } else {
            Self::LeadAgent
        }
    }
}

/// Token usage reported for one LLM call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmUsage {
    /// The call's id; a call reported twice counts once.
    pub call_id: String,
    /// The model, when known.
    pub model: Option<String>,
    /// The caller tag (`lead_agent`, `subagent:x`, `middleware:y`).
    pub caller: String,
    /// Input (prompt) tokens.
    pub input_tokens: u64,
    /// Output (completion) tokens.
    pub output_tokens: u64,
    /// The provider's total; 0 means input + output.
    pub total_tokens: u64,
}

/// Token sums.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenTotals {
    /// Calls counted.
    pub calls: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
}

impl TokenTotals {
    fn add(&mut self, input: u64, output: u64, total: u64) {
        self.calls += 1;
        self.input_tokens = self.input_tokens.saturating_add(input);
        self.output_tokens = self.output_tokens.saturating_add(output);
        self.total_tokens = self.total_tokens.saturating_add(total);
    }
}

/// The run's token accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenAccount {
    /// Everything.
    pub total: TokenTotals,
    /// Per caller bucket.
    pub by_bucket: BTreeMap<CallerBucket, TokenTotals>,
    /// Per model (calls without a model are under `""`).
    pub by_model: BTreeMap<String, TokenTotals>,
    seen_calls: HashSet<String>,
}

impl TokenAccount {
    /// Adds a call unless its id was seen; returns whether it counted.
    fn add(&mut self, usage: &LlmUsage) -> bool {
        if !self.seen_calls.insert(usage.call_id.clone()) {
            return false;
        }
        let total = if usage.total_tokens == 0 {
            usage.input_tokens.saturating_add(usage.output_tokens)
        } else {
            usage.total_tokens
        };
        let (i, o) = (usage.input_tokens, usage.output_tokens);
        self.total.add(i, o, total);
        self.by_bucket
            .entry(CallerBucket::of(&usage.caller))
            .or_default()
            .add(i, o, total);
        self.by_model
            .entry(usage.model.clone().unwrap_or_default())
            .or_default()
            .add(i, o, total);
        true
    }
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// Success: `run.end` (category `outputs`, metadata `{status: success}`) with the output.
    Success {
        /// The graph output.
        output: JsonValue,
    },
    /// Failure: `run.error` (category `error`) with the text and `metadata.error_type`.
    Failed {
        /// The error text.
        error: String,
        /// The error's type name.
        error_type: String,
    },
    /// Cancelled: no terminal event, but the buffer is drained all the same.
    Cancelled,
}

/// What a final drain did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DrainReport {
    /// Events written by this drain.
    pub written: usize,
    /// Events that could not be written and were given up.
    pub lost: usize,
    /// The last write error when something was lost.
    pub error: Option<DomainError>,
}

/// What the journal did over the run, returned by [`RunJournal::finish`].
#[derive(Debug, Clone, PartialEq)]
pub struct JournalReport {
    /// Events written over the journal's life.
    pub events_written: u64,
    /// Events given up (write failures after retries, or a dead write task).
    pub events_lost: u64,
    /// The drain error that lost events, if any.
    pub drain_error: Option<DomainError>,
    /// The delivery receipt and whether this call created it (false: it already existed).
    pub delivery: Option<(RunEvent, bool)>,
    /// Why the receipt could not be written.
    pub delivery_error: Option<DomainError>,
    /// Token accounting.
    pub tokens: TokenAccount,
    /// `message` events captured.
    pub message_count: u64,
    /// The first lead-agent human message text (capped at [`MAX_SUMMARY_CHARS`]).
    pub first_human_message: Option<String>,
    /// The last AI message text (capped), per spec §2.6.
    pub last_ai_message: Option<String>,
}

impl JournalReport {
    /// The report as a result for the run's supervisor: lost events are an error.
    pub fn into_result(self) -> AppResult<Self> {
        if self.events_lost > 0 {
            return Err(ApplicationError::EventsLost {
                lost: self.events_lost as usize,
                source: self
                    .drain_error
                    .clone()
                    .unwrap_or_else(|| DomainError::storage("run_events.put_batch", "unknown")),
            });
        }
        Ok(self)
    }
}

/// The outcome of a background write: written count, or the batch back with the error.
type FlushResult = Result<usize, (Vec<NewRunEvent>, DomainError)>;

struct InFlight {
    rx: oneshot::Receiver<FlushResult>,
    len: usize,
}

/// Writes batches for one journal; shared by the journal and its drop hand-off.
#[derive(Clone)]
struct Writer {
    store: Arc<dyn RunEventRepository>,
    scope: UserScope,
    config: JournalConfig,
}

impl Writer {
    /// Writes one chunk, retrying with exponential backoff.
    async fn write_with_retries(&self, chunk: &[NewRunEvent]) -> Result<(), DomainError> {
        let mut delay = self.config.retry_backoff;
        let mut attempt = 0;
        loop {
            match self.store.put_batch(&self.scope, chunk.to_vec()).await {
                Ok(_) => return Ok(()),
                Err(e) if attempt < self.config.drain_retries && !e.is_invalid_input() => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "run-event chunk write failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes `buffer` in chunks of the threshold with retries; on a chunk that still fails
    /// everything left is given up (order matters more than a partial tail) and reported.
    async fn drain(&self, buffer: &mut VecDeque<NewRunEvent>) -> DrainReport {
        let mut report = DrainReport::default();
        let size = self.config.flush_threshold.max(1);
        while !buffer.is_empty() {
            let n = size.min(buffer.len());
            let chunk: Vec<NewRunEvent> = buffer.range(..n).cloned().collect();
            match self.write_with_retries(&chunk).await {
                Ok(()) => {
                    buffer.drain(..n);
                    report.written += n;
                }
                Err(e) => {
                    report.lost = buffer.len();
                    buffer.clear();
                    tracing::error!(
                        lost = report.lost,
                        error = %e,
                        "run journal gave up writing events after retries"
                    );
                    report.error = Some(e);
                    break;
                }
            }
        }
        report
    }
}

/// Puts a failed batch back at the front, ahead of newer events.
fn requeue_front(buffer: &mut VecDeque<NewRunEvent>, batch: Vec<NewRunEvent>) {
    for e in batch.into_iter().rev() {
        buffer.push_front(e);
    }
}

/// The buffered event writer of one run. See the module docs.
pub struct RunJournal {
    writer: Writer,
    clock: Arc<dyn Clock>,
    thread_id: ThreadId,
    run_id: RunId,
    buffer: VecDeque<NewRunEvent>,
    inflight: Option<InFlight>,
    tokens: TokenAccount,
    events_written: u64,
    events_lost: u64,
    last_drain_error: Option<DomainError>,
    message_count: u64,
    terminal_recorded: bool,
    abandoned: bool,
    human_input_recorded: bool,
    memory_context_recorded: bool,
    first_human_message: Option<String>,
    last_ai_message: Option<(String, CallerBucket)>,
}

impl std::fmt::Debug for RunJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunJournal")
            .field("thread_id", &self.thread_id)
            .field("run_id", &self.run_id)
            .field("pending", &self.buffer.len())
            .field("in_flight", &self.inflight.as_ref().map(|i| i.len))
            .finish_non_exhaustive()
    }
}

impl RunJournal {
    /// A journal writing the run's events under `scope` (a background run acts as the
    /// thread's owner).
    pub fn new(
        store: Arc<dyn RunEventRepository>,
        scope: UserScope,
        thread_id: ThreadId,
        run_id: RunId,
        clock: Arc<dyn Clock>,
        config: JournalConfig,
    ) -> Self {
        Self {
            writer: Writer {
                store,
                scope,
                config,
            },
            clock,
            thread_id,
            run_id,
            buffer: VecDeque::new(),
            inflight: None,
            tokens: TokenAccount::default(),
            events_written: 0,
            events_lost: 0,
            last_drain_error: None,
            message_count: 0,
            terminal_recorded: false,
            abandoned: false,
            human_input_recorded: false,
            memory_context_recorded: false,
            first_human_message: None,
            last_ai_message: None,
        }
    }

    /// Events buffered and not yet handed to a write.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }

    /// True while a background write is in flight.
    pub fn flush_in_flight(&self) -> bool {
        self.inflight.is_some()
    }

    /// Events written so far.
    pub fn events_written(&self) -> u64 {
        self.events_written
    }

    /// The token accounting so far.
    pub fn tokens(&self) -> &TokenAccount {
        &self.tokens
    }

    /// Captures an event. When the buffer reaches the threshold a background flush starts
    /// (if a runtime is available and no flush is in flight).
    pub fn record(&mut self, event: JournalEvent) {
        if self.abandoned {
            tracing::debug!(run_id = %self.run_id, "event after the run lease was lost; ignored");
            return;
        }
        let mut e = NewRunEvent::new(
            self.thread_id.clone(),
            self.run_id.clone(),
            event.event_type,
            event.category,
        )
        .with_content(event.content)
        .with_metadata(event.metadata);
        e.created_at = Some(event.created_at.unwrap_or_else(|| self.clock.now()));
        e.truncate_trace(self.writer.config.max_trace_content);
        if e.category.is_message() {
            self.message_count += 1;
            self.note_message(&e);
        }
        self.buffer.push_back(e);
        if self.buffer.len() >= self.writer.config.flush_threshold {
            self.try_start_flush();
        }
    }

    /// Records the run's human input: only the first lead-agent human message is kept, and
    /// legacy `name = "summary"` messages never are. Returns whether it was recorded.
    pub fn record_human_input(&mut self, message: JsonObject, caller: &str) -> AppResult<bool> {
        if self.human_input_recorded
            || CallerBucket::of(caller) != CallerBucket::LeadAgent
            || message.get("name").and_then(JsonValue::as_str) == Some("summary")
        {
            return Ok(false);
        }
        self.human_input_recorded = true;
        let mut metadata = JsonObject::new();
        metadata.insert("caller".into(), json!(caller));
        self.record(
            JournalEvent::new("llm.human.input", EventCategory::MESSAGE)?
                .with_content(JsonValue::Object(message))
                .with_metadata(metadata),
        );
        Ok(true)
    }

    /// Records the memory context injection, at most once per run. Returns whether it was
    /// recorded.
    pub fn record_memory_context(&mut self, content_sha256: &str) -> AppResult<bool> {
        if self.memory_context_recorded {
            return Ok(false);
        }
        self.memory_context_recorded = true;
        self.record(
            JournalEvent::new("context:memory", "context")?
                .with_content(json!({ "content_sha256": content_sha256 })),
        );
        Ok(true)
    }

    /// Accounts an LLM call's tokens, once per call id; nothing when tracking is off.
    /// Returns whether it counted.
    pub fn record_usage(&mut self, usage: &LlmUsage) -> bool {
        self.writer.config.track_tokens && self.tokens.add(usage)
    }

    fn note_message(&mut self, e: &NewRunEvent) {
        let et = e.event_type.as_str();
        let caller = e
            .metadata
            .get("caller")
            .and_then(JsonValue::as_str)
            .unwrap_or("lead_agent");
        if et == "llm.human.input" && self.first_human_message.is_none() {
            self.first_human_message = message_text(&e.content).map(cap);
        }
        if et == waymark_domain::run_event::AI_RESPONSE_EVENT {
            let bucket = CallerBucket::of(caller);
            if bucket == CallerBucket::Middleware {
                return;
            }
            let Some(text) = message_text(&e.content).filter(|t| !t.is_empty()) else {
                return; // a tool-call-only message does not replace the last AI text
            };
            let lead_already = matches!(self.last_ai_message, Some((_, CallerBucket::LeadAgent)));
            if bucket == CallerBucket::Subagent && lead_already {
                return;
            }
            self.last_ai_message = Some((cap(text), bucket));
        }
    }

    /// Collects a finished background write, if there is one, without waiting.
    fn reap(&mut self) -> bool {
        let Some(inflight) = self.inflight.as_mut() else {
            return false;
        };
        match inflight.rx.try_recv() {
            Ok(result) => {
                self.inflight = None;
                self.absorb(Ok(result))
            }
            Err(oneshot::error::TryRecvError::Empty) => false,
            Err(oneshot::error::TryRecvError::Closed) => {
                let len = inflight.len;
                self.inflight = None;
                self.absorb(Err(len))
            }
        }
    }

    /// Waits for the in-flight write, if any, and collects it. Returns whether it succeeded.
    pub async fn settle(&mut self) -> bool {
        let Some(inflight) = self.inflight.take() else {
            return true;
        };
        let len = inflight.len;
        let result = inflight.rx.await.map_err(|_| len);
        self.absorb(result)
    }

    /// Books a write outcome; `Err(len)` means the write task died with its batch.
    fn absorb(&mut self, result: Result<FlushResult, usize>) -> bool {
        match result {
            Ok(Ok(n)) => {
                self.events_written += n as u64;
                true
            }
            Ok(Err((batch, e))) => {
                tracing::warn!(
                    run_id = %self.run_id,
                    events = batch.len(),
                    error = %e,
                    "run-event flush failed; the batch is kept for the next flush"
                );
                requeue_front(&mut self.buffer, batch);
                false
            }
            Err(len) => {
                tracing::error!(run_id = %self.run_id, lost = len, "run-event write task vanished with its batch");
                self.events_lost += len as u64;
                false
            }
        }
    }

    /// Starts a background flush of the whole buffer when none is in flight, the buffer is
    /// not empty and a tokio runtime is available. Returns whether one started.
    pub fn try_start_flush(&mut self) -> bool {
        self.reap();
        if self.inflight.is_some() || self.buffer.is_empty() || self.abandoned {
            return false;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let batch: Vec<NewRunEvent> = self.buffer.drain(..).collect();
        let len = batch.len();
        let (tx, rx) = oneshot::channel();
        let writer = self.writer.clone();
        runtime.spawn(async move {
            let result = match writer.store.put_batch(&writer.scope, batch.clone()).await {
                Ok(rows) => Ok(rows.len()),
                Err(e) => Err((batch, e)),
            };
            let _ = tx.send(result);
        });
        self.inflight = Some(InFlight { rx, len });
        true
    }

    /// Writes everything buffered now, in chunks of the threshold, after the in-flight write
    /// finishes. A failed chunk goes back to the front (with what follows it) and the error
    /// is returned; no retries here (the final drain retries).
    pub async fn flush(&mut self) -> AppResult<usize> {
        self.settle().await;
        let size = self.writer.config.flush_threshold.max(1);
        let mut written = 0;
        while !self.buffer.is_empty() {
            let n = size.min(self.buffer.len());
            let chunk: Vec<NewRunEvent> = self.buffer.range(..n).cloned().collect();
            match self.writer.store.put_batch(&self.writer.scope, chunk).await {
                Ok(_) => {
                    self.buffer.drain(..n);
                    written += n;
                    self.events_written += n as u64;
                }
                Err(e) => {
                    tracing::warn!(run_id = %self.run_id, error = %e, "explicit run-event flush failed; events kept");
                    return Err(e.into());
                }
            }
        }
        Ok(written)
    }

    /// Buffers `run.end` with the output and flushes at once.
    pub async fn run_end(&mut self, output: JsonValue) -> AppResult<usize> {
        self.push_terminal(RunOutcome::Success { output })?;
        self.flush().await
    }

    /// Buffers `run.error` and flushes at once.
    pub async fn run_error(&mut self, error: &str, error_type: &str) -> AppResult<usize> {
        self.push_terminal(RunOutcome::Failed {
            error: error.to_owned(),
            error_type: error_type.to_owned(),
        })?;
        self.flush().await
    }

    fn push_terminal(&mut self, outcome: RunOutcome) -> AppResult<()> {
        if self.terminal_recorded {
            return Ok(());
        }
        let event = match outcome {
            RunOutcome::Success { output } => {
                let mut m = JsonObject::new();
                m.insert("status".into(), json!("success"));
                JournalEvent::new("run.end", "outputs")?
                    .with_content(output)
                    .with_metadata(m)
            }
            RunOutcome::Failed { error, error_type } => {
                let mut m = JsonObject::new();
                m.insert("error_type".into(), json!(error_type));
                JournalEvent::new("run.error", "error")?
                    .with_content(json!(error))
                    .with_metadata(m)
            }
            RunOutcome::Cancelled => return Ok(()),
        };
        self.terminal_recorded = true;
        self.record(event);
        Ok(())
    }

    /// The final drain: waits for the in-flight write, then writes the rest in chunks with
    /// bounded retries; what still fails is given up and reported.
    pub async fn drain(&mut self) -> DrainReport {
        self.settle().await;
        let report = self.writer.drain(&mut self.buffer).await;
        self.events_written += report.written as u64;
        self.events_lost += report.lost as u64;
        if report.error.is_some() {
            self.last_drain_error = report.error.clone();
        }
        report
    }

    /// The terminal sequence's journal part (spec §2.4 steps 1-2): records the terminal event
    /// (once), drains, then writes the `run.delivery` receipt with `put_if_absent` (bounded
    /// retries), so running it twice writes one receipt. Persisting the run's status and
    /// totals (steps 3-4) is the host's, from the report.
    pub async fn finish(&mut self, outcome: RunOutcome, receipt: JsonValue) -> JournalReport {
        if !self.abandoned
            && let Err(e) = self.push_terminal(outcome)
        {
            tracing::error!(error = %e, "could not build the terminal event");
        }
        if !self.abandoned {
            self.drain().await;
        }
        let (delivery, delivery_error) = if self.abandoned {
            (None, None)
        } else {
            match self.write_receipt(receipt).await {
                Ok(d) => (Some(d), None),
                Err(e) => (None, Some(e)),
            }
        };
        JournalReport {
            events_written: self.events_written,
            events_lost: self.events_lost,
            drain_error: self.last_drain_error.clone(),
            delivery,
            delivery_error,
            tokens: self.tokens.clone(),
            message_count: self.message_count,
            first_human_message: self.first_human_message.clone(),
            last_ai_message: self.last_ai_message.as_ref().map(|(t, _)| t.clone()),
        }
    }

    async fn write_receipt(&self, receipt: JsonValue) -> Result<(RunEvent, bool), DomainError> {
        let event = NewRunEvent {
            thread_id: self.thread_id.clone(),
            run_id: self.run_id.clone(),
            event_type: EventType::parse("run.delivery")?,
            category: EventCategory::parse("outputs")?,
            content: receipt,
            metadata: JsonObject::new(),
            created_at: Some(self.clock.now()),
        };
        let mut delay = self.writer.config.retry_backoff;
        let mut attempt = 0;
        loop {
            match self
                .writer
                .store
                .put_if_absent(&self.writer.scope, event.clone())
                .await
            {
                Ok(r) => return Ok(r),
                Err(e) if attempt < self.writer.config.drain_retries && !e.is_invalid_input() => {
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The run lease was lost: nothing more may be written. Discards the buffer and returns
    /// how many events were dropped (an in-flight write cannot be recalled).
    pub fn abandon(&mut self) -> usize {
        self.abandoned = true;
        let n = self.buffer.len();
        self.buffer.clear();
        self.inflight = None;
        n
    }

    /// Moves the journal into its own task and returns the handle callbacks use, plus the
    /// task's join handle (its result is the report when [`JournalHandle::finish`] ran).
    /// The task adds the timed flush; when every handle is dropped without `finish`, it
    /// drains before exiting. Must be called inside a tokio runtime. The handle's channel is
    /// unbounded on purpose: capture never blocks a callback and never drops an event; the
    /// backlog is bounded by how far the store falls behind.
    pub fn spawn(
        self,
    ) -> (
        JournalHandle,
        tokio::task::JoinHandle<Option<JournalReport>>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = JournalHandle {
            tx,
            clock: self.clock.clone(),
        };
        (handle, tokio::spawn(run_owner(self, rx)))
    }
}

impl Drop for RunJournal {
    /// Orderly drops never lose events: the remainder (and any in-flight write's outcome) is
    /// handed to a background task that drains it when a runtime exists; without one the
    /// loss is logged with its count.
    fn drop(&mut self) {
        if self.abandoned || (self.buffer.is_empty() && self.inflight.is_none()) {
            return;
        }
        let mut buffer = std::mem::take(&mut self.buffer);
        let inflight = self.inflight.take();
        let writer = self.writer.clone();
        let run_id = self.run_id.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Some(f) = inflight
                        && let Ok(Err((batch, _))) = f.rx.await
                    {
                        requeue_front(&mut buffer, batch);
                    }
                    let report = writer.drain(&mut buffer).await;
                    if report.lost > 0 {
                        tracing::error!(%run_id, lost = report.lost, "dropped run journal lost events");
                    }
                });
            }
            Err(_) => {
                tracing::error!(
                    %run_id,
                    lost = buffer.len() + inflight.map(|f| f.len).unwrap_or(0),
                    "run journal dropped outside a runtime; its buffered events are lost"
                );
            }
        }
    }
}

/// What the owning task receives.
enum Command {
    Event(JournalEvent),
    Usage(LlmUsage),
    Flush(oneshot::Sender<AppResult<usize>>),
    Finish(RunOutcome, JsonValue, oneshot::Sender<JournalReport>),
    Abandon(oneshot::Sender<usize>),
}

/// A cloneable way to feed a spawned journal; safe to use from parallel callbacks.
#[derive(Clone)]
pub struct JournalHandle {
    tx: mpsc::UnboundedSender<Command>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for JournalHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalHandle")
            .field("closed", &self.tx.is_closed())
            .finish()
    }
}

impl JournalHandle {
    /// Captures an event now (stamping its time) and queues it for the journal. Works
    /// without a runtime; fails only when the journal task is gone.
    pub fn record(&self, mut event: JournalEvent) -> AppResult<()> {
        event.created_at.get_or_insert_with(|| self.clock.now());
        self.tx
            .send(Command::Event(event))
            .map_err(|_| ApplicationError::JournalClosed)
    }

    /// Queues token usage of an LLM call.
    pub fn record_usage(&self, usage: LlmUsage) -> AppResult<()> {
        self.tx
            .send(Command::Usage(usage))
            .map_err(|_| ApplicationError::JournalClosed)
    }

    /// Writes everything captured so far and waits for it.
    pub async fn flush(&self) -> AppResult<usize> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Flush(tx))
            .map_err(|_| ApplicationError::JournalClosed)?;
        rx.await.map_err(|_| ApplicationError::JournalClosed)?
    }

    /// Runs the terminal sequence (see [`RunJournal::finish`]) and ends the journal task.
    pub async fn finish(self, outcome: RunOutcome, receipt: JsonValue) -> AppResult<JournalReport> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Finish(outcome, receipt, tx))
            .map_err(|_| ApplicationError::JournalClosed)?;
        rx.await.map_err(|_| ApplicationError::JournalClosed)
    }

    /// The run lease was lost: discard and stop writing. Returns the events discarded.
    pub async fn abandon(self) -> AppResult<usize> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Abandon(tx))
            .map_err(|_| ApplicationError::JournalClosed)?;
        rx.await.map_err(|_| ApplicationError::JournalClosed)
    }
}

/// Waits for the in-flight write; pends forever when there is none (the branch is disabled
/// then anyway).
async fn in_flight_outcome(inflight: &mut Option<InFlight>) -> Result<FlushResult, usize> {
    match inflight {
        Some(f) => {
            let len = f.len;
            (&mut f.rx).await.map_err(|_| len)
        }
        None => std::future::pending().await,
    }
}

/// The owning task of a spawned journal.
async fn run_owner(
    mut journal: RunJournal,
    mut rx: mpsc::UnboundedReceiver<Command>,
) -> Option<JournalReport> {
    let period = journal
        .writer
        .config
        .flush_interval
        .max(Duration::from_millis(1));
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            outcome = in_flight_outcome(&mut journal.inflight), if journal.inflight.is_some() => {
                journal.inflight = None;
                let ok = journal.absorb(outcome);
                // A trigger that fired while the write was in flight started nothing; honour
                // it now. After a failure wait for the next trigger instead of hammering.
                if ok && journal.buffer.len() >= journal.writer.config.flush_threshold {
                    journal.try_start_flush();
                }
            }
            command = rx.recv() => match command {
                Some(Command::Event(e)) => journal.record(e),
                Some(Command::Usage(u)) => {
                    journal.record_usage(&u);
                }
                Some(Command::Flush(ack)) => {
                    let _ = ack.send(journal.flush().await);
                }
                Some(Command::Finish(outcome, receipt, ack)) => {
                    let report = journal.finish(outcome, receipt).await;
                    let _ = ack.send(report.clone());
                    return Some(report);
                }
                Some(Command::Abandon(ack)) => {
                    let _ = ack.send(journal.abandon());
                    return None;
                }
                None => {
                    // Every handle is gone without a terminal sequence: drain anyway.
                    let report = journal.drain().await;
                    if report.lost > 0 {
                        tracing::error!(run_id = %journal.run_id, lost = report.lost, "journal closed without finish and lost events");
                    }
                    return None;
                }
            },
            _ = timer.tick() => {
                if !journal.buffer.is_empty() {
                    journal.try_start_flush();
                }
            }
        }
    }
}

/// The text of a message content: a string, or the `text` parts of a content list.
fn message_text(content: &JsonValue) -> Option<String> {
    let c = content.get("content").unwrap_or(content);
    match c {
        JsonValue::String(s) => Some(s.clone()),
        JsonValue::Array(parts) => {
            let text: Vec<&str> = parts
                .iter()
                .filter_map(|p| {
                    p.as_str()
                        .or_else(|| p.get("text").and_then(JsonValue::as_str))
                })
                .collect();
            Some(text.concat())
        }
        _ => None,
    }
}

fn cap(text: String) -> String {
    if text.chars().count() <= MAX_SUMMARY_CHARS {
        text
    } else {
        text.chars().take(MAX_SUMMARY_CHARS).collect()
    }
}

#[cfg(test)]
mod tests;
