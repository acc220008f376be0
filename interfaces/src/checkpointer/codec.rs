//! Body encodings of the remote checkpointer protocol: JSON (protocol v1, the default) and the
//! msgpack addendum (`docs/checkpointer-msgpack.md`), chosen per request by `Content-Type`
//! and per response by `Accept`.
//!
//! A msgpack request becomes the same JSON tree the JSON path reads, its `bin` payloads lifted
//! aside ([`super::msgpack`]), so both encodings go through one set of shape checks
//! ([`super::wire`]). Responses are built from domain types straight into `rmpv` values, with
//! payload bytes as `bin` (no base64). Error envelopes are always JSON.

use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use waymark_domain::checkpoint::CheckpointTuple;

use super::error::{ProtoError, value_error};
use super::msgpack::{BeyondMsgpack, Bins, json_to_msgpack, msgpack_body};
use super::wire::{self, Obj};
use crate::http::extract::{BodyReadError, read_body};

/// The msgpack media type this server answers with.
pub const MSGPACK: &str = "application/vnd.waymark.checkpointer+msgpack";

/// Media types read as msgpack in `Content-Type` and `Accept`.
pub const MSGPACK_ALIASES: [&str; 3] = [MSGPACK, "application/msgpack", "application/x-msgpack"];

/// The media types `GET /capabilities` advertises under `content_types`.
pub const CONTENT_TYPES: [&str; 2] = ["application/json", MSGPACK];

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

fn body_error(e: BodyReadError) -> ProtoError {
    match e {
        BodyReadError::TooLarge => ProtoError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ValueError",
            "the request body is larger than this server accepts",
        ),
        BodyReadError::Failed(message) => {
            value_error(format!("cannot read the request body: {message}"))
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for ProtoBody {
    type Rejection = ProtoError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let format = Format::of_request(req.headers());
        let reply = Replier {
            format: Format::accepted(req.headers()),
        };
        let bytes = read_body(req).await.map_err(body_error)?;
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
}
