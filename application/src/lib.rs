//! # waymark-application
//!
//! Waymark's services: the use cases a host (the HTTP service, the CLI, an agent runtime)
//! calls. Each service holds the domain ports it needs as `Arc<dyn Port>` and nothing else:
//! no database, no HTTP, no serialization format. Storage is swapped by handing in other
//! ports ([`waymark_domain::Stores`]).
//!
//! | service | role |
//! |---|---|
//! | [`ThreadCheckpointManager`] | checkpoints of one thread: create, restore, history, diff, fork, snapshots, rollback, retention execution |
//! | [`SessionCheckpointManager`] | session policy across its threads, statistics, atomic cross-thread sync points; acts only through the thread layer |
//! | [`SessionManager`], [`ThreadManager`] | lifecycle, metadata, status, moves, access checks, cascading deletes |
//! | [`HistoryManager`] | message recording, token usage, statistics and costs |
//! | [`RunJournal`] | the buffered writer of a run's events (spec §2) |
//! | [`ThreadHistoryService`] | summarization-safe history and the visible feed (spec §3) |
//! | [`ChatStreamService`] | chat-stream frame buffering and persistence (spec §5) |
//! | [`FeedbackService`] | per-run feedback (spec §4) |
//! | [`transfer::Exporter`], [`transfer::Importer`] | moving every record between backends (export, import, verified copy) |
//! | [`RunService`] | the run lifecycle: admission, leases, heartbeats, finish/cancel, expiry sweep, startup reconciliation, derived thread status (spec §6.2) |
//!
//! Every service returns [`ApplicationError`], which wraps [`waymark_domain::DomainError`]
//! and adds the outcomes only a service produces.

#![warn(missing_docs)]

mod access;
pub mod chat_stream;
pub mod codec;
pub mod error;
pub mod feedback;
pub mod history;
pub mod journal;
pub mod runs;
pub mod session_checkpoints;
pub mod sessions;
pub mod thread_checkpoints;
pub mod thread_history;
pub mod threads;
pub mod transfer;

#[cfg(test)]
mod test_support;

pub use access::Access;
pub use chat_stream::{ChatStreamConfig, ChatStreamService};
pub use codec::{ChannelMessage, MessageCodec};
pub use error::{AppResult, ApplicationError};
pub use feedback::FeedbackService;
pub use history::HistoryManager;
pub use journal::{JournalConfig, JournalHandle, RunJournal};
pub use runs::{RunConfig, RunService};
pub use session_checkpoints::SessionCheckpointManager;
pub use sessions::SessionManager;
pub use thread_checkpoints::ThreadCheckpointManager;
pub use thread_history::ThreadHistoryService;
pub use threads::ThreadManager;
