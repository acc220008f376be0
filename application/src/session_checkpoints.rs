//! The session layer of checkpoint management (seed 003): a session *decides* — its
//! checkpoint policy, statistics across its threads, cross-thread sync points — and the
//! thread layer *executes*. This manager never calls the checkpoint port; every checkpoint
//! read or write goes through [`ThreadCheckpointManager`], so the thread layer's rules
//! (snapshot pins, the head is kept, access checks) hold for session-wide operations too.
//!
//! Failures are isolated per thread: a store error while cleaning one thread is reported for
//! that thread and the others are still processed.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;
use waymark_domain::checkpoint::{CheckpointRef, CheckpointSummary};
use waymark_domain::paging::OffsetPage;
use waymark_domain::session::{CheckpointPolicy, Session, SessionRepository, SessionUpdate};
use waymark_domain::thread::{Thread, ThreadFilter, ThreadQuery, ThreadRepository};
use waymark_domain::{CheckpointId, CheckpointNamespace, SessionId, Stores, ThreadId, UserScope};

use crate::error::{AppResult, ApplicationError};
use crate::thread_checkpoints::{NewCheckpoint, RetentionOutcome, ThreadCheckpointManager};

/// How many threads are read per page when walking a session.
const THREAD_PAGE: u32 = 500;

/// The most threads one sync point may span.
pub const MAX_SYNC_THREADS: usize = 256;

/// What applying the policy did across a session.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyReport {
    /// The session.
    pub session_id: SessionId,
    /// The policy applied.
    pub policy: CheckpointPolicy,
    /// One entry per thread of the session, in the order they were processed.
    pub threads: Vec<RetentionOutcome>,
}

impl PolicyReport {
    /// Checkpoints removed across every thread.
    pub fn removed_total(&self) -> usize {
        self.threads
            .iter()
            .map(RetentionOutcome::removed_count)
            .sum()
    }

    /// Threads whose cleanup stopped with an error.
    pub fn failed_threads(&self) -> Vec<&ThreadId> {
        self.threads
            .iter()
            .filter(|t| t.error.is_some())
            .map(|t| &t.thread_id)
            .collect()
    }
}

/// Checkpoint figures of one thread.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadCheckpointStats {
    /// The thread.
    pub thread_id: ThreadId,
    /// The store's summary, or `None` when reading it failed.
    pub summary: Option<CheckpointSummary>,
    /// Why the summary is missing.
    pub error: Option<String>,
}

/// Checkpoint figures of a whole session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionCheckpointStats {
    /// The session.
    pub session_id: SessionId,
    /// Threads in the session.
    pub threads: u64,
    /// Checkpoints across the threads whose summary could be read.
    pub checkpoints: u64,
    /// Pending writes across them.
    pub writes: u64,
    /// Payload bytes, when every summarized thread's store could tell.
    pub stored_bytes: Option<u64>,
    /// The oldest checkpoint id across the threads (ids order by time).
    pub oldest: Option<CheckpointId>,
    /// The newest checkpoint id.
    pub newest: Option<CheckpointId>,
    /// When the oldest checkpoint was taken, if its id carries a time.
    pub oldest_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the newest was taken.
    pub newest_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Per-thread figures.
    pub per_thread: Vec<ThreadCheckpointStats>,
}

/// One thread's part of a sync point.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncEntry {
    /// The thread; it must belong to the session.
    pub thread_id: ThreadId,
    /// The state to checkpoint.
    pub checkpoint: NewCheckpoint,
}

/// A written sync point.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncPoint {
    /// The id stamped into every checkpoint's metadata as `sync_point`.
    pub id: String,
    /// The checkpoints written, in the order of the entries.
    pub checkpoints: Vec<CheckpointRef>,
}

/// Session-wide checkpoint policy, statistics and sync points.
#[derive(Clone)]
pub struct SessionCheckpointManager {
    sessions: Arc<dyn SessionRepository>,
    threads: Arc<dyn ThreadRepository>,
    thread_checkpoints: ThreadCheckpointManager,
}

impl std::fmt::Debug for SessionCheckpointManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCheckpointManager")
            .finish_non_exhaustive()
    }
}

impl SessionCheckpointManager {
    /// A manager acting through `thread_checkpoints`.
    pub fn new(
        sessions: Arc<dyn SessionRepository>,
        threads: Arc<dyn ThreadRepository>,
        thread_checkpoints: ThreadCheckpointManager,
    ) -> Self {
        Self {
            sessions,
            threads,
            thread_checkpoints,
        }
    }

    /// A manager over a deployment's stores.
    pub fn from_stores(stores: &Stores, thread_checkpoints: ThreadCheckpointManager) -> Self {
        Self::new(
            stores.sessions.clone(),
            stores.threads.clone(),
            thread_checkpoints,
        )
    }

    /// Sets the session's policy (validated by [`CheckpointPolicy::new`] at construction).
    pub async fn set_policy(
        &self,
        scope: &UserScope,
        session_id: &SessionId,
        policy: CheckpointPolicy,
    ) -> AppResult<Session> {
        Ok(self
            .sessions
            .update(
                scope,
                session_id,
                SessionUpdate {
                    checkpoint_policy: Some(policy),
                    ..SessionUpdate::default()
                },
            )
            .await?)
    }

    /// The session's policy.
    pub async fn policy(
        &self,
        scope: &UserScope,
        session_id: &SessionId,
    ) -> AppResult<CheckpointPolicy> {
        Ok(self.session(scope, session_id).await?.checkpoint_policy)
    }

    /// Applies the session's policy to every thread of the session and reports, per thread,
    /// what was removed or why it could not be. Only a failure to read the session or its
    /// thread list fails the whole call.
    pub async fn apply_policy(
        &self,
        scope: &UserScope,
        session_id: &SessionId,
    ) -> AppResult<PolicyReport> {
        let session = self.session(scope, session_id).await?;
        let threads = self.session_threads(scope, session_id).await?;
        let mut report = PolicyReport {
            session_id: session_id.clone(),
            policy: session.checkpoint_policy.clone(),
            threads: Vec::with_capacity(threads.len()),
        };
        for thread in threads {
            let outcome = self
                .thread_checkpoints
                .apply_retention(scope, &thread.id, &session.checkpoint_policy)
                .await;
            if let Some(e) = &outcome.error {
                tracing::warn!(
                    session_id = %session_id,
                    thread_id = %thread.id,
                    error = %e,
                    removed = outcome.removed_count(),
                    "checkpoint policy could not be fully applied to a thread"
                );
            }
            report.threads.push(outcome);
        }
        Ok(report)
    }

    /// Checkpoint figures of every thread of the session; a thread whose summary cannot be
    /// read is listed with its error and left out of the totals.
    pub async fn statistics(
        &self,
        scope: &UserScope,
        session_id: &SessionId,
    ) -> AppResult<SessionCheckpointStats> {
        self.session(scope, session_id).await?;
        let threads = self.session_threads(scope, session_id).await?;
        let mut stats = SessionCheckpointStats {
            session_id: session_id.clone(),
            threads: threads.len() as u64,
            checkpoints: 0,
            writes: 0,
            stored_bytes: Some(0),
            oldest: None,
            newest: None,
            oldest_at: None,
            newest_at: None,
            per_thread: Vec::with_capacity(threads.len()),
        };
        for thread in threads {
            match self.thread_checkpoints.summary(scope, &thread.id).await {
                Ok(summary) => {
                    stats.checkpoints += summary.checkpoints;
                    stats.writes += summary.writes;
                    stats.stored_bytes = match (stats.stored_bytes, summary.stored_bytes) {
                        (Some(a), Some(b)) => Some(a + b),
                        _ => None,
                    };
                    if let Some(o) = &summary.oldest
                        && stats.oldest.as_ref().is_none_or(|cur| o < cur)
                    {
                        stats.oldest = Some(o.clone());
                    }
                    if let Some(n) = &summary.newest
                        && stats.newest.as_ref().is_none_or(|cur| n > cur)
                    {
                        stats.newest = Some(n.clone());
                    }
                    stats.per_thread.push(ThreadCheckpointStats {
                        thread_id: thread.id,
                        summary: Some(summary),
                        error: None,
                    });
                }
                Err(e) => stats.per_thread.push(ThreadCheckpointStats {
                    thread_id: thread.id,
                    summary: None,
                    error: Some(e.to_string()),
                }),
            }
        }
        stats.oldest_at = stats.oldest.as_ref().and_then(CheckpointId::uuid6_time);
        stats.newest_at = stats.newest.as_ref().and_then(CheckpointId::uuid6_time);
        Ok(stats)
    }

    /// Checkpoints several threads of the session at once, all or none (the store's
    /// `put_many`). Every thread must belong to the session and appear once per namespace;
    /// each checkpoint's metadata carries `sync_point: <id>` so the set can be found again.
    pub async fn sync_point(
        &self,
        scope: &UserScope,
        session_id: &SessionId,
        entries: Vec<SyncEntry>,
    ) -> AppResult<SyncPoint> {
        if entries.is_empty() {
            return Err(ApplicationError::invalid(
                "entries",
                "a sync point needs at least one thread",
            ));
        }
        if entries.len() > MAX_SYNC_THREADS {
            return Err(ApplicationError::invalid(
                "entries",
                format!(
                    "{} threads given; a sync point spans at most {MAX_SYNC_THREADS}",
                    entries.len()
                ),
            ));
        }
        let mut seen: HashSet<(ThreadId, CheckpointNamespace)> = HashSet::new();
        for e in &entries {
            if !seen.insert((e.thread_id.clone(), e.checkpoint.namespace.clone())) {
                return Err(ApplicationError::invalid(
                    "entries",
                    format!(
                        "thread {} appears twice for namespace {:?}",
                        e.thread_id,
                        e.checkpoint.namespace.as_str()
                    ),
                ));
            }
        }
        self.session(scope, session_id).await?;
        for e in &entries {
            let thread = self
                .threads
                .get(scope, &e.thread_id)
                .await?
                .ok_or_else(|| ApplicationError::not_found("thread", &e.thread_id))?;
            if thread.session_id.as_ref() != Some(session_id) {
                return Err(ApplicationError::invalid(
                    "thread_id",
                    format!(
                        "thread {} does not belong to session {session_id}",
                        e.thread_id
                    ),
                ));
            }
        }
        let sync_id = uuid::Uuid::new_v4().to_string();
        let mut puts = Vec::with_capacity(entries.len());
        for mut e in entries {
            e.checkpoint
                .metadata
                .insert("sync_point".into(), json!(sync_id));
            puts.push(
                self.thread_checkpoints
                    .prepare_checkpoint(scope, &e.thread_id, e.checkpoint)
                    .await?,
            );
        }
        let checkpoints = self.thread_checkpoints.commit_many(puts).await?;
        Ok(SyncPoint {
            id: sync_id,
            checkpoints,
        })
    }

    async fn session(&self, scope: &UserScope, session_id: &SessionId) -> AppResult<Session> {
        self.sessions
            .get(scope, session_id)
            .await?
            .ok_or_else(|| ApplicationError::not_found("session", session_id))
    }

    /// Every thread of the session visible to the scope, read page by page.
    async fn session_threads(
        &self,
        scope: &UserScope,
        session_id: &SessionId,
    ) -> AppResult<Vec<Thread>> {
        let mut out = Vec::new();
        let mut offset = 0u64;
        loop {
            let page = self
                .threads
                .search(
                    scope,
                    &ThreadQuery {
                        filter: ThreadFilter::default(),
                        status: None,
                        session_id: Some(session_id.clone()),
                        page: OffsetPage::new(THREAD_PAGE, offset)?,
                    },
                )
                .await?;
            let n = page.items.len();
            out.extend(page.items);
            if !page.has_more || n == 0 {
                break;
            }
            offset += n as u64;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
