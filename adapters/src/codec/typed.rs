//! Typed payloads: LangGraph's `(tag, bytes)` pairs (spec §2.1) decoded into values and back.

use waymark_domain::JsonValue;
use waymark_domain::checkpoint::TypedValue;

use super::error::CodecError;
use super::read::decode_msgpack;
use super::value::Value;
use super::write::encode_msgpack;

/// A decoded typed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Tag `null`: Python `None`, zero bytes.
    Null,
    /// Tag `bytes`: raw bytes.
    Bytes(Vec<u8>),
    /// Tag `bytearray`: raw bytes of a Python `bytearray`.
    ByteArray(Vec<u8>),
    /// Tag `msgpack`: a msgpack document.
    Msgpack(Value),
    /// Tag `json`: the legacy format, its text kept for a byte-identical re-encode.
    Json(LegacyJson),
    /// Any other tag (`pickle`, `msgpack+aes`, ...): kept as it is, never guessed at.
    Opaque(TypedValue),
}

/// A legacy `json` payload: the text as stored and its parse.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyJson {
    text: String,
    value: JsonValue,
}

impl LegacyJson {
    /// Parses legacy JSON text (constructor envelopes are left as plain JSON objects).
    pub fn parse(text: String) -> Result<LegacyJson, CodecError> {
        let value = serde_json::from_str(&text).map_err(|e| CodecError::Json(e.to_string()))?;
        Ok(LegacyJson { text, value })
    }

    /// The text as stored.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The parsed JSON.
    pub fn value(&self) -> &JsonValue {
        &self.value
    }
}

impl Payload {
    /// The msgpack document, for tag `msgpack`.
    pub fn as_msgpack(&self) -> Option<&Value> {
        match self {
            Payload::Msgpack(v) => Some(v),
            _ => None,
        }
    }
}

/// Decodes a typed value. Unknown tags come back as [`Payload::Opaque`]; malformed bytes of a
/// known tag are an error.
pub fn decode(typed: &TypedValue) -> Result<Payload, CodecError> {
    let bytes = typed.bytes();
    Ok(match typed.type_tag() {
        TypedValue::NULL => Payload::Null,
        TypedValue::BYTES => Payload::Bytes(bytes.to_vec()),
        TypedValue::BYTEARRAY => Payload::ByteArray(bytes.to_vec()),
        TypedValue::MSGPACK => Payload::Msgpack(decode_msgpack(bytes)?),
        TypedValue::JSON => {
            let text = String::from_utf8(bytes.to_vec()).map_err(|_| CodecError::InvalidUtf8 {
                what: "legacy json payload",
            })?;
            Payload::Json(LegacyJson::parse(text)?)
        }
        _ => Payload::Opaque(typed.clone()),
    })
}

/// Encodes a payload; `encode(&decode(x)?) == x` for every `x` that decodes.
///
/// # Panics
///
/// See [`encode_msgpack`]: only for items beyond msgpack's 4 GiB limits.
pub fn encode(payload: &Payload) -> TypedValue {
    let (tag, bytes) = match payload {
        Payload::Null => return TypedValue::null(),
        Payload::Bytes(b) => (TypedValue::BYTES, b.clone()),
        Payload::ByteArray(b) => (TypedValue::BYTEARRAY, b.clone()),
        Payload::Msgpack(v) => return TypedValue::msgpack(encode_msgpack(v)),
        Payload::Json(j) => (TypedValue::JSON, j.text.clone().into_bytes()),
        Payload::Opaque(t) => return t.clone(),
    };
    // The tags are constants that satisfy `TypedValue::new`'s rules.
    TypedValue::new(tag, bytes).unwrap_or_else(|_| TypedValue::null())
}

/// Encodes a msgpack value as a typed value (tag `msgpack`).
pub fn encode_value(value: &Value) -> TypedValue {
    TypedValue::msgpack(encode_msgpack(value))
}

/// Decodes a typed value that must be msgpack (or null, read as nil).
pub fn decode_value(typed: &TypedValue) -> Result<Value, CodecError> {
    match decode(typed)? {
        Payload::Msgpack(v) => Ok(v),
        Payload::Null => Ok(Value::Nil),
        _ => Err(CodecError::shape(
            "typed value",
            format!("expected tag msgpack, found {:?}", typed.type_tag()),
        )),
    }
}
