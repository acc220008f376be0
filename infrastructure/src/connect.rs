//! Connecting to a store by URL.
//!
//! | URL | backend |
//! |---|---|
//! | `memory://` | the in-memory stores (feature `memory`) |
//! | `sqlite::memory:` | a private in-memory SQLite database (feature `sqlite`) |
//! | `sqlite://path/to/file.db`, `sqlite:path` | a SQLite file, created if missing (feature `sqlite`) |
//! | `postgres://...`, `postgresql://...` | PostgreSQL (feature `postgres`) |
//!
//! SQLite connections run in WAL mode with a 30 s busy timeout, `synchronous = NORMAL` (safe
//! in WAL mode; a power cut may lose the last commits, never corrupt) and foreign keys on. An
//! in-memory SQLite database lives as long as its single pooled connection, which is never
//! recycled. PostgreSQL connections can disable the prepared-statement cache (PgBouncer in
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
    /// Apply pending migrations after connecting.
    pub migrate: bool,
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
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("migrate", &self.migrate)
            .field("pool_size", &self.pool_size)
            .field("statement_cache", &self.statement_cache)
            .field("max_trace_content", &self.max_trace_content)
            .field("postgres_schema", &self.postgres_schema)
            .finish_non_exhaustive()
    }
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            migrate: true,
            clock: Arc::new(SystemClock),
            pool_size: 8,
            statement_cache: true,
            max_trace_content: DEFAULT_MAX_TRACE_CONTENT,
            postgres_schema: None,
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
        if options.migrate {
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
    use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
    let in_memory =
        url == "sqlite::memory:" || url.contains(":memory:") || url.contains("mode=memory");
    let mut opts = sea_orm::ConnectOptions::new(url.to_owned());
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
    opts.map_sqlx_sqlite_opts(move |o| {
        let o = o
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            .create_if_missing(true);
        if in_memory {
            o
        } else {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
        }
    });
    let conn = sea_orm::Database::connect(opts)
        .await
        .map_err(|e| SqlError::db("connect", e))?;
    Ok(SqlBackend::new(
        conn,
        Kind::Sqlite,
        options.clock.clone(),
        sql_options,
    ))
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
    opts.map_sqlx_postgres_opts(move |o| {
        // The schema goes in the startup packet, so every pooled connection starts in it.
        let o = match &schema {
            Some(s) => o.options([("search_path", format!("\"{s}\""))]),
            None => o,
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
    if let Some(schema) = &options.postgres_schema {
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
