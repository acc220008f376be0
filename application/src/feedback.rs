//! Per-run feedback (spec §4): thumbs up or down with an optional comment, one per user per
//! run. Writes need an accessible, existing thread, and (when the event store is wired in)
//! a run that has events on that thread, so feedback never points at a run of another thread.

use std::collections::HashMap;
use std::sync::Arc;

use waymark_domain::feedback::{Feedback, FeedbackRepository, FeedbackStats, NewFeedback};
use waymark_domain::paging::{Limit, Page};
use waymark_domain::run_event::RunEventRepository;
use waymark_domain::thread::ThreadRepository;
use waymark_domain::{FeedbackId, RunId, Stores, ThreadId, UserScope};

use crate::access::{Access, ensure};
use crate::error::{AppResult, ApplicationError};

/// The default page of feedback lists.
pub const DEFAULT_FEEDBACK_LIMIT: u32 = 100;

/// Feedback use cases. Constructed without a repository it answers every call with
/// [`ApplicationError::Disabled`] (the HTTP layer's 503 "feedback not available").
#[derive(Clone)]
pub struct FeedbackService {
    repo: Option<Arc<dyn FeedbackRepository>>,
    threads: Arc<dyn ThreadRepository>,
    events: Option<Arc<dyn RunEventRepository>>,
}

impl std::fmt::Debug for FeedbackService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedbackService")
            .field("enabled", &self.repo.is_some())
            .field("checks_runs", &self.events.is_some())
            .finish()
    }
}

impl FeedbackService {
    /// A service; `repo = None` disables feedback.
    pub fn new(
        repo: Option<Arc<dyn FeedbackRepository>>,
        threads: Arc<dyn ThreadRepository>,
    ) -> Self {
        Self {
            repo,
            threads,
            events: None,
        }
    }

    /// A service over a deployment's stores, checking runs against the event store.
    pub fn from_stores(stores: &Stores) -> Self {
        Self::new(Some(stores.feedback.clone()), stores.threads.clone())
            .with_run_check(stores.run_events.clone())
    }

    /// Refuses feedback on a run without events in the thread (`NotFound` "run").
    pub fn with_run_check(mut self, events: Arc<dyn RunEventRepository>) -> Self {
        self.events = Some(events);
        self
    }

    fn repo(&self) -> AppResult<&Arc<dyn FeedbackRepository>> {
        self.repo.as_ref().ok_or(ApplicationError::Disabled {
            feature: "feedback",
        })
    }

    async fn check_write(&self, scope: &UserScope, feedback: &NewFeedback) -> AppResult<()> {
        feedback.validate()?;
        ensure(
            self.threads.as_ref(),
            scope,
            &feedback.thread_id,
            Access::Write,
        )
        .await?;
        self.check_run(scope, &feedback.thread_id, &feedback.run_id)
            .await
    }

    async fn check_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
    ) -> AppResult<()> {
        let Some(events) = &self.events else {
            return Ok(());
        };
        let mut query =
            waymark_domain::run_event::EventQuery::run(thread_id.clone(), run_id.clone());
        query.limit = Limit::new(1)?;
        let any_event = !events.list_events(scope, &query).await?.is_empty();
        if any_event {
            Ok(())
        } else {
            Err(ApplicationError::not_found(
                "run",
                format!("{run_id} in thread {thread_id}"),
            ))
        }
    }

    /// Inserts or updates the caller's feedback for the run in one atomic store call.
    pub async fn upsert(&self, scope: &UserScope, feedback: NewFeedback) -> AppResult<Feedback> {
        let repo = self.repo()?;
        self.check_write(scope, &feedback).await?;
        Ok(repo.upsert(scope, feedback).await?)
    }

    /// Creates the caller's feedback; an existing one for the run is a `Conflict`.
    pub async fn create(&self, scope: &UserScope, feedback: NewFeedback) -> AppResult<Feedback> {
        let repo = self.repo()?;
        self.check_write(scope, &feedback).await?;
        Ok(repo.create(scope, feedback).await?)
    }

    /// Deletes a feedback row by id, only if it belongs to that thread and run (`NotFound`
    /// otherwise, as for a missing row).
    pub async fn delete(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        feedback_id: FeedbackId,
    ) -> AppResult<()> {
        let repo = self.repo()?;
        ensure(self.threads.as_ref(), scope, thread_id, Access::Write).await?;
        match repo.get(scope, feedback_id).await? {
            Some(f) if &f.thread_id == thread_id && &f.run_id == run_id => {
                if repo.delete(scope, feedback_id).await? {
                    Ok(())
                } else {
                    Err(ApplicationError::not_found("feedback", feedback_id))
                }
            }
            _ => Err(ApplicationError::not_found("feedback", feedback_id)),
        }
    }

    /// Deletes the caller's feedback on the run; `NotFound` when there is none.
    pub async fn delete_mine(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
    ) -> AppResult<()> {
        let repo = self.repo()?;
        ensure(self.threads.as_ref(), scope, thread_id, Access::Write).await?;
        if repo.delete_by_run(scope, thread_id, run_id).await? {
            Ok(())
        } else {
            Err(ApplicationError::not_found(
                "feedback",
                format!("of run {run_id}"),
            ))
        }
    }

    /// The caller's rows of the run (under a user scope, that is at most one).
    pub async fn list_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        limit: Limit,
    ) -> AppResult<Page<Feedback>> {
        let repo = self.repo()?;
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        Ok(repo.list_by_run(scope, thread_id, run_id, limit).await?)
    }

    /// The caller's rows of the thread, oldest first, with `has_more`.
    pub async fn list_by_thread(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        limit: Limit,
    ) -> AppResult<Page<Feedback>> {
        let repo = self.repo()?;
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        Ok(repo.list_by_thread(scope, thread_id, limit).await?)
    }

    /// One row per run of the thread.
    pub async fn grouped_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
    ) -> AppResult<HashMap<RunId, Feedback>> {
        let repo = self.repo()?;
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        Ok(repo.list_by_thread_grouped(scope, thread_id).await?)
    }

    /// Counts over every user's rows of the run; the caller needs access to the thread.
    pub async fn stats(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
    ) -> AppResult<FeedbackStats> {
        let repo = self.repo()?;
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        Ok(repo.stats(thread_id, run_id).await?)
    }
}

#[cfg(test)]
mod tests;
