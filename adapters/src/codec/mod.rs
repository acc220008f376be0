//! LangGraph's serialization format (spec `langgraph-compat.md` §2): the typed `(tag, bytes)`
//! pairs of `JsonPlusSerializer`, the msgpack documents inside them with extension codes 0-7,
//! typed views of the objects Waymark cares about (LangChain messages, `Send`, `Interrupt`,
//! `Command`, datetimes, UUIDs), the SQLite checkpoint blob, and Python-style metadata JSON.
//!
//! Design rules:
//! * **Byte fidelity.** [`decode`] keeps every encoding detail ([`Value`] records non-minimal
//!   forms), so `encode(&decode(x)?) == x` for every input that decodes. Rust-built values use
//!   the minimal forms ormsgpack writes, so they are byte-identical to Python's output.
//! * **Nothing is executed or guessed.** Extension payloads name Python callables; views only
//!   report them. Unknown tags and extension codes are kept opaque.
//! * **Hostile input is an error, not a crash.** Lengths are bounded by the remaining input,
//!   nesting by [`MAX_DEPTH`]; every failure is a [`CodecError`].

mod checkpoint_blob;
mod error;
mod ext;
mod json;
mod message;
#[cfg(any(feature = "sqlite-layout", feature = "postgres-layout"))]
pub(crate) mod pyjson;
mod pytypes;
mod read;
mod typed;
mod value;
mod write;

pub use checkpoint_blob::{
    CheckpointBlobParts, CheckpointKeyOrder, checkpoint_blob_parts, checkpoint_blob_parts_ordered,
    compose_checkpoint_blob, compose_checkpoint_blob_ordered, decompose_checkpoint_blob,
    decompose_checkpoint_blob_ordered,
};
pub use error::CodecError;
pub use ext::{ExtCode, ExtView, build as ext_build};
pub use json::{
    json_to_value, python_float_repr, python_json_bytes, python_json_string, value_to_json,
};
pub use message::{
    InvalidToolCall, Message, MessageClass, MessageView, ToolCall, ToolCallChunk, Usage,
    decode_messages, encode_messages, messages_from_value,
};
pub use pytypes::{Command, Interrupt, PyDateTime, Send, uuid_from_value, uuid_to_value};
pub use read::{MAX_DEPTH, decode_msgpack, validate_msgpack};
pub use typed::{LegacyJson, Payload, decode, decode_value, encode, encode_value};
pub use value::{Array, Bin, Ext, ExtPayload, Int, IntForm, Map, Str, Value, Width};
pub use write::{encode_msgpack, write_value};
