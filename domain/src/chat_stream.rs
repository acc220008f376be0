//! Persisted chat streams (spec `history-and-streams.md` §5): the frames of streamed replies,
//! appended per thread when a turn finishes. The in-process buffer lives in the application
//! layer; this port is the durable record.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};
use crate::ids::{ThreadId, UserId};
use crate::paging::Limit;
use crate::scope::UserScope;

/// The persisted conversation of a thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatStreamRecord {
    /// The thread.
    pub thread_id: ThreadId,
    /// The owner.
    pub user_id: Option<UserId>,
    /// Every persisted frame, in order.
    pub frames: Vec<String>,
    /// Time of the last append (UTC).
    pub ts: DateTime<Utc>,
    /// Time of the first append (UTC).
    pub created_at: DateTime<Utc>,
}

/// A line of `list_recent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatStreamSummary {
    /// The thread.
    pub thread_id: ThreadId,
    /// Time of the last append.
    pub ts: DateTime<Utc>,
    /// How many frames are stored.
    pub frame_count: u64,
}

/// Checks frames before they are buffered or stored: none may be empty or hold a NUL.
pub fn validate_frames(frames: &[String]) -> DomainResult<()> {
    for (i, f) in frames.iter().enumerate() {
        if f.is_empty() {
            return Err(DomainError::invalid("frame", format!("frame {i} is empty")));
        }
        if f.contains('\0') {
            return Err(DomainError::invalid(
                "frame",
                format!("frame {i} contains a NUL character"),
            ));
        }
    }
    Ok(())
}

/// The chat-stream port.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait ChatStreamRepository: Send + Sync {
    /// Atomically creates the thread's record with these frames or appends them to it, and
    /// sets `ts` to now. Concurrent first appends yield one record holding both.
    async fn append(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        frames: Vec<String>,
    ) -> DomainResult<ChatStreamRecord>;

    /// The record, or `None`.
    async fn get(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
    ) -> DomainResult<Option<ChatStreamRecord>>;

    /// The most recently appended threads: `ts` descending, then thread id ascending.
    async fn list_recent(
        &self,
        scope: &UserScope,
        limit: Limit,
    ) -> DomainResult<Vec<ChatStreamSummary>>;

    /// Deletes the record; false when there was none.
    async fn delete(&self, scope: &UserScope, thread_id: &ThreadId) -> DomainResult<bool>;

    /// Deletes up to `batch` records last appended before `cutoff` (all users); returns how
    /// many were deleted.
    async fn purge_older_than(&self, cutoff: DateTime<Utc>, batch: Limit) -> DomainResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_or_nul_frames_are_refused() {
        assert!(validate_frames(&["a".into(), "b".into()]).is_ok());
        assert!(
            validate_frames(&["a".into(), String::new()])
                .unwrap_err()
                .is_invalid_input()
        );
        assert!(validate_frames(&["a\0".into()]).is_err());
    }
}
