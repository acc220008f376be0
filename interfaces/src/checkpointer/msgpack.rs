//! The msgpack addendum's bodies (`docs/checkpointer-msgpack.md`) as the protocol's JSON tree.
//!
//! A msgpack request is decoded with `rmpv` and turned into the same order-preserving JSON
//! tree the JSON path reads, so both encodings go through one set of shape checks. The only
//! thing JSON cannot hold is a msgpack `bin`: each one is lifted out into [`Bins`] and left in
//! the tree as a marker that only [`Bins::take`] resolves, which `wire::parse_value` does for
//! a Value's `data`. A `bin` anywhere else is refused by [`Bins::finish`]. Answers without
//! payloads go the other way ([`json_to_msgpack`]).

use serde_json::{Map, Number, Value};

use super::error::{ProtoError, type_error, value_error};

/// Nesting limit of a msgpack request (serde_json's own limit for JSON bodies is 128).
const MAX_DEPTH: usize = 128;

/// The member name of the marker a lifted `bin` leaves in the tree. It cannot come from a
/// request: msgpack map keys equal to it are refused, and JSON bodies have no [`Bins`].
const BIN_MARKER: &str = "\u{0}waymark-bin";

/// Payload bytes lifted out of a msgpack request, each taken at most once.
#[derive(Debug, Default)]
pub struct Bins(Vec<Option<Vec<u8>>>);

impl Bins {
    /// The bytes a marker stands for, moved out; `None` when `v` is not an untaken marker
    /// (always for JSON bodies, which have no bins).
    pub fn take(&mut self, v: &Value) -> Option<Vec<u8>> {
        let Value::Object(o) = v else { return None };
        if o.len() != 1 {
            return None;
        }
        let i = o.get(BIN_MARKER)?.as_u64()?;
        self.0.get_mut(usize::try_from(i).ok()?)?.take()
    }

    /// Refuses a request that carried a `bin` outside a Value's `data`.
    pub fn finish(&self) -> Result<(), ProtoError> {
        if self.0.iter().any(Option::is_some) {
            return Err(value_error(
                "binary data (msgpack bin) is allowed only as the data of a value {type, data}",
            ));
        }
        Ok(())
    }
}

/// Turns a decoded msgpack value into the JSON tree the protocol reads, lifting `bin`s.
fn to_tree(v: rmpv::Value, bins: &mut Bins) -> Result<Value, ProtoError> {
    Ok(match v {
        rmpv::Value::Nil => Value::Null,
        rmpv::Value::Boolean(b) => Value::Bool(b),
        rmpv::Value::Integer(i) => match (i.as_i64(), i.as_u64()) {
            (Some(i), _) => Value::Number(i.into()),
            (None, Some(u)) => Value::Number(u.into()),
            (None, None) => return Err(value_error("a msgpack integer is out of range")),
        },
        rmpv::Value::F32(f) => float(f64::from(f))?,
        rmpv::Value::F64(f) => float(f)?,
        rmpv::Value::String(s) => Value::String(
            s.into_str()
                .ok_or_else(|| value_error("a msgpack string is not valid UTF-8"))?,
        ),
        rmpv::Value::Binary(bytes) => {
            let index = bins.0.len();
            bins.0.push(Some(bytes));
            let mut marker = Map::with_capacity(1);
            marker.insert(BIN_MARKER.to_owned(), Value::Number(index.into()));
            Value::Object(marker)
        }
        rmpv::Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| to_tree(item, bins))
                .collect::<Result<_, _>>()?,
        ),
        rmpv::Value::Map(entries) => {
            let mut out = Map::with_capacity(entries.len());
            for (k, v) in entries {
                let rmpv::Value::String(k) = k else {
                    return Err(value_error("msgpack map keys must be strings"));
                };
                let k = k
                    .into_str()
                    .ok_or_else(|| value_error("a msgpack map key is not valid UTF-8"))?;
                if k == BIN_MARKER {
                    return Err(value_error("a msgpack map key is reserved"));
                }
                out.insert(k, to_tree(v, bins)?);
            }
            Value::Object(out)
        }
        rmpv::Value::Ext(..) => {
            return Err(value_error(
                "msgpack extension types are not part of the protocol",
            ));
        }
    })
}

fn float(f: f64) -> Result<Value, ProtoError> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| value_error("NaN and infinite numbers are not allowed"))
}

/// A msgpack request body as the protocol's object tree and its lifted payloads.
pub fn msgpack_body(bytes: &[u8]) -> Result<(Map<String, Value>, Bins), ProtoError> {
    if bytes.is_empty() {
        return Err(value_error("the request body is empty; send a msgpack map"));
    }
    let mut rd = bytes;
    let value = rmpv::decode::read_value_with_max_depth(&mut rd, MAX_DEPTH)
        .map_err(|e| value_error(format!("the request body is not valid msgpack: {e}")))?;
    if !rd.is_empty() {
        return Err(value_error(format!(
            "the request body has {} bytes after its msgpack value",
            rd.len()
        )));
    }
    if !matches!(value, rmpv::Value::Map(_)) {
        return Err(type_error("the request body must be a msgpack map"));
    }
    let mut bins = Bins::default();
    match to_tree(value, &mut bins)? {
        Value::Object(o) => Ok((o, bins)),
        _ => Err(type_error("the request body must be a msgpack map")),
    }
}

/// A JSON integer msgpack cannot carry (beyond 64 bits, kept exactly on the JSON wire,
/// protocol §2): the answer holding it goes out as JSON instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeyondMsgpack;

/// A JSON tree as msgpack (integers stay integers, floats stay floats); `Err` for an integer
/// beyond 64 bits, which msgpack has no form for.
pub fn json_to_msgpack(v: &Value) -> Result<rmpv::Value, BeyondMsgpack> {
    Ok(match v {
        Value::Null => rmpv::Value::Nil,
        Value::Bool(b) => rmpv::Value::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                rmpv::Value::from(i)
            } else if let Some(u) = n.as_u64() {
                rmpv::Value::from(u)
            } else {
                // An integer beyond 64 bits has no msgpack form (stores refuse floats beyond
                // the f64 range, so `as_f64` fails only for such an integer).
                match n.as_f64() {
                    Some(f) if !waymark_domain::json::is_integer(n) => rmpv::Value::F64(f),
                    _ => return Err(BeyondMsgpack),
                }
            }
        }
        Value::String(s) => rmpv::Value::from(s.as_str()),
        Value::Array(items) => rmpv::Value::Array(
            items
                .iter()
                .map(json_to_msgpack)
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => object_to_msgpack(o)?,
    })
}

/// A JSON object as a msgpack map, members in order ([`json_to_msgpack`]).
pub fn object_to_msgpack(o: &Map<String, Value>) -> Result<rmpv::Value, BeyondMsgpack> {
    Ok(rmpv::Value::Map(
        o.iter()
            .map(|(k, v)| Ok((rmpv::Value::from(k.as_str()), json_to_msgpack(v)?)))
            .collect::<Result<_, _>>()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn encode(v: &rmpv::Value) -> Vec<u8> {
        let mut buf = Vec::new();
        rmpv::encode::write_value(&mut buf, v).unwrap();
        buf
    }

    #[test]
    fn bins_are_lifted_and_must_all_be_values() {
        let body = rmpv::Value::Map(vec![
            ("n".into(), rmpv::Value::F64(1.0)),
            ("i".into(), rmpv::Value::from(-3)),
            ("b".into(), rmpv::Value::Binary(vec![0xa5, b'h'])),
        ]);
        let (obj, mut bins) = msgpack_body(&encode(&body)).unwrap();
        assert_eq!(obj["n"], serde_json::json!(1.0));
        assert_eq!(obj["i"], serde_json::json!(-3));
        assert!(bins.finish().is_err(), "an untaken bin is refused");
        assert_eq!(bins.take(&obj["b"]).unwrap(), vec![0xa5, b'h']);
        assert!(bins.take(&obj["b"]).is_none(), "taken once");
        bins.finish().unwrap();
        // A JSON body cannot forge a marker.
        assert!(Bins::default().take(&obj["b"]).is_none());
    }

    #[test]
    fn malformed_msgpack_is_a_value_error() {
        for bad in [
            vec![],
            vec![0x81, 0xa1, b'a', 0xd4], // fixext 1 without its bytes
            vec![0x81, 0xa1, b'a'],       // truncated map
            vec![0x80, 0x00],             // trailing byte
            vec![0x81, 0x01, 0x02],       // integer key
            vec![0x81, 0xa1, 0xff, 0x01], // key not UTF-8
            encode(&rmpv::Value::Map(vec![(
                BIN_MARKER.into(),
                rmpv::Value::from(0),
            )])),
            encode(&rmpv::Value::Map(vec![(
                "x".into(),
                rmpv::Value::Ext(1, vec![1]),
            )])),
            encode(&rmpv::Value::Map(vec![(
                "x".into(),
                rmpv::Value::F64(f64::NAN),
            )])),
        ] {
            let e = msgpack_body(&bad).unwrap_err();
            assert_eq!(
                (e.status, e.kind),
                (StatusCode::BAD_REQUEST, "ValueError"),
                "{bad:?}"
            );
        }
        let e = msgpack_body(&[0x90]).unwrap_err();
        assert_eq!(e.kind, "TypeError");
        let mut deep = vec![0x81, 0xa1, b'a'];
        deep.extend(std::iter::repeat_n(0x91, 1000));
        deep.push(0xc0);
        assert_eq!(msgpack_body(&deep).unwrap_err().kind, "ValueError");
    }
}
