//! Chat-stream persistence (spec §5, seed 000): the frames a chat streams out are buffered in
//! memory per thread and appended to the thread's durable record when a turn finishes.
//!
//! * One buffer per thread, with a typed cursor: the first frame of a fresh buffer is index
//!   0. Appends and persists of one thread are serialized by the thread's mutex; a second
//!   lock makes persists of one thread run one at a time so no frame is written twice.
//! * A persist snapshots the buffer, appends the snapshot in one atomic store call, and on
//!   success removes exactly the snapshotted frames (frames recorded meanwhile stay, and
//!   are renumbered from 0). On failure everything stays for the next trigger.
//! * Frames after the last `stop`: [`ChatStreamService::end_stream`], the idle TTL
//!   ([`ChatStreamService::expire_idle`]) and the caps (10,000 frames / 8 MiB force a
//!   persist; if that fails the frame is refused with [`ApplicationError::BufferFull`]).
//! * One budget bounds the bytes buffered across all threads (default 256 MiB): a frame
//!   that does not fit forces a persist of its own thread's buffer; if that frees nothing
//!   (the thread had nothing buffered) or fails, the frame is refused with
//!   [`ApplicationError::BufferBudgetExhausted`] and nothing is buffered or written for it.
//! * Disabled persistence buffers nothing and answers [`ApplicationError::Disabled`].
//!
//! Buffers live in this process; a thread's stream must be served by one process at a time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;
use waymark_domain::chat_stream::{
    ChatStreamRecord, ChatStreamRepository, ChatStreamSummary, validate_frames,
};
use waymark_domain::clock::Clock;
use waymark_domain::paging::Limit;
use waymark_domain::{DomainError, ThreadId, UserScope};

use crate::error::{AppResult, ApplicationError};

/// What becomes of a buffer that has been idle past the TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdlePolicy {
    /// Persist it like `end_stream` (the default).
    Persist,
    /// Drop it (counted in the sweep report).
    Drop,
}

/// Chat-stream settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatStreamConfig {
    /// When false nothing is buffered or written.
    pub enabled: bool,
    /// A buffer untouched this long is handled by `expire_idle` (default 10 min).
    pub buffer_idle_ttl: Duration,
    /// What `expire_idle` does with an idle buffer.
    pub idle_policy: IdlePolicy,
    /// Frame cap per buffer (default 10,000).
    pub max_frames: usize,
    /// Byte cap per buffer (default 8 MiB).
    pub max_bytes: usize,
    /// Byte cap of all buffers together (default 256 MiB); at least `max_bytes`.
    pub max_total_bytes: usize,
    /// Records last appended more than this many days ago are purged; 0 disables (default 30).
    pub retention_days: u32,
    /// Records deleted per purge statement.
    pub purge_batch: u32,
}

impl Default for ChatStreamConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            buffer_idle_ttl: Duration::from_secs(600),
            idle_policy: IdlePolicy::Persist,
            max_frames: 10_000,
            max_bytes: 8 * 1024 * 1024,
            max_total_bytes: 256 * 1024 * 1024,
            retention_days: 30,
            purge_batch: 500,
        }
    }
}

/// The finish reasons that persist the buffer (spec §5.2).
pub fn finish_reason_persists(reason: &str) -> bool {
    matches!(reason, "stop" | "interrupt")
}

/// What `record` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// The frame was buffered at this index.
    Buffered {
        /// The frame's chunk index.
        index: u64,
    },
    /// The frame was buffered and the buffer persisted.
    Persisted {
        /// The frame's chunk index before the persist.
        index: u64,
        /// Frames appended to the record.
        frames: usize,
        /// Frames the record holds now.
        record_frames: usize,
    },
}

/// What a persist did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersistOutcome {
    /// Nothing was buffered ("no messages").
    NothingToPersist,
    /// Frames were appended.
    Persisted {
        /// Frames appended.
        frames: usize,
        /// Frames the record holds now.
        record_frames: usize,
    },
}

/// What an idle sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdleSweep {
    /// Threads whose idle buffer was persisted.
    pub persisted_threads: usize,
    /// Frames persisted.
    pub persisted_frames: usize,
    /// Threads whose idle buffer was dropped.
    pub dropped_threads: usize,
    /// Frames dropped.
    pub dropped_frames: usize,
    /// Threads whose persist failed (their buffer is kept).
    pub failed_threads: usize,
}

#[derive(Debug)]
struct Buffer {
    scope: UserScope,
    frames: Vec<String>,
    /// The index the next frame gets (the spec's cursor).
    next_index: u64,
    bytes: usize,
    last_activity: DateTime<Utc>,
}

#[derive(Debug)]
struct Slot {
    buffer: Mutex<Buffer>,
    /// Serializes persists of the thread.
    persisting: Mutex<()>,
}

/// Per-thread chat-stream buffers in front of the durable record.
pub struct ChatStreamService {
    repo: Arc<dyn ChatStreamRepository>,
    clock: Arc<dyn Clock>,
    config: ChatStreamConfig,
    slots: StdMutex<HashMap<ThreadId, Arc<Slot>>>,
    /// Bytes buffered across all threads, bounded by `config.max_total_bytes`.
    buffered_total: AtomicUsize,
}

impl std::fmt::Debug for ChatStreamService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStreamService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ChatStreamConfig {
    /// Refuses settings the service cannot run with (zero caps, a budget smaller than one
    /// buffer, a purge batch out of range).
    pub fn validate(&self) -> AppResult<()> {
        if self.max_frames == 0 || self.max_bytes == 0 {
            return Err(ApplicationError::invalid(
                "max_frames",
                "buffer caps must be at least 1",
            ));
        }
        if self.max_total_bytes < self.max_bytes {
            return Err(ApplicationError::invalid(
                "max_total_bytes",
                format!(
                    "is {}; the budget of all buffers must hold at least one full buffer ({} bytes)",
                    self.max_total_bytes, self.max_bytes
                ),
            ));
        }
        Limit::new(self.purge_batch)?;
        Ok(())
    }
}

impl ChatStreamService {
    /// A service over the record port.
    pub fn new(
        repo: Arc<dyn ChatStreamRepository>,
        clock: Arc<dyn Clock>,
        config: ChatStreamConfig,
    ) -> AppResult<Self> {
        config.validate()?;
        Ok(Self {
            repo,
            clock,
            config,
            slots: StdMutex::new(HashMap::new()),
            buffered_total: AtomicUsize::new(0),
        })
    }

    /// Bytes buffered across all threads.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_total.load(Ordering::Acquire)
    }

    /// Takes `bytes` from the budget of all buffers; false when they do not fit.
    fn reserve(&self, bytes: usize) -> bool {
        self.buffered_total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes)
                    .filter(|&total| total <= self.config.max_total_bytes)
            })
            .is_ok()
    }

    /// Gives `bytes` back to the budget (frames persisted or discarded).
    fn release(&self, bytes: usize) {
        let _ = self
            .buffered_total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(bytes))
            });
    }

    /// Empties a buffer that leaves the map, giving its bytes back to the budget; a persist
    /// still holding the slot then finds nothing to remove.
    fn discard(&self, buf: &mut Buffer) -> usize {
        let frames = buf.frames.len();
        buf.frames.clear();
        self.release(buf.bytes);
        buf.bytes = 0;
        frames
    }

    /// The settings.
    pub fn config(&self) -> &ChatStreamConfig {
        &self.config
    }

    fn disabled() -> ApplicationError {
        ApplicationError::Disabled {
            feature: "chat-stream persistence",
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<ThreadId, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn slot(&self, scope: &UserScope, thread_id: &ThreadId) -> Arc<Slot> {
        let now = self.clock.now();
        self.slots()
            .entry(thread_id.clone())
            .or_insert_with(|| {
                Arc::new(Slot {
                    buffer: Mutex::new(Buffer {
                        scope: scope.clone(),
                        frames: Vec::new(),
                        next_index: 0,
                        bytes: 0,
                        last_activity: now,
                    }),
                    persisting: Mutex::new(()),
                })
            })
            .clone()
    }

    /// Buffers a frame and persists the buffer when `finish_reason` is `stop` or
    /// `interrupt` (every other value only buffers). A persist failure is returned and the
    /// frames stay buffered for the next trigger.
    pub async fn record(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        frame: String,
        finish_reason: &str,
    ) -> AppResult<RecordOutcome> {
        if !self.config.enabled {
            return Err(Self::disabled());
        }
        validate_frames(std::slice::from_ref(&frame))?;
        if frame.len() > self.config.max_bytes {
            return Err(ApplicationError::invalid(
                "frame",
                format!(
                    "is {} bytes; a buffer holds at most {}",
                    frame.len(),
                    self.config.max_bytes
                ),
            ));
        }
        let mut slot = self.slot(scope, thread_id);
        // A frame that does not fit the budget of all buffers forces one persist of this
        // thread's buffer; after that it is refused.
        let mut persisted_for_budget = false;
        let index = loop {
            {
                let mut buf = slot.buffer.lock().await;
                if !self.is_current(thread_id, &slot) {
                    // The slot was dropped or expired while we waited; use a fresh one.
                    drop(buf);
                    slot = self.slot(scope, thread_id);
                    continue;
                }
                if &buf.scope != scope {
                    return Err(ApplicationError::AccessDenied {
                        thread_id: thread_id.clone(),
                    });
                }
                let fits = buf.frames.len() < self.config.max_frames
                    && buf.bytes + frame.len() <= self.config.max_bytes;
                if fits && !self.reserve(frame.len()) {
                    if persisted_for_budget || buf.frames.is_empty() {
                        return Err(ApplicationError::BufferBudgetExhausted {
                            thread_id: thread_id.clone(),
                            buffered: self.buffered_bytes(),
                            budget: self.config.max_total_bytes,
                        });
                    }
                    persisted_for_budget = true;
                } else if fits {
                    let index = buf.next_index;
                    buf.next_index += 1;
                    buf.bytes += frame.len();
                    buf.frames.push(frame.clone());
                    buf.last_activity = self.clock.now();
                    break index;
                }
            }
            // At the cap: force a persist; if it fails, refuse the frame (back-pressure).
            if let Err(e) = self.persist_slot(thread_id, &slot).await {
                let buf = slot.buffer.lock().await;
                let source = match e {
                    ApplicationError::Domain(d) => d,
                    other => DomainError::storage("chat_streams.append", other),
                };
                return Err(ApplicationError::BufferFull {
                    thread_id: thread_id.clone(),
                    frames: buf.frames.len(),
                    bytes: buf.bytes,
                    source,
                });
            }
        };
        if !finish_reason_persists(finish_reason) {
            return Ok(RecordOutcome::Buffered { index });
        }
        match self.persist_slot(thread_id, &slot).await? {
            PersistOutcome::Persisted {
                frames,
                record_frames,
            } => Ok(RecordOutcome::Persisted {
                index,
                frames,
                record_frames,
            }),
            // Another persist took our frame with it already.
            PersistOutcome::NothingToPersist => Ok(RecordOutcome::Buffered { index }),
        }
    }

    /// Persists whatever the thread has buffered (frames after the last `stop`).
    pub async fn end_stream(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
    ) -> AppResult<PersistOutcome> {
        if !self.config.enabled {
            return Err(Self::disabled());
        }
        let Some(slot) = self.slots().get(thread_id).cloned() else {
            return Ok(PersistOutcome::NothingToPersist);
        };
        if &slot.buffer.lock().await.scope != scope {
            return Err(ApplicationError::AccessDenied {
                thread_id: thread_id.clone(),
            });
        }
        self.persist_slot(thread_id, &slot).await
    }

    /// The persist algorithm of spec §5.3.
    async fn persist_slot(&self, thread_id: &ThreadId, slot: &Slot) -> AppResult<PersistOutcome> {
        let _one_at_a_time = slot.persisting.lock().await;
        let (scope, snapshot) = {
            let buf = slot.buffer.lock().await;
            (buf.scope.clone(), buf.frames.clone())
        };
        if snapshot.is_empty() {
            return Ok(PersistOutcome::NothingToPersist);
        }
        let n = snapshot.len();
        let record = self.repo.append(&scope, thread_id, snapshot).await?;
        let mut buf = slot.buffer.lock().await;
        let n = n.min(buf.frames.len());
        let removed: usize = buf.frames.drain(..n).map(|f| f.len()).sum();
        buf.bytes -= removed;
        self.release(removed);
        // Frames recorded during the append stay and are renumbered from 0.
        buf.next_index = buf.frames.len() as u64;
        Ok(PersistOutcome::Persisted {
            frames: n,
            record_frames: record.frames.len(),
        })
    }

    /// The frames currently buffered for the thread (for inspection and tests).
    pub async fn buffered(&self, thread_id: &ThreadId) -> Vec<String> {
        let slot = self.slots().get(thread_id).cloned();
        match slot {
            Some(slot) => slot.buffer.lock().await.frames.clone(),
            None => Vec::new(),
        }
    }

    /// The index the thread's next frame will get.
    pub async fn next_index(&self, thread_id: &ThreadId) -> u64 {
        let slot = self.slots().get(thread_id).cloned();
        match slot {
            Some(slot) => slot.buffer.lock().await.next_index,
            None => 0,
        }
    }

    /// Handles buffers idle for longer than the TTL by the idle policy; failed persists keep
    /// their buffer and are counted.
    pub async fn expire_idle(&self) -> IdleSweep {
        let mut sweep = IdleSweep::default();
        let ttl = chrono::Duration::from_std(self.config.buffer_idle_ttl)
            .unwrap_or(chrono::Duration::MAX);
        let cutoff = self.clock.now() - ttl;
        let slots: Vec<(ThreadId, Arc<Slot>)> = self
            .slots()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (thread_id, slot) in slots {
            let (idle, count) = {
                let buf = slot.buffer.lock().await;
                (buf.last_activity < cutoff, buf.frames.len())
            };
            if !idle {
                continue;
            }
            if count == 0 {
                let buf = slot.buffer.lock().await;
                if buf.frames.is_empty() && buf.last_activity < cutoff {
                    self.remove_slot_if_same(&thread_id, &slot);
                }
                continue;
            }
            match self.config.idle_policy {
                IdlePolicy::Persist => match self.persist_slot(&thread_id, &slot).await {
                    Ok(PersistOutcome::Persisted { frames, .. }) => {
                        sweep.persisted_threads += 1;
                        sweep.persisted_frames += frames;
                    }
                    Ok(PersistOutcome::NothingToPersist) => {}
                    Err(e) => {
                        tracing::warn!(%thread_id, error = %e, "idle chat-stream buffer could not be persisted; kept");
                        sweep.failed_threads += 1;
                    }
                },
                IdlePolicy::Drop => {
                    let dropped = self.drop_buffer(&thread_id).await;
                    sweep.dropped_threads += 1;
                    sweep.dropped_frames += dropped;
                    tracing::info!(%thread_id, frames = dropped, "idle chat-stream buffer dropped");
                }
            }
        }
        sweep
    }

    /// True while `slot` is the thread's buffer in the map. Checked under the slot's buffer
    /// lock; removals also happen under it, so a frame never lands in a detached slot.
    fn is_current(&self, thread_id: &ThreadId, slot: &Arc<Slot>) -> bool {
        self.slots()
            .get(thread_id)
            .is_some_and(|s| Arc::ptr_eq(s, slot))
    }

    /// Removes `slot` from the map if it is still the thread's (true then); call with its
    /// buffer locked, and [`Self::discard`] the buffer when it was removed.
    fn remove_slot_if_same(&self, thread_id: &ThreadId, slot: &Arc<Slot>) -> bool {
        let mut slots = self.slots();
        if slots.get(thread_id).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(thread_id);
            true
        } else {
            false
        }
    }

    /// Drops the thread's buffer without persisting it; returns the frames dropped.
    pub async fn drop_buffer(&self, thread_id: &ThreadId) -> usize {
        let Some(slot) = self.slots().get(thread_id).cloned() else {
            return 0;
        };
        let mut buf = slot.buffer.lock().await;
        if !self.remove_slot_if_same(thread_id, &slot) {
            return 0;
        }
        self.discard(&mut buf)
    }

    /// The persisted frames of the thread, or `None`.
    pub async fn get_history(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
    ) -> AppResult<Option<ChatStreamRecord>> {
        if !self.config.enabled {
            return Err(Self::disabled());
        }
        Ok(self.repo.get(scope, thread_id).await?)
    }

    /// The most recently appended threads (1 to 100, default 10 at the HTTP layer).
    pub async fn list_recent(
        &self,
        scope: &UserScope,
        limit: u32,
    ) -> AppResult<Vec<ChatStreamSummary>> {
        if !self.config.enabled {
            return Err(Self::disabled());
        }
        if !(1..=100).contains(&limit) {
            return Err(ApplicationError::invalid(
                "limit",
                format!("is {limit}; list 1 to 100 threads"),
            ));
        }
        Ok(self.repo.list_recent(scope, Limit::new(limit)?).await?)
    }

    /// Deletes the record and the in-memory buffer; false when there was no record.
    pub async fn delete(&self, scope: &UserScope, thread_id: &ThreadId) -> AppResult<bool> {
        if !self.config.enabled {
            return Err(Self::disabled());
        }
        let existed = self.repo.delete(scope, thread_id).await?;
        let slot = self.slots().get(thread_id).cloned();
        if let Some(slot) = slot {
            let mut buf = slot.buffer.lock().await;
            if &buf.scope == scope && self.remove_slot_if_same(thread_id, &slot) {
                self.discard(&mut buf);
            }
        }
        Ok(existed)
    }

    /// Deletes records last appended more than `retention_days` ago, in bounded batches;
    /// returns how many. With `retention_days = 0` nothing is purged.
    pub async fn purge_expired(&self) -> AppResult<u64> {
        if !self.config.enabled || self.config.retention_days == 0 {
            return Ok(0);
        }
        let cutoff =
            self.clock.now() - chrono::Duration::days(i64::from(self.config.retention_days));
        let batch = Limit::new(self.config.purge_batch)?;
        let mut total = 0;
        loop {
            let n = self.repo.purge_older_than(cutoff, batch).await?;
            total += n;
            if n < u64::from(batch.get()) {
                break;
            }
        }
        Ok(total)
    }

    /// Runs `expire_idle` and `purge_expired` every `every` until the service is dropped.
    pub fn spawn_housekeeping(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut timer = tokio::time::interval(every.max(Duration::from_millis(1)));
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            timer.tick().await;
            loop {
                timer.tick().await;
                let Some(service) = weak.upgrade() else { break };
                let sweep = service.expire_idle().await;
                if sweep != IdleSweep::default() {
                    tracing::info!(?sweep, "chat-stream idle sweep");
                }
                if let Err(e) = service.purge_expired().await {
                    tracing::warn!(error = %e, "chat-stream retention purge failed");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
