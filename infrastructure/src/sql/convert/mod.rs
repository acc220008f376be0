//! Row to entity conversions, one module per table family. Each function reads the columns a
//! store's `SELECT` names and rebuilds the domain value, refusing rows that do not decode.

pub(crate) mod misc;
pub(crate) mod run_events;
pub(crate) mod threads;
