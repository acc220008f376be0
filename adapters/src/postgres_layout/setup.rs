//! `PostgresSaver.setup()`: LangGraph's ten migrations, run exactly as Python runs them
//! (spec §4.1-§4.3).
//!
//! Each statement runs on its own in autocommit mode (`CREATE INDEX CONCURRENTLY` cannot run
//! in a transaction block) and its index is recorded in `checkpoint_migrations`, so Python's
//! own setup finds nothing left to do. Concurrent setups (several Waymark processes, test
//! runs) are serialized by a session-level advisory lock of Waymark's own. Waymark never
//! records a version of its own, and refuses a schema from a newer LangGraph (a version above
//! 9) or from the incompatible `ShallowPostgresSaver`.

use std::time::Duration;

use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::postgres::{PgPool, Postgres};
use sea_orm::sqlx::{self, Row};
use waymark_domain::error::{DomainError, DomainResult};

/// LangGraph's migrations; the index is the version number.
pub const MIGRATIONS: [&str; 10] = [
    "CREATE TABLE IF NOT EXISTS checkpoint_migrations (
    v INTEGER PRIMARY KEY
);",
    "CREATE TABLE IF NOT EXISTS checkpoints (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT NOT NULL,
    parent_checkpoint_id TEXT,
    type TEXT,
    checkpoint JSONB NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}',
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
);",
    "CREATE TABLE IF NOT EXISTS checkpoint_blobs (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    channel TEXT NOT NULL,
    version TEXT NOT NULL,
    type TEXT NOT NULL,
    blob BYTEA,
    PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
);",
    "CREATE TABLE IF NOT EXISTS checkpoint_writes (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    channel TEXT NOT NULL,
    type TEXT,
    blob BYTEA NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);",
    "ALTER TABLE checkpoint_blobs ALTER COLUMN blob DROP not null;",
    "SELECT 1;",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS checkpoints_thread_id_idx ON checkpoints(thread_id);",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS checkpoint_blobs_thread_id_idx ON checkpoint_blobs(thread_id);",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS checkpoint_writes_thread_id_idx ON checkpoint_writes(thread_id);",
    "ALTER TABLE checkpoint_writes ADD COLUMN IF NOT EXISTS task_path TEXT NOT NULL DEFAULT '';",
];

/// The highest migration version this code knows.
pub const LATEST_VERSION: i32 = MIGRATIONS.len() as i32 - 1;

/// Key of the advisory lock serializing setups ("WaymarkL" in ASCII).
const SETUP_LOCK: i64 = 0x5761_796d_6172_6b4c;

fn db_err(e: sqlx::Error) -> DomainError {
    DomainError::storage("langgraph_postgres.setup", e)
}

/// Runs the missing migrations under the setup lock.
pub(crate) async fn run(pool: &PgPool, allow_newer_schema: bool) -> DomainResult<()> {
    let mut conn = pool.acquire().await.map_err(db_err)?;
    // Poll instead of blocking in `pg_advisory_lock`: a session blocked inside a statement
    // is a running transaction, and `CREATE INDEX CONCURRENTLY` in the session holding the
    // lock would wait for it to finish: a deadlock. Between polls this session is idle.
    let mut delay = Duration::from_millis(5);
    loop {
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(SETUP_LOCK)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
        if locked {
            break;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(200));
    }
    let result = migrate(&mut conn, allow_newer_schema).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(SETUP_LOCK)
        .execute(&mut *conn)
        .await;
    if unlocked.is_err() {
        // Never hand a connection that may still hold the lock back to the pool.
        conn.close_on_drop();
    }
    result
}

async fn migrate(
    conn: &mut PoolConnection<Postgres>,
    allow_newer_schema: bool,
) -> DomainResult<()> {
    refuse_foreign_schema(conn).await?;
    sqlx::raw_sql(MIGRATIONS[0])
        .execute(&mut **conn)
        .await
        .map_err(db_err)?;
    let current: Option<i32> =
        sqlx::query_scalar("SELECT v FROM checkpoint_migrations ORDER BY v DESC LIMIT 1")
            .fetch_optional(&mut **conn)
            .await
            .map_err(db_err)?;
    let current = current.unwrap_or(-1);
    if current > LATEST_VERSION && !allow_newer_schema {
        return Err(DomainError::conflict(
            "langgraph_schema",
            format!(
                "checkpoint_migrations records version {current}, but this Waymark knows \
                 LangGraph's migrations only up to {LATEST_VERSION}: a newer LangGraph changed \
                 the schema; upgrade Waymark or open the store with allow_newer_schema"
            ),
        ));
    }
    for version in (current + 1)..=LATEST_VERSION {
        sqlx::raw_sql(MIGRATIONS[version as usize])
            .execute(&mut **conn)
            .await
            .map_err(db_err)?;
        sqlx::query("INSERT INTO checkpoint_migrations (v) VALUES ($1)")
            .bind(version)
            .execute(&mut **conn)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

/// Checks, without changing anything, that LangGraph's tables are there at the version this
/// code knows (what a read-only open needs).
pub(crate) async fn check(pool: &PgPool) -> DomainResult<()> {
    let mut conn = pool.acquire().await.map_err(db_err)?;
    refuse_foreign_schema(&mut conn).await?;
    let present: bool =
        sqlx::query_scalar("SELECT to_regclass('checkpoint_migrations') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
    let current: Option<i32> = if present {
        sqlx::query_scalar("SELECT MAX(v) FROM checkpoint_migrations")
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?
    } else {
        None
    };
    match current {
        Some(v) if v == LATEST_VERSION => Ok(()),
        Some(v) if v > LATEST_VERSION => Err(DomainError::conflict(
            "langgraph_schema",
            format!(
                "checkpoint_migrations records version {v}, but this Waymark knows LangGraph's \
                 migrations only up to {LATEST_VERSION}: upgrade Waymark"
            ),
        )),
        found => Err(DomainError::invalid(
            "database",
            format!(
                "LangGraph's checkpoint tables are {}; `waymark migrate` or LangGraph's \
                 setup() brings them to version {LATEST_VERSION}",
                match found {
                    Some(v) => format!("at migration version {v}"),
                    None => "missing".to_owned(),
                }
            ),
        )),
    }
}

/// Refuses tables of the same names but another shape (`ShallowPostgresSaver` keys
/// checkpoints by thread and namespace only and keeps unversioned blobs).
async fn refuse_foreign_schema(conn: &mut PoolConnection<Postgres>) -> DomainResult<()> {
    let required = [
        ("checkpoints", "checkpoint_id"),
        ("checkpoint_blobs", "version"),
        ("checkpoint_writes", "checkpoint_id"),
    ];
    for (table, column) in required {
        let row = sqlx::query(
            "SELECT to_regclass($1) IS NOT NULL AS present, EXISTS (SELECT 1 FROM pg_attribute \
             WHERE attrelid = to_regclass($1) AND attname = $2 AND attnum > 0 \
             AND NOT attisdropped) AS has_column",
        )
        .bind(table)
        .bind(column)
        .fetch_one(&mut **conn)
        .await
        .map_err(db_err)?;
        let present: bool = row.try_get("present").map_err(db_err)?;
        let has_column: bool = row.try_get("has_column").map_err(db_err)?;
        if present && !has_column {
            return Err(DomainError::conflict(
                "langgraph_schema",
                format!(
                    "table {table} has no {column} column: this looks like ShallowPostgresSaver's \
                     schema, which cannot share a database with PostgresSaver or Waymark"
                ),
            ));
        }
    }
    Ok(())
}
