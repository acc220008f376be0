//! # waymark-adapters
//!
//! LangGraph compatibility: the pieces that let Waymark and Python LangGraph share one
//! database.
//!
//! * [`codec`]: LangGraph's serialization format (typed msgpack payloads, extension types,
//!   LangChain messages, the SQLite checkpoint blob, Python-style metadata JSON).
//! * [`sqlite_layout`]: a [`CheckpointRepository`](waymark_domain::checkpoint::CheckpointRepository)
//!   over the tables of `langgraph-checkpoint-sqlite` (`checkpoints`, `writes`), byte-compatible
//!   with `SqliteSaver`.
//! * [`postgres_layout`]: the same port over the tables of `langgraph-checkpoint-postgres`
//!   (`checkpoints`, `checkpoint_blobs`, `checkpoint_writes`, `checkpoint_migrations`),
//!   behaving like `PostgresSaver`.
//!
//! Both follow the Python saver of their database exactly (spec `langgraph-compat.md` §3, §4):
//! a database may be written by one side and read by the other, and queries from either side
//! give the same answers.
//!
//! Features: `sqlite-layout` and `postgres-layout` (both on by default) each bring one layout
//! and its sqlx driver; with both off the crate is the codec alone, without sqlx.

pub mod codec;
#[cfg(feature = "postgres-layout")]
pub mod postgres_layout;
#[cfg(feature = "sqlite-layout")]
pub mod sqlite_layout;
