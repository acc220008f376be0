//! Between typed values and the `checkpoint` jsonb of LangGraph's PostgreSQL layout.
//!
//! `PostgresSaver` keeps primitive channel values inline in the jsonb and everything else in
//! `checkpoint_blobs` (spec §4.4). Waymark decides from the typed bytes: a value is inlined
//! only when jsonb can hold it and reading it back gives the same bytes, so inlining never
//! changes a payload.

use std::io::Cursor;

use rmpv::Value;
use serde_json::value::RawValue;
use waymark_domain::checkpoint::{ChannelVersion, TypedValue};
use waymark_domain::error::{DomainError, DomainResult};
use waymark_domain::json::JsonValue;

use crate::codec::pyjson::python_float_text;

/// The jsonb value to store inline for `value`, or `None` when it belongs in a blob.
pub(crate) fn inline_json(value: &TypedValue) -> Option<JsonValue> {
    match value.type_tag() {
        TypedValue::NULL => Some(JsonValue::Null),
        TypedValue::MSGPACK => {
            let bytes = value.bytes();
            let mut cur = Cursor::new(bytes);
            let decoded = rmpv::decode::read_value(&mut cur).ok()?;
            if cur.position() as usize != bytes.len() {
                return None;
            }
            let json = match &decoded {
                Value::Nil => JsonValue::Null,
                Value::Boolean(b) => JsonValue::Bool(*b),
                Value::Integer(i) => {
                    if let Some(u) = i.as_u64() {
                        JsonValue::from(u)
                    } else {
                        JsonValue::from(i.as_i64()?)
                    }
                }
                // jsonb keeps a plain decimal as written; exponents, -0.0 and non-finite
                // values would come back changed, so those go to a blob.
                Value::F64(f) => {
                    let text = python_float_text(*f);
                    if !f.is_finite() || text.contains('e') || (*f == 0.0 && f.is_sign_negative()) {
                        return None;
                    }
                    JsonValue::Number(serde_json::Number::from_f64(*f)?)
                }
                Value::String(s) => {
                    let s = s.as_str()?;
                    if s.contains('\0') {
                        return None;
                    }
                    JsonValue::String(s.to_owned())
                }
                _ => return None,
            };
            // Only canonical encodings are inlined: reading back re-encodes minimally.
            let mut again = Vec::with_capacity(bytes.len());
            rmpv::encode::write_value(&mut again, &decoded).ok()?;
            (again == bytes).then_some(json)
        }
        _ => None,
    }
}

/// The typed value of an inline jsonb entry, given its text as PostgreSQL printed it.
pub(crate) fn typed_from_inline(raw: &RawValue) -> DomainResult<TypedValue> {
    let text = raw.get().trim();
    let first = text.bytes().next().unwrap_or(b'n');
    if first == b'-' || first.is_ascii_digit() {
        let integral = !text.contains(['.', 'e', 'E']);
        if integral {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(TypedValue::msgpack(encode(&Value::from(i))));
            }
            if let Ok(u) = text.parse::<u64>() {
                return Ok(TypedValue::msgpack(encode(&Value::from(u))));
            }
            // An integer msgpack cannot hold (Python inlines ints of any size): keep it as
            // LangGraph's legacy JSON tag, which Python's serializer reads back as the int.
            return TypedValue::new(TypedValue::JSON, text.as_bytes().to_vec());
        }
        let f: f64 = text
            .parse()
            .map_err(|e| corrupt(format!("inline number {text}: {e}")))?;
        return Ok(TypedValue::msgpack(encode(&Value::F64(f))));
    }
    let value: JsonValue =
        serde_json::from_str(text).map_err(|e| corrupt(format!("inline value: {e}")))?;
    if value.is_null() {
        return Ok(TypedValue::null());
    }
    Ok(TypedValue::msgpack(encode(&json_to_msgpack(&value))))
}

/// Plain JSON as msgpack, the way Python's serializer writes the same data.
pub(crate) fn json_to_msgpack(value: &JsonValue) -> Value {
    match value {
        JsonValue::Null => Value::Nil,
        JsonValue::Bool(b) => Value::Boolean(*b),
        JsonValue::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                Value::F64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        JsonValue::String(s) => Value::from(s.as_str()),
        JsonValue::Array(items) => Value::Array(items.iter().map(json_to_msgpack).collect()),
        JsonValue::Object(map) => Value::Map(
            map.iter()
                .map(|(k, v)| (Value::from(k.as_str()), json_to_msgpack(v)))
                .collect(),
        ),
    }
}

/// An extra checkpoint key's typed value as plain JSON; anything else is refused (spec §4.4).
pub(crate) fn extra_to_json(key: &str, value: &TypedValue) -> DomainResult<JsonValue> {
    let refuse = |why: &str| {
        DomainError::invalid(
            "checkpoint",
            format!(
                "extra checkpoint key {key:?} cannot be stored in the PostgreSQL layout: {why}"
            ),
        )
    };
    match value.type_tag() {
        TypedValue::NULL => Ok(JsonValue::Null),
        TypedValue::MSGPACK => {
            let bytes = value.bytes();
            let mut cur = Cursor::new(bytes);
            let decoded =
                rmpv::decode::read_value(&mut cur).map_err(|_| refuse("invalid msgpack"))?;
            if cur.position() as usize != bytes.len() {
                return Err(refuse("trailing bytes after the msgpack document"));
            }
            msgpack_to_json(&decoded).ok_or_else(|| refuse("it is not plain data"))
        }
        other => Err(refuse(&format!(
            "values serialized as {other:?} are not plain data"
        ))),
    }
}

fn msgpack_to_json(value: &Value) -> Option<JsonValue> {
    Some(match value {
        Value::Nil => JsonValue::Null,
        Value::Boolean(b) => JsonValue::Bool(*b),
        Value::Integer(i) => match i.as_u64() {
            Some(u) => JsonValue::from(u),
            None => JsonValue::from(i.as_i64()?),
        },
        Value::F64(f) => JsonValue::Number(serde_json::Number::from_f64(*f)?),
        Value::F32(f) => JsonValue::Number(serde_json::Number::from_f64(f64::from(*f))?),
        Value::String(s) => JsonValue::String(s.as_str()?.to_owned()),
        Value::Array(items) => {
            JsonValue::Array(items.iter().map(msgpack_to_json).collect::<Option<_>>()?)
        }
        Value::Map(entries) => JsonValue::Object(
            entries
                .iter()
                .map(|(k, v)| Some((k.as_str()?.to_owned(), msgpack_to_json(v)?)))
                .collect::<Option<_>>()?,
        ),
        Value::Binary(_) | Value::Ext(..) => return None,
    })
}

/// A channel version as jsonb keeps it.
pub(crate) fn version_to_json(version: &ChannelVersion) -> DomainResult<JsonValue> {
    Ok(match version {
        ChannelVersion::Int(i) => JsonValue::from(*i),
        ChannelVersion::Float(f) => {
            JsonValue::Number(serde_json::Number::from_f64(*f).ok_or_else(|| {
                DomainError::invalid("channel_versions", "a float version must be finite")
            })?)
        }
        ChannelVersion::Str(s) => JsonValue::String(s.clone()),
    })
}

/// A channel version read from jsonb, keeping its type.
pub(crate) fn version_from_json(value: &JsonValue) -> DomainResult<ChannelVersion> {
    match value {
        JsonValue::String(s) => Ok(ChannelVersion::Str(s.clone())),
        JsonValue::Number(n) => Ok(match n.as_i64() {
            Some(i) if !n.is_f64() => ChannelVersion::Int(i),
            _ => ChannelVersion::Float(n.as_f64().unwrap_or(f64::NAN)),
        }),
        other => Err(corrupt(format!("a channel version is {other}"))),
    }
}

/// True when any string or key in `value` holds U+0000, which jsonb cannot store.
pub(crate) fn has_nul(value: &JsonValue) -> bool {
    match value {
        JsonValue::String(s) => s.contains('\0'),
        JsonValue::Array(items) => items.iter().any(has_nul),
        JsonValue::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

pub(crate) fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, value).expect("writing to a Vec cannot fail");
    out
}

fn corrupt(why: String) -> DomainError {
    DomainError::storage("langgraph_postgres.decode", why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn primitives_inline_and_come_back_byte_identical() {
        let cases: Vec<Vec<u8>> = vec![
            vec![0xc3],
            vec![0x05],
            vec![0xd0, 0x80],
            vec![0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            encode(&Value::F64(2.5)),
            encode(&Value::F64(3.0)),
            encode(&Value::from("héllo")),
        ];
        for bytes in cases {
            let typed = TypedValue::msgpack(bytes.clone());
            let json = inline_json(&typed).unwrap_or_else(|| panic!("{bytes:x?} not inlined"));
            let back = typed_from_inline(&raw(&json.to_string())).unwrap();
            assert_eq!(back, typed, "{json}");
        }
        assert_eq!(inline_json(&TypedValue::null()), Some(JsonValue::Null));
        assert_eq!(typed_from_inline(&raw("null")).unwrap(), TypedValue::null());
    }

    #[test]
    fn non_primitives_and_lossy_values_go_to_blobs() {
        let blobs: Vec<Vec<u8>> = vec![
            vec![0x91, 0x01],
            vec![0x80],
            vec![0xcc, 0x01],
            vec![0xca, 0, 0, 0, 0],
            encode(&Value::F64(1e20)),
            encode(&Value::F64(-0.0)),
            encode(&Value::F64(f64::NAN)),
            encode(&Value::from("a\0b")),
            vec![0xd4, 0x00, 0x01],
        ];
        for bytes in blobs {
            assert!(
                inline_json(&TypedValue::msgpack(bytes.clone())).is_none(),
                "{bytes:x?}"
            );
        }
        assert!(inline_json(&TypedValue::new("bytes", vec![1]).unwrap()).is_none());
    }

    #[test]
    fn huge_inline_integers_read_back_as_the_json_tag() {
        let v = typed_from_inline(&raw("123456789012345678901234567890")).unwrap();
        assert_eq!(v.type_tag(), "json");
        assert_eq!(v.bytes(), b"123456789012345678901234567890");
    }

    #[test]
    fn extras_must_be_plain_data() {
        assert_eq!(
            extra_to_json("pending_sends", &TypedValue::msgpack(vec![0x90])).unwrap(),
            serde_json::json!([])
        );
        assert!(
            extra_to_json("x", &TypedValue::msgpack(vec![0xd4, 0, 1]))
                .unwrap_err()
                .is_invalid_input()
        );
    }

    #[test]
    fn versions_keep_their_type() {
        for v in [
            ChannelVersion::Int(3),
            ChannelVersion::Str("0001.0.5".into()),
            ChannelVersion::Float(1.5),
        ] {
            assert_eq!(version_from_json(&version_to_json(&v).unwrap()).unwrap(), v);
        }
    }
}
