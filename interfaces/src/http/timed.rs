//! Store-latency metrics for every port: decorators that time each call of the wrapped
//! repository into [`Metrics`] under `<port>.<method>` and delegate unchanged. The HTTP layer
//! and the application services both go through them, so `/metrics` reports every store call
//! a request makes.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use waymark_domain::branch::{Branch, BranchRepository, Snapshot, SnapshotRepository};
use waymark_domain::chat_stream::{ChatStreamRecord, ChatStreamRepository, ChatStreamSummary};
use waymark_domain::checkpoint::{
    CheckpointCapabilities, CheckpointPut, CheckpointQuery, CheckpointRef, CheckpointRepository,
    CheckpointSummary, CheckpointTuple, PruneStrategy, WriteBatch,
};
use waymark_domain::feedback::{Feedback, FeedbackRepository, FeedbackStats, NewFeedback};
use waymark_domain::kv::{Item, ItemNamespace, ItemSearch, KeyValueRepository, NamespaceListing};
use waymark_domain::paging::{Limit, Page, SeqPage};
use waymark_domain::run::{
    LeaseTtl, NewRun, Run, RunList, RunOutcome, RunPage, RunProgress, RunRepository, WorkerId,
};
use waymark_domain::run_event::{EventQuery, NewRunEvent, RunEvent, RunEventRepository};
use waymark_domain::session::{Session, SessionQuery, SessionRepository, SessionUpdate};
use waymark_domain::thread::{NewThread, Thread, ThreadQuery, ThreadRepository, ThreadUpdate};
use waymark_domain::token_usage::{
    TokenGrouping, TokenStats, TokenUsage, TokenUsageFilter, TokenUsageRepository,
};
use waymark_domain::{
    BranchId, CheckpointId, CheckpointNamespace, DomainResult, FeedbackId, ItemKey, JsonObject,
    RunId, SessionId, SnapshotId, Stores, ThreadId, UserScope,
};

use super::metrics::Metrics;

macro_rules! timed_port {
    ($wrapper:ident, $port:ident, $prefix:literal,
        $( untimed { $( fn $plain:ident(&self) -> $plain_ret:ty; )* } )?
    {
        $( fn $name:ident(&self $(, $arg:ident : $ty:ty)* $(,)? ) -> $ret:ty; )*
    }) => {
        /// Times every call of the wrapped port.
        pub struct $wrapper {
            inner: Arc<dyn $port>,
            metrics: Arc<Metrics>,
        }

        #[async_trait]
        impl $port for $wrapper {
            // Synchronous reports of the wrapped store: forwarded, not timed.
            $( $(
                fn $plain(&self) -> $plain_ret {
                    self.inner.$plain()
                }
            )* )?
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    self.metrics
                        .time(concat!($prefix, ".", stringify!($name)), self.inner.$name($($arg),*))
                        .await
                }
            )*
        }
    };
}

timed_port!(TimedSessions, SessionRepository, "sessions", {
    fn create(&self, scope: &UserScope, session: Session) -> DomainResult<Session>;
    fn get(&self, scope: &UserScope, id: &SessionId) -> DomainResult<Option<Session>>;
    fn update(
        &self,
        scope: &UserScope,
        id: &SessionId,
        update: SessionUpdate,
    ) -> DomainResult<Session>;
    fn list(&self, scope: &UserScope, query: &SessionQuery) -> DomainResult<Page<Session>>;
    fn delete(&self, scope: &UserScope, id: &SessionId) -> DomainResult<bool>;
});

timed_port!(TimedThreads, ThreadRepository, "threads", {
    fn create(&self, scope: &UserScope, thread: NewThread) -> DomainResult<Thread>;
    fn get(&self, scope: &UserScope, id: &ThreadId) -> DomainResult<Option<Thread>>;
    fn search(&self, scope: &UserScope, query: &ThreadQuery) -> DomainResult<Page<Thread>>;
    fn update(
        &self,
        scope: &UserScope,
        id: &ThreadId,
        update: ThreadUpdate,
    ) -> DomainResult<Thread>;
    fn claim(&self, scope: &UserScope, id: &ThreadId) -> DomainResult<Option<Thread>>;
    fn check_access(
        &self,
        scope: &UserScope,
        id: &ThreadId,
        require_existing: bool,
    ) -> DomainResult<bool>;
    fn delete(&self, scope: &UserScope, id: &ThreadId) -> DomainResult<bool>;
});

timed_port!(TimedBranches, BranchRepository, "branches", {
    fn create(&self, branch: Branch) -> DomainResult<Branch>;
    fn get(&self, id: BranchId) -> DomainResult<Option<Branch>>;
    fn list_for_thread(&self, source_thread_id: &ThreadId) -> DomainResult<Vec<Branch>>;
    fn find_by_branch_thread(&self, thread_id: &ThreadId) -> DomainResult<Option<Branch>>;
    fn delete(&self, id: BranchId) -> DomainResult<bool>;
});

timed_port!(TimedSnapshots, SnapshotRepository, "snapshots", {
    fn create(&self, snapshot: Snapshot) -> DomainResult<Snapshot>;
    fn get(&self, id: SnapshotId) -> DomainResult<Option<Snapshot>>;
    fn list_for_thread(&self, thread_id: &ThreadId) -> DomainResult<Vec<Snapshot>>;
    fn delete(&self, id: SnapshotId) -> DomainResult<bool>;
});

timed_port!(TimedCheckpoints, CheckpointRepository, "checkpoints", untimed {
    fn capabilities(&self) -> CheckpointCapabilities;
} {
    fn put(&self, put: CheckpointPut) -> DomainResult<CheckpointRef>;
    fn put_many(&self, puts: Vec<CheckpointPut>) -> DomainResult<Vec<CheckpointRef>>;
    fn put_writes(&self, batch: WriteBatch) -> DomainResult<()>;
    fn get_tuple(
        &self,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        checkpoint_id: Option<CheckpointId>,
    ) -> DomainResult<Option<CheckpointTuple>>;
    fn list(&self, query: &CheckpointQuery) -> DomainResult<Vec<CheckpointTuple>>;
    fn delete_thread(&self, thread_id: &ThreadId) -> DomainResult<()>;
    fn copy_thread(&self, source: &ThreadId, target: &ThreadId) -> DomainResult<()>;
    fn prune(&self, thread_ids: Vec<ThreadId>, strategy: PruneStrategy) -> DomainResult<()>;
    fn delete_for_runs(&self, run_ids: Vec<RunId>) -> DomainResult<()>;
    fn delete_checkpoints(
        &self,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        checkpoint_ids: Vec<CheckpointId>,
    ) -> DomainResult<u64>;
    fn summary(&self, thread_id: &ThreadId) -> DomainResult<CheckpointSummary>;
});

timed_port!(TimedRunEvents, RunEventRepository, "run_events", {
    fn put(&self, scope: &UserScope, event: NewRunEvent) -> DomainResult<RunEvent>;
    fn put_batch(&self, scope: &UserScope, events: Vec<NewRunEvent>)
    -> DomainResult<Vec<RunEvent>>;
    fn put_if_absent(
        &self,
        scope: &UserScope,
        event: NewRunEvent,
    ) -> DomainResult<(RunEvent, bool)>;
    fn list_messages(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        page: SeqPage,
    ) -> DomainResult<Vec<RunEvent>>;
    fn list_messages_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        page: SeqPage,
    ) -> DomainResult<Vec<RunEvent>>;
    fn list_events(&self, scope: &UserScope, query: &EventQuery) -> DomainResult<Vec<RunEvent>>;
    fn count_messages(&self, scope: &UserScope, thread_id: &ThreadId) -> DomainResult<u64>;
    fn last_visible_ai_seq_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_ids: Vec<RunId>,
    ) -> DomainResult<HashMap<RunId, i64>>;
    fn delete_by_thread(&self, scope: &UserScope, thread_id: &ThreadId) -> DomainResult<u64>;
    fn delete_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
    ) -> DomainResult<u64>;
});

timed_port!(TimedTokenUsage, TokenUsageRepository, "token_usage", {
    fn record(&self, usage: TokenUsage) -> DomainResult<TokenUsage>;
    fn stats(
        &self,
        filter: &TokenUsageFilter,
        grouping: TokenGrouping,
    ) -> DomainResult<Vec<TokenStats>>;
});

timed_port!(TimedFeedback, FeedbackRepository, "feedback", {
    fn create(&self, scope: &UserScope, feedback: NewFeedback) -> DomainResult<Feedback>;
    fn upsert(&self, scope: &UserScope, feedback: NewFeedback) -> DomainResult<Feedback>;
    fn get(&self, scope: &UserScope, id: FeedbackId) -> DomainResult<Option<Feedback>>;
    fn list_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        limit: Limit,
    ) -> DomainResult<Page<Feedback>>;
    fn list_by_thread(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        limit: Limit,
    ) -> DomainResult<Page<Feedback>>;
    fn list_by_thread_grouped(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
    ) -> DomainResult<HashMap<RunId, Feedback>>;
    fn list_by_run_ids(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_ids: Vec<RunId>,
    ) -> DomainResult<HashMap<RunId, Feedback>>;
    fn delete(&self, scope: &UserScope, id: FeedbackId) -> DomainResult<bool>;
    fn delete_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
    ) -> DomainResult<bool>;
    fn stats(&self, thread_id: &ThreadId, run_id: &RunId) -> DomainResult<FeedbackStats>;
});

timed_port!(TimedChatStreams, ChatStreamRepository, "chat_streams", {
    fn append(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        frames: Vec<String>,
    ) -> DomainResult<ChatStreamRecord>;
    fn get(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
    ) -> DomainResult<Option<ChatStreamRecord>>;
    fn list_recent(&self, scope: &UserScope, limit: Limit) -> DomainResult<Vec<ChatStreamSummary>>;
    fn delete(&self, scope: &UserScope, thread_id: &ThreadId) -> DomainResult<bool>;
    fn purge_older_than(&self, cutoff: DateTime<Utc>, batch: Limit) -> DomainResult<u64>;
});

timed_port!(TimedItems, KeyValueRepository, "items", {
    fn put(
        &self,
        namespace: &ItemNamespace,
        key: &ItemKey,
        value: JsonObject,
        ttl_seconds: Option<u64>,
    ) -> DomainResult<Item>;
    fn get(&self, namespace: &ItemNamespace, key: &ItemKey) -> DomainResult<Option<Item>>;
    fn delete(&self, namespace: &ItemNamespace, key: &ItemKey) -> DomainResult<bool>;
    fn search(&self, query: &ItemSearch) -> DomainResult<Vec<Item>>;
    fn list_namespaces(&self, query: &NamespaceListing) -> DomainResult<Vec<ItemNamespace>>;
    fn sweep_expired(&self) -> DomainResult<u64>;
});

timed_port!(TimedRuns, RunRepository, "runs", {
    fn create(&self, scope: &UserScope, run: NewRun) -> DomainResult<Run>;
    fn get(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
    ) -> DomainResult<Option<Run>>;
    fn start(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        worker: &WorkerId,
        ttl: LeaseTtl,
    ) -> DomainResult<Run>;
    fn renew_lease(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        worker: &WorkerId,
        ttl: LeaseTtl,
    ) -> DomainResult<Run>;
    fn update_progress(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        progress: RunProgress,
    ) -> DomainResult<Run>;
    fn finish(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        outcome: RunOutcome,
    ) -> DomainResult<Run>;
    fn list(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        page: &RunPage,
    ) -> DomainResult<RunList>;
    fn active(&self, scope: &UserScope, thread_id: &ThreadId) -> DomainResult<Option<Run>>;
    fn reclaim_expired(&self, scope: &UserScope, max_attempts: u32) -> DomainResult<Vec<Run>>;
});

/// Every port of `stores`, timed into `metrics`.
pub fn timed(stores: &Stores, metrics: &Arc<Metrics>) -> Stores {
    let m = || metrics.clone();
    Stores {
        sessions: Arc::new(TimedSessions {
            inner: stores.sessions.clone(),
            metrics: m(),
        }),
        threads: Arc::new(TimedThreads {
            inner: stores.threads.clone(),
            metrics: m(),
        }),
        branches: Arc::new(TimedBranches {
            inner: stores.branches.clone(),
            metrics: m(),
        }),
        snapshots: Arc::new(TimedSnapshots {
            inner: stores.snapshots.clone(),
            metrics: m(),
        }),
        checkpoints: Arc::new(TimedCheckpoints {
            inner: stores.checkpoints.clone(),
            metrics: m(),
        }),
        run_events: Arc::new(TimedRunEvents {
            inner: stores.run_events.clone(),
            metrics: m(),
        }),
        token_usage: Arc::new(TimedTokenUsage {
            inner: stores.token_usage.clone(),
            metrics: m(),
        }),
        feedback: Arc::new(TimedFeedback {
            inner: stores.feedback.clone(),
            metrics: m(),
        }),
        chat_streams: Arc::new(TimedChatStreams {
            inner: stores.chat_streams.clone(),
            metrics: m(),
        }),
        items: Arc::new(TimedItems {
            inner: stores.items.clone(),
            metrics: m(),
        }),
        runs: Arc::new(TimedRuns {
            inner: stores.runs.clone(),
            metrics: m(),
        }),
    }
}
