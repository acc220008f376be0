//! The SQLite checkpoint blob: the whole checkpoint as one msgpack map (spec §3.3).
//!
//! Composition embeds each channel value's serialized bytes without understanding them;
//! decomposition skip-parses the top-level map and hands each channel value back as the
//! bytes of its element, so values written by Python come back byte for byte.

use std::io::Cursor;

use indexmap::IndexMap;
use rmpv::Value;
use waymark_domain::checkpoint::{ChannelVersion, ChannelVersions, Checkpoint, TypedValue};
use waymark_domain::error::{DomainError, DomainResult};
use waymark_domain::ids::{ChannelName, CheckpointId};

/// Builds the blob `SqliteSaver` would write for `checkpoint`, in pregel's key order
/// (`v, ts, id, channel_values, channel_versions, versions_seen, updated_channels`), extra
/// keys last.
pub(crate) fn compose(checkpoint: &Checkpoint) -> DomainResult<Vec<u8>> {
    let mut out = Vec::with_capacity(256 + checkpoint.payload_len());
    let keys = 7 + checkpoint.extra.len();
    write_map_len(&mut out, keys);
    write_str(&mut out, "v");
    write_value(&mut out, &Value::from(checkpoint.v));
    write_str(&mut out, "ts");
    write_str(&mut out, &checkpoint.ts);
    write_str(&mut out, "id");
    write_str(&mut out, checkpoint.id.as_str());
    write_str(&mut out, "channel_values");
    write_map_len(&mut out, checkpoint.channel_values.len());
    for (channel, value) in &checkpoint.channel_values {
        write_str(&mut out, channel.as_str());
        embed(&mut out, value, "channel_values")?;
    }
    write_str(&mut out, "channel_versions");
    write_versions(&mut out, &checkpoint.channel_versions);
    write_str(&mut out, "versions_seen");
    write_map_len(&mut out, checkpoint.versions_seen.len());
    for (node, versions) in &checkpoint.versions_seen {
        write_str(&mut out, node);
        write_versions(&mut out, versions);
    }
    write_str(&mut out, "updated_channels");
    match &checkpoint.updated_channels {
        None => out.push(0xc0),
        Some(channels) => {
            write_array_len(&mut out, channels.len());
            for c in channels {
                write_str(&mut out, c.as_str());
            }
        }
    }
    for (key, value) in &checkpoint.extra {
        write_str(&mut out, key);
        embed(&mut out, value, "extra")?;
    }
    Ok(out)
}

/// Reads a blob back into a checkpoint; channel values and extra keys keep their exact bytes.
pub(crate) fn decompose(bytes: &[u8]) -> DomainResult<Checkpoint> {
    let corrupt = |why: String| DomainError::storage("langgraph_sqlite.decode", why);
    let mut cur = Cursor::new(bytes);
    let len = read_map_len(&mut cur).map_err(|e| corrupt(format!("checkpoint blob: {e}")))?;
    let mut v = None;
    let mut id = None;
    let mut ts = None;
    let mut channel_values = IndexMap::new();
    let mut channel_versions = IndexMap::new();
    let mut versions_seen = IndexMap::new();
    let mut updated_channels = None;
    let mut extra = IndexMap::new();
    for _ in 0..len {
        let key = read_value(&mut cur).map_err(|e| corrupt(format!("checkpoint key: {e}")))?;
        let Value::String(key) = key else {
            return Err(corrupt("a checkpoint key is not a string".into()));
        };
        let key = key
            .into_str()
            .ok_or_else(|| corrupt("a checkpoint key is not UTF-8".into()))?;
        match key.as_str() {
            "channel_values" => {
                let n =
                    read_map_len(&mut cur).map_err(|e| corrupt(format!("channel_values: {e}")))?;
                for _ in 0..n {
                    let name =
                        read_string(&mut cur).map_err(|e| corrupt(format!("channel name: {e}")))?;
                    let name = ChannelName::parse(name)
                        .map_err(|e| corrupt(format!("channel name: {e}")))?;
                    let raw = read_element(&mut cur, bytes)
                        .map_err(|e| corrupt(format!("channel {name}: {e}")))?;
                    channel_values.insert(name, typed_from_element(raw));
                }
            }
            _ => {
                let start = cur.position() as usize;
                let value = read_value(&mut cur).map_err(|e| corrupt(format!("{key}: {e}")))?;
                let raw = &bytes[start..cur.position() as usize];
                match key.as_str() {
                    "v" => {
                        v = Some(
                            value
                                .as_i64()
                                .ok_or_else(|| corrupt("v is not an integer".into()))?,
                        )
                    }
                    "id" => {
                        let text = value
                            .as_str()
                            .ok_or_else(|| corrupt("id is not a string".into()))?;
                        id = Some(CheckpointId::parse(text).map_err(|e| corrupt(e.to_string()))?);
                    }
                    "ts" => {
                        ts = Some(
                            value
                                .as_str()
                                .ok_or_else(|| corrupt("ts is not a string".into()))?
                                .to_owned(),
                        )
                    }
                    "channel_versions" => {
                        channel_versions = versions_from(&value).map_err(corrupt)?
                    }
                    "versions_seen" => {
                        let Value::Map(entries) = value else {
                            return Err(corrupt("versions_seen is not a map".into()));
                        };
                        for (node, versions) in entries {
                            let node = node
                                .as_str()
                                .ok_or_else(|| {
                                    corrupt("a versions_seen key is not a string".into())
                                })?
                                .to_owned();
                            versions_seen.insert(node, versions_from(&versions).map_err(corrupt)?);
                        }
                    }
                    "updated_channels" => {
                        updated_channels = match value {
                            Value::Nil => None,
                            Value::Array(items) => Some(
                                items
                                    .iter()
                                    .map(|i| {
                                        i.as_str()
                                            .and_then(|s| ChannelName::parse(s).ok())
                                            .ok_or_else(|| {
                                                corrupt("bad updated_channels entry".into())
                                            })
                                    })
                                    .collect::<DomainResult<Vec<_>>>()?,
                            ),
                            _ => return Err(corrupt("updated_channels is not a list".into())),
                        }
                    }
                    _ => {
                        extra.insert(key, typed_from_element(raw));
                    }
                }
            }
        }
    }
    if (cur.position() as usize) != bytes.len() {
        return Err(corrupt("trailing bytes after the checkpoint map".into()));
    }
    Ok(Checkpoint {
        v: v.ok_or_else(|| corrupt("the checkpoint has no v".into()))?,
        id: id.ok_or_else(|| corrupt("the checkpoint has no id".into()))?,
        ts: ts.unwrap_or_default(),
        channel_values,
        channel_versions,
        versions_seen,
        updated_channels,
        extra,
    })
}

/// The `v` of a blob without decoding anything else (prune's legacy-send rule needs it).
pub(crate) fn format_version(bytes: &[u8]) -> Option<i64> {
    let mut cur = Cursor::new(bytes);
    let len = read_map_len(&mut cur).ok()?;
    for _ in 0..len {
        let key = read_value(&mut cur).ok()?;
        let value = read_value(&mut cur).ok()?;
        if key.as_str() == Some("v") {
            return value.as_i64();
        }
    }
    None
}

/// How a Python reader sees an embedded element after decoding the whole blob: nil is
/// `None` (tag `null`), bin is `bytes`, anything else is re-serialized to the same msgpack.
fn typed_from_element(raw: &[u8]) -> TypedValue {
    match raw.first() {
        Some(0xc0) => TypedValue::null(),
        Some(0xc4..=0xc6) => {
            let mut cur = Cursor::new(raw);
            match read_value(&mut cur) {
                Ok(Value::Binary(b)) => TypedValue::new(TypedValue::BYTES, b)
                    .unwrap_or_else(|_| TypedValue::msgpack(raw.to_vec())),
                _ => TypedValue::msgpack(raw.to_vec()),
            }
        }
        _ => TypedValue::msgpack(raw.to_vec()),
    }
}

fn versions_from(value: &Value) -> Result<ChannelVersions, String> {
    let Value::Map(entries) = value else {
        return Err("channel versions are not a map".into());
    };
    let mut out = IndexMap::new();
    for (k, v) in entries {
        let name = k
            .as_str()
            .and_then(|s| ChannelName::parse(s).ok())
            .ok_or("a channel version key is not a channel name")?;
        let version = match v {
            Value::Integer(i) => ChannelVersion::Int(i.as_i64().ok_or("a version exceeds i64")?),
            Value::F64(f) => ChannelVersion::Float(*f),
            Value::F32(f) => ChannelVersion::Float(f64::from(*f)),
            Value::String(s) => {
                ChannelVersion::Str(s.as_str().ok_or("a version is not UTF-8")?.to_owned())
            }
            _ => {
                return Err(format!(
                    "channel {name}: a version is neither int, float nor string"
                ));
            }
        };
        out.insert(name, version);
    }
    Ok(out)
}

/// Writes a typed value as an element of the blob (spec §3.3 step 2.2).
fn embed(out: &mut Vec<u8>, value: &TypedValue, field: &'static str) -> DomainResult<()> {
    match value.type_tag() {
        TypedValue::MSGPACK => {
            if !is_one_document(value.bytes()) {
                return Err(DomainError::invalid(
                    field,
                    "a msgpack value must be exactly one complete msgpack document",
                ));
            }
            out.extend_from_slice(value.bytes());
        }
        TypedValue::NULL => out.push(0xc0),
        TypedValue::BYTES | TypedValue::BYTEARRAY => {
            rmp::encode::write_bin(out, value.bytes()).expect("writing to a Vec cannot fail");
        }
        other => {
            return Err(DomainError::invalid(
                field,
                format!(
                    "a value serialized as {other:?} cannot be embedded in LangGraph's SQLite \
                     checkpoint blob (only msgpack, null, bytes and bytearray can)"
                ),
            ));
        }
    }
    Ok(())
}

fn is_one_document(bytes: &[u8]) -> bool {
    let mut cur = Cursor::new(bytes);
    read_value(&mut cur).is_ok() && cur.position() as usize == bytes.len()
}

fn write_versions(out: &mut Vec<u8>, versions: &ChannelVersions) {
    write_map_len(out, versions.len());
    for (channel, version) in versions {
        write_str(out, channel.as_str());
        match version {
            ChannelVersion::Int(i) => write_value(out, &Value::from(*i)),
            ChannelVersion::Float(f) => write_value(out, &Value::F64(*f)),
            ChannelVersion::Str(s) => write_str(out, s),
        }
    }
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    rmpv::encode::write_value(out, value).expect("writing to a Vec cannot fail");
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    rmp::encode::write_str(out, s).expect("writing to a Vec cannot fail");
}

fn write_map_len(out: &mut Vec<u8>, len: usize) {
    rmp::encode::write_map_len(out, len as u32).expect("writing to a Vec cannot fail");
}

fn write_array_len(out: &mut Vec<u8>, len: usize) {
    rmp::encode::write_array_len(out, len as u32).expect("writing to a Vec cannot fail");
}

fn read_value(cur: &mut Cursor<&[u8]>) -> Result<Value, String> {
    rmpv::decode::read_value(cur).map_err(|e| e.to_string())
}

fn read_map_len(cur: &mut Cursor<&[u8]>) -> Result<u32, String> {
    rmp::decode::read_map_len(cur).map_err(|e| e.to_string())
}

fn read_string(cur: &mut Cursor<&[u8]>) -> Result<String, String> {
    match read_value(cur)? {
        Value::String(s) => s.into_str().ok_or_else(|| "not UTF-8".to_owned()),
        _ => Err("not a string".to_owned()),
    }
}

fn read_element<'a>(cur: &mut Cursor<&'a [u8]>, all: &'a [u8]) -> Result<&'a [u8], String> {
    let start = cur.position() as usize;
    read_value(cur)?;
    Ok(&all[start..cur.position() as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp() -> Checkpoint {
        let mut c = Checkpoint::empty(0);
        c.ts = "2026-01-02T03:04:05.000006+00:00".into();
        let ch = |s: &str| ChannelName::parse(s).unwrap();
        c.channel_values
            .insert(ch("msg"), TypedValue::msgpack(vec![0xa2, b'h', b'i']));
        c.channel_values
            .insert(ch("branch:to:a"), TypedValue::null());
        c.channel_values
            .insert(ch("raw"), TypedValue::new("bytes", vec![1, 2]).unwrap());
        c.channel_versions
            .insert(ch("msg"), ChannelVersion::Str("0001.0.5".into()));
        c.channel_versions.insert(ch("raw"), ChannelVersion::Int(3));
        c.versions_seen
            .insert("node".into(), c.channel_versions.clone());
        c.updated_channels = Some(vec![ch("msg")]);
        c.extra
            .insert("pending_sends".into(), TypedValue::msgpack(vec![0x90]));
        c
    }

    #[test]
    fn compose_then_decompose_gives_the_checkpoint_back() {
        let c = cp();
        let blob = compose(&c).unwrap();
        assert_eq!(&blob[..4], &[0x88, 0xa1, b'v', 0x04]);
        let back = decompose(&blob).unwrap();
        assert_eq!(back, c);
        assert_eq!(compose(&back).unwrap(), blob);
        assert_eq!(format_version(&blob), Some(4));
    }

    #[test]
    fn opaque_tags_cannot_be_embedded() {
        let mut c = cp();
        c.channel_values.insert(
            ChannelName::parse("secret").unwrap(),
            TypedValue::new("msgpack+aes", vec![1]).unwrap(),
        );
        assert!(compose(&c).unwrap_err().is_invalid_input());
        let mut c = cp();
        c.channel_values.insert(
            ChannelName::parse("bad").unwrap(),
            TypedValue::msgpack(vec![0x92, 1]),
        );
        assert!(compose(&c).unwrap_err().is_invalid_input());
    }

    #[test]
    fn corrupt_blobs_are_storage_errors() {
        assert!(decompose(&[0x81, 0x01]).unwrap_err().is_storage());
        assert!(decompose(&[0x80, 0x00]).unwrap_err().is_storage());
    }
}
