//! The SQL backends: SQLite in memory, SQLite in a temporary file, and PostgreSQL in a
//! throwaway schema.
//!
//! PostgreSQL is found at `WAYMARK_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). Each test gets its own schema
//! `wm_test_<uuid>`, dropped with `CASCADE` when the test ends. When no server answers the
//! factory returns `None` (the test prints `SKIPPED`), unless `WAYMARK_REQUIRE_POSTGRES=1`, in
//! which case it panics so CI cannot silently skip.

use std::path::PathBuf;
use std::time::Duration;

use waymark_infrastructure::connect::{ConnectOptions, connect_sql};
use waymark_infrastructure::sql::SqlBackend;

use crate::harness::{TestBackend, test_clock};

/// The default test server.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The PostgreSQL URL tests use. On a loopback host without an explicit `sslmode`,
/// `sslmode=disable` is added: a TLS handshake per connection would otherwise dominate the
/// setup of every test (each opens its own pool).
pub fn postgres_url() -> String {
    let url = std::env::var("WAYMARK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    let loopback = ["@127.0.0.1", "@localhost", "@[::1]"]
        .iter()
        .any(|h| url.contains(h));
    if loopback && !url.contains("sslmode=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}sslmode=disable")
    } else {
        url
    }
}

/// True when `WAYMARK_REQUIRE_POSTGRES=1`.
pub fn postgres_required() -> bool {
    std::env::var("WAYMARK_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

fn options(clock: std::sync::Arc<waymark_domain::clock::ManualClock>) -> ConnectOptions {
    ConnectOptions {
        migrate: true,
        pool_size: 4,
        ..ConnectOptions::with_clock(clock)
    }
}

async fn migrated(url: &str, options: &ConnectOptions) -> SqlBackend {
    let backend = connect_sql(url, options)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    backend
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("migrating {url}: {e}"));
    backend
}

/// A fresh in-memory SQLite database.
pub async fn sqlite_memory() -> Option<TestBackend> {
    let clock = test_clock();
    let backend = migrated("sqlite::memory:", &options(clock.clone())).await;
    let stores = backend.stores();
    Some(
        TestBackend::new("sqlite-memory", stores, clock).with_cleanup(async move {
            let _ = backend.close().await;
        }),
    )
}

/// A fresh path for a SQLite file under the system temp directory.
pub fn temp_sqlite_path() -> PathBuf {
    std::env::temp_dir().join(format!("waymark-test-{}.db", uuid::Uuid::new_v4().simple()))
}

/// Removes a SQLite database file and its WAL companions.
pub fn remove_sqlite_files(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// The `sqlite://` URL of a file path (created if missing).
pub fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// A fresh SQLite file, deleted after the test.
pub async fn sqlite_file() -> Option<TestBackend> {
    let clock = test_clock();
    let path = temp_sqlite_path();
    let backend = migrated(&sqlite_url(&path), &options(clock.clone())).await;
    let stores = backend.stores();
    Some(
        TestBackend::new("sqlite-file", stores, clock)
            .multi_process()
            .with_cleanup(async move {
                let _ = backend.close().await;
                remove_sqlite_files(&path);
            }),
    )
}

/// The probe's answer, once per process (each test would otherwise pay a connection).
static AVAILABLE: std::sync::Mutex<Option<bool>> = std::sync::Mutex::new(None);

/// Whether the PostgreSQL server answers; panics when it does not and it is required.
pub async fn postgres_available() -> bool {
    let url = postgres_url();
    let cached = *AVAILABLE.lock().unwrap_or_else(|p| p.into_inner());
    let ok = match cached {
        Some(ok) => ok,
        None => {
            let ok = probe_postgres(&url).await;
            *AVAILABLE.lock().unwrap_or_else(|p| p.into_inner()) = Some(ok);
            ok
        }
    };
    if !ok && postgres_required() {
        panic!(
            "WAYMARK_REQUIRE_POSTGRES=1 but no PostgreSQL server answers at {url}; \
             run scripts/ensure-postgres and export WAYMARK_TEST_POSTGRES_URL"
        );
    }
    ok
}

async fn probe_postgres(url: &str) -> bool {
    let probe = async {
        let o = ConnectOptions {
            migrate: false,
            pool_size: 1,
            ..ConnectOptions::default()
        };
        let b = connect_sql(url, &o).await.ok()?;
        let ok = b.execute_unprepared("SELECT 1").await.is_ok();
        let _ = b.close().await;
        Some(ok)
    };
    tokio::time::timeout(Duration::from_secs(5), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// A fresh schema on the test server; `None` when no server answers (and none is required).
pub async fn postgres() -> Option<TestBackend> {
    let (backend, clock, schema) = postgres_schema_backend().await?;
    let stores = backend.stores();
    Some(
        TestBackend::new("postgres", stores, clock)
            .multi_process()
            .with_cleanup(async move {
                let _ = backend
                    .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                    .await;
                let _ = backend.close().await;
            }),
    )
}

/// A migrated backend in a new schema, with its clock and schema name (the caller drops the
/// schema). `None` when no server answers and none is required.
pub async fn postgres_schema_backend() -> Option<(
    SqlBackend,
    std::sync::Arc<waymark_domain::clock::ManualClock>,
    String,
)> {
    if !postgres_available().await {
        return None;
    }
    let clock = test_clock();
    let schema = format!("wm_test_{}", uuid::Uuid::new_v4().simple());
    let o = ConnectOptions {
        postgres_schema: Some(schema.clone()),
        ..options(clock.clone())
    };
    let backend = migrated(&postgres_url(), &o).await;
    Some((backend, clock, schema))
}

/// A SQL backend outside the contract harness (concurrency and multi-process tests), with
/// its cleanup.
pub struct Fixture {
    /// `"sqlite-memory"`, `"sqlite-file"` or `"postgres"`.
    pub name: &'static str,
    /// The backend.
    pub backend: SqlBackend,
    /// Its clock.
    pub clock: std::sync::Arc<waymark_domain::clock::ManualClock>,
    /// The URL another process would connect with.
    pub url: String,
    /// The PostgreSQL schema, if any.
    pub schema: Option<String>,
    file: Option<PathBuf>,
}

impl Fixture {
    /// A fresh backend of the named kind; `None` for PostgreSQL when no server answers.
    pub async fn new(name: &'static str) -> Option<Self> {
        let clock = test_clock();
        match name {
            "sqlite-memory" => Some(Self {
                name,
                backend: migrated("sqlite::memory:", &options(clock.clone())).await,
                clock,
                url: "sqlite::memory:".into(),
                schema: None,
                file: None,
            }),
            "sqlite-file" => {
                let path = temp_sqlite_path();
                let url = sqlite_url(&path);
                Some(Self {
                    name,
                    backend: migrated(&url, &options(clock.clone())).await,
                    clock,
                    url,
                    schema: None,
                    file: Some(path),
                })
            }
            "postgres" => {
                let (backend, clock, schema) = postgres_schema_backend().await?;
                Some(Self {
                    name,
                    backend,
                    clock,
                    url: postgres_url(),
                    schema: Some(schema),
                    file: None,
                })
            }
            other => panic!("unknown SQL fixture {other}"),
        }
    }

    /// Drops the schema or deletes the file, then closes the pool.
    pub async fn finish(self) {
        if let Some(schema) = &self.schema {
            let _ = self
                .backend
                .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .await;
        }
        let _ = self.backend.close().await;
        if let Some(path) = &self.file {
            remove_sqlite_files(path);
        }
    }
}
