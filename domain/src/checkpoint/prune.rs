//! What `prune(keep_latest)` keeps and deletes in one thread (spec §4.9, and §6.3 for
//! LangGraph's SQLite layout): the rule, once, for every store.
//!
//! A store loads one light [`PruneCandidate`] per checkpoint of the thread, lets
//! [`plan_keep_latest`] decide, and executes the [`KeepLatestPlan`] with its own storage
//! operations. Deciding here, without any storage, keeps the in-memory store, the native SQL
//! layout and LangGraph's two layouts from drifting apart, and makes the rule testable alone.
//!
//! The rule:
//! 1. Each namespace keeps its head (the greatest checkpoint id) and, when the head is a legacy
//!    checkpoint (format `v < 4`), the head's parent if it exists and holds `__pregel_tasks`
//!    writes (the pending sends a legacy head still needs).
//! 2. A subgraph namespace (one containing `:`) whose head hangs from a root checkpoint
//!    (`metadata.parents[""]`) that exists but is not kept is deleted whole.
//! 3. Every other namespace loses its checkpoints that are not kept; kept checkpoints whose
//!    parent was deleted become parentless.
//!
//! Candidates are borrowed strings rather than typed ids so a LangGraph layout can plan over
//! whatever Python wrote; the plan borrows from them.

use std::collections::{BTreeMap, BTreeSet};

/// The channel of legacy `Send` packets, whose writes keep a legacy head's parent alive.
pub const TASKS_CHANNEL: &str = "__pregel_tasks";

/// The first checkpoint format version whose sends no longer live in the parent's writes.
const SENDS_IN_CHECKPOINT_FROM: i64 = 4;

/// One checkpoint of the thread being pruned, as far as the rule needs to see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneCandidate<'a> {
    /// The checkpoint's namespace (`""` is the root).
    pub namespace: &'a str,
    /// The checkpoint id.
    pub id: &'a str,
    /// The parent checkpoint id in the same namespace, if any.
    pub parent_id: Option<&'a str>,
    /// The checkpoint format version `v`, when the store can read it (an unreadable one never
    /// counts as legacy).
    pub format_version: Option<i64>,
    /// `metadata.parents[""]`: the root checkpoint a subgraph checkpoint hangs from.
    pub root_parent: Option<&'a str>,
}

/// An owned [`PruneCandidate`], for stores that load their rows before planning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneRow {
    /// See [`PruneCandidate::namespace`].
    pub namespace: String,
    /// See [`PruneCandidate::id`].
    pub id: String,
    /// See [`PruneCandidate::parent_id`].
    pub parent_id: Option<String>,
    /// See [`PruneCandidate::format_version`].
    pub format_version: Option<i64>,
    /// See [`PruneCandidate::root_parent`].
    pub root_parent: Option<String>,
}

impl PruneRow {
    /// The row as the planner reads it.
    pub fn as_candidate(&self) -> PruneCandidate<'_> {
        PruneCandidate {
            namespace: &self.namespace,
            id: &self.id,
            parent_id: self.parent_id.as_deref(),
            format_version: self.format_version,
            root_parent: self.root_parent.as_deref(),
        }
    }
}

/// A checkpoint named by `(namespace, id)`.
pub type CheckpointKey<'a> = (&'a str, &'a str);

/// The decisions of [`plan_keep_latest`] for one thread.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeepLatestPlan<'a> {
    /// Subgraph namespaces to delete whole: checkpoints, writes and anything else stored
    /// under them.
    pub drop_namespaces: BTreeSet<&'a str>,
    /// The checkpoints each remaining namespace keeps. A namespace absent here (because it
    /// holds no checkpoint, only writes or payloads) keeps nothing.
    pub keep: BTreeMap<&'a str, BTreeSet<&'a str>>,
    /// Checkpoints to delete with their writes, in remaining namespaces.
    pub drop_checkpoints: BTreeSet<CheckpointKey<'a>>,
    /// Kept checkpoints whose parent is in `drop_checkpoints`: their parent becomes none.
    pub orphaned: BTreeSet<CheckpointKey<'a>>,
    /// Kept checkpoints whose parent does not exist in their namespace. Waymark's own
    /// layouts leave such a pointer alone; LangGraph's savers clear it too, so the layouts
    /// reproducing them do.
    pub dangling: BTreeSet<CheckpointKey<'a>>,
}

impl KeepLatestPlan<'_> {
    /// Whether `namespace` keeps checkpoint `id`.
    pub fn keeps(&self, namespace: &str, id: &str) -> bool {
        self.keep.get(namespace).is_some_and(|k| k.contains(id))
    }
}

/// Plans `prune(keep_latest)` for one thread from all of its checkpoints.
/// `has_task_writes(namespace, id)` tells whether that checkpoint holds `__pregel_tasks`
/// writes ([`TASKS_CHANNEL`]); it is asked only about a legacy head's parent.
pub fn plan_keep_latest<'a>(
    candidates: &[PruneCandidate<'a>],
    mut has_task_writes: impl FnMut(&str, &str) -> bool,
) -> KeepLatestPlan<'a> {
    let mut by_ns: BTreeMap<&'a str, BTreeMap<&'a str, &PruneCandidate<'a>>> = BTreeMap::new();
    for c in candidates {
        by_ns.entry(c.namespace).or_default().insert(c.id, c);
    }
    // 1. Keep sets: the head, and a legacy head's parent holding pending sends.
    let mut plan = KeepLatestPlan::default();
    for (&ns, rows) in &by_ns {
        let mut keep = BTreeSet::new();
        if let Some((&head_id, head)) = rows.last_key_value() {
            keep.insert(head_id);
            if head
                .format_version
                .is_some_and(|v| v < SENDS_IN_CHECKPOINT_FROM)
                && let Some(parent) = head.parent_id
                && let Some((&parent, _)) = rows.get_key_value(parent)
                && has_task_writes(ns, parent)
            {
                keep.insert(parent);
            }
        }
        plan.keep.insert(ns, keep);
    }
    // 2. Subgraph namespaces hanging from a root checkpoint that exists but is not kept.
    let root_rows = by_ns.get("");
    for (&ns, rows) in &by_ns {
        if !ns.contains(':') {
            continue;
        }
        let hangs_from = rows.last_key_value().and_then(|(_, head)| head.root_parent);
        if let Some(root_id) = hangs_from
            && root_rows.is_some_and(|r| r.contains_key(root_id))
            && !plan.keeps("", root_id)
        {
            plan.drop_namespaces.insert(ns);
        }
    }
    for ns in &plan.drop_namespaces {
        plan.keep.remove(ns);
    }
    // 3. The remaining namespaces: what goes, and which kept pointers lose their target.
    for (&ns, rows) in &by_ns {
        let Some(keep) = plan.keep.get(ns) else {
            continue;
        };
        for (&id, row) in rows {
            if !keep.contains(id) {
                plan.drop_checkpoints.insert((ns, id));
                continue;
            }
            match row.parent_id {
                Some(parent) if rows.contains_key(parent) && !keep.contains(parent) => {
                    plan.orphaned.insert((ns, id));
                }
                Some(parent) if !rows.contains_key(parent) => {
                    plan.dangling.insert((ns, id));
                }
                _ => {}
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(
        namespace: &'a str,
        id: &'a str,
        parent_id: Option<&'a str>,
        v: i64,
        root_parent: Option<&'a str>,
    ) -> PruneCandidate<'a> {
        PruneCandidate {
            namespace,
            id,
            parent_id,
            format_version: Some(v),
            root_parent,
        }
    }

    fn no_sends(_: &str, _: &str) -> bool {
        false
    }

    fn keys<'a>(items: &[(&'a str, &'a str)]) -> BTreeSet<CheckpointKey<'a>> {
        items.iter().copied().collect()
    }

    #[test]
    fn keeps_each_namespace_head_and_orphans_it() {
        let rows = [
            row("", "1", None, 4, None),
            row("", "2", Some("1"), 4, None),
            row("", "3", Some("2"), 4, None),
            row("child:1", "a", None, 4, None),
            row("child:1", "b", Some("a"), 4, None),
        ];
        let plan = plan_keep_latest(&rows, no_sends);
        assert!(plan.drop_namespaces.is_empty());
        assert_eq!(
            plan.drop_checkpoints,
            keys(&[("", "1"), ("", "2"), ("child:1", "a")])
        );
        assert_eq!(plan.orphaned, keys(&[("", "3"), ("child:1", "b")]));
        assert!(plan.dangling.is_empty());
        assert!(plan.keeps("", "3") && plan.keeps("child:1", "b"));
        assert!(!plan.keeps("", "2"));
    }

    #[test]
    fn the_head_is_the_greatest_id_whatever_the_input_order() {
        let rows = [
            row("", "b", None, 4, None),
            row("", "c", Some("b"), 4, None),
            row("", "a", None, 4, None),
        ];
        let plan = plan_keep_latest(&rows, no_sends);
        assert_eq!(plan.keep[""], ["c"].into());
        assert_eq!(plan.drop_checkpoints, keys(&[("", "a"), ("", "b")]));
    }

    #[test]
    fn subgraph_namespaces_hanging_from_a_dropped_root_go_whole() {
        let rows = [
            row("", "1", None, 4, None),
            row("", "2", Some("1"), 4, None),
            row("sub:x", "s1", None, 4, Some("1")),
            row("sub:y", "s2", None, 4, Some("2")),
            row("sub:z", "s3", None, 4, Some("missing")),
        ];
        let plan = plan_keep_latest(&rows, no_sends);
        assert_eq!(plan.drop_namespaces, ["sub:x"].into());
        assert!(!plan.keep.contains_key("sub:x"));
        // Hanging from the kept head, or from a root checkpoint that does not exist: pruned
        // like any namespace.
        assert!(plan.keeps("sub:y", "s2") && plan.keeps("sub:z", "s3"));
        assert_eq!(plan.drop_checkpoints, keys(&[("", "1")]));
    }

    #[test]
    fn only_the_subgraph_heads_root_parent_counts() {
        // The older checkpoint hangs from a dropped root checkpoint, the head from the kept one.
        let rows = [
            row("", "1", None, 4, None),
            row("", "2", Some("1"), 4, None),
            row("sub:x", "s1", None, 4, Some("1")),
            row("sub:x", "s2", Some("s1"), 4, Some("2")),
        ];
        let plan = plan_keep_latest(&rows, no_sends);
        assert!(plan.drop_namespaces.is_empty());
        assert_eq!(plan.drop_checkpoints, keys(&[("", "1"), ("sub:x", "s1")]));
    }

    #[test]
    fn a_namespace_without_a_colon_is_never_dropped_whole() {
        let rows = [
            row("", "1", None, 4, None),
            row("", "2", Some("1"), 4, None),
            row("plain", "p", None, 4, Some("1")),
        ];
        let plan = plan_keep_latest(&rows, no_sends);
        assert!(plan.drop_namespaces.is_empty());
        assert!(plan.keeps("plain", "p"));
    }

    #[test]
    fn legacy_heads_keep_a_parent_with_pending_sends() {
        let rows = [
            row("", "1", None, 1, None),
            row("", "2", Some("1"), 1, None),
            row("", "3", Some("2"), 1, None),
        ];
        let mut asked = Vec::new();
        let plan = plan_keep_latest(&rows, |ns, id| {
            asked.push((ns.to_owned(), id.to_owned()));
            (ns, id) == ("", "2")
        });
        assert_eq!(asked, [(String::new(), "2".to_owned())]);
        assert_eq!(plan.keep[""], ["2", "3"].into());
        assert_eq!(plan.drop_checkpoints, keys(&[("", "1")]));
        assert_eq!(plan.orphaned, keys(&[("", "2")]));
        let plan = plan_keep_latest(&rows, no_sends);
        assert_eq!(plan.drop_checkpoints, keys(&[("", "1"), ("", "2")]));
    }

    #[test]
    fn current_or_unreadable_heads_never_keep_their_parent() {
        let mut rows = [
            row("", "1", None, 4, None),
            row("", "2", Some("1"), 4, None),
        ];
        let plan = plan_keep_latest(&rows, |_, _| true);
        assert_eq!(plan.drop_checkpoints, keys(&[("", "1")]));
        rows[1].format_version = None;
        let plan = plan_keep_latest(&rows, |_, _| true);
        assert_eq!(plan.drop_checkpoints, keys(&[("", "1")]));
    }

    #[test]
    fn a_legacy_heads_missing_parent_is_dangling_not_kept() {
        let rows = [row("", "2", Some("1"), 1, None)];
        let plan = plan_keep_latest(&rows, |_, _| true);
        assert_eq!(plan.keep[""], ["2"].into());
        assert!(plan.drop_checkpoints.is_empty() && plan.orphaned.is_empty());
        assert_eq!(plan.dangling, keys(&[("", "2")]));
    }

    #[test]
    fn owned_rows_plan_like_borrowed_ones() {
        let owned = [
            PruneRow {
                namespace: String::new(),
                id: "1".into(),
                ..PruneRow::default()
            },
            PruneRow {
                namespace: String::new(),
                id: "2".into(),
                parent_id: Some("1".into()),
                format_version: Some(4),
                root_parent: None,
            },
        ];
        let candidates: Vec<_> = owned.iter().map(PruneRow::as_candidate).collect();
        assert_eq!(candidates[1], row("", "2", Some("1"), 4, None));
        let plan = plan_keep_latest(&candidates, no_sends);
        assert_eq!(plan.drop_checkpoints, keys(&[("", "1")]));
        assert_eq!(plan.orphaned, keys(&[("", "2")]));
    }

    #[test]
    fn nothing_to_prune_plans_nothing() {
        assert_eq!(plan_keep_latest(&[], no_sends), KeepLatestPlan::default());
        let rows = [row("", "1", None, 4, None)];
        let plan = plan_keep_latest(&rows, no_sends);
        assert!(plan.drop_checkpoints.is_empty() && plan.orphaned.is_empty());
        assert!(plan.drop_namespaces.is_empty() && plan.dangling.is_empty());
    }
}
