//! The key-value contract: items by namespace and key, prefix search with exact filters and
//! paging, namespace listing, TTL expiry on the store's clock, sweeping, and bad input.

use chrono::Duration;
use serde_json::json;
use waymark_domain::ItemKey;
use waymark_domain::clock::Clock;
use waymark_domain::kv::{Item, ItemNamespace, ItemSearch, NamespaceListing};
use waymark_domain::paging::Limit;

use super::fixtures::*;
use crate::harness::TestBackend;

fn nsp(labels: &[&str]) -> ItemNamespace {
    ItemNamespace::parse(labels.iter().map(|s| s.to_string()).collect()).expect("namespace")
}

fn key(s: &str) -> ItemKey {
    ItemKey::parse(s).expect("key")
}

fn labels(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A unique top-level label, so a case only sees its own items.
fn root_label() -> String {
    format!("r{}", uid())
}

fn search(prefix: Vec<String>, filter: serde_json::Value, limit: u32, offset: u64) -> ItemSearch {
    ItemSearch {
        prefix,
        filter: obj(filter),
        limit: Limit::new(limit).expect("limit"),
        offset,
    }
}

fn listing(
    prefix: Vec<String>,
    suffix: Vec<String>,
    max_depth: Option<u32>,
    limit: u32,
    offset: u64,
) -> NamespaceListing {
    NamespaceListing {
        prefix,
        suffix,
        max_depth,
        limit: Limit::new(limit).expect("limit"),
        offset,
    }
}

fn addresses(items: &[Item]) -> Vec<(Vec<String>, String)> {
    items
        .iter()
        .map(|i| (i.namespace.labels().to_vec(), i.key.to_string()))
        .collect()
}

/// A put item reads back with its value and the clock's times; no TTL means no expiry.
pub async fn put_and_get_round_trip(b: &TestBackend) {
    let r = root_label();
    let (n, k) = (nsp(&[&r, "memories"]), key("pref ✓"));
    let value = obj(json!({"text": "likes tea", "n": 3, "nested": {"a": [1, null]}}));
    let item = b
        .stores
        .items
        .put(&n, &k, value.clone(), None)
        .await
        .unwrap();
    assert_eq!(item.value, value);
    assert_eq!(
        (item.created_at, item.updated_at),
        (b.clock.now(), b.clock.now())
    );
    assert_eq!(item.expires_at, None);
    assert_eq!(b.stores.items.get(&n, &k).await.unwrap(), Some(item));
    assert_eq!(b.stores.items.get(&n, &key("other")).await.unwrap(), None);
    assert_eq!(
        b.stores.items.get(&nsp(&[&r]), &k).await.unwrap(),
        None,
        "namespaces are exact"
    );
}

/// Putting again replaces the value, keeps `created_at` and advances `updated_at`.
pub async fn put_replaces_and_keeps_created_at(b: &TestBackend) {
    let r = root_label();
    let (n, k) = (nsp(&[&r]), key("k"));
    let first = b
        .stores
        .items
        .put(&n, &k, obj(json!({"v": 1, "gone": true})), None)
        .await
        .unwrap();
    b.clock.advance(Duration::seconds(42));
    let second = b
        .stores
        .items
        .put(&n, &k, obj(json!({"v": 2})), None)
        .await
        .unwrap();
    assert_eq!(second.value, obj(json!({"v": 2})), "replaced, not merged");
    assert_eq!(second.created_at, first.created_at);
    assert_eq!(second.updated_at, b.clock.now());
    assert_eq!(b.stores.items.get(&n, &k).await.unwrap(), Some(second));
}

/// Deleting is true once, then false; the item is gone.
pub async fn delete_is_true_once(b: &TestBackend) {
    let r = root_label();
    let (n, k) = (nsp(&[&r]), key("k"));
    b.stores
        .items
        .put(&n, &k, obj(json!({})), None)
        .await
        .unwrap();
    assert!(b.stores.items.delete(&n, &k).await.unwrap());
    assert!(!b.stores.items.delete(&n, &k).await.unwrap());
    assert_eq!(b.stores.items.get(&n, &k).await.unwrap(), None);
}

/// Search returns live items under a namespace prefix, ordered by namespace then key.
pub async fn search_by_prefix_orders_by_namespace_then_key(b: &TestBackend) {
    let r = root_label();
    let puts = [
        (vec![r.as_str(), "b"], "k1"),
        (vec![r.as_str(), "a", "x"], "k2"),
        (vec![r.as_str(), "a"], "k9"),
        (vec![r.as_str(), "a"], "k1"),
        (vec!["elsewhere", r.as_str()], "k0"),
    ];
    for (n, k) in &puts {
        b.stores
            .items
            .put(&nsp(n), &key(k), obj(json!({})), None)
            .await
            .unwrap();
    }
    let got = b
        .stores
        .items
        .search(&search(labels(&[&r]), json!({}), 100, 0))
        .await
        .unwrap();
    assert_eq!(
        addresses(&got),
        vec![
            (labels(&[&r, "a"]), "k1".into()),
            (labels(&[&r, "a"]), "k9".into()),
            (labels(&[&r, "a", "x"]), "k2".into()),
            (labels(&[&r, "b"]), "k1".into()),
        ]
    );
    let deeper = b
        .stores
        .items
        .search(&search(labels(&[&r, "a"]), json!({}), 100, 0))
        .await
        .unwrap();
    assert_eq!(deeper.len(), 3);
    let none = b
        .stores
        .items
        .search(&search(labels(&[&r, "zz"]), json!({}), 100, 0))
        .await
        .unwrap();
    assert!(none.is_empty());
}

/// An empty prefix searches every namespace.
pub async fn empty_prefix_searches_everything(b: &TestBackend) {
    let marker = uid();
    for n in [vec!["x".to_owned()], vec![root_label(), "y".to_owned()]] {
        let n = ItemNamespace::parse(n).unwrap();
        b.stores
            .items
            .put(&n, &key("k"), obj(json!({"m": marker})), None)
            .await
            .unwrap();
    }
    let got = b
        .stores
        .items
        .search(&search(vec![], json!({"m": marker}), 100, 0))
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
}

/// Filters are exact matches on top-level value keys, ANDed.
pub async fn search_filters_on_top_level_values(b: &TestBackend) {
    let r = root_label();
    let n = nsp(&[&r]);
    let values = [
        ("a", json!({"kind": "note", "n": 1})),
        ("b", json!({"kind": "note", "n": 2})),
        ("c", json!({"kind": "todo", "n": 1})),
        ("d", json!({"other": "x"})),
    ];
    for (k, v) in values {
        b.stores.items.put(&n, &key(k), obj(v), None).await.unwrap();
    }
    let keys = |f| async {
        let got = b
            .stores
            .items
            .search(&search(labels(&[&r]), f, 100, 0))
            .await
            .unwrap();
        got.into_iter()
            .map(|i| i.key.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(json!({"kind": "note"})).await, vec!["a", "b"]);
    assert_eq!(keys(json!({"kind": "note", "n": 1})).await, vec!["a"]);
    assert_eq!(keys(json!({"n": 1})).await, vec!["a", "c"]);
    assert!(keys(json!({"n": "1"})).await.is_empty());
    assert!(keys(json!({"kind": "missing"})).await.is_empty());
}

/// Limit and offset page the ordered results exactly.
pub async fn search_pages_exactly(b: &TestBackend) {
    let r = root_label();
    let n = nsp(&[&r]);
    for i in 0..7 {
        b.stores
            .items
            .put(&n, &key(&format!("k{i}")), obj(json!({})), None)
            .await
            .unwrap();
    }
    let prefix = labels(&[&r]);
    let page = |limit, offset| {
        let q = search(prefix.clone(), json!({}), limit, offset);
        async move {
            let got = b.stores.items.search(&q).await.unwrap();
            got.into_iter()
                .map(|i| i.key.to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(page(3, 0).await, vec!["k0", "k1", "k2"]);
    assert_eq!(page(3, 3).await, vec!["k3", "k4", "k5"]);
    assert_eq!(page(3, 6).await, vec!["k6"]);
    assert!(page(3, 7).await.is_empty());
}

/// Namespaces list distinct, ordered, by prefix and suffix, truncated to a depth (and
/// deduplicated), and paged.
pub async fn list_namespaces_by_prefix_suffix_and_depth(b: &TestBackend) {
    let r = root_label();
    for n in [
        vec![r.as_str(), "a", "x"],
        vec![r.as_str(), "a", "y"],
        vec![r.as_str(), "b", "x"],
        vec![r.as_str(), "b"],
        vec![r.as_str(), "b"],
    ] {
        b.stores
            .items
            .put(&nsp(&n), &key(&uid()), obj(json!({})), None)
            .await
            .unwrap();
    }
    let list = |l: NamespaceListing| async move {
        let got = b.stores.items.list_namespaces(&l).await.unwrap();
        got.into_iter()
            .map(|n| n.labels().to_vec())
            .collect::<Vec<_>>()
    };
    let p = labels(&[&r]);
    assert_eq!(
        list(listing(p.clone(), vec![], None, 100, 0)).await,
        vec![
            labels(&[&r, "a", "x"]),
            labels(&[&r, "a", "y"]),
            labels(&[&r, "b"]),
            labels(&[&r, "b", "x"])
        ]
    );
    assert_eq!(
        list(listing(p.clone(), labels(&["x"]), None, 100, 0)).await,
        vec![labels(&[&r, "a", "x"]), labels(&[&r, "b", "x"])]
    );
    assert_eq!(
        list(listing(p.clone(), vec![], Some(2), 100, 0)).await,
        vec![labels(&[&r, "a"]), labels(&[&r, "b"])]
    );
    assert_eq!(
        list(listing(p.clone(), vec![], None, 2, 1)).await,
        vec![labels(&[&r, "a", "y"]), labels(&[&r, "b"])]
    );
    assert_eq!(
        list(listing(labels(&[&r, "b"]), vec![], None, 100, 0)).await,
        vec![labels(&[&r, "b"]), labels(&[&r, "b", "x"])]
    );
}

/// An item with a TTL is returned until it expires on the store's clock, then never again:
/// not by get, search or namespace listing, and deleting it answers false.
pub async fn expired_items_are_never_returned(b: &TestBackend) {
    let r = root_label();
    let (n, k) = (nsp(&[&r, "ttl"]), key("k"));
    let t0 = b.clock.now();
    let item = b
        .stores
        .items
        .put(&n, &k, obj(json!({"v": 1})), Some(60))
        .await
        .unwrap();
    assert_eq!(item.expires_at, Some(t0 + Duration::seconds(60)));
    b.clock.advance(Duration::seconds(59));
    assert_eq!(b.stores.items.get(&n, &k).await.unwrap(), Some(item));
    b.clock.advance(Duration::seconds(2));
    assert_eq!(b.stores.items.get(&n, &k).await.unwrap(), None);
    assert!(
        b.stores
            .items
            .search(&search(labels(&[&r]), json!({}), 10, 0))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        b.stores
            .items
            .list_namespaces(&listing(labels(&[&r]), vec![], None, 10, 0))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!b.stores.items.delete(&n, &k).await.unwrap());
}

/// Putting again without a TTL makes an item permanent; with one, its expiry restarts from now.
pub async fn a_new_put_resets_the_expiry(b: &TestBackend) {
    let r = root_label();
    let n = nsp(&[&r]);
    b.stores
        .items
        .put(&n, &key("p"), obj(json!({})), Some(10))
        .await
        .unwrap();
    b.stores
        .items
        .put(&n, &key("p"), obj(json!({})), None)
        .await
        .unwrap();
    b.stores
        .items
        .put(&n, &key("q"), obj(json!({})), Some(10))
        .await
        .unwrap();
    b.clock.advance(Duration::seconds(8));
    let q = b
        .stores
        .items
        .put(&n, &key("q"), obj(json!({})), Some(10))
        .await
        .unwrap();
    assert_eq!(q.expires_at, Some(b.clock.now() + Duration::seconds(10)));
    b.clock.advance(Duration::seconds(5));
    let p = b
        .stores
        .items
        .get(&n, &key("p"))
        .await
        .unwrap()
        .expect("permanent");
    assert_eq!(p.expires_at, None);
    assert!(b.stores.items.get(&n, &key("q")).await.unwrap().is_some());
}

/// `sweep_expired` deletes exactly the expired items and counts them.
pub async fn sweep_deletes_and_counts_expired_items(b: &TestBackend) {
    let r = root_label();
    let n = nsp(&[&r]);
    b.stores
        .items
        .put(&n, &key("short"), obj(json!({})), Some(10))
        .await
        .unwrap();
    b.stores
        .items
        .put(&n, &key("medium"), obj(json!({})), Some(100))
        .await
        .unwrap();
    b.stores
        .items
        .put(&n, &key("long"), obj(json!({})), Some(10_000))
        .await
        .unwrap();
    b.stores
        .items
        .put(&n, &key("forever"), obj(json!({})), None)
        .await
        .unwrap();
    assert_eq!(b.stores.items.sweep_expired().await.unwrap(), 0);
    b.clock.advance(Duration::seconds(200));
    assert_eq!(b.stores.items.sweep_expired().await.unwrap(), 2);
    assert_eq!(b.stores.items.sweep_expired().await.unwrap(), 0);
    let left = b
        .stores
        .items
        .search(&search(labels(&[&r]), json!({}), 10, 0))
        .await
        .unwrap();
    let keys: Vec<String> = left.into_iter().map(|i| i.key.to_string()).collect();
    assert_eq!(keys, vec!["forever", "long"]);
}

/// Bad namespaces and keys cannot be built; bad prefixes and suffixes handed to the store are
/// refused with `InvalidInput`; a TTL reaching past any representable time is refused and
/// nothing is written.
pub async fn bad_input_is_refused(b: &TestBackend) {
    for bad in [vec![], vec!["a.b"], vec![""], vec!["x"; 17], vec!["nul\0"]] {
        let err = ItemNamespace::parse(bad.iter().map(|s| s.to_string()).collect()).unwrap_err();
        assert!(err.is_invalid_input());
    }
    assert!(ItemKey::parse("").unwrap_err().is_invalid_input());
    assert!(ItemKey::parse("k\0").unwrap_err().is_invalid_input());
    let items = &b.stores.items;
    assert_eq!(
        expect_invalid(
            items
                .search(&search(labels(&["a.b"]), json!({}), 10, 0))
                .await
        ),
        "namespace"
    );
    expect_invalid(items.search(&search(labels(&[""]), json!({}), 10, 0)).await);
    expect_invalid(
        items
            .list_namespaces(&listing(labels(&["ok", "a.b"]), vec![], None, 10, 0))
            .await,
    );
    expect_invalid(
        items
            .list_namespaces(&listing(vec![], labels(&[""]), None, 10, 0))
            .await,
    );
    expect_invalid(
        items
            .list_namespaces(&listing(vec!["x".into(); 17], vec![], None, 10, 0))
            .await,
    );
    let r = root_label();
    let (n, k) = (nsp(&[&r]), key("k"));
    expect_invalid(items.put(&n, &k, obj(json!({})), Some(u64::MAX)).await);
    assert_eq!(items.get(&n, &k).await.unwrap(), None);
}

/// Mutating a returned item never changes the stored one.
pub async fn returned_items_are_copies(b: &TestBackend) {
    let r = root_label();
    let (n, k) = (nsp(&[&r]), key("k"));
    let mut item = b
        .stores
        .items
        .put(&n, &k, obj(json!({"v": 1})), None)
        .await
        .unwrap();
    let pristine = item.clone();
    item.value.insert("v".into(), json!(2));
    let mut found = b
        .stores
        .items
        .search(&search(labels(&[&r]), json!({}), 10, 0))
        .await
        .unwrap();
    found[0].value.clear();
    assert_eq!(b.stores.items.get(&n, &k).await.unwrap(), Some(pristine));
}

/// Offsets past every row (even `u64::MAX`) give nothing, or are refused as input; they never
/// fail in storage.
pub async fn huge_offsets_are_empty(b: &TestBackend) {
    let r = root_label();
    b.stores
        .items
        .put(&nsp(&[&r, "a"]), &key("k"), obj(json!({})), None)
        .await
        .unwrap();
    for offset in [1_000, i64::MAX as u64, u64::MAX] {
        match b
            .stores
            .items
            .search(&search(labels(&[&r]), json!({}), 10, offset))
            .await
        {
            Ok(v) => assert!(v.is_empty(), "offset {offset}"),
            Err(e) => assert!(e.is_invalid_input(), "offset {offset}: {e:?}"),
        }
        match b
            .stores
            .items
            .list_namespaces(&listing(labels(&[&r]), vec![], None, 10, offset))
            .await
        {
            Ok(v) => assert!(v.is_empty(), "offset {offset}"),
            Err(e) => assert!(e.is_invalid_input(), "offset {offset}: {e:?}"),
        }
    }
}

// -- case list (every `pub async fn` above, in order) ----------------------------------------

/// Runs every kv case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `kv`.
#[macro_export]
macro_rules! kv_contract {
    ($factory:path) => {
        mod kv {
            $crate::__contract_cases!(
                $factory,
                kv,
                [
                    put_and_get_round_trip,
                    put_replaces_and_keeps_created_at,
                    delete_is_true_once,
                    search_by_prefix_orders_by_namespace_then_key,
                    empty_prefix_searches_everything,
                    search_filters_on_top_level_values,
                    search_pages_exactly,
                    list_namespaces_by_prefix_suffix_and_depth,
                    expired_items_are_never_returned,
                    a_new_put_resets_the_expiry,
                    sweep_deletes_and_counts_expired_items,
                    bad_input_is_refused,
                    returned_items_are_copies,
                    huge_offsets_are_empty,
                ]
            );
        }
    };
}
