//! Conversation history and token accounting (seed 002's "History" module): messages are
//! recorded as run events of category `message` (so the summarization-safe reader of
//! [`crate::ThreadHistoryService`] sees them), token usage as records the store aggregates,
//! and costs are computed from a price table the host supplies (prices change; they are
//! configuration, not data).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use waymark_domain::clock::Clock;
use waymark_domain::paging::SeqPage;
use waymark_domain::run_event::{
    AI_RESPONSE_EVENT, NewRunEvent, RunEvent, RunEventRepository, validate_batch,
};
use waymark_domain::thread::ThreadRepository;
use waymark_domain::token_usage::{
    TokenGrouping, TokenStats, TokenUsage, TokenUsageFilter, TokenUsageRepository,
};
use waymark_domain::{
    EventCategory, EventType, JsonObject, ModelName, RunId, SessionId, Stores, ThreadId, UserScope,
};

use crate::access::{Access, claim, ensure};
use crate::error::{AppResult, ApplicationError};

/// Who spoke: decides the frozen event type the message is stored under (spec §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageRole {
    /// `llm.human.input`.
    Human,
    /// `llm.ai.response`.
    Ai,
    /// `llm.tool.result`.
    Tool,
}

impl MessageRole {
    /// The event type of the role.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::Human => "llm.human.input",
            Self::Ai => AI_RESPONSE_EVENT,
            Self::Tool => "llm.tool.result",
        }
    }
}

/// A message to record.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRecord {
    /// The thread.
    pub thread_id: ThreadId,
    /// The run that produced it.
    pub run_id: RunId,
    /// Who spoke.
    pub role: MessageRole,
    /// The message (LangChain fields); must be an object with a string `type`.
    pub message: JsonObject,
    /// Event metadata (`caller`, `usage`, ...).
    pub metadata: JsonObject,
    /// Capture time; `None` means now.
    pub created_at: Option<DateTime<Utc>>,
}

impl MessageRecord {
    fn into_event(self) -> AppResult<NewRunEvent> {
        match self.message.get("type") {
            Some(serde_json::Value::String(t)) if !t.is_empty() => {}
            _ => {
                return Err(ApplicationError::invalid(
                    "message",
                    "a message is an object with a non-empty string `type`",
                ));
            }
        }
        let mut event = NewRunEvent::new(
            self.thread_id,
            self.run_id,
            EventType::parse(self.role.event_type())?,
            EventCategory::parse(EventCategory::MESSAGE)?,
        )
        .with_content(serde_json::Value::Object(self.message))
        .with_metadata(self.metadata);
        event.created_at = self.created_at;
        Ok(event)
    }
}

/// Token usage of one model call, as a host reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UsageReport {
    /// The session; filled from the thread's row when `None` and the thread is known.
    pub session_id: Option<SessionId>,
    /// The thread.
    pub thread_id: Option<ThreadId>,
    /// The run.
    pub run_id: Option<RunId>,
    /// The model (required).
    pub model: Option<ModelName>,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// The provider's total; 0 means "not reported" and becomes prompt + completion.
    pub total_tokens: u64,
}

/// Prices of one model, per 1,000 tokens, in the host's currency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelPrice {
    /// Price per 1,000 prompt tokens.
    pub prompt_per_1k: f64,
    /// Price per 1,000 completion tokens.
    pub completion_per_1k: f64,
}

impl ModelPrice {
    /// A price; both parts must be finite and not negative.
    pub fn new(prompt_per_1k: f64, completion_per_1k: f64) -> AppResult<Self> {
        for (field, v) in [
            ("prompt_per_1k", prompt_per_1k),
            ("completion_per_1k", completion_per_1k),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(ApplicationError::invalid(
                    field,
                    format!("{v} is not a price (finite, at least 0)"),
                ));
            }
        }
        Ok(Self {
            prompt_per_1k,
            completion_per_1k,
        })
    }

    /// The cost of a number of tokens.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        prompt_tokens as f64 / 1000.0 * self.prompt_per_1k
            + completion_tokens as f64 / 1000.0 * self.completion_per_1k
    }
}

/// Model -> price.
pub type PriceTable = HashMap<ModelName, ModelPrice>;

/// The cost of one model's usage.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCost {
    /// The model.
    pub model: String,
    /// Its token sums.
    pub stats: TokenStats,
    /// The cost, or `None` when the table has no price for the model.
    pub cost: Option<f64>,
}

/// Costs of the usage a filter selects.
#[derive(Debug, Clone, PartialEq)]
pub struct CostReport {
    /// One entry per model, ordered by model name.
    pub models: Vec<ModelCost>,
    /// The sum over priced models.
    pub total_cost: f64,
    /// Models without a price (their tokens are not in `total_cost`).
    pub unpriced_models: Vec<String>,
}

/// Message and token history.
#[derive(Clone)]
pub struct HistoryManager {
    events: Arc<dyn RunEventRepository>,
    usage: Arc<dyn TokenUsageRepository>,
    threads: Arc<dyn ThreadRepository>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for HistoryManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryManager").finish_non_exhaustive()
    }
}

impl HistoryManager {
    /// A manager over the given ports.
    pub fn new(
        events: Arc<dyn RunEventRepository>,
        usage: Arc<dyn TokenUsageRepository>,
        threads: Arc<dyn ThreadRepository>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            events,
            usage,
            threads,
            clock,
        }
    }

    /// A manager over a deployment's stores.
    pub fn from_stores(stores: &Stores, clock: Arc<dyn Clock>) -> Self {
        Self::new(
            stores.run_events.clone(),
            stores.token_usage.clone(),
            stores.threads.clone(),
            clock,
        )
    }

    /// Records one message as a `message` run event and returns the stored record.
    pub async fn record_message(
        &self,
        scope: &UserScope,
        record: MessageRecord,
    ) -> AppResult<RunEvent> {
        let thread_id = record.thread_id.clone();
        let event = record.into_event()?;
        claim(self.threads.as_ref(), scope, &thread_id).await?;
        Ok(self.events.put(scope, event).await?)
    }

    /// Records messages of one thread in one batch (contiguous seqs, all or none).
    pub async fn record_messages(
        &self,
        scope: &UserScope,
        records: Vec<MessageRecord>,
    ) -> AppResult<Vec<RunEvent>> {
        let Some(first) = records.first() else {
            return Ok(Vec::new());
        };
        let thread_id = first.thread_id.clone();
        let events = records
            .into_iter()
            .map(MessageRecord::into_event)
            .collect::<AppResult<Vec<_>>>()?;
        validate_batch(&events)?;
        claim(self.threads.as_ref(), scope, &thread_id).await?;
        Ok(self.events.put_batch(scope, events).await?)
    }

    /// Message rows of the thread per the page (spec §1.4).
    pub async fn messages(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        page: SeqPage,
    ) -> AppResult<Vec<RunEvent>> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        Ok(self.events.list_messages(scope, thread_id, page).await?)
    }

    /// The number of message rows of the thread.
    pub async fn count_messages(&self, scope: &UserScope, thread_id: &ThreadId) -> AppResult<u64> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        Ok(self.events.count_messages(scope, thread_id).await?)
    }

    /// Records token usage. A total of 0 becomes prompt + completion; the owner comes from
    /// the scope; a missing session is taken from the thread's row.
    pub async fn record_token_usage(
        &self,
        scope: &UserScope,
        report: UsageReport,
    ) -> AppResult<TokenUsage> {
        let model = report
            .model
            .ok_or_else(|| ApplicationError::invalid("model", "token usage needs a model"))?;
        // Validate first: bad input writes nothing, not even the thread claim.
        let mut usage = TokenUsage::new(
            report.session_id.clone(),
            report.thread_id.clone(),
            report.run_id,
            scope.owner().cloned(),
            model,
            report.prompt_tokens,
            report.completion_tokens,
            report.total_tokens,
            self.clock.now(),
        )?;
        if let Some(thread_id) = &report.thread_id {
            claim(self.threads.as_ref(), scope, thread_id).await?;
            if usage.session_id.is_none() {
                usage.session_id = self
                    .threads
                    .get(scope, thread_id)
                    .await?
                    .and_then(|t| t.session_id);
            }
        }
        Ok(self.usage.record(usage).await?)
    }

    /// Token sums for the filter, grouped. A user scope restricts the filter to that user's
    /// records (asking for another user's is refused).
    pub async fn token_stats(
        &self,
        scope: &UserScope,
        filter: TokenUsageFilter,
        grouping: TokenGrouping,
    ) -> AppResult<Vec<TokenStats>> {
        let filter = scoped_filter(scope, filter)?;
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from > to
        {
            return Err(ApplicationError::invalid(
                "from",
                "the window starts after it ends",
            ));
        }
        Ok(self.usage.stats(&filter, grouping).await?)
    }

    /// Totals of one session.
    pub async fn session_tokens(
        &self,
        scope: &UserScope,
        session_id: &SessionId,
    ) -> AppResult<TokenStats> {
        let filter = TokenUsageFilter {
            session_id: Some(session_id.clone()),
            ..TokenUsageFilter::default()
        };
        self.total(scope, filter).await
    }

    /// Totals of one thread.
    pub async fn thread_tokens(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
    ) -> AppResult<TokenStats> {
        let filter = TokenUsageFilter {
            thread_id: Some(thread_id.clone()),
            ..TokenUsageFilter::default()
        };
        self.total(scope, filter).await
    }

    /// Per-model sums within a time window (`from` inclusive, `to` exclusive).
    pub async fn tokens_by_model(
        &self,
        scope: &UserScope,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> AppResult<Vec<TokenStats>> {
        let filter = TokenUsageFilter {
            from,
            to,
            ..TokenUsageFilter::default()
        };
        self.token_stats(scope, filter, TokenGrouping::Model).await
    }

    /// The cost of the usage the filter selects, per model, with the host's prices.
    pub async fn cost(
        &self,
        scope: &UserScope,
        filter: TokenUsageFilter,
        prices: &PriceTable,
    ) -> AppResult<CostReport> {
        let rows = self
            .token_stats(scope, filter, TokenGrouping::Model)
            .await?;
        Ok(cost_report(rows, prices))
    }

    async fn total(&self, scope: &UserScope, filter: TokenUsageFilter) -> AppResult<TokenStats> {
        let rows = self
            .token_stats(scope, filter, TokenGrouping::Total)
            .await?;
        rows.into_iter().next().ok_or_else(|| {
            waymark_domain::DomainError::storage(
                "token_usage.stats",
                "a total grouping returned no row",
            )
            .into()
        })
    }
}

/// Restricts a filter to the scope's user.
fn scoped_filter(scope: &UserScope, mut filter: TokenUsageFilter) -> AppResult<TokenUsageFilter> {
    if let Some(user) = scope.owner() {
        match &filter.user_id {
            Some(other) if other != user => {
                return Err(ApplicationError::invalid(
                    "user_id",
                    "a user may only read their own token usage",
                ));
            }
            _ => filter.user_id = Some(user.clone()),
        }
    }
    Ok(filter)
}

/// Prices per-model rows.
pub fn cost_report(rows: Vec<TokenStats>, prices: &PriceTable) -> CostReport {
    let mut report = CostReport {
        models: Vec::with_capacity(rows.len()),
        total_cost: 0.0,
        unpriced_models: Vec::new(),
    };
    for row in rows {
        let model = row.key.clone().unwrap_or_default();
        let price = ModelName::parse(model.clone())
            .ok()
            .and_then(|m| prices.get(&m).copied());
        let cost = price.map(|p| p.cost(row.prompt_tokens, row.completion_tokens));
        match cost {
            Some(c) => report.total_cost += c,
            None => report.unpriced_models.push(model.clone()),
        }
        report.models.push(ModelCost {
            model,
            stats: row,
            cost,
        });
    }
    report
}

#[cfg(test)]
mod tests;
