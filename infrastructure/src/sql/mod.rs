//! # SQL stores (SeaORM over SQLite and PostgreSQL)
//!
//! One implementation of every domain port over a SeaORM connection pool, for SQLite (a file
//! or an in-memory database) and PostgreSQL. The in-memory stores define the semantics; these
//! stores reproduce them (same errors, orderings, scoping and copy semantics), pushing filters,
//! ordering, paging and aggregation into SQL so that limits are exact and work stays in the
//! database.
//!
//! ## Layout
//!
//! * `migration`: the schema, one migration per file, applied on connect when asked.
//! * `db`: how values are bound and read on each database (the only place that knows that
//!   SQLite keeps timestamps as fixed-width RFC 3339 text and PostgreSQL as `TIMESTAMPTZ`).
//! * `convert`: row to entity conversions.
//! * `direct` (SQLite): dedicated connections (one writer, two readers) that run an
//!   operation's statements in one go.
//! * One module per port. SeaORM types never leave this module tree.
//!
//! ## Concurrency
//!
//! * Write transactions on SQLite start with `BEGIN IMMEDIATE` (the write lock is taken before
//!   anything is read) with a 30 s busy timeout, so concurrent writers queue instead of failing.
//! * Run-event seqs come from `waymark_run_event_counters`, incremented inside the insert
//!   transaction; writers of one process additionally queue on an in-process per-thread mutex.
//! * Read-modify-write updates (thread and session metadata merges) lock the row
//!   (`FOR UPDATE` on PostgreSQL, the immediate transaction on SQLite).
//!
//! ## Speed
//!
//! * Checkpoint payloads are content-addressed and growing lists are stored as append deltas
//!   (`checkpoints::payload`), so a long thread costs space linear in its messages, not
//!   quadratic; reads rebuild a delta chain in one pass.
//! * A checkpoint put is two statements in one transaction and a read two statements without
//!   one; the payload chain is read by primary-key probes whose order the SQL fixes
//!   (`CROSS JOIN` on SQLite, `LATERAL .. LIMIT 1` on PostgreSQL), so read latency does not
//!   grow with the thread's length (see `checkpoints`). SQLite runs `PRAGMA optimize` when a
//!   connection closes.
//! * On a SQLite file, a checkpoint read, put or pending-write batch, and a thread claim or
//!   access check, runs as one closure on a dedicated `rusqlite` connection (`direct`): one
//!   thread hand-off per operation instead of one per statement. Payloads of 1 MiB or more are
//!   written into their row in place (`zeroblob` + incremental blob I/O), so a large value is
//!   not copied into the statement, SQLite's binding and its record.
//! * A run-event batch is one `INSERT`: `UNNEST` over one array per column on PostgreSQL,
//!   `json_each` over one JSON array on SQLite, whatever the batch size.
//! * Every list is one indexed query with its limit in SQL; message pages cost the same at
//!   1,000 and 100,000 events.
//! * PostgreSQL connections get `TCP_NODELAY` (sqlx 0.9.0 dropped it; see `connect`), which
//!   removes 40 ms delayed-ACK stalls from every statement larger than one TCP segment.

pub(crate) mod db;
pub mod error;
pub(crate) mod migration;

mod branches;
mod chat_streams;
mod checkpoints;
mod convert;
#[cfg(feature = "sqlite")]
pub(crate) mod direct;
mod feedback;
mod fence;
mod items;
mod run_events;
mod runs;
mod scalar_filter;
mod sessions;
mod threads;
mod token_usage;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::DatabaseConnection;
use waymark_domain::Stores;
use waymark_domain::clock::Clock;
use waymark_domain::run_event::DEFAULT_MAX_TRACE_CONTENT;

pub use db::Kind;
pub use error::{DbFailure, SqlError, SqlResult};
pub use migration::SchemaState;

/// Tunables of the SQL stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlOptions {
    /// The trace-content limit in bytes (spec `history-and-streams.md` §1.6).
    pub max_trace_content: usize,
}

impl Default for SqlOptions {
    fn default() -> Self {
        Self {
            max_trace_content: DEFAULT_MAX_TRACE_CONTENT,
        }
    }
}

/// What every SQL store of one backend shares.
pub(crate) struct Shared {
    pub(crate) db: db::Db,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) options: SqlOptions,
    /// Per-thread fences of run-event writers and deletes.
    pub(crate) fences: fence::Fences,
    /// Recently written channel payloads, the bases of append deltas.
    pub(crate) payload_cache: checkpoints::PayloadCache,
    /// A SQLite file's dedicated connections for the checkpoint hot path (`None` on
    /// PostgreSQL and for in-memory SQLite, which only the pool's one connection can see).
    #[cfg(feature = "sqlite")]
    pub(crate) direct: Option<direct::DirectSqlite>,
}

impl Shared {
    /// The clock's "now", at the microsecond precision both databases keep.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(6)
    }

    pub(crate) fn kind(&self) -> Kind {
        self.db.kind
    }
}

/// A connected SQL backend: one pool shared by every port. Cloning is cheap.
#[derive(Clone)]
pub struct SqlBackend {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SqlBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlBackend")
            .field("kind", &self.shared.db.kind)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl SqlBackend {
    /// Wraps an open SeaORM connection of `kind`.
    pub(crate) fn new(
        conn: DatabaseConnection,
        kind: Kind,
        clock: Arc<dyn Clock>,
        options: SqlOptions,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                db: db::Db { conn, kind },
                clock,
                options,
                fences: fence::Fences::default(),
                payload_cache: checkpoints::PayloadCache::default(),
                #[cfg(feature = "sqlite")]
                direct: None,
            }),
        }
    }

    /// Wraps an open SQLite pool whose file also gets dedicated connections (`direct`).
    #[cfg(feature = "sqlite")]
    pub(crate) fn with_direct(
        conn: DatabaseConnection,
        clock: Arc<dyn Clock>,
        options: SqlOptions,
        direct: direct::DirectSqlite,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                db: db::Db {
                    conn,
                    kind: Kind::Sqlite,
                },
                clock,
                options,
                fences: fence::Fences::default(),
                payload_cache: checkpoints::PayloadCache::default(),
                direct: Some(direct),
            }),
        }
    }

    /// Which database this is.
    pub fn kind(&self) -> Kind {
        self.shared.db.kind
    }

    /// Every port, all sharing this backend's pool.
    pub fn stores(&self) -> Stores {
        let s = &self.shared;
        Stores {
            sessions: Arc::new(sessions::SqlSessionRepository::new(s.clone())),
            threads: Arc::new(threads::SqlThreadRepository::new(s.clone())),
            branches: Arc::new(branches::SqlBranchRepository::new(s.clone())),
            snapshots: Arc::new(branches::SqlSnapshotRepository::new(s.clone())),
            checkpoints: Arc::new(checkpoints::SqlCheckpointRepository::new(s.clone())),
            run_events: Arc::new(run_events::SqlRunEventRepository::new(s.clone())),
            token_usage: Arc::new(token_usage::SqlTokenUsageRepository::new(s.clone())),
            feedback: Arc::new(feedback::SqlFeedbackRepository::new(s.clone())),
            chat_streams: Arc::new(chat_streams::SqlChatStreamRepository::new(s.clone())),
            items: Arc::new(items::SqlKeyValueRepository::new(s.clone())),
            runs: Arc::new(runs::SqlRunRepository::new(s.clone())),
        }
    }

    /// Applies pending migrations (one transaction; concurrent callers are serialized).
    pub async fn migrate(&self) -> SqlResult<()> {
        migration::apply(&self.shared.db).await
    }

    /// How the database's Waymark schema compares with this build's migrations, read
    /// without writing (works on a read-only connection).
    pub async fn schema_state(&self) -> SqlResult<SchemaState> {
        migration::state(&self.shared.db).await
    }

    /// Runs a statement with no parameters (administrative; tests drop schemas with it).
    pub async fn execute_unprepared(&self, sql: &str) -> SqlResult<()> {
        use sea_orm::ConnectionTrait;
        self.shared
            .db
            .conn
            .execute_unprepared(sql)
            .await
            .map(|_| ())
            .map_err(|e| SqlError::db("admin.execute", e))
    }

    /// The value of an integer SQLite `PRAGMA` (`synchronous`, `page_size`, ...) as one pooled
    /// connection sees it. Administrative: tests and the benchmark check settings with it.
    pub async fn pragma_i64(&self, name: &str) -> SqlResult<i64> {
        const OP: &str = "admin.pragma";
        let db = &self.shared.db;
        if db.kind != Kind::Sqlite {
            return Err(SqlError::Config("PRAGMA is SQLite only".into()));
        }
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(SqlError::Config(format!("bad pragma name {name:?}")));
        }
        let row = db::one(
            &db.conn,
            db.kind.stmt(
                format!("SELECT CAST({name} AS BIGINT) AS n FROM pragma_{name}()"),
                vec![],
            ),
            OP,
        )
        .await?
        .ok_or_else(|| SqlError::corrupt(OP, "no row"))?;
        db::Row::new(&row, db.kind, OP).i64("n")
    }

    /// Bytes the database holds for Waymark's tables (SQLite: the database's pages;
    /// PostgreSQL: `pg_total_relation_size` of every `waymark_` table in the search path).
    pub async fn stored_bytes(&self) -> SqlResult<u64> {
        let db = &self.shared.db;
        let sql = match db.kind {
            Kind::Sqlite => {
                "SELECT CAST((SELECT page_count FROM pragma_page_count()) * \
                 (SELECT page_size FROM pragma_page_size()) AS BIGINT) AS n"
            }
            Kind::Postgres => {
                "SELECT CAST(COALESCE(SUM(pg_total_relation_size(c.oid)), 0) AS BIGINT) AS n \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'r' AND c.relname LIKE 'waymark\\_%' \
                 AND n.nspname = ANY (current_schemas(false))"
            }
        };
        let row = db::one(&db.conn, db.kind.stmt(sql, vec![]), "admin.stored_bytes")
            .await?
            .ok_or_else(|| SqlError::corrupt("admin.stored_bytes", "no row"))?;
        db::Row::new(&row, db.kind, "admin.stored_bytes").u64("n")
    }

    /// Closes the pool.
    pub async fn close(self) -> SqlResult<()> {
        self.shared
            .db
            .conn
            .clone()
            .close()
            .await
            .map_err(|e| SqlError::db("admin.close", e))
    }
}
