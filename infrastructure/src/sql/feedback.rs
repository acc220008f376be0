//! Feedback over SQL (spec `history-and-streams.md` §4). `upsert` is one
//! `INSERT .. ON CONFLICT (thread_id, run_id, user_id) DO UPDATE .. RETURNING` statement; the
//! anonymous author is stored as `''` so the unique key holds on both databases.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use waymark_domain::feedback::{
    Feedback, FeedbackRepository, FeedbackStats, NewFeedback, latest_per_run,
};
use waymark_domain::paging::{Limit, Page};
use waymark_domain::{DomainError, DomainResult, FeedbackId, RunId, ThreadId, UserScope};

use super::Shared;
use super::convert::misc::{FEEDBACK_COLUMNS, feedback};
use super::db::{self, Row, Sql, int, opt_text, text};
use super::error::SqlResult;

/// The SQL [`FeedbackRepository`].
pub(crate) struct SqlFeedbackRepository {
    shared: Arc<Shared>,
}

/// The stored author of a scope: its user, or `''` (anonymous) when unscoped.
fn author(scope: &UserScope) -> String {
    scope
        .owner()
        .map(|u| u.as_str().to_owned())
        .unwrap_or_default()
}

/// The owner predicate: `user_id = $u` for a user (anonymous rows stay hidden from users).
fn scope_filter(q: &mut Sql, scope: &UserScope) {
    if let UserScope::User(u) = scope {
        q.push(" AND user_id = ").val(text(u.as_str()));
    }
}

impl SqlFeedbackRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    async fn rows(&self, q: Sql, op: &'static str) -> SqlResult<Vec<Feedback>> {
        let kind = self.shared.kind();
        let rows = db::all(&self.shared.db.conn, q.build(kind), op).await?;
        rows.iter()
            .map(|r| feedback(&Row::new(r, kind, op), op))
            .collect()
    }

    async fn listed(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: Option<&RunId>,
        limit: Option<Limit>,
        op: &'static str,
    ) -> SqlResult<Vec<Feedback>> {
        let mut q = Sql::new(&format!(
            "SELECT {FEEDBACK_COLUMNS} FROM waymark_feedback WHERE thread_id = "
        ));
        q.val(text(thread_id.as_str()));
        if let Some(r) = run_id {
            q.push(" AND run_id = ").val(text(r.as_str()));
        }
        scope_filter(&mut q, scope);
        q.push(" ORDER BY created_at, id");
        if let Some(l) = limit {
            q.push(" LIMIT ").val(int(i64::from(l.get()) + 1));
        }
        self.rows(q, op).await
    }

    fn insert_stmt(
        &self,
        scope: &UserScope,
        f: &NewFeedback,
        on_conflict: &str,
    ) -> sea_orm::Statement {
        let kind = self.shared.kind();
        let now = self.shared.now();
        kind.stmt(
            format!(
                "INSERT INTO waymark_feedback (id, thread_id, run_id, user_id, message_id, rating, \
                 comment, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
                 ON CONFLICT (thread_id, run_id, user_id) {on_conflict} RETURNING {FEEDBACK_COLUMNS}"
            ),
            vec![
                text(FeedbackId::new_random().to_string()),
                text(f.thread_id.as_str()),
                text(f.run_id.as_str()),
                text(author(scope)),
                opt_text(f.message_id.clone()),
                sea_orm::Value::SmallInt(Some(f.rating.value() as i16)),
                opt_text(f.comment.clone()),
                kind.ts(now),
            ],
        )
    }
}

#[async_trait]
impl FeedbackRepository for SqlFeedbackRepository {
    async fn create(&self, scope: &UserScope, f: NewFeedback) -> DomainResult<Feedback> {
        const OP: &str = "feedback.create";
        f.validate()?;
        let kind = self.shared.kind();
        let stmt = self.insert_stmt(scope, &f, "DO NOTHING");
        match db::one(&self.shared.db.conn, stmt, OP).await? {
            Some(r) => Ok(feedback(&Row::new(&r, kind, OP), OP)?),
            None => Err(DomainError::conflict(
                "feedback",
                format!(
                    "run {} of thread {} already has feedback from this user",
                    f.run_id, f.thread_id
                ),
            )),
        }
    }

    async fn upsert(&self, scope: &UserScope, f: NewFeedback) -> DomainResult<Feedback> {
        const OP: &str = "feedback.upsert";
        f.validate()?;
        let kind = self.shared.kind();
        let stmt = self.insert_stmt(
            scope,
            &f,
            "DO UPDATE SET rating = excluded.rating, comment = excluded.comment, \
             updated_at = excluded.updated_at",
        );
        let row = db::one(&self.shared.db.conn, stmt, OP)
            .await?
            .ok_or_else(|| DomainError::storage(OP, "the upsert returned no row"))?;
        Ok(feedback(&Row::new(&row, kind, OP), OP)?)
    }

    async fn get(&self, scope: &UserScope, id: FeedbackId) -> DomainResult<Option<Feedback>> {
        let mut q = Sql::new(&format!(
            "SELECT {FEEDBACK_COLUMNS} FROM waymark_feedback WHERE id = "
        ));
        q.val(text(id.to_string()));
        scope_filter(&mut q, scope);
        Ok(self.rows(q, "feedback.get").await?.pop())
    }

    async fn list_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        limit: Limit,
    ) -> DomainResult<Page<Feedback>> {
        let rows = self
            .listed(
                scope,
                thread_id,
                Some(run_id),
                Some(limit),
                "feedback.list_by_run",
            )
            .await?;
        Ok(Page::from_look_ahead(rows, limit))
    }

    async fn list_by_thread(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        limit: Limit,
    ) -> DomainResult<Page<Feedback>> {
        let rows = self
            .listed(
                scope,
                thread_id,
                None,
                Some(limit),
                "feedback.list_by_thread",
            )
            .await?;
        Ok(Page::from_look_ahead(rows, limit))
    }

    async fn list_by_thread_grouped(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
    ) -> DomainResult<HashMap<RunId, Feedback>> {
        let rows = self
            .listed(
                scope,
                thread_id,
                None,
                None,
                "feedback.list_by_thread_grouped",
            )
            .await?;
        Ok(latest_per_run(rows))
    }

    async fn list_by_run_ids(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_ids: Vec<RunId>,
    ) -> DomainResult<HashMap<RunId, Feedback>> {
        if run_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let wanted: HashSet<RunId> = run_ids.into_iter().collect();
        let mut q = Sql::new(&format!(
            "SELECT {FEEDBACK_COLUMNS} FROM waymark_feedback WHERE thread_id = "
        ));
        q.val(text(thread_id.as_str()));
        q.push(" AND run_id IN (");
        for (i, r) in wanted.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.val(text(r.as_str()));
        }
        q.push(")");
        scope_filter(&mut q, scope);
        Ok(latest_per_run(
            self.rows(q, "feedback.list_by_run_ids").await?,
        ))
    }

    async fn delete(&self, scope: &UserScope, id: FeedbackId) -> DomainResult<bool> {
        let mut q = Sql::new("DELETE FROM waymark_feedback WHERE id = ");
        q.val(text(id.to_string()));
        scope_filter(&mut q, scope);
        let kind = self.shared.kind();
        Ok(db::exec(&self.shared.db.conn, q.build(kind), "feedback.delete").await? > 0)
    }

    async fn delete_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
    ) -> DomainResult<bool> {
        let kind = self.shared.kind();
        Ok(db::exec(
            &self.shared.db.conn,
            kind.stmt(
                "DELETE FROM waymark_feedback WHERE thread_id = $1 AND run_id = $2 AND user_id = $3",
                vec![text(thread_id.as_str()), text(run_id.as_str()), text(author(scope))],
            ),
            "feedback.delete_by_run",
        )
        .await?
            > 0)
    }

    async fn stats(&self, thread_id: &ThreadId, run_id: &RunId) -> DomainResult<FeedbackStats> {
        const OP: &str = "feedback.stats";
        let kind = self.shared.kind();
        let row = db::one(
            &self.shared.db.conn,
            kind.stmt(
                "SELECT CAST(COUNT(*) AS BIGINT) AS total, \
                 CAST(COALESCE(SUM(CASE WHEN rating = 1 THEN 1 ELSE 0 END), 0) AS BIGINT) AS positive, \
                 CAST(COALESCE(SUM(CASE WHEN rating = -1 THEN 1 ELSE 0 END), 0) AS BIGINT) AS negative \
                 FROM waymark_feedback WHERE thread_id = $1 AND run_id = $2",
                vec![text(thread_id.as_str()), text(run_id.as_str())],
            ),
            OP,
        )
        .await?
        .ok_or_else(|| DomainError::storage(OP, "no row"))?;
        let r = Row::new(&row, kind, OP);
        Ok(FeedbackStats {
            run_id: run_id.clone(),
            total: r.u64("total")?,
            positive: r.u64("positive")?,
            negative: r.u64("negative")?,
        })
    }
}
