//! # waymark-domain
//!
//! The language of Waymark: the entities and value objects of agent persistence (sessions,
//! threads, branches, snapshots, LangGraph-compatible checkpoints, run events, token usage,
//! feedback, chat streams, key-value items, runs) and one repository trait per aggregate, the
//! *ports* that storage backends implement.
//!
//! This crate knows no database, runtime or transport. Ids and names are parse-don't-validate
//! newtypes ([`ids`]), so a store never sees an empty id or a NUL byte. Every port returns
//! [`DomainError`], which classifies failures as not found, conflict, invalid input or
//! storage failure.
//!
//! With the `mock` feature every port has a [mockall](https://docs.rs/mockall) mock (`MockThreadRepository`, ...)
//! for unit tests of code that depends on the ports.

#![warn(missing_docs)]

pub mod branch;
pub mod chat_stream;
pub mod checkpoint;
pub mod checkpoint_time;
pub mod clock;
pub mod error;
pub mod feedback;
pub mod ids;
pub mod json;
pub mod kv;
pub mod paging;
pub mod run;
pub mod run_event;
pub mod scope;
pub mod session;
pub mod stores;
pub mod thread;
pub mod token_usage;

pub use error::{DomainError, DomainResult};
pub use ids::*;
pub use json::{JsonObject, JsonValue};
pub use scope::UserScope;
pub use stores::Stores;

/// The mocks of every port (feature `mock`), gathered for convenient import.
#[cfg(any(test, feature = "mock"))]
pub mod mocks {
    pub use crate::branch::{MockBranchRepository, MockSnapshotRepository};
    pub use crate::chat_stream::MockChatStreamRepository;
    pub use crate::checkpoint::MockCheckpointRepository;
    pub use crate::feedback::MockFeedbackRepository;
    pub use crate::kv::MockKeyValueRepository;
    pub use crate::run::MockRunRepository;
    pub use crate::run_event::MockRunEventRepository;
    pub use crate::session::MockSessionRepository;
    pub use crate::thread::MockThreadRepository;
    pub use crate::token_usage::MockTokenUsageRepository;
}
