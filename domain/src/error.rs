//! The one error type of the domain, shared by every port.
//!
//! Stores classify their failures into these variants so that callers (the application
//! layer, the HTTP service) can react without knowing which backend answered: a missing row is
//! [`DomainError::NotFound`] on every backend, a unique-key violation is
//! [`DomainError::Conflict`], and so on.

use std::fmt;

/// What went wrong, classified so callers can branch on the kind rather than on text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The addressed entity does not exist (or is owned by another user, which reads the same).
    #[error("{entity} not found: {id}")]
    NotFound {
        /// The kind of entity, e.g. `"thread"`.
        entity: &'static str,
        /// The id that was looked up.
        id: String,
    },
    /// The write collides with existing state (a duplicate key, a stale version).
    #[error("conflict on {entity}: {message}")]
    Conflict {
        /// The kind of entity, e.g. `"feedback"`.
        entity: &'static str,
        /// What collided.
        message: String,
    },
    /// The caller passed a value the operation does not accept. Nothing was written.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field or parameter at fault, e.g. `"thread_id"`.
        field: &'static str,
        /// Why it was refused, in words a caller can act on.
        reason: String,
    },
    /// A user-scoped operation was called without a user (spec: `Current` with no user
    /// context fails instead of falling back to "everyone").
    #[error("no user in the current context; a user-scoped operation needs one")]
    MissingUser,
    /// The backend failed (I/O, lost connection, a corrupt row). The message says where.
    #[error("storage failure: {0}")]
    Storage(StorageFailure),
}

/// Details of a storage failure. Kept as text so the domain does not depend on driver
/// error types; the infrastructure crate formats its driver's error into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageFailure {
    /// Which operation failed, e.g. `"checkpoints.put"`.
    pub operation: String,
    /// The backend's own description.
    pub message: String,
}

impl fmt::Display for StorageFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.operation, self.message)
    }
}

impl DomainError {
    /// `NotFound` for `entity` with the given id.
    pub fn not_found(entity: &'static str, id: impl fmt::Display) -> Self {
        Self::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    /// `Conflict` for `entity`.
    pub fn conflict(entity: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            entity,
            message: message.into(),
        }
    }

    /// `InvalidInput` naming the field and the reason.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// `Storage` failure of `operation`.
    pub fn storage(operation: impl Into<String>, message: impl fmt::Display) -> Self {
        Self::Storage(StorageFailure {
            operation: operation.into(),
            message: message.to_string(),
        })
    }

    /// True for [`DomainError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// True for [`DomainError::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// True for [`DomainError::InvalidInput`] and [`DomainError::MissingUser`]: the caller's
    /// fault, never retried.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::InvalidInput { .. } | Self::MissingUser)
    }

    /// True for [`DomainError::Storage`]: the backend's fault, possibly transient.
    pub fn is_storage(&self) -> bool {
        matches!(self, Self::Storage(_))
    }
}

/// The result type of every port.
pub type DomainResult<T> = Result<T, DomainError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_helpers_match_their_variant_only() {
        let nf = DomainError::not_found("thread", "t-1");
        assert!(nf.is_not_found() && !nf.is_conflict() && !nf.is_invalid_input());
        let c = DomainError::conflict("feedback", "one per run and user");
        assert!(c.is_conflict() && !c.is_not_found());
        let i = DomainError::invalid("rating", "must be 1 or -1");
        assert!(i.is_invalid_input() && !i.is_storage());
        assert!(DomainError::MissingUser.is_invalid_input());
        let s = DomainError::storage("checkpoints.put", "disk full");
        assert!(s.is_storage());
        assert_eq!(s.to_string(), "storage failure: checkpoints.put: disk full");
        assert_eq!(i.to_string(), "invalid rating: must be 1 or -1");
        assert_eq!(nf.to_string(), "thread not found: t-1");
    }
}
