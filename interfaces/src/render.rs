//! Readable renderings of checkpoints for people: channel values decoded with the adapters'
//! LangGraph codec into plain JSON (LangChain messages as their `model_dump` dicts, other
//! Python objects as `{"$type": "module.Class", …}`), shared by the REST API and the CLI.
//!
//! Decoding never fails a request: a value the codec cannot read is shown by tag and size with
//! the decode error, and the raw bytes stay available in base64.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map as JsonMap, Value as JsonValue, json};
use waymark_adapters::codec::{self, Message, Payload, Value};
use waymark_domain::checkpoint::{CheckpointTuple, TypedValue};

/// The most nested levels rendered; deeper values are summarized.
const MAX_RENDER_DEPTH: usize = 64;

/// A decoded value, or why it could not be decoded.
pub fn typed_to_json(value: &TypedValue) -> Result<JsonValue, String> {
    match codec::decode(value).map_err(|e| e.to_string())? {
        Payload::Null => Ok(JsonValue::Null),
        Payload::Bytes(b) | Payload::ByteArray(b) => Ok(json!({"$bytes": STANDARD.encode(b)})),
        Payload::Msgpack(v) => Ok(value_to_json(&v, 0)),
        Payload::Json(legacy) => Ok(legacy.value().clone()),
        Payload::Opaque(t) => Ok(json!({"$opaque": t.type_tag(), "bytes": t.bytes().len()})),
    }
}

/// A msgpack value as readable JSON.
pub fn value_to_json(v: &Value, depth: usize) -> JsonValue {
    if depth > MAX_RENDER_DEPTH {
        return json!("…");
    }
    match v {
        Value::Nil => JsonValue::Null,
        Value::Bool(b) => JsonValue::Bool(*b),
        Value::Int(i) => {
            let n = i.value();
            if let Ok(x) = i64::try_from(n) {
                json!(x)
            } else if let Ok(x) = u64::try_from(n) {
                json!(x)
            } else {
                json!(n.to_string())
            }
        }
        Value::F32(f) => json!(f),
        Value::F64(f) => json!(f),
        Value::Str(s) => match s.as_str() {
            Some(t) => json!(t),
            None => json!({"$invalid_utf8": STANDARD.encode(s.as_bytes())}),
        },
        Value::Bin(b) => json!({"$bytes": STANDARD.encode(&b.data)}),
        Value::Array(a) => JsonValue::Array(
            a.items
                .iter()
                .map(|x| value_to_json(x, depth + 1))
                .collect(),
        ),
        Value::Map(m) => {
            let mut out = JsonMap::new();
            for (k, val) in &m.entries {
                let key = match k.as_str() {
                    Some(s) => s.to_owned(),
                    None => value_to_json(k, depth + 1).to_string(),
                };
                out.insert(key, value_to_json(val, depth + 1));
            }
            JsonValue::Object(out)
        }
        Value::Ext(e) => {
            if let Ok(m) = Message::from_value(v) {
                return m.to_json();
            }
            match e.view() {
                Ok(view) => ext_to_json(&view, depth),
                Err(_) => json!({"$ext": e.code}),
            }
        }
    }
}

fn ext_to_json(view: &codec::ExtView<'_>, depth: usize) -> JsonValue {
    use codec::ExtView::*;
    let d = depth + 1;
    let ty = |module: &str, name: &str| format!("{module}.{name}");
    match view {
        SingleArg { module, name, arg } => {
            json!({"$type": ty(module, name), "value": value_to_json(arg, d)})
        }
        PosArgs { module, name, args } => json!({
            "$type": ty(module, name),
            "args": args.iter().map(|a| value_to_json(a, d)).collect::<Vec<_>>(),
        }),
        KwArgs {
            module,
            name,
            kwargs,
        } => {
            let mut obj = JsonMap::new();
            obj.insert("$type".into(), json!(ty(module, name)));
            if let JsonValue::Object(f) = value_to_json(&Value::Map((*kwargs).clone()), d) {
                obj.extend(f);
            }
            JsonValue::Object(obj)
        }
        Method {
            module,
            name,
            arg,
            method,
        } => json!({
            "$type": ty(module, name), "method": method, "value": value_to_json(arg, d),
        }),
        PydanticV1 {
            module,
            name,
            fields,
        }
        | PydanticV2 {
            module,
            name,
            fields,
            ..
        } => {
            let mut obj = JsonMap::new();
            obj.insert("$type".into(), json!(ty(module, name)));
            if let JsonValue::Object(f) = value_to_json(&Value::Map((*fields).clone()), d) {
                obj.extend(f);
            }
            JsonValue::Object(obj)
        }
        NumpyArray { dtype, shape, .. } => json!({
            "$type": "numpy.ndarray", "dtype": dtype,
            "shape": shape.iter().map(|s| value_to_json(s, d)).collect::<Vec<_>>(),
        }),
        DeltaSnapshot { value } => json!({"$delta_snapshot": value_to_json(value, d)}),
    }
}

/// A channel value for the API: tag, size, the decoded value (or the decode error), and the
/// raw bytes when asked for.
pub fn value_entry(v: &TypedValue, raw: bool) -> JsonValue {
    let mut obj = JsonMap::new();
    obj.insert("type".into(), json!(v.type_tag()));
    obj.insert("bytes".into(), json!(v.bytes().len()));
    match typed_to_json(v) {
        Ok(j) => {
            obj.insert("value".into(), j);
        }
        Err(e) => {
            obj.insert("value".into(), JsonValue::Null);
            obj.insert("decode_error".into(), json!(e));
        }
    }
    if raw {
        obj.insert("data".into(), json!(STANDARD.encode(v.bytes())));
    }
    JsonValue::Object(obj)
}

/// The messages of a checkpoint's `messages` channel as LangChain dicts, when it holds any.
pub fn checkpoint_messages(t: &CheckpointTuple) -> Option<Vec<JsonValue>> {
    let channel = t
        .checkpoint
        .channel_values
        .iter()
        .find(|(k, _)| k.as_str() == "messages")
        .map(|(_, v)| v)?;
    codec::decode_messages(channel)
        .ok()
        .map(|ms| ms.iter().map(Message::to_json).collect())
}

/// The values written to `__interrupt__` by pending tasks, decoded.
pub fn interrupts(t: &CheckpointTuple) -> Vec<JsonValue> {
    t.pending_writes
        .iter()
        .filter(|w| w.channel.as_str() == "__interrupt__")
        .map(|w| typed_to_json(&w.value).unwrap_or_else(|e| json!({"decode_error": e})))
        .collect()
}

/// One line of text for a message: `role: content` with tool calls named.
pub fn message_line(m: &JsonValue) -> String {
    let role = m.get("type").and_then(JsonValue::as_str).unwrap_or("?");
    let content = match m.get("content") {
        Some(JsonValue::String(s)) => s.clone(),
        Some(JsonValue::Array(blocks)) => blocks
            .iter()
            .map(|b| {
                b.get("text")
                    .and_then(JsonValue::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| b.to_string())
            })
            .collect::<Vec<_>>()
            .join(" "),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let mut line = format!("{role}: {content}");
    if let Some(calls) = m.get("tool_calls").and_then(JsonValue::as_array)
        && !calls.is_empty()
    {
        let names: Vec<String> = calls
            .iter()
            .map(|c| {
                format!(
                    "{}({})",
                    c.get("name").and_then(JsonValue::as_str).unwrap_or("?"),
                    c.get("args").map(JsonValue::to_string).unwrap_or_default()
                )
            })
            .collect();
        line.push_str(&format!(" [tool calls: {}]", names.join(", ")));
    }
    if let Some(id) = m.get("tool_call_id").and_then(JsonValue::as_str) {
        line.push_str(&format!(" [answers {id}]"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgpack_scalars_and_containers_render_as_json() {
        // "hello", [1, 2], 42 from the protocol spec examples.
        let hello = TypedValue::msgpack(vec![0xa5, b'h', b'e', b'l', b'l', b'o']);
        assert_eq!(typed_to_json(&hello).unwrap(), json!("hello"));
        assert_eq!(
            typed_to_json(&TypedValue::msgpack(vec![0x92, 1, 2])).unwrap(),
            json!([1, 2])
        );
        assert_eq!(typed_to_json(&TypedValue::null()).unwrap(), JsonValue::Null);
        let e = value_entry(&TypedValue::msgpack(vec![0xc1]), true);
        assert!(e["decode_error"].is_string(), "{e}");
        assert_eq!(e["data"], json!("wQ=="));
    }

    #[test]
    fn message_lines_name_roles_and_tool_calls() {
        let m = json!({"type": "ai", "content": "", "tool_calls": [{"name": "search", "args": {"q": "x"}}]});
        assert_eq!(message_line(&m), "ai:  [tool calls: search({\"q\":\"x\"})]");
        let t = json!({"type": "tool", "content": "42", "tool_call_id": "c1"});
        assert_eq!(message_line(&t), "tool: 42 [answers c1]");
    }
}
