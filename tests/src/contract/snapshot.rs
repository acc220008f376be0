//! The snapshot contract: named markers on checkpoints, unique names per thread,
//! oldest-first listing and deletes that keep the checkpoint.

use chrono::Duration;
use serde_json::json;
use waymark_domain::branch::{Snapshot, SnapshotKind};
use waymark_domain::clock::Clock;
use waymark_domain::{CheckpointId, CheckpointNamespace, Name, SnapshotId, ThreadId};

use super::fixtures::*;
use crate::harness::TestBackend;

/// A thread with two checkpoints.
async fn thread_with_checkpoints(b: &TestBackend) -> (ThreadId, Vec<CheckpointId>) {
    let thread = create_thread(b, &user_scope()).await;
    let refs = put_chain(b, &thread, 2).await;
    (thread, refs.into_iter().map(|r| r.checkpoint_id).collect())
}

fn snapshot(b: &TestBackend, thread: &ThreadId, at: &CheckpointId, name: &str) -> Snapshot {
    Snapshot {
        id: SnapshotId::new_random(),
        thread_id: thread.clone(),
        namespace: CheckpointNamespace::root(),
        checkpoint_id: at.clone(),
        name: Name::parse(name).expect("name"),
        description: Some("before the refactor".into()),
        kind: SnapshotKind::Milestone,
        metadata: obj(json!({"tag": "v1"})),
        created_at: b.clock.now(),
    }
}

/// A created snapshot round-trips; unknown ids read as none.
pub async fn create_and_get_round_trip(b: &TestBackend) {
    let (thread, cps) = thread_with_checkpoints(b).await;
    let mut s = snapshot(b, &thread, &cps[0], "milestone ✓");
    s.kind = SnapshotKind::Backup;
    s.description = None;
    let created = b.stores.snapshots.create(s.clone()).await.unwrap();
    assert_eq!(created, s);
    assert_eq!(b.stores.snapshots.get(s.id).await.unwrap(), Some(s));
    assert_eq!(
        b.stores
            .snapshots
            .get(SnapshotId::new_random())
            .await
            .unwrap(),
        None
    );
}

/// A thread's snapshots list oldest first, and only its own.
pub async fn list_for_thread_is_oldest_first(b: &TestBackend) {
    let (thread, cps) = thread_with_checkpoints(b).await;
    let (other, other_cps) = thread_with_checkpoints(b).await;
    let mut made = Vec::new();
    for (name, cp) in [
        ("z-first", &cps[1]),
        ("a-second", &cps[0]),
        ("m-third", &cps[1]),
    ] {
        made.push(
            b.stores
                .snapshots
                .create(snapshot(b, &thread, cp, name))
                .await
                .unwrap(),
        );
        b.clock.advance(Duration::seconds(1));
    }
    b.stores
        .snapshots
        .create(snapshot(b, &other, &other_cps[0], "z-first"))
        .await
        .unwrap();
    assert_eq!(
        b.stores.snapshots.list_for_thread(&thread).await.unwrap(),
        made
    );
    assert!(
        b.stores
            .snapshots
            .list_for_thread(&thread_id())
            .await
            .unwrap()
            .is_empty()
    );
}

/// A name already used in the thread is a conflict; nothing is written.
pub async fn names_are_unique_per_thread(b: &TestBackend) {
    let (thread, cps) = thread_with_checkpoints(b).await;
    let first = b
        .stores
        .snapshots
        .create(snapshot(b, &thread, &cps[0], "same"))
        .await
        .unwrap();
    let dup = snapshot(b, &thread, &cps[1], "same");
    expect_conflict(b.stores.snapshots.create(dup.clone()).await);
    assert_eq!(b.stores.snapshots.get(dup.id).await.unwrap(), None);
    assert_eq!(
        b.stores.snapshots.list_for_thread(&thread).await.unwrap(),
        vec![first]
    );
}

/// Deleting removes the snapshot (true, then false); the checkpoint stays.
pub async fn delete_keeps_the_checkpoint(b: &TestBackend) {
    let (thread, cps) = thread_with_checkpoints(b).await;
    let s = b
        .stores
        .snapshots
        .create(snapshot(b, &thread, &cps[0], "x"))
        .await
        .unwrap();
    assert!(b.stores.snapshots.delete(s.id).await.unwrap());
    assert!(!b.stores.snapshots.delete(s.id).await.unwrap());
    assert_eq!(b.stores.snapshots.get(s.id).await.unwrap(), None);
    let cp = b
        .stores
        .checkpoints
        .get_tuple(&thread, &CheckpointNamespace::root(), Some(cps[0].clone()))
        .await
        .unwrap();
    assert!(cp.is_some());
    b.stores
        .snapshots
        .create(snapshot(b, &thread, &cps[0], "x"))
        .await
        .expect("name free again");
}

// -- case list (every `pub async fn` above, in order) ----------------------------------------

/// Runs every snapshot case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `snapshot`.
#[macro_export]
macro_rules! snapshot_contract {
    ($factory:path) => {
        mod snapshot {
            $crate::__contract_cases!(
                $factory,
                snapshot,
                [
                    create_and_get_round_trip,
                    list_for_thread_is_oldest_first,
                    names_are_unique_per_thread,
                    delete_keeps_the_checkpoint,
                ]
            );
        }
    };
}
