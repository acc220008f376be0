//! # waymark-tests
//!
//! Cross-crate tests. The heart is the **contract suite** ([`contract`]): one body of tests
//! per port, written once and run against every backend (memory, SQLite in-memory, SQLite
//! file, PostgreSQL, LangGraph's layouts) through the macros exported here. A backend joins
//! by providing a factory `async fn() -> Option<TestBackend>` (see [`harness`]) and one test
//! file that invokes the macros with it.

/// README.md's Rust snippets, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub mod backends;
pub mod contract;
pub mod harness;
