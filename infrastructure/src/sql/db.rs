//! The thin layer between the stores and SeaORM: which database we talk to, how values are
//! bound and how columns are read back.
//!
//! Statements are written once with `$1`-style placeholders, which both sqlx drivers accept,
//! and differ per database only where the dialects do (JSON operators, timestamp types). The
//! differences in *representation* are confined here:
//!
//! | value | PostgreSQL | SQLite |
//! |---|---|---|
//! | timestamp | `TIMESTAMPTZ` | text `YYYY-MM-DDTHH:MM:SS.ffffff+00:00` (fixed width, sorts as time) |
//! | JSON | `JSONB` (`JSON` where key order must survive) | JSON text |
//! | bytes | `BYTEA` | `BLOB` |
//! | bool | `BOOLEAN` | `INTEGER` 0/1 |

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
#[cfg(feature = "sqlite")]
use rusqlite::types::Value as SqliteValue;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, QueryResult, Statement,
    TransactionOptions, TransactionTrait, Value,
};
#[cfg(feature = "sqlite")]
use std::sync::Arc;
use waymark_domain::{DomainError, JsonObject, JsonValue};

use super::error::{DbResultExt, SqlError, SqlResult};

/// The database behind a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SQLite (a file or an in-memory database).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Kind {
    fn backend(self) -> DbBackend {
        match self {
            Kind::Sqlite => DbBackend::Sqlite,
            Kind::Postgres => DbBackend::Postgres,
        }
    }

    /// A statement with positional `$n` parameters.
    pub fn stmt(self, sql: impl Into<String>, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(self.backend(), sql.into(), values)
    }

    /// A timestamp parameter (microsecond precision, UTC).
    pub fn ts(self, t: DateTime<Utc>) -> Value {
        let t = t.trunc_subsecs(6);
        match self {
            Kind::Postgres => Value::ChronoDateTimeUtc(Some(t)),
            Kind::Sqlite => Value::String(Some(sqlite_ts_text(t))),
        }
    }

    /// An optional timestamp parameter.
    pub fn opt_ts(self, t: Option<DateTime<Utc>>) -> Value {
        match (self, t) {
            (_, Some(t)) => self.ts(t),
            (Kind::Postgres, None) => Value::ChronoDateTimeUtc(None),
            (Kind::Sqlite, None) => Value::String(None),
        }
    }

    /// A JSON parameter for a `JSONB` (PostgreSQL) / text (SQLite) column. On PostgreSQL the
    /// SQL must not cast it; it arrives as `jsonb`.
    pub fn json(self, v: &JsonValue) -> Value {
        match self {
            Kind::Postgres => Value::Json(Some(Box::new(v.clone()))),
            Kind::Sqlite => Value::String(Some(v.to_string())),
        }
    }

    /// A JSON object parameter, see [`Kind::json`].
    pub fn json_obj(self, v: &JsonObject) -> Value {
        match self {
            Kind::Postgres => Value::Json(Some(Box::new(JsonValue::Object(v.clone())))),
            Kind::Sqlite => Value::String(Some(
                serde_json::to_string(v).unwrap_or_else(|_| "{}".into()),
            )),
        }
    }
}

/// The fixed-width text form of a UTC instant on SQLite. Fixed width makes text order equal
/// time order, so comparisons and `ORDER BY` work on the column directly.
pub fn sqlite_ts_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// A text parameter.
pub fn text(s: impl Into<String>) -> Value {
    Value::String(Some(s.into()))
}

/// An optional text parameter.
pub fn opt_text<S: Into<String>>(s: Option<S>) -> Value {
    Value::String(s.map(Into::into))
}

/// An integer parameter.
pub fn int(i: i64) -> Value {
    Value::BigInt(Some(i))
}

/// An optional integer parameter.
pub fn opt_int(i: Option<i64>) -> Value {
    Value::BigInt(i)
}

/// A byte-string parameter.
pub fn bytes(b: Vec<u8>) -> Value {
    Value::Bytes(Some(b))
}

/// Converts an unsigned count to the signed column type.
pub fn u64_param(field: &'static str, n: u64) -> SqlResult<Value> {
    i64::try_from(n)
        .map(int)
        .map_err(|_| SqlError::Domain(DomainError::invalid(field, format!("{n} is too large"))))
}

/// A database handle: the pool and its kind.
#[derive(Clone, Debug)]
pub struct Db {
    /// The SeaORM pool.
    pub conn: DatabaseConnection,
    /// Which database it is.
    pub kind: Kind,
}

impl Db {
    /// Starts a write transaction. On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken
    /// up front, so two writers never both read and then collide on upgrade (which SQLite
    /// answers with `SQLITE_BUSY` that the busy timeout cannot wait out).
    pub async fn begin_write(&self, op: &'static str) -> SqlResult<DatabaseTransaction> {
        match self.kind {
            Kind::Sqlite => self
                .conn
                .begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                    ..TransactionOptions::default()
                })
                .await
                .op(op),
            Kind::Postgres => self.conn.begin().await.op(op),
        }
    }

    /// Starts a read transaction (a consistent snapshot across several statements).
    pub async fn begin_read(&self, op: &'static str) -> SqlResult<DatabaseTransaction> {
        self.conn.begin().await.op(op)
    }
}

/// What the store code runs statements on: any SeaORM connection or transaction (the pool),
/// or, on a SQLite file, a dedicated connection executing synchronously (`direct`).
#[async_trait]
pub trait Exec: Sync {
    /// Runs a query and returns every row.
    async fn all_rows(&self, stmt: Statement, op: &'static str) -> SqlResult<Vec<Record>>;
    /// Runs a query and returns the first row, if any.
    async fn one_row(&self, stmt: Statement, op: &'static str) -> SqlResult<Option<Record>>;
    /// Executes a statement and returns the number of affected rows.
    async fn exec_stmt(&self, stmt: Statement, op: &'static str) -> SqlResult<u64>;
    /// Inserts one row unless its key exists; returns whether it was inserted. For payloads
    /// too large to copy around: a direct SQLite connection inserts a zero-filled blob and
    /// writes the bytes into it in place (no copy in the statement's values, SQLite's binding
    /// or its record), the pool binds them in a plain `INSERT … VALUES`.
    async fn insert_blob_row(&self, row: BlobRow<'_>, op: &'static str) -> SqlResult<bool>;
}

/// One row for [`Exec::insert_blob_row`]: ordinary columns, then one large blob column.
pub struct BlobRow<'a> {
    /// The table.
    pub table: &'static str,
    /// The key columns, comma-separated, of `ON CONFLICT (…) DO NOTHING`.
    pub conflict: &'static str,
    /// The other columns with their values, in order.
    pub columns: Vec<(&'static str, Value)>,
    /// The blob's column.
    pub blob_column: &'static str,
    /// The blob.
    pub blob: &'a [u8],
}

impl BlobRow<'_> {
    /// `INSERT INTO t (c1, …, blob) VALUES ($1, …, <blob>) ON CONFLICT (…) DO NOTHING`, with
    /// `blob_value` as the blob's SQL (given the number of its parameter).
    pub(crate) fn insert_sql(&self, blob_value: impl Fn(usize) -> String) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(c, _)| *c).collect();
        let params: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
        format!(
            "INSERT INTO {} ({}, {}) VALUES ({}, {}) ON CONFLICT ({}) DO NOTHING",
            self.table,
            names.join(", "),
            self.blob_column,
            params.join(", "),
            blob_value(names.len() + 1),
            self.conflict,
        )
    }

    /// The ordinary columns' values.
    pub(crate) fn values(&self) -> Vec<Value> {
        self.columns.iter().map(|(_, v)| v.clone()).collect()
    }

    /// `UPDATE t SET blob = blob || $1 WHERE k1 = $2 AND …` over the `conflict` key, with the
    /// key's values (in that order).
    fn append_sql(&self, op: &'static str) -> SqlResult<(String, Vec<Value>)> {
        let mut conditions = Vec::new();
        let mut key = Vec::new();
        for name in self.conflict.split(',').map(str::trim) {
            let (_, v) = self
                .columns
                .iter()
                .find(|(c, _)| *c == name)
                .ok_or_else(|| {
                    SqlError::corrupt(
                        op,
                        format!("key column {name} of {} has no value", self.table),
                    )
                })?;
            key.push(v.clone());
            conditions.push(format!("{name} = ${}", key.len() + 1));
        }
        let sql = format!(
            "UPDATE {} SET {blob} = {blob} || $1 WHERE {}",
            self.table,
            conditions.join(" AND "),
            blob = self.blob_column,
        );
        Ok((sql, key))
    }
}

/// The piece size of a large blob written through the PostgreSQL pool
/// ([`Exec::insert_blob_row`]).
const BLOB_PIECE_BYTES: usize = 8 << 20;

#[async_trait]
impl<C: ConnectionTrait> Exec for C {
    async fn all_rows(&self, stmt: Statement, op: &'static str) -> SqlResult<Vec<Record>> {
        let rows = self.query_all_raw(stmt).await.op(op)?;
        Ok(rows.into_iter().map(Record::Pool).collect())
    }

    async fn one_row(&self, stmt: Statement, op: &'static str) -> SqlResult<Option<Record>> {
        Ok(self.query_one_raw(stmt).await.op(op)?.map(Record::Pool))
    }

    async fn exec_stmt(&self, stmt: Statement, op: &'static str) -> SqlResult<u64> {
        Ok(self.execute_raw(stmt).await.op(op)?.rows_affected())
    }

    async fn insert_blob_row(&self, row: BlobRow<'_>, op: &'static str) -> SqlResult<bool> {
        let backend = self.get_database_backend();
        // PostgreSQL gets a large blob in pieces: the row with the first piece, then one
        // append per piece, so neither the statement values nor sqlx's write buffer (which a
        // connection keeps at its largest size) ever holds more than one piece. SQLite (the
        // pool serves only in-memory databases and `sqlite_direct: false`) takes it whole.
        let piece = match backend {
            DbBackend::Postgres => BLOB_PIECE_BYTES,
            _ => row.blob.len().max(1),
        };
        let mut pieces = row.blob.chunks(piece);
        let first = pieces.next().unwrap_or(&[]);
        let sql = row.insert_sql(|n| format!("${n}"));
        let mut values = row.values();
        values.push(bytes(first.to_vec()));
        let stmt = Statement::from_sql_and_values(backend, sql, values);
        if self.execute_raw(stmt).await.op(op)?.rows_affected() == 0 {
            return Ok(false);
        }
        let (append, key) = row.append_sql(op)?;
        for rest in pieces {
            let mut values = vec![bytes(rest.to_vec())];
            values.extend(key.iter().cloned());
            let stmt = Statement::from_sql_and_values(backend, append.clone(), values);
            if self.execute_raw(stmt).await.op(op)?.rows_affected() != 1 {
                return Err(SqlError::corrupt(
                    op,
                    "a blob row vanished while being written",
                ));
            }
        }
        Ok(true)
    }
}

/// One result row, from the pool or from a direct SQLite connection.
pub enum Record {
    /// A row read through SeaORM.
    Pool(QueryResult),
    /// A row read by a direct SQLite connection.
    #[cfg(feature = "sqlite")]
    Direct(DirectRow),
}

#[cfg(feature = "sqlite")]
/// A row read by a direct connection: its column names and values.
pub struct DirectRow {
    pub(crate) names: Arc<[String]>,
    pub(crate) values: Vec<SqliteValue>,
}

#[cfg(feature = "sqlite")]
impl DirectRow {
    fn value(&self, col: &str, op: &'static str) -> SqlResult<&SqliteValue> {
        self.names
            .iter()
            .position(|n| n == col)
            .map(|i| &self.values[i])
            .ok_or_else(|| SqlError::corrupt(op, format!("no column {col}")))
    }

    fn wrong(col: &str, op: &'static str, want: &str, got: &SqliteValue) -> SqlError {
        SqlError::corrupt(
            op,
            format!("column {col}: expected {want}, found {:?}", got.data_type()),
        )
    }

    pub(crate) fn opt_text(&self, col: &str, op: &'static str) -> SqlResult<Option<String>> {
        match self.value(col, op)? {
            SqliteValue::Null => Ok(None),
            SqliteValue::Text(t) => Ok(Some(t.clone())),
            other => Err(Self::wrong(col, op, "text", other)),
        }
    }

    pub(crate) fn text(&self, col: &str, op: &'static str) -> SqlResult<String> {
        self.opt_text(col, op)?
            .ok_or_else(|| SqlError::corrupt(op, format!("column {col} is NULL")))
    }

    pub(crate) fn opt_i64(&self, col: &str, op: &'static str) -> SqlResult<Option<i64>> {
        match self.value(col, op)? {
            SqliteValue::Null => Ok(None),
            SqliteValue::Integer(i) => Ok(Some(*i)),
            other => Err(Self::wrong(col, op, "an integer", other)),
        }
    }

    pub(crate) fn i64(&self, col: &str, op: &'static str) -> SqlResult<i64> {
        self.opt_i64(col, op)?
            .ok_or_else(|| SqlError::corrupt(op, format!("column {col} is NULL")))
    }

    pub(crate) fn bytes(&self, col: &str, op: &'static str) -> SqlResult<Vec<u8>> {
        match self.value(col, op)? {
            SqliteValue::Blob(b) => Ok(b.clone()),
            // SQLite stores a zero-length blob bound from Rust as a blob; text is accepted as
            // its bytes, as sqlx's decoding does.
            SqliteValue::Text(t) => Ok(t.clone().into_bytes()),
            other => Err(Self::wrong(col, op, "a blob", other)),
        }
    }
}

/// Runs a query and returns every row.
pub async fn all<C: Exec + ?Sized>(
    c: &C,
    stmt: Statement,
    op: &'static str,
) -> SqlResult<Vec<Record>> {
    c.all_rows(stmt, op).await
}

/// Runs a query and returns the first row, if any.
pub async fn one<C: Exec + ?Sized>(
    c: &C,
    stmt: Statement,
    op: &'static str,
) -> SqlResult<Option<Record>> {
    c.one_row(stmt, op).await
}

/// Executes a statement and returns the number of affected rows.
pub async fn exec<C: Exec + ?Sized>(c: &C, stmt: Statement, op: &'static str) -> SqlResult<u64> {
    c.exec_stmt(stmt, op).await
}

/// Typed access to the columns of one result row.
pub struct Row<'a> {
    r: &'a Record,
    kind: Kind,
    op: &'static str,
}

/// Dispatches a typed read to the row's origin: SeaORM's decoding or the direct row's own.
macro_rules! by_origin {
    ($self:ident, $col:ident, $direct:ident) => {
        match $self.r {
            Record::Pool(_) => $self.get($col),
            #[cfg(feature = "sqlite")]
            Record::Direct(d) => d.$direct($col, $self.op),
        }
    };
}

impl<'a> Row<'a> {
    /// Wraps a row read by `op`.
    pub fn new(r: &'a Record, kind: Kind, op: &'static str) -> Self {
        Self { r, kind, op }
    }

    fn get<T: sea_orm::TryGetable>(&self, col: &str) -> SqlResult<T> {
        match self.r {
            Record::Pool(r) => r
                .try_get::<T>("", col)
                .map_err(|e| SqlError::corrupt(self.op, format!("column {col}: {e}"))),
            #[cfg(feature = "sqlite")]
            Record::Direct(_) => Err(SqlError::corrupt(
                self.op,
                format!("column {col}: a direct SQLite row has no PostgreSQL types"),
            )),
        }
    }

    /// A text column.
    pub fn text(&self, col: &str) -> SqlResult<String> {
        by_origin!(self, col, text)
    }

    /// A nullable text column.
    pub fn opt_text(&self, col: &str) -> SqlResult<Option<String>> {
        by_origin!(self, col, opt_text)
    }

    /// A text column parsed into a validated id.
    pub fn id<T: FromStr<Err = DomainError>>(&self, col: &str) -> SqlResult<T> {
        let s = self.text(col)?;
        s.parse()
            .map_err(|e| SqlError::corrupt(self.op, format!("column {col}: {e}")))
    }

    /// A nullable text column parsed into a validated id.
    pub fn opt_id<T: FromStr<Err = DomainError>>(&self, col: &str) -> SqlResult<Option<T>> {
        match self.opt_text(col)? {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|e| SqlError::corrupt(self.op, format!("column {col}: {e}"))),
        }
    }

    /// A 64-bit integer column.
    pub fn i64(&self, col: &str) -> SqlResult<i64> {
        by_origin!(self, col, i64)
    }

    /// A nullable 64-bit integer column.
    pub fn opt_i64(&self, col: &str) -> SqlResult<Option<i64>> {
        by_origin!(self, col, opt_i64)
    }

    /// A non-negative integer column as `u64`.
    pub fn u64(&self, col: &str) -> SqlResult<u64> {
        let v = self.i64(col)?;
        u64::try_from(v).map_err(|_| SqlError::corrupt(self.op, format!("column {col} is {v}")))
    }

    /// A boolean column (an integer on SQLite, read as such so every SQLite connection type
    /// decodes it alike).
    pub fn bool(&self, col: &str) -> SqlResult<bool> {
        match self.kind {
            Kind::Postgres => self.get(col),
            Kind::Sqlite => Ok(self.i64(col)? != 0),
        }
    }

    /// A byte-string column.
    pub fn bytes(&self, col: &str) -> SqlResult<Vec<u8>> {
        by_origin!(self, col, bytes)
    }

    /// A timestamp column, always UTC.
    pub fn ts(&self, col: &str) -> SqlResult<DateTime<Utc>> {
        match self.kind {
            Kind::Postgres => self.get(col),
            Kind::Sqlite => parse_sqlite_ts(&self.text(col)?)
                .ok_or_else(|| SqlError::corrupt(self.op, format!("column {col}: bad timestamp"))),
        }
    }

    /// A nullable timestamp column.
    pub fn opt_ts(&self, col: &str) -> SqlResult<Option<DateTime<Utc>>> {
        match self.kind {
            Kind::Postgres => self.get(col),
            Kind::Sqlite => match self.opt_text(col)? {
                None => Ok(None),
                Some(s) => parse_sqlite_ts(&s).map(Some).ok_or_else(|| {
                    SqlError::corrupt(self.op, format!("column {col}: bad timestamp"))
                }),
            },
        }
    }

    /// A JSON column.
    pub fn json(&self, col: &str) -> SqlResult<JsonValue> {
        match self.kind {
            Kind::Postgres => self.get(col),
            Kind::Sqlite => {
                let s = self.text(col)?;
                serde_json::from_str(&s)
                    .map_err(|e| SqlError::corrupt(self.op, format!("column {col}: {e}")))
            }
        }
    }

    /// A JSON column that must hold an object.
    pub fn json_object(&self, col: &str) -> SqlResult<JsonObject> {
        match self.json(col)? {
            JsonValue::Object(m) => Ok(m),
            other => Err(SqlError::corrupt(
                self.op,
                format!("column {col} holds {other}, not an object"),
            )),
        }
    }

    /// A text column holding JSON (kept as text on both databases to preserve key order).
    pub fn json_text_object(&self, col: &str) -> SqlResult<JsonObject> {
        let s: String = match self.kind {
            Kind::Sqlite => self.text(col)?,
            // A `JSON` column reads as its verbatim text.
            Kind::Postgres => self.text(col)?,
        };
        serde_json::from_str(&s)
            .map_err(|e| SqlError::corrupt(self.op, format!("column {col}: {e}")))
    }
}

/// Parses SQLite's stored text; a value without an offset is read as UTC (spec §0.1).
pub fn parse_sqlite_ts(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(n) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(n.and_utc());
        }
    }
    None
}

/// A statement under construction: text plus the values its `$n` placeholders refer to.
#[derive(Debug, Default)]
pub struct Sql {
    text: String,
    vals: Vec<Value>,
}

impl Sql {
    /// Starts a statement.
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            vals: Vec::new(),
        }
    }

    /// Appends text.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Binds a value and returns its placeholder.
    pub fn bind(&mut self, v: Value) -> String {
        self.vals.push(v);
        format!("${}", self.vals.len())
    }

    /// Binds a value and appends its placeholder.
    pub fn val(&mut self, v: Value) -> &mut Self {
        let p = self.bind(v);
        self.text.push_str(&p);
        self
    }

    /// Puts text before the statement (`EXPLAIN QUERY PLAN `, for tests of query plans).
    #[cfg(test)]
    pub fn prepend(&mut self, text: &str) -> &mut Self {
        self.text.insert_str(0, text);
        self
    }

    /// The finished statement.
    pub fn build(self, kind: Kind) -> Statement {
        kind.stmt(self.text, self.vals)
    }
}

/// The owner predicate of a scope (spec §0.2): nothing for `Unscoped`, `col = $n` for a user,
/// so owner-less rows stay invisible to users.
pub fn scope_filter(q: &mut Sql, scope: &waymark_domain::UserScope, col: &str) {
    if let waymark_domain::UserScope::User(u) = scope {
        q.push(&format!(" AND {col} = "));
        q.val(text(u.as_str()));
    }
}
