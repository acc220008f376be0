//! Branch and snapshot records in memory.
//!
//! Rules shared with the SQL stores: `created_at` is stamped from the store's clock (the
//! caller's value is ignored); an id already stored is a conflict; branch names are unique per
//! source thread, snapshot names per thread; a thread carries at most one branch and cannot be
//! a branch of itself; lists are oldest first (`created_at`, then id).

use std::sync::Arc;

use async_trait::async_trait;
use waymark_domain::branch::{Branch, BranchRepository, Snapshot, SnapshotRepository};
use waymark_domain::{BranchId, DomainError, DomainResult, SnapshotId, ThreadId};

use super::Shared;

/// The in-memory [`BranchRepository`].
pub struct MemoryBranchRepository {
    shared: Arc<Shared>,
}

impl MemoryBranchRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[async_trait]
impl BranchRepository for MemoryBranchRepository {
    async fn create(&self, branch: Branch) -> DomainResult<Branch> {
        branch.validate_for_write()?;
        let now = self.shared.now();
        let mut state = self.shared.lock();
        if state.branches.contains_key(&branch.id) {
            return Err(DomainError::conflict(
                "branch",
                format!("branch {} already exists", branch.id),
            ));
        }
        for other in state.branches.values() {
            if other.source_thread_id == branch.source_thread_id && other.name == branch.name {
                return Err(DomainError::conflict(
                    "branch",
                    format!(
                        "thread {} already has a branch named {:?}",
                        branch.source_thread_id,
                        branch.name.as_str()
                    ),
                ));
            }
            if other.thread_id == branch.thread_id {
                return Err(DomainError::conflict(
                    "branch",
                    format!("thread {} already carries a branch", branch.thread_id),
                ));
            }
        }
        let stored = Branch {
            created_at: now,
            ..branch
        };
        state.branches.insert(stored.id, stored.clone());
        Ok(stored)
    }

    async fn get(&self, id: BranchId) -> DomainResult<Option<Branch>> {
        Ok(self.shared.lock().branches.get(&id).cloned())
    }

    async fn list_for_thread(&self, source_thread_id: &ThreadId) -> DomainResult<Vec<Branch>> {
        let state = self.shared.lock();
        let mut rows: Vec<Branch> = state
            .branches
            .values()
            .filter(|b| &b.source_thread_id == source_thread_id)
            .cloned()
            .collect();
        rows.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(rows)
    }

    async fn find_by_branch_thread(&self, thread_id: &ThreadId) -> DomainResult<Option<Branch>> {
        let state = self.shared.lock();
        Ok(state
            .branches
            .values()
            .find(|b| &b.thread_id == thread_id)
            .cloned())
    }

    async fn delete(&self, id: BranchId) -> DomainResult<bool> {
        Ok(self.shared.lock().branches.remove(&id).is_some())
    }
}

/// The in-memory [`SnapshotRepository`].
pub struct MemorySnapshotRepository {
    shared: Arc<Shared>,
}

impl MemorySnapshotRepository {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[async_trait]
impl SnapshotRepository for MemorySnapshotRepository {
    async fn create(&self, snapshot: Snapshot) -> DomainResult<Snapshot> {
        snapshot.validate_for_write()?;
        let now = self.shared.now();
        let mut state = self.shared.lock();
        if state.snapshots.contains_key(&snapshot.id) {
            return Err(DomainError::conflict(
                "snapshot",
                format!("snapshot {} already exists", snapshot.id),
            ));
        }
        if state
            .snapshots
            .values()
            .any(|s| s.thread_id == snapshot.thread_id && s.name == snapshot.name)
        {
            return Err(DomainError::conflict(
                "snapshot",
                format!(
                    "thread {} already has a snapshot named {:?}",
                    snapshot.thread_id,
                    snapshot.name.as_str()
                ),
            ));
        }
        let stored = Snapshot {
            created_at: now,
            ..snapshot
        };
        state.snapshots.insert(stored.id, stored.clone());
        Ok(stored)
    }

    async fn get(&self, id: SnapshotId) -> DomainResult<Option<Snapshot>> {
        Ok(self.shared.lock().snapshots.get(&id).cloned())
    }

    async fn list_for_thread(&self, thread_id: &ThreadId) -> DomainResult<Vec<Snapshot>> {
        let state = self.shared.lock();
        let mut rows: Vec<Snapshot> = state
            .snapshots
            .values()
            .filter(|s| &s.thread_id == thread_id)
            .cloned()
            .collect();
        rows.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(rows)
    }

    async fn delete(&self, id: SnapshotId) -> DomainResult<bool> {
        Ok(self.shared.lock().snapshots.remove(&id).is_some())
    }
}
