//! Reads of the native layout: `get_tuple` (the two-statement fast path and its
//! transactional fallback), `list` with its metadata filter, `summary`, and the reassembly of
//! rows from their bodies, pending writes and payloads (delta chains included).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use waymark_domain::checkpoint::{
    CheckpointMetadata, CheckpointQuery, CheckpointSummary, CheckpointTuple, PendingWrite,
    TypedValue, sort_pending_writes,
};
use waymark_domain::json::object_contains;
use waymark_domain::{
    ChannelName, CheckpointId, CheckpointNamespace, DomainError, DomainResult, JsonObject,
    JsonValue, ThreadId,
};

use super::{KEY_CHUNK, SqlCheckpointRepository, body, in_list, payload};
use crate::sql::db::{self, Exec, Kind, Row, Sql, int, text};
#[cfg(feature = "sqlite")]
use crate::sql::direct;
use crate::sql::error::{DbResultExt, SqlError, SqlResult};

/// The columns of a checkpoint row as reads select them.
const CHECKPOINT_COLUMNS: &str =
    "thread_id, ns, checkpoint_id, parent_id, CAST(metadata AS TEXT) AS metadata, body";

/// Up to this many payload keys, PostgreSQL reads them by one probe each (see `payload_query`).
const LATERAL_KEYS: usize = 32;

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
    /// The values of `keys` this process wrote last, from the delta cache, and the keys left
    /// to read. The latest checkpoint, read right after its put, then needs no walk down its
    /// delta chains. A cached value is used only while the row under its key still carries
    /// the nonce this process inserted it with (one probe per key, in one statement): that
    /// row, and the chain below it, hold exactly the cached value, while a row deleted and
    /// written again by another process does not qualify.
    async fn payloads_from_cache<C: Exec>(
        &self,
        c: &C,
        thread_id: &ThreadId,
        ns: &CheckpointNamespace,
        keys: BTreeSet<(String, String)>,
        op: &'static str,
    ) -> SqlResult<(PayloadSet, BTreeSet<(String, String)>)> {
        let cache = &self.shared.payload_cache;
        let mut cached = Vec::new();
        let mut missing = BTreeSet::new();
        for key in keys {
            let hit = ChannelName::parse(key.0.as_str())
                .ok()
                .and_then(|channel| cache.get(thread_id, ns, &channel))
                .filter(|entry| entry.version == key.1);
            match hit {
                Some(entry) => cached.push((key, entry)),
                None => {
                    missing.insert(key);
                }
            }
        }
        let mut set = PayloadSet::default();
        if cached.is_empty() {
            return Ok((set, missing));
        }
        let kind = self.kind();
        let mut q = Sql::new("WITH want (channel, version, nonce) AS (VALUES ");
        for (i, ((channel, version), entry)) in cached.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" })
                .val(text(channel.clone()))
                .push(", ")
                .val(text(version.clone()))
                .push(", ")
                .val(int(entry.nonce))
                .push(")");
        }
        let t = q.bind(text(thread_id.as_str()));
        let n = q.bind(text(ns.as_str()));
        // One primary-key probe per key (see `payload_query` for why the join is spelled so).
        q.push(&match kind {
            Kind::Sqlite => format!(
                ") SELECT p.channel, p.version FROM want w CROSS JOIN waymark_checkpoint_payloads p \
                 WHERE p.thread_id = {t} AND p.ns = {n} AND p.channel = w.channel \
                 AND p.version = w.version AND p.nonce = w.nonce"
            ),
            Kind::Postgres => format!(
                ") SELECT p.channel, p.version FROM want w CROSS JOIN LATERAL (SELECT channel, \
                 version, nonce FROM waymark_checkpoint_payloads WHERE thread_id = {t} \
                 AND ns = {n} AND channel = w.channel AND version = w.version LIMIT 1) p \
                 WHERE p.nonce = w.nonce"
            ),
        });
        let mut verified = BTreeSet::new();
        for row in db::all(c, q.build(kind), op).await? {
            let r = Row::new(&row, kind, op);
            verified.insert((r.text("channel")?, r.text("version")?));
        }
        for (key, entry) in cached {
            if verified.contains(&key) {
                let value = TypedValue::new(entry.type_tag, entry.bytes.as_ref().clone())
                    .map_err(|e| SqlError::corrupt(op, e))?;
                set.built.insert(key, value);
            } else {
                missing.insert(key);
            }
        }
        Ok((set, missing))
    }

    /// Fetches the payload rows for `keys` of one namespace and every delta base they need.
    async fn fetch_payloads<C: Exec>(
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
    async fn fetch_payloads_guarded<C: Exec>(
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
    async fn fetch_writes<C: Exec>(
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
    async fn assemble<C: Exec>(
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
    async fn get_tuple_fast<C: Exec>(
        &self,
        conn: &C,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        checkpoint_id: Option<&CheckpointId>,
    ) -> SqlResult<Option<Option<CheckpointTuple>>> {
        const OP: &str = "checkpoints.get_tuple";
        let kind = self.kind();
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
        let (mut payloads, keys) = self
            .payloads_from_cache(conn, thread_id, namespace, keys, OP)
            .await?;
        if !keys.is_empty() {
            let (set, seen) = self
                .fetch_payloads_guarded(conn, thread_id, namespace, &keys, Some(&row.id), OP)
                .await?;
            if seen.as_deref() != Some(row.body.as_slice()) {
                return Ok(None);
            }
            payloads.rows = set.rows;
        }
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

    pub(super) async fn read_tuple(
        &self,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        checkpoint_id: Option<CheckpointId>,
    ) -> DomainResult<Option<CheckpointTuple>> {
        const OP: &str = "checkpoints.get_tuple";
        #[cfg(feature = "sqlite")]
        if let Some(direct) = &self.shared.direct {
            // One closure on a reader's connection, inside one snapshot.
            let repo = Self::new(self.shared.clone());
            let (thread_id, namespace) = (thread_id.clone(), namespace.clone());
            return Ok(direct
                .read(OP, move |c| {
                    direct::complete(repo.tuple_in(c, &thread_id, &namespace, checkpoint_id))
                })
                .await?);
        }
        if let Some(found) = self
            .get_tuple_fast(
                &self.shared.db.conn,
                thread_id,
                namespace,
                checkpoint_id.as_ref(),
            )
            .await?
        {
            return Ok(found);
        }
        // A delete raced the fast path: read again in one snapshot.
        let txn = self.shared.db.begin_read(OP).await?;
        let found = self
            .tuple_in(&txn, thread_id, namespace, checkpoint_id)
            .await?;
        txn.commit().await.op(OP)?;
        Ok(found)
    }

    /// The requested or latest checkpoint read through `c`: the fast path, and if it saw a
    /// concurrent change, the row read again (inside a snapshot the fast path cannot see one).
    async fn tuple_in<C: Exec>(
        &self,
        c: &C,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        checkpoint_id: Option<CheckpointId>,
    ) -> SqlResult<Option<CheckpointTuple>> {
        const OP: &str = "checkpoints.get_tuple";
        if let Some(found) = self
            .get_tuple_fast(c, thread_id, namespace, checkpoint_id.as_ref())
            .await?
        {
            return Ok(found);
        }
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
        let Some(row) = db::one(c, q.build(kind), OP).await? else {
            return Ok(None);
        };
        let row = cp_row(&Row::new(&row, kind, OP))?;
        Ok(self.assemble(c, vec![row], OP).await?.pop())
    }

    pub(super) async fn read_list(
        &self,
        query: &CheckpointQuery,
    ) -> DomainResult<Vec<CheckpointTuple>> {
        const OP: &str = "checkpoints.list";
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
                    // SQLite's JSON reads an integer beyond 64 bits as a REAL, so one is
                    // compared here, exactly, instead.
                    let big_int = matches!(v, JsonValue::Number(n) if n.as_i64().is_none()
                        && waymark_domain::json::is_integer(n));
                    !matches!(v, JsonValue::Array(_) | JsonValue::Object(_))
                        && !big_int
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
                    crate::sql::scalar_filter::push_scalar_filter(
                        &mut q, kind, "metadata", &pushed,
                    );
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

    pub(super) async fn read_summary(
        &self,
        thread_id: &ThreadId,
    ) -> DomainResult<CheckpointSummary> {
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

/// The statement reading payloads `keys` of one namespace with every delta base below them
/// (see [`SqlCheckpointRepository::fetch_payloads_guarded`]); with `guard`, one more row with
/// an empty channel holds that checkpoint's body.
pub(super) fn payload_query(
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
