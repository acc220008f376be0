//! Extractors that turn every kind of malformed request into a clear 4xx envelope.
//!
//! axum's stock extractors answer bad input with plain-text bodies (and some with 422); these
//! wrappers give the REST API one shape: 400 for malformed JSON, wrong types, unknown fields,
//! bad query strings and invalid path ids, 413 for bodies over the limit, 415 for non-JSON
//! bodies. Request bodies are also checked for U+0000 in any string or key, which PostgreSQL
//! cannot store, so a NUL is refused up front on every backend alike.

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use bytes::BytesMut;
use http_body_util::{BodyExt, LengthLimitError};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;

/// A JSON body, parsed and checked.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

/// Why a request body could not be read.
#[derive(Debug)]
pub enum BodyReadError {
    /// Longer than the route's limit.
    TooLarge,
    /// The client or the connection failed, or the body guard stopped the body (it answers
    /// for that itself).
    Failed(String),
}

/// Reads a request body into one buffer of its declared `Content-Length` (which the
/// route's limit has already checked), so a large body is held once, not as its chunks
/// plus a copy of them; chunks are dropped as they are copied.
pub async fn read_body(req: Request) -> Result<Bytes, BodyReadError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let mut body = req.into_body();
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = source {
                if err.is::<LengthLimitError>() {
                    return BodyReadError::TooLarge;
                }
                source = err.source();
            }
            BodyReadError::Failed(e.to_string())
        })?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Maps a body-reading failure to 413 or 400.
pub fn body_rejection(e: BodyReadError) -> ApiError {
    match e {
        BodyReadError::TooLarge => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than this server accepts",
        ),
        BodyReadError::Failed(message) => {
            ApiError::bad_request(format!("cannot read the request body: {message}"))
        }
    }
}

/// Parses bytes as one JSON value, with a message that says where it broke.
pub fn parse_json_bytes(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "the request body is empty; send a JSON object",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the request body is not valid JSON: {e}"),
        )
    })
}

/// Finds the first string or key holding U+0000 and names its JSON path.
pub fn find_nul(value: &Value) -> Option<String> {
    fn walk(v: &Value, path: &mut String) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let hit = walk(item, path);
                if !hit {
                    path.truncate(len);
                }
                hit
            }),
            Value::Object(map) => map.iter().any(|(k, item)| {
                let len = path.len();
                path.push('.');
                path.push_str(&k.replace('\0', "\\u0000"));
                let hit = k.contains('\0') || walk(item, path);
                if !hit {
                    path.truncate(len);
                }
                hit
            }),
            _ => false,
        }
    }
    let mut path = String::from("$");
    walk(value, &mut path).then_some(path)
}

fn is_json_content_type(parts: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = parts.get(CONTENT_TYPE) else {
        // Tolerated: curl without -H and many scripts send none.
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime == "application/json" || mime.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("expected Content-Type application/json, got {mime:?}"),
        ))
    }
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        is_json_content_type(req.headers())?;
        let bytes = read_body(req).await.map_err(body_rejection)?;
        let value = parse_json_bytes(&bytes)?;
        if let Some(path) = find_nul(&value) {
            return Err(ApiError::bad_request(format!(
                "{path} contains a NUL character (U+0000), which cannot be stored"
            )));
        }
        T::deserialize(value).map(ApiJson).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("the request body does not have the expected shape: {e}"),
            )
        })
    }
}

/// A query string, parsed with unknown keys refused (the structs deny unknown fields).
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_some_and(|q| q.contains("%00")) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "the query string contains a NUL character",
            ));
        }
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e: QueryRejection| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    format!("invalid query string: {}", e.body_text()),
                )
            })
    }
}

/// Path parameters; a failure to decode them is a 400.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e: PathRejection| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_path",
                    format!("invalid path parameter: {}", e.body_text()),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_is_found_in_values_and_keys_with_its_path() {
        assert_eq!(
            find_nul(&json!({"a": [1, "x\u{0}"]})),
            Some("$.a[1]".into())
        );
        assert_eq!(find_nul(&json!({"k\u{0}": 1})), Some("$.k\\u0000".into()));
        assert_eq!(find_nul(&json!({"a": {"b": "ok"}})), None);
    }

    #[test]
    fn empty_and_broken_bodies_are_malformed_json() {
        assert_eq!(parse_json_bytes(b"  ").unwrap_err().code, "malformed_json");
        let e = parse_json_bytes(b"{\"a\": ").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("line 1"), "{}", e.message);
    }
}
