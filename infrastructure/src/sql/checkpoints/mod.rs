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

mod body;
pub(crate) mod payload;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::ConnectionTrait;
use waymark_domain::checkpoint::{
    CheckpointCapabilities, CheckpointMetadata, CheckpointPut, CheckpointQuery, CheckpointRef,
    CheckpointRepository, CheckpointSummary, CheckpointTuple, PendingWrite, PruneStrategy,
    TypedValue, WriteBatch, sort_pending_writes,
};
use waymark_domain::{
    ChannelName, CheckpointId, CheckpointNamespace, DomainError, DomainResult, JsonObject,
    JsonValue, RunId, ThreadId,
};

pub(crate) use payload::PayloadCache;

use super::Shared;
use super::db::{self, Kind, Row, Sql, bytes, int, opt_text, text};
use super::error::{DbResultExt, SqlError, SqlResult};
use waymark_domain::json::{check_no_nul, object_contains};

/// The channel of legacy `Send` packets (prune's v < 4 parent rule).
const TASKS_CHANNEL: &str = "__pregel_tasks";

/// Keys per statement when a list of keys is bound.
const KEY_CHUNK: usize = 500;

/// Up to this many payload keys, PostgreSQL reads them by one probe each (see `payload_query`).
const LATERAL_KEYS: usize = 32;

/// Payload rows per `INSERT` (each is one term of a compound `SELECT`; SQLite allows 500).
const PAYLOAD_CHUNK: usize = 100;

/// A payload a put stores: whole, or as an append delta over a cached base.
struct NewPayload<'a> {
    channel: &'a ChannelName,
    version: String,
    value: &'a TypedValue,
    delta: Option<(Vec<u8>, payload::CachedPayload)>,
}

/// The columns of a checkpoint row as reads select them.
const CHECKPOINT_COLUMNS: &str =
    "thread_id, ns, checkpoint_id, parent_id, CAST(metadata AS TEXT) AS metadata, body";

/// The SQL [`CheckpointRepository`].
pub(crate) struct SqlCheckpointRepository {
    shared: Arc<Shared>,
}

/// A checkpoint row as read.
struct CpRow {
    thread_id: ThreadId,
    ns: CheckpointNamespace,
    id: CheckpointId,
    parent_id: Option<CheckpointId>,
    metadata: JsonObject,
    body: Vec<u8>,
}

fn cp_row(r: &Row<'_>) -> SqlResult<CpRow> {
    Ok(CpRow {
        thread_id: r.id("thread_id")?,
        ns: r.id("ns")?,
        id: r.id("checkpoint_id")?,
        parent_id: r.opt_id("parent_id")?,
        metadata: r.json_text_object("metadata")?,
        body: r.bytes("body")?,
    })
}

/// Rows of one namespace being assembled: their positions and the payload keys they need.
type NsGroup = (Vec<usize>, BTreeSet<(String, String)>);

/// A pending-write row key within a checkpoint.
type WriteKey = (String, i64);

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

/// Deletes every checkpoint, write and payload of the thread in the caller's transaction.
pub(crate) async fn delete_thread_checkpoints<C: ConnectionTrait>(
    c: &C,
    kind: Kind,
    thread_id: &ThreadId,
    op: &'static str,
) -> SqlResult<()> {
    for sql in [
        "DELETE FROM waymark_checkpoint_writes WHERE thread_id = $1",
        "DELETE FROM waymark_checkpoints WHERE thread_id = $1",
        "DELETE FROM waymark_checkpoint_payloads WHERE thread_id = $1",
    ] {
        db::exec(c, kind.stmt(sql, vec![text(thread_id.as_str())]), op).await?;
    }
    Ok(())
}

/// A stored payload row as read for reassembly.
struct PayloadRow {
    type_tag: String,
    data: Vec<u8>,
    base_version: Option<String>,
}

/// Payloads of one `(thread, namespace)`: rows by (channel, version) and the rebuilt values.
#[derive(Default)]
struct PayloadSet {
    rows: HashMap<(String, String), PayloadRow>,
    built: HashMap<(String, String), TypedValue>,
}

impl PayloadSet {
    /// The whole value of a payload. A delta chain is rebuilt in one pass: the target's
    /// header, the body of the nearest snapshot (or already rebuilt value) below it, then the
    /// appended elements of every delta on the way back up, so the cost is the size of the
    /// result whatever the chain's length. Results are memoized for the other checkpoints of
    /// the same read.
    fn value(
        &mut self,
        channel: &str,
        version: &str,
        op: &'static str,
    ) -> SqlResult<Option<TypedValue>> {
        let key = (channel.to_owned(), version.to_owned());
        if let Some(v) = self.built.get(&key) {
            return Ok(Some(v.clone()));
        }
        let Some(target) = self.rows.get(&key) else {
            return Ok(None);
        };
        if target.base_version.is_none() {
            let v = TypedValue::new(target.type_tag.clone(), target.data.clone())
                .map_err(|e| SqlError::corrupt(op, e))?;
            self.built.insert(key, v.clone());
            return Ok(Some(v));
        }
        // Walk down: the deltas from the target to (excluding) the base.
        let mut deltas: Vec<&[u8]> = Vec::new();
        let mut cur = &key;
        let mut owned;
        let base: &[u8] = loop {
            if let Some(v) = self.built.get(cur) {
                break v.bytes();
            }
            let row = self.rows.get(cur).ok_or_else(|| {
                SqlError::corrupt(op, format!("payload {cur:?} is missing its base"))
            })?;
            match &row.base_version {
                None => break &row.data,
                Some(b) => {
                    deltas.push(&row.data);
                    owned = (channel.to_owned(), b.clone());
                    cur = &owned;
                }
            }
            if deltas.len() as i64 > payload::MAX_DEPTH * 4 + 8 {
                return Err(SqlError::corrupt(op, "payload delta chain too long"));
            }
        };
        let whole = payload::apply_chain(base, &deltas)
            .ok_or_else(|| SqlError::corrupt(op, "bad payload delta"))?;
        let v = TypedValue::new(target.type_tag.clone(), whole)
            .map_err(|e| SqlError::corrupt(op, e))?;
        self.built.insert(key, v.clone());
        Ok(Some(v))
    }
}

impl SqlCheckpointRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn kind(&self) -> Kind {
        self.shared.kind()
    }

    /// Fetches the payload rows for `keys` of one namespace and every delta base they need.
    async fn fetch_payloads<C: ConnectionTrait>(
        &self,
        c: &C,
        thread_id: &ThreadId,
        ns: &CheckpointNamespace,
        keys: &BTreeSet<(String, String)>,
        op: &'static str,
    ) -> SqlResult<PayloadSet> {
        Ok(self
            .fetch_payloads_guarded(c, thread_id, ns, keys, None, op)
            .await?
            .0)
    }

    /// [`Self::fetch_payloads`], also returning, from the same statement (one snapshot), the
    /// body of checkpoint `guard` if it still exists.
    ///
    /// The chain is walked over keys only (small rows, cheap `UNION` de-duplication), one
    /// primary-key probe per delta: `CROSS JOIN` makes SQLite keep the keys as the outer loop
    /// (left to itself, the planner of the bundled SQLite scanned the payload table once per
    /// delta, a cost growing with the thread). The bytes are joined once at the end.
    async fn fetch_payloads_guarded<C: ConnectionTrait>(
        &self,
        c: &C,
        thread_id: &ThreadId,
        ns: &CheckpointNamespace,
        keys: &BTreeSet<(String, String)>,
        guard: Option<&CheckpointId>,
        op: &'static str,
    ) -> SqlResult<(PayloadSet, Option<Vec<u8>>)> {
        let kind = self.kind();
        let mut set = PayloadSet::default();
        let mut guard_body = None;
        let keys: Vec<&(String, String)> = keys.iter().collect();
        let chunks: Vec<&[&(String, String)]> = keys.chunks(KEY_CHUNK).collect();
        for (chunk_no, chunk) in chunks.iter().enumerate() {
            // The guard goes with the last statement: a row still there then was there all along.
            let last = chunk_no + 1 == chunks.len();
            let q = payload_query(kind, thread_id, ns, chunk, guard.filter(|_| last));
            for row in db::all(c, q.build(kind), op).await? {
                let r = Row::new(&row, kind, op);
                let channel = r.text("channel")?;
                if channel.is_empty() {
                    guard_body = Some(r.bytes("data")?);
                    continue;
                }
                set.rows.insert(
                    (channel, r.text("version")?),
                    PayloadRow {
                        type_tag: r.text("type_tag")?,
                        data: r.bytes("data")?,
                        base_version: r.opt_text("base_version")?,
                    },
                );
            }
        }
        Ok((set, guard_body))
    }

    /// Pending writes of the given checkpoints of one namespace, by checkpoint id.
    async fn fetch_writes<C: ConnectionTrait>(
        &self,
        c: &C,
        thread_id: &ThreadId,
        ns: &CheckpointNamespace,
        ids: &[&CheckpointId],
        op: &'static str,
    ) -> SqlResult<HashMap<CheckpointId, Vec<PendingWrite>>> {
        let kind = self.kind();
        let mut out: HashMap<CheckpointId, Vec<PendingWrite>> = HashMap::new();
        for chunk in ids.chunks(KEY_CHUNK) {
            let mut q = Sql::new(
                "SELECT checkpoint_id, task_id, idx, task_path, channel, type_tag, data \
                 FROM waymark_checkpoint_writes WHERE thread_id = ",
            );
            q.val(text(thread_id.as_str()))
                .push(" AND ns = ")
                .val(text(ns.as_str()))
                .push(" AND checkpoint_id IN ");
            in_list(&mut q, chunk.iter().map(|i| i.as_str()));
            for row in db::all(c, q.build(kind), op).await? {
                let r = Row::new(&row, kind, op);
                let w = PendingWrite {
                    task_id: r.id("task_id")?,
                    task_path: r.text("task_path")?,
                    channel: r.id("channel")?,
                    value: TypedValue::new(r.text("type_tag")?, r.bytes("data")?)
                        .map_err(|e| SqlError::corrupt(op, e))?,
                    idx: r.i64("idx")?,
                };
                out.entry(r.id("checkpoint_id")?).or_default().push(w);
            }
        }
        for ws in out.values_mut() {
            sort_pending_writes(ws);
        }
        Ok(out)
    }

    /// Turns rows (in their final order) into tuples with writes and payloads.
    async fn assemble<C: ConnectionTrait>(
        &self,
        c: &C,
        rows: Vec<CpRow>,
        op: &'static str,
    ) -> SqlResult<Vec<CheckpointTuple>> {
        // Decode bodies and group by namespace.
        let mut decoded = Vec::with_capacity(rows.len());
        let mut groups: BTreeMap<(ThreadId, CheckpointNamespace), NsGroup> = BTreeMap::new();
        for (i, row) in rows.iter().enumerate() {
            let body = body::decode(&row.body, row.id.clone())
                .map_err(|e| SqlError::corrupt(op, format!("checkpoint body: {e}")))?;
            let g = groups
                .entry((row.thread_id.clone(), row.ns.clone()))
                .or_default();
            g.0.push(i);
            for (channel, version) in &body.checkpoint.channel_versions {
                if !body.checkpoint.channel_values.contains_key(channel) {
                    g.1.insert((channel.as_str().to_owned(), version.as_key_text()));
                }
            }
            decoded.push(body);
        }
        let mut writes: Vec<Vec<PendingWrite>> = vec![Vec::new(); rows.len()];
        let mut values: Vec<indexmap::IndexMap<ChannelName, TypedValue>> =
            vec![indexmap::IndexMap::new(); rows.len()];
        for ((thread_id, ns), (members, keys)) in groups {
            let mut payloads = if keys.is_empty() {
                PayloadSet::default()
            } else {
                self.fetch_payloads(c, &thread_id, &ns, &keys, op).await?
            };
            let ids: Vec<&CheckpointId> = members.iter().map(|&i| &rows[i].id).collect();
            let mut by_id = self.fetch_writes(c, &thread_id, &ns, &ids, op).await?;
            for &i in &members {
                writes[i] = by_id.remove(&rows[i].id).unwrap_or_default();
                values[i] = fill_values(&decoded[i], &mut payloads, op)?;
            }
        }
        let mut tuples = Vec::with_capacity(rows.len());
        for (((row, body), w), vals) in rows.into_iter().zip(decoded).zip(writes).zip(values) {
            let mut checkpoint = body.checkpoint;
            checkpoint.channel_values = vals;
            tuples.push(CheckpointTuple {
                thread_id: row.thread_id,
                namespace: row.ns,
                checkpoint,
                metadata: CheckpointMetadata(row.metadata),
                parent_id: row.parent_id,
                pending_writes: w,
            });
        }
        Ok(tuples)
    }

    /// `get_tuple` in at most two statements and no transaction: the row with its pending
    /// writes (one join), then its payloads together with the row's body again. Payloads are
    /// immutable and only collected once no checkpoint references them, so if the second
    /// statement still sees the same row, the payloads it returns are the row's, and the
    /// result is what one snapshot would have read. `Ok(None)` means a concurrent write or
    /// delete changed the row in between (the caller reads again in a transaction).
    async fn get_tuple_fast(
        &self,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        checkpoint_id: Option<&CheckpointId>,
    ) -> SqlResult<Option<Option<CheckpointTuple>>> {
        const OP: &str = "checkpoints.get_tuple";
        let kind = self.kind();
        let conn = &self.shared.db.conn;
        let mut q = Sql::new(
            "SELECT c.thread_id, c.ns, c.checkpoint_id, c.parent_id, c.metadata, c.body, \
             w.task_id AS w_task_id, w.idx AS w_idx, w.task_path AS w_task_path, \
             w.channel AS w_channel, w.type_tag AS w_type_tag, w.data AS w_data FROM (SELECT \
             thread_id, ns, checkpoint_id, parent_id, CAST(metadata AS TEXT) AS metadata, body \
             FROM waymark_checkpoints WHERE thread_id = ",
        );
        q.val(text(thread_id.as_str()))
            .push(" AND ns = ")
            .val(text(namespace.as_str()));
        match checkpoint_id {
            Some(id) => {
                q.push(" AND checkpoint_id = ").val(text(id.as_str()));
            }
            None => {
                q.push(" ORDER BY checkpoint_id DESC LIMIT 1");
            }
        }
        q.push(
            ") c LEFT JOIN waymark_checkpoint_writes w ON w.thread_id = c.thread_id \
             AND w.ns = c.ns AND w.checkpoint_id = c.checkpoint_id",
        );
        let rows = db::all(conn, q.build(kind), OP).await?;
        let Some(first) = rows.first() else {
            return Ok(Some(None));
        };
        let row = cp_row(&Row::new(first, kind, OP))?;
        let mut writes = Vec::new();
        for r in &rows {
            let r = Row::new(r, kind, OP);
            let Some(task_id) = r.opt_id("w_task_id")? else {
                continue;
            };
            writes.push(PendingWrite {
                task_id,
                task_path: r.text("w_task_path")?,
                channel: r.id("w_channel")?,
                value: TypedValue::new(r.text("w_type_tag")?, r.bytes("w_data")?)
                    .map_err(|e| SqlError::corrupt(OP, e))?,
                idx: r.i64("w_idx")?,
            });
        }
        sort_pending_writes(&mut writes);
        let body = body::decode(&row.body, row.id.clone())
            .map_err(|e| SqlError::corrupt(OP, format!("checkpoint body: {e}")))?;
        let keys: BTreeSet<(String, String)> = body
            .checkpoint
            .channel_versions
            .iter()
            .filter(|(ch, _)| !body.checkpoint.channel_values.contains_key(*ch))
            .map(|(ch, ver)| (ch.as_str().to_owned(), ver.as_key_text()))
            .collect();
        let mut payloads = if keys.is_empty() {
            PayloadSet::default()
        } else {
            let (set, seen) = self
                .fetch_payloads_guarded(conn, thread_id, namespace, &keys, Some(&row.id), OP)
                .await?;
            if seen.as_deref() != Some(row.body.as_slice()) {
                return Ok(None);
            }
            set
        };
        let values = fill_values(&body, &mut payloads, OP)?;
        let mut checkpoint = body.checkpoint;
        checkpoint.channel_values = values;
        Ok(Some(Some(CheckpointTuple {
            thread_id: row.thread_id,
            namespace: row.ns,
            checkpoint,
            metadata: CheckpointMetadata(row.metadata),
            parent_id: row.parent_id,
            pending_writes: writes,
        })))
    }

    /// Writes one put inside the caller's write transaction, in two statements when nothing
    /// unusual happens: one multi-row `INSERT` of the payloads that are new to this process
    /// (an append delta guarded by its base's existence, snapshots otherwise) and the
    /// checkpoint row's upsert, guarded by the existence of the payloads it skipped because
    /// this process wrote them already. A failed guard (a base or a skipped payload deleted
    /// by someone else meanwhile) falls back to writing whole values. Cache entries to record
    /// after commit go to `cache_updates`.
    async fn write_put<C: ConnectionTrait>(
        &self,
        c: &C,
        put: &CheckpointPut,
        cache_updates: &mut Vec<(
            (ThreadId, CheckpointNamespace, ChannelName),
            payload::CachedPayload,
        )>,
        op: &'static str,
    ) -> SqlResult<()> {
        let cp = &put.checkpoint;
        let cache = &self.shared.payload_cache;
        // Versioned carried values: skipped (this process wrote that version), or new.
        let mut skipped: Vec<(&ChannelName, String, &TypedValue)> = Vec::new();
        let mut fresh: Vec<NewPayload<'_>> = Vec::new();
        for (channel, value) in &cp.channel_values {
            let Some(ver) = cp.channel_versions.get(channel) else {
                continue;
            };
            let version = ver.as_key_text();
            let cached = cache.get(&put.thread_id, &put.namespace, channel);
            if cached.as_ref().is_some_and(|b| b.version == version) {
                skipped.push((channel, version, value));
                continue;
            }
            let delta = cached.and_then(|base| {
                if value.type_tag() != TypedValue::MSGPACK || base.depth >= payload::MAX_DEPTH {
                    return None;
                }
                let d = payload::delta(&base.bytes, value.bytes())?;
                (base.chain_bytes + d.len() <= base.snapshot_len).then_some((d, base))
            });
            fresh.push(NewPayload {
                channel,
                version,
                value,
                delta,
            });
        }
        let inserted = self.insert_payloads(c, put, &fresh, op).await?;
        for p in &fresh {
            let key = (p.channel.as_str().to_owned(), p.version.clone());
            let whole = || Arc::new(p.value.bytes().to_vec());
            let entry = if inserted.contains(&key) {
                Some(match &p.delta {
                    Some((d, base)) => payload::CachedPayload {
                        version: p.version.clone(),
                        bytes: whole(),
                        depth: base.depth + 1,
                        chain_bytes: base.chain_bytes + d.len(),
                        snapshot_len: base.snapshot_len,
                    },
                    None => payload::CachedPayload::snapshot(p.version.clone(), whole()),
                })
            } else if p.delta.is_some() {
                // The delta was refused: its base is gone, or the key exists already. A
                // snapshot (or nothing, if the key exists) is stored instead.
                let snap = [NewPayload {
                    channel: p.channel,
                    version: p.version.clone(),
                    value: p.value,
                    delta: None,
                }];
                let done = self.insert_payloads(c, put, &snap, op).await?;
                done.contains(&key)
                    .then(|| payload::CachedPayload::snapshot(p.version.clone(), whole()))
            } else {
                None
            };
            if let Some(entry) = entry {
                cache_updates.push((
                    (
                        put.thread_id.clone(),
                        put.namespace.clone(),
                        p.channel.clone(),
                    ),
                    entry,
                ));
            }
        }
        if !self.upsert_checkpoint(c, put, &skipped, op).await? {
            // A payload this process wrote was deleted since: store the skipped values whole.
            let whole: Vec<NewPayload<'_>> = skipped
                .iter()
                .map(|(channel, version, value)| NewPayload {
                    channel,
                    version: version.clone(),
                    value,
                    delta: None,
                })
                .collect();
            self.insert_payloads(c, put, &whole, op).await?;
            if !self.upsert_checkpoint(c, put, &[], op).await? {
                return Err(SqlError::corrupt(op, "checkpoint upsert wrote no row"));
            }
        }
        Ok(())
    }

    /// Inserts payloads of one put (insert-or-ignore, deltas only over an existing base) in
    /// one statement per chunk; returns the keys actually inserted.
    async fn insert_payloads<C: ConnectionTrait>(
        &self,
        c: &C,
        put: &CheckpointPut,
        rows: &[NewPayload<'_>],
        op: &'static str,
    ) -> SqlResult<HashSet<(String, String)>> {
        let kind = self.kind();
        let mut inserted = HashSet::new();
        for chunk in rows.chunks(PAYLOAD_CHUNK) {
            let mut q = Sql::new(
                "INSERT INTO waymark_checkpoint_payloads (thread_id, ns, channel, version, \
                 type_tag, data, base_version, depth) ",
            );
            let t = q.bind(text(put.thread_id.as_str()));
            let n = q.bind(text(put.namespace.as_str()));
            for (i, p) in chunk.iter().enumerate() {
                if i > 0 {
                    q.push(" UNION ALL ");
                }
                let ch = q.bind(text(p.channel.as_str()));
                q.push(&format!("SELECT {t}, {n}, {ch}, "))
                    .val(text(p.version.clone()))
                    .push(", ")
                    .val(text(p.value.type_tag()))
                    .push(", ");
                match &p.delta {
                    Some((d, base)) => {
                        q.val(bytes(d.clone())).push(", ");
                        let b = q.bind(text(base.version.clone()));
                        q.push(&format!("{b}, "))
                            .val(int(base.depth + 1))
                            .push(&format!(
                                " WHERE EXISTS (SELECT 1 FROM waymark_checkpoint_payloads \
                                 WHERE thread_id = {t} AND ns = {n} AND channel = {ch} \
                                 AND version = {b})"
                            ));
                    }
                    None => {
                        q.val(bytes(p.value.bytes().to_vec()))
                            .push(", CAST(NULL AS TEXT), ")
                            .val(int(0))
                            .push(" WHERE 1 = 1");
                    }
                }
            }
            q.push(
                " ON CONFLICT (thread_id, ns, channel, version) DO NOTHING \
                 RETURNING channel, version",
            );
            for row in db::all(c, q.build(kind), op).await? {
                let r = Row::new(&row, kind, op);
                inserted.insert((r.text("channel")?, r.text("version")?));
            }
        }
        Ok(inserted)
    }

    /// Upserts the checkpoint row, only if every payload in `must_exist` is stored; returns
    /// whether the row was written.
    async fn upsert_checkpoint<C: ConnectionTrait>(
        &self,
        c: &C,
        put: &CheckpointPut,
        must_exist: &[(&ChannelName, String, &TypedValue)],
        op: &'static str,
    ) -> SqlResult<bool> {
        let kind = self.kind();
        let cp = &put.checkpoint;
        let body = body::encode(cp, |ch| cp.channel_versions.contains_key(ch));
        let metadata = serde_json::to_string(&put.metadata.0)
            .map_err(|e| SqlError::corrupt(op, format!("metadata: {e}")))?;
        let mut q = Sql::new(
            "INSERT INTO waymark_checkpoints (thread_id, ns, checkpoint_id, parent_id, run_id, \
             metadata, v, body) SELECT ",
        );
        let t = q.bind(text(put.thread_id.as_str()));
        let n = q.bind(text(put.namespace.as_str()));
        q.push(&format!("{t}, {n}, "))
            .val(text(cp.id.as_str()))
            .push(", ")
            .val(opt_text(put.parent_id.as_ref().map(|p| p.as_str())))
            .push(", ")
            .val(opt_text(put.metadata.run_id()))
            .push(", ");
        match kind {
            Kind::Postgres => q.push("CAST(").val(text(metadata)).push(" AS JSON)"),
            Kind::Sqlite => q.val(text(metadata)),
        };
        q.push(", ").val(int(cp.v)).push(", ").val(bytes(body));
        if must_exist.is_empty() {
            q.push(" WHERE 1 = 1");
        } else {
            q.push(&format!(
                " WHERE (SELECT COUNT(*) FROM waymark_checkpoint_payloads WHERE thread_id = {t} \
                 AND ns = {n} AND ("
            ));
            for (i, (channel, version, _)) in must_exist.iter().enumerate() {
                if i > 0 {
                    q.push(" OR ");
                }
                q.push("(channel = ")
                    .val(text(channel.as_str()))
                    .push(" AND version = ")
                    .val(text(version.clone()))
                    .push(")");
            }
            q.push(")) = ").val(int(must_exist.len() as i64));
        }
        q.push(
            " ON CONFLICT (thread_id, ns, checkpoint_id) DO UPDATE SET parent_id = excluded.parent_id, \
             run_id = excluded.run_id, metadata = excluded.metadata, v = excluded.v, body = excluded.body",
        );
        Ok(db::exec(c, q.build(kind), op).await? > 0)
    }

    /// Deletes payloads of one namespace that no remaining checkpoint references, keeping the
    /// bases of referenced deltas.
    async fn collect_payloads<C: ConnectionTrait>(
        &self,
        c: &C,
        thread_id: &ThreadId,
        ns: &CheckpointNamespace,
        op: &'static str,
    ) -> SqlResult<()> {
        let kind = self.kind();
        let mut referenced: HashSet<(String, String)> = HashSet::new();
        for row in db::all(
            c,
            kind.stmt(
                "SELECT body FROM waymark_checkpoints WHERE thread_id = $1 AND ns = $2",
                vec![text(thread_id.as_str()), text(ns.as_str())],
            ),
            op,
        )
        .await?
        {
            let b = Row::new(&row, kind, op).bytes("body")?;
            for (ch, ver) in body::channel_versions(&b)
                .map_err(|e| SqlError::corrupt(op, format!("checkpoint body: {e}")))?
            {
                referenced.insert((ch.into_inner(), ver.as_key_text()));
            }
        }
        let mut all: HashMap<(String, String), (Option<String>, i64)> = HashMap::new();
        for row in db::all(
            c,
            kind.stmt(
                "SELECT channel, version, base_version, depth FROM waymark_checkpoint_payloads \
                 WHERE thread_id = $1 AND ns = $2",
                vec![text(thread_id.as_str()), text(ns.as_str())],
            ),
            op,
        )
        .await?
        {
            let r = Row::new(&row, kind, op);
            all.insert(
                (r.text("channel")?, r.text("version")?),
                (r.opt_text("base_version")?, r.i64("depth")?),
            );
        }
        // Keep the referenced payloads and, transitively, their bases.
        let mut keep: HashSet<(String, String)> = HashSet::new();
        for key in referenced {
            let mut cur = Some(key);
            while let Some(k) = cur {
                if !all.contains_key(&k) || !keep.insert(k.clone()) {
                    break;
                }
                cur = all[&k].0.clone().map(|b| (k.0.clone(), b));
            }
        }
        let mut doomed: Vec<(&(String, String), i64)> = all
            .iter()
            .filter(|(k, _)| !keep.contains(*k))
            .map(|(k, (_, depth))| (k, *depth))
            .collect();
        // Dependents before their bases, so the foreign key holds after every statement.
        doomed.sort_by_key(|d| std::cmp::Reverse(d.1));
        for chunk in doomed.chunks(KEY_CHUNK) {
            let mut q = Sql::new("DELETE FROM waymark_checkpoint_payloads WHERE thread_id = ");
            q.val(text(thread_id.as_str()))
                .push(" AND ns = ")
                .val(text(ns.as_str()))
                .push(" AND (channel, version) IN (VALUES ");
            for (i, ((ch, ver), _)) in chunk.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.push("(")
                    .val(text(ch.clone()))
                    .push(", ")
                    .val(text(ver.clone()))
                    .push(")");
            }
            q.push(")");
            db::exec(c, q.build(kind), op).await?;
        }
        Ok(())
    }

    /// Deletes the given checkpoints of one namespace and their writes; returns how many
    /// checkpoints existed.
    async fn remove_checkpoints<C: ConnectionTrait>(
        &self,
        c: &C,
        thread_id: &ThreadId,
        ns: &CheckpointNamespace,
        ids: &[&str],
        op: &'static str,
    ) -> SqlResult<u64> {
        let kind = self.kind();
        let mut removed = 0;
        for chunk in ids.chunks(KEY_CHUNK) {
            for table in ["waymark_checkpoints", "waymark_checkpoint_writes"] {
                let mut q = Sql::new(&format!("DELETE FROM {table} WHERE thread_id = "));
                q.val(text(thread_id.as_str()))
                    .push(" AND ns = ")
                    .val(text(ns.as_str()))
                    .push(" AND checkpoint_id IN ");
                in_list(&mut q, chunk.iter().copied());
                let n = db::exec(c, q.build(kind), op).await?;
                if table == "waymark_checkpoints" {
                    removed += n;
                }
            }
        }
        Ok(removed)
    }

    /// `prune(KeepLatest)` of one thread (spec §4.9, the in-memory store's algorithm).
    async fn keep_latest<C: ConnectionTrait>(
        &self,
        c: &C,
        thread_id: &ThreadId,
        op: &'static str,
    ) -> SqlResult<()> {
        let kind = self.kind();
        let t = text(thread_id.as_str());
        // Every namespace with any row.
        let mut namespaces: BTreeSet<CheckpointNamespace> = BTreeSet::new();
        for table in [
            "waymark_checkpoints",
            "waymark_checkpoint_writes",
            "waymark_checkpoint_payloads",
        ] {
            for row in db::all(
                c,
                kind.stmt(
                    format!("SELECT DISTINCT ns FROM {table} WHERE thread_id = $1"),
                    vec![t.clone()],
                ),
                op,
            )
            .await?
            {
                namespaces.insert(Row::new(&row, kind, op).id("ns")?);
            }
        }
        // Checkpoints: ns -> id -> (parent, v, parents[""]).
        type Info = (Option<CheckpointId>, i64, Option<String>);
        let mut cps: BTreeMap<CheckpointNamespace, BTreeMap<CheckpointId, Info>> = BTreeMap::new();
        for row in db::all(
            c,
            kind.stmt(
                "SELECT ns, checkpoint_id, parent_id, v, CAST(metadata AS TEXT) AS metadata \
                 FROM waymark_checkpoints WHERE thread_id = $1",
                vec![t.clone()],
            ),
            op,
        )
        .await?
        {
            let r = Row::new(&row, kind, op);
            let meta = CheckpointMetadata(r.json_text_object("metadata")?);
            cps.entry(r.id("ns")?).or_default().insert(
                r.id("checkpoint_id")?,
                (
                    r.opt_id("parent_id")?,
                    r.i64("v")?,
                    meta.parent_in("").map(str::to_owned),
                ),
            );
        }
        // Checkpoints holding `__pregel_tasks` writes.
        let mut with_tasks: HashSet<(CheckpointNamespace, CheckpointId)> = HashSet::new();
        for row in db::all(
            c,
            kind.stmt(
                "SELECT DISTINCT ns, checkpoint_id FROM waymark_checkpoint_writes \
                 WHERE thread_id = $1 AND channel = $2",
                vec![t.clone(), text(TASKS_CHANNEL)],
            ),
            op,
        )
        .await?
        {
            let r = Row::new(&row, kind, op);
            with_tasks.insert((r.id("ns")?, r.id("checkpoint_id")?));
        }
        let empty = BTreeMap::new();
        // 1. Keep sets.
        let mut keep: BTreeMap<CheckpointNamespace, BTreeSet<CheckpointId>> = BTreeMap::new();
        for name in &namespaces {
            let rows = cps.get(name).unwrap_or(&empty);
            let mut set = BTreeSet::new();
            if let Some((head_id, (parent, v, _))) = rows.last_key_value() {
                set.insert(head_id.clone());
                if *v < 4
                    && let Some(parent) = parent
                    && rows.contains_key(parent)
                    && with_tasks.contains(&(name.clone(), parent.clone()))
                {
                    set.insert(parent.clone());
                }
            }
            keep.insert(name.clone(), set);
        }
        let root = CheckpointNamespace::root();
        let root_rows = cps.get(&root);
        let root_keep = keep.get(&root);
        // 2. Doomed subgraph namespaces.
        let mut doomed: Vec<CheckpointNamespace> = Vec::new();
        for name in &namespaces {
            if !name.is_subgraph() {
                continue;
            }
            let hangs_from = cps
                .get(name)
                .and_then(|rows| rows.last_key_value())
                .and_then(|(_, (_, _, p))| p.as_deref())
                .and_then(|id| CheckpointId::parse(id).ok());
            if let Some(root_id) = hangs_from
                && root_rows.is_some_and(|r| r.contains_key(&root_id))
                && !root_keep.is_some_and(|k| k.contains(&root_id))
            {
                doomed.push(name.clone());
            }
        }
        for name in &doomed {
            for table in [
                "waymark_checkpoint_writes",
                "waymark_checkpoints",
                "waymark_checkpoint_payloads",
            ] {
                db::exec(
                    c,
                    kind.stmt(
                        format!("DELETE FROM {table} WHERE thread_id = $1 AND ns = $2"),
                        vec![t.clone(), text(name.as_str())],
                    ),
                    op,
                )
                .await?;
            }
        }
        // 3. Other namespaces.
        for name in &namespaces {
            if doomed.contains(name) {
                continue;
            }
            let kept = &keep[name];
            let gone: Vec<&str> = cps
                .get(name)
                .unwrap_or(&empty)
                .keys()
                .filter(|id| !kept.contains(*id))
                .map(CheckpointId::as_str)
                .collect();
            self.remove_checkpoints(c, thread_id, name, &gone, op)
                .await?;
            // Writes of anything not kept (orphan writes included).
            let mut q = Sql::new("DELETE FROM waymark_checkpoint_writes WHERE thread_id = ");
            q.val(t.clone()).push(" AND ns = ").val(text(name.as_str()));
            if !kept.is_empty() {
                q.push(" AND checkpoint_id NOT IN ");
                in_list(&mut q, kept.iter().map(CheckpointId::as_str));
            }
            db::exec(c, q.build(kind), op).await?;
            for chunk in gone.chunks(KEY_CHUNK) {
                let mut q =
                    Sql::new("UPDATE waymark_checkpoints SET parent_id = NULL WHERE thread_id = ");
                q.val(t.clone())
                    .push(" AND ns = ")
                    .val(text(name.as_str()))
                    .push(" AND parent_id IN ");
                in_list(&mut q, chunk.iter().copied());
                db::exec(c, q.build(kind), op).await?;
            }
            self.collect_payloads(c, thread_id, name, op).await?;
        }
        Ok(())
    }
}

/// The statement reading payloads `keys` of one namespace with every delta base below them
/// (see [`SqlCheckpointRepository::fetch_payloads_guarded`]); with `guard`, one more row with
/// an empty channel holds that checkpoint's body.
fn payload_query(
    kind: Kind,
    thread_id: &ThreadId,
    ns: &CheckpointNamespace,
    keys: &[&(String, String)],
    guard: Option<&CheckpointId>,
) -> Sql {
    let mut q = Sql::new("WITH RECURSIVE want (channel, version) AS (VALUES ");
    for (i, (ch, ver)) in keys.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.push("(")
            .val(text(ch.clone()))
            .push(", ")
            .val(text(ver.clone()))
            .push(")");
    }
    let t = q.bind(text(thread_id.as_str()));
    let n = q.bind(text(ns.as_str()));
    // PostgreSQL wants both terms of the recursion in the columns' collation.
    let coll = match kind {
        Kind::Postgres => " COLLATE \"C\"",
        Kind::Sqlite => "",
    };
    // One primary-key probe per key and per delta, whatever the statistics say: SQLite keeps
    // the left table of a `CROSS JOIN` as the outer loop; PostgreSQL does not flatten a
    // `LATERAL` subquery with a `LIMIT`. (Without them, both planners were seen scanning the
    // thread's payloads, or the whole table, per read.) `base_version IS NOT NULL` stays
    // outside the probe so the partial index on it is never picked for the lookup. For many
    // keys (a `list`), PostgreSQL's own choice, one pass over the thread's payloads and a hash
    // join, is faster than hundreds of probes, so it is left to choose.
    let lateral = kind == Kind::Postgres && keys.len() <= LATERAL_KEYS;
    let probe = |cols: &str, k: &str| {
        if lateral {
            format!(
                "keys {k} CROSS JOIN LATERAL (SELECT {cols} FROM waymark_checkpoint_payloads \
                 WHERE thread_id = {t} AND ns = {n} AND channel = {k}.channel \
                 AND version = {k}.version LIMIT 1) p WHERE 1 = 1"
            )
        } else {
            format!(
                "keys {k} CROSS JOIN waymark_checkpoint_payloads p WHERE p.thread_id = {t} AND p.ns = {n} \
                 AND p.channel = {k}.channel AND p.version = {k}.version"
            )
        }
    };
    q.push(&format!(
        "), keys (channel, version) AS (SELECT channel{coll}, version{coll} FROM want UNION \
         SELECT p.channel, p.base_version FROM {} AND p.base_version IS NOT NULL) \
         SELECT p.channel, p.version, p.type_tag, p.base_version, p.data FROM {}",
        probe("channel, base_version", "k"),
        probe("channel, version, type_tag, base_version, data", "k"),
    ));
    if let Some(id) = guard {
        q.push(&format!(
            " UNION ALL SELECT ''{coll}, ''{coll}, '', CAST(NULL AS TEXT){coll}, body \
             FROM waymark_checkpoints WHERE thread_id = {t} AND ns = {n} AND checkpoint_id = "
        ))
        .val(text(id.as_str()));
    }
    q
}

/// A checkpoint's channel values in their stored order: inline values from the body, the
/// others rebuilt from `payloads`.
fn fill_values(
    body: &body::DecodedBody,
    payloads: &mut PayloadSet,
    op: &'static str,
) -> SqlResult<indexmap::IndexMap<ChannelName, TypedValue>> {
    let cp = &body.checkpoint;
    let mut out = indexmap::IndexMap::with_capacity(body.value_order.len());
    for channel in &body.value_order {
        let value = match cp.channel_values.get(channel) {
            Some(v) => Some(v.clone()),
            None => match cp.channel_versions.get(channel) {
                Some(ver) => payloads.value(channel.as_str(), &ver.as_key_text(), op)?,
                None => None,
            },
        };
        if let Some(v) = value {
            out.insert(channel.clone(), v);
        }
    }
    for (channel, ver) in &cp.channel_versions {
        if !out.contains_key(channel)
            && let Some(v) = payloads.value(channel.as_str(), &ver.as_key_text(), op)?
        {
            out.insert(channel.clone(), v);
        }
    }
    Ok(out)
}

/// Drops duplicate `(task_id, idx)` keys of one call the way the rule resolves them: the last
/// one wins for an upsert, the first for insert-or-ignore.
fn dedupe_writes(rows: Vec<PendingWrite>, upsert: bool) -> Vec<PendingWrite> {
    let mut seen: HashMap<WriteKey, usize> = HashMap::new();
    let mut out: Vec<PendingWrite> = Vec::with_capacity(rows.len());
    for w in rows {
        let key = (w.task_id.as_str().to_owned(), w.idx);
        match seen.get(&key) {
            Some(&i) if upsert => out[i] = w,
            Some(_) => {}
            None => {
                seen.insert(key, out.len());
                out.push(w);
            }
        }
    }
    out
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
        const OP: &str = "checkpoints.put";
        puts.iter().try_for_each(CheckpointPut::validate)?;
        if puts.is_empty() {
            return Ok(Vec::new());
        }
        let txn = self.shared.db.begin_write(OP).await?;
        let mut cache_updates = Vec::new();
        for put in &puts {
            self.write_put(&txn, put, &mut cache_updates, OP).await?;
        }
        txn.commit().await.op(OP)?;
        for (key, entry) in cache_updates {
            self.shared.payload_cache.put(key, entry);
        }
        Ok(puts
            .iter()
            .map(|p| CheckpointRef {
                thread_id: p.thread_id.clone(),
                namespace: p.namespace.clone(),
                checkpoint_id: p.checkpoint.id.clone(),
            })
            .collect())
    }

    async fn put_writes(&self, batch: WriteBatch) -> DomainResult<()> {
        const OP: &str = "checkpoints.put_writes";
        if batch.writes.is_empty() {
            return Ok(());
        }
        check_no_nul("task_path", &batch.task_path)?;
        let kind = self.kind();
        let upsert = batch.is_upsert();
        let rows = dedupe_writes(batch.to_pending_writes(), upsert);
        let target = &batch.target;
        // One statement per chunk keeps every statement under the drivers' bind-parameter
        // limits (SQLite 32,766, PostgreSQL 65,535; a row binds 6); a batch of several chunks
        // is written in one transaction, so it lands whole or not at all.
        let statements: Vec<_> = rows
            .chunks(WRITES_PER_STATEMENT)
            .map(|chunk| write_rows_statement(kind, target, chunk, upsert))
            .collect();
        if let [only] = statements.as_slice() {
            db::exec(&self.shared.db.conn, only.clone(), OP).await?;
            return Ok(());
        }
        let txn = self.shared.db.begin_write(OP).await?;
        for stmt in statements {
            db::exec(&txn, stmt, OP).await?;
        }
        txn.commit().await.op(OP)?;
        Ok(())
    }

    async fn get_tuple(
        &self,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        checkpoint_id: Option<CheckpointId>,
    ) -> DomainResult<Option<CheckpointTuple>> {
        const OP: &str = "checkpoints.get_tuple";
        let kind = self.kind();
        let mut q = Sql::new(&format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM waymark_checkpoints WHERE thread_id = "
        ));
        q.val(text(thread_id.as_str()))
            .push(" AND ns = ")
            .val(text(namespace.as_str()));
        match &checkpoint_id {
            Some(id) => {
                q.push(" AND checkpoint_id = ").val(text(id.as_str()));
            }
            None => {
                q.push(" ORDER BY checkpoint_id DESC LIMIT 1");
            }
        }
        if let Some(found) = self
            .get_tuple_fast(thread_id, namespace, checkpoint_id.as_ref())
            .await?
        {
            return Ok(found);
        }
        // A delete raced the fast path: read again in one snapshot.
        let txn = self.shared.db.begin_read(OP).await?;
        let Some(row) = db::one(&txn, q.build(kind), OP).await? else {
            return Ok(None);
        };
        let row = cp_row(&Row::new(&row, kind, OP))?;
        let mut tuples = self.assemble(&txn, vec![row], OP).await?;
        txn.commit().await.op(OP)?;
        Ok(tuples.pop())
    }

    async fn list(&self, query: &CheckpointQuery) -> DomainResult<Vec<CheckpointTuple>> {
        const OP: &str = "checkpoints.list";
        self.capabilities().check_filter(&query.filter)?;
        if query.limit == Some(0) {
            return Ok(Vec::new());
        }
        let kind = self.kind();
        // Which filter conditions SQL can decide exactly.
        let (pushed, rest): (JsonObject, JsonObject) = match kind {
            Kind::Postgres => (query.filter.clone(), JsonObject::new()),
            Kind::Sqlite => query
                .filter
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .partition(|(k, v)| {
                    !matches!(v, JsonValue::Array(_) | JsonValue::Object(_))
                        && !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                }),
        };
        let mut q = Sql::new(if rest.is_empty() {
            "SELECT thread_id, ns, checkpoint_id FROM waymark_checkpoints WHERE 1 = 1"
        } else {
            "SELECT thread_id, ns, checkpoint_id, CAST(metadata AS TEXT) AS metadata \
             FROM waymark_checkpoints WHERE 1 = 1"
        });
        if let Some(t) = &query.thread_id {
            q.push(" AND thread_id = ").val(text(t.as_str()));
        }
        if let Some(n) = &query.namespace {
            q.push(" AND ns = ").val(text(n.as_str()));
        }
        if let Some(id) = &query.checkpoint_id {
            q.push(" AND checkpoint_id = ").val(text(id.as_str()));
        }
        if let Some(b) = &query.before {
            q.push(" AND checkpoint_id < ").val(text(b.as_str()));
        }
        if !pushed.is_empty() {
            match kind {
                Kind::Postgres => {
                    q.push(" AND CAST(metadata AS JSONB) @> ")
                        .val(kind.json(&JsonValue::Object(pushed)));
                }
                Kind::Sqlite => {
                    super::threads::push_scalar_filter(&mut q, kind, "metadata", &pushed);
                }
            }
        }
        q.push(" ORDER BY checkpoint_id DESC, thread_id ASC, ns ASC");
        if rest.is_empty()
            && let Some(l) = query.limit
        {
            q.push(" LIMIT ").val(int(i64::from(l)));
        }
        let txn = self.shared.db.begin_read(OP).await?;
        let mut keys: Vec<(ThreadId, CheckpointNamespace, CheckpointId)> = Vec::new();
        for row in db::all(&txn, q.build(kind), OP).await? {
            let r = Row::new(&row, kind, OP);
            if !rest.is_empty() && !object_contains(&r.json_text_object("metadata")?, &rest) {
                continue;
            }
            keys.push((r.id("thread_id")?, r.id("ns")?, r.id("checkpoint_id")?));
            if query.limit.is_some_and(|l| keys.len() >= l as usize) {
                break;
            }
        }
        // Fetch the rows, grouped by namespace, then restore the order.
        let mut by_ns: BTreeMap<(&ThreadId, &CheckpointNamespace), Vec<&CheckpointId>> =
            BTreeMap::new();
        for (t, n, id) in &keys {
            by_ns.entry((t, n)).or_default().push(id);
        }
        let mut found: HashMap<(ThreadId, CheckpointNamespace, CheckpointId), CpRow> =
            HashMap::new();
        for ((t, n), ids) in by_ns {
            for chunk in ids.chunks(KEY_CHUNK) {
                let mut q = Sql::new(&format!(
                    "SELECT {CHECKPOINT_COLUMNS} FROM waymark_checkpoints WHERE thread_id = "
                ));
                q.val(text(t.as_str()))
                    .push(" AND ns = ")
                    .val(text(n.as_str()))
                    .push(" AND checkpoint_id IN ");
                in_list(&mut q, chunk.iter().map(|i| i.as_str()));
                for row in db::all(&txn, q.build(kind), OP).await? {
                    let row = cp_row(&Row::new(&row, kind, OP))?;
                    found.insert((row.thread_id.clone(), row.ns.clone(), row.id.clone()), row);
                }
            }
        }
        let rows: Vec<CpRow> = keys.iter().filter_map(|k| found.remove(k)).collect();
        let tuples = self.assemble(&txn, rows, OP).await?;
        txn.commit().await.op(OP)?;
        Ok(tuples)
    }

    async fn delete_thread(&self, thread_id: &ThreadId) -> DomainResult<()> {
        const OP: &str = "checkpoints.delete_thread";
        let txn = self.shared.db.begin_write(OP).await?;
        delete_thread_checkpoints(&txn, self.kind(), thread_id, OP).await?;
        txn.commit().await.op(OP)?;
        self.shared.payload_cache.forget_thread(thread_id);
        Ok(())
    }

    async fn copy_thread(&self, source: &ThreadId, target: &ThreadId) -> DomainResult<()> {
        const OP: &str = "checkpoints.copy_thread";
        if source == target {
            return Ok(());
        }
        let kind = self.kind();
        let txn = self.shared.db.begin_write(OP).await?;
        for (table, cols, key) in [
            (
                "waymark_checkpoint_payloads",
                "ns, channel, version, type_tag, data, base_version, depth",
                "thread_id, ns, channel, version",
            ),
            (
                "waymark_checkpoints",
                "ns, checkpoint_id, parent_id, run_id, metadata, v, body",
                "thread_id, ns, checkpoint_id",
            ),
            (
                "waymark_checkpoint_writes",
                "ns, checkpoint_id, task_id, idx, task_path, channel, type_tag, data",
                "thread_id, ns, checkpoint_id, task_id, idx",
            ),
        ] {
            // Payloads in depth order so a delta's base is always there first.
            let order = if table == "waymark_checkpoint_payloads" {
                " ORDER BY depth"
            } else {
                ""
            };
            db::exec(
                &txn,
                kind.stmt(
                    format!(
                        "INSERT INTO {table} (thread_id, {cols}) SELECT $2, {cols} FROM {table} \
                         WHERE thread_id = $1{order} ON CONFLICT ({key}) DO NOTHING"
                    ),
                    vec![text(source.as_str()), text(target.as_str())],
                ),
                OP,
            )
            .await?;
        }
        txn.commit().await.op(OP)?;
        Ok(())
    }

    async fn prune(&self, thread_ids: Vec<ThreadId>, strategy: PruneStrategy) -> DomainResult<()> {
        const OP: &str = "checkpoints.prune";
        if thread_ids.is_empty() {
            return Ok(());
        }
        let kind = self.kind();
        let txn = self.shared.db.begin_write(OP).await?;
        for thread_id in &thread_ids {
            match strategy {
                PruneStrategy::Delete => {
                    delete_thread_checkpoints(&txn, kind, thread_id, OP).await?;
                }
                PruneStrategy::KeepLatest => self.keep_latest(&txn, thread_id, OP).await?,
            }
        }
        txn.commit().await.op(OP)?;
        for t in &thread_ids {
            self.shared.payload_cache.forget_thread(t);
        }
        Ok(())
    }

    async fn delete_for_runs(&self, run_ids: Vec<RunId>) -> DomainResult<()> {
        const OP: &str = "checkpoints.delete_for_runs";
        if run_ids.is_empty() {
            return Ok(());
        }
        let kind = self.kind();
        let txn = self.shared.db.begin_write(OP).await?;
        let mut doomed: BTreeMap<(ThreadId, CheckpointNamespace), Vec<String>> = BTreeMap::new();
        for chunk in run_ids.chunks(KEY_CHUNK) {
            let mut q = Sql::new(
                "SELECT thread_id, ns, checkpoint_id FROM waymark_checkpoints WHERE run_id IN ",
            );
            in_list(&mut q, chunk.iter().map(RunId::as_str));
            for row in db::all(&txn, q.build(kind), OP).await? {
                let r = Row::new(&row, kind, OP);
                doomed
                    .entry((r.id("thread_id")?, r.id("ns")?))
                    .or_default()
                    .push(r.text("checkpoint_id")?);
            }
        }
        for ((t, n), ids) in &doomed {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            self.remove_checkpoints(&txn, t, n, &ids, OP).await?;
            self.collect_payloads(&txn, t, n, OP).await?;
        }
        txn.commit().await.op(OP)?;
        if !doomed.is_empty() {
            self.shared.payload_cache.clear();
        }
        Ok(())
    }

    async fn delete_checkpoints(
        &self,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        checkpoint_ids: Vec<CheckpointId>,
    ) -> DomainResult<u64> {
        const OP: &str = "checkpoints.delete_checkpoints";
        let ids: BTreeSet<&str> = checkpoint_ids.iter().map(CheckpointId::as_str).collect();
        let ids: Vec<&str> = ids.into_iter().collect();
        let txn = self.shared.db.begin_write(OP).await?;
        let removed = self
            .remove_checkpoints(&txn, thread_id, namespace, &ids, OP)
            .await?;
        self.collect_payloads(&txn, thread_id, namespace, OP)
            .await?;
        txn.commit().await.op(OP)?;
        self.shared.payload_cache.forget_thread(thread_id);
        Ok(removed)
    }

    async fn summary(&self, thread_id: &ThreadId) -> DomainResult<CheckpointSummary> {
        const OP: &str = "checkpoints.summary";
        let kind = self.kind();
        let len = match kind {
            Kind::Postgres => "octet_length",
            Kind::Sqlite => "length",
        };
        let row = db::one(
            &self.shared.db.conn,
            kind.stmt(
                format!(
                    "SELECT \
                     (SELECT CAST(COUNT(*) AS BIGINT) FROM waymark_checkpoints WHERE thread_id = $1) AS checkpoints, \
                     (SELECT CAST(COUNT(*) AS BIGINT) FROM waymark_checkpoint_writes WHERE thread_id = $1) AS writes, \
                     (SELECT CAST(COUNT(DISTINCT ns) AS BIGINT) FROM waymark_checkpoints WHERE thread_id = $1) AS namespaces, \
                     (SELECT MIN(checkpoint_id) FROM waymark_checkpoints WHERE thread_id = $1) AS oldest, \
                     (SELECT MAX(checkpoint_id) FROM waymark_checkpoints WHERE thread_id = $1) AS newest, \
                     (SELECT CAST(COALESCE(SUM({len}(type_tag) + {len}(data)), 0) AS BIGINT) \
                        FROM waymark_checkpoint_payloads WHERE thread_id = $1) AS payload_bytes, \
                     (SELECT CAST(COALESCE(SUM({len}(type_tag) + {len}(data)), 0) AS BIGINT) \
                        FROM waymark_checkpoint_writes WHERE thread_id = $1) AS write_bytes, \
                     (SELECT CAST(COALESCE(SUM({len}(body)), 0) AS BIGINT) \
                        FROM waymark_checkpoints WHERE thread_id = $1) AS body_bytes"
                ),
                vec![text(thread_id.as_str())],
            ),
            OP,
        )
        .await?
        .ok_or_else(|| DomainError::storage(OP, "no row"))?;
        let r = Row::new(&row, kind, OP);
        Ok(CheckpointSummary {
            checkpoints: r.u64("checkpoints")?,
            writes: r.u64("writes")?,
            namespaces: r.u64("namespaces")?,
            oldest: r.opt_id("oldest")?,
            newest: r.opt_id("newest")?,
            // Payloads as stored (deltas count their own bytes), writes, and the rows' bodies
            // (which hold the inline values).
            stored_bytes: Some(
                r.u64("payload_bytes")? + r.u64("write_bytes")? + r.u64("body_bytes")?,
            ),
        })
    }
}

/// Pending writes per `INSERT` statement: 6 bound values a row stays far below every driver's
/// bind-parameter limit.
const WRITES_PER_STATEMENT: usize = 1000;

/// One multi-row `INSERT` of pending writes of `target` (upsert or insert-or-ignore).
fn write_rows_statement(
    kind: Kind,
    target: &CheckpointRef,
    rows: &[PendingWrite],
    upsert: bool,
) -> sea_orm::Statement {
    let mut q = Sql::new(
        "INSERT INTO waymark_checkpoint_writes (thread_id, ns, checkpoint_id, task_id, idx, \
         task_path, channel, type_tag, data) VALUES ",
    );
    let t = q.bind(text(target.thread_id.as_str()));
    let n = q.bind(text(target.namespace.as_str()));
    let id = q.bind(text(target.checkpoint_id.as_str()));
    for (i, w) in rows.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.push(&format!("({t}, {n}, {id}, "))
            .val(text(w.task_id.as_str()))
            .push(", ")
            .val(int(w.idx))
            .push(", ")
            .val(text(w.task_path.clone()))
            .push(", ")
            .val(text(w.channel.as_str()))
            .push(", ")
            .val(text(w.value.type_tag()))
            .push(", ")
            .val(bytes(w.value.bytes().to_vec()))
            .push(")");
    }
    q.push(" ON CONFLICT (thread_id, ns, checkpoint_id, task_id, idx) ");
    q.push(if upsert {
        "DO UPDATE SET task_path = excluded.task_path, channel = excluded.channel, \
         type_tag = excluded.type_tag, data = excluded.data"
    } else {
        "DO NOTHING"
    });
    q.build(kind)
}
