//! Sessions in memory.
//!
//! Rules shared with the SQL stores: the store stamps `owner` from the scope and both
//! timestamps from its clock at `create` (the caller's values are ignored); an existing id is a
//! conflict whoever owns it; `update` bumps `updated_at`; `list` orders by `updated_at`
//! descending, then id descending; `delete` detaches the session's threads (their
//! `session_id` becomes `None`) and answers `false` for a missing or invisible session.

use std::sync::Arc;

use async_trait::async_trait;
use waymark_domain::session::{Session, SessionQuery, SessionRepository, SessionUpdate};
use waymark_domain::{DomainError, DomainResult, SessionId, UserScope, paging::Page};

use super::{Shared, offset_page};

/// The in-memory [`SessionRepository`].
pub struct MemorySessionRepository {
    shared: Arc<Shared>,
}

impl MemorySessionRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[async_trait]
impl SessionRepository for MemorySessionRepository {
    async fn create(&self, scope: &UserScope, session: Session) -> DomainResult<Session> {
        session.validate_for_write()?;
        let now = self.shared.now();
        let mut state = self.shared.lock();
        if state.sessions.contains_key(&session.id) {
            return Err(DomainError::conflict(
                "session",
                format!("session {} already exists", session.id),
            ));
        }
        let stored = Session {
            owner: scope.owner().cloned(),
            created_at: now,
            updated_at: now,
            ..session
        };
        state.sessions.insert(stored.id.clone(), stored.clone());
        Ok(stored)
    }

    async fn get(&self, scope: &UserScope, id: &SessionId) -> DomainResult<Option<Session>> {
        let state = self.shared.lock();
        Ok(state
            .sessions
            .get(id)
            .filter(|s| scope.can_see(s.owner.as_ref()))
            .cloned())
    }

    async fn update(
        &self,
        scope: &UserScope,
        id: &SessionId,
        update: SessionUpdate,
    ) -> DomainResult<Session> {
        update.validate()?;
        let now = self.shared.now();
        let mut state = self.shared.lock();
        let session = state
            .sessions
            .get_mut(id)
            .filter(|s| scope.can_see(s.owner.as_ref()))
            .ok_or_else(|| DomainError::not_found("session", id))?;
        update.apply_to(session, now);
        Ok(session.clone())
    }

    async fn list(&self, scope: &UserScope, query: &SessionQuery) -> DomainResult<Page<Session>> {
        let state = self.shared.lock();
        let mut rows: Vec<&Session> = state
            .sessions
            .values()
            .filter(|s| scope.can_see(s.owner.as_ref()))
            .filter(|s| query.status.is_none_or(|st| s.status == st))
            .collect();
        rows.sort_by(|a, b| {
            b.updated_at
                .cmp(&a.updated_at)
                .then_with(|| b.id.cmp(&a.id))
        });
        Ok(offset_page(&rows, query.page))
    }

    async fn delete(&self, scope: &UserScope, id: &SessionId) -> DomainResult<bool> {
        let mut state = self.shared.lock();
        let visible = state
            .sessions
            .get(id)
            .is_some_and(|s| scope.can_see(s.owner.as_ref()));
        if !visible {
            return Ok(false);
        }
        state.sessions.remove(id);
        for thread in state.threads.values_mut() {
            if thread.session_id.as_ref() == Some(id) {
                thread.session_id = None;
            }
        }
        Ok(true)
    }
}
