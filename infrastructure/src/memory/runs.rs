//! Runs in memory (spec `history-and-streams.md` §6.2; rules in [`waymark_domain::run`]).
//!
//! Every operation runs under the backend's one lock, so "at most one active run per thread"
//! and the start compare-and-set are a check and a write in one critical section. The store is
//! single-process: leases here only guard against a stalled task of the same process.

use std::sync::Arc;

use async_trait::async_trait;
use waymark_domain::run::{
    LeaseTtl, NewRun, Run, RunLease, RunList, RunOutcome, RunPage, RunProgress, RunRepository,
    RunStatus, WorkerId, finish_transition, newest_first, reclaim,
};
use waymark_domain::{DomainError, DomainResult, RunId, ThreadId, UserScope};

use super::{Shared, State};

/// The in-memory [`RunRepository`].
pub struct MemoryRunRepository {
    shared: Arc<Shared>,
}

impl MemoryRunRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

/// The visible run of the thread, mutable, or not found.
fn visible_mut<'a>(
    state: &'a mut State,
    scope: &UserScope,
    thread_id: &ThreadId,
    run_id: &RunId,
) -> DomainResult<&'a mut Run> {
    state
        .runs
        .get_mut(&(thread_id.clone(), run_id.clone()))
        .filter(|r| scope.can_see(r.owner.as_ref()))
        .ok_or_else(|| DomainError::not_found("run", run_id))
}

#[async_trait]
impl RunRepository for MemoryRunRepository {
    async fn create(&self, scope: &UserScope, run: NewRun) -> DomainResult<Run> {
        run.validate()?;
        let now = self.shared.now();
        let mut state = self.shared.lock();
        let owner = match state.threads.get(&run.thread_id) {
            Some(t) if scope.can_see(t.owner.as_ref()) => t.owner.clone(),
            _ => return Err(DomainError::not_found("thread", &run.thread_id)),
        };
        if state
            .runs
            .contains_key(&(run.thread_id.clone(), run.run_id.clone()))
        {
            return Err(DomainError::conflict(
                "run",
                format!("run id {} is already used on this thread", run.run_id),
            ));
        }
        if let Some(active) = state
            .runs
            .values()
            .find(|r| r.thread_id == run.thread_id && r.status.is_active())
        {
            return Err(DomainError::conflict(
                "run",
                format!(
                    "thread {} already has the active run {}",
                    run.thread_id, active.run_id
                ),
            ));
        }
        let stored = run.into_run(owner, now);
        state.runs.insert(
            (stored.thread_id.clone(), stored.run_id.clone()),
            stored.clone(),
        );
        Ok(stored)
    }

    async fn get(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
    ) -> DomainResult<Option<Run>> {
        let state = self.shared.lock();
        Ok(state
            .runs
            .get(&(thread_id.clone(), run_id.clone()))
            .filter(|r| scope.can_see(r.owner.as_ref()))
            .cloned())
    }

    async fn start(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        worker: &WorkerId,
        ttl: LeaseTtl,
    ) -> DomainResult<Run> {
        let now = self.shared.now();
        let mut state = self.shared.lock();
        let run = visible_mut(&mut state, scope, thread_id, run_id)?;
        if run.status != RunStatus::Pending {
            return Err(run.not_pending());
        }
        run.status = RunStatus::Running;
        run.started_at = Some(now);
        run.updated_at = now;
        run.attempt = run.attempt.saturating_add(1);
        run.lease = Some(RunLease {
            worker_id: worker.clone(),
            expires_at: now + ttl.duration(),
        });
        Ok(run.clone())
    }

    async fn renew_lease(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        worker: &WorkerId,
        ttl: LeaseTtl,
    ) -> DomainResult<Run> {
        let now = self.shared.now();
        let mut state = self.shared.lock();
        let run = visible_mut(&mut state, scope, thread_id, run_id)?;
        if run.status != RunStatus::Running {
            return Err(run.not_running("renewing a lease"));
        }
        match &mut run.lease {
            Some(lease) if &lease.worker_id == worker => {
                lease.expires_at = now + ttl.duration();
            }
            _ => return Err(run.lease_not_held(worker)),
        }
        run.updated_at = now;
        Ok(run.clone())
    }

    async fn update_progress(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        progress: RunProgress,
    ) -> DomainResult<Run> {
        let now = self.shared.now();
        let mut state = self.shared.lock();
        let run = visible_mut(&mut state, scope, thread_id, run_id)?;
        if run.status != RunStatus::Running {
            return Err(run.not_running("a progress update"));
        }
        run.progress = progress.into_inner();
        run.updated_at = now;
        Ok(run.clone())
    }

    async fn finish(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        outcome: RunOutcome,
    ) -> DomainResult<Run> {
        let now = self.shared.now();
        let mut state = self.shared.lock();
        let run = visible_mut(&mut state, scope, thread_id, run_id)?;
        if finish_transition(run_id, run.status, outcome.status)? {
            run.status = outcome.status.status();
            run.error = outcome.error.map(String::from);
            run.lease = None;
            run.ended_at = Some(now);
            run.updated_at = now;
        }
        Ok(run.clone())
    }

    async fn list(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        page: &RunPage,
    ) -> DomainResult<RunList> {
        let state = self.shared.lock();
        let mut rows: Vec<&Run> = state
            .runs
            .values()
            .filter(|r| &r.thread_id == thread_id && scope.can_see(r.owner.as_ref()))
            .filter(|r| page.after.as_ref().is_none_or(|c| c.precedes(r)))
            .collect();
        rows.sort_by(|a, b| newest_first(a, b));
        let fetched = rows
            .into_iter()
            .take(page.limit.as_usize() + 1)
            .cloned()
            .collect();
        Ok(RunList::from_look_ahead(fetched, page.limit))
    }

    async fn active(&self, scope: &UserScope, thread_id: &ThreadId) -> DomainResult<Option<Run>> {
        let state = self.shared.lock();
        Ok(state
            .runs
            .values()
            .find(|r| {
                &r.thread_id == thread_id && r.status.is_active() && scope.can_see(r.owner.as_ref())
            })
            .cloned())
    }

    async fn reclaim_expired(
        &self,
        scope: &UserScope,
        max_attempts: u32,
    ) -> DomainResult<Vec<Run>> {
        let now = self.shared.now();
        let mut state = self.shared.lock();
        let mut out = Vec::new();
        for run in state.runs.values_mut() {
            if run.status == RunStatus::Running
                && run.lease_expired(now)
                && scope.can_see(run.owner.as_ref())
            {
                reclaim(run, now, max_attempts);
                out.push(run.clone());
            }
        }
        Ok(out)
    }
}
