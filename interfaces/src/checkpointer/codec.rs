//! Body encodings of the remote checkpointer protocol: JSON (protocol v1, the default) and the
//! msgpack addendum (`docs/checkpointer-msgpack.md`), chosen per request by `Content-Type`
//! and per response by `Accept`.
//!
//! A msgpack request is decoded with `rmpv` and turned into the same order-preserving JSON
//! tree the JSON path reads, so both encodings go through one set of shape checks. The only
//! thing JSON cannot hold is a msgpack `bin`: each one is lifted out into [`Bins`] and left in
//! the tree as a marker that only [`Bins::take`] resolves, which `wire::parse_value` does for
//! a Value's `data`. A `bin` anywhere else is refused by [`Bins::finish`]. Responses are built
//! from domain types straight into `rmpv` values, with payload bytes as `bin` (no base64).
//! Error envelopes are always JSON.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Number, Value};
use waymark_domain::checkpoint::CheckpointTuple;

use super::ProtoError;
use super::wire::{self, Obj, type_error, value_error};

/// The msgpack media type this server answers with.
pub const MSGPACK: &str = "application/vnd.waymark.checkpointer+msgpack";

/// Media types read as msgpack in `Content-Type` and `Accept`.
pub const MSGPACK_ALIASES: [&str; 3] = [MSGPACK, "application/msgpack", "application/x-msgpack"];

/// The media types `GET /capabilities` advertises under `content_types`.
pub const CONTENT_TYPES: [&str; 2] = ["application/json", MSGPACK];

/// Nesting limit of a msgpack request (serde_json's own limit for JSON bodies is 128).
const MAX_DEPTH: usize = 128;

/// The member name of the marker a lifted `bin` leaves in the tree. It cannot come from a
/// request: msgpack map keys equal to it are refused, and JSON bodies have no [`Bins`].
const BIN_MARKER: &str = "\u{0}waymark-bin";

/// A body encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Protocol v1 JSON.
    Json,
    /// The msgpack addendum.
    Msgpack,
}

fn media_type(item: &str) -> (&str, f32) {
    let mut parts = item.split(';');
    let media = parts.next().unwrap_or("").trim();
    let mut q = 1.0;
    for p in parts {
        if let Some((k, v)) = p.split_once('=')
            && k.trim().eq_ignore_ascii_case("q")
        {
            q = v.trim().parse().unwrap_or(0.0);
        }
    }
    (media, q)
}

fn is_msgpack(media: &str) -> bool {
    MSGPACK_ALIASES
        .iter()
        .any(|m| m.eq_ignore_ascii_case(media))
}

impl Format {
    /// The encoding of a request body: msgpack when `Content-Type` names it, JSON otherwise
    /// (protocol v1 servers read every body as JSON, whatever its `Content-Type`).
    pub fn of_request(headers: &HeaderMap) -> Self {
        let media = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| media_type(v).0);
        if media.is_some_and(is_msgpack) {
            Format::Msgpack
        } else {
            Format::Json
        }
    }

    /// The encoding of the answer: msgpack when `Accept` lists it with a non-zero quality,
    /// JSON otherwise.
    pub fn accepted(headers: &HeaderMap) -> Self {
        let listed = headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(media_type)
            .any(|(media, q)| q > 0.0 && is_msgpack(media));
        if listed {
            Format::Msgpack
        } else {
            Format::Json
        }
    }
}

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
pub fn msgpack_body(bytes: &[u8]) -> Result<(Obj, Bins), ProtoError> {
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
pub fn object_to_msgpack(o: &Obj) -> Result<rmpv::Value, BeyondMsgpack> {
    Ok(rmpv::Value::Map(
        o.iter()
            .map(|(k, v)| Ok((rmpv::Value::from(k.as_str()), json_to_msgpack(v)?)))
            .collect::<Result<_, _>>()?,
    ))
}

/// The body of a checkpointer operation, decoded per its `Content-Type`, and the encoding
/// the client accepts for the answer.
#[derive(Debug)]
pub struct ProtoBody {
    obj: Obj,
    bins: Bins,
    reply: Replier,
}

impl ProtoBody {
    /// The object, for operations that carry no values (a `bin` is refused), and the replier.
    pub fn plain(self) -> Result<(Obj, Replier), ProtoError> {
        self.bins.finish()?;
        Ok((self.obj, self.reply))
    }

    /// The object, its lifted payloads (call [`Bins::finish`] once the values are read) and
    /// the replier.
    pub fn into_parts(self) -> (Obj, Bins, Replier) {
        (self.obj, self.bins, self.reply)
    }
}

fn body_error(status: StatusCode, message: String) -> ProtoError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ProtoError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ValueError",
            "the request body is larger than this server accepts",
        )
    } else {
        value_error(format!("cannot read the request body: {message}"))
    }
}

impl<S: Send + Sync> FromRequest<S> for ProtoBody {
    type Rejection = ProtoError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let format = Format::of_request(req.headers());
        let reply = Replier {
            format: Format::accepted(req.headers()),
        };
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rej| body_error(rej.status(), rej.to_string()))?;
        let (obj, bins) = match format {
            Format::Json => (wire::body_object(&bytes)?, Bins::default()),
            Format::Msgpack => msgpack_body(&bytes)?,
        };
        Ok(Self { obj, bins, reply })
    }
}

/// Builds the answer in the encoding the client accepts.
#[derive(Debug, Clone, Copy)]
pub struct Replier {
    format: Format,
}

impl Replier {
    /// The encoding of the answer.
    pub fn format(&self) -> Format {
        self.format
    }

    /// An answer given as a JSON tree without payloads (`{}`, `{"config": …}`).
    pub fn json(self, v: Value) -> Answer {
        match self.format {
            Format::Json => Answer::Json(v),
            Format::Msgpack => match json_to_msgpack(&v) {
                Ok(m) => Answer::Msgpack(m),
                Err(BeyondMsgpack) => Answer::Json(v),
            },
        }
    }

    /// `{"tuple": Tuple | null}`.
    pub fn tuple(self, t: Option<&CheckpointTuple>) -> Answer {
        let as_json = || Answer::Json(serde_json::json!({"tuple": t.map(wire::tuple_json)}));
        match self.format {
            Format::Json => as_json(),
            Format::Msgpack => match t.map(wire::tuple_msgpack).transpose() {
                Ok(m) => Answer::Msgpack(rmpv::Value::Map(vec![(
                    "tuple".into(),
                    m.unwrap_or(rmpv::Value::Nil),
                )])),
                Err(BeyondMsgpack) => as_json(),
            },
        }
    }

    /// `{"tuples": [Tuple]}`.
    pub fn tuples(self, ts: &[CheckpointTuple]) -> Answer {
        let as_json = || {
            Answer::Json(serde_json::json!({
                "tuples": ts.iter().map(wire::tuple_json).collect::<Vec<_>>()
            }))
        };
        match self.format {
            Format::Json => as_json(),
            Format::Msgpack => match ts.iter().map(wire::tuple_msgpack).collect() {
                Ok(m) => Answer::Msgpack(rmpv::Value::Map(vec![(
                    "tuples".into(),
                    rmpv::Value::Array(m),
                )])),
                Err(BeyondMsgpack) => as_json(),
            },
        }
    }
}

/// A successful answer of a checkpointer operation.
#[derive(Debug)]
pub enum Answer {
    /// Protocol v1 JSON, serialized exactly as before the msgpack addendum.
    Json(Value),
    /// The msgpack addendum.
    Msgpack(rmpv::Value),
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self {
            Answer::Json(v) => Json(v).into_response(),
            Answer::Msgpack(v) => {
                let mut buf = Vec::with_capacity(256);
                if let Err(e) = rmpv::encode::write_value(&mut buf, &v) {
                    tracing::error!(error = %e, "cannot encode a msgpack answer");
                    return ProtoError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "RuntimeError",
                        "cannot encode the answer as msgpack",
                    )
                    .into_response();
                }
                ([(CONTENT_TYPE, HeaderValue::from_static(MSGPACK))], buf).into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: axum::http::HeaderName, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(v).unwrap());
        h
    }

    fn encode(v: &rmpv::Value) -> Vec<u8> {
        let mut buf = Vec::new();
        rmpv::encode::write_value(&mut buf, v).unwrap();
        buf
    }

    #[test]
    fn content_type_and_accept_choose_the_encoding() {
        assert_eq!(Format::of_request(&HeaderMap::new()), Format::Json);
        assert_eq!(
            Format::of_request(&headers(CONTENT_TYPE, "application/json; charset=utf-8")),
            Format::Json
        );
        assert_eq!(
            Format::of_request(&headers(CONTENT_TYPE, "Application/MsgPack")),
            Format::Msgpack
        );
        assert_eq!(Format::accepted(&headers(ACCEPT, "*/*")), Format::Json);
        assert_eq!(
            Format::accepted(&headers(
                ACCEPT,
                &format!("{MSGPACK}, application/json;q=0.5")
            )),
            Format::Msgpack
        );
        assert_eq!(
            Format::accepted(&headers(ACCEPT, "application/msgpack;q=0")),
            Format::Json
        );
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
