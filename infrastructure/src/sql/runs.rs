//! Runs over SQL (spec `history-and-streams.md` §6.2; rules in [`waymark_domain::run`]).
//!
//! * "At most one active run per thread" is the partial unique index `waymark_runs_one_active`
//!   (migration `m0010_runs`): of concurrent creates, from any number of processes, one
//!   inserts and the others hit the index and answer a conflict.
//! * `create` reads the thread row first in the same write transaction (`FOR SHARE` on
//!   PostgreSQL), so a concurrent thread delete cannot leave an orphan run.
//! * Every state change (start, renew, progress, finish, reclaim) is one
//!   `UPDATE .. WHERE <expected state> .. RETURNING` statement: the compare-and-set is done by
//!   the database, so several workers can share one PostgreSQL. When no row matched, a read
//!   tells "not found" from "wrong state".

use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::Value;
use waymark_domain::run::{
    FinalStatus, LEASE_EXPIRED_ERROR, LeaseTtl, NewRun, Run, RunLease, RunList, RunOutcome,
    RunPage, RunProgress, RunRepository, RunStatus, WorkerId, finish_transition,
};
use waymark_domain::{DomainError, DomainResult, RunId, ThreadId, UserId, UserScope};

use super::Shared;
use super::db::{self, Kind, Row, Sql, int, opt_text, scope_filter, text};
use super::error::{DbFailure, DbResultExt, SqlError, SqlResult};

/// The columns [`run`] reads.
const RUN_COLUMNS: &str = "run_id, thread_id, owner, status, created_at, updated_at, \
    started_at, ended_at, error, progress, metadata, lease_owner, lease_expires_at, attempt";

/// A `waymark_runs` row.
fn run(r: &Row<'_>, op: &'static str) -> SqlResult<Run> {
    let lease = match (
        r.opt_id::<WorkerId>("lease_owner")?,
        r.opt_ts("lease_expires_at")?,
    ) {
        (Some(worker_id), Some(expires_at)) => Some(RunLease {
            worker_id,
            expires_at,
        }),
        _ => None,
    };
    let attempt = r.i64("attempt")?;
    Ok(Run {
        run_id: r.id("run_id")?,
        thread_id: r.id("thread_id")?,
        owner: r.opt_id("owner")?,
        status: r.id("status")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
        started_at: r.opt_ts("started_at")?,
        ended_at: r.opt_ts("ended_at")?,
        error: r.opt_text("error")?,
        progress: r.json_object("progress")?,
        metadata: r.json_object("metadata")?,
        lease,
        attempt: u32::try_from(attempt)
            .map_err(|_| SqlError::corrupt(op, format!("column attempt is {attempt}")))?,
    })
}

/// The SQL [`RunRepository`].
pub(crate) struct SqlRunRepository {
    shared: Arc<Shared>,
}

impl SqlRunRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn kind(&self) -> Kind {
        self.shared.kind()
    }

    async fn rows(&self, q: Sql, op: &'static str) -> SqlResult<Vec<Run>> {
        let kind = self.kind();
        let rows = db::all(&self.shared.db.conn, q.build(kind), op).await?;
        rows.iter()
            .map(|r| run(&Row::new(r, kind, op), op))
            .collect()
    }

    /// Runs `UPDATE waymark_runs SET <set> WHERE run_id = .. AND thread_id = .. <cond>` (plus
    /// the scope) returning the changed row, if one matched. `set` and `cond` use the
    /// placeholders bound in `q` before the call.
    async fn cas(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        mut q: Sql,
        cond: &str,
        op: &'static str,
    ) -> SqlResult<Option<Run>> {
        q.push(" WHERE run_id = ").val(text(run_id.as_str()));
        q.push(" AND thread_id = ").val(text(thread_id.as_str()));
        q.push(cond);
        scope_filter(&mut q, scope, "owner");
        q.push(&format!(" RETURNING {RUN_COLUMNS}"));
        Ok(self.rows(q, op).await?.pop())
    }

    /// After a compare-and-set matched nothing: not found, or the row as it is now.
    async fn current(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
    ) -> DomainResult<Run> {
        self.get(scope, thread_id, run_id)
            .await?
            .ok_or_else(|| DomainError::not_found("run", run_id))
    }
}

/// The `SET` head of an update statement, with `now` bound as `$1`.
fn update_head(kind: Kind, now: chrono::DateTime<chrono::Utc>) -> Sql {
    let mut q = Sql::new("UPDATE waymark_runs SET updated_at = ");
    q.val(kind.ts(now));
    q
}

#[async_trait]
impl RunRepository for SqlRunRepository {
    async fn create(&self, scope: &UserScope, new: NewRun) -> DomainResult<Run> {
        const OP: &str = "runs.create";
        new.validate()?;
        let kind = self.kind();
        let now = self.shared.now();
        let txn = self.shared.db.begin_write(OP).await?;
        let mut q = Sql::new("SELECT owner FROM waymark_threads WHERE id = ");
        q.val(text(new.thread_id.as_str()));
        scope_filter(&mut q, scope, "owner");
        if kind == Kind::Postgres {
            q.push(" FOR SHARE");
        }
        let Some(row) = db::one(&txn, q.build(kind), OP).await? else {
            return Err(DomainError::not_found("thread", &new.thread_id));
        };
        let owner: Option<UserId> = Row::new(&row, kind, OP).opt_id("owner")?;
        let stored = new.into_run(owner, now);
        let insert = kind.stmt(
            format!(
                "INSERT INTO waymark_runs (run_id, thread_id, owner, status, created_at, \
                 updated_at, progress, metadata, attempt) VALUES ($1, $2, $3, $4, $5, $5, $6, $7, 0) \
                 RETURNING {RUN_COLUMNS}"
            ),
            vec![
                text(stored.run_id.as_str()),
                text(stored.thread_id.as_str()),
                opt_text(stored.owner.as_ref().map(|o| o.as_str())),
                text(stored.status.as_str()),
                kind.ts(now),
                kind.json_obj(&stored.progress),
                kind.json_obj(&stored.metadata),
            ],
        );
        match db::one(&txn, insert, OP).await {
            Ok(Some(row)) => {
                let created = run(&Row::new(&row, kind, OP), OP)?;
                txn.commit().await.op(OP)?;
                Ok(created)
            }
            Ok(None) => Err(DomainError::storage(OP, "the insert returned no row")),
            Err(SqlError::Db {
                failure: DbFailure::UniqueViolation,
                ..
            }) => Err(DomainError::conflict(
                "run",
                format!(
                    "thread {} already has an active run, or run id {} is already used on it",
                    stored.thread_id, stored.run_id
                ),
            )),
            Err(e) => Err(e.into()),
        }
    }

    async fn get(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
    ) -> DomainResult<Option<Run>> {
        let mut q = Sql::new(&format!(
            "SELECT {RUN_COLUMNS} FROM waymark_runs WHERE run_id = "
        ));
        q.val(text(run_id.as_str()));
        q.push(" AND thread_id = ").val(text(thread_id.as_str()));
        scope_filter(&mut q, scope, "owner");
        Ok(self.rows(q, "runs.get").await?.pop())
    }

    async fn start(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        worker: &WorkerId,
        ttl: LeaseTtl,
    ) -> DomainResult<Run> {
        let kind = self.kind();
        let now = self.shared.now();
        let mut q = update_head(kind, now);
        q.push(", status = 'running', started_at = ")
            .val(kind.ts(now));
        q.push(", attempt = attempt + 1, lease_owner = ")
            .val(text(worker.as_str()));
        q.push(", lease_expires_at = ")
            .val(kind.ts(now + ttl.duration()));
        if let Some(r) = self
            .cas(
                scope,
                thread_id,
                run_id,
                q,
                " AND status = 'pending'",
                "runs.start",
            )
            .await?
        {
            return Ok(r);
        }
        Err(self.current(scope, thread_id, run_id).await?.not_pending())
    }

    async fn renew_lease(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        worker: &WorkerId,
        ttl: LeaseTtl,
    ) -> DomainResult<Run> {
        let kind = self.kind();
        let now = self.shared.now();
        let mut q = update_head(kind, now);
        q.push(", lease_expires_at = ")
            .val(kind.ts(now + ttl.duration()));
        let holder = q.bind(text(worker.as_str()));
        if let Some(r) = self
            .cas(
                scope,
                thread_id,
                run_id,
                q,
                &format!(" AND status = 'running' AND lease_owner = {holder}"),
                "runs.renew_lease",
            )
            .await?
        {
            return Ok(r);
        }
        let r = self.current(scope, thread_id, run_id).await?;
        if r.status != RunStatus::Running {
            return Err(r.not_running("renewing a lease"));
        }
        Err(r.lease_not_held(worker))
    }

    async fn update_progress(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        progress: RunProgress,
    ) -> DomainResult<Run> {
        let kind = self.kind();
        let now = self.shared.now();
        let mut q = update_head(kind, now);
        q.push(", progress = ")
            .val(kind.json_obj(progress.as_object()));
        if let Some(r) = self
            .cas(
                scope,
                thread_id,
                run_id,
                q,
                " AND status = 'running'",
                "runs.update_progress",
            )
            .await?
        {
            return Ok(r);
        }
        let r = self.current(scope, thread_id, run_id).await?;
        Err(r.not_running("a progress update"))
    }

    async fn finish(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        outcome: RunOutcome,
    ) -> DomainResult<Run> {
        let kind = self.kind();
        // A row that changes state between the update and the read is retried; it can only
        // move towards a final status, so this ends.
        for _ in 0..3 {
            let now = self.shared.now();
            let mut q = update_head(kind, now);
            q.push(", status = ")
                .val(text(outcome.status.status().as_str()));
            q.push(", error = ")
                .val(opt_text(outcome.error.as_ref().map(|e| e.as_str())));
            q.push(", lease_owner = NULL, lease_expires_at = NULL, ended_at = ")
                .val(kind.ts(now));
            let cond = if outcome.status == FinalStatus::Interrupted {
                " AND status IN ('pending', 'running')"
            } else {
                " AND status IN ('pending', 'running', 'interrupted')"
            };
            if let Some(r) = self
                .cas(scope, thread_id, run_id, q, cond, "runs.finish")
                .await?
            {
                return Ok(r);
            }
            let r = self.current(scope, thread_id, run_id).await?;
            if !finish_transition(run_id, r.status, outcome.status)? {
                return Ok(r);
            }
        }
        Err(DomainError::conflict(
            "run",
            format!("run {run_id} kept changing while it was being finished"),
        ))
    }

    async fn list(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        page: &RunPage,
    ) -> DomainResult<RunList> {
        let kind = self.kind();
        let mut q = Sql::new(&format!(
            "SELECT {RUN_COLUMNS} FROM waymark_runs WHERE thread_id = "
        ));
        q.val(text(thread_id.as_str()));
        scope_filter(&mut q, scope, "owner");
        if let Some(c) = &page.after {
            let at = q.bind(kind.ts(c.created_at));
            let id = q.bind(text(c.run_id.as_str()));
            q.push(&format!(
                " AND (created_at < {at} OR (created_at = {at} AND run_id < {id}))"
            ));
        }
        q.push(" ORDER BY created_at DESC, run_id DESC LIMIT ")
            .val(int(i64::from(page.limit.get()) + 1));
        let rows = self.rows(q, "runs.list").await?;
        Ok(RunList::from_look_ahead(rows, page.limit))
    }

    async fn active(&self, scope: &UserScope, thread_id: &ThreadId) -> DomainResult<Option<Run>> {
        let mut q = Sql::new(&format!(
            "SELECT {RUN_COLUMNS} FROM waymark_runs WHERE thread_id = "
        ));
        q.val(text(thread_id.as_str()));
        q.push(" AND status IN ('pending', 'running')");
        scope_filter(&mut q, scope, "owner");
        Ok(self.rows(q, "runs.active").await?.pop())
    }

    async fn reclaim_expired(
        &self,
        scope: &UserScope,
        max_attempts: u32,
    ) -> DomainResult<Vec<Run>> {
        const OP: &str = "runs.reclaim_expired";
        let kind = self.kind();
        let now = self.shared.now();
        let expired = |q: &mut Sql| {
            q.push(" WHERE status = 'running' AND lease_expires_at <= ")
                .val(kind.ts(now));
            q.push(" AND attempt ");
        };
        // Back to pending while attempts remain...
        let mut requeue = update_head(kind, now);
        requeue.push(", status = 'pending', lease_owner = NULL, lease_expires_at = NULL");
        expired(&mut requeue);
        requeue
            .push("< ")
            .val(Value::BigInt(Some(i64::from(max_attempts))));
        scope_filter(&mut requeue, scope, "owner");
        requeue.push(&format!(" RETURNING {RUN_COLUMNS}"));
        let mut out = self.rows(requeue, OP).await?;
        // ...else an error. Each statement changes a row once, whoever else sweeps.
        let mut fail = update_head(kind, now);
        fail.push(", status = 'error', lease_owner = NULL, lease_expires_at = NULL, error = ")
            .val(text(LEASE_EXPIRED_ERROR));
        fail.push(", ended_at = ").val(kind.ts(now));
        expired(&mut fail);
        fail.push(">= ")
            .val(Value::BigInt(Some(i64::from(max_attempts))));
        scope_filter(&mut fail, scope, "owner");
        fail.push(&format!(" RETURNING {RUN_COLUMNS}"));
        out.extend(self.rows(fail, OP).await?);
        Ok(out)
    }
}
