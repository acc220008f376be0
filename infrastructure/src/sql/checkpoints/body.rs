//! The checkpoint row's `body`: everything of a checkpoint except its versioned channel values,
//! as one msgpack document.
//!
//! ```text
//! [v, ts, channels, channel_versions, versions_seen, updated_channels, extra]
//! channels         = [name | [name, tag, bytes], ...]   in the checkpoint's order; a bare name
//!                                                       is a value stored as a payload
//! channel_versions = [[name, version], ...]             int, float or str, type kept
//! versions_seen    = [[node, [[name, version], ...]], ...]
//! updated_channels = nil | [name, ...]
//! extra            = [[key, tag, bytes], ...]
//! ```
//!
//! msgpack keeps the version types (int vs float vs string) and the byte payloads without
//! escaping, and is far smaller and faster than JSON for this shape.

use indexmap::IndexMap;
use rmpv::Value;
use waymark_domain::checkpoint::{ChannelVersion, ChannelVersions, Checkpoint, TypedValue};
use waymark_domain::{ChannelName, CheckpointId};

/// A decoded body: the checkpoint with its inline values only, and the order of every channel
/// the checkpoint carried.
pub(crate) struct DecodedBody {
    pub checkpoint: Checkpoint,
    pub value_order: Vec<ChannelName>,
}

fn version_value(v: &ChannelVersion) -> Value {
    match v {
        ChannelVersion::Int(i) => Value::from(*i),
        ChannelVersion::Float(f) => Value::F64(*f),
        ChannelVersion::Str(s) => Value::from(s.as_str()),
    }
}

fn versions_value(vs: &ChannelVersions) -> Value {
    Value::Array(
        vs.iter()
            .map(|(c, v)| Value::Array(vec![Value::from(c.as_str()), version_value(v)]))
            .collect(),
    )
}

fn typed(tag: &str, bytes: &[u8]) -> [Value; 2] {
    [Value::from(tag), Value::Binary(bytes.to_vec())]
}

/// Encodes `cp`; channels for which `is_payload` answers true are recorded by name only.
pub(crate) fn encode(cp: &Checkpoint, is_payload: impl Fn(&ChannelName) -> bool) -> Vec<u8> {
    let channels = cp
        .channel_values
        .iter()
        .map(|(name, value)| {
            if is_payload(name) {
                Value::from(name.as_str())
            } else {
                let [t, b] = typed(value.type_tag(), value.bytes());
                Value::Array(vec![Value::from(name.as_str()), t, b])
            }
        })
        .collect();
    let seen = cp
        .versions_seen
        .iter()
        .map(|(node, vs)| Value::Array(vec![Value::from(node.as_str()), versions_value(vs)]))
        .collect();
    let updated = match &cp.updated_channels {
        None => Value::Nil,
        Some(list) => Value::Array(list.iter().map(|c| Value::from(c.as_str())).collect()),
    };
    let extra = cp
        .extra
        .iter()
        .map(|(k, v)| {
            let [t, b] = typed(v.type_tag(), v.bytes());
            Value::Array(vec![Value::from(k.as_str()), t, b])
        })
        .collect();
    let doc = Value::Array(vec![
        Value::from(cp.v),
        Value::from(cp.ts.as_str()),
        Value::Array(channels),
        versions_value(&cp.channel_versions),
        Value::Array(seen),
        updated,
        Value::Array(extra),
    ]);
    let mut out = Vec::with_capacity(256);
    rmpv::encode::write_value(&mut out, &doc).expect("writing to a Vec cannot fail");
    out
}

type Res<T> = Result<T, String>;

fn arr(v: Value, what: &str) -> Res<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        other => Err(format!("{what}: expected an array, found {other}")),
    }
}

fn string(v: Value, what: &str) -> Res<String> {
    match v {
        Value::String(s) => s.into_str().ok_or_else(|| format!("{what}: not UTF-8")),
        other => Err(format!("{what}: expected a string, found {other}")),
    }
}

fn channel(v: Value) -> Res<ChannelName> {
    ChannelName::parse(string(v, "channel")?).map_err(|e| e.to_string())
}

fn typed_value(tag: Value, bytes: Value) -> Res<TypedValue> {
    let tag = string(tag, "type tag")?;
    let bytes = match bytes {
        Value::Binary(b) => b,
        other => return Err(format!("payload: expected bytes, found {other}")),
    };
    TypedValue::new(tag, bytes).map_err(|e| e.to_string())
}

fn version(v: Value) -> Res<ChannelVersion> {
    match v {
        Value::Integer(i) => i
            .as_i64()
            .map(ChannelVersion::Int)
            .ok_or_else(|| "version out of range".to_owned()),
        Value::F64(f) => Ok(ChannelVersion::Float(f)),
        Value::F32(f) => Ok(ChannelVersion::Float(f64::from(f))),
        other => Ok(ChannelVersion::Str(string(other, "version")?)),
    }
}

fn versions(v: Value) -> Res<ChannelVersions> {
    let mut out = IndexMap::new();
    for pair in arr(v, "versions")? {
        let mut it = arr(pair, "version pair")?.into_iter();
        let (Some(c), Some(ver)) = (it.next(), it.next()) else {
            return Err("version pair: too short".into());
        };
        out.insert(channel(c)?, version(ver)?);
    }
    Ok(out)
}

/// Decodes a body written by [`encode`]; `id` is the row's checkpoint id.
pub(crate) fn decode(bytes: &[u8], id: CheckpointId) -> Res<DecodedBody> {
    let doc = rmpv::decode::read_value(&mut &bytes[..]).map_err(|e| e.to_string())?;
    let mut it = arr(doc, "body")?.into_iter();
    let mut next = |what: &str| it.next().ok_or_else(|| format!("body: missing {what}"));
    let v = next("v")?
        .as_i64()
        .ok_or_else(|| "body: v is not an integer".to_owned())?;
    let ts = string(next("ts")?, "ts")?;
    let mut channel_values = IndexMap::new();
    let mut value_order = Vec::new();
    for entry in arr(next("channels")?, "channels")? {
        match entry {
            Value::Array(parts) => {
                let mut p = parts.into_iter();
                let (Some(c), Some(t), Some(b)) = (p.next(), p.next(), p.next()) else {
                    return Err("inline channel: too short".into());
                };
                let name = channel(c)?;
                value_order.push(name.clone());
                channel_values.insert(name, typed_value(t, b)?);
            }
            other => value_order.push(channel(other)?),
        }
    }
    let channel_versions = versions(next("channel_versions")?)?;
    let mut versions_seen = IndexMap::new();
    for pair in arr(next("versions_seen")?, "versions_seen")? {
        let mut p = arr(pair, "versions_seen entry")?.into_iter();
        let (Some(node), Some(vs)) = (p.next(), p.next()) else {
            return Err("versions_seen entry: too short".into());
        };
        versions_seen.insert(string(node, "node")?, versions(vs)?);
    }
    let updated_channels = match next("updated_channels")? {
        Value::Nil => None,
        other => Some(
            arr(other, "updated_channels")?
                .into_iter()
                .map(channel)
                .collect::<Res<Vec<_>>>()?,
        ),
    };
    let mut extra = IndexMap::new();
    for entry in arr(next("extra")?, "extra")? {
        let mut p = arr(entry, "extra entry")?.into_iter();
        let (Some(k), Some(t), Some(b)) = (p.next(), p.next(), p.next()) else {
            return Err("extra entry: too short".into());
        };
        extra.insert(string(k, "extra key")?, typed_value(t, b)?);
    }
    Ok(DecodedBody {
        checkpoint: Checkpoint {
            v,
            id,
            ts,
            channel_values,
            channel_versions,
            versions_seen,
            updated_channels,
            extra,
        },
        value_order,
    })
}

/// Only the `channel_versions` of a body (payload collection needs nothing else).
pub(crate) fn channel_versions(bytes: &[u8]) -> Res<ChannelVersions> {
    let doc = rmpv::decode::read_value(&mut &bytes[..]).map_err(|e| e.to_string())?;
    let v = arr(doc, "body")?
        .into_iter()
        .nth(3)
        .ok_or_else(|| "body: missing channel_versions".to_owned())?;
    versions(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_round_trips_every_field_and_version_type() {
        let ch = |s: &str| ChannelName::parse(s).unwrap();
        let mut cp = Checkpoint::empty(1);
        cp.v = 1;
        cp.channel_values
            .insert(ch("messages"), TypedValue::msgpack(vec![0x91, 0x01]));
        cp.channel_values
            .insert(ch("branch:to:x"), TypedValue::null());
        cp.channel_versions
            .insert(ch("messages"), ChannelVersion::Str("0002.5".into()));
        cp.channel_versions.insert(ch("a"), ChannelVersion::Int(3));
        cp.channel_versions
            .insert(ch("b"), ChannelVersion::Float(2.5));
        let mut seen = IndexMap::new();
        seen.insert(ch("a"), ChannelVersion::Int(1));
        cp.versions_seen.insert("node".into(), seen);
        cp.updated_channels = Some(vec![ch("a")]);
        cp.extra
            .insert("pending_sends".into(), TypedValue::msgpack(vec![0x90]));
        let bytes = encode(&cp, |c| c.as_str() == "messages");
        let back = decode(&bytes, cp.id.clone()).unwrap();
        assert_eq!(back.value_order, vec![ch("messages"), ch("branch:to:x")]);
        let mut expected = cp.clone();
        expected.channel_values.shift_remove(&ch("messages"));
        assert_eq!(back.checkpoint, expected);
        assert_eq!(channel_versions(&bytes).unwrap(), cp.channel_versions);
    }
}
