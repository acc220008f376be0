//! Deletes of the native layout: whole threads, checkpoints by id or run, `prune`, and the
//! collection of payloads no remaining checkpoint references.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use waymark_domain::checkpoint::prune::{PruneRow, TASKS_CHANNEL, plan_keep_latest};
use waymark_domain::checkpoint::{CheckpointMetadata, PruneStrategy};
use waymark_domain::{CheckpointId, CheckpointNamespace, DomainResult, RunId, ThreadId};

use super::{KEY_CHUNK, SqlCheckpointRepository, body, in_list};
use crate::sql::db::{self, Exec, Kind, Row, Sql, text};
use crate::sql::error::{DbResultExt, SqlError, SqlResult};

/// Deletes every checkpoint, write and payload of the thread in the caller's transaction.
pub(crate) async fn delete_thread_checkpoints<C: Exec>(
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

impl SqlCheckpointRepository {
    pub(super) async fn delete_whole_thread(&self, thread_id: &ThreadId) -> DomainResult<()> {
        const OP: &str = "checkpoints.delete_thread";
        let txn = self.shared.db.begin_write(OP).await?;
        delete_thread_checkpoints(&txn, self.kind(), thread_id, OP).await?;
        txn.commit().await.op(OP)?;
        self.shared.payload_cache.forget_thread(thread_id);
        Ok(())
    }

    pub(super) async fn prune_threads(
        &self,
        thread_ids: Vec<ThreadId>,
        strategy: PruneStrategy,
    ) -> DomainResult<()> {
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

    pub(super) async fn delete_run_checkpoints(&self, run_ids: Vec<RunId>) -> DomainResult<()> {
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

    pub(super) async fn delete_ids(
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

    /// Deletes payloads of one namespace that no remaining checkpoint references, keeping the
    /// bases of referenced deltas.
    async fn collect_payloads<C: Exec>(
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
    async fn remove_checkpoints<C: Exec>(
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

    /// `prune(KeepLatest)` of one thread: the domain's plan (spec §4.9) over the thread's
    /// rows, executed in the caller's transaction, with payload collection.
    async fn keep_latest<C: Exec>(
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
        // Checkpoints, as the domain's planner reads them.
        let mut rows: Vec<PruneRow> = Vec::new();
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
            let ns: CheckpointNamespace = r.id("ns")?;
            let id: CheckpointId = r.id("checkpoint_id")?;
            rows.push(PruneRow {
                namespace: ns.into_inner(),
                id: id.into_inner(),
                parent_id: r.opt_id::<CheckpointId>("parent_id")?.map(String::from),
                format_version: Some(r.i64("v")?),
                root_parent: meta.parent_in("").map(str::to_owned),
            });
        }
        // Checkpoints holding `__pregel_tasks` writes.
        let mut with_tasks: HashSet<(String, String)> = HashSet::new();
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
            let ns: CheckpointNamespace = r.id("ns")?;
            let id: CheckpointId = r.id("checkpoint_id")?;
            with_tasks.insert((ns.into_inner(), id.into_inner()));
        }
        let candidates: Vec<_> = rows.iter().map(PruneRow::as_candidate).collect();
        let plan = plan_keep_latest(&candidates, |ns, id| {
            with_tasks.contains(&(ns.to_owned(), id.to_owned()))
        });
        let no_keep = BTreeSet::new();
        for name in &namespaces {
            if !plan.drop_namespaces.contains(name.as_str()) {
                continue;
            }
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
        // Other namespaces, those holding only writes or payloads included (they keep nothing).
        for name in &namespaces {
            if plan.drop_namespaces.contains(name.as_str()) {
                continue;
            }
            let kept = plan.keep.get(name.as_str()).unwrap_or(&no_keep);
            let gone: Vec<&str> = plan
                .drop_checkpoints
                .iter()
                .filter(|(ns, _)| *ns == name.as_str())
                .map(|(_, id)| *id)
                .collect();
            self.remove_checkpoints(c, thread_id, name, &gone, op)
                .await?;
            // Writes of anything not kept (orphan writes included).
            let mut q = Sql::new("DELETE FROM waymark_checkpoint_writes WHERE thread_id = ");
            q.val(t.clone()).push(" AND ns = ").val(text(name.as_str()));
            if !kept.is_empty() {
                q.push(" AND checkpoint_id NOT IN ");
                in_list(&mut q, kept.iter().copied());
            }
            db::exec(c, q.build(kind), op).await?;
            // Kept checkpoints whose parent was just deleted (dangling pointers stay).
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
