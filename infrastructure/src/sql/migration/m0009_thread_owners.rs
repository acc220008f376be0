//! The ownership model (one owner per thread id, the first writer claims it) needs a thread
//! row for every thread id that holds data. Data written before it may have none: checkpoints
//! put through the remote checkpointer, run events, feedback, chat streams, snapshots or token
//! usage of an id nobody created. This migration gives each such id a thread row with **no
//! owner** (status `idle`, empty metadata), so the data is kept, is visible only to the
//! unscoped administrator (spec §0.2, Waymark rule), and cannot be taken over by whichever
//! user claims the id first; an administrator assigns the owner (`waymark threads chown`).
//! Existing rows, owners included, are left exactly as they are. Nothing is deleted, so
//! `down` does nothing.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

/// See the module documentation.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0009_thread_owners"
    }
}

/// Every native table that holds data under a thread id.
const SOURCES: [&str; 8] = [
    "SELECT thread_id FROM waymark_checkpoints",
    "SELECT thread_id FROM waymark_checkpoint_writes",
    "SELECT thread_id FROM waymark_run_events",
    "SELECT thread_id FROM waymark_feedback",
    "SELECT thread_id FROM waymark_chat_streams",
    "SELECT thread_id FROM waymark_snapshots",
    "SELECT thread_id FROM waymark_branches",
    "SELECT thread_id FROM waymark_token_usage WHERE thread_id IS NOT NULL",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let (now, empty) = match manager.get_database_backend() {
            DbBackend::Postgres => ("CURRENT_TIMESTAMP".to_owned(), "'{}'::jsonb"),
            _ => (
                format!("'{}'", super::super::db::sqlite_ts_text(chrono::Utc::now())),
                "'{}'",
            ),
        };
        let sql = format!(
            "INSERT INTO waymark_threads (id, session_id, owner, assistant_id, display_name, \
             status, metadata, created_at, updated_at) \
             SELECT DISTINCT src.thread_id, NULL, NULL, NULL, NULL, 'idle', {empty}, {now}, {now} \
             FROM ({}) src \
             WHERE NOT EXISTS (SELECT 1 FROM waymark_threads t WHERE t.id = src.thread_id) \
             ON CONFLICT (id) DO NOTHING",
            SOURCES.join(" UNION ")
        );
        db.execute_unprepared(&sql).await?;
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // The rows it added are ordinary owner-less threads now; removing them could drop
        // an owner an administrator assigned since.
        Ok(())
    }
}
