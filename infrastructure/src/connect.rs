//! Connecting to a store by URL.
//!
//! | URL | backend |
//! |---|---|
//! | `memory://` | the in-memory stores (feature `memory`) |
//! | `sqlite::memory:` | a private in-memory SQLite database (feature `sqlite`) |
//! | `sqlite://path/to/file.db`, `sqlite:path` | a SQLite file, created if missing (feature `sqlite`) |
//! | `postgres://...`, `postgresql://...` | PostgreSQL (feature `postgres`) |
//!
//! SQLite connections run in WAL mode with a 30 s busy timeout and foreign keys on. Durability
//! is `synchronous = NORMAL` by default (safe in WAL mode: a power cut may lose the last
//! commits, never corrupt the file); `synchronous = FULL` (every commit reaches the disk before
//! it returns, what LangGraph's `SqliteSaver` runs with) is chosen by
//! [`ConnectOptions::sqlite_synchronous`] or the URL query parameter `synchronous`
//! (`sqlite://path.db?synchronous=full`; `off`, `normal`, `full`, `extra`), the URL winning.
//! `PRAGMA optimize` runs when a connection closes, so the query planner has statistics; the
//! checkpoint queries fix their join order in SQL and do not depend on them. An in-memory SQLite database lives as long as its
//! single pooled connection, which is never recycled. PostgreSQL connections can disable the prepared-statement cache (PgBouncer in
//! transaction mode) and pin a `search_path` (tests give each case its own schema).

use std::sync::Arc;
#[cfg(feature = "sql")]
use std::time::Duration;

use waymark_domain::clock::{Clock, SystemClock};
use waymark_domain::run_event::DEFAULT_MAX_TRACE_CONTENT;
use waymark_domain::{DomainError, Stores};

#[cfg(feature = "sql")]
use crate::sql::{Kind, SqlBackend, SqlError, SqlOptions};

/// How to connect.
#[derive(Clone)]
pub struct ConnectOptions {
    /// Apply pending migrations after connecting (never with `read_only`).
    pub migrate: bool,
    /// Open the database for reading only, changing nothing in it: no migrations; a SQLite
    /// file is opened with `SQLITE_OPEN_READONLY` (it must exist; its journal mode and
    /// `synchronous` are left as they are, no `PRAGMA optimize`); PostgreSQL sessions start
    /// with `default_transaction_read_only = on`, so any write fails. Check
    /// [`SqlBackend::schema_state`] before using the stores.
    pub read_only: bool,
    /// Where the stores read "now".
    pub clock: Arc<dyn Clock>,
    /// Most pooled connections (ignored for in-memory SQLite, which uses one).
    pub pool_size: u32,
    /// Keep prepared statements cached per connection (PostgreSQL). Turn off behind PgBouncer
    /// in transaction mode.
    pub statement_cache: bool,
    /// The trace-content limit in bytes.
    pub max_trace_content: usize,
    /// PostgreSQL: the schema to work in (`search_path`), created if missing.
    pub postgres_schema: Option<String>,
    /// SQLite files: the `synchronous` setting (default [`SqliteSynchronous::Normal`]). A
    /// `synchronous=` query parameter in the URL overrides it.
    pub sqlite_synchronous: SqliteSynchronous,
    /// SQLite files: run checkpoint reads and writes and thread claims as one closure each on
    /// dedicated connections (default on; see `sql::direct`). Off, every statement goes
    /// through the sqlx pool, which the benchmark uses to compare the two.
    pub sqlite_direct: bool,
}

/// SQLite's `synchronous` setting for database files (in WAL mode), see
/// <https://www.sqlite.org/pragma.html#pragma_synchronous>.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SqliteSynchronous {
    /// No syncs at all: an OS crash or power cut may corrupt the database.
    Off,
    /// The default: the WAL is synced at checkpoints only; a power cut may roll back the last
    /// commits, never corrupt the file.
    #[default]
    Normal,
    /// Every commit is synced before it returns (LangGraph's `SqliteSaver` runs with this).
    Full,
    /// `Full`, plus the directory is synced after the WAL is reset.
    Extra,
}

impl SqliteSynchronous {
    /// The value as the URL parameter and `PRAGMA synchronous` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Normal => "normal",
            Self::Full => "full",
            Self::Extra => "extra",
        }
    }
}

impl std::str::FromStr for SqliteSynchronous {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, DomainError> {
        match s.to_ascii_lowercase().as_str() {
            "off" | "0" => Ok(Self::Off),
            "normal" | "1" => Ok(Self::Normal),
            "full" | "2" => Ok(Self::Full),
            "extra" | "3" => Ok(Self::Extra),
            _ => Err(DomainError::invalid(
                "synchronous",
                format!("{s:?} is not one of off, normal, full, extra"),
            )),
        }
    }
}

/// Takes Waymark's own query parameters (`synchronous`) out of a SQLite URL, leaving the rest
/// for the driver.
#[cfg(feature = "sqlite")]
fn split_sqlite_url(url: &str) -> Result<(String, Option<SqliteSynchronous>), DomainError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None));
    };
    let mut sync = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("synchronous", v)) => sync = Some(v.parse()?),
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, sync))
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("migrate", &self.migrate)
            .field("read_only", &self.read_only)
            .field("pool_size", &self.pool_size)
            .field("statement_cache", &self.statement_cache)
            .field("max_trace_content", &self.max_trace_content)
            .field("postgres_schema", &self.postgres_schema)
            .field("sqlite_synchronous", &self.sqlite_synchronous)
            .field("sqlite_direct", &self.sqlite_direct)
            .finish_non_exhaustive()
    }
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            migrate: true,
            read_only: false,
            clock: Arc::new(SystemClock),
            pool_size: 8,
            statement_cache: true,
            max_trace_content: DEFAULT_MAX_TRACE_CONTENT,
            postgres_schema: None,
            sqlite_synchronous: SqliteSynchronous::Normal,
            sqlite_direct: true,
        }
    }
}

impl ConnectOptions {
    /// Defaults with another clock.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            ..Self::default()
        }
    }
}

/// What a connected backend is.
#[derive(Clone, Debug)]
pub enum Backend {
    /// The in-memory stores.
    #[cfg(feature = "memory")]
    Memory(crate::memory::MemoryBackend),
    /// A SQL database.
    #[cfg(feature = "sql")]
    Sql(SqlBackend),
}

/// A connection: every port wired, plus the backend for administration.
#[derive(Clone, Debug)]
pub struct Connected {
    /// Every port.
    pub stores: Stores,
    /// The backend behind them.
    pub backend: Backend,
}

impl Connected {
    /// Applies pending migrations (a no-op for memory).
    pub async fn migrate(&self) -> Result<(), DomainError> {
        match &self.backend {
            #[cfg(feature = "memory")]
            Backend::Memory(_) => Ok(()),
            #[cfg(feature = "sql")]
            Backend::Sql(b) => Ok(b.migrate().await?),
        }
    }

    /// Closes the pool (a no-op for memory).
    pub async fn close(self) -> Result<(), DomainError> {
        match self.backend {
            #[cfg(feature = "memory")]
            Backend::Memory(_) => Ok(()),
            #[cfg(feature = "sql")]
            Backend::Sql(b) => Ok(b.close().await?),
        }
    }
}

fn unsupported(url: &str) -> DomainError {
    DomainError::invalid(
        "url",
        format!(
            "unsupported or disabled store URL {url:?}; use memory://, sqlite://<path>, \
             sqlite::memory: or postgres://..."
        ),
    )
}

/// Connects to `url` and wires every port (see the module documentation for URLs).
pub async fn connect(url: &str, options: ConnectOptions) -> Result<Connected, DomainError> {
    if url == "memory://" || url == "memory:" {
        #[cfg(feature = "memory")]
        {
            let backend = crate::memory::MemoryBackend::with_options(
                options.clock.clone(),
                crate::memory::MemoryOptions {
                    max_trace_content: options.max_trace_content,
                },
            );
            return Ok(Connected {
                stores: backend.stores(),
                backend: Backend::Memory(backend),
            });
        }
        #[cfg(not(feature = "memory"))]
        return Err(unsupported(url));
    }
    #[cfg(feature = "sql")]
    {
        let backend = connect_sql(url, &options).await?;
        if options.migrate && !options.read_only {
            backend.migrate().await?;
        }
        Ok(Connected {
            stores: backend.stores(),
            backend: Backend::Sql(backend),
        })
    }
    #[cfg(not(feature = "sql"))]
    Err(unsupported(url))
}

/// Connects to `url` and applies pending migrations (the `waymark migrate` command).
pub async fn migrate(url: &str) -> Result<(), DomainError> {
    connect(
        url,
        ConnectOptions {
            migrate: true,
            pool_size: 1,
            sqlite_direct: false,
            ..ConnectOptions::default()
        },
    )
    .await?
    .close()
    .await
}

/// Opens a SQL backend without migrating.
#[cfg(feature = "sql")]
pub async fn connect_sql(url: &str, options: &ConnectOptions) -> Result<SqlBackend, SqlError> {
    let sql_options = SqlOptions {
        max_trace_content: options.max_trace_content,
    };
    if url.starts_with("sqlite:") {
        #[cfg(feature = "sqlite")]
        return connect_sqlite(url, options, sql_options).await;
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return connect_postgres(url, options, sql_options).await;
    }
    Err(SqlError::Domain(unsupported(url)))
}

#[cfg(feature = "sqlite")]
async fn connect_sqlite(
    url: &str,
    options: &ConnectOptions,
    sql_options: SqlOptions,
) -> Result<SqlBackend, SqlError> {
    use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous as Sync};
    let (url, from_url) = split_sqlite_url(url).map_err(SqlError::Domain)?;
    let synchronous = match from_url.unwrap_or(options.sqlite_synchronous) {
        SqliteSynchronous::Off => Sync::Off,
        SqliteSynchronous::Normal => Sync::Normal,
        SqliteSynchronous::Full => Sync::Full,
        SqliteSynchronous::Extra => Sync::Extra,
    };
    let in_memory =
        url == "sqlite::memory:" || url.contains(":memory:") || url.contains("mode=memory");
    let mut opts = sea_orm::ConnectOptions::new(url.clone());
    opts.sqlx_logging(false)
        .max_lifetime(None::<Duration>)
        .idle_timeout(None::<Duration>)
        .acquire_timeout(Duration::from_secs(60));
    if in_memory {
        // One connection holds the database for the pool's whole life.
        opts.max_connections(1).min_connections(1);
    } else {
        opts.max_connections(options.pool_size.max(1));
    }
    let read_only = options.read_only;
    opts.map_sqlx_sqlite_opts(move |o| {
        let o = o.busy_timeout(SQLITE_BUSY_TIMEOUT).foreign_keys(true);
        if read_only {
            // Nothing that writes: no file creation, no journal-mode switch, no statistics.
            return o.read_only(true).create_if_missing(false);
        }
        let o = o
            .create_if_missing(true)
            // Statistics for the planner, gathered when a connection closes (bounded work).
            // Not on open: a pool connection opening while a new database is still nearly
            // empty would record "tiny table" statistics that outlive the data they describe.
            .optimize_on_close(true, 400);
        if in_memory {
            o
        } else {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(synchronous)
        }
    });
    let conn = sea_orm::Database::connect(opts)
        .await
        .map_err(|e| SqlError::db("connect", e))?;
    // A file (not opened read-only) also gets the dedicated connections of the checkpoint
    // store, opened after the pool so the file exists and is in WAL mode. A
    // read-only open (`ConnectOptions::read_only`) never gets them: they open the file
    // read-write.
    match crate::sql::direct::file_of(&url).filter(|_| options.sqlite_direct && !read_only) {
        Some(path) => {
            let direct =
                crate::sql::direct::DirectSqlite::open(&crate::sql::direct::DirectSettings {
                    path,
                    synchronous: synchronous_pragma(synchronous),
                    busy_timeout: SQLITE_BUSY_TIMEOUT,
                })?;
            Ok(SqlBackend::with_direct(
                conn,
                options.clock.clone(),
                sql_options,
                direct,
            ))
        }
        None => Ok(SqlBackend::new(
            conn,
            Kind::Sqlite,
            options.clock.clone(),
            sql_options,
        )),
    }
}

/// How long a SQLite statement waits for another connection's lock before failing.
#[cfg(feature = "sqlite")]
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(feature = "sqlite")]
fn synchronous_pragma(s: sea_orm::sqlx::sqlite::SqliteSynchronous) -> &'static str {
    use sea_orm::sqlx::sqlite::SqliteSynchronous as Sync;
    match s {
        Sync::Off => "OFF",
        Sync::Normal => "NORMAL",
        Sync::Full => "FULL",
        Sync::Extra => "EXTRA",
    }
}

#[cfg(feature = "postgres")]
async fn connect_postgres(
    url: &str,
    options: &ConnectOptions,
    sql_options: SqlOptions,
) -> Result<SqlBackend, SqlError> {
    if let Some(schema) = &options.postgres_schema
        && (schema.is_empty()
            || !schema
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(SqlError::Config(format!(
            "postgres schema {schema:?} must be [A-Za-z0-9_]+"
        )));
    }
    let mut opts = sea_orm::ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .max_connections(options.pool_size.max(1))
        .acquire_timeout(Duration::from_secs(60));
    let cache = options.statement_cache;
    let schema = options.postgres_schema.clone();
    let read_only = options.read_only;
    opts.map_sqlx_postgres_opts(move |o| {
        // The schema goes in the startup packet, so every pooled connection starts in it.
        let o = match &schema {
            Some(s) => o.options([("search_path", format!("\"{s}\""))]),
            None => o,
        };
        let o = if read_only {
            o.options([("default_transaction_read_only", "on")])
        } else {
            o
        };
        if cache {
            o
        } else {
            o.statement_cache_capacity(0)
        }
    });
    let port = url
        .parse::<sea_orm::sqlx::postgres::PgConnectOptions>()
        .map(|o| o.get_port())
        .unwrap_or(5432);
    opts.map_sqlx_postgres_pool_opts(move |o| {
        o.after_connect(move |_conn, _meta| {
            Box::pin(async move {
                nagle::disable_on_connections_to(port);
                Ok(())
            })
        })
    });
    let conn = sea_orm::Database::connect(opts)
        .await
        .map_err(|e| SqlError::db("connect", e))?;
    if let Some(schema) = options.postgres_schema.as_ref().filter(|_| !read_only) {
        // A `search_path` naming a missing schema is accepted; create it now.
        use sea_orm::ConnectionTrait;
        conn.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .await
            .map_err(|e| SqlError::db("connect.create_schema", e))?;
    }
    Ok(SqlBackend::new(
        conn,
        Kind::Postgres,
        options.clock.clone(),
        sql_options,
    ))
}

/// Works around sqlx 0.9.0 leaving Nagle's algorithm on for its TCP connections (upstream
/// issue 4335, fixed after 0.9.0): a statement whose message spans several TCP segments (a
/// checkpoint snapshot, a large event batch) otherwise waits ~40 ms for the server's delayed
/// ACK before its last segment leaves. After each new connection, `TCP_NODELAY` is set on
/// this process's TCP sockets whose peer port is the database's. Linux only (it reads
/// `/proc/self/fd`); elsewhere a no-op. Remove once sqlx sets it again.
#[cfg(feature = "postgres")]
mod nagle {
    #[cfg(target_os = "linux")]
    pub(super) fn disable_on_connections_to(port: u16) {
        use std::os::fd::BorrowedFd;
        let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
            return;
        };
        for entry in dir.flatten() {
            let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            // SAFETY: `fd` is a descriptor of this process. If another thread closes it
            // meanwhile, the calls below fail with EBADF; if it is reused, they only read a
            // socket's type and peer and set TCP_NODELAY on a TCP stream to the database's
            // port, which is harmless.
            let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
            let sock = socket2::SockRef::from(&borrowed);
            if sock.r#type().ok() != Some(socket2::Type::STREAM) {
                continue;
            }
            let to_db = sock
                .peer_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .is_some_and(|a| a.port() == port);
            if to_db {
                let _ = sock.set_tcp_nodelay(true);
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn disable_on_connections_to(_port: u16) {}
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    #[test]
    fn synchronous_is_taken_out_of_sqlite_urls() {
        assert_eq!(
            split_sqlite_url("sqlite://a.db?mode=rwc&synchronous=FULL").unwrap(),
            (
                "sqlite://a.db?mode=rwc".to_owned(),
                Some(SqliteSynchronous::Full)
            )
        );
        assert_eq!(
            split_sqlite_url("sqlite://a.db?synchronous=normal").unwrap(),
            ("sqlite://a.db".to_owned(), Some(SqliteSynchronous::Normal))
        );
        assert_eq!(
            split_sqlite_url("sqlite::memory:").unwrap(),
            ("sqlite::memory:".to_owned(), None)
        );
        assert!(
            split_sqlite_url("sqlite://a.db?synchronous=sometimes")
                .unwrap_err()
                .is_invalid_input()
        );
    }

    #[tokio::test]
    async fn the_synchronous_setting_reaches_the_connection() {
        let dir = std::env::temp_dir().join(format!("waymark-sync-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.db");
        for (url_param, option, expected) in [
            ("", SqliteSynchronous::Normal, 1_i64),
            ("", SqliteSynchronous::Full, 2),
            ("&synchronous=full", SqliteSynchronous::Normal, 2),
            ("&synchronous=normal", SqliteSynchronous::Full, 1),
        ] {
            let url = format!("sqlite://{}?mode=rwc{url_param}", path.display());
            let options = ConnectOptions {
                sqlite_synchronous: option,
                pool_size: 1,
                migrate: false,
                ..ConnectOptions::default()
            };
            let b = connect_sql(&url, &options).await.unwrap();
            assert_eq!(
                b.pragma_i64("synchronous").await.unwrap(),
                expected,
                "{url}"
            );
            b.close().await.unwrap();
        }
        let bad = format!("sqlite://{}?synchronous=maybe", path.display());
        assert!(connect_sql(&bad, &ConnectOptions::default()).await.is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
