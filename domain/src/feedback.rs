//! Per-run feedback (spec `history-and-streams.md` §4).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};
use crate::ids::{FeedbackId, RunId, ThreadId, UserId};
use crate::paging::{Limit, Page};
use crate::scope::UserScope;

/// A rating: thumbs up (`1`) or down (`-1`), nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub enum Rating {
    /// -1.
    Negative,
    /// +1.
    Positive,
}

impl Rating {
    /// Parses `1` or `-1`.
    pub fn new(value: i64) -> DomainResult<Self> {
        match value {
            1 => Ok(Self::Positive),
            -1 => Ok(Self::Negative),
            other => Err(DomainError::invalid(
                "rating",
                format!("is {other}; it must be 1 or -1"),
            )),
        }
    }

    /// The number.
    pub fn value(self) -> i64 {
        match self {
            Self::Positive => 1,
            Self::Negative => -1,
        }
    }
}

impl TryFrom<i64> for Rating {
    type Error = DomainError;
    fn try_from(v: i64) -> DomainResult<Self> {
        Self::new(v)
    }
}

impl From<Rating> for i64 {
    fn from(r: Rating) -> i64 {
        r.value()
    }
}

/// A feedback row. One per (thread, run, user); the anonymous user is `None` (stored as
/// the empty string so the unique key holds on every database).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// The id.
    pub id: FeedbackId,
    /// The thread.
    pub thread_id: ThreadId,
    /// The run.
    pub run_id: RunId,
    /// The author; `None` for anonymous.
    pub user_id: Option<UserId>,
    /// The message it refers to, if message-scoped.
    pub message_id: Option<String>,
    /// The rating.
    pub rating: Rating,
    /// A comment.
    pub comment: Option<String>,
    /// Created once (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
}

/// The longest comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 10_000;

/// Feedback to create or upsert; the author comes from the scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewFeedback {
    /// The thread.
    pub thread_id: ThreadId,
    /// The run.
    pub run_id: RunId,
    /// The rating.
    pub rating: Rating,
    /// A comment.
    pub comment: Option<String>,
    /// The message, if message-scoped (kept by upserts).
    pub message_id: Option<String>,
}

impl NewFeedback {
    /// Checks the free-text fields.
    pub fn validate(&self) -> DomainResult<()> {
        if let Some(c) = &self.comment {
            if c.chars().count() > MAX_COMMENT_CHARS {
                return Err(DomainError::invalid(
                    "comment",
                    format!("is longer than {MAX_COMMENT_CHARS} characters"),
                ));
            }
            if c.contains('\0') {
                return Err(DomainError::invalid("comment", "contains a NUL character"));
            }
        }
        crate::thread::validate_short_text("message_id", self.message_id.as_deref(), 255)
    }
}

/// One feedback per run, by the rule every store applies to grouped listings: the latest
/// `updated_at` wins, ties broken by the higher id.
pub fn latest_per_run(rows: impl IntoIterator<Item = Feedback>) -> HashMap<RunId, Feedback> {
    let mut out: HashMap<RunId, Feedback> = HashMap::new();
    for f in rows {
        let replace = out
            .get(&f.run_id)
            .is_none_or(|best| (f.updated_at, f.id) > (best.updated_at, best.id));
        if replace {
            out.insert(f.run_id.clone(), f);
        }
    }
    out
}

/// Counts for one run, over every user's rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackStats {
    /// The run.
    pub run_id: RunId,
    /// All rows.
    pub total: u64,
    /// Rating 1.
    pub positive: u64,
    /// Rating -1.
    pub negative: u64,
}

/// The feedback port.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait FeedbackRepository: Send + Sync {
    /// Creates a row; an existing row for (thread, run, user) is a conflict and stays as is.
    async fn create(&self, scope: &UserScope, feedback: NewFeedback) -> DomainResult<Feedback>;

    /// One atomic statement: insert, or update rating, comment and `updated_at` of the
    /// existing row (id, `created_at` and `message_id` kept).
    async fn upsert(&self, scope: &UserScope, feedback: NewFeedback) -> DomainResult<Feedback>;

    /// The row, or `None` when missing or another user's.
    async fn get(&self, scope: &UserScope, id: FeedbackId) -> DomainResult<Option<Feedback>>;

    /// Rows of one run, ascending by `created_at`.
    async fn list_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        limit: Limit,
    ) -> DomainResult<Page<Feedback>>;

    /// Rows of one thread, ascending by `created_at`.
    async fn list_by_thread(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        limit: Limit,
    ) -> DomainResult<Page<Feedback>>;

    /// One row per run of the thread; unscoped with several users, the latest update wins.
    async fn list_by_thread_grouped(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
    ) -> DomainResult<HashMap<RunId, Feedback>>;

    /// Rows of the given runs of the thread (latest update per run); `[]` returns `{}`
    /// without a query.
    async fn list_by_run_ids(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_ids: Vec<RunId>,
    ) -> DomainResult<HashMap<RunId, Feedback>>;

    /// Deletes the row; false when missing or another user's.
    async fn delete(&self, scope: &UserScope, id: FeedbackId) -> DomainResult<bool>;

    /// Deletes the scope's own row for the run; false when none.
    async fn delete_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
    ) -> DomainResult<bool>;

    /// Counts over every user's rows of the run.
    async fn stats(&self, thread_id: &ThreadId, run_id: &RunId) -> DomainResult<FeedbackStats>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rating_is_plus_or_minus_one() {
        assert_eq!(Rating::new(1).unwrap(), Rating::Positive);
        assert_eq!(Rating::new(-1).unwrap().value(), -1);
        assert!(Rating::new(0).is_err());
        assert!(Rating::new(5).is_err());
        assert!(serde_json::from_str::<Rating>("2").is_err());
        assert_eq!(serde_json::to_string(&Rating::Negative).unwrap(), "-1");
    }

    #[test]
    fn latest_per_run_keeps_the_newest_then_the_highest_id() {
        let at = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        let row = |run: &str, id: u128, updated: i64| Feedback {
            id: FeedbackId::from_uuid(uuid::Uuid::from_u128(id)),
            thread_id: ThreadId::parse("t").unwrap(),
            run_id: RunId::parse(run).unwrap(),
            user_id: None,
            message_id: None,
            rating: Rating::Positive,
            comment: None,
            created_at: at(0),
            updated_at: at(updated),
        };
        let got = latest_per_run([
            row("r1", 1, 10),
            row("r1", 2, 30),
            row("r1", 3, 20),
            row("r2", 5, 10),
            row("r2", 4, 10),
        ]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[&RunId::parse("r1").unwrap()].id.as_uuid().as_u128(), 2);
        assert_eq!(got[&RunId::parse("r2").unwrap()].id.as_uuid().as_u128(), 5);
    }
}
