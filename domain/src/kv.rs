//! A namespaced key-value store with optional TTL, in the spirit of LangGraph's `BaseStore`.

use std::borrow::Borrow;
use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};
use crate::ids::ItemKey;
use crate::json::JsonObject;
use crate::paging::Limit;

/// A hierarchical namespace such as `("users", "u-1", "memories")`: 1-16 labels, each
/// non-empty, without `.` (LangGraph joins labels with dots) or control characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct ItemNamespace(Vec<String>);

impl ItemNamespace {
    /// The most labels a namespace may have.
    pub const MAX_DEPTH: usize = 16;

    /// Parses a namespace.
    pub fn parse(labels: Vec<String>) -> DomainResult<Self> {
        if labels.is_empty() {
            return Err(DomainError::invalid(
                "namespace",
                "needs at least one label",
            ));
        }
        Self::check_labels(&labels)?;
        Ok(Self(labels))
    }

    /// Checks labels of a namespace or of a prefix (which may be empty).
    pub fn check_labels(labels: &[String]) -> DomainResult<()> {
        if labels.len() > Self::MAX_DEPTH {
            return Err(DomainError::invalid(
                "namespace",
                format!(
                    "has {} labels; at most {} are allowed",
                    labels.len(),
                    Self::MAX_DEPTH
                ),
            ));
        }
        for l in labels {
            if l.is_empty() || l.len() > 255 {
                return Err(DomainError::invalid(
                    "namespace",
                    "labels have 1 to 255 bytes",
                ));
            }
            if l.contains('.') || l.chars().any(char::is_control) {
                return Err(DomainError::invalid(
                    "namespace",
                    format!("label {l:?} contains '.' or a control character"),
                ));
            }
        }
        Ok(())
    }

    /// The labels.
    pub fn labels(&self) -> &[String] {
        &self.0
    }

    /// Labels joined with `.` (how LangGraph stores a namespace as text).
    pub fn joined(&self) -> String {
        self.0.join(".")
    }

    /// Splits joined text back into a namespace.
    pub fn from_joined(text: &str) -> DomainResult<Self> {
        Self::parse(text.split('.').map(str::to_owned).collect())
    }

    /// True when `prefix` is a prefix of this namespace.
    pub fn starts_with(&self, prefix: &[String]) -> bool {
        self.0.len() >= prefix.len() && self.0[..prefix.len()] == *prefix
    }

    /// True when `suffix` is a suffix of this namespace.
    pub fn ends_with(&self, suffix: &[String]) -> bool {
        self.0.len() >= suffix.len() && self.0[self.0.len() - suffix.len()..] == *suffix
    }
}

impl TryFrom<Vec<String>> for ItemNamespace {
    type Error = DomainError;
    fn try_from(v: Vec<String>) -> DomainResult<Self> {
        Self::parse(v)
    }
}

impl From<ItemNamespace> for Vec<String> {
    fn from(n: ItemNamespace) -> Vec<String> {
        n.0
    }
}

/// A stored item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// The namespace.
    pub namespace: ItemNamespace,
    /// The key within it.
    pub key: ItemKey,
    /// The value (a JSON object, as in LangGraph).
    pub value: JsonObject,
    /// First written (UTC).
    pub created_at: DateTime<Utc>,
    /// Last written (UTC).
    pub updated_at: DateTime<Utc>,
    /// When it stops being returned; `None` never.
    pub expires_at: Option<DateTime<Utc>>,
}

/// `search` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemSearch {
    /// Namespace prefix (may be empty: everything).
    pub prefix: Vec<String>,
    /// Exact matches on top-level value keys.
    pub filter: JsonObject,
    /// At most this many (no silent default: the caller says how many).
    pub limit: Limit,
    /// Skip this many first. Order: namespace, then key.
    pub offset: u64,
}

/// `list_namespaces` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceListing {
    /// Only namespaces starting with these labels.
    pub prefix: Vec<String>,
    /// Only namespaces ending with these labels.
    pub suffix: Vec<String>,
    /// Truncate namespaces to this depth (deduplicated afterwards).
    pub max_depth: Option<u32>,
    /// At most this many, in order.
    pub limit: Limit,
    /// Skip this many first.
    pub offset: u64,
}

/// The latest year an item may expire in (RFC 3339 and both databases' text forms have
/// four-digit years).
pub const MAX_EXPIRY_YEAR: i32 = 9999;

/// The expiry of an item written at `now` with `ttl_seconds`, by the rule every store applies
/// before writing: `None` never expires; `Some(0)` is refused (an item that expires as it is
/// written can never be read; pass `None` or delete the item); an expiry after the year
/// [`MAX_EXPIRY_YEAR`] is refused.
pub fn expiry(now: DateTime<Utc>, ttl_seconds: Option<u64>) -> DomainResult<Option<DateTime<Utc>>> {
    let Some(ttl) = ttl_seconds else {
        return Ok(None);
    };
    if ttl == 0 {
        return Err(DomainError::invalid(
            "ttl_seconds",
            "must be at least 1; omit it for an item that never expires",
        ));
    }
    let too_far = || {
        DomainError::invalid(
            "ttl_seconds",
            format!("{ttl} seconds reaches past the year {MAX_EXPIRY_YEAR}"),
        )
    };
    let at = i64::try_from(ttl)
        .ok()
        .and_then(Duration::try_seconds)
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(too_far)?;
    if at.year() > MAX_EXPIRY_YEAR {
        return Err(too_far());
    }
    Ok(Some(at))
}

impl NamespaceListing {
    /// The rules every store applies before listing: prefix and suffix labels as in a
    /// namespace, a `max_depth` of at least 1.
    pub fn validate(&self) -> DomainResult<()> {
        ItemNamespace::check_labels(&self.prefix)?;
        ItemNamespace::check_labels(&self.suffix)?;
        if self.max_depth == Some(0) {
            return Err(DomainError::invalid("max_depth", "must be at least 1"));
        }
        Ok(())
    }

    /// The listing every store answers, from the namespaces of live items under the prefix
    /// (the store filters by prefix and liveness, as it can do that in its own query): keeps
    /// those ending with the suffix, truncates them to `max_depth`, deduplicates, orders them by
    /// their dot-joined text (what a SQL column of the joined namespace sorts by) and pages.
    pub fn select<N: Borrow<ItemNamespace>>(
        &self,
        namespaces: impl IntoIterator<Item = N>,
    ) -> DomainResult<Vec<ItemNamespace>> {
        let mut found: BTreeSet<(String, Vec<String>)> = BTreeSet::new();
        for ns in namespaces {
            let ns = ns.borrow();
            if !ns.ends_with(&self.suffix) {
                continue;
            }
            let labels = ns.labels();
            let depth = self
                .max_depth
                .map_or(labels.len(), |d| labels.len().min(d as usize));
            let truncated = labels[..depth].to_vec();
            found.insert((truncated.join("."), truncated));
        }
        let skip = usize::try_from(self.offset).unwrap_or(usize::MAX);
        found
            .into_iter()
            .skip(skip)
            .take(self.limit.as_usize())
            .map(|(_, labels)| ItemNamespace::parse(labels))
            .collect()
    }
}

/// The key-value port. Expired items are never returned; `sweep_expired` deletes them.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait KeyValueRepository: Send + Sync {
    /// Inserts or replaces an item; `ttl_seconds` sets its expiry from now (`None`: never).
    async fn put(
        &self,
        namespace: &ItemNamespace,
        key: &ItemKey,
        value: JsonObject,
        ttl_seconds: Option<u64>,
    ) -> DomainResult<Item>;

    /// The item, unless missing or expired.
    async fn get(&self, namespace: &ItemNamespace, key: &ItemKey) -> DomainResult<Option<Item>>;

    /// Deletes the item; false when missing (or already expired).
    async fn delete(&self, namespace: &ItemNamespace, key: &ItemKey) -> DomainResult<bool>;

    /// Live items under a namespace prefix matching the filter.
    async fn search(&self, query: &ItemSearch) -> DomainResult<Vec<Item>>;

    /// Distinct namespaces of live items.
    async fn list_namespaces(&self, query: &NamespaceListing) -> DomainResult<Vec<ItemNamespace>>;

    /// Deletes every expired item; returns how many.
    async fn sweep_expired(&self) -> DomainResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(l: &[&str]) -> DomainResult<ItemNamespace> {
        ItemNamespace::parse(l.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn expiry_rules() {
        let now = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(expiry(now, None).unwrap(), None);
        assert_eq!(
            expiry(now, Some(90)).unwrap(),
            Some(now + Duration::seconds(90))
        );
        for ttl in [0, u64::MAX, 400_000_000_000] {
            let err = expiry(now, Some(ttl)).unwrap_err();
            assert!(
                matches!(
                    &err,
                    DomainError::InvalidInput {
                        field: "ttl_seconds",
                        ..
                    }
                ),
                "{ttl}: {err:?}"
            );
        }
        let last = DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
            .unwrap()
            .with_timezone(&Utc);
        let secs = u64::try_from((last - now).num_seconds()).unwrap();
        assert!(expiry(now, Some(secs)).is_ok());
        assert!(expiry(now, Some(secs + 1)).is_err());
    }

    fn listing(
        suffix: &[&str],
        max_depth: Option<u32>,
        limit: u32,
        offset: u64,
    ) -> NamespaceListing {
        NamespaceListing {
            prefix: Vec::new(),
            suffix: suffix.iter().map(|s| s.to_string()).collect(),
            max_depth,
            limit: Limit::new(limit).unwrap(),
            offset,
        }
    }

    #[test]
    fn namespace_listing_filters_truncates_dedupes_orders_and_pages() {
        let all = [
            ns(&["b", "x", "m"]).unwrap(),
            ns(&["a", "y"]).unwrap(),
            ns(&["a", "x", "m"]).unwrap(),
            ns(&["a-z"]).unwrap(),
            ns(&["a", "x", "n"]).unwrap(),
        ];
        let joined =
            |v: Vec<ItemNamespace>| v.iter().map(ItemNamespace::joined).collect::<Vec<_>>();
        assert_eq!(
            joined(listing(&[], Some(2), 10, 0).select(&all).unwrap()),
            ["a-z", "a.x", "a.y", "b.x"]
        );
        assert_eq!(
            joined(listing(&["m"], None, 10, 0).select(&all).unwrap()),
            ["a.x.m", "b.x.m"]
        );
        assert_eq!(
            joined(listing(&[], Some(1), 1, 1).select(&all).unwrap()),
            ["a-z"]
        );
        assert!(listing(&[], Some(1), 10, 0).validate().is_ok());
        assert!(matches!(
            listing(&[], Some(0), 10, 0).validate(),
            Err(DomainError::InvalidInput {
                field: "max_depth",
                ..
            })
        ));
        assert!(listing(&["a.b"], None, 10, 0).validate().is_err());
    }

    #[test]
    fn namespace_rules() {
        assert!(ns(&["users", "u1"]).is_ok());
        assert!(ns(&[]).is_err());
        assert!(ns(&["a.b"]).is_err());
        assert!(ns(&[""]).is_err());
        assert!(ns(&["x"; 17]).is_err());
    }

    #[test]
    fn prefix_suffix_and_joined_forms() {
        let n = ns(&["users", "u1", "memories"]).unwrap();
        assert!(n.starts_with(&["users".into()]));
        assert!(n.starts_with(&[]));
        assert!(!n.starts_with(&["u1".into()]));
        assert!(n.ends_with(&["memories".into()]));
        assert_eq!(n.joined(), "users.u1.memories");
        assert_eq!(ItemNamespace::from_joined("users.u1.memories").unwrap(), n);
    }
}
