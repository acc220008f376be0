//! Persisted chat streams in memory (spec `history-and-streams.md` §5.3-5.5).
//!
//! One record per thread. `append` creates or extends it under the backend's lock, so two
//! first appends of a thread yield one record holding both.
//!
//! Rules shared with the SQL stores: frames must be non-empty and NUL-free and the list must
//! not be empty; `ts` becomes now on every append and `created_at` is set once; the record
//! keeps the owner of its first append; an append by a scope that cannot see an existing
//! record is a conflict (the thread's stream belongs to someone else); `list_recent` orders by
//! `ts` descending, then thread id ascending; `purge_older_than` deletes records with
//! `ts < cutoff`, oldest first, up to `batch` of them, whoever owns them.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use waymark_domain::chat_stream::{
    ChatStreamRecord, ChatStreamRepository, ChatStreamSummary, validate_frames,
};
use waymark_domain::paging::Limit;
use waymark_domain::{DomainError, DomainResult, ThreadId, UserScope};

use super::Shared;

/// The in-memory [`ChatStreamRepository`].
pub struct MemoryChatStreamRepository {
    shared: Arc<Shared>,
}

impl MemoryChatStreamRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[async_trait]
impl ChatStreamRepository for MemoryChatStreamRepository {
    async fn append(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        frames: Vec<String>,
    ) -> DomainResult<ChatStreamRecord> {
        if frames.is_empty() {
            return Err(DomainError::invalid(
                "frames",
                "an append needs at least one frame",
            ));
        }
        validate_frames(&frames)?;
        let now = self.shared.now();
        let mut state = self.shared.lock();
        match state.chat_streams.get_mut(thread_id) {
            Some(record) => {
                if !scope.can_see(record.user_id.as_ref()) {
                    return Err(DomainError::conflict(
                        "chat_stream",
                        format!("the chat stream of thread {thread_id} belongs to another user"),
                    ));
                }
                record.frames.extend(frames);
                record.ts = now;
                Ok(record.clone())
            }
            None => {
                let record = ChatStreamRecord {
                    thread_id: thread_id.clone(),
                    user_id: scope.owner().cloned(),
                    frames,
                    ts: now,
                    created_at: now,
                };
                state.chat_streams.insert(thread_id.clone(), record.clone());
                Ok(record)
            }
        }
    }

    async fn get(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
    ) -> DomainResult<Option<ChatStreamRecord>> {
        let state = self.shared.lock();
        Ok(state
            .chat_streams
            .get(thread_id)
            .filter(|r| scope.can_see(r.user_id.as_ref()))
            .cloned())
    }

    async fn list_recent(
        &self,
        scope: &UserScope,
        limit: Limit,
    ) -> DomainResult<Vec<ChatStreamSummary>> {
        let state = self.shared.lock();
        let mut rows: Vec<&ChatStreamRecord> = state
            .chat_streams
            .values()
            .filter(|r| scope.can_see(r.user_id.as_ref()))
            .collect();
        rows.sort_by(|a, b| b.ts.cmp(&a.ts).then_with(|| a.thread_id.cmp(&b.thread_id)));
        Ok(rows
            .into_iter()
            .take(limit.as_usize())
            .map(|r| ChatStreamSummary {
                thread_id: r.thread_id.clone(),
                ts: r.ts,
                frame_count: r.frames.len() as u64,
            })
            .collect())
    }

    async fn delete(&self, scope: &UserScope, thread_id: &ThreadId) -> DomainResult<bool> {
        let mut state = self.shared.lock();
        let visible = state
            .chat_streams
            .get(thread_id)
            .is_some_and(|r| scope.can_see(r.user_id.as_ref()));
        if visible {
            state.chat_streams.remove(thread_id);
        }
        Ok(visible)
    }

    async fn purge_older_than(&self, cutoff: DateTime<Utc>, batch: Limit) -> DomainResult<u64> {
        let mut state = self.shared.lock();
        let mut old: Vec<(DateTime<Utc>, ThreadId)> = state
            .chat_streams
            .values()
            .filter(|r| r.ts < cutoff)
            .map(|r| (r.ts, r.thread_id.clone()))
            .collect();
        old.sort();
        old.truncate(batch.as_usize());
        for (_, thread_id) in &old {
            state.chat_streams.remove(thread_id);
        }
        Ok(old.len() as u64)
    }
}
