//! # waymark-infrastructure
//!
//! Stores that implement every port of `waymark-domain`: in-memory (feature `memory`), and
//! SeaORM over SQLite (feature `sqlite`) and PostgreSQL (feature `postgres`).

#[cfg(feature = "memory")]
pub mod memory;

#[cfg(any(feature = "memory", feature = "sql"))]
pub mod connect;
#[cfg(any(feature = "memory", feature = "sql"))]
pub use connect::{ConnectOptions, Connected, connect};
#[cfg(feature = "sql")]
pub mod sql;
