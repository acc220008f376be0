//! # In-memory stores
//!
//! One implementation of every domain port that keeps its data in process memory: the
//! reference backend for tests, demos and single-process deployments. The SQL stores copy its
//! behaviour, so the rules it follows are spelled out here and in each port's module.
//!
//! ## Design
//!
//! * **One state, one lock.** Every table lives in one `State` behind one mutex shared by all
//!   ports of a [`MemoryBackend`]. A thread delete can therefore remove the thread's run events,
//!   feedback, chat stream, branches, snapshots, token usage and checkpoints in one step, and a
//!   concurrent reader sees the thread either whole or gone. The lock is a `std` mutex that is
//!   never held across an `.await` (every operation is synchronous once the lock is taken), which
//!   is cheaper than an async mutex and cannot deadlock a runtime.
//! * **Copy-on-read, copy-on-write** (spec `history-and-streams.md` §0.3): writes store their own
//!   clone, reads hand out clones, so no caller can change stored data through a value it holds.
//! * **Validate, then write.** Every input problem is reported as
//!   [`DomainError::InvalidInput`](waymark_domain::DomainError) before anything changes; multi-row
//!   writes (`put_many`, `put_batch`) are all-or-nothing.
//! * **Time** comes from the injected [`Clock`], truncated to microseconds like the databases
//!   keep it; caller-supplied instants (event `created_at`, usage `recorded_at`) are truncated the
//!   same way so a value reads back equal on every backend.
//! * **User scoping** (spec §0.2) follows [`UserScope::can_see`](waymark_domain::UserScope::can_see): another user's rows read as
//!   missing (`None`, `[]`, `0`, `false`), owner-less rows are visible only unscoped, writes stamp
//!   [`UserScope::owner`](waymark_domain::UserScope::owner).
//!
//! ## Cross-backend input rules decided here
//!
//! PostgreSQL `TEXT`/`JSONB` cannot hold U+0000, so every backend refuses a NUL character in any
//! JSON string or object key it is asked to store (metadata, event content, item values,
//! checkpoint metadata) and in free text fields, with `InvalidInput` naming the field.
//!
//! The store is single-process by nature: several processes each get their own copy.

mod branches;
mod chat_streams;
mod checkpoints;
mod feedback;
mod items;
mod run_events;
mod runs;
mod sessions;
mod threads;
mod token_usage;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, SubsecRound, Utc};
use waymark_domain::branch::{Branch, Snapshot};
use waymark_domain::chat_stream::ChatStreamRecord;
use waymark_domain::clock::{Clock, SystemClock};
use waymark_domain::feedback::Feedback;
use waymark_domain::paging::{OffsetPage, Page};
use waymark_domain::run_event::DEFAULT_MAX_TRACE_CONTENT;
use waymark_domain::session::Session;
use waymark_domain::thread::Thread;
use waymark_domain::token_usage::TokenUsage;
use waymark_domain::{
    BranchId, FeedbackId, ItemKey, RunId, SessionId, SnapshotId, Stores, ThreadId, UsageRecordId,
};

pub use branches::{MemoryBranchRepository, MemorySnapshotRepository};
pub use chat_streams::MemoryChatStreamRepository;
pub use checkpoints::MemoryCheckpointRepository;
pub use feedback::MemoryFeedbackRepository;
pub use items::MemoryKeyValueRepository;
pub use run_events::MemoryRunEventRepository;
pub use runs::MemoryRunRepository;
pub use sessions::MemorySessionRepository;
pub use threads::MemoryThreadRepository;
pub use token_usage::MemoryTokenUsageRepository;
/// The latest year an item may expire in (kept here for callers of the earlier path).
pub use waymark_domain::kv::MAX_EXPIRY_YEAR;

/// Tunables of the in-memory backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryOptions {
    /// The trace-content limit in bytes (spec `history-and-streams.md` §1.6).
    pub max_trace_content: usize,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        Self {
            max_trace_content: DEFAULT_MAX_TRACE_CONTENT,
        }
    }
}

/// The in-memory backend: one shared state behind every port. Cloning is cheap and yields a
/// handle to the same data.
#[derive(Clone)]
pub struct MemoryBackend {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("clock", &self.shared.clock)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBackend {
    /// An empty backend reading the system clock, with default options.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty backend reading `clock` (tests pass a `ManualClock`).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self::with_options(clock, MemoryOptions::default())
    }

    /// An empty backend with explicit options.
    pub fn with_options(clock: Arc<dyn Clock>, options: MemoryOptions) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                clock,
                options,
            }),
        }
    }

    /// Every port, all sharing this backend's state.
    pub fn stores(&self) -> Stores {
        let s = &self.shared;
        Stores {
            sessions: Arc::new(MemorySessionRepository::new(s.clone())),
            threads: Arc::new(MemoryThreadRepository::new(s.clone())),
            branches: Arc::new(MemoryBranchRepository::new(s.clone())),
            snapshots: Arc::new(MemorySnapshotRepository::new(s.clone())),
            checkpoints: Arc::new(MemoryCheckpointRepository::new(s.clone())),
            run_events: Arc::new(MemoryRunEventRepository::new(s.clone())),
            token_usage: Arc::new(MemoryTokenUsageRepository::new(s.clone())),
            feedback: Arc::new(MemoryFeedbackRepository::new(s.clone())),
            chat_streams: Arc::new(MemoryChatStreamRepository::new(s.clone())),
            items: Arc::new(MemoryKeyValueRepository::new(s.clone())),
            runs: Arc::new(MemoryRunRepository::new(s.clone())),
        }
    }
}

/// What every port of one backend shares.
pub(crate) struct Shared {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    options: MemoryOptions,
}

impl Shared {
    /// Takes the state lock. A panic while the lock was held cannot leave a half-applied write
    /// (every operation validates before it mutates), so a poisoned lock is simply taken over.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The clock's "now", at the microsecond precision every backend stores.
    fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(6)
    }
}

/// Every table of the backend.
#[derive(Default)]
pub(crate) struct State {
    sessions: BTreeMap<SessionId, Session>,
    threads: BTreeMap<ThreadId, Thread>,
    branches: BTreeMap<BranchId, Branch>,
    snapshots: BTreeMap<SnapshotId, Snapshot>,
    checkpoints: checkpoints::CheckpointTables,
    run_events: run_events::RunEventTables,
    feedback: BTreeMap<FeedbackId, Feedback>,
    token_usage: BTreeMap<UsageRecordId, TokenUsage>,
    chat_streams: BTreeMap<ThreadId, ChatStreamRecord>,
    /// Keyed by (joined namespace, key): the order `search` returns.
    items: BTreeMap<(String, ItemKey), waymark_domain::kv::Item>,
    /// Keyed by (thread, run): run ids are unique within their thread only.
    runs: BTreeMap<(ThreadId, RunId), waymark_domain::run::Run>,
}

impl State {
    /// Removes the thread row and everything held for the thread id, whoever owns it (spec
    /// §6.7). The run-event seq counter survives, so seqs are never reused (§1.5).
    fn delete_thread_cascade(&mut self, id: &ThreadId) {
        self.threads.remove(id);
        // The thread's runs, the active one included, end with the thread (§6.7): a worker
        // still holding a lease gets "not found" on its next heartbeat and stops.
        self.runs.retain(|_, r| &r.thread_id != id);
        self.run_events.remove_thread(id);
        self.feedback.retain(|_, f| &f.thread_id != id);
        self.chat_streams.remove(id);
        self.branches
            .retain(|_, b| &b.source_thread_id != id && &b.thread_id != id);
        self.snapshots.retain(|_, s| &s.thread_id != id);
        self.token_usage
            .retain(|_, u| u.thread_id.as_ref() != Some(id));
        self.checkpoints.delete_thread(id);
    }
}

/// Applies offset paging to rows already in their final order.
pub(crate) fn offset_page<T: Clone>(rows: &[&T], page: OffsetPage) -> Page<T> {
    let skip = usize::try_from(page.offset).unwrap_or(usize::MAX);
    let fetched: Vec<T> = rows
        .iter()
        .skip(skip)
        .take(page.limit.as_usize() + 1)
        .map(|r| (*r).clone())
        .collect();
    Page::from_look_ahead(fetched, page.limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use waymark_domain::{JsonObject, JsonValue};

    #[tokio::test]
    async fn deleting_a_thread_cascades_to_everything_held_for_it() {
        use waymark_domain::branch::{Branch, Snapshot, SnapshotKind};
        use waymark_domain::checkpoint::{Checkpoint, CheckpointMetadata, CheckpointPut};
        use waymark_domain::feedback::{NewFeedback, Rating};
        use waymark_domain::run_event::NewRunEvent;
        use waymark_domain::thread::NewThread;
        use waymark_domain::token_usage::TokenUsageFilter;
        use waymark_domain::{
            CheckpointNamespace, EventCategory, EventType, ModelName, Name, RunId, UserId,
            UserScope,
        };

        let backend = MemoryBackend::new();
        let s = backend.stores();
        let owner = UserScope::User(UserId::parse("a").unwrap());
        let other = UserScope::User(UserId::parse("b").unwrap());
        let t = ThreadId::parse("t").unwrap();
        let keep = ThreadId::parse("keep").unwrap();
        let run = RunId::parse("r").unwrap();
        for id in [&t, &keep] {
            s.threads
                .create(&owner, NewThread::with_id(id.clone()))
                .await
                .unwrap();
            let event = NewRunEvent::new(
                id.clone(),
                run.clone(),
                EventType::parse("x").unwrap(),
                EventCategory::parse("message").unwrap(),
            );
            s.run_events.put(&owner, event).await.unwrap();
            let fb = NewFeedback {
                thread_id: id.clone(),
                run_id: run.clone(),
                rating: Rating::Positive,
                comment: None,
                message_id: None,
            };
            s.feedback.create(&owner, fb).await.unwrap();
            s.chat_streams
                .append(&owner, id, vec!["frame".into()])
                .await
                .unwrap();
            let usage = TokenUsage::new(
                None,
                Some(id.clone()),
                None,
                None,
                ModelName::parse("m").unwrap(),
                1,
                1,
                0,
                Utc::now(),
            )
            .unwrap();
            s.token_usage.record(usage).await.unwrap();
            let mut cp = Checkpoint::empty(0);
            cp.id = waymark_domain::CheckpointId::parse(format!("{id}-c1")).unwrap();
            let put = CheckpointPut {
                thread_id: id.clone(),
                namespace: CheckpointNamespace::root(),
                parent_id: None,
                checkpoint: cp.clone(),
                metadata: CheckpointMetadata::default(),
                new_versions: Default::default(),
            };
            s.checkpoints.put(put).await.unwrap();
            s.snapshots
                .create(Snapshot {
                    id: SnapshotId::new_random(),
                    thread_id: id.clone(),
                    namespace: CheckpointNamespace::root(),
                    checkpoint_id: cp.id.clone(),
                    name: Name::parse("s").unwrap(),
                    description: None,
                    kind: SnapshotKind::Milestone,
                    metadata: JsonObject::new(),
                    created_at: Utc::now(),
                })
                .await
                .unwrap();
        }
        let branch_thread = ThreadId::parse("branch").unwrap();
        let branch = Branch {
            id: BranchId::new_random(),
            name: Name::parse("b").unwrap(),
            source_thread_id: keep.clone(),
            source_namespace: CheckpointNamespace::root(),
            source_checkpoint_id: waymark_domain::CheckpointId::parse("keep-c1").unwrap(),
            thread_id: t.clone(),
            metadata: JsonObject::new(),
            created_at: Utc::now(),
        };
        s.branches.create(branch).await.unwrap();

        assert!(
            !s.threads.delete(&other, &t).await.unwrap(),
            "another user's thread"
        );
        assert!(s.threads.get(&owner, &t).await.unwrap().is_some());
        assert!(s.threads.delete(&owner, &t).await.unwrap());

        assert!(s.threads.get(&owner, &t).await.unwrap().is_none());
        assert_eq!(s.run_events.count_messages(&owner, &t).await.unwrap(), 0);
        assert!(
            s.feedback
                .list_by_thread_grouped(&owner, &t)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(s.chat_streams.get(&owner, &t).await.unwrap().is_none());
        assert!(s.snapshots.list_for_thread(&t).await.unwrap().is_empty());
        assert!(
            s.branches
                .find_by_branch_thread(&t)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            s.branches
                .find_by_branch_thread(&branch_thread)
                .await
                .unwrap()
                .is_none()
        );
        let root = CheckpointNamespace::root();
        assert!(
            s.checkpoints
                .get_tuple(&t, &root, None)
                .await
                .unwrap()
                .is_none()
        );
        let usage_of = |id: &ThreadId| TokenUsageFilter {
            thread_id: Some(id.clone()),
            ..TokenUsageFilter::default()
        };
        let total = waymark_domain::token_usage::TokenGrouping::Total;
        assert_eq!(
            s.token_usage.stats(&usage_of(&t), total).await.unwrap()[0].records,
            0
        );

        // The other thread keeps everything.
        assert_eq!(s.run_events.count_messages(&owner, &keep).await.unwrap(), 1);
        assert_eq!(s.feedback.stats(&keep, &run).await.unwrap().total, 1);
        assert!(s.chat_streams.get(&owner, &keep).await.unwrap().is_some());
        assert_eq!(s.snapshots.list_for_thread(&keep).await.unwrap().len(), 1);
        assert!(
            s.checkpoints
                .get_tuple(&keep, &root, None)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(
            s.token_usage.stats(&usage_of(&keep), total).await.unwrap()[0].records,
            1
        );

        // Re-creating the id starts empty.
        s.threads
            .create(&owner, NewThread::with_id(t.clone()))
            .await
            .unwrap();
        assert_eq!(s.run_events.count_messages(&owner, &t).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn returned_values_are_copies() {
        use waymark_domain::UserScope;
        use waymark_domain::thread::NewThread;

        let s = MemoryBackend::new().stores();
        let t = ThreadId::parse("t").unwrap();
        let mut got = s
            .threads
            .create(&UserScope::Unscoped, NewThread::with_id(t.clone()))
            .await
            .unwrap();
        got.metadata.insert("mutated".into(), JsonValue::Bool(true));
        let again = s
            .threads
            .get(&UserScope::Unscoped, &t)
            .await
            .unwrap()
            .unwrap();
        assert!(again.metadata.is_empty());
    }

    #[test]
    fn offset_page_skips_then_looks_ahead() {
        let rows: Vec<i32> = (1..=5).collect();
        let refs: Vec<&i32> = rows.iter().collect();
        let p = offset_page(&refs, OffsetPage::new(2, 1).unwrap());
        assert_eq!(p.items, vec![2, 3]);
        assert!(p.has_more);
        let p = offset_page(&refs, OffsetPage::new(2, 3).unwrap());
        assert_eq!(p.items, vec![4, 5]);
        assert!(!p.has_more);
        let p = offset_page(&refs, OffsetPage::new(2, u64::MAX).unwrap());
        assert!(p.items.is_empty() && !p.has_more);
    }
}
