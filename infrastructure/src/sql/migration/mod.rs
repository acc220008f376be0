//! The schema, as sea-orm-migration migrations: one migration per file, one set for both
//! databases. Each migration is written once in a neutral DDL dialect whose type tokens
//! ([`render`]) become each database's native types, plus a few statements only one database
//! has (PostgreSQL's GIN index).
//!
//! Every Waymark table is prefixed `waymark_`, so Waymark's native tables live beside
//! LangGraph's own (`checkpoints`, `checkpoint_writes`, `checkpoint_blobs`, `writes`, ...) in
//! one database without clashing. Applied migrations are recorded in `waymark_migrations`.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

mod m0001_sessions_threads;
mod m0002_checkpoints;
mod m0003_run_events;
mod m0004_branches_snapshots;
mod m0005_feedback;
mod m0006_token_usage;
mod m0007_chat_streams;
mod m0008_items;
mod m0009_thread_owners;
mod m0010_runs;
mod m0011_payload_nonce;

/// Waymark's migrations, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_sessions_threads::Migration),
            Box::new(m0002_checkpoints::Migration),
            Box::new(m0003_run_events::Migration),
            Box::new(m0004_branches_snapshots::Migration),
            Box::new(m0005_feedback::Migration),
            Box::new(m0006_token_usage::Migration),
            Box::new(m0007_chat_streams::Migration),
            Box::new(m0008_items::Migration),
            Box::new(m0009_thread_owners::Migration),
            Box::new(m0010_runs::Migration),
            Box::new(m0011_payload_nonce::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "waymark_migrations".into_iden()
    }
}

/// Replaces the neutral type tokens with the database's types:
///
/// | token | PostgreSQL | SQLite | used for |
/// |---|---|---|---|
/// | `{key}` | `TEXT COLLATE "C"` | `TEXT` | ids and names compared and ordered by code point |
/// | `{ts}` | `TIMESTAMPTZ` | `TEXT` (fixed-width RFC 3339 UTC) | instants |
/// | `{json}` | `JSONB` | `TEXT` | JSON whose key order does not matter |
/// | `{jsonx}` | `JSON` | `TEXT` | JSON kept verbatim (checkpoint metadata) |
/// | `{bytes}` | `BYTEA` | `BLOB` | payloads |
/// | `{bool}` | `BOOLEAN` | `INTEGER` | flags |
pub(crate) fn render(backend: DbBackend, ddl: &str) -> String {
    let pg = backend == DbBackend::Postgres;
    ddl.replace("{key}", if pg { "TEXT COLLATE \"C\"" } else { "TEXT" })
        .replace("{ts}", if pg { "TIMESTAMPTZ" } else { "TEXT" })
        .replace("{jsonx}", if pg { "JSON" } else { "TEXT" })
        .replace("{json}", if pg { "JSONB" } else { "TEXT" })
        .replace("{bytes}", if pg { "BYTEA" } else { "BLOB" })
        .replace("{bool}", if pg { "BOOLEAN" } else { "INTEGER" })
}

/// Runs neutral DDL (`;`-separated statements), then the statements only this database needs.
pub(crate) async fn run(
    manager: &SchemaManager<'_>,
    ddl: &str,
    postgres_only: &[&str],
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let backend = manager.get_database_backend();
    // One round trip: both drivers run a parameterless multi-statement string as a script.
    let mut script = render(backend, ddl);
    if backend == DbBackend::Postgres {
        for stmt in postgres_only {
            script.push_str(";\n");
            script.push_str(stmt);
        }
    }
    db.execute_unprepared(&script).await?;
    Ok(())
}

/// Drops tables (for `down`).
pub(crate) async fn drop_tables(manager: &SchemaManager<'_>, tables: &[&str]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for t in tables {
        db.execute_unprepared(&format!("DROP TABLE IF EXISTS {t}"))
            .await?;
    }
    Ok(())
}

/// Declares a migration struct whose `up` runs `$ddl` (+ PostgreSQL-only statements) and whose
/// `down` drops `$tables`.
macro_rules! migration {
    ($name:literal, $ddl:expr, $pg_only:expr, $tables:expr) => {
        /// See the module documentation.
        pub struct Migration;

        impl sea_orm_migration::MigrationName for Migration {
            fn name(&self) -> &str {
                $name
            }
        }

        #[async_trait::async_trait]
        impl sea_orm_migration::MigrationTrait for Migration {
            async fn up(
                &self,
                manager: &sea_orm_migration::SchemaManager,
            ) -> Result<(), sea_orm::DbErr> {
                super::run(manager, $ddl, $pg_only).await
            }

            async fn down(
                &self,
                manager: &sea_orm_migration::SchemaManager,
            ) -> Result<(), sea_orm::DbErr> {
                super::drop_tables(manager, $tables).await
            }
        }
    };
}
pub(crate) use migration;

/// Applies pending migrations in one transaction. Concurrent callers (several processes
/// connecting at once) are serialized: PostgreSQL by a transaction-scoped advisory lock,
/// SQLite by the immediate transaction's write lock.
pub(crate) async fn apply(db: &super::db::Db) -> super::error::SqlResult<()> {
    use super::error::DbResultExt;
    let txn = db.begin_write("migrate").await?;
    if db.kind == super::db::Kind::Postgres {
        // Any fixed key works; this one spells "waymark" in ASCII.
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(34179537286709611)")
            .await
            .op("migrate")?;
    }
    Migrator::up(&txn, None).await.op("migrate")?;
    txn.commit().await.op("migrate")
}

/// Where a database's Waymark schema stands against this build's migrations, read without
/// changing anything (read-only commands decide with it whether they can use the tables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    /// No `waymark_migrations` table: Waymark never migrated this database (a LangGraph
    /// database only browsed so far, or an empty file).
    Missing,
    /// Some of this build's migrations are not applied yet (`waymark migrate` applies them).
    Behind {
        /// Migrations recorded.
        applied: usize,
        /// Migrations this build has.
        known: usize,
    },
    /// Every migration of this build is applied, and nothing else.
    Current,
    /// Migrations this build does not know are recorded: a newer Waymark migrated it.
    Newer {
        /// Their names.
        unknown: Vec<String>,
    },
}

/// Reads the applied migrations (a plain `SELECT`; the table is never created here).
pub(crate) async fn state(db: &super::db::Db) -> super::error::SqlResult<SchemaState> {
    const OP: &str = "schema_state";
    let probe = match db.kind {
        super::db::Kind::Sqlite => {
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' \
             AND name = 'waymark_migrations'"
        }
        super::db::Kind::Postgres => {
            "SELECT CAST(COUNT(*) AS BIGINT) AS n \
             WHERE to_regclass('waymark_migrations') IS NOT NULL"
        }
    };
    let present = match super::db::one(&db.conn, db.kind.stmt(probe, vec![]), OP).await? {
        Some(row) => super::db::Row::new(&row, db.kind, OP).i64("n")? > 0,
        None => false,
    };
    if !present {
        return Ok(SchemaState::Missing);
    }
    let rows = super::db::all(
        &db.conn,
        db.kind
            .stmt("SELECT version FROM waymark_migrations", vec![]),
        OP,
    )
    .await?;
    let mut applied = Vec::with_capacity(rows.len());
    for row in &rows {
        applied.push(super::db::Row::new(row, db.kind, OP).text("version")?);
    }
    let known: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let unknown: Vec<String> = applied
        .iter()
        .filter(|a| !known.contains(a))
        .cloned()
        .collect();
    Ok(if !unknown.is_empty() {
        SchemaState::Newer { unknown }
    } else if applied.len() < known.len() {
        SchemaState::Behind {
            applied: applied.len(),
            known: known.len(),
        }
    } else {
        SchemaState::Current
    })
}
