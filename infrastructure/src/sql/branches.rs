//! Branch and snapshot records over SQL. Unique keys enforce the naming rules; a violation is a
//! conflict, as in memory. `created_at` is stamped from the store's clock.

use std::sync::Arc;

use async_trait::async_trait;
use waymark_domain::branch::{Branch, BranchRepository, Snapshot, SnapshotRepository};
use waymark_domain::{BranchId, DomainResult, SnapshotId, ThreadId};

use super::Shared;
use super::convert::misc::{BRANCH_COLUMNS, SNAPSHOT_COLUMNS, branch, snapshot};
use super::db::{self, Row, opt_text, text};
use super::error::SqlResult;

/// The SQL [`BranchRepository`].
pub(crate) struct SqlBranchRepository {
    shared: Arc<Shared>,
}

impl SqlBranchRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    async fn select(
        &self,
        sql_where: &str,
        param: String,
        op: &'static str,
    ) -> SqlResult<Vec<Branch>> {
        let kind = self.shared.kind();
        let rows = db::all(
            &self.shared.db.conn,
            kind.stmt(
                format!("SELECT {BRANCH_COLUMNS} FROM waymark_branches WHERE {sql_where} ORDER BY created_at, id"),
                vec![text(param)],
            ),
            op,
        )
        .await?;
        rows.iter()
            .map(|r| branch(&Row::new(r, kind, op), op))
            .collect()
    }
}

#[async_trait]
impl BranchRepository for SqlBranchRepository {
    async fn create(&self, b: Branch) -> DomainResult<Branch> {
        const OP: &str = "branches.create";
        b.validate_for_write()?;
        let kind = self.shared.kind();
        let stored = Branch {
            created_at: self.shared.now(),
            ..b
        };
        db::exec(
            &self.shared.db.conn,
            kind.stmt(
                "INSERT INTO waymark_branches (id, name, source_thread_id, source_ns, \
                 source_checkpoint_id, thread_id, metadata, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                vec![
                    text(stored.id.to_string()),
                    text(stored.name.as_str()),
                    text(stored.source_thread_id.as_str()),
                    text(stored.source_namespace.as_str()),
                    text(stored.source_checkpoint_id.as_str()),
                    text(stored.thread_id.as_str()),
                    kind.json_obj(&stored.metadata),
                    kind.ts(stored.created_at),
                ],
            ),
            OP,
        )
        .await?;
        Ok(stored)
    }

    async fn get(&self, id: BranchId) -> DomainResult<Option<Branch>> {
        Ok(self
            .select("id = $1", id.to_string(), "branches.get")
            .await?
            .pop())
    }

    async fn list_for_thread(&self, source_thread_id: &ThreadId) -> DomainResult<Vec<Branch>> {
        Ok(self
            .select(
                "source_thread_id = $1",
                source_thread_id.to_string(),
                "branches.list_for_thread",
            )
            .await?)
    }

    async fn find_by_branch_thread(&self, thread_id: &ThreadId) -> DomainResult<Option<Branch>> {
        Ok(self
            .select(
                "thread_id = $1",
                thread_id.to_string(),
                "branches.find_by_branch_thread",
            )
            .await?
            .pop())
    }

    async fn delete(&self, id: BranchId) -> DomainResult<bool> {
        let kind = self.shared.kind();
        Ok(db::exec(
            &self.shared.db.conn,
            kind.stmt(
                "DELETE FROM waymark_branches WHERE id = $1",
                vec![text(id.to_string())],
            ),
            "branches.delete",
        )
        .await?
            > 0)
    }
}

/// The SQL [`SnapshotRepository`].
pub(crate) struct SqlSnapshotRepository {
    shared: Arc<Shared>,
}

impl SqlSnapshotRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    async fn select(
        &self,
        sql_where: &str,
        param: String,
        op: &'static str,
    ) -> SqlResult<Vec<Snapshot>> {
        let kind = self.shared.kind();
        let rows = db::all(
            &self.shared.db.conn,
            kind.stmt(
                format!("SELECT {SNAPSHOT_COLUMNS} FROM waymark_snapshots WHERE {sql_where} ORDER BY created_at, id"),
                vec![text(param)],
            ),
            op,
        )
        .await?;
        rows.iter()
            .map(|r| snapshot(&Row::new(r, kind, op), op))
            .collect()
    }
}

#[async_trait]
impl SnapshotRepository for SqlSnapshotRepository {
    async fn create(&self, s: Snapshot) -> DomainResult<Snapshot> {
        const OP: &str = "snapshots.create";
        s.validate_for_write()?;
        let kind = self.shared.kind();
        let stored = Snapshot {
            created_at: self.shared.now(),
            ..s
        };
        db::exec(
            &self.shared.db.conn,
            kind.stmt(
                "INSERT INTO waymark_snapshots (id, thread_id, ns, checkpoint_id, name, \
                 description, kind, metadata, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                vec![
                    text(stored.id.to_string()),
                    text(stored.thread_id.as_str()),
                    text(stored.namespace.as_str()),
                    text(stored.checkpoint_id.as_str()),
                    text(stored.name.as_str()),
                    opt_text(stored.description.clone()),
                    text(stored.kind.as_str()),
                    kind.json_obj(&stored.metadata),
                    kind.ts(stored.created_at),
                ],
            ),
            OP,
        )
        .await?;
        Ok(stored)
    }

    async fn get(&self, id: SnapshotId) -> DomainResult<Option<Snapshot>> {
        Ok(self
            .select("id = $1", id.to_string(), "snapshots.get")
            .await?
            .pop())
    }

    async fn list_for_thread(&self, thread_id: &ThreadId) -> DomainResult<Vec<Snapshot>> {
        Ok(self
            .select(
                "thread_id = $1",
                thread_id.to_string(),
                "snapshots.list_for_thread",
            )
            .await?)
    }

    async fn delete(&self, id: SnapshotId) -> DomainResult<bool> {
        let kind = self.shared.kind();
        Ok(db::exec(
            &self.shared.db.conn,
            kind.stmt(
                "DELETE FROM waymark_snapshots WHERE id = $1",
                vec![text(id.to_string())],
            ),
            "snapshots.delete",
        )
        .await?
            > 0)
    }
}
