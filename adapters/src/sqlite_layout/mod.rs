//! LangGraph's SQLite checkpoint layout (`langgraph-checkpoint-sqlite` 3.1.x, spec §3).
//!
//! [`LangGraphSqliteStore`] reads and writes the `checkpoints` and `writes` tables exactly as
//! `SqliteSaver` does: one msgpack blob per checkpoint with every channel value inline,
//! metadata as Python-formatted JSON bytes in a BLOB column, whole-row replacement on `put`,
//! the upsert-vs-ignore rule for writes, and `json_extract` equality for metadata filters.
//! A file written by one side is read by the other with identical results.
//!
//! Where the Python saver has nothing to copy (`copy_thread`, `delete_for_runs`, `prune`,
//! and the extra port methods), the store follows the Waymark rules of spec §6.3. Every
//! operation runs in one transaction; writes take the lock up front (`BEGIN IMMEDIATE`) and
//! wait up to 30 s for a Python process holding it.

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sqlx::sqlite::{
    LockedSqliteHandle, SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow,
};
use sea_orm::sqlx::{self, Arguments, AssertSqlSafe, Row, Sqlite, Transaction};
use waymark_domain::checkpoint::prune::{PruneRow, TASKS_CHANNEL, plan_keep_latest};
use waymark_domain::checkpoint::{
    CheckpointCapabilities, CheckpointMetadata, CheckpointPut, CheckpointQuery, CheckpointRef,
    CheckpointRepository, CheckpointSummary, CheckpointTuple, FilterSemantics, PendingWrite,
    PruneStrategy, TypedValue, WriteBatch, sort_pending_writes,
};
use waymark_domain::error::{DomainError, DomainResult};
use waymark_domain::ids::{
    ChannelName, CheckpointId, CheckpointNamespace, RunId, TaskId, ThreadId,
};
use waymark_domain::json::JsonValue;

use crate::codec::pyjson::{PyJsonStyle, to_python_json};
use crate::codec::{
    CheckpointBlobParts, checkpoint_blob_parts, decompose_checkpoint_blob, python_json_bytes,
};

/// How long a write waits for a lock held by another process (a Python saver on the same
/// file) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// `SqliteSaver`'s rules: `json_extract` filters, every channel value embedded in the
/// checkpoint blob (so only embeddable tags), and text that may hold U+0000.
const CAPABILITIES: CheckpointCapabilities = CheckpointCapabilities {
    filter_semantics: FilterSemantics::SqliteJsonExtract,
    embeds_channel_values: true,
    refuses_nul_in_filters: false,
};

/// Checkpoint blobs at least this long are written in place ([`fill_row_in_place`]) rather
/// than bound: a bound blob is copied by sqlx's binding and again into SQLite's record, so a
/// 100 MiB value would cost several times its size in memory.
const LARGE_BLOB: usize = 1 << 20;

/// Largest number of bound ids per statement (well under SQLite's variable limit).
const CHUNK: usize = 500;

/// `setup()` of `SqliteSaver`: the same tables, columns and keys, nothing else.
const SETUP: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS checkpoints (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT NOT NULL,
    parent_checkpoint_id TEXT,
    type TEXT,
    checkpoint BLOB,
    metadata BLOB,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
)",
    "CREATE TABLE IF NOT EXISTS writes (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    task_path TEXT NOT NULL DEFAULT '',
    idx INTEGER NOT NULL,
    channel TEXT NOT NULL,
    type TEXT,
    value BLOB,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
)",
    "ALTER TABLE writes ADD COLUMN task_path TEXT NOT NULL DEFAULT ''",
];

const SELECT_CHECKPOINT: &str = "SELECT thread_id, checkpoint_ns, checkpoint_id, \
     parent_checkpoint_id, type, CAST(checkpoint AS BLOB) AS checkpoint, \
     CAST(metadata AS BLOB) AS metadata FROM checkpoints";

/// A checkpoint store over LangGraph's SQLite tables.
#[derive(Debug, Clone)]
pub struct LangGraphSqliteStore {
    pool: SqlitePool,
}

fn db_err(operation: &'static str) -> impl Fn(sqlx::Error) -> DomainError {
    move |e| DomainError::storage(format!("langgraph_sqlite.{operation}"), e)
}

fn corrupt(operation: &'static str, why: impl std::fmt::Display) -> DomainError {
    DomainError::storage(format!("langgraph_sqlite.{operation}"), why)
}

impl LangGraphSqliteStore {
    /// Opens (creating when missing) the database file at `path`, in WAL mode with a 30 s
    /// busy timeout, and creates LangGraph's tables when they are missing.
    pub async fn open(path: impl AsRef<Path>) -> DomainResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(db_err("open"))?;
        Self::from_pool(pool).await
    }

    /// Opens an existing file for reading only (`SQLITE_OPEN_READONLY`): nothing is created,
    /// no setup runs, the journal mode stays as it is. The file must hold LangGraph's
    /// `checkpoints` and `writes` tables; writes through the store fail.
    pub async fn open_read_only(path: impl AsRef<Path>) -> DomainResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .read_only(true)
            .create_if_missing(false)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(db_err("open"))?;
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' \
             AND name IN ('checkpoints', 'writes')",
        )
        .fetch_one(&pool)
        .await
        .map_err(db_err("open"))?;
        if tables < 2 {
            pool.close().await;
            return Err(DomainError::invalid(
                "database",
                "the file holds no LangGraph checkpoint tables (checkpoints, writes); \
                 `waymark migrate` or LangGraph's setup() creates them",
            ));
        }
        Ok(Self { pool })
    }

    /// A private in-memory database (one connection, so every query sees the same data).
    pub async fn open_in_memory() -> DomainResult<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(db_err("open"))?
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(db_err("open"))?;
        Self::from_pool(pool).await
    }

    /// Uses an existing pool (its connections should set a busy timeout) and runs setup.
    pub async fn from_pool(pool: SqlitePool) -> DomainResult<Self> {
        let store = Self { pool };
        store.setup().await?;
        Ok(store)
    }

    /// Uses the pool behind a SeaORM SQLite connection and runs setup.
    pub async fn from_sea_orm(db: &sea_orm::DatabaseConnection) -> DomainResult<Self> {
        Self::from_pool(db.get_sqlite_connection_pool().clone()).await
    }

    /// The underlying pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Creates what `SqliteSaver.setup()` creates, when missing. Idempotent; the `ALTER TABLE`
    /// that upgrades pre-`task_path` files is attempted every time, as Python does, and its
    /// "duplicate column" error ignored.
    pub async fn setup(&self) -> DomainResult<()> {
        let mut conn = self.pool.acquire().await.map_err(db_err("setup"))?;
        // Python's setup switches the file to WAL; an in-memory database answers "memory".
        sqlx::query("PRAGMA journal_mode=WAL")
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err("setup"))?;
        for statement in &SETUP[..2] {
            sqlx::raw_sql(*statement)
                .execute(&mut *conn)
                .await
                .map_err(db_err("setup"))?;
        }
        match sqlx::raw_sql(SETUP[2]).execute(&mut *conn).await {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("duplicate column") => Ok(()),
            Err(e) => Err(db_err("setup")(e)),
        }
    }

    async fn write_tx(&self, op: &'static str) -> DomainResult<Transaction<'static, Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err(op))
    }

    async fn put_in(
        tx: &mut Transaction<'static, Sqlite>,
        put: &CheckpointPut,
    ) -> DomainResult<CheckpointRef> {
        CAPABILITIES.check_put(put)?;
        // The blob SqliteSaver writes: every value embedded, pregel's key order (spec §3.3).
        let blob = checkpoint_blob_parts(&put.checkpoint)
            .map_err(|e| DomainError::invalid("checkpoint", e.to_string()))?;
        // `json.dumps(metadata, ensure_ascii=False)` bytes, stored as a BLOB (spec §3.4).
        let metadata = python_json_bytes(&JsonValue::Object(put.metadata.0.clone()))
            .map_err(|e| DomainError::invalid("metadata", e.to_string()))?;
        let large = blob.len() >= LARGE_BLOB;
        let query = if large {
            // The row with blobs of zeros of the right lengths, filled in place below. The
            // metadata is a zeroblob too: SQLite keeps zeros unmaterialized only at the end
            // of a record, and `metadata` follows `checkpoint`.
            sqlx::query(
                "INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, \
                 parent_checkpoint_id, type, checkpoint, metadata) \
                 VALUES (?, ?, ?, ?, ?, zeroblob(?), zeroblob(?))",
            )
        } else {
            sqlx::query(
                "INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, \
                 parent_checkpoint_id, type, checkpoint, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
        };
        let query = query
            .bind(put.thread_id.as_str())
            .bind(put.namespace.as_str())
            .bind(put.checkpoint.id.as_str())
            .bind(put.parent_id.as_ref().map(CheckpointId::as_str))
            .bind(TypedValue::MSGPACK);
        let query = if large {
            let too_large = |_| DomainError::invalid("checkpoint", "the checkpoint is too large");
            query
                .bind(i64::try_from(blob.len()).map_err(too_large)?)
                .bind(i64::try_from(metadata.len()).map_err(too_large)?)
        } else {
            query.bind(blob.concat()).bind(&metadata[..])
        };
        let inserted = query.execute(&mut **tx).await.map_err(db_err("put"))?;
        if large {
            let mut handle = tx.lock_handle().await.map_err(db_err("put"))?;
            fill_row_in_place(&mut handle, inserted.last_insert_rowid(), &blob, &metadata)
                .map_err(|e| DomainError::storage("langgraph_sqlite.put", e))?;
        }
        Ok(CheckpointRef {
            thread_id: put.thread_id.clone(),
            namespace: put.namespace.clone(),
            checkpoint_id: put.checkpoint.id.clone(),
        })
    }

    async fn writes_of(
        conn: &mut sqlx::SqliteConnection,
        thread_id: &str,
        namespace: &str,
        checkpoint_id: &str,
    ) -> DomainResult<Vec<PendingWrite>> {
        let rows = sqlx::query(
            "SELECT task_id, task_path, idx, channel, type, CAST(value AS BLOB) AS value \
             FROM writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?",
        )
        .bind(thread_id)
        .bind(namespace)
        .bind(checkpoint_id)
        .fetch_all(conn)
        .await
        .map_err(db_err("read_writes"))?;
        let mut writes = rows
            .iter()
            .map(write_from_row)
            .collect::<DomainResult<Vec<_>>>()?;
        sort_pending_writes(&mut writes);
        Ok(writes)
    }

    async fn tuple_from_row(
        conn: &mut sqlx::SqliteConnection,
        row: &SqliteRow,
    ) -> DomainResult<CheckpointTuple> {
        let get = |c: &str| -> DomainResult<Option<String>> {
            row.try_get::<Option<String>, _>(c).map_err(db_err("read"))
        };
        let thread_id = get("thread_id")?.unwrap_or_default();
        let namespace = get("checkpoint_ns")?.unwrap_or_default();
        let checkpoint_id = get("checkpoint_id")?.unwrap_or_default();
        let tag = get("type")?;
        let bytes: Option<Vec<u8>> = row.try_get("checkpoint").map_err(db_err("read"))?;
        let bytes =
            bytes.ok_or_else(|| corrupt("read", "a checkpoint row has no checkpoint blob"))?;
        if tag.as_deref() != Some(TypedValue::MSGPACK) {
            return Err(corrupt(
                "read",
                format!(
                    "checkpoint {checkpoint_id} is serialized as {tag:?}; only msgpack \
                     checkpoints can be read (encrypted or pickled ones are opaque)"
                ),
            ));
        }
        let checkpoint = decompose_checkpoint_blob(&bytes)
            .map_err(|e| corrupt("read", format!("checkpoint {checkpoint_id}: {e}")))?;
        let metadata: Option<Vec<u8>> = row.try_get("metadata").map_err(db_err("read"))?;
        let metadata = match metadata {
            None => CheckpointMetadata::default(),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| corrupt("read", format!("metadata of {checkpoint_id}: {e}")))?,
        };
        let parent = get("parent_checkpoint_id")?.filter(|p| !p.is_empty());
        let pending_writes = Self::writes_of(conn, &thread_id, &namespace, &checkpoint_id).await?;
        Ok(CheckpointTuple {
            thread_id: ThreadId::parse(thread_id).map_err(|e| corrupt("read", e))?,
            namespace: CheckpointNamespace::parse(namespace).map_err(|e| corrupt("read", e))?,
            checkpoint,
            metadata,
            parent_id: parent
                .map(CheckpointId::parse)
                .transpose()
                .map_err(|e| corrupt("read", e))?,
            pending_writes,
        })
    }

    async fn delete_threads_in(
        tx: &mut Transaction<'static, Sqlite>,
        thread_id: &str,
    ) -> DomainResult<()> {
        for sql in [
            "DELETE FROM checkpoints WHERE thread_id = ?",
            "DELETE FROM writes WHERE thread_id = ?",
        ] {
            sqlx::query(sql)
                .bind(thread_id)
                .execute(&mut **tx)
                .await
                .map_err(db_err("delete_thread"))?;
        }
        Ok(())
    }

    async fn uses_delta_channel(&self, thread_id: &str) -> DomainResult<bool> {
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM checkpoints WHERE thread_id = ? AND \
             (json_extract(CAST(metadata AS TEXT), '$.counters_since_delta_snapshot') IS NOT NULL \
              OR json_extract(CAST(metadata AS TEXT), '$.delta_writes_versioned') IS NOT NULL))",
        )
        .bind(thread_id)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err("prune"))?;
        row.try_get::<bool, _>(0).map_err(db_err("prune"))
    }

    async fn prune_keep_latest(&self, thread_id: &str) -> DomainResult<()> {
        let mut tx = self.write_tx("prune").await?;
        let rows = sqlx::query(
            "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, \
             CAST(checkpoint AS BLOB) AS checkpoint, CAST(metadata AS BLOB) AS metadata \
             FROM checkpoints WHERE thread_id = ?",
        )
        .bind(thread_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err("prune"))?;
        let mut prune_rows = Vec::with_capacity(rows.len());
        for row in &rows {
            let tag: Option<String> = row.try_get("type").map_err(db_err("prune"))?;
            let bytes: Option<Vec<u8>> = row.try_get("checkpoint").map_err(db_err("prune"))?;
            let metadata: Option<Vec<u8>> = row.try_get("metadata").map_err(db_err("prune"))?;
            let root_parent = metadata
                .and_then(|m| serde_json::from_slice::<JsonValue>(&m).ok())
                .and_then(|m| m.get("parents")?.get("")?.as_str().map(str::to_owned));
            prune_rows.push(PruneRow {
                namespace: row.try_get("checkpoint_ns").map_err(db_err("prune"))?,
                id: row.try_get("checkpoint_id").map_err(db_err("prune"))?,
                parent_id: row
                    .try_get::<Option<String>, _>("parent_checkpoint_id")
                    .map_err(db_err("prune"))?
                    .filter(|p| !p.is_empty()),
                format_version: match (tag.as_deref(), bytes) {
                    (Some(TypedValue::MSGPACK), Some(b)) => {
                        decompose_checkpoint_blob(&b).ok().map(|c| c.v)
                    }
                    _ => None,
                },
                root_parent,
            });
        }
        let task_rows = sqlx::query(
            "SELECT DISTINCT checkpoint_ns, checkpoint_id FROM writes \
             WHERE thread_id = ? AND channel = ?",
        )
        .bind(thread_id)
        .bind(TASKS_CHANNEL)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err("prune"))?;
        let sends: HashSet<(String, String)> = task_rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db_err("prune"))?;
        let candidates: Vec<_> = prune_rows.iter().map(PruneRow::as_candidate).collect();
        let plan = plan_keep_latest(&candidates, |ns, id| {
            sends.contains(&(ns.to_owned(), id.to_owned()))
        });
        for ns in &plan.drop_namespaces {
            for sql in [
                "DELETE FROM writes WHERE thread_id = ? AND checkpoint_ns = ?",
                "DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ?",
            ] {
                sqlx::query(sql)
                    .bind(thread_id)
                    .bind(ns)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("prune"))?;
            }
        }
        for (ns, id) in &plan.drop_checkpoints {
            for sql in [
                "DELETE FROM writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?",
                "DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?",
            ] {
                sqlx::query(sql)
                    .bind(thread_id)
                    .bind(ns)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("prune"))?;
            }
        }
        // Python nulls every kept parent pointer that leaves the kept set, dangling ones
        // included.
        for (ns, id) in plan.orphaned.iter().chain(&plan.dangling) {
            sqlx::query(
                "UPDATE checkpoints SET parent_checkpoint_id = NULL \
                 WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?",
            )
            .bind(thread_id)
            .bind(ns)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err("prune"))?;
        }
        tx.commit().await.map_err(db_err("prune"))
    }
}

/// Writes `blob` and `metadata` into the `checkpoint` and `metadata` columns of row `rowid`,
/// which hold zeroblobs of exactly their lengths, through SQLite's incremental blob I/O on
/// sqlx's own connection (so inside the caller's transaction). Only the pieces are read; no
/// whole-blob copy is made.
fn fill_row_in_place(
    handle: &mut LockedSqliteHandle<'_>,
    rowid: i64,
    blob: &CheckpointBlobParts<'_>,
    metadata: &[u8],
) -> rusqlite::Result<()> {
    // SAFETY: the locked handle gives exclusive use of sqlx's open connection until it is
    // dropped, and it outlives `conn`, which borrows the handle without owning it (a
    // `from_handle` connection never closes the handle it was given).
    let conn = unsafe { rusqlite::Connection::from_handle(handle.as_raw_handle().as_ptr()) }?;
    let open = |column| conn.blob_open(rusqlite::MAIN_DB, c"checkpoints", column, rowid, false);
    let mut cell = open(c"checkpoint")?;
    let mut at = 0;
    for piece in blob.pieces() {
        cell.write_all_at(piece, at)?;
        at += piece.len();
    }
    cell.close()?;
    let mut cell = open(c"metadata")?;
    cell.write_all_at(metadata, 0)?;
    cell.close()?;
    conn.close().map_err(|(_, e)| e)
}

fn write_from_row(row: &SqliteRow) -> DomainResult<PendingWrite> {
    let task_id: String = row.try_get("task_id").map_err(db_err("read_writes"))?;
    let task_path: Option<String> = row.try_get("task_path").map_err(db_err("read_writes"))?;
    let idx: i64 = row.try_get("idx").map_err(db_err("read_writes"))?;
    let channel: String = row.try_get("channel").map_err(db_err("read_writes"))?;
    let tag: Option<String> = row.try_get("type").map_err(db_err("read_writes"))?;
    let value: Option<Vec<u8>> = row.try_get("value").map_err(db_err("read_writes"))?;
    let tag = tag.ok_or_else(|| corrupt("read_writes", "a write row has no type"))?;
    Ok(PendingWrite {
        task_id: TaskId::parse(task_id).map_err(|e| corrupt("read_writes", e))?,
        task_path: task_path.unwrap_or_default(),
        channel: ChannelName::parse(channel).map_err(|e| corrupt("read_writes", e))?,
        value: TypedValue::new(tag, value.unwrap_or_default())
            .map_err(|e| corrupt("read_writes", e))?,
        idx,
    })
}

/// A value bound to a dynamically built statement.
enum Bind {
    Text(String),
    Int(i64),
    Real(f64),
}

fn add_bind(args: &mut SqliteArguments, bind: Bind) -> DomainResult<()> {
    let result = match bind {
        Bind::Text(s) => args.add(s),
        Bind::Int(i) => args.add(i),
        Bind::Real(f) => args.add(f),
    };
    result.map_err(|e| DomainError::storage("langgraph_sqlite.bind", e))
}

/// One `json_extract` predicate per filter key, as `SqliteSaver.list` builds them (spec §3.5);
/// the keys were checked against [`CAPABILITIES`].
fn filter_predicates(
    filter: &waymark_domain::json::JsonObject,
    wheres: &mut Vec<String>,
    binds: &mut Vec<Bind>,
) -> DomainResult<()> {
    for (key, value) in filter {
        let extract = "json_extract(CAST(metadata AS TEXT), ?)";
        binds.push(Bind::Text(format!("$.{key}")));
        match value {
            JsonValue::Null => wheres.push(format!("{extract} IS NULL")),
            JsonValue::Bool(b) => {
                wheres.push(format!("{extract} = ?"));
                binds.push(Bind::Int(i64::from(*b)));
            }
            JsonValue::Number(n) => {
                wheres.push(format!("{extract} = ?"));
                if let Some(i) = n.as_i64() {
                    binds.push(Bind::Int(i));
                } else if waymark_domain::json::is_integer(n) {
                    // Python's sqlite3 cannot bind it either (OverflowError).
                    return Err(DomainError::invalid(
                        "filter",
                        format!(
                            "metadata filter value for {key:?} does not fit a 64-bit signed integer"
                        ),
                    ));
                } else {
                    binds.push(Bind::Real(n.as_f64().unwrap_or(f64::NAN)));
                }
            }
            JsonValue::String(s) => {
                wheres.push(format!("{extract} = ?"));
                binds.push(Bind::Text(s.clone()));
            }
            JsonValue::Array(_) | JsonValue::Object(_) => {
                wheres.push(format!("{extract} = ?"));
                let text = to_python_json(value, PyJsonStyle::CompactAscii);
                binds.push(Bind::Text(String::from_utf8(text).unwrap_or_default()));
            }
        }
    }
    Ok(())
}

#[async_trait]
impl CheckpointRepository for LangGraphSqliteStore {
    fn capabilities(&self) -> CheckpointCapabilities {
        CAPABILITIES
    }

    async fn put(&self, put: CheckpointPut) -> DomainResult<CheckpointRef> {
        let mut tx = self.write_tx("put").await?;
        let reference = Self::put_in(&mut tx, &put).await?;
        tx.commit().await.map_err(db_err("put"))?;
        Ok(reference)
    }

    async fn put_many(&self, puts: Vec<CheckpointPut>) -> DomainResult<Vec<CheckpointRef>> {
        if puts.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.write_tx("put_many").await?;
        let mut refs = Vec::with_capacity(puts.len());
        for put in &puts {
            refs.push(Self::put_in(&mut tx, put).await?);
        }
        tx.commit().await.map_err(db_err("put_many"))?;
        Ok(refs)
    }

    async fn put_writes(&self, batch: WriteBatch) -> DomainResult<()> {
        if batch.writes.is_empty() {
            return Ok(());
        }
        let sql = if batch.is_upsert() {
            "INSERT OR REPLACE INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, \
             task_path, idx, channel, type, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        } else {
            "INSERT OR IGNORE INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, \
             task_path, idx, channel, type, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        };
        let mut tx = self.write_tx("put_writes").await?;
        for write in batch.to_pending_writes() {
            sqlx::query(sql)
                .bind(batch.target.thread_id.as_str())
                .bind(batch.target.namespace.as_str())
                .bind(batch.target.checkpoint_id.as_str())
                .bind(write.task_id.as_str())
                .bind(write.task_path.as_str())
                .bind(write.idx)
                .bind(write.channel.as_str())
                .bind(write.value.type_tag())
                .bind(write.value.bytes())
                .execute(&mut *tx)
                .await
                .map_err(db_err("put_writes"))?;
        }
        tx.commit().await.map_err(db_err("put_writes"))
    }

    async fn get_tuple(
        &self,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        checkpoint_id: Option<CheckpointId>,
    ) -> DomainResult<Option<CheckpointTuple>> {
        let mut tx = self.pool.begin().await.map_err(db_err("get_tuple"))?;
        let row = match &checkpoint_id {
            Some(id) => sqlx::query(AssertSqlSafe(format!(
                "{SELECT_CHECKPOINT} WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
            )))
            .bind(thread_id.as_str())
            .bind(namespace.as_str())
            .bind(id.as_str()),
            None => sqlx::query(AssertSqlSafe(format!(
                "{SELECT_CHECKPOINT} WHERE thread_id = ? AND checkpoint_ns = ? \
                 ORDER BY checkpoint_id DESC LIMIT 1"
            )))
            .bind(thread_id.as_str())
            .bind(namespace.as_str()),
        }
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err("get_tuple"))?;
        let tuple = match row {
            Some(row) => Some(Self::tuple_from_row(&mut tx, &row).await?),
            None => None,
        };
        tx.commit().await.map_err(db_err("get_tuple"))?;
        Ok(tuple)
    }

    async fn list(&self, query: &CheckpointQuery) -> DomainResult<Vec<CheckpointTuple>> {
        CAPABILITIES.check_filter(&query.filter)?;
        let mut wheres = Vec::new();
        let mut binds = Vec::new();
        if let Some(thread) = &query.thread_id {
            wheres.push("thread_id = ?".to_owned());
            binds.push(Bind::Text(thread.to_string()));
        }
        if let Some(ns) = &query.namespace {
            wheres.push("checkpoint_ns = ?".to_owned());
            binds.push(Bind::Text(ns.to_string()));
        }
        if let Some(id) = &query.checkpoint_id {
            wheres.push("checkpoint_id = ?".to_owned());
            binds.push(Bind::Text(id.to_string()));
        }
        filter_predicates(&query.filter, &mut wheres, &mut binds)?;
        if let Some(before) = &query.before {
            wheres.push("checkpoint_id < ?".to_owned());
            binds.push(Bind::Text(before.to_string()));
        }
        let mut sql = SELECT_CHECKPOINT.to_owned();
        if !wheres.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&wheres.join(" AND "));
        }
        sql.push_str(" ORDER BY checkpoint_id DESC");
        if let Some(limit) = query.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let mut args = SqliteArguments::default();
        for bind in binds {
            add_bind(&mut args, bind)?;
        }
        let mut tx = self.pool.begin().await.map_err(db_err("list"))?;
        let rows = sqlx::query_with(AssertSqlSafe(sql), args)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err("list"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(Self::tuple_from_row(&mut tx, row).await?);
        }
        tx.commit().await.map_err(db_err("list"))?;
        Ok(out)
    }

    async fn delete_thread(&self, thread_id: &ThreadId) -> DomainResult<()> {
        let mut tx = self.write_tx("delete_thread").await?;
        Self::delete_threads_in(&mut tx, thread_id.as_str()).await?;
        tx.commit().await.map_err(db_err("delete_thread"))
    }

    async fn copy_thread(&self, source: &ThreadId, target: &ThreadId) -> DomainResult<()> {
        if source == target {
            return Ok(());
        }
        let mut tx = self.write_tx("copy_thread").await?;
        for sql in [
            "INSERT OR IGNORE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, \
             parent_checkpoint_id, type, checkpoint, metadata) SELECT ?, checkpoint_ns, \
             checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata FROM checkpoints \
             WHERE thread_id = ?",
            "INSERT OR IGNORE INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, \
             task_path, idx, channel, type, value) SELECT ?, checkpoint_ns, checkpoint_id, \
             task_id, task_path, idx, channel, type, value FROM writes WHERE thread_id = ?",
        ] {
            sqlx::query(sql)
                .bind(target.as_str())
                .bind(source.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err("copy_thread"))?;
        }
        tx.commit().await.map_err(db_err("copy_thread"))
    }

    async fn prune(&self, thread_ids: Vec<ThreadId>, strategy: PruneStrategy) -> DomainResult<()> {
        if thread_ids.is_empty() {
            return Ok(());
        }
        match strategy {
            PruneStrategy::Delete => {
                let mut tx = self.write_tx("prune").await?;
                for thread in &thread_ids {
                    Self::delete_threads_in(&mut tx, thread.as_str()).await?;
                }
                tx.commit().await.map_err(db_err("prune"))
            }
            PruneStrategy::KeepLatest => {
                for thread in &thread_ids {
                    if self.uses_delta_channel(thread.as_str()).await? {
                        return Err(DomainError::invalid(
                            "thread_ids",
                            format!(
                                "thread {thread} uses a DeltaChannel, whose history keep_latest \
                                 would destroy (LangGraph refuses too); use strategy delete"
                            ),
                        ));
                    }
                }
                for thread in &thread_ids {
                    self.prune_keep_latest(thread.as_str()).await?;
                }
                Ok(())
            }
        }
    }

    async fn delete_for_runs(&self, run_ids: Vec<RunId>) -> DomainResult<()> {
        if run_ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx("delete_for_runs").await?;
        for chunk in run_ids.chunks(CHUNK) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let matches =
                format!("json_extract(CAST(c.metadata AS TEXT), '$.run_id') IN ({marks})");
            let statements = [
                format!(
                    "DELETE FROM writes WHERE EXISTS (SELECT 1 FROM checkpoints c WHERE \
                     c.thread_id = writes.thread_id AND c.checkpoint_ns = writes.checkpoint_ns \
                     AND c.checkpoint_id = writes.checkpoint_id AND {matches})"
                ),
                format!("DELETE FROM checkpoints AS c WHERE {matches}"),
            ];
            for sql in statements {
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for run in chunk {
                    q = q.bind(run.as_str());
                }
                q.execute(&mut *tx)
                    .await
                    .map_err(db_err("delete_for_runs"))?;
            }
        }
        tx.commit().await.map_err(db_err("delete_for_runs"))
    }

    async fn delete_checkpoints(
        &self,
        thread_id: &ThreadId,
        namespace: &CheckpointNamespace,
        checkpoint_ids: Vec<CheckpointId>,
    ) -> DomainResult<u64> {
        if checkpoint_ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.write_tx("delete_checkpoints").await?;
        let mut deleted = 0;
        for chunk in checkpoint_ids.chunks(CHUNK) {
            let marks = vec!["?"; chunk.len()].join(", ");
            for (i, table) in ["writes", "checkpoints"].iter().enumerate() {
                let sql = format!(
                    "DELETE FROM {table} WHERE thread_id = ? AND checkpoint_ns = ? \
                     AND checkpoint_id IN ({marks})"
                );
                let mut q = sqlx::query(AssertSqlSafe(sql))
                    .bind(thread_id.as_str())
                    .bind(namespace.as_str());
                for id in chunk {
                    q = q.bind(id.as_str());
                }
                let done = q
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("delete_checkpoints"))?;
                if i == 1 {
                    deleted += done.rows_affected();
                }
            }
        }
        tx.commit().await.map_err(db_err("delete_checkpoints"))?;
        Ok(deleted)
    }

    async fn summary(&self, thread_id: &ThreadId) -> DomainResult<CheckpointSummary> {
        let mut tx = self.pool.begin().await.map_err(db_err("summary"))?;
        let cps = sqlx::query(
            "SELECT count(*), count(DISTINCT checkpoint_ns), min(checkpoint_id), \
             max(checkpoint_id), coalesce(sum(coalesce(length(CAST(checkpoint AS BLOB)), 0) \
             + coalesce(length(type), 0)), 0) FROM checkpoints WHERE thread_id = ?",
        )
        .bind(thread_id.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err("summary"))?;
        let writes = sqlx::query(
            "SELECT count(*), coalesce(sum(coalesce(length(CAST(value AS BLOB)), 0) \
             + coalesce(length(type), 0)), 0) FROM writes WHERE thread_id = ?",
        )
        .bind(thread_id.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err("summary"))?;
        tx.commit().await.map_err(db_err("summary"))?;
        let e = db_err("summary");
        let id = |v: Option<String>| -> DomainResult<Option<CheckpointId>> {
            v.map(CheckpointId::parse)
                .transpose()
                .map_err(|err| corrupt("summary", err))
        };
        let cp_bytes: i64 = cps.try_get(4).map_err(&e)?;
        let write_bytes: i64 = writes.try_get(1).map_err(&e)?;
        Ok(CheckpointSummary {
            checkpoints: cps.try_get::<i64, _>(0).map_err(&e)? as u64,
            writes: writes.try_get::<i64, _>(0).map_err(&e)? as u64,
            namespaces: cps.try_get::<i64, _>(1).map_err(&e)? as u64,
            oldest: id(cps.try_get(2).map_err(&e)?)?,
            newest: id(cps.try_get(3).map_err(&e)?)?,
            stored_bytes: Some((cp_bytes + write_bytes) as u64),
        })
    }
}
