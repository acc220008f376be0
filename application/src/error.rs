//! The one error type of the application layer.
//!
//! Every service returns [`ApplicationError`]: the domain's classification
//! ([`DomainError`]: not found, conflict, invalid input, storage) passes through unchanged in
//! [`ApplicationError::Domain`], and the outcomes only a service can produce (persistence
//! disabled, a full chat-stream buffer or buffer budget, a denied access check, a stalled history scan, lost
//! journal events) get their own variants so an HTTP layer can map each to its own status.

use waymark_domain::{DomainError, ThreadId};

/// What went wrong in a service.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApplicationError {
    /// A port refused or failed; the classification is the store's.
    #[error(transparent)]
    Domain(#[from] DomainError),

    /// The feature is switched off in this deployment (chat-stream persistence, feedback).
    /// Distinct from a storage failure so callers can answer "not available" (spec §5.7).
    #[error("{feature} is disabled in this deployment")]
    Disabled {
        /// Which feature, e.g. `"chat-stream persistence"`.
        feature: &'static str,
    },

    /// A chat-stream buffer reached its cap and the forced persist failed, so the frame was
    /// refused (back-pressure, spec §5.2). Nothing was buffered.
    #[error(
        "chat-stream buffer of thread {thread_id} is full ({frames} frames, {bytes} bytes) and could not be persisted: {source}"
    )]
    BufferFull {
        /// The thread whose buffer is full.
        thread_id: ThreadId,
        /// Frames held.
        frames: usize,
        /// Bytes held.
        bytes: usize,
        /// Why the forced persist failed.
        source: DomainError,
    },

    /// The chat-stream buffers of all threads together hold the configured budget, so the
    /// frame was refused (back-pressure across threads). Nothing was buffered or written
    /// for it; the caller may retry once other streams have persisted.
    #[error(
        "chat-stream buffers hold {buffered} of the server's {budget} bytes; the frame of thread {thread_id} was not buffered, retry later"
    )]
    BufferBudgetExhausted {
        /// The thread whose frame was refused.
        thread_id: ThreadId,
        /// Bytes buffered across all threads.
        buffered: usize,
        /// The budget.
        budget: usize,
    },

    /// The thread access check (spec §6.6) denied the caller. Another user's thread, or an
    /// owner-less one under a user scope, or a missing thread for a mutation.
    #[error("access to thread {thread_id} denied")]
    AccessDenied {
        /// The thread.
        thread_id: ThreadId,
    },

    /// A forward scan of the event store received a page whose last seq did not advance past
    /// the cursor (spec §1.4): a storage fault, raised instead of looping forever.
    #[error(
        "history scan of thread {thread_id} stalled: page after seq {cursor} ended at seq {last_seq}"
    )]
    StalledScan {
        /// The thread being scanned.
        thread_id: ThreadId,
        /// The cursor the page was requested after.
        cursor: i64,
        /// The last seq the page held.
        last_seq: i64,
    },

    /// A channel value could not be decoded or encoded by the host's [`crate::MessageCodec`].
    #[error("message codec failed: {0}")]
    Codec(String),

    /// The journal's final drain gave up: `lost` events could not be written (spec §2.3).
    #[error("{lost} run events could not be written: {source}")]
    EventsLost {
        /// How many events were lost.
        lost: usize,
        /// The last write error.
        source: DomainError,
    },

    /// The journal's owning task is gone (it finished or panicked), so the event was not taken.
    #[error("the run journal is closed")]
    JournalClosed,
}

impl ApplicationError {
    /// True when the addressed entity does not exist (a store's `NotFound`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Domain(e) if e.is_not_found())
    }

    /// True for a conflict with existing state.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Domain(e) if e.is_conflict())
    }

    /// True when the caller's input was refused (nothing was written).
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::Domain(e) if e.is_invalid_input())
    }

    /// True for a backend failure, possibly transient.
    pub fn is_storage(&self) -> bool {
        matches!(self, Self::Domain(e) if e.is_storage())
            || matches!(self, Self::StalledScan { .. } | Self::EventsLost { .. })
    }

    /// True when the feature is disabled.
    pub fn is_disabled(&self) -> bool {
        matches!(self, Self::Disabled { .. })
    }

    /// True when the access check denied the caller.
    pub fn is_access_denied(&self) -> bool {
        matches!(self, Self::AccessDenied { .. })
    }

    /// The wrapped domain error, if this is one.
    pub fn as_domain(&self) -> Option<&DomainError> {
        match self {
            Self::Domain(e) => Some(e),
            _ => None,
        }
    }

    /// `InvalidInput` for `field`, as a service-level shortcut.
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Domain(DomainError::invalid(field, reason))
    }

    /// `NotFound` for `entity`.
    pub(crate) fn not_found(entity: &'static str, id: impl std::fmt::Display) -> Self {
        Self::Domain(DomainError::not_found(entity, id))
    }
}

/// The result type of every service.
pub type AppResult<T> = Result<T, ApplicationError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_wrapped_domain_error() {
        let nf = ApplicationError::from(DomainError::not_found("thread", "t"));
        assert!(nf.is_not_found() && !nf.is_storage() && !nf.is_conflict());
        let st = ApplicationError::from(DomainError::storage("op", "down"));
        assert!(st.is_storage() && !st.is_invalid_input());
        let d = ApplicationError::Disabled {
            feature: "chat-stream persistence",
        };
        assert!(d.is_disabled() && !d.is_storage() && d.as_domain().is_none());
        let denied = ApplicationError::AccessDenied {
            thread_id: ThreadId::parse("t").unwrap(),
        };
        assert!(denied.is_access_denied() && !denied.is_not_found());
        let stalled = ApplicationError::StalledScan {
            thread_id: ThreadId::parse("t").unwrap(),
            cursor: 5,
            last_seq: 5,
        };
        assert!(stalled.is_storage());
        assert_eq!(
            stalled.to_string(),
            "history scan of thread t stalled: page after seq 5 ended at seq 5"
        );
    }
}
