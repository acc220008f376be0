//! Filters (spec §5): flat string/int filters agree everywhere; the rest follows the
//! backend's rule.

use std::sync::Arc;

use serde_json::json;
use waymark_domain::checkpoint::{CheckpointRepository, FilterSemantics};
use waymark_domain::{DomainResult, ThreadId};

use super::helpers::*;
use crate::contract::fixtures::*;
use crate::harness::TestBackend;

/// A thread holding one checkpoint with known metadata, asked whether filters match it.
struct Probe {
    store: Arc<dyn CheckpointRepository>,
    thread: ThreadId,
}

impl Probe {
    async fn new(b: &TestBackend, metadata: serde_json::Value) -> Self {
        let thread = thread_id();
        put_meta(b, &thread, &root(), None, metadata).await;
        Self {
            store: b.stores.checkpoints.clone(),
            thread,
        }
    }

    /// §5's reference metadata.
    async fn reference(b: &TestBackend) -> Self {
        Self::new(
            b,
            json!({"flag": true, "nothing": null, "obj": {"a": 1, "b": 2}, "lst": [1, 2], "step": 1}),
        )
        .await
    }

    async fn try_hit(&self, filter: serde_json::Value) -> DomainResult<bool> {
        let q = filtered(&self.thread, filter);
        self.store.list(&q).await.map(|v| !v.is_empty())
    }

    async fn hit(&self, filter: serde_json::Value) -> bool {
        self.try_hit(filter).await.expect("list with filter")
    }
}

fn containment(b: &TestBackend) -> bool {
    b.filter_semantics() == FilterSemantics::Containment
}

/// Flat string and integer filters match the same way on every backend.
pub async fn filter_flat_scalars_agree_everywhere(b: &TestBackend) {
    let p = Probe::new(b, json!({"source": "loop", "step": 1, "user": "u"})).await;
    assert!(p.hit(json!({"source": "loop"})).await);
    assert!(p.hit(json!({"step": 1, "user": "u"})).await);
    assert!(p.hit(json!({})).await, "an empty filter matches everything");
    assert!(!p.hit(json!({"step": 2})).await);
    assert!(
        !p.hit(json!({"step": "1"})).await,
        "a string never matches an int"
    );
    assert!(
        !p.hit(json!({"user": "U"})).await,
        "strings compare exactly"
    );
    assert!(!p.hit(json!({"absent": "x"})).await);
}

/// `{"flag": true}` matches everywhere; `{"flag": 1}` only under `json_extract` (true == 1).
pub async fn filter_true_versus_one(b: &TestBackend) {
    let p = Probe::reference(b).await;
    assert!(p.hit(json!({"flag": true})).await);
    assert_eq!(p.hit(json!({"flag": 1})).await, !containment(b));
}

/// A null filter matches an explicit null everywhere, a missing key only under
/// `json_extract`.
pub async fn filter_null_versus_missing(b: &TestBackend) {
    let p = Probe::reference(b).await;
    assert!(p.hit(json!({"nothing": null})).await);
    assert_eq!(p.hit(json!({"missing": null})).await, !containment(b));
}

/// A nested object matches by subset (in any key order) under containment, only as exact
/// compact text under `json_extract`.
pub async fn filter_nested_object_subset(b: &TestBackend) {
    let p = Probe::reference(b).await;
    assert!(
        p.hit(json!({"obj": {"a": 1, "b": 2}})).await,
        "exact object"
    );
    assert_eq!(p.hit(json!({"obj": {"a": 1}})).await, containment(b));
    assert_eq!(
        p.hit(json!({"obj": {"b": 2, "a": 1}})).await,
        containment(b)
    );
    assert!(!p.hit(json!({"obj": {"a": 2}})).await);
}

/// A list filter matches when the stored list contains its elements under containment only.
pub async fn filter_list_containment(b: &TestBackend) {
    let p = Probe::reference(b).await;
    assert_eq!(p.hit(json!({"lst": [1]})).await, containment(b));
    assert!(!p.hit(json!({"lst": [3]})).await);
}

/// Numbers compare by value (`1.0` matches `1`) and a string never matches a number.
pub async fn filter_numbers_compare_by_value(b: &TestBackend) {
    let p = Probe::reference(b).await;
    assert!(p.hit(json!({"step": 1.0})).await);
    assert!(!p.hit(json!({"step": "1"})).await);
}

/// A dotted key is a nested path under `json_extract`, a plain (absent) key under containment.
pub async fn filter_dotted_key(b: &TestBackend) {
    let p = Probe::reference(b).await;
    assert_eq!(p.hit(json!({"obj.a": 1})).await, !containment(b));
}

/// A key outside `[A-Za-z0-9_.-]` is refused with `InvalidInput` under `json_extract` (the
/// Python saver raises `ValueError`); containment has no key rule and simply finds nothing.
pub async fn filter_key_outside_the_sqlite_charset(b: &TestBackend) {
    let p = Probe::reference(b).await;
    let r = p.try_hit(json!({"bad key": 1})).await;
    if containment(b) {
        assert!(!r.unwrap());
    } else {
        expect_invalid(r);
    }
}

/// A filter holding U+0000 is refused with `InvalidInput` where the store reports that its
/// database cannot hold it (PostgreSQL; sent as is, jsonb would fail on it); elsewhere it finds
/// nothing, since no stored metadata can hold U+0000.
pub async fn filter_with_nul_follows_the_reported_rule(b: &TestBackend) {
    let p = Probe::reference(b).await;
    let refuses = b.stores.checkpoints.capabilities().refuses_nul_in_filters;
    for filter in [
        json!({"source": "lo\u{0}op"}),
        json!({"obj": {"a": "\u{0}"}}),
    ] {
        let r = p.try_hit(filter.clone()).await;
        if refuses {
            expect_invalid(r);
        } else {
            assert!(!r.expect("list with a NUL filter"), "{filter}");
        }
    }
}
