//! Database URLs and the stores they open.
//!
//! One URL names one deployment:
//!
//! | URL | checkpoints | everything else |
//! |---|---|---|
//! | `memory://` | in-memory | in-memory |
//! | `sqlite://PATH` | Waymark's native SQLite tables | the same SQLite file |
//! | `postgres://…` | Waymark's native PostgreSQL tables | the same database |
//! | `langgraph+sqlite://PATH` | LangGraph's own `checkpoints`/`writes` tables | Waymark's native tables in the same file |
//! | `langgraph+postgres://…` | LangGraph's own `checkpoints`/`checkpoint_blobs`/`checkpoint_writes` | Waymark's native tables in the same database |
//!
//! The LangGraph layouts keep every non-checkpoint record (sessions, threads, events, …) in
//! Waymark's native tables **in the same database**, so a LangGraph file stays one file and a
//! Python `SqliteSaver`/`PostgresSaver` pointed at it sees exactly the checkpoints Waymark
//! wrote. Waymark's native table names never collide with LangGraph's.

use std::fmt;
use std::sync::Arc;

use waymark_domain::Stores;
use waymark_domain::checkpoint::{CheckpointQuery, CheckpointRepository};
use waymark_domain::clock::{Clock, SystemClock};
use waymark_domain::paging::Page;
use waymark_domain::thread::{NewThread, Thread, ThreadQuery, ThreadRepository, ThreadUpdate};
use waymark_domain::{DomainError, DomainResult, ThreadId, UserScope};

/// Which engine holds the data; reported by the checkpointer's `GET /capabilities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Process memory (lost on exit).
    Memory,
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

impl Engine {
    /// The protocol's name for it (`"memory"`, `"sqlite"`, `"postgres"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// Whose table layout the checkpoints use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Waymark's own tables.
    Native,
    /// LangGraph's `SqliteSaver` / `PostgresSaver` tables.
    LangGraph,
}

/// A parsed database URL.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    /// The engine.
    pub engine: Engine,
    /// The checkpoint layout.
    pub layout: Layout,
    /// The URL as the store factory wants it (`sqlite://…`, `postgres://…`, `memory://`):
    /// the `langgraph+` prefix removed.
    pub inner: String,
}

impl DatabaseUrl {
    /// The default: `./waymark.db`, created and migrated on start.
    pub const DEFAULT: &'static str = "sqlite://./waymark.db";

    /// Parses a URL, refusing schemes Waymark does not know.
    pub fn parse(url: &str) -> Result<Self, BackendError> {
        let url = url.trim();
        let (layout, rest) = match url.strip_prefix("langgraph+") {
            Some(rest) => (Layout::LangGraph, rest),
            None => (Layout::Native, url),
        };
        let engine = if rest == "memory://" || rest == "memory:" || rest.starts_with("memory://") {
            Engine::Memory
        } else if rest.starts_with("sqlite://") || rest.starts_with("sqlite:") {
            Engine::Sqlite
        } else if rest.starts_with("postgres://") || rest.starts_with("postgresql://") {
            Engine::Postgres
        } else {
            return Err(BackendError::UnknownScheme(redact(url)));
        };
        if engine == Engine::Memory && layout == Layout::LangGraph {
            return Err(BackendError::UnknownScheme(
                "langgraph+memory:// (LangGraph layouts exist for sqlite and postgres only)".into(),
            ));
        }
        if engine == Engine::Sqlite {
            let path = rest
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            if path.is_empty() {
                return Err(BackendError::Invalid(
                    "a sqlite URL needs a file path, e.g. sqlite://./waymark.db".into(),
                ));
            }
        }
        Ok(Self {
            engine,
            layout,
            inner: rest.to_owned(),
        })
    }

    /// The SQLite file path, for SQLite URLs (query string removed).
    pub fn sqlite_path(&self) -> Option<&str> {
        if self.engine != Engine::Sqlite {
            return None;
        }
        let p = self
            .inner
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        Some(p.split('?').next().unwrap_or(p))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.layout {
            Layout::LangGraph => "langgraph+",
            Layout::Native => "",
        };
        write!(f, "{prefix}{}", redact(&self.inner))
    }
}

/// The URL with any password replaced by `***`, for logs and messages.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{}://{masked}{}", &url[..scheme_end], &rest[at..])
        }
        None => url.to_owned(),
    }
}

/// Why a backend could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Not a URL scheme Waymark knows.
    #[error(
        "unknown database URL {0}; use sqlite://PATH, postgres://…, memory://, langgraph+sqlite://PATH or langgraph+postgres://…"
    )]
    UnknownScheme(String),
    /// A malformed URL.
    #[error("invalid database URL: {0}")]
    Invalid(String),
    /// The build or the tree does not provide this backend yet.
    #[error("{0}")]
    Unavailable(String),
    /// Connecting or migrating failed.
    #[error("cannot open {url}: {message}")]
    Open {
        /// The redacted URL.
        url: String,
        /// What failed.
        message: String,
    },
}

/// An opened backend: every port, plus what the protocol reports about it.
#[derive(Clone)]
pub struct Backend {
    /// Every port.
    pub stores: Stores,
    /// The parsed URL.
    pub url: DatabaseUrl,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Backend({})", self.url)
    }
}

impl Backend {
    /// The engine.
    pub fn engine(&self) -> Engine {
        self.url.engine
    }

    /// In-memory stores on the given clock (tests pass a manual clock).
    pub fn memory_with_clock(clock: Arc<dyn Clock>) -> Self {
        let stores = waymark_infrastructure::memory::MemoryBackend::with_clock(clock).stores();
        Self {
            stores,
            url: DatabaseUrl::parse("memory://").expect("memory:// parses"),
        }
    }
}

/// Opens (and migrates) the backend a URL names: what `serve` and the commands that write
/// use. A SQLite file is created when missing.
pub async fn open(url: &str) -> Result<Backend, BackendError> {
    let parsed = DatabaseUrl::parse(url)?;
    match parsed.engine {
        Engine::Memory => Ok(Backend::memory_with_clock(Arc::new(SystemClock))),
        // Both layouts keep the non-checkpoint records in Waymark's native tables.
        Engine::Sqlite | Engine::Postgres => open_sql(parsed, Access::ReadWrite).await,
    }
}

/// Opens the backend a URL names for reading only, changing nothing in the database (the
/// CLI's read commands): no file is created, no migration or LangGraph setup runs, SQLite is
/// opened read-only and PostgreSQL sessions are read-only.
///
/// Waymark's native tables must be at this build's schema, or absent: a LangGraph database
/// Waymark never wrote to is read with empty native stores (its threads are the ones its
/// checkpoints name); a native URL without Waymark tables, or a schema that is behind (or
/// from a newer Waymark), is an error that says to run `waymark migrate`, rather than
/// queries failing on missing columns.
pub async fn open_read_only(url: &str) -> Result<Backend, BackendError> {
    let parsed = DatabaseUrl::parse(url)?;
    match parsed.engine {
        Engine::Memory => Ok(Backend::memory_with_clock(Arc::new(SystemClock))),
        Engine::Sqlite | Engine::Postgres => open_sql(parsed, Access::ReadOnly).await,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

async fn open_sql(url: DatabaseUrl, access: Access) -> Result<Backend, BackendError> {
    use waymark_infrastructure::connect::{ConnectOptions, connect};
    use waymark_infrastructure::sql::SchemaState;
    let fail = |message: String| BackendError::Open {
        url: url.to_string(),
        message,
    };
    let read_only = access == Access::ReadOnly;
    if read_only
        && let Some(path) = url.sqlite_path()
        && !path.starts_with(':')
        && !std::path::Path::new(path).exists()
    {
        return Err(fail(
            "no such database file (read commands never create one; `waymark migrate` does)".into(),
        ));
    }
    let options = ConnectOptions {
        migrate: !read_only,
        read_only,
        ..ConnectOptions::default()
    };
    let connected = connect(&url.inner, options)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut stores = connected.stores.clone();
    if let (true, waymark_infrastructure::connect::Backend::Sql(sql)) =
        (read_only, &connected.backend)
    {
        let migrate_hint = format!("run `waymark migrate --database-url {url}` first");
        match sql.schema_state().await.map_err(|e| fail(e.to_string()))? {
            SchemaState::Current => {}
            // A LangGraph database Waymark never wrote to: nothing native to read.
            SchemaState::Missing if url.layout == Layout::LangGraph => {
                stores = waymark_infrastructure::memory::MemoryBackend::with_clock(Arc::new(
                    SystemClock,
                ))
                .stores();
                let _ = connected.close().await;
            }
            SchemaState::Missing => {
                return Err(fail(format!(
                    "the database holds no Waymark tables; {migrate_hint}"
                )));
            }
            SchemaState::Behind { applied, known } => {
                return Err(fail(format!(
                    "the Waymark schema is behind this waymark ({applied} of {known} \
                     migrations applied; read commands never migrate); {migrate_hint}"
                )));
            }
            SchemaState::Newer { unknown } => {
                return Err(fail(format!(
                    "the database was migrated by a newer Waymark (unknown migrations: {}); \
                     upgrade waymark",
                    unknown.join(", ")
                )));
            }
        }
    }
    if url.layout == Layout::LangGraph {
        let checkpoints: Arc<dyn waymark_domain::checkpoint::CheckpointRepository> =
            match url.engine {
                Engine::Sqlite => {
                    use waymark_adapters::sqlite_layout::LangGraphSqliteStore;
                    let path = url.sqlite_path().unwrap_or_default();
                    Arc::new(
                        if read_only {
                            LangGraphSqliteStore::open_read_only(path).await
                        } else {
                            LangGraphSqliteStore::open(path).await
                        }
                        .map_err(|e| fail(e.to_string()))?,
                    )
                }
                Engine::Postgres => {
                    use waymark_adapters::postgres_layout::LangGraphPostgresStore;
                    Arc::new(
                        if read_only {
                            LangGraphPostgresStore::connect_read_only(&url.inner).await
                        } else {
                            LangGraphPostgresStore::connect(&url.inner).await
                        }
                        .map_err(|e| fail(e.to_string()))?,
                    )
                }
                Engine::Memory => unreachable!("langgraph+memory is refused by parse"),
            };
        stores.threads = Arc::new(RowlessGuard {
            threads: stores.threads.clone(),
            checkpoints: checkpoints.clone(),
        });
        stores.checkpoints = checkpoints;
    }
    if read_only {
        tracing::info!(url = %url, "database open read-only");
    } else {
        tracing::info!(url = %url, "database open and migrated");
    }
    Ok(Backend { stores, url })
}

/// The thread port of a LangGraph layout. The native thread store's `claim` only sees
/// Waymark's own checkpoint tables; here checkpoints live in LangGraph's, where a Python
/// process may write without creating a thread row. A user's claim of an id that has no row
/// but holds LangGraph checkpoints is refused (`None`), so such row-less threads stay
/// visible only to the unscoped admin. (A Python writer racing a user's first claim of the
/// very same id between the probe and the insert is the one window this cannot close.)
struct RowlessGuard {
    threads: Arc<dyn ThreadRepository>,
    checkpoints: Arc<dyn CheckpointRepository>,
}

#[async_trait::async_trait]
impl ThreadRepository for RowlessGuard {
    async fn create(&self, scope: &UserScope, thread: NewThread) -> DomainResult<Thread> {
        if scope.owner().is_some() && self.rowless_data(&thread.id).await? {
            return Err(DomainError::conflict(
                "thread",
                format!("thread id {} is not available", thread.id),
            ));
        }
        self.threads.create(scope, thread).await
    }

    async fn get(&self, scope: &UserScope, id: &ThreadId) -> DomainResult<Option<Thread>> {
        self.threads.get(scope, id).await
    }

    async fn search(&self, scope: &UserScope, query: &ThreadQuery) -> DomainResult<Page<Thread>> {
        self.threads.search(scope, query).await
    }

    async fn update(
        &self,
        scope: &UserScope,
        id: &ThreadId,
        update: ThreadUpdate,
    ) -> DomainResult<Thread> {
        self.threads.update(scope, id, update).await
    }

    async fn claim(&self, scope: &UserScope, id: &ThreadId) -> DomainResult<Option<Thread>> {
        if scope.owner().is_some() && self.rowless_data(id).await? {
            return Ok(None);
        }
        self.threads.claim(scope, id).await
    }

    async fn check_access(
        &self,
        scope: &UserScope,
        id: &ThreadId,
        require_existing: bool,
    ) -> DomainResult<bool> {
        self.threads.check_access(scope, id, require_existing).await
    }

    async fn delete(&self, scope: &UserScope, id: &ThreadId) -> DomainResult<bool> {
        self.threads.delete(scope, id).await
    }
}

impl RowlessGuard {
    /// True when the id has no thread row but holds checkpoints.
    ///
    /// The row is read again after checkpoints were found: every Waymark writer claims the row
    /// before it writes, so checkpoints that appeared between the first read and the probe
    /// (a concurrent first write of the same thread, e.g. a subgraph's put racing its
    /// parent's) come with a row by then and are not mistaken for a Python process's data.
    async fn rowless_data(&self, id: &ThreadId) -> DomainResult<bool> {
        if self.threads.get(&UserScope::Unscoped, id).await?.is_some() {
            return Ok(false);
        }
        let mut probe = CheckpointQuery::thread(id.clone());
        probe.limit = Some(1);
        if self.checkpoints.list(&probe).await?.is_empty() {
            return Ok(false);
        }
        Ok(self.threads.get(&UserScope::Unscoped, id).await?.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_parse_into_engine_and_layout() {
        let u = DatabaseUrl::parse("sqlite://./w.db").unwrap();
        assert_eq!((u.engine, u.layout), (Engine::Sqlite, Layout::Native));
        assert_eq!(u.sqlite_path(), Some("./w.db"));
        let u = DatabaseUrl::parse("langgraph+sqlite:///tmp/x.db?mode=rwc").unwrap();
        assert_eq!((u.engine, u.layout), (Engine::Sqlite, Layout::LangGraph));
        assert_eq!(u.inner, "sqlite:///tmp/x.db?mode=rwc");
        assert_eq!(u.sqlite_path(), Some("/tmp/x.db"));
        let u = DatabaseUrl::parse("langgraph+postgres://u:pw@h/db").unwrap();
        assert_eq!((u.engine, u.layout), (Engine::Postgres, Layout::LangGraph));
        assert_eq!(
            DatabaseUrl::parse("memory://").unwrap().engine,
            Engine::Memory
        );
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert!(DatabaseUrl::parse("langgraph+memory://").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://user:secret@host:5432/db"),
            "postgres://user:***@host:5432/db"
        );
        assert_eq!(redact("postgres://host/db"), "postgres://host/db");
        let u = DatabaseUrl::parse("langgraph+postgres://a:b@h/d").unwrap();
        assert_eq!(u.to_string(), "langgraph+postgres://a:***@h/d");
        let e = DatabaseUrl::parse("mysql://a:b@h/d").unwrap_err();
        assert!(!e.to_string().contains(":b@"), "{e}");
    }
}
