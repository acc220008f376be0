//! Sessions over SQL. Updates lock the row and merge in Rust (one transaction), so a
//! concurrent merge of disjoint metadata keys keeps both; a delete detaches the session's
//! threads in the same transaction.

use std::sync::Arc;

use async_trait::async_trait;
use waymark_domain::paging::Page;
use waymark_domain::session::{Session, SessionQuery, SessionRepository, SessionUpdate};
use waymark_domain::{DomainError, DomainResult, SessionId, UserScope};

use super::Shared;
use super::convert::threads::{SESSION_COLUMNS, session};
use super::db::{self, Kind, Row, Sql, int, opt_int, opt_text, scope_filter, text};
use super::error::{DbResultExt, SqlResult};

/// The SQL [`SessionRepository`].
pub(crate) struct SqlSessionRepository {
    shared: Arc<Shared>,
}

fn bool_val(kind: Kind, b: bool) -> sea_orm::Value {
    match kind {
        Kind::Postgres => sea_orm::Value::Bool(Some(b)),
        Kind::Sqlite => int(i64::from(b)),
    }
}

impl SqlSessionRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    async fn fetch<C: sea_orm::ConnectionTrait>(
        &self,
        c: &C,
        scope: &UserScope,
        id: &SessionId,
        lock: bool,
        op: &'static str,
    ) -> SqlResult<Option<Session>> {
        let kind = self.shared.kind();
        let mut q = Sql::new(&format!(
            "SELECT {SESSION_COLUMNS} FROM waymark_sessions WHERE id = "
        ));
        q.val(text(id.as_str()));
        scope_filter(&mut q, scope, "owner");
        if lock && kind == Kind::Postgres {
            q.push(" FOR UPDATE");
        }
        match db::one(c, q.build(kind), op).await? {
            Some(r) => Ok(Some(session(&Row::new(&r, kind, op), op)?)),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl SessionRepository for SqlSessionRepository {
    async fn create(&self, scope: &UserScope, session: Session) -> DomainResult<Session> {
        const OP: &str = "sessions.create";
        session.validate_for_write()?;
        let kind = self.shared.kind();
        let now = self.shared.now();
        let stored = Session {
            owner: scope.owner().cloned(),
            created_at: now,
            updated_at: now,
            ..session
        };
        let p = &stored.checkpoint_policy;
        let stmt = kind.stmt(
            "INSERT INTO waymark_sessions (id, owner, title, metadata, status, \
             max_checkpoints_per_thread, retention_seconds, exempt_snapshots, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
            vec![
                text(stored.id.as_str()),
                opt_text(stored.owner.as_ref().map(|o| o.as_str())),
                opt_text(stored.title.clone()),
                kind.json_obj(&stored.metadata),
                text(stored.status.as_str()),
                opt_int(p.max_checkpoints_per_thread.map(i64::from)),
                opt_int(p.retention_seconds),
                bool_val(kind, p.exempt_snapshots),
                kind.ts(now),
                kind.ts(now),
            ],
        );
        if db::exec(&self.shared.db.conn, stmt, OP).await? == 0 {
            return Err(DomainError::conflict(
                "session",
                format!("session {} already exists", stored.id),
            ));
        }
        Ok(stored)
    }

    async fn get(&self, scope: &UserScope, id: &SessionId) -> DomainResult<Option<Session>> {
        Ok(self
            .fetch(&self.shared.db.conn, scope, id, false, "sessions.get")
            .await?)
    }

    async fn update(
        &self,
        scope: &UserScope,
        id: &SessionId,
        update: SessionUpdate,
    ) -> DomainResult<Session> {
        const OP: &str = "sessions.update";
        update.validate()?;
        let kind = self.shared.kind();
        let now = self.shared.now();
        let txn = self.shared.db.begin_write(OP).await?;
        let Some(mut s) = self.fetch(&txn, scope, id, true, OP).await? else {
            return Err(DomainError::not_found("session", id));
        };
        update.apply_to(&mut s, now);
        let p = &s.checkpoint_policy;
        let stmt = kind.stmt(
            "UPDATE waymark_sessions SET title = $2, metadata = $3, status = $4, \
             max_checkpoints_per_thread = $5, retention_seconds = $6, exempt_snapshots = $7, \
             updated_at = $8 WHERE id = $1",
            vec![
                text(s.id.as_str()),
                opt_text(s.title.clone()),
                kind.json_obj(&s.metadata),
                text(s.status.as_str()),
                opt_int(p.max_checkpoints_per_thread.map(i64::from)),
                opt_int(p.retention_seconds),
                bool_val(kind, p.exempt_snapshots),
                kind.ts(now),
            ],
        );
        db::exec(&txn, stmt, OP).await?;
        txn.commit().await.op(OP)?;
        Ok(s)
    }

    async fn list(&self, scope: &UserScope, query: &SessionQuery) -> DomainResult<Page<Session>> {
        const OP: &str = "sessions.list";
        let kind = self.shared.kind();
        let mut q = Sql::new(&format!(
            "SELECT {SESSION_COLUMNS} FROM waymark_sessions WHERE 1 = 1"
        ));
        scope_filter(&mut q, scope, "owner");
        if let Some(st) = query.status {
            q.push(" AND status = ").val(text(st.as_str()));
        }
        q.push(" ORDER BY updated_at DESC, id DESC LIMIT ")
            .val(int(i64::from(query.page.limit.get()) + 1))
            .push(" OFFSET ")
            .val(int(i64::try_from(query.page.offset).unwrap_or(i64::MAX)));
        let rows = db::all(&self.shared.db.conn, q.build(kind), OP).await?;
        let items = rows
            .iter()
            .map(|r| session(&Row::new(r, kind, OP), OP))
            .collect::<SqlResult<Vec<_>>>()?;
        Ok(Page::from_look_ahead(items, query.page.limit))
    }

    async fn delete(&self, scope: &UserScope, id: &SessionId) -> DomainResult<bool> {
        const OP: &str = "sessions.delete";
        let kind = self.shared.kind();
        let txn = self.shared.db.begin_write(OP).await?;
        let mut q = Sql::new("DELETE FROM waymark_sessions WHERE id = ");
        q.val(text(id.as_str()));
        scope_filter(&mut q, scope, "owner");
        if db::exec(&txn, q.build(kind), OP).await? == 0 {
            return Ok(false);
        }
        db::exec(
            &txn,
            kind.stmt(
                "UPDATE waymark_threads SET session_id = NULL WHERE session_id = $1",
                vec![text(id.as_str())],
            ),
            OP,
        )
        .await?;
        txn.commit().await.op(OP)?;
        Ok(true)
    }
}
