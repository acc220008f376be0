//! # waymark-adapters
//!
//! LangGraph compatibility: the pieces that let Waymark and Python LangGraph share one
//! database.
//!
//! * [`codec`]: LangGraph's serialization format (typed msgpack payloads, extension types,
//!   LangChain messages, the SQLite checkpoint blob, Python-style metadata JSON).

pub mod codec;
