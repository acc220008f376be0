//! Thread metadata over SQL (spec `history-and-streams.md` §6).
//!
//! * `search` pushes every condition into SQL, so `limit`/`offset` are exact. The metadata
//!   filter (flat keys, scalar values, `true` never `1`, null only explicit) is jsonb
//!   containment on PostgreSQL and `json_type` + `json_extract` on SQLite.
//! * `update` is a locked read-modify-write (`FOR UPDATE` / immediate transaction): concurrent
//!   merges of disjoint keys both survive.
//! * `claim` is one `INSERT .. SELECT .. WHERE NOT EXISTS (row-less checkpoints) ON
//!   CONFLICT DO NOTHING` followed by reading the owner back, so concurrent claims of one id
//!   leave exactly one owner.
//! * `delete` removes the thread and every row held for it in one transaction, under the
//!   run-event fence of the thread so no event writer interleaves.

use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::ConnectionTrait;
use waymark_domain::paging::Page;
use waymark_domain::thread::{
    NewThread, PINNED_KEY, Thread, ThreadQuery, ThreadRepository, ThreadUpdate,
};
use waymark_domain::{DomainError, DomainResult, SessionId, ThreadId, UserScope};

use super::Shared;
use super::convert::threads::{THREAD_COLUMNS, thread};
use super::db::{self, Kind, Row, Sql, int, opt_text, scope_filter, text};
#[cfg(feature = "sqlite")]
use super::direct;
use super::error::{DbResultExt, SqlResult};
use super::scalar_filter::push_scalar_filter;

/// The SQL [`ThreadRepository`].
pub(crate) struct SqlThreadRepository {
    shared: Arc<Shared>,
}

/// The "pinned first" sort expression.
fn pinned_expr(kind: Kind) -> String {
    match kind {
        Kind::Postgres => format!("COALESCE(metadata -> '{PINNED_KEY}' = 'true'::jsonb, false)"),
        Kind::Sqlite => format!("COALESCE(json_type(metadata, '$.{PINNED_KEY}') = 'true', 0)"),
    }
}

/// Deletes every row held for `thread_id` in every Waymark table (the thread row included),
/// inside the caller's transaction. The run-event counter stays, so seqs are never reused.
pub(crate) async fn delete_thread_rows<C: ConnectionTrait>(
    c: &C,
    kind: Kind,
    thread_id: &ThreadId,
    op: &'static str,
) -> SqlResult<()> {
    if kind == Kind::Postgres {
        // The run-event fence: the counter row lock serializes this delete with allocators.
        db::exec(
            c,
            kind.stmt(
                "SELECT last_seq FROM waymark_run_event_counters WHERE thread_id = $1 FOR UPDATE",
                vec![text(thread_id.as_str())],
            ),
            op,
        )
        .await?;
    }
    for sql in [
        "DELETE FROM waymark_threads WHERE id = $1",
        "DELETE FROM waymark_runs WHERE thread_id = $1",
        "DELETE FROM waymark_run_events WHERE thread_id = $1",
        "DELETE FROM waymark_feedback WHERE thread_id = $1",
        "DELETE FROM waymark_chat_streams WHERE thread_id = $1",
        "DELETE FROM waymark_branches WHERE source_thread_id = $1 OR thread_id = $1",
        "DELETE FROM waymark_snapshots WHERE thread_id = $1",
        "DELETE FROM waymark_token_usage WHERE thread_id = $1",
    ] {
        db::exec(c, kind.stmt(sql, vec![text(thread_id.as_str())]), op).await?;
    }
    super::checkpoints::delete_thread_checkpoints(c, kind, thread_id, op).await
}

impl SqlThreadRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The thread's row, read on a dedicated reader connection where the SQLite file has them
    /// (one thread hand-off), else through the pool. The checkpointer's access checks and
    /// claims read it on every call.
    async fn read_row(&self, id: &ThreadId, op: &'static str) -> SqlResult<Option<Thread>> {
        #[cfg(feature = "sqlite")]
        if let Some(direct) = &self.shared.direct {
            let repo = Self::new(self.shared.clone());
            let id = id.clone();
            return direct
                .read(op, move |c| direct::complete(repo.fetch(c, &id, false, op)))
                .await;
        }
        self.fetch(&self.shared.db.conn, id, false, op).await
    }

    /// Inserts the claimed row unless one exists, then reads back whoever holds it. One
    /// statement decides: insert unless a row exists (`ON CONFLICT`) and, for a user, unless
    /// the id already holds row-less checkpoints, which stay admin-only.
    async fn insert_claim<C: db::Exec>(
        &self,
        c: &C,
        scope: &UserScope,
        id: &ThreadId,
        op: &'static str,
    ) -> SqlResult<Option<Thread>> {
        let kind = self.shared.kind();
        let now = self.shared.now();
        let guard = if scope.owner().is_some() {
            "NOT EXISTS (SELECT 1 FROM waymark_checkpoints WHERE thread_id = $1)"
        } else {
            "1 = 1"
        };
        db::exec(
            c,
            kind.stmt(
                format!(
                    "INSERT INTO waymark_threads (id, session_id, owner, assistant_id, \
                     display_name, status, metadata, created_at, updated_at) \
                     SELECT $1, NULL, $2, NULL, NULL, 'idle', $3, $4, $4 WHERE {guard} \
                     ON CONFLICT (id) DO NOTHING"
                ),
                vec![
                    text(id.as_str()),
                    opt_text(scope.owner().map(|o| o.as_str())),
                    kind.json_obj(&waymark_domain::JsonObject::new()),
                    kind.ts(now),
                ],
            ),
            op,
        )
        .await?;
        // Whoever won (this call, a concurrent claim or create), the stored owner decides.
        self.fetch(c, id, false, op).await
    }

    async fn fetch<C: db::Exec>(
        &self,
        c: &C,
        id: &ThreadId,
        lock: bool,
        op: &'static str,
    ) -> SqlResult<Option<Thread>> {
        let kind = self.shared.kind();
        let mut sql = format!("SELECT {THREAD_COLUMNS} FROM waymark_threads WHERE id = $1");
        if lock && kind == Kind::Postgres {
            sql.push_str(" FOR UPDATE");
        }
        match db::one(c, kind.stmt(sql, vec![text(id.as_str())]), op).await? {
            Some(r) => Ok(Some(thread(&Row::new(&r, kind, op))?)),
            None => Ok(None),
        }
    }

    async fn require_session<C: ConnectionTrait>(
        &self,
        c: &C,
        scope: &UserScope,
        id: &SessionId,
        op: &'static str,
    ) -> DomainResult<()> {
        let kind = self.shared.kind();
        let mut q = Sql::new("SELECT id FROM waymark_sessions WHERE id = ");
        q.val(text(id.as_str()));
        scope_filter(&mut q, scope, "owner");
        match db::one(c, q.build(kind), op).await? {
            Some(_) => Ok(()),
            None => Err(DomainError::not_found("session", id)),
        }
    }
}

#[async_trait]
impl ThreadRepository for SqlThreadRepository {
    async fn create(&self, scope: &UserScope, new: NewThread) -> DomainResult<Thread> {
        const OP: &str = "threads.create";
        new.validate_for_write()?;
        let kind = self.shared.kind();
        let now = self.shared.now();
        let txn = self.shared.db.begin_write(OP).await?;
        if let Some(existing) = self.fetch(&txn, &new.id, false, OP).await? {
            if scope.can_see(existing.owner.as_ref()) {
                return Ok(existing);
            }
            return Err(DomainError::conflict(
                "thread",
                format!("thread id {} is not available", new.id),
            ));
        }
        if scope.owner().is_some() {
            // Row-less checkpoints stay admin-only; a user's create never adopts them.
            let rowless = db::one(
                &txn,
                kind.stmt(
                    "SELECT 1 FROM waymark_checkpoints WHERE thread_id = $1 LIMIT 1",
                    vec![text(new.id.as_str())],
                ),
                OP,
            )
            .await?;
            if rowless.is_some() {
                return Err(DomainError::conflict(
                    "thread",
                    format!("thread id {} is not available", new.id),
                ));
            }
        }
        if let Some(session) = &new.session_id {
            self.require_session(&txn, scope, session, OP).await?;
        }
        let stored = new.into_thread(scope.owner().cloned(), now);
        let inserted = db::exec(
            &txn,
            kind.stmt(
                "INSERT INTO waymark_threads (id, session_id, owner, assistant_id, display_name, \
                 status, metadata, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (id) DO NOTHING",
                vec![
                    text(stored.id.as_str()),
                    opt_text(stored.session_id.as_ref().map(|s| s.as_str())),
                    opt_text(stored.owner.as_ref().map(|o| o.as_str())),
                    opt_text(stored.assistant_id.clone()),
                    opt_text(stored.display_name.clone()),
                    text(stored.status.as_str()),
                    kind.json_obj(&stored.metadata),
                    kind.ts(now),
                    kind.ts(now),
                ],
            ),
            OP,
        )
        .await?;
        if inserted == 0 {
            // A concurrent create won the race (PostgreSQL); resolve by reading it back.
            let existing = self
                .fetch(&txn, &stored.id, false, OP)
                .await?
                .ok_or_else(|| DomainError::storage(OP, "thread vanished during create"))?;
            txn.commit().await.op(OP)?;
            if scope.can_see(existing.owner.as_ref()) {
                return Ok(existing);
            }
            return Err(DomainError::conflict(
                "thread",
                format!("thread id {} is not available", stored.id),
            ));
        }
        txn.commit().await.op(OP)?;
        Ok(stored)
    }

    async fn get(&self, scope: &UserScope, id: &ThreadId) -> DomainResult<Option<Thread>> {
        Ok(self
            .fetch(&self.shared.db.conn, id, false, "threads.get")
            .await?
            .filter(|t| scope.can_see(t.owner.as_ref())))
    }

    async fn search(&self, scope: &UserScope, query: &ThreadQuery) -> DomainResult<Page<Thread>> {
        const OP: &str = "threads.search";
        let kind = self.shared.kind();
        let mut q = Sql::new(&format!(
            "SELECT {THREAD_COLUMNS} FROM waymark_threads WHERE 1 = 1"
        ));
        scope_filter(&mut q, scope, "owner");
        if let Some(st) = query.status {
            q.push(" AND status = ").val(text(st.as_str()));
        }
        if let Some(s) = &query.session_id {
            q.push(" AND session_id = ").val(text(s.as_str()));
        }
        push_scalar_filter(&mut q, kind, "metadata", query.filter.conditions());
        q.push(&format!(
            " ORDER BY {} DESC, updated_at DESC, id DESC LIMIT ",
            pinned_expr(kind)
        ))
        .val(int(i64::from(query.page.limit.get()) + 1))
        .push(" OFFSET ")
        .val(int(i64::try_from(query.page.offset).unwrap_or(i64::MAX)));
        let rows = db::all(&self.shared.db.conn, q.build(kind), OP).await?;
        let items = rows
            .iter()
            .map(|r| thread(&Row::new(r, kind, OP)))
            .collect::<SqlResult<Vec<_>>>()?;
        Ok(Page::from_look_ahead(items, query.page.limit))
    }

    async fn update(
        &self,
        scope: &UserScope,
        id: &ThreadId,
        update: ThreadUpdate,
    ) -> DomainResult<Thread> {
        const OP: &str = "threads.update";
        update.validate()?;
        let kind = self.shared.kind();
        let now = self.shared.now();
        let txn = self.shared.db.begin_write(OP).await?;
        let Some(mut t) = self
            .fetch(&txn, id, true, OP)
            .await?
            .filter(|t| scope.can_see(t.owner.as_ref()))
        else {
            return Err(DomainError::not_found("thread", id));
        };
        if let Some(Some(session)) = &update.session_id {
            self.require_session(&txn, scope, session, OP).await?;
        }
        update.apply_to(&mut t, now);
        db::exec(
            &txn,
            kind.stmt(
                "UPDATE waymark_threads SET session_id = $2, owner = $3, display_name = $4, \
                 status = $5, metadata = $6, updated_at = $7 WHERE id = $1",
                vec![
                    text(t.id.as_str()),
                    opt_text(t.session_id.as_ref().map(|s| s.as_str())),
                    opt_text(t.owner.as_ref().map(|o| o.as_str())),
                    opt_text(t.display_name.clone()),
                    text(t.status.as_str()),
                    kind.json_obj(&t.metadata),
                    kind.ts(t.updated_at),
                ],
            ),
            OP,
        )
        .await?;
        txn.commit().await.op(OP)?;
        Ok(t)
    }

    async fn claim(&self, scope: &UserScope, id: &ThreadId) -> DomainResult<Option<Thread>> {
        const OP: &str = "threads.claim";
        // Fast path: the row exists (every write after the first).
        if let Some(t) = self.read_row(id, OP).await? {
            return Ok(scope.can_see(t.owner.as_ref()).then_some(t));
        }
        // On a SQLite file, on the checkpoint writer's connection, so a claim and the put that
        // follows it never wait for each other's lock.
        #[cfg(feature = "sqlite")]
        let stored = match &self.shared.direct {
            Some(direct) => {
                let repo = Self::new(self.shared.clone());
                let (owner_scope, id) = (scope.clone(), id.clone());
                direct
                    .write(OP, move |c| {
                        direct::complete(repo.insert_claim(c, &owner_scope, &id, OP))
                    })
                    .await?
            }
            None => {
                self.insert_claim(&self.shared.db.conn, scope, id, OP)
                    .await?
            }
        };
        #[cfg(not(feature = "sqlite"))]
        let stored = self
            .insert_claim(&self.shared.db.conn, scope, id, OP)
            .await?;
        Ok(stored.filter(|t| scope.can_see(t.owner.as_ref())))
    }

    async fn check_access(
        &self,
        scope: &UserScope,
        id: &ThreadId,
        require_existing: bool,
    ) -> DomainResult<bool> {
        Ok(match self.read_row(id, "threads.check_access").await? {
            None => *scope == UserScope::Unscoped && !require_existing,
            Some(t) => scope.can_see(t.owner.as_ref()),
        })
    }

    async fn delete(&self, scope: &UserScope, id: &ThreadId) -> DomainResult<bool> {
        const OP: &str = "threads.delete";
        let kind = self.shared.kind();
        let _fence = self.shared.fences.lock(id.as_str()).await;
        let txn = self.shared.db.begin_write(OP).await?;
        let existed = match self.fetch(&txn, id, true, OP).await? {
            Some(t) if !scope.can_see(t.owner.as_ref()) => return Ok(false),
            Some(_) => true,
            None => false,
        };
        delete_thread_rows(&txn, kind, id, OP).await?;
        txn.commit().await.op(OP)?;
        self.shared.payload_cache.forget_thread(id);
        Ok(existed)
    }
}
