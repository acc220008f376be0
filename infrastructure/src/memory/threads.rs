//! Thread metadata in memory (spec `history-and-streams.md` §6).
//!
//! Rules shared with the SQL stores:
//! * `create` returns the existing row when the scope can see it (same owner, or unscoped) and
//!   is a conflict otherwise; a named session must exist and be visible (else not found).
//! * `claim` creates the row for the scope's first write unless the row exists or the id
//!   already holds checkpoints without a row; `check_access` lets a user use only their own
//!   rows (a missing row only `Unscoped`, for reads).
//! * `update` on a missing or invisible row is not found; a target session given in the update
//!   must exist and be visible too. `touch = false` keeps `updated_at`.
//! * `delete` on a row the scope cannot see answers `false` and removes nothing. On a visible
//!   or missing row it removes everything held under the thread id, every user's rows included
//!   (events, feedback, chat stream, branches where the thread is source or branch, snapshots,
//!   token usage, checkpoints), and answers whether the row existed.

use std::sync::Arc;

use async_trait::async_trait;
use waymark_domain::thread::{NewThread, Thread, ThreadQuery, ThreadRepository, ThreadUpdate};
use waymark_domain::{DomainError, DomainResult, SessionId, ThreadId, UserScope, paging::Page};

use super::{Shared, State, offset_page};

/// The in-memory [`ThreadRepository`].
pub struct MemoryThreadRepository {
    shared: Arc<Shared>,
}

impl MemoryThreadRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

/// Not found unless the session exists and the scope can see it.
fn require_session(state: &State, scope: &UserScope, id: &SessionId) -> DomainResult<()> {
    match state.sessions.get(id) {
        Some(s) if scope.can_see(s.owner.as_ref()) => Ok(()),
        _ => Err(DomainError::not_found("session", id)),
    }
}

#[async_trait]
impl ThreadRepository for MemoryThreadRepository {
    async fn create(&self, scope: &UserScope, thread: NewThread) -> DomainResult<Thread> {
        thread.validate_for_write()?;
        let now = self.shared.now();
        let mut state = self.shared.lock();
        if let Some(existing) = state.threads.get(&thread.id) {
            if scope.can_see(existing.owner.as_ref()) {
                return Ok(existing.clone());
            }
            return Err(DomainError::conflict(
                "thread",
                format!("thread id {} is not available", thread.id),
            ));
        }
        if scope.owner().is_some() && state.checkpoints.holds_thread(&thread.id) {
            // Row-less checkpoints stay admin-only; a user's create never adopts them.
            return Err(DomainError::conflict(
                "thread",
                format!("thread id {} is not available", thread.id),
            ));
        }
        if let Some(session) = &thread.session_id {
            require_session(&state, scope, session)?;
        }
        let stored = thread.into_thread(scope.owner().cloned(), now);
        state.threads.insert(stored.id.clone(), stored.clone());
        Ok(stored)
    }

    async fn get(&self, scope: &UserScope, id: &ThreadId) -> DomainResult<Option<Thread>> {
        let state = self.shared.lock();
        Ok(state
            .threads
            .get(id)
            .filter(|t| scope.can_see(t.owner.as_ref()))
            .cloned())
    }

    async fn search(&self, scope: &UserScope, query: &ThreadQuery) -> DomainResult<Page<Thread>> {
        let state = self.shared.lock();
        let mut rows: Vec<&Thread> = state
            .threads
            .values()
            .filter(|t| scope.can_see(t.owner.as_ref()))
            .filter(|t| query.status.is_none_or(|s| t.status == s))
            .filter(|t| {
                query
                    .session_id
                    .as_ref()
                    .is_none_or(|s| t.session_id.as_ref() == Some(s))
            })
            .filter(|t| query.filter.matches(&t.metadata))
            .collect();
        rows.sort_by(|a, b| {
            b.is_pinned()
                .cmp(&a.is_pinned())
                .then_with(|| b.updated_at.cmp(&a.updated_at))
                .then_with(|| b.id.cmp(&a.id))
        });
        Ok(offset_page(&rows, query.page))
    }

    async fn update(
        &self,
        scope: &UserScope,
        id: &ThreadId,
        update: ThreadUpdate,
    ) -> DomainResult<Thread> {
        update.validate()?;
        let now = self.shared.now();
        let mut state = self.shared.lock();
        let visible = state
            .threads
            .get(id)
            .is_some_and(|t| scope.can_see(t.owner.as_ref()));
        if !visible {
            return Err(DomainError::not_found("thread", id));
        }
        if let Some(Some(session)) = &update.session_id {
            require_session(&state, scope, session)?;
        }
        let thread = state
            .threads
            .get_mut(id)
            .ok_or_else(|| DomainError::not_found("thread", id))?;
        update.apply_to(thread, now);
        Ok(thread.clone())
    }

    async fn claim(&self, scope: &UserScope, id: &ThreadId) -> DomainResult<Option<Thread>> {
        let now = self.shared.now();
        let mut state = self.shared.lock();
        if let Some(existing) = state.threads.get(id) {
            return Ok(scope
                .can_see(existing.owner.as_ref())
                .then(|| existing.clone()));
        }
        if scope.owner().is_some() && state.checkpoints.holds_thread(id) {
            // Row-less checkpoints stay admin-only; a user's claim never adopts them.
            return Ok(None);
        }
        let stored = NewThread::with_id(id.clone()).into_thread(scope.owner().cloned(), now);
        state.threads.insert(id.clone(), stored.clone());
        Ok(Some(stored))
    }

    async fn check_access(
        &self,
        scope: &UserScope,
        id: &ThreadId,
        require_existing: bool,
    ) -> DomainResult<bool> {
        let state = self.shared.lock();
        Ok(match state.threads.get(id) {
            None => *scope == UserScope::Unscoped && !require_existing,
            Some(t) => scope.can_see(t.owner.as_ref()),
        })
    }

    async fn delete(&self, scope: &UserScope, id: &ThreadId) -> DomainResult<bool> {
        let mut state = self.shared.lock();
        let existed = match state.threads.get(id) {
            Some(t) if !scope.can_see(t.owner.as_ref()) => return Ok(false),
            Some(_) => true,
            None => false,
        };
        state.delete_thread_cascade(id);
        Ok(existed)
    }
}
