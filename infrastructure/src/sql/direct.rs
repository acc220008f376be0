//! SQLite operations as one blocking closure on a dedicated connection.
//!
//! sqlx runs every SQLite statement on a worker thread and hands each one over through a
//! channel, so an operation of several statements pays one thread hand-off each (a put was
//! four). Here a checkpoint operation is sent once, as a closure, to a thread that owns its
//! own `rusqlite` connection to the same file, and every statement of it runs there back to
//! back inside one transaction; the caller awaits one answer.
//!
//! The stores keep one implementation: the closure receives a [`DirectConn`], which
//! implements the stores' statement port ([`Exec`]) by executing each statement synchronously,
//! so the same generic query code (`C: Exec`) runs on the pool and here. Its futures never
//! wait on anything, and [`complete`] polls them to the end on the connection's thread.
//!
//! One writer thread takes the checkpoint writes and thread claims, in arrival order, so they
//! never contend with each other for SQLite's write lock (a loser would sleep in the busy
//! handler); two reader threads share the reads, which meet the writer at SQLite's WAL
//! (readers and one writer proceed together). The sqlx pool still serves the other stores and
//! migrations, and meets the writer at the file lock with the same busy timeout.
//!
//! A first version (2026-12-03, second session) measured the writer slower at
//! `synchronous=FULL` than the pool, with a long fsync tail, on a machine shared with five
//! builds; re-measured on a quiet machine it is faster at both settings (BENCHMARKS.md).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, Value as SqliteValue, ValueRef};
use rusqlite::{Connection, OpenFlags};
use sea_orm::{Statement, Value};

use super::db::{BlobRow, DirectRow, Exec, Record};
use super::error::{DbFailure, SqlError, SqlResult};

/// How many reader threads (each with its own connection) serve reads.
const READERS: usize = 2;

/// Prepared statements kept per connection (multi-row inserts have one text per row count).
const STATEMENT_CACHE: usize = 128;

/// A job: runs on a connection thread with that thread's connection.
type Job = Box<dyn FnOnce(&Mutex<Connection>) + Send>;

/// The settings every direct connection opens with (those of the sqlx pool).
#[derive(Debug, Clone)]
pub(crate) struct DirectSettings {
    /// The database file.
    pub path: PathBuf,
    /// `PRAGMA synchronous` as SQLite spells it (`OFF`, `NORMAL`, `FULL`, `EXTRA`).
    pub synchronous: &'static str,
    /// How long a statement waits for another connection's lock.
    pub busy_timeout: Duration,
}

/// The connection threads of one SQLite file.
pub(crate) struct DirectSqlite {
    readers: flume::Sender<Job>,
    writer: flume::Sender<Job>,
}

impl std::fmt::Debug for DirectSqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectSqlite").finish_non_exhaustive()
    }
}

impl DirectSqlite {
    /// Opens the readers' connections, each on its own thread. Fails if any connection cannot
    /// be opened or configured.
    pub(crate) fn open(settings: &DirectSettings) -> SqlResult<Self> {
        let (readers, reader_jobs) = flume::unbounded::<Job>();
        for i in 0..READERS {
            spawn_connection_thread(
                &format!("waymark-sqlite-reader-{i}"),
                open_connection(settings)?,
                reader_jobs.clone(),
            )?;
        }
        let (writer, writer_jobs) = flume::unbounded::<Job>();
        spawn_connection_thread(
            "waymark-sqlite-writer",
            open_connection(settings)?,
            writer_jobs,
        )?;
        Ok(Self { readers, writer })
    }

    /// Runs `work` in one write transaction (`BEGIN IMMEDIATE`) on the writer's connection:
    /// committed if it returns `Ok`, rolled back otherwise. Writes run one at a time, in
    /// arrival order, so this process's checkpoint writers never wait in SQLite's busy
    /// handler for each other.
    pub(crate) async fn write<T, F>(&self, op: &'static str, work: F) -> SqlResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&DirectConn<'_>) -> SqlResult<T> + Send + 'static,
    {
        self.run(&self.writer, op, "BEGIN IMMEDIATE", work).await
    }

    /// Runs `work` in one read transaction (a consistent snapshot) on a reader's connection.
    pub(crate) async fn read<T, F>(&self, op: &'static str, work: F) -> SqlResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&DirectConn<'_>) -> SqlResult<T> + Send + 'static,
    {
        self.run(&self.readers, op, "BEGIN", work).await
    }

    async fn run<T, F>(
        &self,
        lane: &flume::Sender<Job>,
        op: &'static str,
        begin: &'static str,
        work: F,
    ) -> SqlResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&DirectConn<'_>) -> SqlResult<T> + Send + 'static,
    {
        let (reply, answer) = flume::bounded::<SqlResult<T>>(1);
        let job: Job = Box::new(move |conn| {
            let result = in_transaction(&DirectConn { conn }, op, begin, work);
            // The caller may have gone (its request was dropped): nothing to tell then.
            let _ = reply.send(result);
        });
        lane.send(job).map_err(|_| stopped(op))?;
        answer.recv_async().await.map_err(|_| stopped(op))?
    }
}

fn stopped(op: &'static str) -> SqlError {
    SqlError::Db {
        operation: op,
        failure: DbFailure::Other,
        message: "the SQLite connection thread stopped".to_owned(),
    }
}

/// `begin`, `work`, then `COMMIT`; `ROLLBACK` if anything failed, so a failed write leaves
/// nothing behind.
fn in_transaction<T>(
    conn: &DirectConn<'_>,
    op: &'static str,
    begin: &str,
    work: impl FnOnce(&DirectConn<'_>) -> SqlResult<T>,
) -> SqlResult<T> {
    conn.batch(begin, op)?;
    let result = work(conn);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    match (result, conn.batch(end, op)) {
        (Ok(value), Ok(())) => Ok(value),
        (Ok(_), Err(e)) => {
            let _ = conn.batch("ROLLBACK", op);
            Err(e)
        }
        // Rolling back a transaction SQLite already ended is harmless; the work's error wins.
        (Err(e), _) => Err(e),
    }
}

fn open_connection(settings: &DirectSettings) -> SqlResult<Connection> {
    let fail = |e: rusqlite::Error| {
        SqlError::Config(format!(
            "cannot open {} for direct SQLite access: {e}",
            settings.path.display()
        ))
    };
    let conn = Connection::open_with_flags(
        &settings.path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(fail)?;
    conn.busy_timeout(settings.busy_timeout).map_err(fail)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; PRAGMA foreign_keys = ON;",
        settings.synchronous
    ))
    .map_err(fail)?;
    Ok(conn)
}

fn spawn_connection_thread(
    name: &str,
    conn: Connection,
    jobs: flume::Receiver<Job>,
) -> SqlResult<()> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let conn = Mutex::new(conn);
            // Ends when every sender is gone (the backend was dropped).
            while let Ok(job) = jobs.recv() {
                job(&conn);
            }
        })
        .map(drop)
        .map_err(|e| SqlError::Config(format!("cannot start a SQLite connection thread: {e}")))
}

/// Polls a future that never waits (all its I/O is a [`DirectConn`]'s synchronous statements)
/// to its end on the current thread. Should one ever be pending, it is polled again after
/// yielding the thread, so the answer is late rather than lost.
pub(crate) fn complete<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

/// One connection thread's connection, as the stores' statement port: each statement runs
/// synchronously when its future is first polled.
pub(crate) struct DirectConn<'a> {
    // A mutex only to make the connection `Sync` (the port's futures must be `Send`); it is
    // used by its own thread alone, so the lock is never contended.
    conn: &'a Mutex<Connection>,
}

impl DirectConn<'_> {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&conn)
    }

    fn batch(&self, sql: &str, op: &'static str) -> SqlResult<()> {
        self.with(|c| c.execute_batch(sql).map_err(|e| driver_error(op, e)))
    }

    /// Runs `stmt`, handing each row to `row`; returns the number of rows changed.
    fn run(
        &self,
        stmt: &Statement,
        op: &'static str,
        mut row: impl FnMut(DirectRow),
    ) -> SqlResult<u64> {
        self.with(|c| {
            let fail = |e| driver_error(op, e);
            let mut prepared = c.prepare_cached(&stmt.sql).map_err(fail)?;
            bind(&mut prepared, stmt, op)?;
            let names: Arc<[String]> = prepared
                .column_names()
                .into_iter()
                .map(str::to_owned)
                .collect();
            let width = names.len();
            let mut rows = prepared.raw_query();
            while let Some(r) = rows.next().map_err(fail)? {
                let mut values = Vec::with_capacity(width);
                for i in 0..width {
                    values.push(owned_value(r.get_ref(i).map_err(fail)?, op)?);
                }
                row(DirectRow {
                    names: names.clone(),
                    values,
                });
            }
            drop(rows);
            Ok(c.changes())
        })
    }
}

#[async_trait]
impl Exec for DirectConn<'_> {
    async fn all_rows(&self, stmt: Statement, op: &'static str) -> SqlResult<Vec<Record>> {
        let mut rows = Vec::new();
        self.run(&stmt, op, |r| rows.push(Record::Direct(r)))?;
        Ok(rows)
    }

    async fn one_row(&self, stmt: Statement, op: &'static str) -> SqlResult<Option<Record>> {
        let mut first = None;
        self.run(&stmt, op, |r| {
            if first.is_none() {
                first = Some(Record::Direct(r));
            }
        })?;
        Ok(first)
    }

    async fn exec_stmt(&self, stmt: Statement, op: &'static str) -> SqlResult<u64> {
        // Rows a statement returns (`RETURNING`) are read and dropped, as the pool does.
        self.run(&stmt, op, drop)
    }

    async fn insert_blob_row(&self, row: BlobRow<'_>, op: &'static str) -> SqlResult<bool> {
        use std::io::Write;
        let sql = format!(
            "{} RETURNING rowid",
            row.insert_sql(|n| format!("zeroblob(${n})"))
        );
        let len = i64::try_from(row.blob.len())
            .map_err(|_| internal(op, "a blob longer than 2^63 bytes".to_owned()))?;
        let mut values = row.values();
        values.push(Value::BigInt(Some(len)));
        let mut rowid = None;
        self.run(&super::db::Kind::Sqlite.stmt(sql, values), op, |r| {
            if let Some(SqliteValue::Integer(id)) = r.values.first() {
                rowid = Some(*id);
            }
        })?;
        let Some(rowid) = rowid else {
            return Ok(false);
        };
        self.with(|c| {
            let mut blob = c
                .blob_open(rusqlite::MAIN_DB, row.table, row.blob_column, rowid, false)
                .map_err(|e| driver_error(op, e))?;
            blob.write_all(row.blob)
                .map_err(|e| internal(op, format!("writing a blob in place: {e}")))
        })?;
        Ok(true)
    }
}

/// A column's value, copied out of SQLite's buffer.
fn owned_value(v: ValueRef<'_>, op: &'static str) -> SqlResult<SqliteValue> {
    Ok(match v {
        ValueRef::Null => SqliteValue::Null,
        ValueRef::Integer(i) => SqliteValue::Integer(i),
        ValueRef::Real(f) => SqliteValue::Real(f),
        ValueRef::Text(t) => SqliteValue::Text(
            String::from_utf8(t.to_vec())
                .map_err(|e| SqlError::corrupt(op, format!("text column: {e}")))?,
        ),
        ValueRef::Blob(b) => SqliteValue::Blob(b.to_vec()),
    })
}

/// Binds the statement's values: `$N`/`?N` parameters by their number (as sqlx does), plain
/// `?` in order.
fn bind(
    prepared: &mut rusqlite::CachedStatement<'_>,
    stmt: &Statement,
    op: &'static str,
) -> SqlResult<()> {
    let values: &[Value] = stmt.values.as_ref().map(|v| v.0.as_slice()).unwrap_or(&[]);
    let mut next = 0usize;
    for index in 1..=prepared.parameter_count() {
        let position = match prepared.parameter_name(index) {
            Some(name) => match name.get(1..).and_then(|n| n.parse::<usize>().ok()) {
                Some(n) if n >= 1 => n - 1,
                _ => return Err(internal(op, format!("unsupported SQL parameter {name}"))),
            },
            None => {
                next += 1;
                next - 1
            }
        };
        let value = values.get(position).ok_or_else(|| {
            internal(
                op,
                format!(
                    "SQL parameter {index} has no value ({} given)",
                    values.len()
                ),
            )
        })?;
        prepared
            .raw_bind_parameter(index, sqlite_value(value, op)?)
            .map_err(|e| driver_error(op, e))?;
    }
    Ok(())
}

/// A SeaORM value as SQLite stores it (as sqlx's SQLite driver encodes the same value).
fn sqlite_value<'v>(v: &'v Value, op: &'static str) -> SqlResult<ToSqlOutput<'v>> {
    use SqliteValue as S;
    let owned = |v: S| Ok(ToSqlOutput::Owned(v));
    let int = |i: Option<i64>| owned(i.map_or(S::Null, S::Integer));
    match v {
        Value::Bool(b) => int(b.map(i64::from)),
        Value::TinyInt(i) => int(i.map(i64::from)),
        Value::SmallInt(i) => int(i.map(i64::from)),
        Value::Int(i) => int(i.map(i64::from)),
        Value::BigInt(i) => int(*i),
        Value::TinyUnsigned(i) => int(i.map(i64::from)),
        Value::SmallUnsigned(i) => int(i.map(i64::from)),
        Value::Unsigned(i) => int(i.map(i64::from)),
        Value::BigUnsigned(i) => match i {
            None => owned(S::Null),
            Some(u) => i64::try_from(*u)
                .map(|i| ToSqlOutput::Owned(S::Integer(i)))
                .map_err(|_| internal(op, format!("integer {u} does not fit SQLite's 64 bits"))),
        },
        Value::Float(f) => owned(f.map_or(S::Null, |f| S::Real(f64::from(f)))),
        Value::Double(f) => owned(f.map_or(S::Null, S::Real)),
        Value::String(s) => Ok(match s {
            Some(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            None => ToSqlOutput::Owned(S::Null),
        }),
        Value::Char(c) => owned(c.map_or(S::Null, |c| S::Text(c.to_string()))),
        Value::Bytes(b) => Ok(match b {
            Some(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b.as_slice())),
            None => ToSqlOutput::Owned(S::Null),
        }),
        Value::Json(j) => owned(match j {
            Some(j) => S::Text(j.to_string()),
            None => S::Null,
        }),
        other => Err(internal(
            op,
            format!("a {other:?} parameter is not supported on the direct SQLite path"),
        )),
    }
}

fn internal(op: &'static str, message: String) -> SqlError {
    SqlError::Db {
        operation: op,
        failure: DbFailure::Other,
        message,
    }
}

/// A driver error, classified by SQLite's extended result code as sqlx's errors are:
/// unique/primary key (2067, 1555) and foreign key (787) violations.
fn driver_error(op: &'static str, e: rusqlite::Error) -> SqlError {
    let failure = match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.extended_code {
            2067 | 1555 => DbFailure::UniqueViolation,
            787 => DbFailure::ForeignKeyViolation,
            _ => DbFailure::Other,
        },
        _ => DbFailure::Other,
    };
    SqlError::Db {
        operation: op,
        failure,
        message: e.to_string(),
    }
}

/// The file a `sqlite:` URL names, for the direct connections; `None` for in-memory
/// databases (a second connection could not see them) and for read-only opens (the direct
/// connections write).
pub(crate) fn file_of(url: &str) -> Option<PathBuf> {
    use std::str::FromStr;
    if url.contains(":memory:")
        || url.contains("mode=memory")
        || url.contains("mode=ro")
        || url.contains("immutable=")
    {
        return None;
    }
    let options = sea_orm::sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    let path: &Path = options.get_filename();
    (!path.as_os_str().is_empty()).then(|| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::db::{Kind, Row};

    fn scratch(synchronous: &'static str) -> (DirectSqlite, PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "waymark-direct-{}.db",
            uuid::Uuid::new_v4().simple()
        ));
        // In production the pool creates the file before the direct connections open it.
        rusqlite::Connection::open(&path).unwrap();
        let direct = DirectSqlite::open(&DirectSettings {
            path: path.clone(),
            synchronous,
            busy_timeout: Duration::from_secs(5),
        })
        .unwrap();
        (direct, path)
    }

    fn cleanup(path: &Path) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    fn stmt(sql: &str, values: Vec<Value>) -> Statement {
        Kind::Sqlite.stmt(sql, values)
    }

    #[tokio::test]
    async fn numbered_parameters_bind_by_number_and_nulls_read_as_none() {
        let (direct, path) = scratch("NORMAL");
        let (a, b, n) = direct
            .read("test", |c| {
                complete(async {
                    let row = db_one(
                        c,
                        "SELECT $2 AS a, $1 AS b, NULL AS n",
                        vec![Value::String(Some("first".into())), Value::BigInt(Some(7))],
                    )
                    .await?;
                    let r = Row::new(&row, Kind::Sqlite, "test");
                    Ok((
                        r.i64("a")?,
                        r.text("b")?,
                        (r.opt_text("n")?, r.opt_i64("n")?),
                    ))
                })
            })
            .await
            .unwrap();
        assert_eq!((a, b.as_str(), n), (7, "first", (None, None)));
        let err = direct
            .read("test", |c| {
                complete(async {
                    let row = db_one(c, "SELECT NULL AS n", vec![]).await?;
                    Row::new(&row, Kind::Sqlite, "test").text("n")
                })
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("column n is NULL"), "{err}");
        cleanup(&path);
    }

    async fn db_one(c: &DirectConn<'_>, sql: &str, values: Vec<Value>) -> SqlResult<Record> {
        crate::sql::db::one(c, stmt(sql, values), "test")
            .await?
            .ok_or_else(|| SqlError::corrupt("test", "no row"))
    }

    #[tokio::test]
    async fn reads_see_committed_rows_apply_the_pragmas_and_classify_violations() {
        let (direct, path) = scratch("FULL");
        // Another connection writes, as the pool does in production.
        let other = rusqlite::Connection::open(&path).unwrap();
        other
            .execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY); INSERT INTO t VALUES ('a');")
            .unwrap();
        let (rows, synchronous, foreign_keys) = direct
            .read("test", |c| {
                complete(async {
                    let n = db_one(c, "SELECT COUNT(*) AS n FROM t", vec![]).await?;
                    let s = db_one(c, "PRAGMA synchronous", vec![]).await?;
                    let f = db_one(c, "PRAGMA foreign_keys", vec![]).await?;
                    Ok((
                        Row::new(&n, Kind::Sqlite, "test").i64("n")?,
                        Row::new(&s, Kind::Sqlite, "test").i64("synchronous")?,
                        Row::new(&f, Kind::Sqlite, "test").bool("foreign_keys")?,
                    ))
                })
            })
            .await
            .unwrap();
        assert_eq!((rows, synchronous, foreign_keys), (1, 2, true), "FULL is 2");
        let dup = stmt(
            "INSERT INTO t (k) VALUES ($1)",
            vec![Value::String(Some("a".into()))],
        );
        let err = direct
            .read("test", move |c| {
                complete(crate::sql::db::exec(c, dup, "test"))
            })
            .await
            .unwrap_err();
        assert_unique_violation(&err);
        cleanup(&path);
    }

    fn assert_unique_violation(err: &SqlError) {
        assert!(
            matches!(
                err,
                SqlError::Db {
                    failure: DbFailure::UniqueViolation,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    /// `t (k TEXT PRIMARY KEY, b BLOB)`, created by the writer.
    async fn create_table(direct: &DirectSqlite) {
        let create = stmt("CREATE TABLE t (k TEXT PRIMARY KEY, b BLOB)", vec![]);
        direct
            .write("test", move |c| {
                complete(crate::sql::db::exec(c, create, "test"))
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_large_blob_row_is_inserted_once_and_reads_back_whole() {
        let (direct, path) = scratch("NORMAL");
        create_table(&direct).await;
        let blob: Vec<u8> = (0..(5 << 20) + 3).map(|i| (i % 253) as u8).collect();
        let insert = |blob: Vec<u8>| {
            let direct = &direct;
            async move {
                direct
                    .write("test", move |c| {
                        complete(c.insert_blob_row(
                            BlobRow {
                                table: "t",
                                conflict: "k",
                                columns: vec![("k", Value::String(Some("a".into())))],
                                blob_column: "b",
                                blob: &blob,
                            },
                            "test",
                        ))
                    })
                    .await
                    .unwrap()
            }
        };
        assert!(
            insert(blob.clone()).await,
            "the first insert stores the row"
        );
        assert!(
            !insert(vec![1, 2, 3]).await,
            "an existing key is left alone"
        );
        let stored = direct
            .read("test", |c| {
                complete(async {
                    let r = db_one(c, "SELECT b FROM t WHERE k = 'a'", vec![]).await?;
                    Row::new(&r, Kind::Sqlite, "test").bytes("b")
                })
            })
            .await
            .unwrap();
        assert!(stored == blob, "the blob read back differs");
        cleanup(&path);
    }

    #[tokio::test]
    async fn a_failed_write_rolls_back_whole_and_classifies_the_violation() {
        let (direct, path) = scratch("FULL");
        create_table(&direct).await;
        let insert = |k: &str| {
            stmt(
                "INSERT INTO t (k) VALUES ($1)",
                vec![Value::String(Some(k.into()))],
            )
        };
        let (first, dup) = (insert("a"), insert("a"));
        let err = direct
            .write("test", move |c| {
                complete(async {
                    crate::sql::db::exec(c, first, "test").await?;
                    crate::sql::db::exec(c, dup, "test").await
                })
            })
            .await
            .unwrap_err();
        assert_unique_violation(&err);
        let rows = direct
            .read("test", |c| {
                complete(async {
                    let n = db_one(c, "SELECT COUNT(*) AS n FROM t", vec![]).await?;
                    Row::new(&n, Kind::Sqlite, "test").i64("n")
                })
            })
            .await
            .unwrap();
        assert_eq!(
            rows, 0,
            "the first insert of the failed transaction was rolled back"
        );
        // The writer's connection is usable again after the rollback.
        let ok = insert("b");
        direct
            .write("test", move |c| {
                complete(crate::sql::db::exec(c, ok, "test"))
            })
            .await
            .unwrap();
        cleanup(&path);
    }

    #[tokio::test]
    async fn a_write_holds_the_write_lock_from_its_start() {
        // BEGIN IMMEDIATE: another connection cannot start writing while a direct write is
        // open, so the write never fails half-way on a lock upgrade.
        let (direct, path) = scratch("NORMAL");
        create_table(&direct).await;
        let probe_path = path.clone();
        let other_could_write = direct
            .write("test", move |_c| {
                let other = rusqlite::Connection::open(&probe_path).unwrap();
                other.busy_timeout(Duration::ZERO).unwrap();
                Ok(other.execute_batch("BEGIN IMMEDIATE; ROLLBACK;").is_ok())
            })
            .await
            .unwrap();
        assert!(!other_could_write, "the write lock was not held");
        cleanup(&path);
    }

    #[test]
    fn only_files_get_direct_connections() {
        assert_eq!(file_of("sqlite::memory:"), None);
        assert_eq!(file_of("sqlite://file:x?mode=memory&cache=shared"), None);
        assert_eq!(file_of("sqlite://w.db?mode=ro"), None);
        assert_eq!(
            file_of("sqlite://some/dir/w.db?mode=rwc"),
            Some(PathBuf::from("some/dir/w.db"))
        );
    }
}
