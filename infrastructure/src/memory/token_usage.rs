//! Token usage in memory.
//!
//! Rules shared with the SQL stores: `record` re-checks the counts (the fields are public, so a
//! record may bypass `TokenUsage::new`), truncates `recorded_at` to microseconds and refuses a
//! duplicate id as a conflict; `stats` filters (`from` inclusive, `to` exclusive), groups, and
//! orders groups by key with `None` first; `Total` is always exactly one row. A sum that does
//! not fit 64 bits is a storage error rather than a wrapped number.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::SubsecRound;
use waymark_domain::token_usage::{
    TokenGrouping, TokenStats, TokenUsage, TokenUsageFilter, TokenUsageRepository,
};
use waymark_domain::{DomainError, DomainResult};

use super::Shared;

/// The in-memory [`TokenUsageRepository`].
pub struct MemoryTokenUsageRepository {
    shared: Arc<Shared>,
}

impl MemoryTokenUsageRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

fn matches(u: &TokenUsage, f: &TokenUsageFilter) -> bool {
    f.session_id
        .as_ref()
        .is_none_or(|s| u.session_id.as_ref() == Some(s))
        && f.thread_id
            .as_ref()
            .is_none_or(|t| u.thread_id.as_ref() == Some(t))
        && f.run_id
            .as_ref()
            .is_none_or(|r| u.run_id.as_ref() == Some(r))
        && f.model.as_ref().is_none_or(|m| &u.model == m)
        && f.user_id
            .as_ref()
            .is_none_or(|o| u.user_id.as_ref() == Some(o))
        && f.from.is_none_or(|from| u.recorded_at >= from)
        && f.to.is_none_or(|to| u.recorded_at < to)
}

fn key_of(u: &TokenUsage, grouping: TokenGrouping) -> Option<String> {
    match grouping {
        TokenGrouping::Total => None,
        TokenGrouping::Model => Some(u.model.to_string()),
        TokenGrouping::Session => u.session_id.as_ref().map(ToString::to_string),
        TokenGrouping::Thread => u.thread_id.as_ref().map(ToString::to_string),
    }
}

fn add(total: &mut u64, n: u64) -> DomainResult<()> {
    *total = total.checked_add(n).ok_or_else(|| {
        DomainError::storage("token_usage.stats", "a token sum overflows 64 bits")
    })?;
    Ok(())
}

#[async_trait]
impl TokenUsageRepository for MemoryTokenUsageRepository {
    async fn record(&self, usage: TokenUsage) -> DomainResult<TokenUsage> {
        usage.validate()?;
        let stored = TokenUsage {
            recorded_at: usage.recorded_at.trunc_subsecs(6),
            ..usage
        };
        let mut state = self.shared.lock();
        if state.token_usage.contains_key(&stored.id) {
            return Err(DomainError::conflict(
                "token_usage",
                format!("record {} already exists", stored.id),
            ));
        }
        state.token_usage.insert(stored.id, stored.clone());
        Ok(stored)
    }

    async fn stats(
        &self,
        filter: &TokenUsageFilter,
        grouping: TokenGrouping,
    ) -> DomainResult<Vec<TokenStats>> {
        let state = self.shared.lock();
        let mut groups: BTreeMap<Option<String>, TokenStats> = BTreeMap::new();
        if grouping == TokenGrouping::Total {
            groups.insert(None, empty(None));
        }
        for u in state.token_usage.values().filter(|u| matches(u, filter)) {
            let key = key_of(u, grouping);
            let g = groups.entry(key.clone()).or_insert_with(|| empty(key));
            g.records += 1;
            add(&mut g.prompt_tokens, u.prompt_tokens)?;
            add(&mut g.completion_tokens, u.completion_tokens)?;
            add(&mut g.total_tokens, u.total_tokens)?;
        }
        Ok(groups.into_values().collect())
    }
}

fn empty(key: Option<String>) -> TokenStats {
    TokenStats {
        key,
        records: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
        total_tokens: 0,
    }
}
