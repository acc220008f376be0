//! The run-event log over SQL (spec `history-and-streams.md` §1).
//!
//! Seq allocation (§1.5): the writer takes the thread's in-process fence, begins a write
//! transaction (`BEGIN IMMEDIATE` on SQLite, which also serializes other processes), bumps the
//! thread's row in `waymark_run_event_counters` by the batch size with one
//! `INSERT .. ON CONFLICT DO UPDATE .. RETURNING last_seq` (on PostgreSQL the row lock orders
//! writers of the same thread across processes), inserts the events and commits. The counter
//! is never decremented, so seqs are never reused; `(thread_id, seq)` is the primary key as a
//! backstop. Deletes take the same fence and lock the counter row.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::ConnectionTrait;
use waymark_domain::paging::SeqPage;
use waymark_domain::run_event::{
    AI_RESPONSE_EVENT, EventQuery, LEGACY_AI_MESSAGE_EVENT, NewRunEvent, RunEvent,
    RunEventRepository, prepare_batch,
};
use waymark_domain::{DomainError, DomainResult, JsonValue, RunId, ThreadId, UserScope};

use super::Shared;
use super::convert::run_events::{EVENT_COLUMNS, event};
use super::db::{self, Kind, Row, Sql, int, opt_text, scope_filter, text};
use super::error::{DbResultExt, SqlResult};

/// The SQL [`RunEventRepository`].
pub(crate) struct SqlRunEventRepository {
    shared: Arc<Shared>,
}

/// `metadata.<key>` as text when it is a JSON string, else NULL.
fn meta_text(kind: Kind, key: &str) -> String {
    match kind {
        Kind::Postgres => format!(
            "(CASE WHEN jsonb_typeof(metadata -> '{key}') = 'string' THEN metadata ->> '{key}' END)"
        ),
        Kind::Sqlite => format!(
            "(CASE WHEN json_type(metadata, '$.{key}') = 'text' THEN json_extract(metadata, '$.{key}') END)"
        ),
    }
}

impl SqlRunEventRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn prepare(&self, events: &mut [NewRunEvent]) -> DomainResult<()> {
        prepare_batch(events, self.shared.options.max_trace_content)
    }

    /// Allocates seqs and inserts `events` (non-empty, one thread) in the caller's write
    /// transaction.
    async fn append<C: ConnectionTrait>(
        &self,
        c: &C,
        scope: &UserScope,
        events: Vec<NewRunEvent>,
        op: &'static str,
    ) -> SqlResult<Vec<RunEvent>> {
        let kind = self.shared.kind();
        let thread_id = events[0].thread_id.clone();
        let n = events.len() as i64;
        let row = db::one(
            c,
            kind.stmt(
                "INSERT INTO waymark_run_event_counters (thread_id, last_seq) VALUES ($1, $2) \
                 ON CONFLICT (thread_id) DO UPDATE SET last_seq = waymark_run_event_counters.last_seq + excluded.last_seq \
                 RETURNING last_seq",
                vec![text(thread_id.as_str()), int(n)],
            ),
            op,
        )
        .await?
        .ok_or_else(|| super::error::SqlError::corrupt(op, "the counter upsert returned no row"))?;
        let last = Row::new(&row, kind, op).i64("last_seq")?;
        let first = last - n + 1;
        let now = self.shared.now();
        let owner = scope.owner().cloned();
        let records: Vec<RunEvent> = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| RunEvent {
                thread_id: e.thread_id,
                run_id: e.run_id,
                seq: first + i as i64,
                event_type: e.event_type,
                category: e.category,
                content: e.content,
                metadata: e.metadata,
                created_at: e.created_at.map_or(now, |t| {
                    use chrono::SubsecRound;
                    t.trunc_subsecs(6)
                }),
                user_id: owner.clone(),
            })
            .collect();
        #[cfg(feature = "postgres")]
        if kind == Kind::Postgres {
            // One statement with one array per column, whatever the batch size.
            let arr =
                |ty, vals: Vec<sea_orm::Value>| sea_orm::Value::Array(ty, Some(Box::new(vals)));
            use sea_orm::sea_query::ArrayType;
            let stmt = kind.stmt(
                "INSERT INTO waymark_run_events (thread_id, seq, run_id, user_id, event_type, \
                 category, content, metadata, created_at) \
                 SELECT $1, s.seq, s.run_id, $2, s.event_type, s.category, s.content, s.metadata, s.created_at \
                 FROM UNNEST($3::bigint[], $4::text[], $5::text[], $6::text[], $7::jsonb[], $8::jsonb[], \
                 $9::timestamptz[]) AS s (seq, run_id, event_type, category, content, metadata, created_at)",
                vec![
                    text(thread_id.as_str()),
                    opt_text(owner.as_ref().map(|u| u.as_str())),
                    arr(ArrayType::BigInt, records.iter().map(|r| int(r.seq)).collect()),
                    arr(ArrayType::String, records.iter().map(|r| text(r.run_id.as_str())).collect()),
                    arr(ArrayType::String, records.iter().map(|r| text(r.event_type.as_str())).collect()),
                    arr(ArrayType::String, records.iter().map(|r| text(r.category.as_str())).collect()),
                    arr(ArrayType::Json, records.iter().map(|r| kind.json(&r.content)).collect()),
                    arr(ArrayType::Json, records.iter().map(|r| kind.json_obj(&r.metadata)).collect()),
                    arr(ArrayType::ChronoDateTimeUtc, records.iter().map(|r| kind.ts(r.created_at)).collect()),
                ],
            );
            db::exec(c, stmt, op).await?;
            return Ok(records);
        }
        // SQLite: the batch travels as one JSON array of rows and `json_each` unpacks it in
        // the database (the `->` operator keeps content as JSON text, `->>` reads scalars).
        let batch: Vec<JsonValue> = records
            .iter()
            .map(|r| {
                JsonValue::Array(vec![
                    JsonValue::from(r.seq),
                    JsonValue::from(r.run_id.as_str()),
                    JsonValue::from(r.event_type.as_str()),
                    JsonValue::from(r.category.as_str()),
                    r.content.clone(),
                    JsonValue::Object(r.metadata.clone()),
                    JsonValue::from(super::db::sqlite_ts_text(r.created_at)),
                ])
            })
            .collect();
        let stmt = kind.stmt(
            "INSERT INTO waymark_run_events (thread_id, seq, run_id, user_id, event_type, \
             category, content, metadata, created_at) \
             SELECT $1, value ->> 0, value ->> 1, $2, value ->> 2, value ->> 3, value -> 4, \
             value -> 5, value ->> 6 FROM json_each($3) ORDER BY key",
            vec![
                text(thread_id.as_str()),
                opt_text(owner.as_ref().map(|u| u.as_str())),
                text(JsonValue::Array(batch).to_string()),
            ],
        );
        db::exec(c, stmt, op).await?;
        Ok(records)
    }

    async fn rows(&self, q: Sql, op: &'static str) -> SqlResult<Vec<RunEvent>> {
        let kind = self.shared.kind();
        let rows = db::all(&self.shared.db.conn, q.build(kind), op).await?;
        rows.iter().map(|r| event(&Row::new(r, kind, op))).collect()
    }

    /// A page of message rows (spec §1.4), ascending.
    async fn page(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: Option<&RunId>,
        page: SeqPage,
        op: &'static str,
    ) -> SqlResult<Vec<RunEvent>> {
        let mut q = Sql::new(&format!(
            "SELECT {EVENT_COLUMNS} FROM waymark_run_events WHERE thread_id = "
        ));
        q.val(text(thread_id.as_str()))
            .push(" AND category = 'message'");
        if let Some(r) = run_id {
            q.push(" AND run_id = ").val(text(r.as_str()));
        }
        scope_filter(&mut q, scope, "user_id");
        let limit = int(i64::from(page.limit().get()));
        let descending = match page {
            SeqPage::Latest(_) => true,
            SeqPage::Before(seq, _) => {
                q.push(" AND seq < ").val(int(seq));
                true
            }
            SeqPage::After(seq, _) => {
                q.push(" AND seq > ").val(int(seq));
                false
            }
        };
        q.push(if descending {
            " ORDER BY seq DESC LIMIT "
        } else {
            " ORDER BY seq ASC LIMIT "
        })
        .val(limit);
        let mut rows = self.rows(q, op).await?;
        if descending {
            rows.reverse();
        }
        Ok(rows)
    }

    /// Locks the thread's counter row (PostgreSQL) so a delete waits for, and is waited for
    /// by, seq allocators in other processes.
    async fn lock_counter<C: ConnectionTrait>(
        &self,
        c: &C,
        thread_id: &ThreadId,
        op: &'static str,
    ) -> SqlResult<()> {
        let kind = self.shared.kind();
        if kind == Kind::Postgres {
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
        Ok(())
    }

    async fn fenced_delete(
        &self,
        thread_id: &ThreadId,
        q: Sql,
        op: &'static str,
    ) -> DomainResult<u64> {
        let kind = self.shared.kind();
        let _fence = self.shared.fences.lock(thread_id.as_str()).await;
        let txn = self.shared.db.begin_write(op).await?;
        self.lock_counter(&txn, thread_id, op).await?;
        let n = db::exec(&txn, q.build(kind), op).await?;
        txn.commit().await.op(op)?;
        Ok(n)
    }
}

#[async_trait]
impl RunEventRepository for SqlRunEventRepository {
    async fn put(&self, scope: &UserScope, event: NewRunEvent) -> DomainResult<RunEvent> {
        Ok(self.put_batch(scope, vec![event]).await?.remove(0))
    }

    async fn put_batch(
        &self,
        scope: &UserScope,
        mut events: Vec<NewRunEvent>,
    ) -> DomainResult<Vec<RunEvent>> {
        const OP: &str = "run_events.put";
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.prepare(&mut events)?;
        let thread_id = events[0].thread_id.clone();
        let _fence = self.shared.fences.lock(thread_id.as_str()).await;
        let txn = self.shared.db.begin_write(OP).await?;
        let stored = self.append(&txn, scope, events, OP).await?;
        txn.commit().await.op(OP)?;
        Ok(stored)
    }

    async fn put_if_absent(
        &self,
        scope: &UserScope,
        new_event: NewRunEvent,
    ) -> DomainResult<(RunEvent, bool)> {
        const OP: &str = "run_events.put_if_absent";
        let mut batch = vec![new_event];
        self.prepare(&mut batch)?;
        let kind = self.shared.kind();
        let e = &batch[0];
        let _fence = self.shared.fences.lock(e.thread_id.as_str()).await;
        let txn = self.shared.db.begin_write(OP).await?;
        self.lock_counter(&txn, &e.thread_id, OP).await?;
        let found = db::one(
            &txn,
            kind.stmt(
                format!(
                    "SELECT {EVENT_COLUMNS} FROM waymark_run_events WHERE thread_id = $1 \
                     AND run_id = $2 AND event_type = $3 ORDER BY seq LIMIT 1"
                ),
                vec![
                    text(e.thread_id.as_str()),
                    text(e.run_id.as_str()),
                    text(e.event_type.as_str()),
                ],
            ),
            OP,
        )
        .await?;
        if let Some(row) = found {
            let found = event(&Row::new(&row, kind, OP))?;
            if scope.can_see(found.user_id.as_ref()) {
                return Ok((found, false));
            }
            return Err(DomainError::conflict(
                "run_event",
                format!(
                    "run {} already has a {} event of another owner",
                    e.run_id, e.event_type
                ),
            ));
        }
        let stored = self.append(&txn, scope, batch, OP).await?;
        txn.commit().await.op(OP)?;
        Ok((stored.into_iter().next().expect("one event"), true))
    }

    async fn list_messages(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        page: SeqPage,
    ) -> DomainResult<Vec<RunEvent>> {
        Ok(self
            .page(scope, thread_id, None, page, "run_events.list_messages")
            .await?)
    }

    async fn list_messages_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        page: SeqPage,
    ) -> DomainResult<Vec<RunEvent>> {
        Ok(self
            .page(
                scope,
                thread_id,
                Some(run_id),
                page,
                "run_events.list_messages_by_run",
            )
            .await?)
    }

    async fn list_events(
        &self,
        scope: &UserScope,
        query: &EventQuery,
    ) -> DomainResult<Vec<RunEvent>> {
        let kind = self.shared.kind();
        let mut q = Sql::new(&format!(
            "SELECT {EVENT_COLUMNS} FROM waymark_run_events WHERE thread_id = "
        ));
        q.val(text(query.thread_id.as_str()))
            .push(" AND run_id = ")
            .val(text(query.run_id.as_str()));
        scope_filter(&mut q, scope, "user_id");
        if let Some(types) = &query.event_types {
            if types.is_empty() {
                return Ok(Vec::new());
            }
            q.push(" AND event_type IN (");
            for (i, t) in types.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.val(text(t.as_str()));
            }
            q.push(")");
        }
        if let Some(task) = &query.task_id {
            q.push(&format!(" AND {} = ", meta_text(kind, "task_id")))
                .val(text(task.clone()));
        }
        if let Some(after) = query.after_seq {
            q.push(" AND seq > ").val(int(after));
        }
        q.push(" ORDER BY seq LIMIT ")
            .val(int(i64::from(query.limit.get())));
        Ok(self.rows(q, "run_events.list_events").await?)
    }

    async fn count_messages(&self, scope: &UserScope, thread_id: &ThreadId) -> DomainResult<u64> {
        const OP: &str = "run_events.count_messages";
        let kind = self.shared.kind();
        let mut q = Sql::new(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM waymark_run_events WHERE thread_id = ",
        );
        q.val(text(thread_id.as_str()))
            .push(" AND category = 'message'");
        scope_filter(&mut q, scope, "user_id");
        let row = db::one(&self.shared.db.conn, q.build(kind), OP)
            .await?
            .ok_or_else(|| DomainError::storage(OP, "no row"))?;
        Ok(Row::new(&row, kind, OP).u64("n")?)
    }

    async fn last_visible_ai_seq_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_ids: Vec<RunId>,
    ) -> DomainResult<HashMap<RunId, i64>> {
        const OP: &str = "run_events.last_visible_ai_seq_by_run";
        if run_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let kind = self.shared.kind();
        let wanted: HashSet<RunId> = run_ids.into_iter().collect();
        let mut q =
            Sql::new("SELECT run_id, MAX(seq) AS seq FROM waymark_run_events WHERE thread_id = ");
        q.val(text(thread_id.as_str()));
        q.push(&format!(
            " AND category = 'message' AND event_type IN ('{AI_RESPONSE_EVENT}', '{LEGACY_AI_MESSAGE_EVENT}') \
             AND COALESCE(substr({}, 1, 11) <> 'middleware:', {}) AND run_id IN (",
            meta_text(kind, "caller"),
            if kind == Kind::Postgres { "true" } else { "1" }
        ));
        for (i, r) in wanted.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.val(text(r.as_str()));
        }
        q.push(")");
        scope_filter(&mut q, scope, "user_id");
        q.push(" GROUP BY run_id");
        let rows = db::all(&self.shared.db.conn, q.build(kind), OP).await?;
        let mut out = HashMap::new();
        for row in &rows {
            let r = Row::new(row, kind, OP);
            out.insert(r.id::<RunId>("run_id")?, r.i64("seq")?);
        }
        Ok(out)
    }

    async fn delete_by_thread(&self, scope: &UserScope, thread_id: &ThreadId) -> DomainResult<u64> {
        let mut q = Sql::new("DELETE FROM waymark_run_events WHERE thread_id = ");
        q.val(text(thread_id.as_str()));
        scope_filter(&mut q, scope, "user_id");
        self.fenced_delete(thread_id, q, "run_events.delete_by_thread")
            .await
    }

    async fn delete_by_run(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
    ) -> DomainResult<u64> {
        let mut q = Sql::new("DELETE FROM waymark_run_events WHERE thread_id = ");
        q.val(text(thread_id.as_str()))
            .push(" AND run_id = ")
            .val(text(run_id.as_str()));
        scope_filter(&mut q, scope, "user_id");
        self.fenced_delete(thread_id, q, "run_events.delete_by_run")
            .await
    }
}
