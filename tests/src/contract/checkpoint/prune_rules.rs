//! Beyond the conformance suite: prune details (spec §4.9).

use serde_json::json;
use waymark_domain::CheckpointId;
use waymark_domain::checkpoint::{CheckpointQuery, CheckpointRef, PruneStrategy};

use super::helpers::*;
use crate::contract::fixtures::*;
use crate::harness::TestBackend;

/// A kept head whose parent was pruned loses its parent id.
pub async fn prune_keep_latest_clears_dangling_parent(b: &TestBackend) {
    let thread = thread_id();
    let refs = put_chain(b, &thread, 3).await;
    prune(b, vec![thread.clone()], PruneStrategy::KeepLatest).await;
    let head = get(b, &refs[2]).await.unwrap();
    assert_eq!(head.parent_id, None);
}

/// A subgraph namespace hanging from a root checkpoint that is not kept is dropped whole; one
/// hanging from the kept head keeps its own latest.
pub async fn prune_drops_subgraphs_of_pruned_roots(b: &TestBackend) {
    let thread = thread_id();
    let roots = put_chain(b, &thread, 2).await;
    let under =
        |root_id: &CheckpointId| json!({"source": "loop", "parents": {"": root_id.as_str()}});
    let old_ns = ns("sub:old");
    let new_ns = ns("sub:new");
    let o1 = put_meta(b, &thread, &old_ns, None, under(&roots[0].checkpoint_id)).await;
    put_meta(
        b,
        &thread,
        &old_ns,
        Some(&o1.checkpoint_id),
        under(&roots[0].checkpoint_id),
    )
    .await;
    let n1 = put_meta(b, &thread, &new_ns, None, under(&roots[1].checkpoint_id)).await;
    let n2 = put_meta(
        b,
        &thread,
        &new_ns,
        Some(&n1.checkpoint_id),
        under(&roots[1].checkpoint_id),
    )
    .await;
    prune(b, vec![thread.clone()], PruneStrategy::KeepLatest).await;
    assert!(
        list(b, CheckpointQuery::thread_ns(thread.clone(), old_ns))
            .await
            .is_empty()
    );
    assert_eq!(
        ids_of(&list(b, CheckpointQuery::thread_ns(thread.clone(), new_ns)).await),
        vec![n2.checkpoint_id]
    );
    assert_eq!(
        ids_of(&list(b, CheckpointQuery::thread_ns(thread, root())).await),
        vec![roots[1].checkpoint_id.clone()]
    );
}

/// A legacy head (`v` < 4) keeps its parent when the parent holds `__pregel_tasks` writes; a
/// current head (`v` = 4) does not.
pub async fn prune_keeps_legacy_parent_with_pregel_tasks(b: &TestBackend) {
    for (v, parent_kept) in [(1, true), (4, false)] {
        let thread = thread_id();
        let mut refs: Vec<CheckpointRef> = Vec::new();
        for i in 0..3 {
            let mut cp = checkpoint(CheckpointId::generate(i), &[]);
            cp.v = v;
            let parent = refs.last().map(|r| r.checkpoint_id.clone());
            refs.push(
                b.stores
                    .checkpoints
                    .put(put_of(
                        &thread,
                        &root(),
                        parent.as_ref(),
                        cp,
                        meta("loop", i, json!({})),
                    ))
                    .await
                    .unwrap(),
            );
        }
        b.stores
            .checkpoints
            .put_writes(writes(
                &refs[1],
                &fresh_task(),
                "",
                vec![("__pregel_tasks", mp_str("send"))],
            ))
            .await
            .unwrap();
        prune(b, vec![thread.clone()], PruneStrategy::KeepLatest).await;
        let mut want = vec![refs[2].checkpoint_id.clone()];
        if parent_kept {
            want.push(refs[1].checkpoint_id.clone());
        }
        assert_eq!(ids_of(&list_thread(b, &thread).await), want, "v = {v}");
    }
}
