//! LangGraph's PostgreSQL checkpoint layout (`langgraph-checkpoint-postgres` 3.2.x, spec §4).
//!
//! [`LangGraphPostgresStore`] works on the four tables of `PostgresSaver` and behaves like it:
//! primitive channel values inline in the `checkpoint` jsonb, everything else in
//! `checkpoint_blobs` keyed by `(channel, version)` and written only for channels in
//! `new_versions`; reads join blobs through the checkpoint's `channel_versions`; `put` updates
//! only `checkpoint` and `metadata` of an existing row; writes upsert only when every channel
//! is special and then keep their `task_path`; metadata filters use jsonb containment; a
//! top-level `"writes"` metadata key is not stored (`get_serializable_checkpoint_metadata`).
//!
//! Beyond Python, every operation runs in one transaction (blobs before the checkpoint row),
//! and the optional operations follow spec §6.3. Table names are unqualified: point the
//! connection's `search_path` at the schema to use.

mod jsonb;
pub mod setup;

use std::collections::HashSet;
use std::str::FromStr;

use async_trait::async_trait;
use indexmap::IndexMap;
use sea_orm::sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sea_orm::sqlx::{self, Arguments, AssertSqlSafe, Postgres, Row, Transaction};
use serde_json::value::RawValue;
use waymark_domain::checkpoint::prune::{PruneRow, TASKS_CHANNEL, plan_keep_latest};
use waymark_domain::checkpoint::{
    ChannelVersion, Checkpoint, CheckpointCapabilities, CheckpointMetadata, CheckpointPut,
    CheckpointQuery, CheckpointRef, CheckpointRepository, CheckpointSummary, CheckpointTuple,
    PendingWrite, PruneStrategy, TypedValue, WriteBatch, sort_pending_writes,
};
use waymark_domain::error::{DomainError, DomainResult};
use waymark_domain::ids::{
    ChannelName, CheckpointId, CheckpointNamespace, RunId, TaskId, ThreadId,
};
use waymark_domain::json::{JsonObject, JsonValue};

use self::jsonb::{
    encode, extra_to_json, has_nul, inline_json, typed_from_inline, version_from_json,
    version_to_json,
};
use crate::codec::pyjson::{PyJsonStyle, to_python_json};

/// Options for opening the store.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresLayoutOptions {
    /// Open even when `checkpoint_migrations` records a version above the ones this code
    /// knows (a newer LangGraph changed the schema). Off by default.
    pub allow_newer_schema: bool,
}

/// A checkpoint store over LangGraph's PostgreSQL tables.
#[derive(Debug, Clone)]
pub struct LangGraphPostgresStore {
    pool: PgPool,
}

fn db_err(operation: &'static str) -> impl Fn(sqlx::Error) -> DomainError {
    move |e| DomainError::storage(format!("langgraph_postgres.{operation}"), e)
}

fn corrupt(operation: &'static str, why: impl std::fmt::Display) -> DomainError {
    DomainError::storage(format!("langgraph_postgres.{operation}"), why)
}

/// The piece size of a large channel blob written to `checkpoint_blobs` (see `put_in`).
const BLOB_PIECE_BYTES: usize = 8 << 20;

const SELECT_TUPLES: &str = "SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, \
    c.parent_checkpoint_id, c.checkpoint::text AS checkpoint, c.metadata::text AS metadata, \
    b.channels AS blob_channels, b.types AS blob_types, b.blobs AS blob_values, \
    w.task_ids, w.task_paths, w.idxs, w.channels AS write_channels, w.types AS write_types, \
    w.blobs AS write_values \
    FROM checkpoints c \
    LEFT JOIN LATERAL ( \
      SELECT array_agg(bl.channel ORDER BY v.ord) AS channels, \
             array_agg(bl.type ORDER BY v.ord) AS types, \
             array_agg(coalesce(bl.blob, ''::bytea) ORDER BY v.ord) AS blobs \
      FROM jsonb_each_text(c.checkpoint -> 'channel_versions') WITH ORDINALITY AS v(key, value, ord) \
      JOIN checkpoint_blobs bl ON bl.thread_id = c.thread_id \
        AND bl.checkpoint_ns = c.checkpoint_ns AND bl.channel = v.key AND bl.version = v.value \
      WHERE bl.type <> 'empty') b ON true \
    LEFT JOIN LATERAL ( \
      SELECT array_agg(cw.task_id) AS task_ids, array_agg(cw.task_path) AS task_paths, \
             array_agg(cw.idx) AS idxs, array_agg(cw.channel) AS channels, \
             array_agg(coalesce(cw.type, '')) AS types, array_agg(cw.blob) AS blobs \
      FROM checkpoint_writes cw WHERE cw.thread_id = c.thread_id \
        AND cw.checkpoint_ns = c.checkpoint_ns AND cw.checkpoint_id = c.checkpoint_id) w ON true";

impl LangGraphPostgresStore {
    /// Connects to `url` (its `options=-csearch_path=...` chooses the schema) and runs setup.
    pub async fn connect(url: &str) -> DomainResult<Self> {
        let options = PgConnectOptions::from_str(url).map_err(db_err("connect"))?;
        Self::connect_with(options, PostgresLayoutOptions::default()).await
    }

    /// Connects for reading only: sessions start with `default_transaction_read_only = on`
    /// and no setup runs; the database must hold LangGraph's tables at the migration version
    /// this code knows (else an error saying how to set it up).
    pub async fn connect_read_only(url: &str) -> DomainResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(db_err("connect"))?
            .options([("default_transaction_read_only", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(db_err("connect"))?;
        if let Err(e) = setup::check(&pool).await {
            pool.close().await;
            return Err(e);
        }
        Ok(Self { pool })
    }

    /// Connects with explicit connection options and runs setup.
    pub async fn connect_with(
        connect: PgConnectOptions,
        options: PostgresLayoutOptions,
    ) -> DomainResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(connect)
            .await
            .map_err(db_err("connect"))?;
        Self::from_pool_with(pool, options).await
    }

    /// Uses an existing pool and runs setup.
    pub async fn from_pool(pool: PgPool) -> DomainResult<Self> {
        Self::from_pool_with(pool, PostgresLayoutOptions::default()).await
    }

    /// Uses an existing pool and runs setup with `options`.
    pub async fn from_pool_with(
        pool: PgPool,
        options: PostgresLayoutOptions,
    ) -> DomainResult<Self> {
        setup::run(&pool, options.allow_newer_schema).await?;
        Ok(Self { pool })
    }

    /// Uses the pool behind a SeaORM PostgreSQL connection and runs setup.
    pub async fn from_sea_orm(db: &sea_orm::DatabaseConnection) -> DomainResult<Self> {
        Self::from_pool(db.get_postgres_connection_pool().clone()).await
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn put_in(
        tx: &mut Transaction<'static, Postgres>,
        put: &CheckpointPut,
    ) -> DomainResult<CheckpointRef> {
        let cp = &put.checkpoint;
        let mut inline = JsonObject::new();
        let mut blob_set = Vec::new();
        for (channel, value) in &cp.channel_values {
            match inline_json(value) {
                Some(json) => {
                    inline.insert(channel.to_string(), json);
                }
                None => blob_set.push((channel, value)),
            }
        }
        let mut doc = JsonObject::new();
        doc.insert("v".into(), JsonValue::from(cp.v));
        doc.insert("ts".into(), JsonValue::from(cp.ts.as_str()));
        doc.insert("id".into(), JsonValue::from(cp.id.as_str()));
        doc.insert("channel_values".into(), JsonValue::Object(inline));
        let versions = |v: &IndexMap<ChannelName, ChannelVersion>| -> DomainResult<JsonValue> {
            let mut m = JsonObject::new();
            for (k, version) in v {
                m.insert(k.to_string(), version_to_json(version)?);
            }
            Ok(JsonValue::Object(m))
        };
        doc.insert("channel_versions".into(), versions(&cp.channel_versions)?);
        let mut seen = JsonObject::new();
        for (node, v) in &cp.versions_seen {
            seen.insert(node.clone(), versions(v)?);
        }
        doc.insert("versions_seen".into(), JsonValue::Object(seen));
        doc.insert(
            "updated_channels".into(),
            match &cp.updated_channels {
                None => JsonValue::Null,
                Some(list) => {
                    JsonValue::Array(list.iter().map(|c| JsonValue::from(c.as_str())).collect())
                }
            },
        );
        for (key, value) in &cp.extra {
            doc.insert(key.clone(), extra_to_json(key, value)?);
        }
        let doc = JsonValue::Object(doc);
        if has_nul(&doc) {
            return Err(DomainError::invalid(
                "checkpoint",
                "PostgreSQL jsonb cannot hold U+0000 (in ts or an extra key)",
            ));
        }
        // `get_serializable_checkpoint_metadata`: PostgresSaver never stores a top-level
        // "writes" (spec `langgraph-compat.md` §1.3 step 3); the other layouts keep it.
        let mut metadata = put.metadata.0.clone();
        metadata.shift_remove("writes");
        let metadata = JsonValue::Object(metadata);
        if has_nul(&metadata) {
            return Err(DomainError::invalid(
                "metadata",
                "PostgreSQL jsonb cannot hold U+0000; strip it from metadata strings",
            ));
        }
        for (channel, value) in blob_set {
            let Some(version) = put.new_versions.get(channel) else {
                continue;
            };
            let version = String::from_utf8_lossy(&to_python_json(
                &version_to_json(version)?,
                PyJsonStyle::Metadata,
            ))
            .into_owned();
            // A large blob goes in pieces (the row with the first, then appends), so sqlx's
            // write buffer, which a connection keeps at its largest size, never holds more
            // than one piece (issue 11: a body costs at most about twice its size).
            let mut pieces = value.bytes().chunks(BLOB_PIECE_BYTES);
            let first = pieces.next().unwrap_or(&[]);
            let inserted = sqlx::query(
                "INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob) \
                 VALUES ($1, $2, $3, ($4::jsonb #>> '{}'), $5, $6) \
                 ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING",
            )
            .bind(put.thread_id.as_str())
            .bind(put.namespace.as_str())
            .bind(channel.as_str())
            .bind(&version)
            .bind(value.type_tag())
            .bind(first)
            .execute(&mut **tx)
            .await
            .map_err(db_err("put"))?
            .rows_affected()
                > 0;
            for piece in pieces.take_while(|_| inserted) {
                sqlx::query(
                    "UPDATE checkpoint_blobs SET blob = blob || $5 WHERE thread_id = $1 \
                     AND checkpoint_ns = $2 AND channel = $3 AND version = ($4::jsonb #>> '{}')",
                )
                .bind(put.thread_id.as_str())
                .bind(put.namespace.as_str())
                .bind(channel.as_str())
                .bind(&version)
                .bind(piece)
                .execute(&mut **tx)
                .await
                .map_err(db_err("put"))?;
            }
        }
        let doc = to_python_json(&doc, PyJsonStyle::Metadata);
        let metadata = to_python_json(&metadata, PyJsonStyle::Metadata);
        sqlx::query(
            "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, \
             parent_checkpoint_id, checkpoint, metadata) \
             VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb) \
             ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) \
             DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata",
        )
        .bind(put.thread_id.as_str())
        .bind(put.namespace.as_str())
        .bind(cp.id.as_str())
        .bind(put.parent_id.as_ref().map(CheckpointId::as_str))
        .bind(String::from_utf8_lossy(&doc).into_owned())
        .bind(String::from_utf8_lossy(&metadata).into_owned())
        .execute(&mut **tx)
        .await
        .map_err(db_err("put"))?;
        Ok(CheckpointRef {
            thread_id: put.thread_id.clone(),
            namespace: put.namespace.clone(),
            checkpoint_id: cp.id.clone(),
        })
    }

    /// Runs a tuple query and assembles the tuples (with legacy pending sends).
    async fn fetch_tuples(
        &self,
        sql: String,
        args: PgArguments,
        operation: &'static str,
    ) -> DomainResult<Vec<CheckpointTuple>> {
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(db_err(operation))?;
        let rows = sqlx::query_with(AssertSqlSafe(sql), args)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err(operation))?;
        let mut tuples = rows
            .iter()
            .map(tuple_from_row)
            .collect::<DomainResult<Vec<_>>>()?;
        let legacy: Vec<usize> = tuples
            .iter()
            .enumerate()
            .filter(|(_, t)| t.checkpoint.v < 4 && t.parent_id.is_some())
            .map(|(i, _)| i)
            .collect();
        if !legacy.is_empty() {
            let threads: Vec<&str> = legacy
                .iter()
                .map(|&i| tuples[i].thread_id.as_str())
                .collect();
            let parents: Vec<&str> = legacy
                .iter()
                .map(|&i| {
                    tuples[i]
                        .parent_id
                        .as_ref()
                        .map(CheckpointId::as_str)
                        .unwrap_or("")
                })
                .collect();
            let sends = sqlx::query(
                "SELECT cw.thread_id, cw.checkpoint_id, coalesce(cw.type, '') AS type, cw.blob \
                 FROM checkpoint_writes cw \
                 WHERE cw.channel = $3 AND (cw.thread_id, cw.checkpoint_id) IN \
                   (SELECT * FROM unnest($1::text[], $2::text[])) \
                 ORDER BY cw.task_path, cw.task_id, cw.idx",
            )
            .bind(&threads)
            .bind(&parents)
            .bind(TASKS_CHANNEL)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err(operation))?;
            for &i in &legacy {
                let tuple = &mut tuples[i];
                let parent = tuple.parent_id.as_ref().map(CheckpointId::as_str);
                let mut values = Vec::new();
                for row in &sends {
                    let thread: String = row.try_get("thread_id").map_err(db_err(operation))?;
                    let id: String = row.try_get("checkpoint_id").map_err(db_err(operation))?;
                    if thread == tuple.thread_id.as_str() && Some(id.as_str()) == parent {
                        let tag: String = row.try_get("type").map_err(db_err(operation))?;
                        let blob: Vec<u8> = row.try_get("blob").map_err(db_err(operation))?;
                        values.push(TypedValue::new(tag, blob).map_err(|e| corrupt(operation, e))?);
                    }
                }
                if !values.is_empty() {
                    migrate_pending_sends(&mut tuple.checkpoint, &values)?;
                }
            }
        }
        tx.commit().await.map_err(db_err(operation))?;
        Ok(tuples)
    }

    async fn delete_threads_in(
        tx: &mut Transaction<'static, Postgres>,
        thread_ids: &[&str],
        operation: &'static str,
    ) -> DomainResult<()> {
        for sql in [
            "DELETE FROM checkpoints WHERE thread_id = ANY($1)",
            "DELETE FROM checkpoint_blobs WHERE thread_id = ANY($1)",
            "DELETE FROM checkpoint_writes WHERE thread_id = ANY($1)",
        ] {
            sqlx::query(sql)
                .bind(thread_ids)
                .execute(&mut **tx)
                .await
                .map_err(db_err(operation))?;
        }
        Ok(())
    }

    async fn prune_keep_latest(&self, thread_id: &str) -> DomainResult<()> {
        let e = db_err("prune");
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .await
            .map_err(&e)?;
        let rows = sqlx::query(
            "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint->>'v' AS v, \
             metadata->'parents'->>'' AS root_parent FROM checkpoints WHERE thread_id = $1",
        )
        .bind(thread_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(&e)?;
        let mut prune_rows = Vec::with_capacity(rows.len());
        for row in &rows {
            let v: Option<String> = row.try_get("v").map_err(&e)?;
            prune_rows.push(PruneRow {
                namespace: row.try_get("checkpoint_ns").map_err(&e)?,
                id: row.try_get("checkpoint_id").map_err(&e)?,
                parent_id: row
                    .try_get::<Option<String>, _>("parent_checkpoint_id")
                    .map_err(&e)?
                    .filter(|p| !p.is_empty()),
                format_version: v.and_then(|v| v.parse().ok()),
                root_parent: row.try_get("root_parent").map_err(&e)?,
            });
        }
        let task_rows = sqlx::query(
            "SELECT DISTINCT checkpoint_ns, checkpoint_id FROM checkpoint_writes \
             WHERE thread_id = $1 AND channel = $2",
        )
        .bind(thread_id)
        .bind(TASKS_CHANNEL)
        .fetch_all(&mut *tx)
        .await
        .map_err(&e)?;
        let sends: HashSet<(String, String)> = task_rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(&e)?;
        let candidates: Vec<_> = prune_rows.iter().map(PruneRow::as_candidate).collect();
        let plan = plan_keep_latest(&candidates, |ns, id| {
            sends.contains(&(ns.to_owned(), id.to_owned()))
        });
        if !plan.drop_namespaces.is_empty() {
            let drop_namespaces: Vec<&str> = plan.drop_namespaces.iter().copied().collect();
            for sql in [
                "DELETE FROM checkpoint_writes WHERE thread_id = $1 AND checkpoint_ns = ANY($2)",
                "DELETE FROM checkpoints WHERE thread_id = $1 AND checkpoint_ns = ANY($2)",
                "DELETE FROM checkpoint_blobs WHERE thread_id = $1 AND checkpoint_ns = ANY($2)",
            ] {
                sqlx::query(sql)
                    .bind(thread_id)
                    .bind(&drop_namespaces)
                    .execute(&mut *tx)
                    .await
                    .map_err(&e)?;
            }
        }
        let split = |pairs: &mut dyn Iterator<Item = &(&str, &str)>| -> (Vec<String>, Vec<String>) {
            pairs
                .map(|(ns, id)| (ns.to_string(), id.to_string()))
                .unzip()
        };
        if !plan.drop_checkpoints.is_empty() {
            let (nss, ids) = split(&mut plan.drop_checkpoints.iter());
            sqlx::query(
                "DELETE FROM checkpoint_writes WHERE thread_id = $1 AND (checkpoint_ns, checkpoint_id) \
                 IN (SELECT * FROM unnest($2::text[], $3::text[]))",
            )
            .bind(thread_id)
            .bind(&nss)
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .map_err(&e)?;
            // The (channel, version) pairs the deleted checkpoints referenced: the only blobs
            // that may have become garbage (what Python's prune collects too).
            let freed = sqlx::query(
                "WITH deleted AS (DELETE FROM checkpoints WHERE thread_id = $1 AND \
                 (checkpoint_ns, checkpoint_id) IN (SELECT * FROM unnest($2::text[], $3::text[])) \
                 RETURNING checkpoint_ns, checkpoint -> 'channel_versions' AS versions) \
                 SELECT DISTINCT d.checkpoint_ns, v.key, v.value FROM deleted d \
                 CROSS JOIN LATERAL jsonb_each_text(d.versions) AS v",
            )
            .bind(thread_id)
            .bind(&nss)
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await
            .map_err(&e)?;
            let mut f_ns = Vec::with_capacity(freed.len());
            let mut f_channel = Vec::with_capacity(freed.len());
            let mut f_version = Vec::with_capacity(freed.len());
            for row in &freed {
                f_ns.push(row.try_get::<String, _>(0).map_err(&e)?);
                f_channel.push(row.try_get::<String, _>(1).map_err(&e)?);
                f_version.push(row.try_get::<String, _>(2).map_err(&e)?);
            }
            if !freed.is_empty() {
                sqlx::query(
                    "DELETE FROM checkpoint_blobs bl \
                     USING unnest($2::text[], $3::text[], $4::text[]) AS f(ns, channel, version) \
                     WHERE bl.thread_id = $1 AND bl.checkpoint_ns = f.ns \
                       AND bl.channel = f.channel AND bl.version = f.version \
                       AND NOT EXISTS (SELECT 1 FROM checkpoints c \
                         CROSS JOIN LATERAL jsonb_each_text(c.checkpoint -> 'channel_versions') v \
                         WHERE c.thread_id = $1 AND c.checkpoint_ns = f.ns \
                           AND v.key = f.channel AND v.value = f.version)",
                )
                .bind(thread_id)
                .bind(&f_ns)
                .bind(&f_channel)
                .bind(&f_version)
                .execute(&mut *tx)
                .await
                .map_err(&e)?;
            }
        }
        // Python nulls every kept parent pointer that leaves the kept set, dangling ones
        // included.
        if !plan.orphaned.is_empty() || !plan.dangling.is_empty() {
            let (nss, ids) = split(&mut plan.orphaned.iter().chain(&plan.dangling));
            sqlx::query(
                "UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = $1 AND \
                 (checkpoint_ns, checkpoint_id) IN (SELECT * FROM unnest($2::text[], $3::text[]))",
            )
            .bind(thread_id)
            .bind(&nss)
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .map_err(&e)?;
        }
        tx.commit().await.map_err(&e)
    }
}

/// `_migrate_pending_sends` of the Python saver: a legacy (`v` < 4) checkpoint gets its
/// parent's `Send` packets as the `__pregel_tasks` value, at the newest existing version.
fn migrate_pending_sends(checkpoint: &mut Checkpoint, sends: &[TypedValue]) -> DomainResult<()> {
    let mut bytes = Vec::new();
    rmp::encode::write_array_len(&mut bytes, sends.len() as u32).expect("writing to a Vec");
    for value in sends {
        match value.type_tag() {
            TypedValue::MSGPACK => bytes.extend_from_slice(value.bytes()),
            TypedValue::NULL => bytes.push(0xc0),
            TypedValue::BYTES | TypedValue::BYTEARRAY => {
                rmp::encode::write_bin(&mut bytes, value.bytes()).expect("writing to a Vec")
            }
            other => {
                return Err(corrupt(
                    "read",
                    format!("a pending send serialized as {other:?} cannot be combined"),
                ));
            }
        }
    }
    let tasks = ChannelName::parse(TASKS_CHANNEL).expect("a valid channel name");
    let version = checkpoint
        .channel_versions
        .values()
        .max_by(|a, b| {
            a.cmp_prefix(b)
                .then_with(|| a.as_key_text().cmp(&b.as_key_text()))
        })
        .cloned()
        .unwrap_or_else(|| {
            let random = (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64;
            ChannelVersion::next(None, random)
        });
    checkpoint
        .channel_values
        .insert(tasks.clone(), TypedValue::msgpack(bytes));
    checkpoint.channel_versions.insert(tasks, version);
    Ok(())
}

fn tuple_from_row(row: &PgRow) -> DomainResult<CheckpointTuple> {
    let e = db_err("read");
    let thread_id: String = row.try_get("thread_id").map_err(&e)?;
    let namespace: String = row.try_get("checkpoint_ns").map_err(&e)?;
    let checkpoint_id: String = row.try_get("checkpoint_id").map_err(&e)?;
    let parent: Option<String> = row.try_get("parent_checkpoint_id").map_err(&e)?;
    let doc: String = row.try_get("checkpoint").map_err(&e)?;
    let metadata: String = row.try_get("metadata").map_err(&e)?;
    let mut checkpoint = checkpoint_from_jsonb(&doc)
        .map_err(|why| corrupt("read", format!("checkpoint {checkpoint_id}: {why}")))?;
    let blob_channels: Option<Vec<String>> = row.try_get("blob_channels").map_err(&e)?;
    let blob_types: Option<Vec<String>> = row.try_get("blob_types").map_err(&e)?;
    let blob_values: Option<Vec<Vec<u8>>> = row.try_get("blob_values").map_err(&e)?;
    for ((channel, tag), bytes) in blob_channels
        .unwrap_or_default()
        .into_iter()
        .zip(blob_types.unwrap_or_default())
        .zip(blob_values.unwrap_or_default())
    {
        let channel = ChannelName::parse(channel).map_err(|err| corrupt("read", err))?;
        let value = TypedValue::new(tag, bytes).map_err(|err| corrupt("read", err))?;
        checkpoint.channel_values.insert(channel, value);
    }
    let task_ids: Option<Vec<String>> = row.try_get("task_ids").map_err(&e)?;
    let task_paths: Option<Vec<String>> = row.try_get("task_paths").map_err(&e)?;
    let idxs: Option<Vec<i32>> = row.try_get("idxs").map_err(&e)?;
    let channels: Option<Vec<String>> = row.try_get("write_channels").map_err(&e)?;
    let types: Option<Vec<String>> = row.try_get("write_types").map_err(&e)?;
    let values: Option<Vec<Vec<u8>>> = row.try_get("write_values").map_err(&e)?;
    let mut pending_writes = Vec::new();
    if let (
        Some(task_ids),
        Some(task_paths),
        Some(idxs),
        Some(channels),
        Some(types),
        Some(values),
    ) = (task_ids, task_paths, idxs, channels, types, values)
    {
        for (((((task_id, task_path), idx), channel), tag), bytes) in task_ids
            .into_iter()
            .zip(task_paths)
            .zip(idxs)
            .zip(channels)
            .zip(types)
            .zip(values)
        {
            pending_writes.push(PendingWrite {
                task_id: TaskId::parse(task_id).map_err(|err| corrupt("read", err))?,
                task_path,
                channel: ChannelName::parse(channel).map_err(|err| corrupt("read", err))?,
                value: TypedValue::new(tag, bytes).map_err(|err| corrupt("read", err))?,
                idx: i64::from(idx),
            });
        }
    }
    sort_pending_writes(&mut pending_writes);
    let metadata: CheckpointMetadata = serde_json::from_str(&metadata)
        .map_err(|err| corrupt("read", format!("metadata of {checkpoint_id}: {err}")))?;
    Ok(CheckpointTuple {
        thread_id: ThreadId::parse(thread_id).map_err(|err| corrupt("read", err))?,
        namespace: CheckpointNamespace::parse(namespace).map_err(|err| corrupt("read", err))?,
        checkpoint,
        metadata,
        parent_id: parent
            .filter(|p| !p.is_empty())
            .map(CheckpointId::parse)
            .transpose()
            .map_err(|err| corrupt("read", err))?,
        pending_writes,
    })
}

/// The checkpoint part of a row: the jsonb with its inline channel values.
fn checkpoint_from_jsonb(text: &str) -> DomainResult<Checkpoint> {
    let bad = |why: String| corrupt("read", why);
    let top: IndexMap<String, Box<RawValue>> =
        serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let mut v = None;
    let mut id = None;
    let mut ts = String::new();
    let mut channel_values = IndexMap::new();
    let mut channel_versions = IndexMap::new();
    let mut versions_seen = IndexMap::new();
    let mut updated_channels = None;
    let mut extra = IndexMap::new();
    let versions = |raw: &RawValue| -> DomainResult<IndexMap<ChannelName, ChannelVersion>> {
        let map: IndexMap<String, JsonValue> =
            serde_json::from_str(raw.get()).map_err(|e| bad(e.to_string()))?;
        map.into_iter()
            .map(|(k, v)| {
                Ok((
                    ChannelName::parse(k).map_err(|e| bad(e.to_string()))?,
                    version_from_json(&v)?,
                ))
            })
            .collect()
    };
    for (key, raw) in top {
        match key.as_str() {
            "v" => {
                v = Some(
                    serde_json::from_str::<i64>(raw.get()).map_err(|e| bad(format!("v: {e}")))?,
                )
            }
            "id" => {
                let text: String =
                    serde_json::from_str(raw.get()).map_err(|e| bad(format!("id: {e}")))?;
                id = Some(CheckpointId::parse(text).map_err(|e| bad(e.to_string()))?);
            }
            "ts" => ts = serde_json::from_str(raw.get()).map_err(|e| bad(format!("ts: {e}")))?,
            "channel_values" => {
                let map: IndexMap<String, Box<RawValue>> =
                    serde_json::from_str(raw.get()).map_err(|e| bad(e.to_string()))?;
                for (k, value) in map {
                    channel_values.insert(
                        ChannelName::parse(k).map_err(|e| bad(e.to_string()))?,
                        typed_from_inline(&value)?,
                    );
                }
            }
            "channel_versions" => channel_versions = versions(&raw)?,
            "versions_seen" => {
                let map: IndexMap<String, Box<RawValue>> =
                    serde_json::from_str(raw.get()).map_err(|e| bad(e.to_string()))?;
                for (node, inner) in map {
                    versions_seen.insert(node, versions(&inner)?);
                }
            }
            "updated_channels" => {
                let list: Option<Vec<String>> =
                    serde_json::from_str(raw.get()).map_err(|e| bad(e.to_string()))?;
                updated_channels = list
                    .map(|l| {
                        l.into_iter()
                            .map(|c| ChannelName::parse(c).map_err(|e| bad(e.to_string())))
                            .collect::<DomainResult<Vec<_>>>()
                    })
                    .transpose()?;
            }
            _ => {
                let value: JsonValue =
                    serde_json::from_str(raw.get()).map_err(|e| bad(e.to_string()))?;
                let typed = if value.is_null() {
                    TypedValue::null()
                } else {
                    TypedValue::msgpack(encode(&jsonb::json_to_msgpack(&value)))
                };
                extra.insert(key, typed);
            }
        }
    }
    Ok(Checkpoint {
        v: v.ok_or_else(|| bad("the checkpoint has no v".into()))?,
        id: id.ok_or_else(|| bad("the checkpoint has no id".into()))?,
        ts,
        channel_values,
        channel_versions,
        versions_seen,
        updated_channels,
        extra,
    })
}

fn add<'q, T>(args: &mut PgArguments, value: T) -> DomainResult<usize>
where
    T: 'q + sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres>,
{
    args.add(value)
        .map_err(|e| DomainError::storage("langgraph_postgres.bind", e))?;
    Ok(args.len())
}

#[async_trait]
impl CheckpointRepository for LangGraphPostgresStore {
    /// `PostgresSaver`'s containment filters; jsonb cannot hold U+0000.
    fn capabilities(&self) -> CheckpointCapabilities {
        CheckpointCapabilities {
            refuses_nul_in_filters: true,
            ..CheckpointCapabilities::containment()
        }
    }

    async fn put(&self, put: CheckpointPut) -> DomainResult<CheckpointRef> {
        let mut tx = self.pool.begin().await.map_err(db_err("put"))?;
        let reference = Self::put_in(&mut tx, &put).await?;
        tx.commit().await.map_err(db_err("put"))?;
        Ok(reference)
    }

    async fn put_many(&self, puts: Vec<CheckpointPut>) -> DomainResult<Vec<CheckpointRef>> {
        if puts.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(db_err("put_many"))?;
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
            "INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, \
             task_path, idx, channel, type, blob) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET \
             channel = EXCLUDED.channel, type = EXCLUDED.type, blob = EXCLUDED.blob"
        } else {
            "INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, \
             task_path, idx, channel, type, blob) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO NOTHING"
        };
        let mut rows = Vec::with_capacity(batch.writes.len());
        for write in batch.to_pending_writes() {
            let idx = i32::try_from(write.idx).map_err(|_| {
                DomainError::invalid("idx", "a write index must fit a 32-bit integer")
            })?;
            rows.push((write, idx));
        }
        let mut tx = self.pool.begin().await.map_err(db_err("put_writes"))?;
        for (write, idx) in rows {
            sqlx::query(sql)
                .bind(batch.target.thread_id.as_str())
                .bind(batch.target.namespace.as_str())
                .bind(batch.target.checkpoint_id.as_str())
                .bind(write.task_id.as_str())
                .bind(write.task_path.as_str())
                .bind(idx)
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
        let mut args = PgArguments::default();
        add(&mut args, thread_id.as_str().to_owned())?;
        add(&mut args, namespace.as_str().to_owned())?;
        let sql = match checkpoint_id {
            Some(id) => {
                add(&mut args, id.into_inner())?;
                format!(
                    "{SELECT_TUPLES} WHERE c.thread_id = $1 AND c.checkpoint_ns = $2 \
                     AND c.checkpoint_id = $3"
                )
            }
            None => format!(
                "{SELECT_TUPLES} WHERE c.thread_id = $1 AND c.checkpoint_ns = $2 \
                 ORDER BY c.checkpoint_id DESC LIMIT 1"
            ),
        };
        Ok(self
            .fetch_tuples(sql, args, "get_tuple")
            .await?
            .into_iter()
            .next())
    }

    async fn list(&self, query: &CheckpointQuery) -> DomainResult<Vec<CheckpointTuple>> {
        let mut args = PgArguments::default();
        let mut wheres = Vec::new();
        if let Some(thread) = &query.thread_id {
            let n = add(&mut args, thread.to_string())?;
            wheres.push(format!("c.thread_id = ${n}"));
        }
        if let Some(ns) = &query.namespace {
            let n = add(&mut args, ns.to_string())?;
            wheres.push(format!("c.checkpoint_ns = ${n}"));
        }
        if let Some(id) = &query.checkpoint_id {
            let n = add(&mut args, id.to_string())?;
            wheres.push(format!("c.checkpoint_id = ${n}"));
        }
        self.capabilities().check_filter(&query.filter)?;
        if !query.filter.is_empty() {
            let filter = JsonValue::Object(query.filter.clone());
            let n = add(&mut args, filter.to_string())?;
            wheres.push(format!("c.metadata @> ${n}::jsonb"));
        }
        if let Some(before) = &query.before {
            let n = add(&mut args, before.to_string())?;
            wheres.push(format!("c.checkpoint_id < ${n}"));
        }
        let mut sql = SELECT_TUPLES.to_owned();
        if !wheres.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&wheres.join(" AND "));
        }
        sql.push_str(" ORDER BY c.checkpoint_id DESC");
        if let Some(limit) = query.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        self.fetch_tuples(sql, args, "list").await
    }

    async fn delete_thread(&self, thread_id: &ThreadId) -> DomainResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_err("delete_thread"))?;
        Self::delete_threads_in(&mut tx, &[thread_id.as_str()], "delete_thread").await?;
        tx.commit().await.map_err(db_err("delete_thread"))
    }

    async fn copy_thread(&self, source: &ThreadId, target: &ThreadId) -> DomainResult<()> {
        if source == target {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(db_err("copy_thread"))?;
        for sql in [
            "INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob) \
             SELECT $2, checkpoint_ns, channel, version, type, blob FROM checkpoint_blobs \
             WHERE thread_id = $1 ON CONFLICT DO NOTHING",
            "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, \
             parent_checkpoint_id, type, checkpoint, metadata) SELECT $2, checkpoint_ns, \
             checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata FROM checkpoints \
             WHERE thread_id = $1 ON CONFLICT DO NOTHING",
            "INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, \
             task_path, idx, channel, type, blob) SELECT $2, checkpoint_ns, checkpoint_id, \
             task_id, task_path, idx, channel, type, blob FROM checkpoint_writes \
             WHERE thread_id = $1 ON CONFLICT DO NOTHING",
        ] {
            sqlx::query(sql)
                .bind(source.as_str())
                .bind(target.as_str())
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
        let ids: Vec<&str> = thread_ids.iter().map(ThreadId::as_str).collect();
        match strategy {
            PruneStrategy::Delete => {
                let mut tx = self.pool.begin().await.map_err(db_err("prune"))?;
                Self::delete_threads_in(&mut tx, &ids, "prune").await?;
                tx.commit().await.map_err(db_err("prune"))
            }
            PruneStrategy::KeepLatest => {
                let delta: Option<String> = sqlx::query_scalar(
                    "SELECT thread_id FROM checkpoints WHERE thread_id = ANY($1) \
                     AND (metadata ? 'counters_since_delta_snapshot' \
                          OR metadata ? 'delta_writes_versioned') \
                     UNION SELECT c.thread_id FROM checkpoints c \
                     CROSS JOIN LATERAL jsonb_each(c.checkpoint -> 'channel_values') AS v \
                     WHERE c.thread_id = ANY($1) AND v.value = 'true'::jsonb AND EXISTS ( \
                       SELECT 1 FROM checkpoint_blobs b WHERE b.thread_id = c.thread_id \
                       AND b.checkpoint_ns = c.checkpoint_ns AND b.channel = v.key \
                       AND b.version = c.checkpoint -> 'channel_versions' ->> v.key) \
                     LIMIT 1",
                )
                .bind(&ids)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err("prune"))?;
                if let Some(thread) = delta {
                    return Err(DomainError::invalid(
                        "thread_ids",
                        format!(
                            "thread {thread} uses a DeltaChannel, whose history keep_latest \
                             would destroy (LangGraph refuses too); use strategy delete"
                        ),
                    ));
                }
                for thread in ids {
                    self.prune_keep_latest(thread).await?;
                }
                Ok(())
            }
        }
    }

    async fn delete_for_runs(&self, run_ids: Vec<RunId>) -> DomainResult<()> {
        if run_ids.is_empty() {
            return Ok(());
        }
        let runs: Vec<&str> = run_ids.iter().map(RunId::as_str).collect();
        let mut tx = self.pool.begin().await.map_err(db_err("delete_for_runs"))?;
        for sql in [
            "DELETE FROM checkpoint_writes cw USING checkpoints c \
             WHERE c.metadata -> 'run_id' IN (SELECT to_jsonb(r) FROM unnest($1::text[]) r) \
             AND cw.thread_id = c.thread_id AND cw.checkpoint_ns = c.checkpoint_ns \
             AND cw.checkpoint_id = c.checkpoint_id",
            "DELETE FROM checkpoints \
             WHERE metadata -> 'run_id' IN (SELECT to_jsonb(r) FROM unnest($1::text[]) r)",
        ] {
            sqlx::query(sql)
                .bind(&runs)
                .execute(&mut *tx)
                .await
                .map_err(db_err("delete_for_runs"))?;
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
        let ids: Vec<&str> = checkpoint_ids.iter().map(CheckpointId::as_str).collect();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db_err("delete_checkpoints"))?;
        sqlx::query(
            "DELETE FROM checkpoint_writes WHERE thread_id = $1 AND checkpoint_ns = $2 \
             AND checkpoint_id = ANY($3)",
        )
        .bind(thread_id.as_str())
        .bind(namespace.as_str())
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .map_err(db_err("delete_checkpoints"))?;
        let done = sqlx::query(
            "DELETE FROM checkpoints WHERE thread_id = $1 AND checkpoint_ns = $2 \
             AND checkpoint_id = ANY($3)",
        )
        .bind(thread_id.as_str())
        .bind(namespace.as_str())
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .map_err(db_err("delete_checkpoints"))?;
        tx.commit().await.map_err(db_err("delete_checkpoints"))?;
        Ok(done.rows_affected())
    }

    async fn summary(&self, thread_id: &ThreadId) -> DomainResult<CheckpointSummary> {
        let e = db_err("summary");
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM checkpoints WHERE thread_id = $1) AS checkpoints, \
               (SELECT count(DISTINCT checkpoint_ns) FROM checkpoints WHERE thread_id = $1) AS namespaces, \
               (SELECT min(checkpoint_id) FROM checkpoints WHERE thread_id = $1) AS oldest, \
               (SELECT max(checkpoint_id) FROM checkpoints WHERE thread_id = $1) AS newest, \
               (SELECT count(*) FROM checkpoint_writes WHERE thread_id = $1) AS writes, \
               ((SELECT coalesce(sum(octet_length((checkpoint -> 'channel_values')::text)), 0) \
                   FROM checkpoints WHERE thread_id = $1) \
                + (SELECT coalesce(sum(coalesce(octet_length(blob), 0) + octet_length(type)), 0) \
                   FROM checkpoint_blobs WHERE thread_id = $1) \
                + (SELECT coalesce(sum(octet_length(blob) + coalesce(octet_length(type), 0)), 0) \
                   FROM checkpoint_writes WHERE thread_id = $1))::int8 AS stored_bytes",
        )
        .bind(thread_id.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(&e)?;
        let id = |v: Option<String>| -> DomainResult<Option<CheckpointId>> {
            v.map(CheckpointId::parse)
                .transpose()
                .map_err(|err| corrupt("summary", err))
        };
        Ok(CheckpointSummary {
            checkpoints: row.try_get::<i64, _>("checkpoints").map_err(&e)? as u64,
            writes: row.try_get::<i64, _>("writes").map_err(&e)? as u64,
            namespaces: row.try_get::<i64, _>("namespaces").map_err(&e)? as u64,
            oldest: id(row.try_get("oldest").map_err(&e)?)?,
            newest: id(row.try_get("newest").map_err(&e)?)?,
            stored_bytes: Some(row.try_get::<i64, _>("stored_bytes").map_err(&e)? as u64),
        })
    }
}
