//! The key-value store over SQL. Items are keyed by the dot-joined namespace (ordered by code
//! point, as memory orders them) and key. Expiry is compared with the store's clock, never the
//! database's, so tests with a manual clock behave the same on every backend.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use waymark_domain::json::json_scalar_eq;
use waymark_domain::kv::{
    Item, ItemNamespace, ItemSearch, KeyValueRepository, NamespaceListing, expiry,
};
use waymark_domain::{DomainError, DomainResult, ItemKey, JsonObject, JsonValue};

use super::Shared;
use super::convert::misc::{ITEM_COLUMNS, item};
use super::db::{self, Kind, Row, Sql, int, text};
use super::error::SqlResult;
use super::scalar_filter::push_scalar_filter;
use waymark_domain::json::check_json_object;

/// The SQL [`KeyValueRepository`].
pub(crate) struct SqlKeyValueRepository {
    shared: Arc<Shared>,
}

/// Live rows only.
fn live(q: &mut Sql, kind: Kind, now: DateTime<Utc>) {
    q.push(" AND (expires_at IS NULL OR expires_at > ")
        .val(kind.ts(now))
        .push(")");
}

/// Rows whose namespace starts with the labels of `prefix` (labels hold no `.`, so that is the
/// joined text itself or the joined text followed by `.`; `/` is the code point after `.`).
fn prefix(q: &mut Sql, labels: &[String]) {
    if labels.is_empty() {
        return;
    }
    let joined = labels.join(".");
    q.push(" AND (namespace = ")
        .val(text(joined.clone()))
        .push(" OR (namespace >= ")
        .val(text(format!("{joined}.")))
        .push(" AND namespace < ")
        .val(text(format!("{joined}/")))
        .push("))");
}

/// True when every filter value is a scalar the SQL form handles (and, on SQLite, every key
/// can be written as a JSON path).
fn pushable(kind: Kind, filter: &JsonObject) -> bool {
    filter.iter().all(|(k, v)| {
        !matches!(v, JsonValue::Array(_) | JsonValue::Object(_))
            && (kind == Kind::Postgres
                || k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    })
}

impl SqlKeyValueRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[async_trait]
impl KeyValueRepository for SqlKeyValueRepository {
    async fn put(
        &self,
        namespace: &ItemNamespace,
        key: &ItemKey,
        value: JsonObject,
        ttl_seconds: Option<u64>,
    ) -> DomainResult<Item> {
        const OP: &str = "items.put";
        check_json_object("value", &value)?;
        let kind = self.shared.kind();
        let now = self.shared.now();
        let expires_at = expiry(now, ttl_seconds)?;
        // One statement: replacing a live item keeps its `created_at`, an expired one starts
        // over.
        let row = db::one(
            &self.shared.db.conn,
            kind.stmt(
                format!(
                    "INSERT INTO waymark_items (namespace, item_key, value, created_at, updated_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $4, $5) ON CONFLICT (namespace, item_key) DO UPDATE SET \
                     value = excluded.value, updated_at = excluded.updated_at, expires_at = excluded.expires_at, \
                     created_at = CASE WHEN waymark_items.expires_at IS NULL OR waymark_items.expires_at > $4 \
                     THEN waymark_items.created_at ELSE excluded.created_at END \
                     RETURNING {ITEM_COLUMNS}"
                ),
                vec![
                    text(namespace.joined()),
                    text(key.as_str()),
                    kind.json_obj(&value),
                    kind.ts(now),
                    kind.opt_ts(expires_at),
                ],
            ),
            OP,
        )
        .await?
        .ok_or_else(|| DomainError::storage(OP, "the upsert returned no row"))?;
        let mut stored = item(&Row::new(&row, kind, OP), OP)?;
        // Keep the caller's key order (PostgreSQL's jsonb sorts keys).
        stored.value = value;
        Ok(stored)
    }

    async fn get(&self, namespace: &ItemNamespace, key: &ItemKey) -> DomainResult<Option<Item>> {
        const OP: &str = "items.get";
        let kind = self.shared.kind();
        let mut q = Sql::new(&format!(
            "SELECT {ITEM_COLUMNS} FROM waymark_items WHERE namespace = "
        ));
        q.val(text(namespace.joined()))
            .push(" AND item_key = ")
            .val(text(key.as_str()));
        live(&mut q, kind, self.shared.now());
        match db::one(&self.shared.db.conn, q.build(kind), OP).await? {
            Some(r) => Ok(Some(item(&Row::new(&r, kind, OP), OP)?)),
            None => Ok(None),
        }
    }

    async fn delete(&self, namespace: &ItemNamespace, key: &ItemKey) -> DomainResult<bool> {
        const OP: &str = "items.delete";
        let kind = self.shared.kind();
        let now = self.shared.now();
        let row = db::one(
            &self.shared.db.conn,
            kind.stmt(
                "DELETE FROM waymark_items WHERE namespace = $1 AND item_key = $2 RETURNING expires_at",
                vec![text(namespace.joined()), text(key.as_str())],
            ),
            OP,
        )
        .await?;
        match row {
            None => Ok(false),
            Some(r) => Ok(Row::new(&r, kind, OP)
                .opt_ts("expires_at")?
                .is_none_or(|at| at > now)),
        }
    }

    async fn search(&self, query: &ItemSearch) -> DomainResult<Vec<Item>> {
        const OP: &str = "items.search";
        ItemNamespace::check_labels(&query.prefix)?;
        let kind = self.shared.kind();
        let now = self.shared.now();
        let mut q = Sql::new(&format!(
            "SELECT {ITEM_COLUMNS} FROM waymark_items WHERE 1 = 1"
        ));
        live(&mut q, kind, now);
        prefix(&mut q, &query.prefix);
        let in_sql = pushable(kind, &query.filter);
        if in_sql {
            push_scalar_filter(&mut q, kind, "value", &query.filter);
        }
        q.push(" ORDER BY namespace, item_key");
        if in_sql {
            q.push(" LIMIT ")
                .val(int(i64::from(query.limit.get())))
                .push(" OFFSET ")
                .val(int(i64::try_from(query.offset).unwrap_or(i64::MAX)));
        }
        let rows = db::all(&self.shared.db.conn, q.build(kind), OP).await?;
        let items = rows
            .iter()
            .map(|r| item(&Row::new(r, kind, OP), OP))
            .collect::<SqlResult<Vec<_>>>()?;
        if in_sql {
            return Ok(items);
        }
        // Array or object filter values: exact equality, checked here.
        let skip = usize::try_from(query.offset).unwrap_or(usize::MAX);
        Ok(items
            .into_iter()
            .filter(|i| {
                query.filter.iter().all(|(k, want)| {
                    i.value
                        .get(k)
                        .is_some_and(|have| json_scalar_eq(have, want))
                })
            })
            .skip(skip)
            .take(query.limit.as_usize())
            .collect())
    }

    async fn list_namespaces(&self, query: &NamespaceListing) -> DomainResult<Vec<ItemNamespace>> {
        const OP: &str = "items.list_namespaces";
        query.validate()?;
        let kind = self.shared.kind();
        let mut q = Sql::new("SELECT DISTINCT namespace FROM waymark_items WHERE 1 = 1");
        live(&mut q, kind, self.shared.now());
        prefix(&mut q, &query.prefix);
        let rows = db::all(&self.shared.db.conn, q.build(kind), OP).await?;
        let mut namespaces = Vec::with_capacity(rows.len());
        for row in &rows {
            let joined = Row::new(row, kind, OP).text("namespace")?;
            namespaces.push(
                ItemNamespace::from_joined(&joined)
                    .map_err(|e| super::error::SqlError::corrupt(OP, e))?,
            );
        }
        query.select(namespaces)
    }

    async fn sweep_expired(&self) -> DomainResult<u64> {
        let kind = self.shared.kind();
        Ok(db::exec(
            &self.shared.db.conn,
            kind.stmt(
                "DELETE FROM waymark_items WHERE expires_at IS NOT NULL AND expires_at <= $1",
                vec![kind.ts(self.shared.now())],
            ),
            "items.sweep_expired",
        )
        .await?)
    }
}
