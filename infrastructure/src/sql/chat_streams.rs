//! Chat streams over SQL (spec `history-and-streams.md` §5.3-5.5). `append` is one upsert
//! statement that creates the record or concatenates the frames onto it (jsonb `||` on
//! PostgreSQL, splicing the JSON array text on SQLite) and refuses, through its `WHERE`, a
//! record that belongs to someone the scope cannot see.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use waymark_domain::chat_stream::{
    ChatStreamRecord, ChatStreamRepository, ChatStreamSummary, validate_frames,
};
use waymark_domain::paging::Limit;
use waymark_domain::{DomainError, DomainResult, JsonValue, ThreadId, UserScope};

use super::Shared;
use super::convert::misc::{CHAT_COLUMNS, chat_stream};
use super::db::{self, Kind, Row, Sql, int, opt_text, scope_filter, text};
use super::error::SqlResult;

/// The SQL [`ChatStreamRepository`].
pub(crate) struct SqlChatStreamRepository {
    shared: Arc<Shared>,
}

impl SqlChatStreamRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[async_trait]
impl ChatStreamRepository for SqlChatStreamRepository {
    async fn append(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        frames: Vec<String>,
    ) -> DomainResult<ChatStreamRecord> {
        const OP: &str = "chat_streams.append";
        if frames.is_empty() {
            return Err(DomainError::invalid(
                "frames",
                "an append needs at least one frame",
            ));
        }
        validate_frames(&frames)?;
        let kind = self.shared.kind();
        let now = self.shared.now();
        let count = frames.len() as i64;
        let array = JsonValue::Array(frames.into_iter().map(JsonValue::String).collect());
        let concat = match kind {
            Kind::Postgres => "waymark_chat_streams.messages || excluded.messages",
            // Both arrays are non-empty compact JSON text: drop the first's `]` and the
            // second's `[`, join with a comma.
            Kind::Sqlite => {
                "substr(waymark_chat_streams.messages, 1, length(waymark_chat_streams.messages) - 1) \
                 || ',' || substr(excluded.messages, 2)"
            }
        };
        let mut q = Sql::new(
            "INSERT INTO waymark_chat_streams (thread_id, user_id, messages, frame_count, ts, created_at) VALUES (",
        );
        q.val(text(thread_id.as_str()))
            .push(", ")
            .val(opt_text(scope.owner().map(|u| u.as_str())))
            .push(", ")
            .val(kind.json(&array))
            .push(", ")
            .val(int(count))
            .push(", ");
        let ts = q.bind(kind.ts(now));
        q.push(&format!(
            "{ts}, {ts}) ON CONFLICT (thread_id) DO UPDATE SET messages = {concat}, \
             frame_count = waymark_chat_streams.frame_count + excluded.frame_count, ts = excluded.ts"
        ));
        if let UserScope::User(u) = scope {
            q.push(" WHERE waymark_chat_streams.user_id = ")
                .val(text(u.as_str()));
        }
        q.push(&format!(" RETURNING {CHAT_COLUMNS}"));
        match db::one(&self.shared.db.conn, q.build(kind), OP).await? {
            Some(r) => Ok(chat_stream(&Row::new(&r, kind, OP), OP)?),
            None => Err(DomainError::conflict(
                "chat_stream",
                format!("the chat stream of thread {thread_id} belongs to another user"),
            )),
        }
    }

    async fn get(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
    ) -> DomainResult<Option<ChatStreamRecord>> {
        const OP: &str = "chat_streams.get";
        let kind = self.shared.kind();
        let mut q = Sql::new(&format!(
            "SELECT {CHAT_COLUMNS} FROM waymark_chat_streams WHERE thread_id = "
        ));
        q.val(text(thread_id.as_str()));
        scope_filter(&mut q, scope, "user_id");
        match db::one(&self.shared.db.conn, q.build(kind), OP).await? {
            Some(r) => Ok(Some(chat_stream(&Row::new(&r, kind, OP), OP)?)),
            None => Ok(None),
        }
    }

    async fn list_recent(
        &self,
        scope: &UserScope,
        limit: Limit,
    ) -> DomainResult<Vec<ChatStreamSummary>> {
        const OP: &str = "chat_streams.list_recent";
        let kind = self.shared.kind();
        let mut q =
            Sql::new("SELECT thread_id, ts, frame_count FROM waymark_chat_streams WHERE 1 = 1");
        scope_filter(&mut q, scope, "user_id");
        q.push(" ORDER BY ts DESC, thread_id ASC LIMIT ")
            .val(int(i64::from(limit.get())));
        let rows = db::all(&self.shared.db.conn, q.build(kind), OP).await?;
        Ok(rows
            .iter()
            .map(|row| {
                let r = Row::new(row, kind, OP);
                Ok(ChatStreamSummary {
                    thread_id: r.id("thread_id")?,
                    ts: r.ts("ts")?,
                    frame_count: r.u64("frame_count")?,
                })
            })
            .collect::<SqlResult<Vec<_>>>()?)
    }

    async fn delete(&self, scope: &UserScope, thread_id: &ThreadId) -> DomainResult<bool> {
        let kind = self.shared.kind();
        let mut q = Sql::new("DELETE FROM waymark_chat_streams WHERE thread_id = ");
        q.val(text(thread_id.as_str()));
        scope_filter(&mut q, scope, "user_id");
        Ok(db::exec(&self.shared.db.conn, q.build(kind), "chat_streams.delete").await? > 0)
    }

    async fn purge_older_than(&self, cutoff: DateTime<Utc>, batch: Limit) -> DomainResult<u64> {
        let kind = self.shared.kind();
        Ok(db::exec(
            &self.shared.db.conn,
            kind.stmt(
                "DELETE FROM waymark_chat_streams WHERE thread_id IN (SELECT thread_id FROM \
                 waymark_chat_streams WHERE ts < $1 ORDER BY ts, thread_id LIMIT $2)",
                vec![kind.ts(cutoff), int(i64::from(batch.get()))],
            ),
            "chat_streams.purge_older_than",
        )
        .await?)
    }
}
