//! The seam through which the application reads messages out of checkpoint channels.
//!
//! Channel values are opaque [`TypedValue`]s (LangGraph's msgpack with extension types); this
//! crate deliberately cannot decode them, because that knowledge lives in the adapters crate.
//! Services that need messages (the history fallback, message-level checkpoint diffs) take an
//! optional [`MessageCodec`] that the host wires in. Without one they degrade: history falls
//! back to nothing and diffs report byte-level changes only.

use waymark_domain::JsonObject;
use waymark_domain::checkpoint::TypedValue;

/// One message as the codec decodes it: LangChain's message fields as a JSON object, with
/// the `id` and `type` members surfaced. The whole object is kept so nothing is lost on the
/// way to the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelMessage {
    fields: JsonObject,
}

impl ChannelMessage {
    /// Wraps a decoded message object.
    pub fn new(fields: JsonObject) -> Self {
        Self { fields }
    }

    /// The message id, when it has a non-empty string one.
    pub fn id(&self) -> Option<&str> {
        self.fields
            .get("id")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    }

    /// The message type (`human`, `ai`, `tool`, `system`, ...), when present.
    pub fn message_type(&self) -> Option<&str> {
        self.fields.get("type").and_then(|v| v.as_str())
    }

    /// The `content` member, when present.
    pub fn content(&self) -> Option<&serde_json::Value> {
        self.fields.get("content")
    }

    /// Every field.
    pub fn fields(&self) -> &JsonObject {
        &self.fields
    }

    /// Gives back the fields.
    pub fn into_fields(self) -> JsonObject {
        self.fields
    }
}

/// Decodes and encodes the list of messages a channel (normally `messages`) holds. Implemented
/// by the host, typically over the adapters crate's LangGraph serializer.
pub trait MessageCodec: Send + Sync + std::fmt::Debug {
    /// The messages in `value`, in channel order. An error means the value is not a message
    /// list this codec understands.
    fn decode_messages(&self, value: &TypedValue) -> Result<Vec<ChannelMessage>, String>;

    /// A channel value holding exactly these messages.
    fn encode_messages(&self, messages: &[ChannelMessage]) -> Result<TypedValue, String>;
}

#[cfg(test)]
pub(crate) mod test_codec {
    //! A codec for tests: the channel value is the JSON array of message objects, tagged
    //! `json`, so tests can build message channels without msgpack.

    use super::*;

    /// JSON-array codec.
    #[derive(Debug, Default)]
    pub struct JsonCodec;

    impl MessageCodec for JsonCodec {
        fn decode_messages(&self, value: &TypedValue) -> Result<Vec<ChannelMessage>, String> {
            if value.type_tag() != TypedValue::JSON {
                return Err(format!("unsupported tag {}", value.type_tag()));
            }
            let v: serde_json::Value =
                serde_json::from_slice(value.bytes()).map_err(|e| e.to_string())?;
            let arr = v.as_array().ok_or("not an array")?;
            arr.iter()
                .map(|m| {
                    m.as_object()
                        .cloned()
                        .map(ChannelMessage::new)
                        .ok_or_else(|| "message is not an object".to_owned())
                })
                .collect()
        }

        fn encode_messages(&self, messages: &[ChannelMessage]) -> Result<TypedValue, String> {
            let arr: Vec<serde_json::Value> = messages
                .iter()
                .map(|m| serde_json::Value::Object(m.fields().clone()))
                .collect();
            TypedValue::new(
                TypedValue::JSON,
                serde_json::to_vec(&arr).map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())
        }
    }

    /// A message-list value built from JSON message objects.
    pub fn messages_value(messages: serde_json::Value) -> TypedValue {
        TypedValue::new(TypedValue::JSON, serde_json::to_vec(&messages).unwrap()).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::test_codec::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn accessors_surface_id_and_type_and_empty_ids_count_as_absent() {
        let m = ChannelMessage::new(
            json!({"type": "ai", "id": "lc_run--1", "content": "hi"})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(m.id(), Some("lc_run--1"));
        assert_eq!(m.message_type(), Some("ai"));
        assert_eq!(m.content(), Some(&json!("hi")));
        let blank = ChannelMessage::new(
            json!({"type": "human", "id": ""})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(blank.id(), None);
    }

    #[test]
    fn json_test_codec_round_trips() {
        let v = messages_value(json!([{"type": "human", "content": "a"}]));
        let decoded = JsonCodec.decode_messages(&v).unwrap();
        assert_eq!(decoded.len(), 1);
        assert_eq!(JsonCodec.encode_messages(&decoded).unwrap(), v);
        assert!(
            JsonCodec
                .decode_messages(&TypedValue::msgpack(vec![1]))
                .is_err()
        );
    }
}
