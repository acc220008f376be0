//! The namespaced key-value store in memory.
//!
//! Rules shared with the SQL stores:
//! * An item is expired when `expires_at <= now`; expired items are never returned, a delete of
//!   one answers `false`, and `sweep_expired` removes and counts them.
//! * `put` with `ttl_seconds`: `Some(0)` is refused (an item that expires as it is written can
//!   never be read; pass `None` for no expiry or delete the item); an expiry after the year
//!   [`MAX_EXPIRY_YEAR`] is refused (RFC 3339 and both databases' text forms have four-digit
//!   years). Replacing a live item keeps its `created_at`; replacing an expired one starts over.
//! * Values, like all stored JSON, may not contain U+0000.
//! * Order: namespaces compare by their dot-joined text (what a SQL column of the joined
//!   namespace sorts by), then keys. `search` filters are exact top-level matches (numbers by
//!   value, `true` never `1`); `list_namespaces` truncates to `max_depth` (at least 1), then
//!   deduplicates, sorts and pages.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use waymark_domain::json::json_scalar_eq;
use waymark_domain::kv::{
    Item, ItemNamespace, ItemSearch, KeyValueRepository, NamespaceListing, expiry,
};
use waymark_domain::{DomainResult, ItemKey, JsonObject};

use super::Shared;
use waymark_domain::json::check_json_object;

/// The in-memory [`KeyValueRepository`].
pub struct MemoryKeyValueRepository {
    shared: Arc<Shared>,
}

impl MemoryKeyValueRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

fn is_live(item: &Item, now: DateTime<Utc>) -> bool {
    item.expires_at.is_none_or(|at| at > now)
}

fn filter_matches(value: &JsonObject, filter: &JsonObject) -> bool {
    filter
        .iter()
        .all(|(k, want)| value.get(k).is_some_and(|have| json_scalar_eq(have, want)))
}

fn key(namespace: &ItemNamespace, key: &ItemKey) -> (String, ItemKey) {
    (namespace.joined(), key.clone())
}

#[async_trait]
impl KeyValueRepository for MemoryKeyValueRepository {
    async fn put(
        &self,
        namespace: &ItemNamespace,
        item_key: &ItemKey,
        value: JsonObject,
        ttl_seconds: Option<u64>,
    ) -> DomainResult<Item> {
        check_json_object("value", &value)?;
        let now = self.shared.now();
        let expires_at = expiry(now, ttl_seconds)?;
        let mut state = self.shared.lock();
        let k = key(namespace, item_key);
        let created_at = state
            .items
            .get(&k)
            .filter(|old| is_live(old, now))
            .map_or(now, |old| old.created_at);
        let item = Item {
            namespace: namespace.clone(),
            key: item_key.clone(),
            value,
            created_at,
            updated_at: now,
            expires_at,
        };
        state.items.insert(k, item.clone());
        Ok(item)
    }

    async fn get(
        &self,
        namespace: &ItemNamespace,
        item_key: &ItemKey,
    ) -> DomainResult<Option<Item>> {
        let now = self.shared.now();
        let state = self.shared.lock();
        Ok(state
            .items
            .get(&key(namespace, item_key))
            .filter(|i| is_live(i, now))
            .cloned())
    }

    async fn delete(&self, namespace: &ItemNamespace, item_key: &ItemKey) -> DomainResult<bool> {
        let now = self.shared.now();
        let mut state = self.shared.lock();
        match state.items.remove(&key(namespace, item_key)) {
            Some(old) => Ok(is_live(&old, now)),
            None => Ok(false),
        }
    }

    async fn search(&self, query: &ItemSearch) -> DomainResult<Vec<Item>> {
        ItemNamespace::check_labels(&query.prefix)?;
        let now = self.shared.now();
        let skip = usize::try_from(query.offset).unwrap_or(usize::MAX);
        let state = self.shared.lock();
        Ok(state
            .items
            .values()
            .filter(|i| is_live(i, now))
            .filter(|i| i.namespace.starts_with(&query.prefix))
            .filter(|i| filter_matches(&i.value, &query.filter))
            .skip(skip)
            .take(query.limit.as_usize())
            .cloned()
            .collect())
    }

    async fn list_namespaces(&self, query: &NamespaceListing) -> DomainResult<Vec<ItemNamespace>> {
        query.validate()?;
        let now = self.shared.now();
        let state = self.shared.lock();
        query.select(
            state
                .items
                .values()
                .filter(|i| is_live(i, now))
                .map(|i| &i.namespace)
                .filter(|ns| ns.starts_with(&query.prefix)),
        )
    }

    async fn sweep_expired(&self) -> DomainResult<u64> {
        let now = self.shared.now();
        let mut state = self.shared.lock();
        let before = state.items.len();
        state.items.retain(|_, i| is_live(i, now));
        Ok((before - state.items.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryBackend;
    use chrono::{Duration, TimeZone};
    use serde_json::json;
    use waymark_domain::clock::ManualClock;
    use waymark_domain::paging::Limit;

    fn ns(labels: &[&str]) -> ItemNamespace {
        ItemNamespace::parse(labels.iter().map(|s| s.to_string()).collect()).unwrap()
    }

    fn k(s: &str) -> ItemKey {
        ItemKey::parse(s).unwrap()
    }

    fn obj(v: serde_json::Value) -> JsonObject {
        v.as_object().unwrap().clone()
    }

    fn setup() -> (Arc<ManualClock>, Arc<dyn KeyValueRepository>) {
        let start = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let repo = MemoryBackend::with_clock(clock.clone()).stores().items;
        (clock, repo)
    }

    #[tokio::test]
    async fn expired_items_vanish_from_every_read_and_are_swept() {
        let (clock, repo) = setup();
        let n = ns(&["a"]);
        repo.put(&n, &k("short"), obj(json!({"v": 1})), Some(10))
            .await
            .unwrap();
        repo.put(&n, &k("long"), obj(json!({"v": 2})), None)
            .await
            .unwrap();
        clock.advance(Duration::seconds(9));
        assert!(repo.get(&n, &k("short")).await.unwrap().is_some());
        clock.advance(Duration::seconds(1));
        assert!(
            repo.get(&n, &k("short")).await.unwrap().is_none(),
            "expires_at <= now"
        );
        let all = ItemSearch {
            prefix: vec![],
            filter: JsonObject::new(),
            limit: Limit::new(10).unwrap(),
            offset: 0,
        };
        assert_eq!(repo.search(&all).await.unwrap().len(), 1);
        assert!(!repo.delete(&n, &k("short")).await.unwrap());
        repo.put(&n, &k("gone"), obj(json!({})), Some(1))
            .await
            .unwrap();
        clock.advance(Duration::seconds(1));
        assert_eq!(repo.sweep_expired().await.unwrap(), 1);
        assert_eq!(repo.sweep_expired().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn ttl_bounds_are_input_errors() {
        let (_clock, repo) = setup();
        let n = ns(&["a"]);
        for ttl in [0, u64::MAX, i64::MAX as u64, 400 * 365 * 86_400 * 1000] {
            let e = repo
                .put(&n, &k("x"), obj(json!({})), Some(ttl))
                .await
                .unwrap_err();
            assert!(e.is_invalid_input(), "{ttl}: {e}");
        }
        assert!(repo.get(&n, &k("x")).await.unwrap().is_none());
        assert!(
            repo.put(&n, &k("x"), obj(json!({})), Some(86_400 * 365 * 100))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn replacing_keeps_created_at_and_search_filters_and_orders() {
        let (clock, repo) = setup();
        let first = repo
            .put(&ns(&["a", "b"]), &k("1"), obj(json!({"n": 1})), None)
            .await
            .unwrap();
        clock.advance(Duration::seconds(5));
        let second = repo
            .put(
                &ns(&["a", "b"]),
                &k("1"),
                obj(json!({"n": 1.0, "flag": true})),
                None,
            )
            .await
            .unwrap();
        assert_eq!(second.created_at, first.created_at);
        assert!(second.updated_at > first.updated_at);
        repo.put(&ns(&["a-b"]), &k("0"), obj(json!({"n": 1})), None)
            .await
            .unwrap();
        repo.put(&ns(&["a"]), &k("z"), obj(json!({"n": 2})), None)
            .await
            .unwrap();
        let search = |filter: serde_json::Value, prefix: &[&str]| ItemSearch {
            prefix: prefix.iter().map(|s| s.to_string()).collect(),
            filter: obj(filter),
            limit: Limit::new(10).unwrap(),
            offset: 0,
        };
        let keys = |items: Vec<Item>| -> Vec<String> {
            items
                .into_iter()
                .map(|i| format!("{}/{}", i.namespace.joined(), i.key))
                .collect()
        };
        assert_eq!(
            keys(repo.search(&search(json!({"n": 1}), &[])).await.unwrap()),
            ["a-b/0", "a.b/1"]
        );
        assert!(
            repo.search(&search(json!({"flag": 1}), &[]))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            keys(repo.search(&search(json!({}), &["a"])).await.unwrap()),
            ["a/z", "a.b/1"]
        );
        let listing = NamespaceListing {
            prefix: vec![],
            suffix: vec![],
            max_depth: Some(1),
            limit: Limit::new(10).unwrap(),
            offset: 0,
        };
        let names: Vec<String> = repo
            .list_namespaces(&listing)
            .await
            .unwrap()
            .iter()
            .map(ItemNamespace::joined)
            .collect();
        assert_eq!(names, ["a", "a-b"]);
        let zero = NamespaceListing {
            max_depth: Some(0),
            ..listing
        };
        assert!(
            repo.list_namespaces(&zero)
                .await
                .unwrap_err()
                .is_invalid_input()
        );
    }
}
