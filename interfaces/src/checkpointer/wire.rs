//! The protocol's JSON shapes (spec `remote-checkpointer-protocol.md` §3) and their
//! translation to and from domain types.
//!
//! Requests are read member by member from an order-preserving JSON map rather than through
//! derived structs, because the protocol distinguishes a missing member (`ValueError`) from a
//! member of the wrong JSON type (`TypeError`), treats `null` like absence, ignores unknown
//! members, and needs member order kept for channel maps.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use indexmap::IndexMap;
use serde_json::{Map, Value, json};
use waymark_domain::checkpoint::{
    ChannelVersion, ChannelVersions, Checkpoint, CheckpointTuple, PendingWrite, TypedValue,
};
use waymark_domain::{ChannelName, CheckpointId, CheckpointNamespace, ThreadId};

use super::error::{ProtoError, invalid, type_error, value_error};
use super::msgpack::{Bins, object_to_msgpack};

/// A JSON object as the protocol sends it.
pub type Obj = Map<String, Value>;

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The request body as a JSON object.
pub fn body_object(bytes: &[u8]) -> Result<Obj, ProtoError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(value_error("the request body is empty; send a JSON object"));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(other) => Err(type_error(format!(
            "the request body must be a JSON object, not {}",
            json_type(&other)
        ))),
        Err(e) => Err(value_error(format!(
            "the request body is not valid JSON: {e}"
        ))),
    }
}

/// A member, with `null` read as absent.
pub fn member<'a>(obj: &'a Obj, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// A required string member.
pub fn req_str<'a>(obj: &'a Obj, key: &str, ctx: &str) -> Result<&'a str, ProtoError> {
    match member(obj, key) {
        None => Err(value_error(format!("missing required member {ctx}{key}"))),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(type_error(format!(
            "{ctx}{key} must be a string, not {}",
            json_type(other)
        ))),
    }
}

/// An optional string member.
pub fn opt_str<'a>(obj: &'a Obj, key: &str, ctx: &str) -> Result<Option<&'a str>, ProtoError> {
    match member(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(type_error(format!(
            "{ctx}{key} must be a string, not {}",
            json_type(other)
        ))),
    }
}

/// An optional object member.
pub fn opt_obj<'a>(obj: &'a Obj, key: &str, ctx: &str) -> Result<Option<&'a Obj>, ProtoError> {
    match member(obj, key) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(other) => Err(type_error(format!(
            "{ctx}{key} must be an object, not {}",
            json_type(other)
        ))),
    }
}

/// A required object member.
pub fn req_obj<'a>(obj: &'a Obj, key: &str, ctx: &str) -> Result<&'a Obj, ProtoError> {
    opt_obj(obj, key, ctx)?
        .ok_or_else(|| value_error(format!("missing required member {ctx}{key}")))
}

/// A required array of strings.
pub fn req_str_array<'a>(obj: &'a Obj, key: &str) -> Result<Vec<&'a str>, ProtoError> {
    match member(obj, key) {
        None => Err(value_error(format!("missing required member {key}"))),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().ok_or_else(|| {
                    type_error(format!("{key}[{i}] must be a string, not {}", json_type(v)))
                })
            })
            .collect(),
        Some(other) => Err(type_error(format!(
            "{key} must be an array of strings, not {}",
            json_type(other)
        ))),
    }
}

/// A config as the protocol sends it (§3.2).
#[derive(Debug, Clone, PartialEq)]
pub struct WireConfig {
    /// The thread.
    pub thread_id: ThreadId,
    /// The namespace; `None` when null or absent (its meaning depends on the operation).
    pub namespace: Option<CheckpointNamespace>,
    /// The checkpoint id; `None` when null, absent or empty.
    pub checkpoint_id: Option<CheckpointId>,
}

impl WireConfig {
    /// Reads a config object.
    pub fn parse(obj: &Obj, ctx: &str) -> Result<Self, ProtoError> {
        let thread_id = ThreadId::parse(req_str(obj, "thread_id", ctx)?).map_err(invalid)?;
        let namespace = opt_str(obj, "checkpoint_ns", ctx)?
            .map(CheckpointNamespace::parse)
            .transpose()
            .map_err(invalid)?;
        let checkpoint_id = opt_str(obj, "checkpoint_id", ctx)?
            .filter(|s| !s.is_empty())
            .map(CheckpointId::parse)
            .transpose()
            .map_err(invalid)?;
        Ok(Self {
            thread_id,
            namespace,
            checkpoint_id,
        })
    }

    /// The namespace, `""` when absent.
    pub fn namespace_or_root(&self) -> CheckpointNamespace {
        self.namespace.clone().unwrap_or_default()
    }
}

/// A response config: all three members, as strings.
pub fn config_json(thread: &ThreadId, ns: &CheckpointNamespace, id: &CheckpointId) -> Value {
    json!({
        "thread_id": thread.as_str(),
        "checkpoint_ns": ns.as_str(),
        "checkpoint_id": id.as_str(),
    })
}

/// Reads a Value (§3.1). The `{"json": …}` form is only ever sent by servers.
pub fn parse_value(v: &Value, ctx: &str) -> Result<TypedValue, ProtoError> {
    parse_value_in(v, ctx, &mut Bins::default())
}

/// Reads a Value whose `data` may be a msgpack `bin` lifted into `bins` (the msgpack
/// addendum) or a base64 string (protocol v1).
pub fn parse_value_in(v: &Value, ctx: &str, bins: &mut Bins) -> Result<TypedValue, ProtoError> {
    let Value::Object(o) = v else {
        return Err(type_error(format!(
            "{ctx} must be a value object {{\"type\", \"data\"}}, not {}",
            json_type(v)
        )));
    };
    if o.contains_key("json") && !o.contains_key("type") {
        return Err(value_error(format!(
            "{ctx}: the {{\"json\": …}} form appears only in responses; send {{\"type\", \"data\"}}"
        )));
    }
    let tag = req_str(o, "type", &format!("{ctx}."))?;
    let bytes = match o.get("data").and_then(|d| bins.take(d)) {
        Some(raw) => raw,
        None => {
            let data = opt_str(o, "data", &format!("{ctx}."))?.unwrap_or("");
            STANDARD
                .decode(data)
                .map_err(|e| value_error(format!("{ctx}.data is not standard base64: {e}")))?
        }
    };
    TypedValue::new(tag, bytes).map_err(|e| value_error(format!("{ctx}: {e}")))
}

/// Writes a Value.
pub fn value_json(v: &TypedValue) -> Value {
    json!({"type": v.type_tag(), "data": STANDARD.encode(v.bytes())})
}

/// Reads a channel version (str, int or float; §1.7).
pub fn parse_version(v: &Value, ctx: &str) -> Result<ChannelVersion, ProtoError> {
    match v {
        Value::String(s) => Ok(ChannelVersion::Str(s.clone())),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(ChannelVersion::Int(i))
            } else if waymark_domain::json::is_integer(n) {
                Err(value_error(format!(
                    "{ctx} is an integer beyond the signed 64-bit range"
                )))
            } else {
                n.as_f64().map(ChannelVersion::Float).ok_or_else(|| {
                    value_error(format!("{ctx} is outside the 64-bit floating-point range"))
                })
            }
        }
        other => Err(type_error(format!(
            "{ctx} must be a string or a number, not {}",
            json_type(other)
        ))),
    }
}

/// Writes a channel version with its JSON type.
pub fn version_json(v: &ChannelVersion) -> Value {
    match v {
        ChannelVersion::Int(i) => json!(i),
        ChannelVersion::Float(f) => json!(f),
        ChannelVersion::Str(s) => json!(s),
    }
}

fn channel(name: &str, ctx: &str) -> Result<ChannelName, ProtoError> {
    ChannelName::parse(name).map_err(|e| value_error(format!("{ctx}: {e}")))
}

/// Reads a `{channel: version}` map in member order.
pub fn parse_versions(obj: Option<&Obj>, ctx: &str) -> Result<ChannelVersions, ProtoError> {
    let mut out = ChannelVersions::new();
    if let Some(obj) = obj {
        for (k, v) in obj {
            let name = channel(k, ctx)?;
            out.insert(name, parse_version(v, &format!("{ctx}.{k}"))?);
        }
    }
    Ok(out)
}

fn versions_json(v: &ChannelVersions) -> Value {
    Value::Object(
        v.iter()
            .map(|(k, v)| (k.as_str().to_owned(), version_json(v)))
            .collect(),
    )
}

/// The core top-level checkpoint keys (everything else travels in `extra`).
pub const CORE_KEYS: [&str; 7] = [
    "v",
    "ts",
    "id",
    "channel_values",
    "channel_versions",
    "versions_seen",
    "updated_channels",
];

/// Reads a checkpoint (§3.3). Which serializer tags a layout can store is the store's rule
/// ([`CheckpointCapabilities::check_put`](waymark_domain::checkpoint::CheckpointCapabilities::check_put)), not the wire's.
pub fn parse_checkpoint(obj: &Obj) -> Result<Checkpoint, ProtoError> {
    parse_checkpoint_in(obj, &mut Bins::default())
}

/// [`parse_checkpoint`] for a body whose value payloads may be lifted msgpack `bin`s.
pub fn parse_checkpoint_in(obj: &Obj, bins: &mut Bins) -> Result<Checkpoint, ProtoError> {
    let ctx = "checkpoint.";
    let v = match member(obj, "v") {
        None => return Err(value_error("missing required member checkpoint.v")),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| type_error("checkpoint.v must be an integer"))?,
        Some(other) => {
            return Err(type_error(format!(
                "checkpoint.v must be an integer, not {}",
                json_type(other)
            )));
        }
    };
    let id = CheckpointId::parse(req_str(obj, "id", ctx)?).map_err(invalid)?;
    let ts = opt_str(obj, "ts", ctx)?.unwrap_or_default().to_owned();
    let channel_versions = parse_versions(
        opt_obj(obj, "channel_versions", ctx)?,
        "checkpoint.channel_versions",
    )?;
    let mut versions_seen = IndexMap::new();
    if let Some(seen) = opt_obj(obj, "versions_seen", ctx)? {
        for (node, inner) in seen {
            let inner_ctx = format!("checkpoint.versions_seen.{node}");
            let inner = match inner {
                Value::Object(o) => Some(o),
                Value::Null => None,
                other => {
                    return Err(type_error(format!(
                        "{inner_ctx} must be an object, not {}",
                        json_type(other)
                    )));
                }
            };
            versions_seen.insert(node.clone(), parse_versions(inner, &inner_ctx)?);
        }
    }
    let updated_channels = match member(obj, "updated_channels") {
        None => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => channel(s, "checkpoint.updated_channels"),
                    other => Err(type_error(format!(
                        "checkpoint.updated_channels[{i}] must be a string, not {}",
                        json_type(other)
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(other) => {
            return Err(type_error(format!(
                "checkpoint.updated_channels must be an array or null, not {}",
                json_type(other)
            )));
        }
    };
    let mut channel_values = IndexMap::new();
    if let Some(values) = opt_obj(obj, "channel_values", ctx)? {
        for (k, v) in values {
            let what = format!("checkpoint.channel_values.{k}");
            let value = parse_value_in(v, &what, bins)?;
            channel_values.insert(channel(k, "checkpoint.channel_values")?, value);
        }
    }
    let mut extra = IndexMap::new();
    if let Some(values) = opt_obj(obj, "extra", ctx)? {
        for (k, v) in values {
            if CORE_KEYS.contains(&k.as_str()) {
                return Err(value_error(format!(
                    "checkpoint.extra.{k} collides with a core checkpoint key"
                )));
            }
            let what = format!("checkpoint.extra.{k}");
            let value = parse_value_in(v, &what, bins)?;
            extra.insert(k.clone(), value);
        }
    }
    if let Some(order) = member(obj, "key_order") {
        let Value::Array(keys) = order else {
            return Err(type_error(
                "checkpoint.key_order must be an array of strings",
            ));
        };
        let mut listed = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let k = k
                .as_str()
                .ok_or_else(|| type_error(format!("checkpoint.key_order[{i}] must be a string")))?;
            if !CORE_KEYS.contains(&k) && !extra.contains_key(k) {
                return Err(value_error(format!(
                    "checkpoint.key_order lists {k:?}, which is neither a core key nor an extra key"
                )));
            }
            listed.push(k);
        }
        if let Some(missing) = extra.keys().find(|k| !listed.contains(&k.as_str())) {
            return Err(value_error(format!(
                "checkpoint.key_order does not list the extra key {missing:?}"
            )));
        }
        // Extra keys follow the order the client's map had them in.
        let mut ordered = IndexMap::with_capacity(extra.len());
        for k in listed {
            if let Some((key, value)) = extra.shift_remove_entry(k) {
                ordered.insert(key, value);
            }
        }
        extra = ordered;
    }
    Ok(Checkpoint {
        v,
        id,
        ts,
        channel_values,
        channel_versions,
        versions_seen,
        updated_channels,
        extra,
    })
}

/// Writes a checkpoint (`key_order` omitted).
pub fn checkpoint_json(c: &Checkpoint) -> Value {
    let values: Map<String, Value> = c
        .channel_values
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), value_json(v)))
        .collect();
    let extra: Map<String, Value> = c
        .extra
        .iter()
        .map(|(k, v)| (k.clone(), value_json(v)))
        .collect();
    let seen: Map<String, Value> = c
        .versions_seen
        .iter()
        .map(|(node, v)| (node.clone(), versions_json(v)))
        .collect();
    json!({
        "v": c.v,
        "id": c.id.as_str(),
        "ts": c.ts,
        "channel_versions": versions_json(&c.channel_versions),
        "versions_seen": seen,
        "updated_channels": c.updated_channels.as_ref().map(|u| u.iter().map(ChannelName::as_str).collect::<Vec<_>>()),
        "channel_values": values,
        "extra": extra,
    })
}

fn write_json(w: &PendingWrite) -> Value {
    json!({
        "task_id": w.task_id.as_str(),
        "channel": w.channel.as_str(),
        "value": value_json(&w.value),
    })
}

/// Writes a tuple (§3.5); pending writes are re-sorted into the mandatory order.
pub fn tuple_json(t: &CheckpointTuple) -> Value {
    let mut writes = t.pending_writes.clone();
    waymark_domain::checkpoint::sort_pending_writes(&mut writes);
    json!({
        "config": config_json(&t.thread_id, &t.namespace, &t.checkpoint.id),
        "checkpoint": checkpoint_json(&t.checkpoint),
        "metadata": Value::Object(t.metadata.0.clone()),
        "parent_config": t.parent_id.as_ref().filter(|p| !p.as_str().is_empty()).map(|p| config_json(&t.thread_id, &t.namespace, p)),
        "pending_writes": writes.iter().map(write_json).collect::<Vec<_>>(),
    })
}

/// A Value as msgpack: `{"type": str, "data": bin}`.
pub fn value_msgpack(v: &TypedValue) -> rmpv::Value {
    rmpv::Value::Map(vec![
        ("type".into(), v.type_tag().into()),
        ("data".into(), rmpv::Value::Binary(v.bytes().to_vec())),
    ])
}

fn str_msgpack(s: &str) -> rmpv::Value {
    rmpv::Value::from(s)
}

fn config_msgpack(thread: &ThreadId, ns: &CheckpointNamespace, id: &CheckpointId) -> rmpv::Value {
    rmpv::Value::Map(vec![
        ("thread_id".into(), str_msgpack(thread.as_str())),
        ("checkpoint_ns".into(), str_msgpack(ns.as_str())),
        ("checkpoint_id".into(), str_msgpack(id.as_str())),
    ])
}

fn version_msgpack(v: &ChannelVersion) -> rmpv::Value {
    match v {
        ChannelVersion::Int(i) => rmpv::Value::from(*i),
        ChannelVersion::Float(f) => rmpv::Value::F64(*f),
        ChannelVersion::Str(s) => str_msgpack(s),
    }
}

fn versions_msgpack(v: &ChannelVersions) -> rmpv::Value {
    rmpv::Value::Map(
        v.iter()
            .map(|(k, v)| (str_msgpack(k.as_str()), version_msgpack(v)))
            .collect(),
    )
}

/// A checkpoint as msgpack: the members of [`checkpoint_json`], in its order.
pub fn checkpoint_msgpack(c: &Checkpoint) -> rmpv::Value {
    let values = c
        .channel_values
        .iter()
        .map(|(k, v)| (str_msgpack(k.as_str()), value_msgpack(v)))
        .collect();
    let extra = c
        .extra
        .iter()
        .map(|(k, v)| (str_msgpack(k), value_msgpack(v)))
        .collect();
    let seen = c
        .versions_seen
        .iter()
        .map(|(node, v)| (str_msgpack(node), versions_msgpack(v)))
        .collect();
    let updated = c.updated_channels.as_ref().map_or(rmpv::Value::Nil, |u| {
        rmpv::Value::Array(u.iter().map(|c| str_msgpack(c.as_str())).collect())
    });
    rmpv::Value::Map(vec![
        ("v".into(), rmpv::Value::from(c.v)),
        ("id".into(), str_msgpack(c.id.as_str())),
        ("ts".into(), str_msgpack(&c.ts)),
        (
            "channel_versions".into(),
            versions_msgpack(&c.channel_versions),
        ),
        ("versions_seen".into(), rmpv::Value::Map(seen)),
        ("updated_channels".into(), updated),
        ("channel_values".into(), rmpv::Value::Map(values)),
        ("extra".into(), rmpv::Value::Map(extra)),
    ])
}

/// A tuple as msgpack: the members of [`tuple_json`], values' bytes as `bin`; `Err` when its
/// metadata holds an integer beyond 64 bits (the answer then goes out as JSON).
pub fn tuple_msgpack(t: &CheckpointTuple) -> Result<rmpv::Value, super::msgpack::BeyondMsgpack> {
    let mut writes = t.pending_writes.clone();
    waymark_domain::checkpoint::sort_pending_writes(&mut writes);
    let parent = t
        .parent_id
        .as_ref()
        .filter(|p| !p.as_str().is_empty())
        .map_or(rmpv::Value::Nil, |p| {
            config_msgpack(&t.thread_id, &t.namespace, p)
        });
    let writes = writes
        .iter()
        .map(|w| {
            rmpv::Value::Map(vec![
                ("task_id".into(), str_msgpack(w.task_id.as_str())),
                ("channel".into(), str_msgpack(w.channel.as_str())),
                ("value".into(), value_msgpack(&w.value)),
            ])
        })
        .collect();
    Ok(rmpv::Value::Map(vec![
        (
            "config".into(),
            config_msgpack(&t.thread_id, &t.namespace, &t.checkpoint.id),
        ),
        ("checkpoint".into(), checkpoint_msgpack(&t.checkpoint)),
        ("metadata".into(), object_to_msgpack(&t.metadata.0)?),
        ("parent_config".into(), parent),
        ("pending_writes".into(), rmpv::Value::Array(writes)),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Obj {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn values_round_trip_and_reject_the_response_only_form() {
        let v = parse_value(&json!({"type": "msgpack", "data": "pWhlbGxv"}), "x").unwrap();
        assert_eq!(v.bytes(), b"\xa5hello");
        assert_eq!(
            value_json(&v),
            json!({"type": "msgpack", "data": "pWhlbGxv"})
        );
        let null = parse_value(&json!({"type": "null", "data": ""}), "x").unwrap();
        assert!(null.is_null());
        assert_eq!(
            parse_value(&json!({"json": 1}), "x").unwrap_err().kind,
            "ValueError"
        );
        assert_eq!(parse_value(&json!("x"), "x").unwrap_err().kind, "TypeError");
        assert_eq!(
            parse_value(&json!({"type": "msgpack", "data": "!!"}), "x")
                .unwrap_err()
                .kind,
            "ValueError"
        );
    }

    #[test]
    fn versions_keep_their_json_type() {
        assert_eq!(
            parse_version(&json!(1), "v").unwrap(),
            ChannelVersion::Int(1)
        );
        assert_eq!(
            parse_version(&json!(1.5), "v").unwrap(),
            ChannelVersion::Float(1.5)
        );
        assert_eq!(
            parse_version(&json!("0001.0.5"), "v").unwrap(),
            ChannelVersion::Str("0001.0.5".into())
        );
        assert_eq!(
            parse_version(&json!(true), "v").unwrap_err().kind,
            "TypeError"
        );
        assert_eq!(version_json(&ChannelVersion::Int(2)), json!(2));
        assert_eq!(version_json(&ChannelVersion::Float(2.0)), json!(2.0));
    }

    #[test]
    fn configs_treat_null_and_empty_as_absent() {
        let c = WireConfig::parse(
            &obj(json!({"thread_id": "t", "checkpoint_ns": null, "checkpoint_id": ""})),
            "config.",
        )
        .unwrap();
        assert_eq!(c.namespace, None);
        assert_eq!(c.checkpoint_id, None);
        let e = WireConfig::parse(&obj(json!({"thread_id": 5})), "config.").unwrap_err();
        assert_eq!(e.kind, "TypeError");
        let e = WireConfig::parse(&obj(json!({})), "config.").unwrap_err();
        assert_eq!(e.kind, "ValueError");
        assert!(e.message.contains("config.thread_id"), "{}", e.message);
    }

    #[test]
    fn checkpoints_parse_in_member_order_and_check_key_order() {
        let body = obj(json!({
            "v": 1, "id": "c1", "ts": "t",
            "channel_versions": {"b": 1, "a": "2"},
            "versions_seen": {"n": {"a": 1}},
            "updated_channels": null,
            "channel_values": {"b": {"type": "msgpack", "data": "Kg=="}},
            "extra": {"pending_sends": {"type": "msgpack", "data": "kA=="}},
        }));
        let c = parse_checkpoint(&body).unwrap();
        assert_eq!(c.v, 1);
        let keys: Vec<_> = c.channel_versions.keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["b", "a"]);
        assert!(c.updated_channels.is_none());
        let back = checkpoint_json(&c);
        assert_eq!(back["channel_versions"], json!({"b": 1, "a": "2"}));
        assert_eq!(back["extra"]["pending_sends"]["data"], json!("kA=="));

        let mut bad = body.clone();
        bad.insert("key_order".into(), json!(["v", "id", "nope"]));
        assert_eq!(parse_checkpoint(&bad).unwrap_err().kind, "ValueError");
        let mut missing_extra = body.clone();
        missing_extra.insert("key_order".into(), json!(["v", "id"]));
        assert!(parse_checkpoint(&missing_extra).is_err());
        let mut good = body.clone();
        good.insert(
            "key_order".into(),
            json!([
                "v",
                "id",
                "ts",
                "channel_values",
                "channel_versions",
                "versions_seen",
                "pending_sends",
                "updated_channels"
            ]),
        );
        assert!(parse_checkpoint(&good).is_ok());

        let mut pickle = body;
        pickle.insert(
            "channel_values".into(),
            json!({"x": {"type": "pickle", "data": ""}}),
        );
        let c = parse_checkpoint(&pickle).expect("the wire takes any serializer tag");
        assert_eq!(c.channel_values[0].type_tag(), "pickle");
    }
}
