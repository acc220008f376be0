//! The thread layer of checkpoint management (seed 003): every checkpoint operation acts on
//! one thread. Creating, restoring, listing and deleting checkpoints, paged history, diffs
//! between two checkpoints, forking a branch into a new thread, named snapshots and
//! non-destructive rollback.
//!
//! The session layer ([`crate::SessionCheckpointManager`]) decides *policy* and calls into this
//! manager to *execute* it; it never touches the checkpoint port itself. That keeps one place
//! where rules such as "snapshots pin their checkpoint" and "a thread keeps its head" hold.
//!
//! Nothing here decodes channel payloads: values are compared as bytes, and message-level
//! diffs go through the host's [`MessageCodec`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::json;
use waymark_domain::branch::{
    Branch, BranchRepository, Snapshot, SnapshotKind, SnapshotRepository,
};
use waymark_domain::checkpoint::{
    ChannelVersion, ChannelVersions, Checkpoint, CheckpointMetadata, CheckpointPut,
    CheckpointQuery, CheckpointRef, CheckpointRepository, CheckpointSummary, CheckpointTuple,
    PendingWrite, TypedValue, WriteBatch, is_special_write_channel,
};
use waymark_domain::checkpoint_time::{python_isoformat, taken_at};
use waymark_domain::clock::Clock;
use waymark_domain::paging::{Limit, Page};
use waymark_domain::thread::{NewThread, Thread, ThreadRepository, validate_short_text};
use waymark_domain::{
    BranchId, ChannelName, CheckpointId, CheckpointNamespace, JsonObject, Name, SnapshotId, Stores,
    ThreadId, UserScope,
};

use crate::access::{Access, ensure};
use crate::codec::{ChannelMessage, MessageCodec};
use crate::error::{AppResult, ApplicationError};

/// The channel that holds a graph's conversation by LangGraph convention.
pub const MESSAGES_CHANNEL: &str = "messages";

/// The metadata `source` Waymark writes on rollback checkpoints. LangGraph's own vocabulary
/// (`input`, `loop`, `update`, `fork`) is kept so Python readers see a known value; `fork` is
/// what LangGraph writes when it copies an earlier checkpoint forward.
pub const ROLLBACK_SOURCE: &str = "fork";

/// The longest snapshot description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4096;

/// The state of a checkpoint to create. The values are the *complete* state: a channel not
/// listed is absent from the new checkpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewCheckpoint {
    /// The namespace (`""` for the root graph).
    pub namespace: CheckpointNamespace,
    /// Channel values.
    pub channel_values: IndexMap<ChannelName, TypedValue>,
    /// Metadata to store; merged over Waymark's defaults (`source: "update"`, `step`,
    /// `parents`), so a caller may override them.
    pub metadata: JsonObject,
}

/// What changed in one channel between two checkpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelChange {
    /// The channel.
    pub channel: ChannelName,
    /// Its version in the older checkpoint.
    pub from_version: Option<ChannelVersion>,
    /// Its version in the newer checkpoint.
    pub to_version: Option<ChannelVersion>,
    /// Payload bytes before.
    pub from_bytes: usize,
    /// Payload bytes after.
    pub to_bytes: usize,
    /// True when the serializer tag changed too.
    pub type_changed: bool,
    /// Message-level changes, when the channel holds messages and a codec decoded both
    /// sides; `None` means only the bytes are known to differ.
    pub messages: Option<MessageDiff>,
    /// Why the codec could not decode the channel, when it tried and failed.
    pub decode_error: Option<String>,
}

/// One message present on both sides with different content.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageChange {
    /// The message id, or `#<position>` for id-less messages.
    pub key: String,
    /// The fields before.
    pub before: JsonObject,
    /// The fields after.
    pub after: JsonObject,
}

/// Messages added, removed and changed, matched by id (id-less messages by position).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageDiff {
    /// In the newer checkpoint only, in its order.
    pub added: Vec<JsonObject>,
    /// In the older checkpoint only, in its order.
    pub removed: Vec<JsonObject>,
    /// On both sides, different.
    pub changed: Vec<MessageChange>,
    /// On both sides, equal.
    pub unchanged: usize,
}

/// The difference between two checkpoints of one thread and namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointDiff {
    /// The older side.
    pub from: CheckpointId,
    /// The newer side.
    pub to: CheckpointId,
    /// Channels only in `to`.
    pub added: Vec<ChannelName>,
    /// Channels only in `from`.
    pub removed: Vec<ChannelName>,
    /// Channels in both whose tag or bytes differ.
    pub changed: Vec<ChannelChange>,
    /// Channels in both with identical payloads.
    pub unchanged: Vec<ChannelName>,
}

/// A branch to fork.
#[derive(Debug, Clone, PartialEq)]
pub struct ForkRequest {
    /// The thread to fork from.
    pub source_thread_id: ThreadId,
    /// The namespace of the fork point.
    pub namespace: CheckpointNamespace,
    /// The fork point.
    pub checkpoint_id: CheckpointId,
    /// The new thread; a random uuid when `None`. It must not exist yet.
    pub new_thread_id: Option<ThreadId>,
    /// The branch name, unique among the source thread's branches.
    pub name: Name,
    /// Display name of the new thread.
    pub display_name: Option<String>,
    /// Metadata of the branch record and of the new thread.
    pub metadata: JsonObject,
}

/// What a fork produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ForkOutcome {
    /// The branch record.
    pub branch: Branch,
    /// The new thread's row.
    pub thread: Thread,
    /// Checkpoints copied (the fork point and its ancestors).
    pub copied_checkpoints: usize,
    /// Pending writes copied with them.
    pub copied_writes: usize,
}

/// A snapshot to take.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRequest {
    /// The thread.
    pub thread_id: ThreadId,
    /// The namespace of the checkpoint.
    pub namespace: CheckpointNamespace,
    /// The checkpoint to pin; it must exist.
    pub checkpoint_id: CheckpointId,
    /// The name, unique within the thread.
    pub name: Name,
    /// Milestone or backup.
    pub kind: SnapshotKind,
    /// A description (at most [`MAX_DESCRIPTION_CHARS`]).
    pub description: Option<String>,
    /// Free-form metadata.
    pub metadata: JsonObject,
}

/// Checkpoints removed from one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedCheckpoints {
    /// The namespace.
    pub namespace: CheckpointNamespace,
    /// The removed ids, newest first.
    pub checkpoint_ids: Vec<CheckpointId>,
}

/// What applying a checkpoint policy did to one thread.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionOutcome {
    /// The thread.
    pub thread_id: ThreadId,
    /// What was removed, per namespace (only namespaces where something was).
    pub removed: Vec<RemovedCheckpoints>,
    /// Checkpoints the policy selected but kept because a snapshot pins them.
    pub kept_pinned: usize,
    /// Checkpoints kept because their age could not be determined (neither `ts` nor the id
    /// carries a time).
    pub kept_undated: usize,
    /// Snapshots deleted with their checkpoint (only when the policy does not exempt them).
    pub snapshots_removed: Vec<SnapshotId>,
    /// The failure that stopped the thread's cleanup part-way, if any; what is listed above
    /// was done before it.
    pub error: Option<ApplicationError>,
}

impl RetentionOutcome {
    fn new(thread_id: ThreadId) -> Self {
        Self {
            thread_id,
            removed: Vec::new(),
            kept_pinned: 0,
            kept_undated: 0,
            snapshots_removed: Vec::new(),
            error: None,
        }
    }

    /// How many checkpoints were removed.
    pub fn removed_count(&self) -> usize {
        self.removed.iter().map(|r| r.checkpoint_ids.len()).sum()
    }

    /// The outcome as a result: the error when the cleanup stopped part-way.
    pub fn into_result(self) -> AppResult<Self> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self),
        }
    }
}

/// Checkpoint management of single threads.
#[derive(Clone)]
pub struct ThreadCheckpointManager {
    checkpoints: Arc<dyn CheckpointRepository>,
    threads: Arc<dyn ThreadRepository>,
    branches: Arc<dyn BranchRepository>,
    snapshots: Arc<dyn SnapshotRepository>,
    clock: Arc<dyn Clock>,
    codec: Option<Arc<dyn MessageCodec>>,
    message_channels: Vec<ChannelName>,
}

impl std::fmt::Debug for ThreadCheckpointManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadCheckpointManager")
            .field("codec", &self.codec)
            .field("message_channels", &self.message_channels)
            .finish_non_exhaustive()
    }
}

impl ThreadCheckpointManager {
    /// A manager over the given ports.
    pub fn new(
        checkpoints: Arc<dyn CheckpointRepository>,
        threads: Arc<dyn ThreadRepository>,
        branches: Arc<dyn BranchRepository>,
        snapshots: Arc<dyn SnapshotRepository>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            checkpoints,
            threads,
            branches,
            snapshots,
            clock,
            codec: None,
            message_channels: vec![ChannelName::parse(MESSAGES_CHANNEL).expect("valid channel")],
        }
    }

    /// A manager over a deployment's stores.
    pub fn from_stores(stores: &Stores, clock: Arc<dyn Clock>) -> Self {
        Self::new(
            stores.checkpoints.clone(),
            stores.threads.clone(),
            stores.branches.clone(),
            stores.snapshots.clone(),
            clock,
        )
    }

    /// Decodes message channels with `codec` for message-level diffs.
    pub fn with_codec(mut self, codec: Arc<dyn MessageCodec>) -> Self {
        self.codec = Some(codec);
        self
    }

    /// The channels whose values are message lists (default: `messages`).
    pub fn with_message_channels(mut self, channels: Vec<ChannelName>) -> Self {
        self.message_channels = channels;
        self
    }

    /// Builds the `put` for a new checkpoint on top of the thread's current head without
    /// writing it: the id is fresh, the parent is the head, versions advance only for
    /// channels whose payload changed. Used directly by sync points, which write several
    /// such puts at once.
    pub async fn prepare_checkpoint(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        new: NewCheckpoint,
    ) -> AppResult<CheckpointPut> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Write).await?;
        let head = self
            .checkpoints
            .get_tuple(thread_id, &new.namespace, None)
            .await?;
        Ok(build_put(
            thread_id,
            new,
            head.as_ref(),
            self.clock.as_ref(),
        ))
    }

    /// Writes prepared puts (possibly of several threads) all or none.
    pub async fn commit_many(&self, puts: Vec<CheckpointPut>) -> AppResult<Vec<CheckpointRef>> {
        Ok(self.checkpoints.put_many(puts).await?)
    }

    /// Creates a checkpoint holding `new` as the thread's new head and returns it.
    pub async fn create_checkpoint(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        new: NewCheckpoint,
    ) -> AppResult<CheckpointTuple> {
        let put = self.prepare_checkpoint(scope, thread_id, new).await?;
        let tuple = tuple_of(&put);
        self.checkpoints.put(put).await?;
        Ok(tuple)
    }

    /// The state at a checkpoint (`None`: the latest of the namespace). A missing checkpoint
    /// is `NotFound`.
    pub async fn restore(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        checkpoint_id: Option<CheckpointId>,
    ) -> AppResult<CheckpointTuple> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        self.get_existing(thread_id, namespace, checkpoint_id).await
    }

    /// Every checkpoint of the thread, newest first; one namespace or all.
    pub async fn list(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        namespace: Option<CheckpointNamespace>,
    ) -> AppResult<Vec<CheckpointTuple>> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        let query = CheckpointQuery {
            namespace,
            ..CheckpointQuery::thread(thread_id.clone())
        };
        Ok(self.checkpoints.list(&query).await?)
    }

    /// One page of the namespace's history, newest first: checkpoints strictly older than
    /// `before` (from the head when `None`). `has_more` comes from fetching one extra row.
    pub async fn history(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        before: Option<CheckpointId>,
        limit: Limit,
    ) -> AppResult<Page<CheckpointTuple>> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        let query = CheckpointQuery {
            before,
            limit: Some(limit.get() + 1),
            ..CheckpointQuery::thread_ns(thread_id.clone(), namespace.clone())
        };
        let rows = self.checkpoints.list(&query).await?;
        Ok(Page::from_look_ahead(rows, limit))
    }

    /// Deletes checkpoints of one namespace with their writes; returns how many existed.
    /// Checkpoints pinned by a snapshot are refused (`Conflict`, nothing deleted): delete
    /// the snapshot first.
    pub async fn delete_checkpoints(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        checkpoint_ids: Vec<CheckpointId>,
    ) -> AppResult<u64> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Write).await?;
        if checkpoint_ids.is_empty() {
            return Ok(0);
        }
        let snapshots = self.snapshots.list_for_thread(thread_id).await?;
        let pinned: Vec<String> = snapshots
            .iter()
            .filter(|s| &s.namespace == namespace && checkpoint_ids.contains(&s.checkpoint_id))
            .map(|s| format!("{} (snapshot {})", s.checkpoint_id, s.name))
            .collect();
        if !pinned.is_empty() {
            return Err(ApplicationError::Domain(
                waymark_domain::DomainError::conflict(
                    "checkpoint",
                    format!(
                        "pinned by a snapshot, delete the snapshot first: {}",
                        pinned.join(", ")
                    ),
                ),
            ));
        }
        Ok(self
            .checkpoints
            .delete_checkpoints(thread_id, namespace, checkpoint_ids)
            .await?)
    }

    /// Counts and sizes of the thread's checkpoints.
    pub async fn summary(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
    ) -> AppResult<CheckpointSummary> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        Ok(self.checkpoints.summary(thread_id).await?)
    }

    /// What changed from checkpoint `from` to checkpoint `to` of one namespace. Channels are
    /// compared by tag and bytes; message channels are also compared message by message
    /// when a codec is configured.
    pub async fn diff(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        from: CheckpointId,
        to: CheckpointId,
    ) -> AppResult<CheckpointDiff> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        let a = self.get_existing(thread_id, namespace, Some(from)).await?;
        let b = self.get_existing(thread_id, namespace, Some(to)).await?;
        Ok(self.diff_tuples(&a, &b))
    }

    fn diff_tuples(&self, a: &CheckpointTuple, b: &CheckpointTuple) -> CheckpointDiff {
        let av = &a.checkpoint.channel_values;
        let bv = &b.checkpoint.channel_values;
        let mut diff = CheckpointDiff {
            from: a.checkpoint.id.clone(),
            to: b.checkpoint.id.clone(),
            added: bv
                .keys()
                .filter(|k| !av.contains_key(*k))
                .cloned()
                .collect(),
            removed: av
                .keys()
                .filter(|k| !bv.contains_key(*k))
                .cloned()
                .collect(),
            changed: Vec::new(),
            unchanged: Vec::new(),
        };
        for (channel, old) in av {
            let Some(new) = bv.get(channel) else { continue };
            if old == new {
                diff.unchanged.push(channel.clone());
                continue;
            }
            let mut change = ChannelChange {
                channel: channel.clone(),
                from_version: a.checkpoint.channel_versions.get(channel).cloned(),
                to_version: b.checkpoint.channel_versions.get(channel).cloned(),
                from_bytes: old.bytes().len(),
                to_bytes: new.bytes().len(),
                type_changed: old.type_tag() != new.type_tag(),
                messages: None,
                decode_error: None,
            };
            if let Some(codec) = &self.codec
                && self.message_channels.contains(channel)
            {
                match (codec.decode_messages(old), codec.decode_messages(new)) {
                    (Ok(x), Ok(y)) => change.messages = Some(diff_messages(&x, &y)),
                    (Err(e), _) | (_, Err(e)) => change.decode_error = Some(e),
                }
            }
            diff.changed.push(change);
        }
        diff
    }

    /// Forks a branch: a new thread whose history is the fork point and its ancestors (same
    /// ids, same parents, with their pending writes), recorded as a [`Branch`] of the source.
    /// Only the fork point's namespace is copied. If any step after the new thread's creation
    /// fails, the new thread is removed again and the error returned.
    pub async fn fork(&self, scope: &UserScope, request: ForkRequest) -> AppResult<ForkOutcome> {
        ensure(
            self.threads.as_ref(),
            scope,
            &request.source_thread_id,
            Access::Write,
        )
        .await?;
        let source = self
            .threads
            .get(scope, &request.source_thread_id)
            .await?
            .ok_or_else(|| ApplicationError::not_found("thread", &request.source_thread_id))?;
        let new_thread_id = match request.new_thread_id.clone() {
            Some(id) => id,
            None => ThreadId::parse(uuid::Uuid::new_v4().to_string())?,
        };
        if new_thread_id == request.source_thread_id {
            return Err(ApplicationError::invalid(
                "new_thread_id",
                "a branch needs a thread of its own, not its source",
            ));
        }
        validate_short_text("display_name", request.display_name.as_deref(), 256)?;
        if self.threads.get(scope, &new_thread_id).await?.is_some() {
            return Err(waymark_domain::DomainError::conflict(
                "thread",
                format!("{new_thread_id} already exists; a branch needs a new thread"),
            )
            .into());
        }
        let chain = self
            .ancestry(
                &request.source_thread_id,
                &request.namespace,
                &request.checkpoint_id,
            )
            .await?;

        let thread = self
            .threads
            .create(
                scope,
                NewThread {
                    id: new_thread_id.clone(),
                    session_id: source.session_id.clone(),
                    assistant_id: source.assistant_id.clone(),
                    display_name: request.display_name.clone(),
                    metadata: request.metadata.clone(),
                },
            )
            .await?;
        match self
            .copy_chain_and_record(&request, &new_thread_id, chain)
            .await
        {
            Ok((branch, copied_checkpoints, copied_writes)) => Ok(ForkOutcome {
                branch,
                thread,
                copied_checkpoints,
                copied_writes,
            }),
            Err(e) => {
                self.discard_thread(scope, &new_thread_id).await;
                Err(e)
            }
        }
    }

    /// The fork point and its ancestors in the namespace, oldest first.
    async fn ancestry(
        &self,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        checkpoint_id: &CheckpointId,
    ) -> AppResult<Vec<CheckpointTuple>> {
        let all = self
            .checkpoints
            .list(&CheckpointQuery::thread_ns(
                thread_id.clone(),
                namespace.clone(),
            ))
            .await?;
        let mut by_id: HashMap<CheckpointId, CheckpointTuple> = all
            .into_iter()
            .map(|t| (t.checkpoint.id.clone(), t))
            .collect();
        let mut chain = Vec::new();
        let mut next = Some(checkpoint_id.clone());
        while let Some(id) = next {
            let Some(tuple) = by_id.remove(&id) else {
                break;
            };
            next = tuple.parent_id.clone();
            chain.push(tuple);
        }
        if chain.is_empty() {
            return Err(ApplicationError::not_found("checkpoint", checkpoint_id));
        }
        chain.reverse();
        Ok(chain)
    }

    async fn copy_chain_and_record(
        &self,
        request: &ForkRequest,
        new_thread_id: &ThreadId,
        chain: Vec<CheckpointTuple>,
    ) -> AppResult<(Branch, usize, usize)> {
        let copied_checkpoints = chain.len();
        let mut copied_writes = 0;
        for tuple in chain {
            let reference = self
                .checkpoints
                .put(CheckpointPut {
                    thread_id: new_thread_id.clone(),
                    namespace: tuple.namespace.clone(),
                    parent_id: tuple.parent_id.clone(),
                    new_versions: tuple.checkpoint.channel_versions.clone(),
                    checkpoint: tuple.checkpoint,
                    metadata: tuple.metadata,
                })
                .await?;
            for batch in write_batches(&reference, tuple.pending_writes) {
                copied_writes += batch.writes.len();
                self.checkpoints.put_writes(batch).await?;
            }
        }
        let branch = self
            .branches
            .create(Branch {
                id: BranchId::new_random(),
                name: request.name.clone(),
                source_thread_id: request.source_thread_id.clone(),
                source_namespace: request.namespace.clone(),
                source_checkpoint_id: request.checkpoint_id.clone(),
                thread_id: new_thread_id.clone(),
                metadata: request.metadata.clone(),
                created_at: self.clock.now(),
            })
            .await?;
        Ok((branch, copied_checkpoints, copied_writes))
    }

    /// Best-effort removal of a half-made branch thread; failures are logged, the caller
    /// reports the original error.
    async fn discard_thread(&self, scope: &UserScope, thread_id: &ThreadId) {
        if let Err(e) = self.checkpoints.delete_thread(thread_id).await {
            tracing::error!(%thread_id, error = %e, "could not remove checkpoints of a failed fork");
        }
        if let Err(e) = self.threads.delete(scope, thread_id).await {
            tracing::error!(%thread_id, error = %e, "could not remove the thread of a failed fork");
        }
    }

    /// Branches forked from the thread, oldest first.
    pub async fn list_branches(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
    ) -> AppResult<Vec<Branch>> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        Ok(self.branches.list_for_thread(thread_id).await?)
    }

    /// The branch the thread carries, if it is a branch.
    pub async fn branch_of(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
    ) -> AppResult<Option<Branch>> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        Ok(self.branches.find_by_branch_thread(thread_id).await?)
    }

    /// Deletes a branch record of `source_thread_id` (the branch's thread stays; delete it
    /// through the thread manager). False when there is no such branch of that thread.
    pub async fn delete_branch(
        &self,
        scope: &UserScope,
        source_thread_id: &ThreadId,
        branch_id: BranchId,
    ) -> AppResult<bool> {
        ensure(
            self.threads.as_ref(),
            scope,
            source_thread_id,
            Access::Write,
        )
        .await?;
        match self.branches.get(branch_id).await? {
            Some(b) if &b.source_thread_id == source_thread_id => {
                Ok(self.branches.delete(branch_id).await?)
            }
            _ => Ok(false),
        }
    }

    /// Takes a named snapshot of an existing checkpoint. Its checkpoint is then never removed
    /// by retention (while the policy exempts snapshots) nor by `delete_checkpoints`.
    pub async fn create_snapshot(
        &self,
        scope: &UserScope,
        request: SnapshotRequest,
    ) -> AppResult<Snapshot> {
        ensure(
            self.threads.as_ref(),
            scope,
            &request.thread_id,
            Access::Write,
        )
        .await?;
        validate_short_text(
            "description",
            request.description.as_deref(),
            MAX_DESCRIPTION_CHARS,
        )?;
        self.get_existing(
            &request.thread_id,
            &request.namespace,
            Some(request.checkpoint_id.clone()),
        )
        .await?;
        Ok(self
            .snapshots
            .create(Snapshot {
                id: SnapshotId::new_random(),
                thread_id: request.thread_id,
                namespace: request.namespace,
                checkpoint_id: request.checkpoint_id,
                name: request.name,
                description: request.description,
                kind: request.kind,
                metadata: request.metadata,
                created_at: self.clock.now(),
            })
            .await?)
    }

    /// The thread's snapshots, oldest first.
    pub async fn list_snapshots(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
    ) -> AppResult<Vec<Snapshot>> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        Ok(self.snapshots.list_for_thread(thread_id).await?)
    }

    /// Deletes a snapshot of the thread (its checkpoint stays). False when the thread has no
    /// such snapshot.
    pub async fn delete_snapshot(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        snapshot_id: SnapshotId,
    ) -> AppResult<bool> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Write).await?;
        match self.snapshots.get(snapshot_id).await? {
            Some(s) if &s.thread_id == thread_id => Ok(self.snapshots.delete(snapshot_id).await?),
            _ => Ok(false),
        }
    }

    /// The state the snapshot pins.
    pub async fn restore_snapshot(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        snapshot_id: SnapshotId,
    ) -> AppResult<CheckpointTuple> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Read).await?;
        let snapshot = self
            .snapshots
            .get(snapshot_id)
            .await?
            .filter(|s| &s.thread_id == thread_id)
            .ok_or_else(|| ApplicationError::not_found("snapshot", snapshot_id))?;
        self.get_existing(thread_id, &snapshot.namespace, Some(snapshot.checkpoint_id))
            .await
    }

    /// Rolls the namespace back to `target` without destroying anything: a new head is
    /// written whose parent is the current head and whose values, versions and
    /// `versions_seen` are the target's, with metadata `{source: "fork", step,
    /// rolled_back_to: <target>}`. The parent chain thus records the rollback, and rolling
    /// "forward" again is just another rollback. Rolling back to the head itself writes
    /// nothing and returns the head.
    pub async fn rollback(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        target: CheckpointId,
    ) -> AppResult<CheckpointTuple> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Write).await?;
        let head = self.get_existing(thread_id, namespace, None).await?;
        if head.checkpoint.id == target {
            return Ok(head);
        }
        let target_tuple = self
            .get_existing(thread_id, namespace, Some(target.clone()))
            .await?;
        let step = head.metadata.step().unwrap_or(-1) + 1;
        let mut metadata = JsonObject::new();
        metadata.insert("source".into(), json!(ROLLBACK_SOURCE));
        metadata.insert("step".into(), json!(step));
        metadata.insert(
            "parents".into(),
            target_tuple
                .metadata
                .0
                .get("parents")
                .cloned()
                .unwrap_or_else(|| json!({})),
        );
        metadata.insert("rolled_back_to".into(), json!(target.as_str()));
        let source = target_tuple.checkpoint;
        let checkpoint = Checkpoint {
            v: source.v,
            ts: python_isoformat(self.clock.now()),
            id: CheckpointId::generate_with(self.clock.as_ref(), step),
            channel_values: source.channel_values,
            channel_versions: source.channel_versions.clone(),
            versions_seen: source.versions_seen,
            updated_channels: None,
            extra: source.extra,
        };
        let put = CheckpointPut {
            thread_id: thread_id.clone(),
            namespace: namespace.clone(),
            parent_id: Some(head.checkpoint.id),
            checkpoint,
            metadata: CheckpointMetadata(metadata),
            new_versions: source.channel_versions,
        };
        let tuple = tuple_of(&put);
        self.checkpoints.put(put).await?;
        Ok(tuple)
    }

    /// Applies a session's checkpoint policy to one thread (the execution half of "session
    /// decides, thread executes"). Per namespace, newest first: the head is always kept (the
    /// thread's current state); beyond `max_checkpoints_per_thread` and older than the
    /// retention (by `ts`, else by the uuid6 time of the id) checkpoints are removed, except
    /// those a snapshot pins when the policy exempts snapshots. When it does not, a removed
    /// pinned checkpoint takes its snapshots with it so none dangles.
    pub async fn apply_retention(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        policy: &waymark_domain::session::CheckpointPolicy,
    ) -> RetentionOutcome {
        let mut outcome = RetentionOutcome::new(thread_id.clone());
        if let Err(e) = self
            .apply_retention_inner(scope, thread_id, policy, &mut outcome)
            .await
        {
            outcome.error = Some(e);
        }
        outcome
    }

    async fn apply_retention_inner(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        policy: &waymark_domain::session::CheckpointPolicy,
        outcome: &mut RetentionOutcome,
    ) -> AppResult<()> {
        ensure(self.threads.as_ref(), scope, thread_id, Access::Write).await?;
        if policy.is_unbounded() {
            return Ok(());
        }
        let all = self
            .checkpoints
            .list(&CheckpointQuery::thread(thread_id.clone()))
            .await?;
        let snapshots = self.snapshots.list_for_thread(thread_id).await?;
        let now = self.clock.now();
        let cutoff = policy.retention().map(|r| now - r);

        let mut by_ns: IndexMap<CheckpointNamespace, Vec<CheckpointTuple>> = IndexMap::new();
        for t in all {
            by_ns.entry(t.namespace.clone()).or_default().push(t);
        }
        for (namespace, mut tuples) in by_ns {
            tuples.sort_by(|a, b| b.checkpoint.id.cmp(&a.checkpoint.id));
            let mut doomed = Vec::new();
            let mut doomed_snapshots = Vec::new();
            for (rank, t) in tuples.iter().enumerate() {
                if rank == 0 {
                    continue;
                }
                let over_count = policy
                    .max_checkpoints_per_thread
                    .is_some_and(|max| rank >= max as usize);
                let over_age = match cutoff {
                    None => false,
                    Some(cutoff) => match taken_at(t) {
                        Some(at) => at < cutoff,
                        None => {
                            if !over_count {
                                outcome.kept_undated += 1;
                            }
                            false
                        }
                    },
                };
                if !(over_count || over_age) {
                    continue;
                }
                let pins: Vec<&Snapshot> = snapshots
                    .iter()
                    .filter(|s| s.namespace == namespace && s.checkpoint_id == t.checkpoint.id)
                    .collect();
                if !pins.is_empty() && policy.exempt_snapshots {
                    outcome.kept_pinned += 1;
                    continue;
                }
                doomed_snapshots.extend(pins.iter().map(|s| s.id));
                doomed.push(t.checkpoint.id.clone());
            }
            if doomed.is_empty() {
                continue;
            }
            self.checkpoints
                .delete_checkpoints(thread_id, &namespace, doomed.clone())
                .await?;
            outcome.removed.push(RemovedCheckpoints {
                namespace,
                checkpoint_ids: doomed,
            });
            for id in doomed_snapshots {
                self.snapshots.delete(id).await?;
                outcome.snapshots_removed.push(id);
            }
        }
        Ok(())
    }

    async fn get_existing(
        &self,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        checkpoint_id: Option<CheckpointId>,
    ) -> AppResult<CheckpointTuple> {
        let what = checkpoint_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_else(|| format!("latest of thread {thread_id}"));
        self.checkpoints
            .get_tuple(thread_id, namespace, checkpoint_id)
            .await?
            .ok_or_else(|| ApplicationError::not_found("checkpoint", what))
    }
}

/// Builds the put of a new head on top of `head`.
fn build_put(
    thread_id: &ThreadId,
    new: NewCheckpoint,
    head: Option<&CheckpointTuple>,
    clock: &dyn Clock,
) -> CheckpointPut {
    let step = head
        .map(|h| h.metadata.step().unwrap_or(-1) + 1)
        .unwrap_or(-1);
    let mut versions = ChannelVersions::new();
    let mut new_versions = ChannelVersions::new();
    let mut updated = Vec::new();
    for (channel, value) in &new.channel_values {
        let old_value = head.and_then(|h| h.checkpoint.channel_values.get(channel));
        let old_version = head.and_then(|h| h.checkpoint.channel_versions.get(channel));
        let version = match (old_value, old_version) {
            (Some(v), Some(ver)) if v == value => ver.clone(),
            (_, ver) => {
                let next = next_version(ver);
                new_versions.insert(channel.clone(), next.clone());
                updated.push(channel.clone());
                next
            }
        };
        versions.insert(channel.clone(), version);
    }
    let mut metadata = JsonObject::new();
    metadata.insert("source".into(), json!("update"));
    metadata.insert("step".into(), json!(step));
    metadata.insert("parents".into(), json!({}));
    for (k, v) in new.metadata {
        metadata.insert(k, v);
    }
    CheckpointPut {
        thread_id: thread_id.clone(),
        namespace: new.namespace,
        parent_id: head.map(|h| h.checkpoint.id.clone()),
        checkpoint: Checkpoint {
            v: 4,
            ts: python_isoformat(clock.now()),
            id: CheckpointId::generate_with(clock, step),
            channel_values: new.channel_values,
            channel_versions: versions,
            versions_seen: head
                .map(|h| h.checkpoint.versions_seen.clone())
                .unwrap_or_default(),
            updated_channels: Some(updated),
            extra: IndexMap::new(),
        },
        metadata: CheckpointMetadata(metadata),
        new_versions,
    }
}

/// The tuple a put will read back as (no pending writes yet).
fn tuple_of(put: &CheckpointPut) -> CheckpointTuple {
    CheckpointTuple {
        thread_id: put.thread_id.clone(),
        namespace: put.namespace.clone(),
        checkpoint: put.checkpoint.clone(),
        metadata: put.metadata.clone(),
        parent_id: put.parent_id.clone(),
        pending_writes: Vec::new(),
    }
}

/// The next version of a channel, keeping the type the thread already uses: integers count
/// up (the conformance suite's style), everything else uses the savers' padded string form.
fn next_version(current: Option<&ChannelVersion>) -> ChannelVersion {
    match current {
        Some(ChannelVersion::Int(i)) => ChannelVersion::Int(i + 1),
        other => ChannelVersion::next(other, random_unit()),
    }
}

/// A float in `[0, 1)` from a v4 uuid's randomness (no extra dependency for one number).
fn random_unit() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() as u64 >> 11;
    bits as f64 / (1u64 << 53) as f64
}

/// Pending writes regrouped into the `put_writes` calls that recreate them on `target`:
/// one call per task, ordinary writes first in index order (so positions reproduce their
/// indices when those were contiguous, as LangGraph writes them), then special channels,
/// whose indices are fixed.
fn write_batches(target: &CheckpointRef, writes: Vec<PendingWrite>) -> Vec<WriteBatch> {
    let mut groups: IndexMap<(String, String), Vec<PendingWrite>> = IndexMap::new();
    for w in writes {
        groups
            .entry((w.task_id.as_str().to_owned(), w.task_path.clone()))
            .or_default()
            .push(w);
    }
    groups
        .into_values()
        .map(|mut ws| {
            ws.sort_by_key(|w| (is_special_write_channel(w.channel.as_str()), w.idx));
            let first = &ws[0];
            WriteBatch {
                target: target.clone(),
                task_id: first.task_id.clone(),
                task_path: first.task_path.clone(),
                writes: ws.into_iter().map(|w| (w.channel, w.value)).collect(),
            }
        })
        .collect()
}

/// Matches messages by id (id-less ones by position) and sorts them into added, removed,
/// changed and unchanged.
pub fn diff_messages(before: &[ChannelMessage], after: &[ChannelMessage]) -> MessageDiff {
    fn key(m: &ChannelMessage, pos: usize) -> String {
        m.id()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("#{pos}"))
    }
    let old: IndexMap<String, &ChannelMessage> = before
        .iter()
        .enumerate()
        .map(|(i, m)| (key(m, i), m))
        .collect();
    let new_keys: HashSet<String> = after.iter().enumerate().map(|(i, m)| key(m, i)).collect();
    let mut diff = MessageDiff::default();
    for (i, m) in after.iter().enumerate() {
        let k = key(m, i);
        match old.get(&k) {
            None => diff.added.push(m.fields().clone()),
            Some(o) if o.fields() == m.fields() => diff.unchanged += 1,
            Some(o) => diff.changed.push(MessageChange {
                key: k,
                before: o.fields().clone(),
                after: m.fields().clone(),
            }),
        }
    }
    for (k, m) in &old {
        if !new_keys.contains(k) {
            diff.removed.push(m.fields().clone());
        }
    }
    diff
}

#[cfg(test)]
mod tests;
