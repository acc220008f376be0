//! What `prune(keep_latest)` keeps and deletes in one thread (spec §4.9, and §6.3 for SQLite).
//!
//! Both layouts load a light row per checkpoint, let [`plan_keep_latest`] decide, and then
//! execute the plan with their own SQL. Deciding in Rust keeps the two layouts from drifting
//! apart and makes the rule testable without a database.

use std::collections::{BTreeMap, HashMap, HashSet};

/// One checkpoint of the thread being pruned.
#[derive(Debug, Clone)]
pub(crate) struct PruneRow {
    pub ns: String,
    pub id: String,
    pub parent: Option<String>,
    /// The checkpoint format version, when readable.
    pub v: Option<i64>,
    /// `metadata.parents[""]`: the root checkpoint a subgraph checkpoint hangs from.
    pub root_parent: Option<String>,
}

/// The decisions for one thread.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PrunePlan {
    /// Subgraph namespaces to delete whole (their root checkpoint is gone).
    pub drop_namespaces: Vec<String>,
    /// `(ns, id)` checkpoints to delete with their writes.
    pub drop_checkpoints: Vec<(String, String)>,
    /// `(ns, id)` kept checkpoints whose parent is not kept: their parent becomes NULL.
    pub orphans: Vec<(String, String)>,
}

/// Plans `keep_latest` for one thread. `has_task_writes` holds the `(ns, id)` checkpoints
/// that have `__pregel_tasks` writes (the legacy pending-sends rule).
pub(crate) fn plan_keep_latest(
    rows: &[PruneRow],
    has_task_writes: &HashSet<(String, String)>,
) -> PrunePlan {
    let mut by_ns: BTreeMap<&str, Vec<&PruneRow>> = BTreeMap::new();
    for row in rows {
        by_ns.entry(row.ns.as_str()).or_default().push(row);
    }
    let mut keep: HashSet<(&str, &str)> = HashSet::new();
    let mut heads: HashMap<&str, &PruneRow> = HashMap::new();
    for (ns, list) in &by_ns {
        let Some(head) = list.iter().max_by(|a, b| a.id.cmp(&b.id)) else {
            continue;
        };
        heads.insert(ns, head);
        keep.insert((ns, head.id.as_str()));
        if head.v.is_some_and(|v| v < 4)
            && let Some(parent) = &head.parent
            && list.iter().any(|r| &r.id == parent)
            && has_task_writes.contains(&(ns.to_string(), parent.clone()))
        {
            keep.insert((ns, parent.as_str()));
        }
    }
    let root_ids: HashSet<&str> = by_ns
        .get("")
        .map(|l| l.iter().map(|r| r.id.as_str()).collect())
        .unwrap_or_default();
    let mut plan = PrunePlan::default();
    for (ns, list) in &by_ns {
        if ns.contains(':') {
            let root = heads.get(ns).and_then(|h| h.root_parent.as_deref());
            if let Some(root) = root
                && root_ids.contains(root)
                && !keep.contains(&("", root))
            {
                plan.drop_namespaces.push(ns.to_string());
                continue;
            }
        }
        for r in list {
            if !keep.contains(&(*ns, r.id.as_str())) {
                plan.drop_checkpoints.push((ns.to_string(), r.id.clone()));
            } else if r
                .parent
                .as_deref()
                .is_some_and(|p| !keep.contains(&(*ns, p)))
            {
                // Python nulls every kept parent pointer that leaves the kept set, dangling
                // ones included.
                plan.orphans.push((ns.to_string(), r.id.clone()));
            }
        }
    }
    plan.drop_checkpoints.sort();
    plan.orphans.sort();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ns: &str, id: &str, parent: Option<&str>, v: i64, root: Option<&str>) -> PruneRow {
        PruneRow {
            ns: ns.into(),
            id: id.into(),
            parent: parent.map(Into::into),
            v: Some(v),
            root_parent: root.map(Into::into),
        }
    }

    #[test]
    fn keeps_each_namespace_head_and_orphans_it() {
        let rows = vec![
            row("", "1", None, 4, None),
            row("", "2", Some("1"), 4, None),
            row("", "3", Some("2"), 4, None),
            row("child:1", "a", None, 4, None),
            row("child:1", "b", Some("a"), 4, None),
        ];
        let plan = plan_keep_latest(&rows, &HashSet::new());
        assert!(plan.drop_namespaces.is_empty());
        assert_eq!(
            plan.drop_checkpoints,
            vec![
                ("".into(), "1".into()),
                ("".into(), "2".into()),
                ("child:1".into(), "a".into())
            ]
        );
        assert_eq!(
            plan.orphans,
            vec![("".into(), "3".into()), ("child:1".into(), "b".into())]
        );
    }

    #[test]
    fn subgraph_namespaces_hanging_from_a_dropped_root_go_whole() {
        let rows = vec![
            row("", "1", None, 4, None),
            row("", "2", Some("1"), 4, None),
            row("sub:x", "s1", None, 4, Some("1")),
            row("sub:y", "s2", None, 4, Some("2")),
            row("sub:z", "s3", None, 4, Some("missing")),
        ];
        let plan = plan_keep_latest(&rows, &HashSet::new());
        assert_eq!(plan.drop_namespaces, vec!["sub:x".to_string()]);
        assert_eq!(plan.drop_checkpoints, vec![("".into(), "1".into())]);
    }

    #[test]
    fn legacy_heads_keep_a_parent_with_pending_sends() {
        let rows = vec![
            row("", "1", None, 1, None),
            row("", "2", Some("1"), 1, None),
            row("", "3", Some("2"), 1, None),
        ];
        let sends: HashSet<_> = [("".to_string(), "2".to_string())].into();
        let plan = plan_keep_latest(&rows, &sends);
        assert_eq!(plan.drop_checkpoints, vec![("".into(), "1".into())]);
        assert_eq!(plan.orphans, vec![("".into(), "2".into())]);
        let plan = plan_keep_latest(&rows, &HashSet::new());
        assert_eq!(plan.drop_checkpoints.len(), 2);
    }
}
