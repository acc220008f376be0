//! The run lifecycle (spec `history-and-streams.md` §6.2, §6.8.2-4): admitting a run, starting
//! it under a worker's lease, heartbeats, finishing and cancelling, the lease-expiry sweep,
//! startup reconciliation, and the thread status the read endpoint reports.
//!
//! The stored thread status follows the runs: admitting or starting a run sets `running`;
//! finishing sets `idle` (success), `error`, `timeout` or `interrupted`. The run row is written
//! first and the thread status second; when the second write fails on admission, the run is
//! ended as `error` again so no run is left behind that the thread does not show.
//!
//! Cancel ends the run as `interrupted` with the error text [`CANCELLED`]; a worker still
//! holding its lease learns it on its next heartbeat (conflict: not running).
//!
//! Every operation checks thread access first (spec §6.6: reads allow a missing thread,
//! mutations need an existing, visible one) and then runs under the caller's scope.

use std::sync::Arc;

use waymark_domain::checkpoint::CheckpointRepository;
use waymark_domain::paging::OffsetPage;
use waymark_domain::run::{
    FinalStatus, LeaseTtl, NewRun, Run, RunErrorText, RunList, RunOutcome, RunPage, RunProgress,
    RunRepository, RunStatus, WorkerId, derive_thread_status,
};
use waymark_domain::thread::{
    ThreadFilter, ThreadQuery, ThreadRepository, ThreadStatus, ThreadUpdate,
};
use waymark_domain::{CheckpointNamespace, RunId, Stores, ThreadId, UserScope};

use crate::access::{Access, ensure};
use crate::error::{AppResult, ApplicationError};

/// The error text of a cancelled run.
pub const CANCELLED: &str = "cancelled";

/// Tunables of the run lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunConfig {
    /// The lease a start or heartbeat takes when the caller names none.
    pub lease: LeaseTtl,
    /// Starts a run may have before an expired lease ends it as `error` instead of
    /// returning it to `pending`.
    pub max_attempts: u32,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            lease: LeaseTtl::seconds(30).expect("30 s is a valid lease"),
            max_attempts: 3,
        }
    }
}

/// What startup reconciliation changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reconciliation {
    /// Runs whose lease had expired, as the sweep left them (`pending` or `error`).
    pub reclaimed_runs: Vec<Run>,
    /// Threads stored `running` with no live run, now `error`.
    pub errored_threads: Vec<ThreadId>,
}

/// Run use cases.
#[derive(Clone)]
pub struct RunService {
    runs: Arc<dyn RunRepository>,
    threads: Arc<dyn ThreadRepository>,
    checkpoints: Arc<dyn CheckpointRepository>,
    config: RunConfig,
}

impl std::fmt::Debug for RunService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RunService {
    /// A service over the given ports.
    pub fn new(
        runs: Arc<dyn RunRepository>,
        threads: Arc<dyn ThreadRepository>,
        checkpoints: Arc<dyn CheckpointRepository>,
        config: RunConfig,
    ) -> AppResult<Self> {
        if config.max_attempts == 0 {
            return Err(ApplicationError::invalid(
                "max_attempts",
                "must be at least 1",
            ));
        }
        Ok(Self {
            runs,
            threads,
            checkpoints,
            config,
        })
    }

    /// A service over a deployment's stores with the default configuration.
    pub fn from_stores(stores: &Stores) -> Self {
        Self {
            runs: stores.runs.clone(),
            threads: stores.threads.clone(),
            checkpoints: stores.checkpoints.clone(),
            config: RunConfig::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> RunConfig {
        self.config
    }

    async fn set_thread_status(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        status: ThreadStatus,
    ) -> AppResult<()> {
        self.threads
            .update(
                scope,
                thread_id,
                ThreadUpdate {
                    status: Some(status),
                    touch: true,
                    ..ThreadUpdate::default()
                },
            )
            .await?;
        Ok(())
    }

    /// Admits a `pending` run on the thread and marks the thread `running`. A thread with an
    /// active run is a conflict.
    pub async fn admit(&self, scope: &UserScope, run: NewRun) -> AppResult<Run> {
        run.validate()?;
        ensure(self.threads.as_ref(), scope, &run.thread_id, Access::Write).await?;
        let created = self.runs.create(scope, run).await?;
        if let Err(e) = self
            .set_thread_status(scope, &created.thread_id, ThreadStatus::Running)
            .await
        {
            let undo = RunOutcome {
                status: FinalStatus::Error,
                error: RunErrorText::parse(format!("admission failed: {e}")).ok(),
            };
            if let Err(undo_err) = self
                .runs
                .finish(scope, &created.thread_id, &created.run_id, undo)
                .await
            {
                tracing::error!(run = %created.run_id, error = %undo_err, "could not end a run whose admission failed");
            }
            return Err(e);
        }
        Ok(created)
    }

    /// The run; not found when missing, on another thread or another user's.
    pub async fn get(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
    ) -> AppResult<Run> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        self.runs
            .get(scope, thread_id, run_id)
            .await?
            .ok_or_else(|| ApplicationError::not_found("run", run_id))
    }

    /// The thread's runs, newest first, cursor-paged.
    pub async fn list(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        page: &RunPage,
    ) -> AppResult<RunList> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        Ok(self.runs.list(scope, thread_id, page).await?)
    }

    /// The thread's pending or running run.
    pub async fn active(&self, scope: &UserScope, thread_id: &ThreadId) -> AppResult<Option<Run>> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        Ok(self.runs.active(scope, thread_id).await?)
    }

    /// Starts a pending run for `worker` (compare-and-set) with a lease of `ttl` (the
    /// configured lease when `None`); the thread is `running`.
    pub async fn start(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        worker: &WorkerId,
        ttl: Option<LeaseTtl>,
    ) -> AppResult<Run> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Write).await?;
        let run = self
            .runs
            .start(
                scope,
                thread_id,
                run_id,
                worker,
                ttl.unwrap_or(self.config.lease),
            )
            .await?;
        self.set_thread_status(scope, thread_id, ThreadStatus::Running)
            .await?;
        Ok(run)
    }

    /// Renews the worker's lease and, when given, replaces the progress report.
    pub async fn heartbeat(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        worker: &WorkerId,
        ttl: Option<LeaseTtl>,
        progress: Option<RunProgress>,
    ) -> AppResult<Run> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Write).await?;
        let run = self
            .runs
            .renew_lease(
                scope,
                thread_id,
                run_id,
                worker,
                ttl.unwrap_or(self.config.lease),
            )
            .await?;
        match progress {
            Some(p) => Ok(self
                .runs
                .update_progress(scope, thread_id, run_id, p)
                .await?),
            None => Ok(run),
        }
    }

    /// Ends the run and sets the thread status it leaves behind (spec §6.8.2). Repeating the
    /// same final status is idempotent; a different one on an ended run is a conflict.
    pub async fn finish(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        outcome: RunOutcome,
    ) -> AppResult<Run> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Write).await?;
        let status = outcome.status;
        let run = self.runs.finish(scope, thread_id, run_id, outcome).await?;
        // Finishing an older (interrupted) run must not hide a newer active one.
        let newer_active = self
            .runs
            .active(scope, thread_id)
            .await?
            .is_some_and(|a| a.run_id != run.run_id);
        if !newer_active {
            self.set_thread_status(scope, thread_id, status.thread_status())
                .await?;
        }
        Ok(run)
    }

    /// Cancels the run: it ends `interrupted` with the error text [`CANCELLED`].
    pub async fn cancel(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
    ) -> AppResult<Run> {
        let outcome = RunOutcome {
            status: FinalStatus::Interrupted,
            error: Some(RunErrorText::parse(CANCELLED)?),
        };
        self.finish(scope, thread_id, run_id, outcome).await
    }

    /// Reclaims every expired lease (administrative): runs go back to `pending` while
    /// attempts remain, else end as `error` and their thread becomes `error`.
    pub async fn reclaim_expired(&self) -> AppResult<Vec<Run>> {
        let scope = UserScope::Unscoped;
        let reclaimed = self
            .runs
            .reclaim_expired(&scope, self.config.max_attempts)
            .await?;
        for run in reclaimed.iter().filter(|r| r.status == RunStatus::Error) {
            match self
                .set_thread_status(&scope, &run.thread_id, ThreadStatus::Error)
                .await
            {
                Ok(()) => {}
                // The thread was deleted meanwhile: nothing to mark.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(reclaimed)
    }

    /// Startup reconciliation (spec §6.8.3): reclaims expired leases, then every thread
    /// stored `running` without a pending or running run becomes `error`. Threads whose run is
    /// still live (another worker's valid lease) are left alone.
    pub async fn reconcile(&self) -> AppResult<Reconciliation> {
        let scope = UserScope::Unscoped;
        let reclaimed_runs = self.reclaim_expired().await?;
        let mut errored_threads = Vec::new();
        // Errored threads leave the result set, so the offset counts only the kept ones.
        let mut kept: u64 = 0;
        loop {
            let query = ThreadQuery {
                filter: ThreadFilter::default(),
                status: Some(ThreadStatus::Running),
                session_id: None,
                page: OffsetPage::new(100, kept)?,
            };
            let page = self.threads.search(&scope, &query).await?;
            for t in &page.items {
                if self.runs.active(&scope, &t.id).await?.is_some() {
                    kept += 1;
                    continue;
                }
                match self
                    .set_thread_status(&scope, &t.id, ThreadStatus::Error)
                    .await
                {
                    Ok(()) => errored_threads.push(t.id.clone()),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
            if !page.has_more {
                break;
            }
        }
        Ok(Reconciliation {
            reclaimed_runs,
            errored_threads,
        })
    }

    /// The status the thread read endpoint reports (spec §6.2): `running` while a run is
    /// active, else derived from the latest root checkpoint.
    pub async fn thread_status(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
    ) -> AppResult<ThreadStatus> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        if self.runs.active(scope, thread_id).await?.is_some() {
            return Ok(ThreadStatus::Running);
        }
        let latest = self
            .checkpoints
            .get_tuple(thread_id, &CheckpointNamespace::root(), None)
            .await?;
        Ok(derive_thread_status(latest.as_ref(), false))
    }
}

#[cfg(test)]
mod tests;
