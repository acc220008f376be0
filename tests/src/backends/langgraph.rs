//! LangGraph's own table layouts as checkpoint backends (`waymark_adapters`).
//!
//! Only the checkpoint port comes from the layout store; the other ports are in-memory stores
//! (LangGraph's tables hold checkpoints only). The SQLite layout lives in a temporary file; the
//! PostgreSQL layout gets its own schema `lg_test_<uuid>` (LangGraph's table names are
//! unqualified, so the store's connections set `search_path` to it), dropped when the test
//! ends. PostgreSQL availability follows [`super::sql`]: `None` when no server answers unless
//! `WAYMARK_REQUIRE_POSTGRES=1`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use waymark_adapters::postgres_layout::{LangGraphPostgresStore, PostgresLayoutOptions};
use waymark_adapters::sqlite_layout::LangGraphSqliteStore;
use waymark_infrastructure::memory::MemoryBackend;

use super::sql::{postgres_required, postgres_url, remove_sqlite_files, temp_sqlite_path};
use crate::harness::{TestBackend, test_clock};

/// A fresh LangGraph-layout SQLite file (`json_extract` filter semantics).
pub async fn sqlite_backend() -> Option<TestBackend> {
    let clock = test_clock();
    let path = temp_sqlite_path();
    let store = LangGraphSqliteStore::open(&path)
        .await
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let pool = store.pool().clone();
    let mut stores = MemoryBackend::with_clock(clock.clone()).stores();
    stores.checkpoints = Arc::new(store);
    Some(
        TestBackend::new("langgraph-sqlite", stores, clock)
            .multi_process()
            .with_cleanup(async move {
                pool.close().await;
                remove_sqlite_files(&path);
            }),
    )
}

/// A fresh schema holding LangGraph's PostgreSQL tables (containment filter semantics).
pub async fn postgres_backend() -> Option<TestBackend> {
    let (store, schema) = fresh_postgres_store().await?;
    let clock = test_clock();
    let pool = store.pool().clone();
    let mut stores = MemoryBackend::with_clock(clock.clone()).stores();
    stores.checkpoints = Arc::new(store);
    Some(
        TestBackend::new("langgraph-postgres", stores, clock)
            .multi_process()
            .with_cleanup(async move {
                pool.close().await;
                drop_schema(&schema).await;
            }),
    )
}

/// A LangGraph-layout store in a new schema, and the schema's name; `None` when no server
/// answers (and one is not required).
pub async fn fresh_postgres_store() -> Option<(LangGraphPostgresStore, String)> {
    let schema = format!("lg_test_{}", uuid::Uuid::new_v4().simple());
    create_schema(&schema).await?;
    let opened = LangGraphPostgresStore::connect_with(
        schema_options(&schema),
        PostgresLayoutOptions::default(),
    )
    .await;
    match opened {
        Ok(store) => Some((store, schema)),
        Err(e) => {
            // No cleanup hook exists yet at this point: drop the schema before failing.
            drop_schema(&schema).await;
            panic!("opening the LangGraph layout in schema {schema}: {e}")
        }
    }
}

/// Connection options for the test server with `search_path` set to `schema`.
pub fn schema_options(schema: &str) -> PgConnectOptions {
    let url = postgres_url();
    PgConnectOptions::from_str(&url)
        .unwrap_or_else(|e| panic!("WAYMARK_TEST_POSTGRES_URL {url:?}: {e}"))
        .options([("search_path", schema)])
}

/// Creates `schema`; `None` when the server does not answer and is not required.
pub async fn create_schema(schema: &str) -> Option<()> {
    let url = postgres_url();
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url)
        .await;
    let admin = match admin {
        Ok(pool) => pool,
        Err(e) if postgres_required() => {
            panic!("WAYMARK_REQUIRE_POSTGRES=1 but PostgreSQL at {url} does not answer: {e}")
        }
        Err(_) => return None,
    };
    sea_orm::sqlx::raw_sql(sea_orm::sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA \"{schema}\""
    )))
    .execute(&admin)
    .await
    .unwrap_or_else(|e| panic!("creating schema {schema}: {e}"));
    admin.close().await;
    Some(())
}

/// Drops `schema` and everything in it (best effort: cleanup must not mask a test failure).
pub async fn drop_schema(schema: &str) {
    let Ok(admin) = PgPoolOptions::new()
        .max_connections(1)
        .connect(&postgres_url())
        .await
    else {
        return;
    };
    let _ = sea_orm::sqlx::raw_sql(sea_orm::sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&admin)
    .await;
    admin.close().await;
}
