//! Checkpoints over SQL: Waymark's native layout (see the `m0002_checkpoints` migration),
//! reproducing the in-memory store's semantics (`memory::checkpoints`).
//!
//! * `put` stores every carried value whose channel has a version as a payload keyed by
//!   `(thread, namespace, channel, version text)`, written once; values without a version stay
//!   inline in the row's body. Growing msgpack arrays are stored as append deltas
//!   ([`payload`]). A put is one write transaction of two statements: one multi-row `INSERT`
//!   of the payloads new to this process (insert-or-ignore, `RETURNING` what it inserted) and
//!   the row's upsert. Values this process wrote already are not sent again; the upsert is
//!   guarded by their existence, and falls back to writing them whole if another process
//!   deleted them meanwhile.
//! * `get_tuple` runs no transaction: the row and its pending writes in one join, then, in a
//!   second statement, every payload it references (including delta bases, one primary-key
//!   probe each) together with the row's body again. Payloads are immutable and collected only
//!   once unreferenced, so an unchanged row proves the payloads are its own; a changed one
//!   (a concurrent delete or overwrite) makes the read start again in a read transaction.
//! * `list` reads its rows, their pending writes and, with one recursive query per
//!   `(thread, namespace)`, every payload they reference, in one read transaction.
//! * The metadata filter is jsonb containment: `@>` on PostgreSQL (GIN-indexed); on SQLite flat
//!   scalar conditions become `json_type`/`json_extract` predicates and anything else is
//!   checked in Rust before the limit is applied, so the limit stays exact.
//! * Deletes other than whole-thread ones collect payloads no remaining checkpoint of the
//!   namespace references (keeping the bases of live deltas).
//!
//! The reads live in `read`, puts, pending writes and copies in `write`, and every delete
//! (whole threads, runs, ids, `prune`) in `prune`; this module holds the port's entry points.

mod body;
pub(crate) mod payload;
mod prune;
mod read;
#[cfg(test)]
mod tests;
mod write;

use std::sync::Arc;

use async_trait::async_trait;
use waymark_domain::checkpoint::{
    CheckpointCapabilities, CheckpointPut, CheckpointQuery, CheckpointRef, CheckpointRepository,
    CheckpointSummary, CheckpointTuple, PruneStrategy, WriteBatch,
};
use waymark_domain::{CheckpointId, CheckpointNamespace, DomainResult, RunId, ThreadId};

pub(crate) use payload::PayloadCache;
pub(crate) use prune::delete_thread_checkpoints;

use super::Shared;
use super::db::{Kind, Sql, text};

/// Keys per statement when a list of keys is bound.
const KEY_CHUNK: usize = 500;

/// The SQL [`CheckpointRepository`].
pub(crate) struct SqlCheckpointRepository {
    shared: Arc<Shared>,
}

/// Binds a list of text values as `($a, $b, ...)`.
fn in_list<'a>(q: &mut Sql, values: impl IntoIterator<Item = &'a str>) {
    q.push("(");
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.val(text(v));
    }
    q.push(")");
}

impl SqlCheckpointRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn kind(&self) -> Kind {
        self.shared.kind()
    }
}

#[async_trait]
impl CheckpointRepository for SqlCheckpointRepository {
    /// Containment filters; PostgreSQL text and jsonb cannot hold U+0000.
    fn capabilities(&self) -> CheckpointCapabilities {
        CheckpointCapabilities {
            refuses_nul_in_filters: self.kind() == Kind::Postgres,
            ..CheckpointCapabilities::containment()
        }
    }

    async fn put(&self, put: CheckpointPut) -> DomainResult<CheckpointRef> {
        Ok(self.put_many(vec![put]).await?.remove(0))
    }

    async fn put_many(&self, puts: Vec<CheckpointPut>) -> DomainResult<Vec<CheckpointRef>> {
        self.write_puts(puts).await
    }

    async fn put_writes(&self, batch: WriteBatch) -> DomainResult<()> {
        self.write_pending(batch).await
    }

    async fn get_tuple(
        &self,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        checkpoint_id: Option<CheckpointId>,
    ) -> DomainResult<Option<CheckpointTuple>> {
        self.read_tuple(thread_id, namespace, checkpoint_id).await
    }

    async fn list(&self, query: &CheckpointQuery) -> DomainResult<Vec<CheckpointTuple>> {
        self.capabilities().check_filter(&query.filter)?;
        self.read_list(query).await
    }

    async fn delete_thread(&self, thread_id: &ThreadId) -> DomainResult<()> {
        self.delete_whole_thread(thread_id).await
    }

    async fn copy_thread(&self, source: &ThreadId, target: &ThreadId) -> DomainResult<()> {
        self.copy_rows(source, target).await
    }

    async fn prune(&self, thread_ids: Vec<ThreadId>, strategy: PruneStrategy) -> DomainResult<()> {
        self.prune_threads(thread_ids, strategy).await
    }

    async fn delete_for_runs(&self, run_ids: Vec<RunId>) -> DomainResult<()> {
        self.delete_run_checkpoints(run_ids).await
    }

    async fn delete_checkpoints(
        &self,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        checkpoint_ids: Vec<CheckpointId>,
    ) -> DomainResult<u64> {
        self.delete_ids(thread_id, namespace, checkpoint_ids).await
    }

    async fn summary(&self, thread_id: &ThreadId) -> DomainResult<CheckpointSummary> {
        self.read_summary(thread_id).await
    }
}
