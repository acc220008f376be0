//! Session lifecycle: create, read, list, update, archive and delete sessions.

use std::sync::Arc;

use waymark_domain::clock::Clock;
use waymark_domain::paging::{OffsetPage, Page};
use waymark_domain::session::{
    CheckpointPolicy, Session, SessionQuery, SessionRepository, SessionStatus, SessionUpdate,
    validate_title,
};
use waymark_domain::thread::{ThreadFilter, ThreadQuery};
use waymark_domain::{JsonObject, SessionId, Stores, ThreadId, UserScope};

use crate::error::{AppResult, ApplicationError};
use crate::threads::ThreadManager;

/// A session to create.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewSession {
    /// The id; a random uuid when `None`.
    pub id: Option<SessionId>,
    /// A display title.
    pub title: Option<String>,
    /// Free-form metadata.
    pub metadata: JsonObject,
    /// The checkpoint policy; the default keeps everything and exempts snapshots.
    pub checkpoint_policy: Option<CheckpointPolicy>,
}

/// What deleting a session does to its threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionDeletion {
    /// The threads stay, detached from any session (the store's default).
    DetachThreads,
    /// The threads are deleted too, each with everything it holds.
    DeleteThreads,
}

/// The result of deleting a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDeleted {
    /// True when a session row existed.
    pub existed: bool,
    /// Threads deleted with it (empty when they were detached).
    pub deleted_threads: Vec<ThreadId>,
}

/// Session use cases.
#[derive(Clone)]
pub struct SessionManager {
    sessions: Arc<dyn SessionRepository>,
    threads: ThreadManager,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager").finish_non_exhaustive()
    }
}

impl SessionManager {
    /// A manager; thread deletes of [`SessionDeletion::DeleteThreads`] go through `threads`.
    pub fn new(
        sessions: Arc<dyn SessionRepository>,
        threads: ThreadManager,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            sessions,
            threads,
            clock,
        }
    }

    /// A manager over a deployment's stores.
    pub fn from_stores(stores: &Stores, threads: ThreadManager, clock: Arc<dyn Clock>) -> Self {
        Self::new(stores.sessions.clone(), threads, clock)
    }

    /// Creates an active session owned by the scope's user. An existing id is a conflict.
    pub async fn create(&self, scope: &UserScope, new: NewSession) -> AppResult<Session> {
        if let Some(t) = &new.title {
            validate_title(t)?;
        }
        let id = match new.id {
            Some(id) => id,
            None => SessionId::parse(uuid::Uuid::new_v4().to_string())?,
        };
        let now = self.clock.now();
        let session = Session {
            id,
            owner: scope.owner().cloned(),
            title: new.title,
            metadata: new.metadata,
            status: SessionStatus::Active,
            checkpoint_policy: new.checkpoint_policy.unwrap_or_default(),
            created_at: now,
            updated_at: now,
        };
        Ok(self.sessions.create(scope, session).await?)
    }

    /// The session; `NotFound` when missing or another user's.
    pub async fn get(&self, scope: &UserScope, id: &SessionId) -> AppResult<Session> {
        self.sessions
            .get(scope, id)
            .await?
            .ok_or_else(|| ApplicationError::not_found("session", id))
    }

    /// Sessions visible to the scope, most recently updated first.
    pub async fn list(
        &self,
        scope: &UserScope,
        status: Option<SessionStatus>,
        page: OffsetPage,
    ) -> AppResult<Page<Session>> {
        Ok(self
            .sessions
            .list(scope, &SessionQuery { status, page })
            .await?)
    }

    /// Applies an update (title, metadata merge, status, policy) atomically.
    pub async fn update(
        &self,
        scope: &UserScope,
        id: &SessionId,
        update: SessionUpdate,
    ) -> AppResult<Session> {
        if let Some(Some(t)) = &update.title {
            validate_title(t)?;
        }
        Ok(self.sessions.update(scope, id, update).await?)
    }

    /// Shallow-merges `patch` into the session's metadata.
    pub async fn update_metadata(
        &self,
        scope: &UserScope,
        id: &SessionId,
        patch: JsonObject,
    ) -> AppResult<Session> {
        self.update(
            scope,
            id,
            SessionUpdate {
                metadata_patch: Some(patch),
                ..SessionUpdate::default()
            },
        )
        .await
    }

    /// Sets the lifecycle status (archive, close, reactivate).
    pub async fn set_status(
        &self,
        scope: &UserScope,
        id: &SessionId,
        status: SessionStatus,
    ) -> AppResult<Session> {
        self.update(
            scope,
            id,
            SessionUpdate {
                status: Some(status),
                ..SessionUpdate::default()
            },
        )
        .await
    }

    /// The session's threads, paged (pinned first, then most recently updated).
    pub async fn threads(
        &self,
        scope: &UserScope,
        id: &SessionId,
        page: OffsetPage,
    ) -> AppResult<Page<waymark_domain::thread::Thread>> {
        self.get(scope, id).await?;
        self.threads
            .search(
                scope,
                &ThreadQuery {
                    filter: ThreadFilter::default(),
                    status: None,
                    session_id: Some(id.clone()),
                    page,
                },
            )
            .await
    }

    /// Deletes the session. With [`SessionDeletion::DeleteThreads`] each of its threads is
    /// deleted first (stopping at the first failure, with the session still in place so the
    /// call can be repeated); otherwise the store detaches them.
    pub async fn delete(
        &self,
        scope: &UserScope,
        id: &SessionId,
        mode: SessionDeletion,
    ) -> AppResult<SessionDeleted> {
        let mut deleted_threads = Vec::new();
        if mode == SessionDeletion::DeleteThreads {
            self.get(scope, id).await?;
            loop {
                let page = self
                    .threads
                    .search(
                        scope,
                        &ThreadQuery {
                            filter: ThreadFilter::default(),
                            status: None,
                            session_id: Some(id.clone()),
                            page: OffsetPage::first(500)?,
                        },
                    )
                    .await?;
                if page.items.is_empty() {
                    break;
                }
                for t in page.items {
                    if deleted_threads.contains(&t.id) {
                        // The store still lists a thread it confirmed deleted; stop rather
                        // than loop.
                        return Err(waymark_domain::DomainError::storage(
                            "sessions.delete",
                            format!("thread {} is still listed after its delete", t.id),
                        )
                        .into());
                    }
                    self.threads.delete(scope, &t.id).await?;
                    deleted_threads.push(t.id);
                }
            }
        }
        let existed = self.sessions.delete(scope, id).await?;
        Ok(SessionDeleted {
            existed,
            deleted_threads,
        })
    }
}

#[cfg(test)]
mod tests;
