//! The branch contract: records of forks, unique names per source thread, one branch per
//! branch thread, oldest-first listing and deletes that keep the threads.

use chrono::Duration;
use serde_json::json;
use waymark_domain::branch::Branch;
use waymark_domain::clock::Clock;
use waymark_domain::{BranchId, CheckpointId, CheckpointNamespace, Name, ThreadId, UserScope};

use super::fixtures::*;
use crate::harness::TestBackend;

/// A source thread with one checkpoint, owned by a fresh user.
async fn source(b: &TestBackend) -> (UserScope, ThreadId, CheckpointId) {
    let scope = user_scope();
    let thread = create_thread(b, &scope).await;
    let r = put_chain(b, &thread, 1).await.remove(0);
    (scope, thread, r.checkpoint_id)
}

fn branch(
    b: &TestBackend,
    name: &str,
    src: &ThreadId,
    at: &CheckpointId,
    thread: &ThreadId,
) -> Branch {
    Branch {
        id: BranchId::new_random(),
        name: Name::parse(name).expect("name"),
        source_thread_id: src.clone(),
        source_namespace: CheckpointNamespace::root(),
        source_checkpoint_id: at.clone(),
        thread_id: thread.clone(),
        metadata: obj(json!({"why": "try another answer"})),
        created_at: b.clock.now(),
    }
}

/// A created branch round-trips; unknown ids read as none.
pub async fn create_and_get_round_trip(b: &TestBackend) {
    let (scope, src, at) = source(b).await;
    let fork = create_thread(b, &scope).await;
    let mut br = branch(b, "alternative ✓", &src, &at, &fork);
    br.source_namespace = ns("child:1");
    let created = b.stores.branches.create(br.clone()).await.unwrap();
    assert_eq!(created, br);
    assert_eq!(b.stores.branches.get(br.id).await.unwrap(), Some(br));
    assert_eq!(
        b.stores.branches.get(BranchId::new_random()).await.unwrap(),
        None
    );
}

/// A source thread's branches list oldest first, and only its own.
pub async fn list_for_thread_is_oldest_first(b: &TestBackend) {
    let (scope, src, at) = source(b).await;
    let (other_src, other_at) = {
        let (_, t, c) = source(b).await;
        (t, c)
    };
    let mut made = Vec::new();
    for name in ["c-third", "a-first", "b-second"] {
        let fork = create_thread(b, &scope).await;
        made.push(
            b.stores
                .branches
                .create(branch(b, name, &src, &at, &fork))
                .await
                .unwrap(),
        );
        b.clock.advance(Duration::seconds(1));
    }
    let fork = create_thread(b, &scope).await;
    b.stores
        .branches
        .create(branch(b, "elsewhere", &other_src, &other_at, &fork))
        .await
        .unwrap();
    assert_eq!(b.stores.branches.list_for_thread(&src).await.unwrap(), made);
    assert!(
        b.stores
            .branches
            .list_for_thread(&thread_id())
            .await
            .unwrap()
            .is_empty()
    );
}

/// A name already used on the source thread is a conflict; the same name on another source
/// is fine.
pub async fn names_are_unique_per_source_thread(b: &TestBackend) {
    let (scope, src, at) = source(b).await;
    let f1 = create_thread(b, &scope).await;
    let first = b
        .stores
        .branches
        .create(branch(b, "same", &src, &at, &f1))
        .await
        .unwrap();
    let f2 = create_thread(b, &scope).await;
    let dup = branch(b, "same", &src, &at, &f2);
    expect_conflict(b.stores.branches.create(dup.clone()).await);
    assert_eq!(b.stores.branches.get(dup.id).await.unwrap(), None);
    assert_eq!(
        b.stores.branches.list_for_thread(&src).await.unwrap(),
        vec![first]
    );
    let (_, other_src, other_at) = source(b).await;
    b.stores
        .branches
        .create(branch(b, "same", &other_src, &other_at, &f2))
        .await
        .expect("same name on another source");
}

/// A thread carries at most one branch: a second record for it is a conflict.
pub async fn a_branch_thread_carries_one_branch(b: &TestBackend) {
    let (scope, src, at) = source(b).await;
    let fork = create_thread(b, &scope).await;
    b.stores
        .branches
        .create(branch(b, "one", &src, &at, &fork))
        .await
        .unwrap();
    let second = branch(b, "two", &src, &at, &fork);
    expect_conflict(b.stores.branches.create(second.clone()).await);
    assert_eq!(b.stores.branches.get(second.id).await.unwrap(), None);
}

/// `find_by_branch_thread` answers the branch a thread carries, none for other threads.
pub async fn find_by_branch_thread(b: &TestBackend) {
    let (scope, src, at) = source(b).await;
    let fork = create_thread(b, &scope).await;
    let br = b
        .stores
        .branches
        .create(branch(b, "x", &src, &at, &fork))
        .await
        .unwrap();
    assert_eq!(
        b.stores
            .branches
            .find_by_branch_thread(&fork)
            .await
            .unwrap(),
        Some(br)
    );
    assert_eq!(
        b.stores.branches.find_by_branch_thread(&src).await.unwrap(),
        None
    );
}

/// Deleting removes the record (true, then false) and keeps both threads.
pub async fn delete_removes_only_the_record(b: &TestBackend) {
    let (scope, src, at) = source(b).await;
    let fork = create_thread(b, &scope).await;
    let br = b
        .stores
        .branches
        .create(branch(b, "x", &src, &at, &fork))
        .await
        .unwrap();
    assert!(b.stores.branches.delete(br.id).await.unwrap());
    assert!(!b.stores.branches.delete(br.id).await.unwrap());
    assert_eq!(b.stores.branches.get(br.id).await.unwrap(), None);
    assert_eq!(
        b.stores
            .branches
            .find_by_branch_thread(&fork)
            .await
            .unwrap(),
        None
    );
    assert!(b.stores.threads.get(&scope, &fork).await.unwrap().is_some());
    assert!(b.stores.threads.get(&scope, &src).await.unwrap().is_some());
    // The name is free again.
    b.stores
        .branches
        .create(branch(b, "x", &src, &at, &fork))
        .await
        .unwrap();
}

// -- case list (every `pub async fn` above, in order) ----------------------------------------

/// Runs every branch case against `$factory` (an absolute path to an
/// `async fn() -> Option<TestBackend>`): one `#[tokio::test]` per case in a module `branch`.
#[macro_export]
macro_rules! branch_contract {
    ($factory:path) => {
        mod branch {
            $crate::__contract_cases!(
                $factory,
                branch,
                [
                    create_and_get_round_trip,
                    list_for_thread_is_oldest_first,
                    names_are_unique_per_source_thread,
                    a_branch_thread_carries_one_branch,
                    find_by_branch_thread,
                    delete_removes_only_the_record,
                ]
            );
        }
    };
}
