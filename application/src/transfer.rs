//! Moving data between backends: reading every record out of one [`Stores`](waymark_domain::Stores), writing records
//! into another, and checking that a copied thread arrived whole. The `waymark export`,
//! `import` and `copy` commands are thin callers; the file format (JSON lines) is theirs.
//!
//! Records are typed ([`TransferRecord`]): ids are domain newtypes and checkpoints, writes and
//! values are the domain's own types, so every checkpoint, pending write and value goes
//! between any two backends, LangGraph layouts included, byte for byte. What the ports cannot
//! carry is stated, not hidden:
//!
//! * creation and update times of sessions, threads, feedback and items are set by the target
//!   store (the ports stamp them; the importer's [`Clock`](waymark_domain::clock::Clock) where
//!   the record is built here), and run-event seqs are reassigned by the target (they stay in
//!   order, and equal when the source's seqs were contiguous from 1);
//! * token-usage records have no listing port, so they are not exported;
//! * run events are found through the thread's message rows: events of runs that wrote no
//!   message row are not found (the event port lists events per run only).

mod export;
mod import;
mod records;
mod verify;

pub use export::{Exporter, ThreadSelection, referenced_sessions};
pub use import::{Importer, write_calls};
pub use records::{
    CheckpointRecord, FeedbackRecord, IndexedWrite, ItemRecord, SessionRecord, StreamRecord,
    ThreadRecord, TransferRecord, WritesRecord, checkpoint_records,
};
pub use verify::{CopyCheck, verify_thread};

#[cfg(test)]
mod tests;
