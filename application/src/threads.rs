//! Thread lifecycle (spec §6): create, read, search, metadata and status updates, moving
//! between sessions, the access check, and the cascading delete.

use std::sync::Arc;

use waymark_domain::checkpoint::CheckpointRepository;
use waymark_domain::paging::Page;
use waymark_domain::session::SessionRepository;
use waymark_domain::thread::{
    NewThread, PINNED_KEY, Thread, ThreadQuery, ThreadRepository, ThreadStatus, ThreadUpdate,
    validate_short_text,
};
use waymark_domain::{JsonObject, SessionId, Stores, ThreadId, UserScope};

use crate::access::{Access, claim, ensure};
use crate::chat_stream::ChatStreamService;
use crate::error::{AppResult, ApplicationError};

/// What a thread delete removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadDeletion {
    /// True when a thread row existed (owned data is removed either way).
    pub existed: bool,
    /// Frames dropped from the in-memory chat-stream buffer.
    pub buffered_frames_dropped: usize,
}

/// Thread use cases.
#[derive(Clone)]
pub struct ThreadManager {
    threads: Arc<dyn ThreadRepository>,
    sessions: Arc<dyn SessionRepository>,
    checkpoints: Arc<dyn CheckpointRepository>,
    chat_streams: Option<Arc<ChatStreamService>>,
}

impl std::fmt::Debug for ThreadManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadManager")
            .field("chat_streams", &self.chat_streams.is_some())
            .finish_non_exhaustive()
    }
}

impl ThreadManager {
    /// A manager over the given ports.
    pub fn new(
        threads: Arc<dyn ThreadRepository>,
        sessions: Arc<dyn SessionRepository>,
        checkpoints: Arc<dyn CheckpointRepository>,
    ) -> Self {
        Self {
            threads,
            sessions,
            checkpoints,
            chat_streams: None,
        }
    }

    /// A manager over a deployment's stores.
    pub fn from_stores(stores: &Stores) -> Self {
        Self::new(
            stores.threads.clone(),
            stores.sessions.clone(),
            stores.checkpoints.clone(),
        )
    }

    /// Also drops the thread's in-memory chat-stream buffer when a thread is deleted.
    pub fn with_chat_streams(mut self, chat_streams: Arc<ChatStreamService>) -> Self {
        self.chat_streams = Some(chat_streams);
        self
    }

    /// Creates a thread (idempotent for the same owner). A named session must exist and be
    /// visible to the scope.
    pub async fn create(&self, scope: &UserScope, thread: NewThread) -> AppResult<Thread> {
        thread.validate()?;
        if let Some(session_id) = &thread.session_id {
            self.require_session(scope, session_id).await?;
        }
        Ok(self.threads.create(scope, thread).await?)
    }

    /// The thread; `NotFound` when missing or another user's.
    pub async fn get(&self, scope: &UserScope, id: &ThreadId) -> AppResult<Thread> {
        self.threads
            .get(scope, id)
            .await?
            .ok_or_else(|| ApplicationError::not_found("thread", id))
    }

    /// Threads visible to the scope, filtered and paged in the store.
    pub async fn search(&self, scope: &UserScope, query: &ThreadQuery) -> AppResult<Page<Thread>> {
        Ok(self.threads.search(scope, query).await?)
    }

    /// Shallow-merges `patch` into the metadata; `touch` advances `updated_at`.
    pub async fn update_metadata(
        &self,
        scope: &UserScope,
        id: &ThreadId,
        patch: JsonObject,
        touch: bool,
    ) -> AppResult<Thread> {
        self.update(
            scope,
            id,
            ThreadUpdate {
                metadata_patch: Some(patch),
                touch,
                ..ThreadUpdate::default()
            },
        )
        .await
    }

    /// Sets the stored status.
    pub async fn set_status(
        &self,
        scope: &UserScope,
        id: &ThreadId,
        status: ThreadStatus,
    ) -> AppResult<Thread> {
        self.update(
            scope,
            id,
            ThreadUpdate {
                status: Some(status),
                touch: true,
                ..ThreadUpdate::default()
            },
        )
        .await
    }

    /// Sets or clears the display name.
    pub async fn set_display_name(
        &self,
        scope: &UserScope,
        id: &ThreadId,
        display_name: Option<String>,
    ) -> AppResult<Thread> {
        validate_short_text("display_name", display_name.as_deref(), 256)?;
        self.update(
            scope,
            id,
            ThreadUpdate {
                display_name: Some(display_name),
                touch: true,
                ..ThreadUpdate::default()
            },
        )
        .await
    }

    /// Pins or unpins the thread without advancing `updated_at` (spec §6.5).
    pub async fn set_pinned(
        &self,
        scope: &UserScope,
        id: &ThreadId,
        pinned: bool,
    ) -> AppResult<Thread> {
        let mut patch = JsonObject::new();
        patch.insert(PINNED_KEY.into(), serde_json::Value::Bool(pinned));
        self.update_metadata(scope, id, patch, false).await
    }

    /// Moves the thread to another session (`None` detaches it). The target session must
    /// exist and be visible to the scope.
    pub async fn move_to_session(
        &self,
        scope: &UserScope,
        id: &ThreadId,
        session_id: Option<SessionId>,
    ) -> AppResult<Thread> {
        if let Some(s) = &session_id {
            self.require_session(scope, s).await?;
        }
        self.update(
            scope,
            id,
            ThreadUpdate {
                session_id: Some(session_id),
                touch: true,
                ..ThreadUpdate::default()
            },
        )
        .await
    }

    /// Applies an arbitrary update; a missing or foreign thread is `NotFound`.
    pub async fn update(
        &self,
        scope: &UserScope,
        id: &ThreadId,
        update: ThreadUpdate,
    ) -> AppResult<Thread> {
        if let Some(Some(name)) = &update.display_name {
            validate_short_text("display_name", Some(name), 256)?;
        }
        Ok(self.threads.update(scope, id, update).await?)
    }

    /// The access check of spec §6.6 as a boolean.
    pub async fn check_access(
        &self,
        scope: &UserScope,
        id: &ThreadId,
        access: Access,
    ) -> AppResult<bool> {
        Ok(self
            .threads
            .check_access(scope, id, access == Access::Write)
            .await?)
    }

    /// The access check as a guard: `AccessDenied` unless allowed.
    pub async fn ensure_access(
        &self,
        scope: &UserScope,
        id: &ThreadId,
        access: Access,
    ) -> AppResult<()> {
        ensure(self.threads.as_ref(), scope, id, access).await
    }

    /// Claims the thread id for the scope's first write: creates the row owned by the
    /// scope's user when none exists (atomically; of concurrent claimers exactly one wins);
    /// `AccessDenied` when it is another owner's, owner-less or row-less data.
    pub async fn claim(&self, scope: &UserScope, id: &ThreadId) -> AppResult<()> {
        claim(self.threads.as_ref(), scope, id).await
    }

    /// Deletes the thread and everything held for it (spec §6.7): its checkpoints (every
    /// namespace), then the row with its events, feedback, chat-stream record, branches,
    /// snapshots and token usage (the store's cascade), then the in-memory chat-stream
    /// buffer. A user may delete only a thread they own: a missing, foreign or owner-less
    /// thread is `AccessDenied` and nothing is touched. `Unscoped` may delete anything,
    /// row-less data included (`existed` is then false). Stopping the
    /// thread's active run first is the host's job.
    pub async fn delete(&self, scope: &UserScope, id: &ThreadId) -> AppResult<ThreadDeletion> {
        ensure(self.threads.as_ref(), scope, id, Access::Read).await?;
        self.checkpoints.delete_thread(id).await?;
        let existed = self.threads.delete(scope, id).await?;
        let buffered_frames_dropped = match &self.chat_streams {
            Some(c) => c.drop_buffer(id).await,
            None => 0,
        };
        Ok(ThreadDeletion {
            existed,
            buffered_frames_dropped,
        })
    }

    async fn require_session(&self, scope: &UserScope, id: &SessionId) -> AppResult<()> {
        self.sessions
            .get(scope, id)
            .await?
            .map(|_| ())
            .ok_or_else(|| ApplicationError::not_found("session", id))
    }
}

#[cfg(test)]
mod tests;
