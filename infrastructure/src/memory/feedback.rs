//! Per-run feedback in memory (spec `history-and-streams.md` §4).
//!
//! The author is the scope's owner (`None`, anonymous, when unscoped); one row per
//! `(thread, run, author)`. Because the whole check-and-write runs under the backend's lock,
//! `upsert` is as atomic as the SQL stores' single statement.
//!
//! Rules shared with the SQL stores: lists are ascending by `created_at`, then id; grouped
//! lookups keep, per run, the row with the latest `updated_at` (ties: the greatest id);
//! `delete_by_run` removes the row authored by the scope's owner (the anonymous row when
//! unscoped); `stats` counts every user's rows.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use waymark_domain::feedback::{
    Feedback, FeedbackRepository, FeedbackStats, NewFeedback, Rating, latest_per_run,
};
use waymark_domain::paging::{Limit, Page};
use waymark_domain::{DomainError, DomainResult, FeedbackId, RunId, ThreadId, UserId, UserScope};

use super::{Shared, State};

/// The in-memory [`FeedbackRepository`].
pub struct MemoryFeedbackRepository {
    shared: Arc<Shared>,
}

impl MemoryFeedbackRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Inserts a fresh row authored by `author`.
    fn insert(&self, state: &mut State, author: Option<UserId>, f: NewFeedback) -> Feedback {
        let now = self.shared.now();
        let mut id = FeedbackId::new_random();
        while state.feedback.contains_key(&id) {
            id = FeedbackId::new_random();
        }
        let row = Feedback {
            id,
            thread_id: f.thread_id,
            run_id: f.run_id,
            user_id: author,
            message_id: f.message_id,
            rating: f.rating,
            comment: f.comment,
            created_at: now,
            updated_at: now,
        };
        state.feedback.insert(id, row.clone());
        row
    }
}

/// The id of the row of `(thread, run, author)`.
fn find(
    state: &State,
    thread_id: &ThreadId,
    run_id: &RunId,
    author: Option<&UserId>,
) -> Option<FeedbackId> {
    state
        .feedback
        .values()
        .find(|f| &f.thread_id == thread_id && &f.run_id == run_id && f.user_id.as_ref() == author)
        .map(|f| f.id)
}

/// Visible rows of a thread (optionally one run), ascending by `created_at`, then id.
fn listed<'a>(
    state: &'a State,
    scope: &UserScope,
    thread_id: &ThreadId,
    run_id: Option<&RunId>,
) -> Vec<&'a Feedback> {
    let mut rows: Vec<&Feedback> = state
        .feedback
        .values()
        .filter(|f| &f.thread_id == thread_id && scope.can_see(f.user_id.as_ref()))
        .filter(|f| run_id.is_none_or(|r| &f.run_id == r))
        .collect();
    rows.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    rows
}

fn page(rows: Vec<&Feedback>, limit: Limit) -> Page<Feedback> {
    let fetched = rows
        .into_iter()
        .take(limit.as_usize() + 1)
        .cloned()
        .collect();
    Page::from_look_ahead(fetched, limit)
}

#[async_trait]
impl FeedbackRepository for MemoryFeedbackRepository {
    async fn create(&self, scope: &UserScope, feedback: NewFeedback) -> DomainResult<Feedback> {
        feedback.validate()?;
        let author = scope.owner().cloned();
        let mut state = self.shared.lock();
        if find(
            &state,
            &feedback.thread_id,
            &feedback.run_id,
            author.as_ref(),
        )
        .is_some()
        {
            return Err(DomainError::conflict(
                "feedback",
                format!(
                    "run {} of thread {} already has feedback from this user",
                    feedback.run_id, feedback.thread_id
                ),
            ));
        }
        Ok(self.insert(&mut state, author, feedback))
    }

    async fn upsert(&self, scope: &UserScope, feedback: NewFeedback) -> DomainResult<Feedback> {
        feedback.validate()?;
        let author = scope.owner().cloned();
        let now = self.shared.now();
        let mut state = self.shared.lock();
        match find(
            &state,
            &feedback.thread_id,
            &feedback.run_id,
            author.as_ref(),
        ) {
            Some(id) => {
                let row = state
                    .feedback
                    .get_mut(&id)
                    .ok_or_else(|| DomainError::not_found("feedback", id))?;
                row.rating = feedback.rating;
                row.comment = feedback.comment;
                row.updated_at = now;
                Ok(row.clone())
            }
            None => Ok(self.insert(&mut state, author, feedback)),
        }
    }

    async fn get(&self, scope: &UserScope, id: FeedbackId) -> DomainResult<Option<Feedback>> {
        let state = self.shared.lock();
        Ok(state
            .feedback
            .get(&id)
            .filter(|f| scope.can_see(f.user_id.as_ref()))
            .cloned())
    }

    async fn list_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        limit: Limit,
    ) -> DomainResult<Page<Feedback>> {
        let state = self.shared.lock();
        Ok(page(listed(&state, scope, thread_id, Some(run_id)), limit))
    }

    async fn list_by_thread(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        limit: Limit,
    ) -> DomainResult<Page<Feedback>> {
        let state = self.shared.lock();
        Ok(page(listed(&state, scope, thread_id, None), limit))
    }

    async fn list_by_thread_grouped(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
    ) -> DomainResult<HashMap<RunId, Feedback>> {
        let state = self.shared.lock();
        Ok(latest_per_run(
            listed(&state, scope, thread_id, None).into_iter().cloned(),
        ))
    }

    async fn list_by_run_ids(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_ids: Vec<RunId>,
    ) -> DomainResult<HashMap<RunId, Feedback>> {
        if run_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let wanted: HashSet<RunId> = run_ids.into_iter().collect();
        let state = self.shared.lock();
        Ok(latest_per_run(
            listed(&state, scope, thread_id, None)
                .into_iter()
                .filter(|f| wanted.contains(&f.run_id))
                .cloned(),
        ))
    }

    async fn delete(&self, scope: &UserScope, id: FeedbackId) -> DomainResult<bool> {
        let mut state = self.shared.lock();
        let visible = state
            .feedback
            .get(&id)
            .is_some_and(|f| scope.can_see(f.user_id.as_ref()));
        if visible {
            state.feedback.remove(&id);
        }
        Ok(visible)
    }

    async fn delete_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
    ) -> DomainResult<bool> {
        let mut state = self.shared.lock();
        match find(&state, thread_id, run_id, scope.owner()) {
            Some(id) => Ok(state.feedback.remove(&id).is_some()),
            None => Ok(false),
        }
    }

    async fn stats(&self, thread_id: &ThreadId, run_id: &RunId) -> DomainResult<FeedbackStats> {
        let state = self.shared.lock();
        let mut stats = FeedbackStats {
            run_id: run_id.clone(),
            total: 0,
            positive: 0,
            negative: 0,
        };
        for f in state
            .feedback
            .values()
            .filter(|f| &f.thread_id == thread_id && &f.run_id == run_id)
        {
            stats.total += 1;
            match f.rating {
                Rating::Positive => stats.positive += 1,
                Rating::Negative => stats.negative += 1,
            }
        }
        Ok(stats)
    }
}
