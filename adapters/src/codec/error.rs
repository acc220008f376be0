//! Codec errors: every malformed or unexpected input ends here, never in a panic.

use waymark_domain::DomainError;

/// Why a payload could not be decoded, viewed or composed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input ended inside an item.
    #[error("msgpack ends early at offset {offset}: {needed} more bytes needed")]
    Truncated {
        /// Where the missing bytes start.
        offset: usize,
        /// How many bytes are missing.
        needed: usize,
    },
    /// A length header promises more bytes or elements than the input can hold.
    #[error(
        "length {declared} declared at offset {offset} exceeds the {remaining} bytes that remain"
    )]
    LengthExceedsInput {
        /// Offset of the length field.
        offset: usize,
        /// The declared length.
        declared: usize,
        /// Bytes left after the length field.
        remaining: usize,
    },
    /// The marker `0xc1`, which msgpack never uses.
    #[error("reserved msgpack marker 0xc1 at offset {offset}")]
    ReservedMarker {
        /// Where the marker is.
        offset: usize,
    },
    /// Nesting beyond [`super::MAX_DEPTH`].
    #[error("msgpack nests deeper than {max} levels at offset {offset}")]
    TooDeep {
        /// The container that crossed the limit.
        offset: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes after the single document a payload must hold.
    #[error("{count} trailing bytes after the msgpack document at offset {offset}")]
    TrailingBytes {
        /// Where the extra bytes start.
        offset: usize,
        /// How many there are.
        count: usize,
    },
    /// Text that must be UTF-8 is not.
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 {
        /// What was being read.
        what: &'static str,
    },
    /// A legacy `json` payload that does not parse.
    #[error("legacy json payload does not parse: {0}")]
    Json(String),
    /// A structure that decoded fine but is not what a typed view expects.
    #[error("{what}: {detail}")]
    Shape {
        /// The view or field being read.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A msgpack value that has no JSON equivalent.
    #[error("not representable as JSON at {path}: {reason}")]
    NotJson {
        /// A JSONPath-like location (`$.content[0]`).
        path: String,
        /// Why.
        reason: String,
    },
    /// A JSON value that cannot be written the way Python would write it.
    #[error("cannot render as Python JSON at {path}: {reason}")]
    NotRenderable {
        /// A JSONPath-like location.
        path: String,
        /// Why (non-finite float, integer beyond 64 bits, ...).
        reason: String,
    },
    /// A typed value whose tag cannot be embedded in a SQLite checkpoint blob.
    #[error("{key}: a value tagged {tag:?} cannot be embedded in a checkpoint blob")]
    Unembeddable {
        /// The channel or top-level key.
        key: String,
        /// The offending tag.
        tag: String,
    },
    /// A domain rule refused a decoded field (a channel name with a control character, ...).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
}

impl CodecError {
    /// A [`CodecError::Shape`].
    pub fn shape(what: &'static str, detail: impl Into<String>) -> Self {
        CodecError::Shape {
            what,
            detail: detail.into(),
        }
    }

    /// Wraps a domain validation error.
    pub(crate) fn from_domain(field: &str, err: DomainError) -> Self {
        CodecError::Invalid {
            field: field.to_owned(),
            reason: err.to_string(),
        }
    }
}

impl From<CodecError> for DomainError {
    /// Bad payload bytes are the caller's input error: a typed `InvalidInput` naming the
    /// payload and the reason.
    fn from(err: CodecError) -> Self {
        DomainError::invalid("value", err.to_string())
    }
}
