//! Token usage over SQL: statistics are one `SUM`/`COUNT`/`GROUP BY` query; groups are put in
//! key order (`None` first, then by code point) after the query, as memory orders them.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::SubsecRound;
use waymark_domain::token_usage::{
    TokenGrouping, TokenStats, TokenUsage, TokenUsageFilter, TokenUsageRepository,
};
use waymark_domain::{DomainError, DomainResult};

use super::Shared;
use super::db::{self, Row, Sql, opt_text, text, u64_param};

/// The SQL [`TokenUsageRepository`].
pub(crate) struct SqlTokenUsageRepository {
    shared: Arc<Shared>,
}

impl SqlTokenUsageRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[async_trait]
impl TokenUsageRepository for SqlTokenUsageRepository {
    async fn record(&self, usage: TokenUsage) -> DomainResult<TokenUsage> {
        const OP: &str = "token_usage.record";
        usage.validate()?;
        let stored = TokenUsage {
            recorded_at: usage.recorded_at.trunc_subsecs(6),
            ..usage
        };
        let kind = self.shared.kind();
        let inserted = db::exec(
            &self.shared.db.conn,
            kind.stmt(
                "INSERT INTO waymark_token_usage (id, session_id, thread_id, run_id, user_id, model, \
                 prompt_tokens, completion_tokens, total_tokens, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
                vec![
                    text(stored.id.to_string()),
                    opt_text(stored.session_id.as_ref().map(|s| s.as_str())),
                    opt_text(stored.thread_id.as_ref().map(|s| s.as_str())),
                    opt_text(stored.run_id.as_ref().map(|s| s.as_str())),
                    opt_text(stored.user_id.as_ref().map(|s| s.as_str())),
                    text(stored.model.as_str()),
                    u64_param("prompt_tokens", stored.prompt_tokens)?,
                    u64_param("completion_tokens", stored.completion_tokens)?,
                    u64_param("total_tokens", stored.total_tokens)?,
                    kind.ts(stored.recorded_at),
                ],
            ),
            OP,
        )
        .await?;
        if inserted == 0 {
            return Err(DomainError::conflict(
                "token_usage",
                format!("record {} already exists", stored.id),
            ));
        }
        Ok(stored)
    }

    async fn stats(
        &self,
        filter: &TokenUsageFilter,
        grouping: TokenGrouping,
    ) -> DomainResult<Vec<TokenStats>> {
        const OP: &str = "token_usage.stats";
        let kind = self.shared.kind();
        let key = match grouping {
            TokenGrouping::Total => "CAST(NULL AS TEXT)",
            TokenGrouping::Model => "model",
            TokenGrouping::Session => "session_id",
            TokenGrouping::Thread => "thread_id",
        };
        let mut q = Sql::new(&format!(
            "SELECT {key} AS k, CAST(COUNT(*) AS BIGINT) AS records, \
             CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
             CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
             CAST(COALESCE(SUM(total_tokens), 0) AS BIGINT) AS total_tokens \
             FROM waymark_token_usage WHERE 1 = 1"
        ));
        for (col, v) in [
            ("session_id", filter.session_id.as_ref().map(|s| s.as_str())),
            ("thread_id", filter.thread_id.as_ref().map(|s| s.as_str())),
            ("run_id", filter.run_id.as_ref().map(|s| s.as_str())),
            ("model", filter.model.as_ref().map(|s| s.as_str())),
            ("user_id", filter.user_id.as_ref().map(|s| s.as_str())),
        ] {
            if let Some(v) = v {
                q.push(&format!(" AND {col} = ")).val(text(v));
            }
        }
        if let Some(from) = filter.from {
            q.push(" AND recorded_at >= ").val(kind.ts(from));
        }
        if let Some(to) = filter.to {
            q.push(" AND recorded_at < ").val(kind.ts(to));
        }
        if grouping != TokenGrouping::Total {
            q.push(&format!(" GROUP BY {key}"));
        }
        let rows = db::all(&self.shared.db.conn, q.build(kind), OP).await?;
        let mut groups: BTreeMap<Option<String>, TokenStats> = BTreeMap::new();
        for row in &rows {
            let r = Row::new(row, kind, OP);
            let key = r.opt_text("k")?;
            groups.insert(
                key.clone(),
                TokenStats {
                    key,
                    records: r.u64("records")?,
                    prompt_tokens: r.u64("prompt_tokens")?,
                    completion_tokens: r.u64("completion_tokens")?,
                    total_tokens: r.u64("total_tokens")?,
                },
            );
        }
        if grouping == TokenGrouping::Total && groups.is_empty() {
            groups.insert(
                None,
                TokenStats {
                    key: None,
                    records: 0,
                    prompt_tokens: 0,
                    completion_tokens: 0,
                    total_tokens: 0,
                },
            );
        }
        Ok(groups.into_values().collect())
    }
}
