//! Checkpoints in memory: Waymark's native storage model (spec `langgraph-compat.md` §1, §4.4-4.9,
//! §6.3), which the SQL stores copy table for table.
//!
//! ## Storage model
//!
//! Per `(thread, namespace)`:
//! * **checkpoint rows** keyed by id: parent id, metadata, and the checkpoint *without* its
//!   versioned channel values. A value whose channel has no entry in `channel_versions` stays
//!   inline in the row; the row also remembers the order of the channels the checkpoint
//!   carried, so values read back in the order they were put.
//! * **payloads**, content-addressed by `(channel, version text)` where the text is
//!   [`ChannelVersion::as_key_text`] (PostgreSQL's `jsonb_each_text` form). `put` stores every
//!   versioned value it carries under its key unless the key is already stored
//!   (insert-or-ignore). Unlike LangGraph's PostgreSQL saver this does not depend on
//!   `new_versions`, so nothing put is ever lost; an unchanged channel is still stored once.
//! * **pending writes** keyed by `(checkpoint, task, idx)`.
//!
//! ## Reading
//!
//! `channel_values` = the channels the checkpoint carried, in their order (inline value, or
//! the payload of the channel's version), followed by any other channel of `channel_versions`
//! whose payload is stored (in `channel_versions` order), as PostgreSQL's blob join does. A
//! versioned channel whose payload is gone is absent.
//!
//! ## Other rules
//!
//! * A `put` with an existing key replaces the row entirely, parent included.
//! * `list` orders by checkpoint id text descending, ties (same id in several threads or
//!   namespaces) by thread then namespace ascending; `limit: Some(0)` returns nothing.
//! * Metadata filters use jsonb containment (spec §4.7, §5).
//! * Deletes other than `delete_thread` collect payloads no remaining checkpoint of the
//!   namespace references.
//! * `prune(KeepLatest)` executes the domain's plan (`checkpoint::prune`, spec §4.9) with
//!   payload collection in place of the blob step, and
//!   does not consult snapshots (retention that honours snapshot pins is the application's
//!   job, through `delete_checkpoints`).
//! * Input refused with `InvalidInput`: a checkpoint that is its own parent, an `extra` key that
//!   names a modelled checkpoint key, a non-finite float version, NUL characters in metadata,
//!   `ts`, `task_path` or node names.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use indexmap::IndexMap;
use waymark_domain::checkpoint::prune::{PruneCandidate, TASKS_CHANNEL, plan_keep_latest};
use waymark_domain::checkpoint::{
    ChannelVersion, Checkpoint, CheckpointCapabilities, CheckpointMetadata, CheckpointPut,
    CheckpointQuery, CheckpointRef, CheckpointRepository, CheckpointSummary, CheckpointTuple,
    PendingWrite, PruneStrategy, TypedValue, WriteBatch, sort_pending_writes,
};
use waymark_domain::{
    ChannelName, CheckpointId, CheckpointNamespace, DomainResult, RunId, TaskId, ThreadId,
};

use super::Shared;
use waymark_domain::json::{check_no_nul, object_contains};

/// Every checkpoint of the backend.
#[derive(Default)]
pub(crate) struct CheckpointTables {
    threads: BTreeMap<ThreadId, ThreadCheckpoints>,
}

/// One thread's namespaces.
#[derive(Default, Clone)]
struct ThreadCheckpoints {
    namespaces: BTreeMap<CheckpointNamespace, Namespace>,
}

/// The rows of one `(thread, namespace)`.
#[derive(Default, Clone)]
struct Namespace {
    checkpoints: BTreeMap<CheckpointId, StoredCheckpoint>,
    /// checkpoint id -> (task id, idx) -> write.
    writes: BTreeMap<CheckpointId, BTreeMap<(TaskId, i64), StoredWrite>>,
    /// channel -> version text -> payload.
    payloads: HashMap<ChannelName, HashMap<String, TypedValue>>,
}

/// A checkpoint row.
#[derive(Clone)]
struct StoredCheckpoint {
    parent_id: Option<CheckpointId>,
    metadata: CheckpointMetadata,
    /// The checkpoint; its `channel_values` hold only the unversioned (inline) values.
    body: Checkpoint,
    /// The channels `channel_values` carried at `put`, in order.
    value_order: Vec<ChannelName>,
}

/// A pending-write row (task id and idx are its key).
#[derive(Clone)]
struct StoredWrite {
    task_path: String,
    channel: ChannelName,
    value: TypedValue,
}

impl Namespace {
    fn is_empty(&self) -> bool {
        self.checkpoints.is_empty() && self.writes.is_empty() && self.payloads.is_empty()
    }

    fn payload(&self, channel: &ChannelName, version: &ChannelVersion) -> Option<&TypedValue> {
        self.payloads
            .get(channel)
            .and_then(|by_version| by_version.get(&version.as_key_text()))
    }

    /// Stores one put; the caller has validated it.
    fn apply_put(
        &mut self,
        parent_id: Option<CheckpointId>,
        metadata: CheckpointMetadata,
        mut body: Checkpoint,
    ) {
        let carried = std::mem::take(&mut body.channel_values);
        let mut inline = IndexMap::new();
        let mut value_order = Vec::with_capacity(carried.len());
        for (channel, value) in carried {
            value_order.push(channel.clone());
            match body.channel_versions.get(&channel) {
                Some(version) => {
                    self.payloads
                        .entry(channel)
                        .or_default()
                        .entry(version.as_key_text())
                        .or_insert(value);
                }
                None => {
                    inline.insert(channel, value);
                }
            }
        }
        body.channel_values = inline;
        self.checkpoints.insert(
            body.id.clone(),
            StoredCheckpoint {
                parent_id,
                metadata,
                body,
                value_order,
            },
        );
    }

    /// The writes of one checkpoint in the mandatory order.
    fn pending_writes(&self, id: &CheckpointId) -> Vec<PendingWrite> {
        let mut writes: Vec<PendingWrite> = self
            .writes
            .get(id)
            .into_iter()
            .flat_map(|rows| rows.iter())
            .map(|((task_id, idx), w)| PendingWrite {
                task_id: task_id.clone(),
                task_path: w.task_path.clone(),
                channel: w.channel.clone(),
                value: w.value.clone(),
                idx: *idx,
            })
            .collect();
        sort_pending_writes(&mut writes);
        writes
    }

    /// Reassembles a stored checkpoint into a tuple.
    fn assemble(
        &self,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        row: &StoredCheckpoint,
    ) -> CheckpointTuple {
        let mut checkpoint = row.body.clone();
        let inline = std::mem::take(&mut checkpoint.channel_values);
        let mut values = IndexMap::with_capacity(row.value_order.len());
        for channel in &row.value_order {
            let value = match inline.get(channel) {
                Some(v) => Some(v),
                None => checkpoint
                    .channel_versions
                    .get(channel)
                    .and_then(|version| self.payload(channel, version)),
            };
            if let Some(v) = value {
                values.insert(channel.clone(), v.clone());
            }
        }
        for (channel, version) in &checkpoint.channel_versions {
            if !values.contains_key(channel)
                && let Some(v) = self.payload(channel, version)
            {
                values.insert(channel.clone(), v.clone());
            }
        }
        checkpoint.channel_values = values;
        CheckpointTuple {
            thread_id: thread_id.clone(),
            namespace: namespace.clone(),
            pending_writes: self.pending_writes(&checkpoint.id),
            checkpoint,
            metadata: row.metadata.clone(),
            parent_id: row.parent_id.clone(),
        }
    }

    /// Removes the checkpoints and their writes; returns how many checkpoints existed.
    fn remove_checkpoints(&mut self, ids: &BTreeSet<CheckpointId>) -> u64 {
        let mut removed = 0;
        for id in ids {
            if self.checkpoints.remove(id).is_some() {
                removed += 1;
            }
            self.writes.remove(id);
        }
        removed
    }

    /// Drops payloads that no remaining checkpoint references through its `channel_versions`.
    fn collect_payloads(&mut self) {
        let mut referenced: HashSet<(&ChannelName, String)> = HashSet::new();
        for row in self.checkpoints.values() {
            for (channel, version) in &row.body.channel_versions {
                referenced.insert((channel, version.as_key_text()));
            }
        }
        let mut kept: HashMap<ChannelName, HashMap<String, TypedValue>> = HashMap::new();
        for (channel, by_version) in std::mem::take(&mut self.payloads) {
            let live: HashMap<String, TypedValue> = by_version
                .into_iter()
                .filter(|(version, _)| referenced.contains(&(&channel, version.clone())))
                .collect();
            if !live.is_empty() {
                kept.insert(channel, live);
            }
        }
        self.payloads = kept;
    }

    /// Bytes of payloads, inline values and writes held by the namespace.
    fn stored_bytes(&self) -> u64 {
        let payloads: usize = self
            .payloads
            .values()
            .flat_map(HashMap::values)
            .map(TypedValue::stored_len)
            .sum();
        let inline: usize = self
            .checkpoints
            .values()
            .map(|row| row.body.payload_len())
            .sum();
        let writes: usize = self
            .writes
            .values()
            .flat_map(BTreeMap::values)
            .map(|w| w.value.stored_len())
            .sum();
        (payloads + inline + writes) as u64
    }

    /// Adds the rows of `source` that this namespace lacks (insert-or-ignore).
    fn absorb(&mut self, source: &Namespace) {
        for (id, row) in &source.checkpoints {
            self.checkpoints
                .entry(id.clone())
                .or_insert_with(|| row.clone());
        }
        for (id, rows) in &source.writes {
            let target = self.writes.entry(id.clone()).or_default();
            for (key, w) in rows {
                target.entry(key.clone()).or_insert_with(|| w.clone());
            }
        }
        for (channel, by_version) in &source.payloads {
            let target = self.payloads.entry(channel.clone()).or_default();
            for (version, value) in by_version {
                target
                    .entry(version.clone())
                    .or_insert_with(|| value.clone());
            }
        }
    }
}

impl ThreadCheckpoints {
    fn drop_empty_namespaces(&mut self) {
        self.namespaces.retain(|_, ns| !ns.is_empty());
    }

    /// `prune(KeepLatest)` of one thread: the domain's plan (spec §4.9), executed without the
    /// blob step (payloads are collected instead).
    fn keep_latest(&mut self) {
        let candidates: Vec<PruneCandidate<'_>> = self
            .namespaces
            .iter()
            .flat_map(|(name, ns)| {
                ns.checkpoints.iter().map(|(id, row)| PruneCandidate {
                    namespace: name.as_str(),
                    id: id.as_str(),
                    parent_id: row.parent_id.as_ref().map(CheckpointId::as_str),
                    format_version: Some(row.body.v),
                    root_parent: row.metadata.parent_in(""),
                })
            })
            .collect();
        let plan = plan_keep_latest(&candidates, |name, id| {
            // Both name rows of this thread, so they parse.
            let (Ok(name), Ok(id)) = (CheckpointNamespace::parse(name), CheckpointId::parse(id))
            else {
                return false;
            };
            self.namespaces
                .get(&name)
                .and_then(|ns| ns.writes.get(&id))
                .is_some_and(|rows| rows.values().any(|w| w.channel.as_str() == TASKS_CHANNEL))
        });
        // The plan borrows the rows; resolve it to owned keys before changing them.
        let doomed: Vec<CheckpointNamespace> = self
            .namespaces
            .keys()
            .filter(|name| plan.drop_namespaces.contains(name.as_str()))
            .cloned()
            .collect();
        let keep: BTreeMap<CheckpointNamespace, BTreeSet<CheckpointId>> = self
            .namespaces
            .iter()
            .filter(|(name, _)| !plan.drop_namespaces.contains(name.as_str()))
            .map(|(name, ns)| {
                let kept = ns
                    .checkpoints
                    .keys()
                    .filter(|id| plan.keeps(name.as_str(), id.as_str()))
                    .cloned()
                    .collect();
                (name.clone(), kept)
            })
            .collect();
        drop(plan);
        for name in &doomed {
            self.namespaces.remove(name);
        }
        // Drop what is not kept with its writes (orphan writes included), clear parents that
        // were dropped, collect payloads.
        for (name, ns) in self.namespaces.iter_mut() {
            let Some(kept) = keep.get(name) else { continue };
            let gone: BTreeSet<CheckpointId> = ns
                .checkpoints
                .keys()
                .filter(|id| !kept.contains(*id))
                .cloned()
                .collect();
            ns.remove_checkpoints(&gone);
            ns.writes.retain(|id, _| kept.contains(id));
            for row in ns.checkpoints.values_mut() {
                if row.parent_id.as_ref().is_some_and(|p| gone.contains(p)) {
                    row.parent_id = None;
                }
            }
            ns.collect_payloads();
        }
        self.drop_empty_namespaces();
    }
}

impl CheckpointTables {
    /// True when the thread holds any checkpoint or write.
    pub(crate) fn holds_thread(&self, thread_id: &ThreadId) -> bool {
        self.threads.contains_key(thread_id)
    }

    /// Removes every checkpoint, write and payload of the thread.
    pub(crate) fn delete_thread(&mut self, thread_id: &ThreadId) {
        self.threads.remove(thread_id);
    }

    fn namespace(
        &self,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
    ) -> Option<&Namespace> {
        self.threads
            .get(thread_id)
            .and_then(|t| t.namespaces.get(namespace))
    }

    fn namespace_mut(
        &mut self,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
    ) -> &mut Namespace {
        self.threads
            .entry(thread_id.clone())
            .or_default()
            .namespaces
            .entry(namespace.clone())
            .or_default()
    }

    fn drop_empty(&mut self) {
        for thread in self.threads.values_mut() {
            thread.drop_empty_namespaces();
        }
        self.threads.retain(|_, t| !t.namespaces.is_empty());
    }
}

/// The in-memory [`CheckpointRepository`].
pub struct MemoryCheckpointRepository {
    shared: Arc<Shared>,
}

impl MemoryCheckpointRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

fn reference(put: &CheckpointPut) -> CheckpointRef {
    CheckpointRef {
        thread_id: put.thread_id.clone(),
        namespace: put.namespace.clone(),
        checkpoint_id: put.checkpoint.id.clone(),
    }
}

#[async_trait]
impl CheckpointRepository for MemoryCheckpointRepository {
    /// Containment filters over any key and value; every serializer tag is stored.
    fn capabilities(&self) -> CheckpointCapabilities {
        CheckpointCapabilities::containment()
    }

    async fn put(&self, put: CheckpointPut) -> DomainResult<CheckpointRef> {
        Ok(self.put_many(vec![put]).await?.remove(0))
    }

    async fn put_many(&self, puts: Vec<CheckpointPut>) -> DomainResult<Vec<CheckpointRef>> {
        puts.iter().try_for_each(CheckpointPut::validate)?;
        let refs: Vec<CheckpointRef> = puts.iter().map(reference).collect();
        let mut state = self.shared.lock();
        for put in puts {
            state
                .checkpoints
                .namespace_mut(&put.thread_id, &put.namespace)
                .apply_put(put.parent_id, put.metadata, put.checkpoint);
        }
        Ok(refs)
    }

    async fn put_writes(&self, batch: WriteBatch) -> DomainResult<()> {
        if batch.writes.is_empty() {
            return Ok(());
        }
        check_no_nul("task_path", &batch.task_path)?;
        let upsert = batch.is_upsert();
        let rows = batch.to_pending_writes();
        let target = batch.target;
        let mut state = self.shared.lock();
        let slot = state
            .checkpoints
            .namespace_mut(&target.thread_id, &target.namespace)
            .writes
            .entry(target.checkpoint_id)
            .or_default();
        for w in rows {
            let key = (w.task_id, w.idx);
            let row = StoredWrite {
                task_path: w.task_path,
                channel: w.channel,
                value: w.value,
            };
            if upsert {
                slot.insert(key, row);
            } else {
                slot.entry(key).or_insert(row);
            }
        }
        Ok(())
    }

    async fn get_tuple(
        &self,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        checkpoint_id: Option<CheckpointId>,
    ) -> DomainResult<Option<CheckpointTuple>> {
        let state = self.shared.lock();
        let Some(ns) = state.checkpoints.namespace(thread_id, namespace) else {
            return Ok(None);
        };
        let row = match &checkpoint_id {
            Some(id) => ns.checkpoints.get(id),
            None => ns.checkpoints.last_key_value().map(|(_, row)| row),
        };
        Ok(row.map(|row| ns.assemble(thread_id, namespace, row)))
    }

    async fn list(&self, query: &CheckpointQuery) -> DomainResult<Vec<CheckpointTuple>> {
        if query.limit == Some(0) {
            return Ok(Vec::new());
        }
        let state = self.shared.lock();
        let mut hits: Vec<(&CheckpointId, &ThreadId, &CheckpointNamespace)> = Vec::new();
        for (thread_id, thread) in &state.checkpoints.threads {
            if query.thread_id.as_ref().is_some_and(|t| t != thread_id) {
                continue;
            }
            for (name, ns) in &thread.namespaces {
                if query.namespace.as_ref().is_some_and(|n| n != name) {
                    continue;
                }
                for (id, row) in &ns.checkpoints {
                    if query.checkpoint_id.as_ref().is_some_and(|c| c != id)
                        || query.before.as_ref().is_some_and(|b| id >= b)
                        || !object_contains(&row.metadata.0, &query.filter)
                    {
                        continue;
                    }
                    hits.push((id, thread_id, name));
                }
            }
        }
        hits.sort_by(|a, b| b.0.cmp(a.0).then(a.1.cmp(b.1)).then(a.2.cmp(b.2)));
        if let Some(limit) = query.limit {
            hits.truncate(limit as usize);
        }
        Ok(hits
            .into_iter()
            .filter_map(|(id, thread_id, name)| {
                let ns = state.checkpoints.namespace(thread_id, name)?;
                let row = ns.checkpoints.get(id)?;
                Some(ns.assemble(thread_id, name, row))
            })
            .collect())
    }

    async fn delete_thread(&self, thread_id: &ThreadId) -> DomainResult<()> {
        self.shared.lock().checkpoints.delete_thread(thread_id);
        Ok(())
    }

    async fn copy_thread(&self, source: &ThreadId, target: &ThreadId) -> DomainResult<()> {
        if source == target {
            return Ok(());
        }
        let mut state = self.shared.lock();
        let Some(from) = state.checkpoints.threads.get(source).cloned() else {
            return Ok(());
        };
        for (name, ns) in &from.namespaces {
            state.checkpoints.namespace_mut(target, name).absorb(ns);
        }
        Ok(())
    }

    async fn prune(&self, thread_ids: Vec<ThreadId>, strategy: PruneStrategy) -> DomainResult<()> {
        let mut state = self.shared.lock();
        for thread_id in &thread_ids {
            match strategy {
                PruneStrategy::Delete => state.checkpoints.delete_thread(thread_id),
                PruneStrategy::KeepLatest => {
                    if let Some(thread) = state.checkpoints.threads.get_mut(thread_id) {
                        thread.keep_latest();
                    }
                }
            }
        }
        state.checkpoints.drop_empty();
        Ok(())
    }

    async fn delete_for_runs(&self, run_ids: Vec<RunId>) -> DomainResult<()> {
        if run_ids.is_empty() {
            return Ok(());
        }
        let runs: HashSet<&str> = run_ids.iter().map(RunId::as_str).collect();
        let mut state = self.shared.lock();
        for thread in state.checkpoints.threads.values_mut() {
            for ns in thread.namespaces.values_mut() {
                let doomed: BTreeSet<CheckpointId> = ns
                    .checkpoints
                    .iter()
                    .filter(|(_, row)| row.metadata.run_id().is_some_and(|r| runs.contains(r)))
                    .map(|(id, _)| id.clone())
                    .collect();
                if !doomed.is_empty() {
                    ns.remove_checkpoints(&doomed);
                    ns.collect_payloads();
                }
            }
        }
        state.checkpoints.drop_empty();
        Ok(())
    }

    async fn delete_checkpoints(
        &self,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        checkpoint_ids: Vec<CheckpointId>,
    ) -> DomainResult<u64> {
        let ids: BTreeSet<CheckpointId> = checkpoint_ids.into_iter().collect();
        let mut state = self.shared.lock();
        let Some(ns) = state
            .checkpoints
            .threads
            .get_mut(thread_id)
            .and_then(|t| t.namespaces.get_mut(namespace))
        else {
            return Ok(0);
        };
        let removed = ns.remove_checkpoints(&ids);
        ns.collect_payloads();
        state.checkpoints.drop_empty();
        Ok(removed)
    }

    async fn summary(&self, thread_id: &ThreadId) -> DomainResult<CheckpointSummary> {
        let state = self.shared.lock();
        let mut summary = CheckpointSummary {
            stored_bytes: Some(0),
            ..CheckpointSummary::default()
        };
        let Some(thread) = state.checkpoints.threads.get(thread_id) else {
            return Ok(summary);
        };
        let mut bytes = 0u64;
        for ns in thread.namespaces.values() {
            summary.checkpoints += ns.checkpoints.len() as u64;
            summary.writes += ns.writes.values().map(|w| w.len() as u64).sum::<u64>();
            if !ns.checkpoints.is_empty() {
                summary.namespaces += 1;
            }
            if let Some((first, _)) = ns.checkpoints.first_key_value()
                && summary.oldest.as_ref().is_none_or(|o| first < o)
            {
                summary.oldest = Some(first.clone());
            }
            if let Some((last, _)) = ns.checkpoints.last_key_value()
                && summary.newest.as_ref().is_none_or(|n| last > n)
            {
                summary.newest = Some(last.clone());
            }
            bytes += ns.stored_bytes();
        }
        summary.stored_bytes = Some(bytes);
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryBackend;
    use serde_json::json;
    use waymark_domain::JsonObject;

    fn ch(s: &str) -> ChannelName {
        ChannelName::parse(s).unwrap()
    }

    fn id(s: &str) -> CheckpointId {
        CheckpointId::parse(s).unwrap()
    }

    fn thread(s: &str) -> ThreadId {
        ThreadId::parse(s).unwrap()
    }

    fn ns(s: &str) -> CheckpointNamespace {
        CheckpointNamespace::parse(s).unwrap()
    }

    fn meta(v: serde_json::Value) -> CheckpointMetadata {
        CheckpointMetadata(v.as_object().cloned().unwrap_or_else(JsonObject::new))
    }

    /// A checkpoint carrying `values` as `(channel, version, byte)`; a `None` version keeps the
    /// value inline.
    fn cp(cid: &str, v: i64, values: &[(&str, Option<i64>, u8)]) -> Checkpoint {
        let mut c = Checkpoint::empty(0);
        c.id = id(cid);
        c.v = v;
        for (name, version, byte) in values {
            c.channel_values
                .insert(ch(name), TypedValue::msgpack(vec![*byte]));
            if let Some(ver) = version {
                c.channel_versions
                    .insert(ch(name), ChannelVersion::Int(*ver));
            }
        }
        c
    }

    fn put(
        t: &str,
        n: &str,
        parent: Option<&str>,
        c: Checkpoint,
        m: serde_json::Value,
    ) -> CheckpointPut {
        CheckpointPut {
            thread_id: thread(t),
            namespace: ns(n),
            parent_id: parent.map(id),
            new_versions: IndexMap::new(),
            checkpoint: c,
            metadata: meta(m),
        }
    }

    fn backend() -> (MemoryBackend, Arc<dyn CheckpointRepository>) {
        let b = MemoryBackend::new();
        let repo = b.stores().checkpoints;
        (b, repo)
    }

    fn payload_count(b: &MemoryBackend, t: &str, n: &str) -> usize {
        let state = b.shared.lock();
        state
            .checkpoints
            .namespace(&thread(t), &ns(n))
            .map_or(0, |ns| ns.payloads.values().map(HashMap::len).sum())
    }

    async fn ids(repo: &Arc<dyn CheckpointRepository>, t: &str, n: &str) -> Vec<String> {
        repo.list(&CheckpointQuery::thread_ns(thread(t), ns(n)))
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.checkpoint.id.to_string())
            .collect()
    }

    #[tokio::test]
    async fn an_unchanged_channel_is_stored_once_across_100_checkpoints() {
        let (b, repo) = backend();
        let mut parent: Option<String> = None;
        for i in 0..100u8 {
            let cid = format!("c{i:03}");
            // `big` never changes (version 1); `step` changes every time.
            let c = cp(
                &cid,
                4,
                &[("big", Some(1), 7), ("step", Some(i64::from(i) + 1), i)],
            );
            repo.put(put("t", "", parent.as_deref(), c, json!({})))
                .await
                .unwrap();
            parent = Some(cid);
        }
        assert_eq!(payload_count(&b, "t", ""), 1 + 100);
        let first = repo
            .get_tuple(&thread("t"), &ns(""), Some(id("c000")))
            .await
            .unwrap()
            .unwrap();
        let last = repo
            .get_tuple(&thread("t"), &ns(""), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(last.checkpoint.id, id("c099"));
        for t in [&first, &last] {
            assert_eq!(
                t.checkpoint.channel_values[&ch("big")],
                TypedValue::msgpack(vec![7])
            );
        }
        assert_eq!(
            last.checkpoint.channel_values[&ch("step")],
            TypedValue::msgpack(vec![99])
        );
        assert_eq!(last.parent_id, Some(id("c098")));
    }

    #[tokio::test]
    async fn values_read_back_in_put_order_with_inline_and_versioned_mixed() {
        let (_b, repo) = backend();
        let c = cp(
            "c1",
            4,
            &[("z", Some(1), 1), ("inline", None, 2), ("a", Some(3), 3)],
        );
        repo.put(put("t", "", None, c.clone(), json!({})))
            .await
            .unwrap();
        let got = repo
            .get_tuple(&thread("t"), &ns(""), None)
            .await
            .unwrap()
            .unwrap();
        let order: Vec<&str> = got
            .checkpoint
            .channel_values
            .keys()
            .map(ChannelName::as_str)
            .collect();
        assert_eq!(order, ["z", "inline", "a"]);
        assert_eq!(got.checkpoint, c);
    }

    #[tokio::test]
    async fn a_versioned_channel_without_a_value_loads_a_stored_payload() {
        let (_b, repo) = backend();
        repo.put(put(
            "t",
            "",
            None,
            cp("c1", 4, &[("x", Some(1), 5)]),
            json!({}),
        ))
        .await
        .unwrap();
        // c2 names x at version 1 but carries no value for it: the payload is joined in.
        let mut c2 = cp("c2", 4, &[]);
        c2.channel_versions.insert(ch("x"), ChannelVersion::Int(1));
        c2.channel_versions
            .insert(ch("gone"), ChannelVersion::Int(9));
        repo.put(put("t", "", Some("c1"), c2, json!({})))
            .await
            .unwrap();
        let got = repo
            .get_tuple(&thread("t"), &ns(""), None)
            .await
            .unwrap()
            .unwrap();
        let keys: Vec<&str> = got
            .checkpoint
            .channel_values
            .keys()
            .map(ChannelName::as_str)
            .collect();
        assert_eq!(keys, ["x"]);
    }

    #[tokio::test]
    async fn put_many_writes_nothing_when_one_put_is_invalid() {
        let (_b, repo) = backend();
        let good = put("t", "", None, cp("c1", 4, &[("x", Some(1), 1)]), json!({}));
        let bad = put("u", "", Some("c2"), cp("c2", 4, &[]), json!({}));
        let e = repo.put_many(vec![good, bad]).await.unwrap_err();
        assert!(e.is_invalid_input(), "{e}");
        assert!(
            repo.get_tuple(&thread("t"), &ns(""), None)
                .await
                .unwrap()
                .is_none()
        );
        let mut nul = put("t", "", None, cp("c1", 4, &[]), json!({"a": ["x\u{0}"]}));
        assert!(repo.put(nul.clone()).await.unwrap_err().is_invalid_input());
        nul.metadata = meta(json!({}));
        nul.checkpoint
            .extra
            .insert("channel_values".into(), TypedValue::null());
        assert!(repo.put(nul).await.unwrap_err().is_invalid_input());
    }

    #[tokio::test]
    async fn prune_keep_latest_keeps_heads_clears_dangling_parents_and_collects_payloads() {
        let (b, repo) = backend();
        repo.put(put(
            "t",
            "",
            None,
            cp("c1", 4, &[("a", Some(1), 1)]),
            json!({}),
        ))
        .await
        .unwrap();
        repo.put(put(
            "t",
            "",
            Some("c1"),
            cp("c2", 4, &[("a", Some(2), 2)]),
            json!({}),
        ))
        .await
        .unwrap();
        repo.put(put(
            "t",
            "",
            Some("c2"),
            cp("c3", 4, &[("a", Some(2), 2), ("b", Some(1), 3)]),
            json!({}),
        ))
        .await
        .unwrap();
        // A subgraph hanging from the kept head survives (its own head only).
        for (cid, parent) in [("s1", None), ("s2", Some("s1"))] {
            repo.put(put(
                "t",
                "sub:1",
                parent,
                cp(cid, 4, &[("x", Some(1), 9)]),
                json!({"parents": {"": "c3"}}),
            ))
            .await
            .unwrap();
        }
        // A subgraph hanging from a root checkpoint that is pruned goes whole.
        repo.put(put(
            "t",
            "sub:2",
            None,
            cp("s9", 4, &[]),
            json!({"parents": {"": "c1"}}),
        ))
        .await
        .unwrap();
        // A subgraph whose root checkpoint does not exist is pruned like any namespace.
        repo.put(put(
            "t",
            "sub:3",
            None,
            cp("s7", 4, &[]),
            json!({"parents": {"": "nope"}}),
        ))
        .await
        .unwrap();
        let w = |cid: &str, n: &str| WriteBatch {
            target: CheckpointRef {
                thread_id: thread("t"),
                namespace: ns(n),
                checkpoint_id: id(cid),
            },
            task_id: TaskId::parse("task").unwrap(),
            task_path: String::new(),
            writes: vec![(ch("w"), TypedValue::null())],
        };
        repo.put_writes(w("c2", "")).await.unwrap();
        repo.put_writes(w("c3", "")).await.unwrap();
        repo.put(put("other", "", None, cp("o1", 4, &[]), json!({})))
            .await
            .unwrap();
        repo.put(put("other", "", Some("o1"), cp("o2", 4, &[]), json!({})))
            .await
            .unwrap();
        assert_eq!(payload_count(&b, "t", ""), 3);

        repo.prune(
            vec![thread("t"), thread("missing")],
            PruneStrategy::KeepLatest,
        )
        .await
        .unwrap();

        assert_eq!(ids(&repo, "t", "").await, ["c3"]);
        assert_eq!(ids(&repo, "t", "sub:1").await, ["s2"]);
        assert!(ids(&repo, "t", "sub:2").await.is_empty());
        assert_eq!(ids(&repo, "t", "sub:3").await, ["s7"]);
        assert_eq!(ids(&repo, "other", "").await, ["o2", "o1"]);
        let head = repo
            .get_tuple(&thread("t"), &ns(""), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(head.parent_id, None, "the deleted parent is cleared");
        assert_eq!(head.pending_writes.len(), 1);
        // a@1 is referenced by nobody any more; a@2 and b@1 are.
        assert_eq!(payload_count(&b, "t", ""), 2);
        let s2 = repo
            .get_tuple(&thread("t"), &ns("sub:1"), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s2.parent_id, None);
        let summary = repo.summary(&thread("t")).await.unwrap();
        assert_eq!(
            (summary.checkpoints, summary.writes, summary.namespaces),
            (3, 1, 3)
        );
    }

    #[tokio::test]
    async fn prune_keeps_a_legacy_heads_parent_with_task_writes() {
        let (_b, repo) = backend();
        repo.put(put("t", "", None, cp("c1", 1, &[]), json!({})))
            .await
            .unwrap();
        repo.put(put("t", "", Some("c1"), cp("c2", 1, &[]), json!({})))
            .await
            .unwrap();
        repo.put(put("t", "", Some("c2"), cp("c3", 1, &[]), json!({})))
            .await
            .unwrap();
        repo.put_writes(WriteBatch {
            target: CheckpointRef {
                thread_id: thread("t"),
                namespace: ns(""),
                checkpoint_id: id("c2"),
            },
            task_id: TaskId::parse("task").unwrap(),
            task_path: String::new(),
            writes: vec![(ch(TASKS_CHANNEL), TypedValue::null())],
        })
        .await
        .unwrap();
        repo.prune(vec![thread("t")], PruneStrategy::KeepLatest)
            .await
            .unwrap();
        assert_eq!(ids(&repo, "t", "").await, ["c3", "c2"]);
        let c2 = repo
            .get_tuple(&thread("t"), &ns(""), Some(id("c2")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c2.parent_id, None);
        assert_eq!(c2.pending_writes.len(), 1);
    }

    #[tokio::test]
    async fn targeted_deletes_keep_survivor_parents_and_collect_payloads() {
        let (b, repo) = backend();
        repo.put(put(
            "t",
            "",
            None,
            cp("c1", 4, &[("a", Some(1), 1)]),
            json!({"run_id": "r1"}),
        ))
        .await
        .unwrap();
        repo.put(put(
            "t",
            "",
            Some("c1"),
            cp("c2", 4, &[("a", Some(2), 2)]),
            json!({"run_id": "r2"}),
        ))
        .await
        .unwrap();
        repo.put(put(
            "t",
            "x:1",
            None,
            cp("c1", 4, &[]),
            json!({"run_id": "r1"}),
        ))
        .await
        .unwrap();
        repo.delete_for_runs(vec![RunId::parse("r1").unwrap()])
            .await
            .unwrap();
        assert_eq!(ids(&repo, "t", "").await, ["c2"]);
        assert!(ids(&repo, "t", "x:1").await.is_empty());
        let c2 = repo
            .get_tuple(&thread("t"), &ns(""), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c2.parent_id, Some(id("c1")));
        assert_eq!(payload_count(&b, "t", ""), 1);
        let n = repo
            .delete_checkpoints(&thread("t"), &ns(""), vec![id("c2"), id("c404")])
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(payload_count(&b, "t", ""), 0);
        assert_eq!(
            repo.summary(&thread("t")).await.unwrap().stored_bytes,
            Some(0)
        );
    }

    #[tokio::test]
    async fn copy_thread_is_insert_or_ignore_and_summary_counts_bytes() {
        let (_b, repo) = backend();
        repo.put(put(
            "src",
            "",
            None,
            cp("c1", 4, &[("a", Some(1), 1), ("i", None, 2)]),
            json!({}),
        ))
        .await
        .unwrap();
        repo.put(put(
            "dst",
            "",
            None,
            cp("c1", 4, &[("a", Some(1), 7)]),
            json!({"mine": true}),
        ))
        .await
        .unwrap();
        repo.put(put(
            "src",
            "",
            Some("c1"),
            cp("c2", 4, &[("a", Some(1), 1)]),
            json!({}),
        ))
        .await
        .unwrap();
        repo.copy_thread(&thread("src"), &thread("dst"))
            .await
            .unwrap();
        repo.copy_thread(&thread("nothing"), &thread("dst"))
            .await
            .unwrap();
        repo.copy_thread(&thread("src"), &thread("src"))
            .await
            .unwrap();
        assert_eq!(ids(&repo, "dst", "").await, ["c2", "c1"]);
        let kept = repo
            .get_tuple(&thread("dst"), &ns(""), Some(id("c1")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.metadata, meta(json!({"mine": true})));
        let c2 = repo
            .get_tuple(&thread("dst"), &ns(""), None)
            .await
            .unwrap()
            .unwrap();
        // The target's own payload for a@1 wins (content addressing, insert-or-ignore).
        assert_eq!(
            c2.checkpoint.channel_values[&ch("a")],
            TypedValue::msgpack(vec![7])
        );
        let s = repo.summary(&thread("src")).await.unwrap();
        // One payload (a@1) plus the inline value, 8 bytes each (tag "msgpack" + 1 byte),
        // plus the `extra` of the two checkpoints (none).
        assert_eq!(s.stored_bytes, Some(16));
        assert_eq!((s.oldest, s.newest), (Some(id("c1")), Some(id("c2"))));
        assert_eq!(repo.summary(&thread("none")).await.unwrap().checkpoints, 0);
    }
}
