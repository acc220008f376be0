//! Writes of the native layout: puts (payloads new to this process, then the guarded row
//! upsert), pending writes in bind-limit-sized statements, and whole-thread copies.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use waymark_domain::checkpoint::{
    CheckpointPut, CheckpointRef, PendingWrite, TypedValue, WriteBatch,
};
use waymark_domain::json::check_no_nul;
use waymark_domain::{ChannelName, CheckpointNamespace, DomainResult, ThreadId};

use super::{SqlCheckpointRepository, body, payload};
use crate::sql::db::{self, Exec, Kind, Row, Sql, bytes, int, opt_text, text};
#[cfg(feature = "sqlite")]
use crate::sql::direct;
use crate::sql::error::{DbResultExt, SqlError, SqlResult};

/// Payload rows per `INSERT` (each is one term of a compound `SELECT`; SQLite allows 500).
const PAYLOAD_CHUNK: usize = 100;

/// Whole payloads from this size on are inserted one per statement with
/// [`Exec::insert_blob_row`], so a large value is not copied into the statement, SQLite's
/// binding and its compound `SELECT`'s record (issue 11: a body costs at most about twice its
/// size).
const LARGE_PAYLOAD: usize = 1 << 20;

/// A payload a put stores: whole, or as an append delta over a cached base.
struct NewPayload<'a> {
    channel: &'a ChannelName,
    version: String,
    value: &'a TypedValue,
    delta: Option<(Vec<u8>, payload::CachedPayload)>,
}

/// A delta-cache entry to record after a put commits.
type CacheUpdate = (
    (ThreadId, CheckpointNamespace, ChannelName),
    payload::CachedPayload,
);

/// A pending-write row key within a checkpoint.
type WriteKey = (String, i64);

impl SqlCheckpointRepository {
    pub(super) async fn write_puts(
        &self,
        puts: Vec<CheckpointPut>,
    ) -> DomainResult<Vec<CheckpointRef>> {
        const OP: &str = "checkpoints.put";
        puts.iter().try_for_each(CheckpointPut::validate)?;
        if puts.is_empty() {
            return Ok(Vec::new());
        }
        let refs: Vec<CheckpointRef> = puts
            .iter()
            .map(|p| CheckpointRef {
                thread_id: p.thread_id.clone(),
                namespace: p.namespace.clone(),
                checkpoint_id: p.checkpoint.id.clone(),
            })
            .collect();
        // On a SQLite file the whole transaction is one closure on the direct writer.
        #[cfg(feature = "sqlite")]
        if let Some(direct) = &self.shared.direct {
            let repo = Self::new(self.shared.clone());
            let updates = direct
                .write(OP, move |c| {
                    direct::complete(repo.write_put_all(c, &puts, OP))
                })
                .await?;
            self.record_cache(updates);
            return Ok(refs);
        }
        let txn = self.shared.db.begin_write(OP).await?;
        let updates = self.write_put_all(&txn, &puts, OP).await?;
        txn.commit().await.op(OP)?;
        self.record_cache(updates);
        Ok(refs)
    }

    /// Records a committed batch's cache entries (only after commit: a cached base is always
    /// a stored payload).
    fn record_cache(&self, updates: Vec<CacheUpdate>) {
        for (key, entry) in updates {
            self.shared.payload_cache.put(key, entry);
        }
    }

    /// Every put of a batch inside the caller's transaction; returns the cache entries to
    /// record once it commits.
    async fn write_put_all<C: Exec>(
        &self,
        c: &C,
        puts: &[CheckpointPut],
        op: &'static str,
    ) -> SqlResult<Vec<CacheUpdate>> {
        let mut cache_updates = Vec::new();
        for put in puts {
            self.write_put(c, put, &mut cache_updates, op).await?;
        }
        Ok(cache_updates)
    }

    pub(super) async fn write_pending(&self, batch: WriteBatch) -> DomainResult<()> {
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
        #[cfg(feature = "sqlite")]
        if let Some(direct) = &self.shared.direct {
            return Ok(direct
                .write(OP, move |c| {
                    direct::complete(async {
                        for stmt in statements {
                            db::exec(c, stmt, OP).await?;
                        }
                        Ok(())
                    })
                })
                .await?);
        }
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

    /// Writes one put inside the caller's write transaction, in two statements when nothing
    /// unusual happens: one multi-row `INSERT` of the payloads that are new to this process
    /// (an append delta guarded by its base's existence, snapshots otherwise) and the
    /// checkpoint row's upsert, guarded by the existence of the payloads it skipped because
    /// this process wrote them already. A failed guard (a base or a skipped payload deleted
    /// by someone else meanwhile) falls back to writing whole values. Cache entries to record
    /// after commit go to `cache_updates`.
    async fn write_put<C: Exec>(
        &self,
        c: &C,
        put: &CheckpointPut,
        cache_updates: &mut Vec<CacheUpdate>,
        op: &'static str,
    ) -> SqlResult<()> {
        let cp = &put.checkpoint;
        let cache = &self.shared.payload_cache;
        // Marks the payload rows this put inserts as this put's (see `m0011_payload_nonce`).
        let nonce = payload::new_nonce();
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
        let inserted = self.insert_payloads(c, put, &fresh, nonce, op).await?;
        for p in &fresh {
            let key = (p.channel.as_str().to_owned(), p.version.clone());
            let whole = || Arc::new(p.value.bytes().to_vec());
            let tag = || p.value.type_tag().to_owned();
            let entry = if !payload::PayloadCache::admits(p.value.bytes().len()) {
                // Too large to be a delta base: not copied into the cache at all.
                None
            } else if inserted.contains(&key) {
                Some(match &p.delta {
                    Some((d, base)) => payload::CachedPayload {
                        version: p.version.clone(),
                        type_tag: tag(),
                        nonce,
                        bytes: whole(),
                        depth: base.depth + 1,
                        chain_bytes: base.chain_bytes + d.len(),
                        snapshot_len: base.snapshot_len,
                    },
                    None => {
                        payload::CachedPayload::snapshot(p.version.clone(), tag(), nonce, whole())
                    }
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
                let done = self.insert_payloads(c, put, &snap, nonce, op).await?;
                done.contains(&key).then(|| {
                    payload::CachedPayload::snapshot(p.version.clone(), tag(), nonce, whole())
                })
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
            self.insert_payloads(c, put, &whole, nonce, op).await?;
            if !self.upsert_checkpoint(c, put, &[], op).await? {
                return Err(SqlError::corrupt(op, "checkpoint upsert wrote no row"));
            }
        }
        Ok(())
    }

    /// Inserts payloads of one put, marked with its `nonce` (insert-or-ignore, deltas only
    /// over a base that is still the row this process inserted) in one statement per chunk;
    /// returns the keys actually inserted.
    async fn insert_payloads<C: Exec>(
        &self,
        c: &C,
        put: &CheckpointPut,
        rows: &[NewPayload<'_>],
        nonce: i64,
        op: &'static str,
    ) -> SqlResult<HashSet<(String, String)>> {
        let kind = self.kind();
        let mut inserted = HashSet::new();
        let (large, rows): (Vec<&NewPayload<'_>>, Vec<&NewPayload<'_>>) = rows
            .iter()
            .partition(|p| p.delta.is_none() && p.value.bytes().len() >= LARGE_PAYLOAD);
        for p in large {
            let row = db::BlobRow {
                table: "waymark_checkpoint_payloads",
                conflict: "thread_id, ns, channel, version",
                columns: vec![
                    ("thread_id", text(put.thread_id.as_str())),
                    ("ns", text(put.namespace.as_str())),
                    ("channel", text(p.channel.as_str())),
                    ("version", text(p.version.clone())),
                    ("type_tag", text(p.value.type_tag())),
                    ("base_version", opt_text(None::<String>)),
                    ("depth", int(0)),
                    ("nonce", int(nonce)),
                ],
                blob_column: "data",
                blob: p.value.bytes(),
            };
            if c.insert_blob_row(row, op).await? {
                inserted.insert((p.channel.as_str().to_owned(), p.version.clone()));
            }
        }
        for chunk in rows.chunks(PAYLOAD_CHUNK) {
            let mut q = Sql::new(
                "INSERT INTO waymark_checkpoint_payloads (thread_id, ns, channel, version, \
                 type_tag, data, base_version, depth, nonce) ",
            );
            let t = q.bind(text(put.thread_id.as_str()));
            let n = q.bind(text(put.namespace.as_str()));
            let mark = q.bind(int(nonce));
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
                        // Over the base only while it is the row this process inserted:
                        // one deleted and written again elsewhere may hold another value.
                        q.push(&format!("{b}, "))
                            .val(int(base.depth + 1))
                            .push(&format!(
                                ", {mark} WHERE EXISTS (SELECT 1 FROM waymark_checkpoint_payloads \
                                 WHERE thread_id = {t} AND ns = {n} AND channel = {ch} \
                                 AND version = {b} AND nonce = "
                            ))
                            .val(int(base.nonce))
                            .push(")");
                    }
                    None => {
                        q.val(bytes(p.value.bytes().to_vec()))
                            .push(", CAST(NULL AS TEXT), ")
                            .val(int(0))
                            .push(&format!(", {mark} WHERE 1 = 1"));
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
    async fn upsert_checkpoint<C: Exec>(
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

    pub(super) async fn copy_rows(&self, source: &ThreadId, target: &ThreadId) -> DomainResult<()> {
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
