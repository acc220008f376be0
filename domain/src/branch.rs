//! Branches and snapshots: named markers over a thread's checkpoints.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};
use crate::ids::{BranchId, CheckpointId, CheckpointNamespace, Name, SnapshotId, ThreadId};
use crate::json::JsonObject;

/// A named line of work forked from a checkpoint of a source thread into its own thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Branch {
    /// The id.
    pub id: BranchId,
    /// The name, unique among the source thread's branches.
    pub name: Name,
    /// The thread it was forked from.
    pub source_thread_id: ThreadId,
    /// The namespace of the fork point.
    pub source_namespace: CheckpointNamespace,
    /// The fork point.
    pub source_checkpoint_id: CheckpointId,
    /// The new thread that carries the branch.
    pub thread_id: ThreadId,
    /// Free-form metadata.
    pub metadata: JsonObject,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
}

impl Branch {
    /// The rules every store applies before recording a branch: JSON metadata a database can
    /// hold, and a branch thread distinct from its source.
    pub fn validate_for_write(&self) -> DomainResult<()> {
        crate::json::check_json_object("metadata", &self.metadata)?;
        if self.thread_id == self.source_thread_id {
            return Err(DomainError::invalid(
                "thread_id",
                "a branch is carried by a new thread, not by its source thread",
            ));
        }
        Ok(())
    }
}

/// The branch port.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait BranchRepository: Send + Sync {
    /// Records a branch. A name already used on the source thread, or a branch thread that
    /// already carries a branch, is a conflict.
    async fn create(&self, branch: Branch) -> DomainResult<Branch>;
    /// The branch.
    async fn get(&self, id: BranchId) -> DomainResult<Option<Branch>>;
    /// Branches forked from `source_thread_id`, oldest first.
    async fn list_for_thread(&self, source_thread_id: &ThreadId) -> DomainResult<Vec<Branch>>;
    /// The branch whose thread is `thread_id`, if that thread is a branch.
    async fn find_by_branch_thread(&self, thread_id: &ThreadId) -> DomainResult<Option<Branch>>;
    /// Deletes the record (not the thread); false when missing.
    async fn delete(&self, id: BranchId) -> DomainResult<bool>;
}

/// Why a snapshot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKind {
    /// A point worth returning to.
    Milestone,
    /// A safety copy before a risky operation.
    Backup,
}

impl SnapshotKind {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Milestone => "milestone",
            Self::Backup => "backup",
        }
    }
}

impl std::str::FromStr for SnapshotKind {
    type Err = DomainError;
    fn from_str(s: &str) -> DomainResult<Self> {
        match s {
            "milestone" => Ok(Self::Milestone),
            "backup" => Ok(Self::Backup),
            other => Err(DomainError::invalid(
                "kind",
                format!("unknown snapshot kind {other:?}; use milestone or backup"),
            )),
        }
    }
}

/// A named, described marker on one checkpoint. Checkpoints a snapshot pins are never
/// removed by pruning or retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The id.
    pub id: SnapshotId,
    /// The thread.
    pub thread_id: ThreadId,
    /// The namespace of the pinned checkpoint.
    pub namespace: CheckpointNamespace,
    /// The pinned checkpoint.
    pub checkpoint_id: CheckpointId,
    /// The name, unique within the thread.
    pub name: Name,
    /// A description.
    pub description: Option<String>,
    /// Milestone or backup.
    pub kind: SnapshotKind,
    /// Free-form metadata.
    pub metadata: JsonObject,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
}

impl Snapshot {
    /// The rules every store applies before recording a snapshot: JSON metadata and a
    /// description a database can hold.
    pub fn validate_for_write(&self) -> DomainResult<()> {
        crate::json::check_json_object("metadata", &self.metadata)?;
        if let Some(d) = &self.description {
            crate::json::check_no_nul("description", d)?;
        }
        Ok(())
    }
}

/// The snapshot port.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait SnapshotRepository: Send + Sync {
    /// Records a snapshot; a name already used in the thread is a conflict.
    async fn create(&self, snapshot: Snapshot) -> DomainResult<Snapshot>;
    /// The snapshot.
    async fn get(&self, id: SnapshotId) -> DomainResult<Option<Snapshot>>;
    /// The thread's snapshots, oldest first.
    async fn list_for_thread(&self, thread_id: &ThreadId) -> DomainResult<Vec<Snapshot>>;
    /// Deletes the snapshot (the checkpoint stays); false when missing.
    async fn delete(&self, id: SnapshotId) -> DomainResult<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_and_snapshot_write_rules() {
        let t = ThreadId::parse("t").unwrap();
        let mut b = Branch {
            id: BranchId::new_random(),
            name: Name::parse("b").unwrap(),
            source_thread_id: t.clone(),
            source_namespace: CheckpointNamespace::root(),
            source_checkpoint_id: CheckpointId::parse("c").unwrap(),
            thread_id: t.clone(),
            metadata: JsonObject::new(),
            created_at: chrono::Utc::now(),
        };
        assert_eq!(
            b.validate_for_write().unwrap_err(),
            DomainError::invalid(
                "thread_id",
                "a branch is carried by a new thread, not by its source thread"
            )
        );
        b.thread_id = ThreadId::parse("t2").unwrap();
        assert!(b.validate_for_write().is_ok());
        let mut s = Snapshot {
            id: SnapshotId::new_random(),
            thread_id: t,
            namespace: CheckpointNamespace::root(),
            checkpoint_id: CheckpointId::parse("c").unwrap(),
            name: Name::parse("s").unwrap(),
            description: Some("fine".into()),
            kind: SnapshotKind::Backup,
            metadata: JsonObject::new(),
            created_at: chrono::Utc::now(),
        };
        assert!(s.validate_for_write().is_ok());
        s.description = Some("nul\0".into());
        assert!(s.validate_for_write().unwrap_err().is_invalid_input());
    }

    #[test]
    fn snapshot_kind_text_round_trips() {
        for k in [SnapshotKind::Milestone, SnapshotKind::Backup] {
            assert_eq!(k.as_str().parse::<SnapshotKind>().unwrap(), k);
        }
        assert!("other".parse::<SnapshotKind>().is_err());
    }
}
