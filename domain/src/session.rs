//! Sessions: a user's container of threads, with the checkpoint policy that governs them.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};
use crate::ids::{SessionId, UserId};
use crate::json::{JsonObject, check_json_object, merge_patch};
use crate::paging::{OffsetPage, Page};
use crate::scope::UserScope;

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// In use.
    Active,
    /// Kept but no longer in use.
    Archived,
    /// Finished; kept for reading.
    Closed,
}

impl SessionStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Archived => "archived",
            Self::Closed => "closed",
        }
    }
}

impl std::str::FromStr for SessionStatus {
    type Err = DomainError;
    fn from_str(s: &str) -> DomainResult<Self> {
        match s {
            "active" => Ok(Self::Active),
            "archived" => Ok(Self::Archived),
            "closed" => Ok(Self::Closed),
            other => Err(DomainError::invalid(
                "status",
                format!("unknown session status {other:?}; use active, archived or closed"),
            )),
        }
    }
}

/// The session-level checkpoint policy, applied to every thread of the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointPolicy {
    /// Keep at most this many checkpoints per thread and namespace (newest kept).
    pub max_checkpoints_per_thread: Option<u32>,
    /// Remove checkpoints older than this (by their id's time order, measured on `ts`).
    pub retention_seconds: Option<i64>,
    /// Checkpoints pinned by a snapshot are never removed by the policy.
    pub exempt_snapshots: bool,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            max_checkpoints_per_thread: None,
            retention_seconds: None,
            exempt_snapshots: true,
        }
    }
}

impl CheckpointPolicy {
    /// A validated policy: a limit of at least 1, a positive retention.
    pub fn new(
        max_checkpoints_per_thread: Option<u32>,
        retention_seconds: Option<i64>,
        exempt_snapshots: bool,
    ) -> DomainResult<Self> {
        if max_checkpoints_per_thread == Some(0) {
            return Err(DomainError::invalid(
                "max_checkpoints_per_thread",
                "must be at least 1 (a thread keeps its latest checkpoint)",
            ));
        }
        if let Some(r) = retention_seconds
            && r <= 0
        {
            return Err(DomainError::invalid(
                "retention_seconds",
                "must be positive",
            ));
        }
        Ok(Self {
            max_checkpoints_per_thread,
            retention_seconds,
            exempt_snapshots,
        })
    }

    /// The retention as a duration.
    pub fn retention(&self) -> Option<Duration> {
        self.retention_seconds.map(Duration::seconds)
    }

    /// Re-checks a policy whose fields are public and may have bypassed [`CheckpointPolicy::new`]
    /// (every store does before writing one).
    pub fn validate(&self) -> DomainResult<()> {
        Self::new(
            self.max_checkpoints_per_thread,
            self.retention_seconds,
            self.exempt_snapshots,
        )
        .map(|_| ())
    }

    /// True when the policy removes nothing.
    pub fn is_unbounded(&self) -> bool {
        self.max_checkpoints_per_thread.is_none() && self.retention_seconds.is_none()
    }
}

/// A session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The id.
    pub id: SessionId,
    /// The owner; `None` only for legacy or administrative data.
    pub owner: Option<UserId>,
    /// A display title.
    pub title: Option<String>,
    /// Free-form metadata.
    pub metadata: JsonObject,
    /// Lifecycle status.
    pub status: SessionStatus,
    /// The checkpoint policy for its threads.
    pub checkpoint_policy: CheckpointPolicy,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
}

impl Session {
    /// The rules every store applies before creating a session: the title
    /// ([`validate_title`]), the policy ([`CheckpointPolicy::validate`]) and no U+0000 in the
    /// metadata.
    pub fn validate_for_write(&self) -> DomainResult<()> {
        if let Some(t) = &self.title {
            validate_title(t)?;
        }
        self.checkpoint_policy.validate()?;
        check_json_object("metadata", &self.metadata)
    }
}

/// The longest session title, in characters.
pub const MAX_TITLE_CHARS: usize = 512;

/// Checks a session title.
pub fn validate_title(title: &str) -> DomainResult<()> {
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(DomainError::invalid(
            "title",
            format!("is longer than {MAX_TITLE_CHARS} characters"),
        ));
    }
    if title.contains('\0') {
        return Err(DomainError::invalid("title", "contains a NUL character"));
    }
    Ok(())
}

/// The changes `update` applies; `None` fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionUpdate {
    /// New title (`Some(None)` clears it).
    pub title: Option<Option<String>>,
    /// Keys to merge into the metadata (shallow; a null value stores null).
    pub metadata_patch: Option<JsonObject>,
    /// New status.
    pub status: Option<SessionStatus>,
    /// New policy.
    pub checkpoint_policy: Option<CheckpointPolicy>,
}

impl SessionUpdate {
    /// The rules every store applies before an update: the new title and policy as on create,
    /// no U+0000 in the metadata patch.
    pub fn validate(&self) -> DomainResult<()> {
        if let Some(Some(t)) = &self.title {
            validate_title(t)?;
        }
        if let Some(p) = &self.checkpoint_policy {
            p.validate()?;
        }
        if let Some(patch) = &self.metadata_patch {
            check_json_object("metadata_patch", patch)?;
        }
        Ok(())
    }

    /// Applies the update to `session` as every store does: set fields replace, the metadata
    /// patch merges shallowly ([`merge_patch`]), and `updated_at` becomes `now`.
    pub fn apply_to(self, session: &mut Session, now: DateTime<Utc>) {
        if let Some(title) = self.title {
            session.title = title;
        }
        if let Some(patch) = self.metadata_patch {
            merge_patch(&mut session.metadata, patch);
        }
        if let Some(status) = self.status {
            session.status = status;
        }
        if let Some(policy) = self.checkpoint_policy {
            session.checkpoint_policy = policy;
        }
        session.updated_at = now;
    }
}

/// `list` filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionQuery {
    /// Only sessions in this status.
    pub status: Option<SessionStatus>,
    /// Page; ordered by `updated_at` descending, then id descending.
    pub page: OffsetPage,
}

/// The session port.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait SessionRepository: Send + Sync {
    /// Creates the session, owned by the scope's user. An existing id is a conflict.
    async fn create(&self, scope: &UserScope, session: Session) -> DomainResult<Session>;

    /// The session, or `None` when missing or another user's.
    async fn get(&self, scope: &UserScope, id: &SessionId) -> DomainResult<Option<Session>>;

    /// Applies the update atomically and returns the new state; missing -> not found.
    async fn update(
        &self,
        scope: &UserScope,
        id: &SessionId,
        update: SessionUpdate,
    ) -> DomainResult<Session>;

    /// Sessions visible to the scope.
    async fn list(&self, scope: &UserScope, query: &SessionQuery) -> DomainResult<Page<Session>>;

    /// Deletes the session row; its threads are detached (their `session_id` cleared) by the
    /// store. Returns false when there was nothing to delete.
    async fn delete(&self, scope: &UserScope, id: &SessionId) -> DomainResult<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_rejects_zero_limit_and_non_positive_retention() {
        assert!(CheckpointPolicy::new(Some(0), None, true).is_err());
        assert!(CheckpointPolicy::new(None, Some(0), true).is_err());
        assert!(CheckpointPolicy::new(None, Some(-5), true).is_err());
        let p = CheckpointPolicy::new(Some(10), Some(3600), false).unwrap();
        assert_eq!(p.retention(), Some(Duration::hours(1)));
        assert!(!p.is_unbounded());
        assert!(CheckpointPolicy::default().is_unbounded());
        assert!(CheckpointPolicy::default().exempt_snapshots);
    }

    fn session() -> Session {
        let at = DateTime::from_timestamp(0, 0).unwrap();
        Session {
            id: SessionId::parse("s").unwrap(),
            owner: None,
            title: Some("t".into()),
            metadata: JsonObject::new(),
            status: SessionStatus::Active,
            checkpoint_policy: CheckpointPolicy::default(),
            created_at: at,
            updated_at: at,
        }
    }

    fn field(r: DomainResult<()>) -> &'static str {
        match r {
            Err(DomainError::InvalidInput { field, .. }) => field,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn write_rules_check_title_policy_and_metadata() {
        assert!(session().validate_for_write().is_ok());
        let mut s = session();
        s.title = Some("x".repeat(MAX_TITLE_CHARS + 1));
        assert_eq!(field(s.validate_for_write()), "title");
        let mut s = session();
        s.checkpoint_policy.max_checkpoints_per_thread = Some(0);
        assert_eq!(field(s.validate_for_write()), "max_checkpoints_per_thread");
        let mut s = session();
        s.metadata.insert("k".into(), "v\u{0}".into());
        assert_eq!(field(s.validate_for_write()), "metadata");

        assert!(SessionUpdate::default().validate().is_ok());
        let bad_title = SessionUpdate {
            title: Some(Some("a\u{0}".into())),
            ..SessionUpdate::default()
        };
        assert_eq!(field(bad_title.validate()), "title");
        let cleared_title = SessionUpdate {
            title: Some(None),
            ..SessionUpdate::default()
        };
        assert!(cleared_title.validate().is_ok());
        let bad_policy = SessionUpdate {
            checkpoint_policy: Some(CheckpointPolicy {
                retention_seconds: Some(-1),
                ..CheckpointPolicy::default()
            }),
            ..SessionUpdate::default()
        };
        assert_eq!(field(bad_policy.validate()), "retention_seconds");
        let mut patch = JsonObject::new();
        patch.insert("k\u{0}".into(), 1.into());
        let bad_patch = SessionUpdate {
            metadata_patch: Some(patch),
            ..SessionUpdate::default()
        };
        assert_eq!(field(bad_patch.validate()), "metadata_patch");
    }

    #[test]
    fn update_sets_given_fields_merges_metadata_and_stamps_the_time() {
        let mut s = session();
        s.metadata.insert("keep".into(), 1.into());
        s.metadata.insert("replace".into(), 1.into());
        let mut patch = JsonObject::new();
        patch.insert("replace".into(), 2.into());
        let later = DateTime::from_timestamp(60, 0).unwrap();
        SessionUpdate {
            title: Some(None),
            metadata_patch: Some(patch),
            status: Some(SessionStatus::Archived),
            checkpoint_policy: None,
        }
        .apply_to(&mut s, later);
        assert_eq!(s.title, None);
        assert_eq!(s.status, SessionStatus::Archived);
        assert_eq!(s.checkpoint_policy, CheckpointPolicy::default());
        assert_eq!(s.metadata.get("keep"), Some(&1.into()));
        assert_eq!(s.metadata.get("replace"), Some(&2.into()));
        assert_eq!(s.updated_at, later);
        assert_eq!(s.created_at, DateTime::from_timestamp(0, 0).unwrap());
    }

    #[test]
    fn status_round_trips_text() {
        for s in [
            SessionStatus::Active,
            SessionStatus::Archived,
            SessionStatus::Closed,
        ] {
            assert_eq!(s.as_str().parse::<SessionStatus>().unwrap(), s);
        }
        assert!("open".parse::<SessionStatus>().is_err());
    }

    #[test]
    fn titles_are_bounded() {
        assert!(validate_title("ok").is_ok());
        assert!(validate_title(&"x".repeat(513)).is_err());
        assert!(validate_title("a\0b").is_err());
    }
}
