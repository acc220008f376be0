//! # waymark-interfaces
//!
//! The `waymark` binary and the only crate that knows HTTP, JSON wire shapes and the command
//! line. Everything else in Waymark speaks domain types; this crate translates:
//!
//! * [`backend`] turns a database URL (`sqlite://`, `postgres://`, `memory://`,
//!   `langgraph+sqlite://`, `langgraph+postgres://`) into a [`waymark_domain::Stores`].
//! * [`checkpointer`] is the remote checkpointer protocol (version 1) that the Python client in
//!   `interfaces/python` talks, mounted under `/checkpointer`.
//! * [`api`] is the REST API under `/api/v1` (sessions, threads, branches, snapshots,
//!   checkpoints, messages, run events, token usage, feedback, chat streams, key-value items).
//! * [`http`] wires the router and serves it; its submodules hold what both surfaces share:
//!   the application state, error envelopes, extractors that turn malformed input into 4xx
//!   answers, authentication, user scoping and metrics.
//! * [`cli`] is the command line (`serve`, `migrate`, `threads`, `history`, `show`, `diff`,
//!   `messages`, `export`, `import`, `copy`).

pub mod api;
pub mod backend;
pub mod checkpointer;
pub mod cli;
pub mod http;
pub mod openapi;
pub mod render;
pub mod services;
pub mod transfer;
