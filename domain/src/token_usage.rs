//! Token usage records and their statistics.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};
use crate::ids::{ModelName, RunId, SessionId, ThreadId, UsageRecordId, UserId};

/// Tokens one model call consumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// The id.
    pub id: UsageRecordId,
    /// The session, if known.
    pub session_id: Option<SessionId>,
    /// The thread, if known.
    pub thread_id: Option<ThreadId>,
    /// The run, if known.
    pub run_id: Option<RunId>,
    /// The owner.
    pub user_id: Option<UserId>,
    /// The model.
    pub model: ModelName,
    /// Prompt (input) tokens.
    pub prompt_tokens: u64,
    /// Completion (output) tokens.
    pub completion_tokens: u64,
    /// Total tokens (prompt + completion when the provider reports 0).
    pub total_tokens: u64,
    /// When it was recorded (UTC).
    pub recorded_at: DateTime<Utc>,
}

impl TokenUsage {
    /// The largest token count accepted per field of one record: 10^12, far above any model
    /// call, and small enough that the sums statistics report stay exact in a signed 64-bit
    /// column over more than 9 million records of this size (a larger bound let 5 records
    /// overflow every later `SUM`).
    pub const MAX_COUNT: u64 = 1_000_000_000_000;

    /// A record; a reported total of 0 becomes prompt + completion (spec §2.6). Counts are
    /// bounded to what a signed 64-bit column holds.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        session_id: Option<SessionId>,
        thread_id: Option<ThreadId>,
        run_id: Option<RunId>,
        user_id: Option<UserId>,
        model: ModelName,
        prompt_tokens: u64,
        completion_tokens: u64,
        reported_total: u64,
        recorded_at: DateTime<Utc>,
    ) -> DomainResult<Self> {
        check_counts(prompt_tokens, completion_tokens, reported_total)?;
        let total_tokens = if reported_total == 0 {
            prompt_tokens + completion_tokens
        } else {
            reported_total
        };
        // The derived total obeys the same bound as a reported one.
        check_counts(prompt_tokens, completion_tokens, total_tokens)?;
        Ok(Self {
            id: UsageRecordId::new_random(),
            session_id,
            thread_id,
            run_id,
            user_id,
            model,
            prompt_tokens,
            completion_tokens,
            total_tokens,
            recorded_at,
        })
    }

    /// The rule every store applies before writing a record (its fields are public and may
    /// have bypassed [`TokenUsage::new`]): no count above [`TokenUsage::MAX_COUNT`].
    pub fn validate(&self) -> DomainResult<()> {
        check_counts(
            self.prompt_tokens,
            self.completion_tokens,
            self.total_tokens,
        )
    }
}

/// Refuses a count above [`TokenUsage::MAX_COUNT`], naming the field.
fn check_counts(prompt: u64, completion: u64, total: u64) -> DomainResult<()> {
    for (field, v) in [
        ("prompt_tokens", prompt),
        ("completion_tokens", completion),
        ("total_tokens", total),
    ] {
        if v > TokenUsage::MAX_COUNT {
            return Err(DomainError::invalid(
                field,
                format!("{v} is not a plausible token count"),
            ));
        }
    }
    Ok(())
}

/// Which records a statistics query covers. All conditions are ANDed; times are inclusive
/// `from`, exclusive `to`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsageFilter {
    /// Only this session.
    pub session_id: Option<SessionId>,
    /// Only this thread.
    pub thread_id: Option<ThreadId>,
    /// Only this run.
    pub run_id: Option<RunId>,
    /// Only this model.
    pub model: Option<ModelName>,
    /// Only this owner.
    pub user_id: Option<UserId>,
    /// Recorded at or after.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before.
    pub to: Option<DateTime<Utc>>,
}

/// How statistics are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenGrouping {
    /// One row for everything matched.
    Total,
    /// One row per model.
    Model,
    /// One row per session (records without a session form the `None` group).
    Session,
    /// One row per thread.
    Thread,
}

/// Sums and counts of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenStats {
    /// The group key (model, session or thread id); `None` for `Total` or for records
    /// without that key.
    pub key: Option<String>,
    /// Records.
    pub records: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
}

/// The token-usage port.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait TokenUsageRepository: Send + Sync {
    /// Stores a record.
    async fn record(&self, usage: TokenUsage) -> DomainResult<TokenUsage>;

    /// Aggregates matching records by the grouping, computed in the store. Groups come
    /// ordered by key (`None` first); `Total` always returns exactly one row.
    async fn stats(
        &self,
        filter: &TokenUsageFilter,
        grouping: TokenGrouping,
    ) -> DomainResult<Vec<TokenStats>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_total_becomes_the_sum_and_absurd_counts_are_refused() {
        let m = ModelName::parse("m").unwrap();
        let u = TokenUsage::new(None, None, None, None, m.clone(), 100, 50, 0, Utc::now()).unwrap();
        assert_eq!(u.total_tokens, 150);
        let u =
            TokenUsage::new(None, None, None, None, m.clone(), 100, 50, 170, Utc::now()).unwrap();
        assert_eq!(u.total_tokens, 170);
        assert!(TokenUsage::new(None, None, None, None, m, u64::MAX, 0, 0, Utc::now()).is_err());
    }

    #[test]
    fn validate_refuses_counts_set_past_the_constructor() {
        let m = ModelName::parse("m").unwrap();
        let mut u = TokenUsage::new(None, None, None, None, m, 1, 2, 0, Utc::now()).unwrap();
        assert!(u.validate().is_ok());
        u.completion_tokens = TokenUsage::MAX_COUNT;
        assert!(u.validate().is_ok());
        u.completion_tokens = TokenUsage::MAX_COUNT + 1;
        assert!(matches!(
            u.validate(),
            Err(DomainError::InvalidInput {
                field: "completion_tokens",
                ..
            })
        ));
        u.completion_tokens = 2;
        u.total_tokens = u64::MAX;
        assert!(matches!(
            u.validate(),
            Err(DomainError::InvalidInput {
                field: "total_tokens",
                ..
            })
        ));
    }
}
