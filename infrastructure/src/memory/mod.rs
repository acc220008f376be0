//! In-memory stores.
