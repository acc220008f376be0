//! The set of ports a Waymark deployment wires together.

use std::sync::Arc;

use crate::branch::{BranchRepository, SnapshotRepository};
use crate::chat_stream::ChatStreamRepository;
use crate::checkpoint::CheckpointRepository;
use crate::feedback::FeedbackRepository;
use crate::kv::KeyValueRepository;
use crate::run::RunRepository;
use crate::run_event::RunEventRepository;
use crate::session::SessionRepository;
use crate::thread::ThreadRepository;
use crate::token_usage::TokenUsageRepository;

/// One implementation of every port, as a connection factory returns them. The checkpoint
/// store may come from a different backend than the others (LangGraph's own tables).
#[derive(Clone)]
pub struct Stores {
    /// Sessions.
    pub sessions: Arc<dyn SessionRepository>,
    /// Thread metadata.
    pub threads: Arc<dyn ThreadRepository>,
    /// Branch records.
    pub branches: Arc<dyn BranchRepository>,
    /// Snapshot records.
    pub snapshots: Arc<dyn SnapshotRepository>,
    /// Checkpoints.
    pub checkpoints: Arc<dyn CheckpointRepository>,
    /// Run events.
    pub run_events: Arc<dyn RunEventRepository>,
    /// Token usage.
    pub token_usage: Arc<dyn TokenUsageRepository>,
    /// Feedback.
    pub feedback: Arc<dyn FeedbackRepository>,
    /// Chat streams.
    pub chat_streams: Arc<dyn ChatStreamRepository>,
    /// Key-value items.
    pub items: Arc<dyn KeyValueRepository>,
    /// Runs and their leases.
    pub runs: Arc<dyn RunRepository>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stores { .. }")
    }
}
