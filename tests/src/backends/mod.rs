//! Backend factories used by the contract suite. A factory is
//! `async fn() -> Option<TestBackend>`: a fresh, empty backend for one test, or `None` when the
//! backend is unavailable (the harness then prints `SKIPPED`).

pub mod langgraph;
pub mod memory;
pub mod sql;
