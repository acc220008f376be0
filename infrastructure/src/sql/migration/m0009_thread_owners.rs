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

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use sea_orm::{ConnectionTrait, Database, Statement};
    use sea_orm_migration::MigratorTrait;

    use super::super::Migrator;

    async fn rows(db: &sea_orm::DatabaseConnection, sql: &str) -> Vec<(String, Option<String>)> {
        db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.try_get("", "id").unwrap(),
                    r.try_get("", "owner").unwrap(),
                )
            })
            .collect()
    }

    /// Data of thread ids without a row gets an owner-less row; rows that existed keep their
    /// owner; nothing stored is removed.
    #[tokio::test]
    async fn rowless_data_gets_an_ownerless_row_and_nothing_is_lost() {
        let path = std::env::temp_dir().join(format!(
            "waymark-m0009-{}.db",
            uuid::Uuid::new_v4().simple()
        ));
        let db = Database::connect(format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .unwrap();
        Migrator::up(&db, Some(8)).await.unwrap();
        let ts = "'2026-01-01T00:00:00.000000+00:00'";
        for sql in [
            format!(
                "INSERT INTO waymark_threads (id, owner, status, metadata, created_at, updated_at) \
                 VALUES ('owned', 'alice', 'idle', '{{\"k\":1}}', {ts}, {ts})"
            ),
            "INSERT INTO waymark_checkpoints (thread_id, ns, checkpoint_id, v, metadata, body) \
             VALUES ('cp-only', '', 'c1', 4, '{}', x'00')"
                .to_owned(),
            "INSERT INTO waymark_checkpoints (thread_id, ns, checkpoint_id, v, metadata, body) \
             VALUES ('owned', '', 'c1', 4, '{}', x'00')"
                .to_owned(),
            format!(
                "INSERT INTO waymark_run_events (thread_id, seq, run_id, event_type, category, \
                 content, metadata, created_at) VALUES ('events-only', 1, 'r', 'x', 'message', \
                 '{{}}', '{{}}', {ts})"
            ),
            format!(
                "INSERT INTO waymark_token_usage (id, thread_id, model, prompt_tokens, \
                 completion_tokens, total_tokens, recorded_at) VALUES ('u1', 'usage-only', 'm', \
                 1, 1, 2, {ts})"
            ),
            format!(
                "INSERT INTO waymark_token_usage (id, thread_id, model, prompt_tokens, \
                 completion_tokens, total_tokens, recorded_at) VALUES ('u2', NULL, 'm', 1, 1, 2, {ts})"
            ),
        ] {
            db.execute_unprepared(&sql).await.unwrap();
        }
        Migrator::up(&db, None).await.unwrap();
        let threads = rows(&db, "SELECT id, owner FROM waymark_threads ORDER BY id").await;
        assert_eq!(
            threads,
            vec![
                ("cp-only".to_owned(), None),
                ("events-only".to_owned(), None),
                ("owned".to_owned(), Some("alice".to_owned())),
                ("usage-only".to_owned(), None),
            ]
        );
        let kept = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT (SELECT COUNT(*) FROM waymark_checkpoints) + \
                 (SELECT COUNT(*) FROM waymark_run_events) + \
                 (SELECT COUNT(*) FROM waymark_token_usage) AS n, \
                 (SELECT metadata FROM waymark_threads WHERE id = 'owned') AS m",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.try_get::<i64>("", "n").unwrap(), 5);
        assert_eq!(kept.try_get::<String>("", "m").unwrap(), "{\"k\":1}");
        db.close().await.unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
