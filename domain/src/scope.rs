//! User scoping (spec `history-and-streams.md` §0.2).

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};
use crate::ids::UserId;

/// Whose data an operation may see or change.
///
/// There is deliberately no "current user" variant that could silently be empty: the caller
/// resolves its request context with [`UserScope::current`], which fails when no user is set
/// instead of falling back to everyone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UserScope {
    /// Only rows owned by this user; writes are stamped with it.
    User(UserId),
    /// No owner predicate (migrations, CLIs, administrative code). Writes store no owner.
    Unscoped,
}

impl UserScope {
    /// The scope of a request context: its user, or [`DomainError::MissingUser`].
    pub fn current(user: Option<UserId>) -> DomainResult<Self> {
        user.map(Self::User).ok_or(DomainError::MissingUser)
    }

    /// The owner that writes under this scope record.
    pub fn owner(&self) -> Option<&UserId> {
        match self {
            Self::User(u) => Some(u),
            Self::Unscoped => None,
        }
    }

    /// Whether a row owned by `owner` is visible under this scope. Rows without an owner
    /// (legacy data) are visible only to `Unscoped` callers (Waymark rule, §0.2).
    pub fn can_see(&self, owner: Option<&UserId>) -> bool {
        match self {
            Self::Unscoped => true,
            Self::User(u) => owner == Some(u),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_without_user_fails_instead_of_widening() {
        assert_eq!(UserScope::current(None), Err(DomainError::MissingUser));
        let a = UserId::parse("a").unwrap();
        assert_eq!(
            UserScope::current(Some(a.clone())).unwrap(),
            UserScope::User(a)
        );
    }

    #[test]
    fn null_owner_rows_are_visible_only_unscoped() {
        let a = UserId::parse("a").unwrap();
        let b = UserId::parse("b").unwrap();
        let scope = UserScope::User(a.clone());
        assert!(scope.can_see(Some(&a)));
        assert!(!scope.can_see(Some(&b)));
        assert!(!scope.can_see(None));
        assert!(UserScope::Unscoped.can_see(None));
        assert!(UserScope::Unscoped.can_see(Some(&b)));
    }
}
