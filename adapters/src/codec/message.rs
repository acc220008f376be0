//! LangChain messages (spec §2.5): a read view over the pydantic extension Python writes, a
//! plain [`Message`] for the rest of Waymark (JSON content, typed tool calls and usage), and
//! conversions that write exactly the bytes `langchain-core` 1.7 would.
//!
//! Fidelity contract. langchain-core validates every message on construction, and pydantic
//! puts the keys of its typed dicts (`ToolCall`, `InvalidToolCall`, `ToolCallChunk`,
//! `UsageMetadata` and its details) into schema order, so Python only ever writes those
//! orders; [`Message::to_value`] writes the same, which makes a message built in Rust, or read
//! from Python and written back, byte-identical to Python's own encoding. Unknown fields
//! survive but are written after the known ones. Two things Python does on construction are
//! not replayed: deriving an `AIMessageChunk`'s `tool_calls` from its `tool_call_chunks`, and
//! parsing OpenAI-style `additional_kwargs.tool_calls` into `tool_calls`; set those fields
//! yourself. A message whose fields hold non-JSON values (bytes, extensions) cannot become a
//! [`Message`]; keep it as a raw [`Value`] (its [`MessageView`] still works).

use serde::{Deserialize, Serialize};
use waymark_domain::checkpoint::TypedValue;
use waymark_domain::{JsonObject, JsonValue};

use super::error::CodecError;
use super::ext::{ExtView, build};
use super::json::{json_to_value, value_to_json};
use super::typed::{decode_value, encode_value};
use super::value::{Map, Value};

const BASE_FIELDS: [&str; 6] = [
    "content",
    "additional_kwargs",
    "response_metadata",
    "type",
    "name",
    "id",
];

/// A LangChain message class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageClass {
    /// `HumanMessage` (type `human`).
    Human,
    /// `HumanMessageChunk`.
    HumanChunk,
    /// `AIMessage` (type `ai`).
    Ai,
    /// `AIMessageChunk`.
    AiChunk,
    /// `ToolMessage` (type `tool`).
    Tool,
    /// `ToolMessageChunk`.
    ToolChunk,
    /// `SystemMessage` (type `system`).
    System,
    /// `SystemMessageChunk`.
    SystemChunk,
    /// `ChatMessage` (type `chat`).
    Chat,
    /// `ChatMessageChunk`.
    ChatChunk,
    /// `FunctionMessage` (type `function`).
    Function,
    /// `FunctionMessageChunk`.
    FunctionChunk,
    /// `RemoveMessage` (type `remove`).
    Remove,
}

impl MessageClass {
    /// Every class.
    pub const ALL: [MessageClass; 13] = [
        MessageClass::Human,
        MessageClass::HumanChunk,
        MessageClass::Ai,
        MessageClass::AiChunk,
        MessageClass::Tool,
        MessageClass::ToolChunk,
        MessageClass::System,
        MessageClass::SystemChunk,
        MessageClass::Chat,
        MessageClass::ChatChunk,
        MessageClass::Function,
        MessageClass::FunctionChunk,
        MessageClass::Remove,
    ];

    /// The Python module.
    pub fn module(self) -> &'static str {
        use MessageClass::*;
        match self {
            Human | HumanChunk => "langchain_core.messages.human",
            Ai | AiChunk => "langchain_core.messages.ai",
            Tool | ToolChunk => "langchain_core.messages.tool",
            System | SystemChunk => "langchain_core.messages.system",
            Chat | ChatChunk => "langchain_core.messages.chat",
            Function | FunctionChunk => "langchain_core.messages.function",
            Remove => "langchain_core.messages.modifier",
        }
    }

    /// The Python class name.
    pub fn class_name(self) -> &'static str {
        use MessageClass::*;
        match self {
            Human => "HumanMessage",
            HumanChunk => "HumanMessageChunk",
            Ai => "AIMessage",
            AiChunk => "AIMessageChunk",
            Tool => "ToolMessage",
            ToolChunk => "ToolMessageChunk",
            System => "SystemMessage",
            SystemChunk => "SystemMessageChunk",
            Chat => "ChatMessage",
            ChatChunk => "ChatMessageChunk",
            Function => "FunctionMessage",
            FunctionChunk => "FunctionMessageChunk",
            Remove => "RemoveMessage",
        }
    }

    /// The `type` field: `human`, `ai`, ... for messages, the class name for chunks.
    pub fn type_tag(self) -> &'static str {
        use MessageClass::*;
        match self {
            Human => "human",
            Ai => "ai",
            Tool => "tool",
            System => "system",
            Chat => "chat",
            Function => "function",
            Remove => "remove",
            chunk => chunk.class_name(),
        }
    }

    /// The class for a `type` value.
    pub fn from_type_tag(tag: &str) -> Option<MessageClass> {
        MessageClass::ALL.into_iter().find(|c| c.type_tag() == tag)
    }

    /// The class for a Python class name in a `langchain_core.messages` module.
    pub fn from_python(module: &str, class: &str) -> Option<MessageClass> {
        if !module.starts_with("langchain_core.messages") {
            return None;
        }
        MessageClass::ALL
            .into_iter()
            .find(|c| c.class_name() == class)
    }

    /// True for the `*Chunk` classes.
    pub fn is_chunk(self) -> bool {
        self.class_name().ends_with("Chunk")
    }

    /// The model fields in pydantic's order (what `model_dump` and the encoder emit).
    pub fn fields(self) -> &'static [&'static str] {
        use MessageClass::*;
        const AI: [&str; 9] = [
            "content",
            "additional_kwargs",
            "response_metadata",
            "type",
            "name",
            "id",
            "tool_calls",
            "invalid_tool_calls",
            "usage_metadata",
        ];
        const AI_CHUNK: [&str; 11] = [
            "content",
            "additional_kwargs",
            "response_metadata",
            "type",
            "name",
            "id",
            "tool_calls",
            "invalid_tool_calls",
            "usage_metadata",
            "tool_call_chunks",
            "chunk_position",
        ];
        const TOOL: [&str; 9] = [
            "content",
            "additional_kwargs",
            "response_metadata",
            "type",
            "name",
            "id",
            "tool_call_id",
            "artifact",
            "status",
        ];
        const CHAT: [&str; 7] = [
            "content",
            "additional_kwargs",
            "response_metadata",
            "type",
            "name",
            "id",
            "role",
        ];
        match self {
            Ai => &AI,
            AiChunk => &AI_CHUNK,
            Tool | ToolChunk => &TOOL,
            Chat | ChatChunk => &CHAT,
            Human | HumanChunk | System | SystemChunk | Function | FunctionChunk | Remove => {
                &BASE_FIELDS
            }
        }
    }

    fn has_field(self, field: &str) -> bool {
        self.fields().contains(&field)
    }
}

impl Serialize for MessageClass {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.type_tag())
    }
}

impl<'de> Deserialize<'de> for MessageClass {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let tag = String::deserialize(d)?;
        MessageClass::from_type_tag(&tag)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown message type {tag:?}")))
    }
}

/// A borrowed view of a LangChain message extension: its class and field map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MessageView<'a> {
    /// The class.
    pub class: MessageClass,
    /// The fields as Python wrote them.
    pub fields: &'a Map,
}

impl<'a> MessageView<'a> {
    /// Views `value` as a message; `None` when it is not a LangChain message extension
    /// (pydantic v2, or v1 as older langchain wrote).
    pub fn of(value: &'a Value) -> Option<MessageView<'a>> {
        let view = value.as_ext()?.view().ok()?;
        let (module, name, fields) = match view {
            ExtView::PydanticV2 {
                module,
                name,
                fields,
                ..
            }
            | ExtView::PydanticV1 {
                module,
                name,
                fields,
            } => (module, name, fields),
            _ => return None,
        };
        Some(MessageView {
            class: MessageClass::from_python(module, name)?,
            fields,
        })
    }

    /// A field.
    pub fn field(&self, name: &str) -> Option<&'a Value> {
        self.fields.get(name)
    }

    /// `content`.
    pub fn content(&self) -> Option<&'a Value> {
        self.field("content")
    }

    /// `id`, when set.
    pub fn id(&self) -> Option<&'a str> {
        self.field("id").and_then(Value::as_str)
    }

    /// `name`, when set.
    pub fn name(&self) -> Option<&'a str> {
        self.field("name").and_then(Value::as_str)
    }

    /// `tool_calls` elements (empty for classes without them).
    pub fn tool_calls(&self) -> &'a [Value] {
        self.field("tool_calls")
            .and_then(Value::as_array)
            .unwrap_or(&[])
    }

    /// `usage_metadata`, when set.
    pub fn usage_metadata(&self) -> Option<&'a Map> {
        self.field("usage_metadata").and_then(Value::as_map)
    }

    /// `tool_call_id` of tool messages.
    pub fn tool_call_id(&self) -> Option<&'a str> {
        self.field("tool_call_id").and_then(Value::as_str)
    }
}

fn json_object<'a>(json: &'a JsonValue, what: &'static str) -> Result<&'a JsonObject, CodecError> {
    json.as_object()
        .ok_or_else(|| CodecError::shape(what, "not an object"))
}

fn opt_text(obj: &JsonObject, key: &str, what: &'static str) -> Result<Option<String>, CodecError> {
    match obj.get(key) {
        None | Some(JsonValue::Null) => Ok(None),
        Some(JsonValue::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(CodecError::shape(
            what,
            format!("{key} must be text or null, found {other}"),
        )),
    }
}

fn opt_json(value: &Option<String>) -> JsonValue {
    value.clone().map_or(JsonValue::Null, JsonValue::String)
}

fn check_type(obj: &JsonObject, expected: &str, what: &'static str) -> Result<(), CodecError> {
    match obj.get("type") {
        None => Ok(()),
        Some(t) if t == expected => Ok(()),
        Some(t) => Err(CodecError::shape(
            what,
            format!("type is {t}, not {expected}"),
        )),
    }
}

/// A tool call requested by an AI message (langchain-core's `ToolCall`).
///
/// langchain-core rebuilds every tool call with its `tool_call` factory, so Python always
/// writes exactly `name, args, id, type` in that order; other keys cannot survive there and
/// are dropped here too.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The tool.
    pub name: String,
    /// The arguments (an object).
    pub args: JsonValue,
    /// The call id, which the answering tool message repeats.
    pub id: Option<String>,
}

impl ToolCall {
    /// A tool call.
    pub fn new(name: impl Into<String>, args: JsonValue, id: Option<String>) -> ToolCall {
        ToolCall {
            name: name.into(),
            args,
            id,
        }
    }

    /// LangChain's dict: `name, args, id, type`.
    pub fn to_json(&self) -> JsonValue {
        let mut obj = JsonObject::new();
        obj.insert("name".into(), self.name.clone().into());
        obj.insert("args".into(), self.args.clone());
        obj.insert("id".into(), opt_json(&self.id));
        obj.insert("type".into(), "tool_call".into());
        JsonValue::Object(obj)
    }

    /// Reads LangChain's dict (`args` defaults to `{}`).
    pub fn from_json(json: &JsonValue) -> Result<ToolCall, CodecError> {
        const WHAT: &str = "tool call";
        let obj = json_object(json, WHAT)?;
        check_type(obj, "tool_call", WHAT)?;
        let name = obj
            .get("name")
            .and_then(JsonValue::as_str)
            .ok_or_else(|| CodecError::shape(WHAT, "name is missing or not text"))?;
        let args = match obj.get("args") {
            None | Some(JsonValue::Null) => JsonValue::Object(JsonObject::new()),
            Some(a @ JsonValue::Object(_)) => a.clone(),
            Some(_) => return Err(CodecError::shape(WHAT, "args must be an object")),
        };
        Ok(ToolCall {
            name: name.to_owned(),
            args,
            id: opt_text(obj, "id", WHAT)?,
        })
    }
}

/// A tool call the model produced but that could not be parsed (langchain-core's
/// `InvalidToolCall`); Python writes `type, id, name, args, error`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvalidToolCall {
    /// The call id.
    pub id: Option<String>,
    /// The tool name, when known.
    pub name: Option<String>,
    /// The raw argument text.
    pub args: Option<String>,
    /// Why it is invalid.
    pub error: Option<String>,
}

impl InvalidToolCall {
    /// LangChain's dict.
    pub fn to_json(&self) -> JsonValue {
        let mut obj = JsonObject::new();
        obj.insert("type".into(), "invalid_tool_call".into());
        obj.insert("id".into(), opt_json(&self.id));
        obj.insert("name".into(), opt_json(&self.name));
        obj.insert("args".into(), opt_json(&self.args));
        obj.insert("error".into(), opt_json(&self.error));
        JsonValue::Object(obj)
    }

    /// Reads LangChain's dict.
    pub fn from_json(json: &JsonValue) -> Result<InvalidToolCall, CodecError> {
        const WHAT: &str = "invalid tool call";
        let obj = json_object(json, WHAT)?;
        check_type(obj, "invalid_tool_call", WHAT)?;
        Ok(InvalidToolCall {
            id: opt_text(obj, "id", WHAT)?,
            name: opt_text(obj, "name", WHAT)?,
            args: opt_text(obj, "args", WHAT)?,
            error: opt_text(obj, "error", WHAT)?,
        })
    }
}

/// A streamed fragment of a tool call (langchain-core's `ToolCallChunk`); Python writes
/// `name, args, id, index, type`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCallChunk {
    /// The tool name fragment.
    pub name: Option<String>,
    /// The argument text fragment.
    pub args: Option<String>,
    /// The call id.
    pub id: Option<String>,
    /// Which tool call of the message the fragment belongs to.
    pub index: Option<i64>,
}

impl ToolCallChunk {
    /// LangChain's dict.
    pub fn to_json(&self) -> JsonValue {
        let mut obj = JsonObject::new();
        obj.insert("name".into(), opt_json(&self.name));
        obj.insert("args".into(), opt_json(&self.args));
        obj.insert("id".into(), opt_json(&self.id));
        obj.insert(
            "index".into(),
            self.index.map_or(JsonValue::Null, JsonValue::from),
        );
        obj.insert("type".into(), "tool_call_chunk".into());
        JsonValue::Object(obj)
    }

    /// Reads LangChain's dict.
    pub fn from_json(json: &JsonValue) -> Result<ToolCallChunk, CodecError> {
        const WHAT: &str = "tool call chunk";
        let obj = json_object(json, WHAT)?;
        check_type(obj, "tool_call_chunk", WHAT)?;
        let index = match obj.get("index") {
            None | Some(JsonValue::Null) => None,
            Some(v) => Some(
                v.as_i64()
                    .ok_or_else(|| CodecError::shape(WHAT, "index must be an integer"))?,
            ),
        };
        Ok(ToolCallChunk {
            name: opt_text(obj, "name", WHAT)?,
            args: opt_text(obj, "args", WHAT)?,
            id: opt_text(obj, "id", WHAT)?,
            index,
        })
    }
}

/// Keys of `input_token_details` in langchain-core's schema order.
const INPUT_DETAIL_KEYS: [&str; 3] = ["audio", "cache_creation", "cache_read"];
/// Keys of `output_token_details` in langchain-core's schema order.
const OUTPUT_DETAIL_KEYS: [&str; 2] = ["audio", "reasoning"];

/// `obj` with the schema's keys first, in schema order, then the others in their order
/// (what pydantic's TypedDict validation does to the dict).
fn schema_order(obj: &JsonObject, keys: &[&str]) -> JsonObject {
    let mut out = JsonObject::new();
    for k in keys {
        if let Some(v) = obj.get(*k) {
            out.insert((*k).to_owned(), v.clone());
        }
    }
    for (k, v) in obj {
        if !keys.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// Token usage of an AI message (langchain-core's `UsageMetadata`).
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Total as the provider reported it.
    pub total_tokens: u64,
    /// `input_token_details` (`audio`, `cache_creation`, `cache_read`, ...), when present.
    pub input_token_details: Option<JsonObject>,
    /// `output_token_details` (`audio`, `reasoning`, ...), when present.
    pub output_token_details: Option<JsonObject>,
    /// Other keys, in order (pydantic keeps them after the known ones).
    pub extra: JsonObject,
}

impl Usage {
    /// Usage with the three counts.
    pub fn new(input_tokens: u64, output_tokens: u64, total_tokens: u64) -> Usage {
        Usage {
            input_tokens,
            output_tokens,
            total_tokens,
            input_token_details: None,
            output_token_details: None,
            extra: JsonObject::new(),
        }
    }

    /// LangChain's dict in the order pydantic gives it: the schema's keys (details keys in
    /// schema order too), then extra keys.
    pub fn to_json(&self) -> JsonValue {
        let mut obj = JsonObject::new();
        obj.insert("input_tokens".into(), self.input_tokens.into());
        obj.insert("output_tokens".into(), self.output_tokens.into());
        obj.insert("total_tokens".into(), self.total_tokens.into());
        if let Some(d) = &self.input_token_details {
            obj.insert(
                "input_token_details".into(),
                JsonValue::Object(schema_order(d, &INPUT_DETAIL_KEYS)),
            );
        }
        if let Some(d) = &self.output_token_details {
            obj.insert(
                "output_token_details".into(),
                JsonValue::Object(schema_order(d, &OUTPUT_DETAIL_KEYS)),
            );
        }
        for (k, v) in &self.extra {
            obj.insert(k.clone(), v.clone());
        }
        JsonValue::Object(obj)
    }

    /// Reads LangChain's dict (missing counts are 0).
    pub fn from_json(json: &JsonValue) -> Result<Usage, CodecError> {
        const WHAT: &str = "usage_metadata";
        let obj = json_object(json, WHAT)?;
        let count = |k: &str| match obj.get(k) {
            None => Ok(0),
            Some(v) => v
                .as_u64()
                .ok_or_else(|| CodecError::shape(WHAT, format!("{k} is not a count"))),
        };
        let details = |k: &str, keys: &[&str]| match obj.get(k) {
            None => Ok(None),
            Some(JsonValue::Object(o)) => Ok(Some(schema_order(o, keys))),
            Some(_) => Err(CodecError::shape(WHAT, format!("{k} is not an object"))),
        };
        Ok(Usage {
            input_tokens: count("input_tokens")?,
            output_tokens: count("output_tokens")?,
            total_tokens: count("total_tokens")?,
            input_token_details: details("input_token_details", &INPUT_DETAIL_KEYS)?,
            output_token_details: details("output_token_details", &OUTPUT_DETAIL_KEYS)?,
            extra: obj
                .iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "input_tokens"
                            | "output_tokens"
                            | "total_tokens"
                            | "input_token_details"
                            | "output_token_details"
                    )
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }
}

/// A chat message as the rest of Waymark sees it: JSON content, typed tool calls and usage.
///
/// Its JSON form ([`Message::to_json`], also its serde form) is LangChain's `model_dump()`:
/// every field of the class in order, nulls included, so clients that know LangGraph's API
/// read it unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "JsonValue", into = "JsonValue")]
pub struct Message {
    /// The class (`type` in JSON).
    pub class: MessageClass,
    /// `id`.
    pub id: Option<String>,
    /// `content`: a string or a list of content blocks.
    pub content: JsonValue,
    /// `name`.
    pub name: Option<String>,
    /// `tool_calls` (AI messages).
    pub tool_calls: Vec<ToolCall>,
    /// `invalid_tool_calls` (AI messages).
    pub invalid_tool_calls: Vec<InvalidToolCall>,
    /// `tool_call_id` (tool messages; required there).
    pub tool_call_id: Option<String>,
    /// `additional_kwargs`.
    pub additional_kwargs: JsonObject,
    /// `response_metadata`.
    pub response_metadata: JsonObject,
    /// `usage_metadata` (AI messages).
    pub usage: Option<Usage>,
    /// `role` (chat messages; required there).
    pub role: Option<String>,
    /// `artifact` (tool messages; null when unset).
    pub artifact: JsonValue,
    /// `status` (tool messages: `success` or `error`; `None` means the default `success`).
    pub status: Option<String>,
    /// `tool_call_chunks` (AI message chunks). Python's constructor derives `tool_calls`
    /// from these; Rust writes `tool_calls` as given, so set both for Python-identical bytes.
    pub tool_call_chunks: Vec<ToolCallChunk>,
    /// `chunk_position` (AI message chunks).
    pub chunk_position: Option<String>,
    /// Fields this model does not know (newer langchain-core), in order; written after the
    /// known fields.
    pub extra: JsonObject,
}

impl Message {
    /// An empty message of `class` with LangChain's defaults.
    pub fn new(class: MessageClass, content: impl Into<JsonValue>) -> Message {
        Message {
            class,
            id: None,
            content: content.into(),
            name: None,
            tool_calls: Vec::new(),
            invalid_tool_calls: Vec::new(),
            tool_call_id: None,
            additional_kwargs: JsonObject::new(),
            response_metadata: JsonObject::new(),
            usage: None,
            role: None,
            artifact: JsonValue::Null,
            status: None,
            tool_call_chunks: Vec::new(),
            chunk_position: None,
            extra: JsonObject::new(),
        }
    }

    /// A `HumanMessage`.
    pub fn human(content: impl Into<JsonValue>) -> Message {
        Message::new(MessageClass::Human, content)
    }

    /// An `AIMessage`.
    pub fn ai(content: impl Into<JsonValue>) -> Message {
        Message::new(MessageClass::Ai, content)
    }

    /// A `SystemMessage`.
    pub fn system(content: impl Into<JsonValue>) -> Message {
        Message::new(MessageClass::System, content)
    }

    /// A `ToolMessage` answering `tool_call_id`.
    pub fn tool(content: impl Into<JsonValue>, tool_call_id: impl Into<String>) -> Message {
        Message {
            tool_call_id: Some(tool_call_id.into()),
            ..Message::new(MessageClass::Tool, content)
        }
    }

    /// Sets the id (builder style).
    pub fn with_id(mut self, id: impl Into<String>) -> Message {
        self.id = Some(id.into());
        self
    }

    /// The `type` tag.
    pub fn type_tag(&self) -> &'static str {
        self.class.type_tag()
    }

    /// The content as plain text: the string itself, or the `text` of every text block
    /// joined (what LangChain's `.text` gives).
    pub fn text(&self) -> String {
        match &self.content {
            JsonValue::String(s) => s.clone(),
            JsonValue::Array(blocks) => blocks
                .iter()
                .filter_map(|b| match b {
                    JsonValue::String(s) => Some(s.as_str()),
                    JsonValue::Object(o)
                        if o.get("type").and_then(JsonValue::as_str) == Some("text") =>
                    {
                        o.get("text").and_then(JsonValue::as_str)
                    }
                    _ => None,
                })
                .collect(),
            _ => String::new(),
        }
    }

    /// Refuses fields the class does not have and missing required ones.
    pub fn validate(&self) -> Result<(), CodecError> {
        const WHAT: &str = "message";
        let c = self.class;
        let misplaced = |field: &str, set: bool| {
            if set && !c.has_field(field) {
                Err(CodecError::shape(
                    WHAT,
                    format!("a {} has no {field}", c.class_name()),
                ))
            } else {
                Ok(())
            }
        };
        misplaced("tool_calls", !self.tool_calls.is_empty())?;
        misplaced("invalid_tool_calls", !self.invalid_tool_calls.is_empty())?;
        misplaced("usage_metadata", self.usage.is_some())?;
        misplaced("tool_call_id", self.tool_call_id.is_some())?;
        misplaced("artifact", !self.artifact.is_null())?;
        misplaced("status", self.status.is_some())?;
        misplaced("role", self.role.is_some())?;
        misplaced("tool_call_chunks", !self.tool_call_chunks.is_empty())?;
        misplaced("chunk_position", self.chunk_position.is_some())?;
        if c.has_field("tool_call_id") && self.tool_call_id.is_none() {
            return Err(CodecError::shape(WHAT, "a tool message needs tool_call_id"));
        }
        if c.has_field("role") && self.role.is_none() {
            return Err(CodecError::shape(WHAT, "a chat message needs a role"));
        }
        if matches!(c, MessageClass::Function | MessageClass::FunctionChunk) && self.name.is_none()
        {
            return Err(CodecError::shape(WHAT, "a function message needs a name"));
        }
        if !matches!(self.content, JsonValue::String(_) | JsonValue::Array(_)) {
            return Err(CodecError::shape(
                WHAT,
                "content must be a string or a list of content blocks",
            ));
        }
        if let Some(k) = self.extra.keys().find(|k| c.has_field(k)) {
            return Err(CodecError::shape(
                WHAT,
                format!("extra field {k:?} shadows a known field"),
            ));
        }
        Ok(())
    }

    /// The JSON of one known field of the class.
    fn field_json(&self, field: &str) -> JsonValue {
        let opt = |v: &Option<String>| v.clone().map_or(JsonValue::Null, JsonValue::String);
        match field {
            "content" => self.content.clone(),
            "additional_kwargs" => JsonValue::Object(self.additional_kwargs.clone()),
            "response_metadata" => JsonValue::Object(self.response_metadata.clone()),
            "type" => self.class.type_tag().into(),
            "name" => opt(&self.name),
            "id" => opt(&self.id),
            "tool_calls" => self.tool_calls.iter().map(ToolCall::to_json).collect(),
            "invalid_tool_calls" => self
                .invalid_tool_calls
                .iter()
                .map(InvalidToolCall::to_json)
                .collect(),
            "usage_metadata" => self.usage.as_ref().map_or(JsonValue::Null, Usage::to_json),
            "tool_call_id" => opt(&self.tool_call_id),
            "artifact" => self.artifact.clone(),
            "status" => self.status.as_deref().unwrap_or("success").into(),
            "role" => opt(&self.role),
            "tool_call_chunks" => self
                .tool_call_chunks
                .iter()
                .map(ToolCallChunk::to_json)
                .collect(),
            "chunk_position" => opt(&self.chunk_position),
            _ => JsonValue::Null,
        }
    }

    /// LangChain's `model_dump()`: every field of the class in order, then extra fields.
    pub fn to_json(&self) -> JsonValue {
        let mut obj = JsonObject::new();
        for field in self.class.fields() {
            obj.insert((*field).to_owned(), self.field_json(field));
        }
        for (k, v) in &self.extra {
            obj.insert(k.clone(), v.clone());
        }
        JsonValue::Object(obj)
    }

    /// Reads a message dict (`type` required; other fields default as in LangChain).
    pub fn from_json(json: &JsonValue) -> Result<Message, CodecError> {
        const WHAT: &str = "message";
        let obj = json
            .as_object()
            .ok_or_else(|| CodecError::shape(WHAT, "not an object"))?;
        let tag = obj
            .get("type")
            .and_then(JsonValue::as_str)
            .ok_or_else(|| CodecError::shape(WHAT, "type is missing or not text"))?;
        let class = MessageClass::from_type_tag(tag)
            .ok_or_else(|| CodecError::shape(WHAT, format!("unknown message type {tag:?}")))?;
        Message::from_fields(class, obj.iter().map(|(k, v)| (k.as_str(), v.clone())))
    }

    fn from_fields<'k>(
        class: MessageClass,
        fields: impl Iterator<Item = (&'k str, JsonValue)>,
    ) -> Result<Message, CodecError> {
        const WHAT: &str = "message";
        let mut m = Message::new(class, "");
        let text = |k: &str, v: JsonValue| -> Result<Option<String>, CodecError> {
            match v {
                JsonValue::Null => Ok(None),
                JsonValue::String(s) => Ok(Some(s)),
                other => Err(CodecError::shape(
                    WHAT,
                    format!("{k} must be text or null, found {other}"),
                )),
            }
        };
        let object = |k: &str, v: JsonValue| -> Result<JsonObject, CodecError> {
            match v {
                JsonValue::Object(o) => Ok(o),
                JsonValue::Null => Ok(JsonObject::new()),
                _ => Err(CodecError::shape(WHAT, format!("{k} must be an object"))),
            }
        };
        let list = |k: &str, v: JsonValue| -> Result<Vec<JsonValue>, CodecError> {
            match v {
                JsonValue::Array(a) => Ok(a),
                JsonValue::Null => Ok(Vec::new()),
                _ => Err(CodecError::shape(WHAT, format!("{k} must be a list"))),
            }
        };
        for (k, v) in fields {
            if !class.has_field(k) {
                m.extra.insert(k.to_owned(), v);
                continue;
            }
            match k {
                "content" => m.content = v,
                "additional_kwargs" => m.additional_kwargs = object(k, v)?,
                "response_metadata" => m.response_metadata = object(k, v)?,
                "type" => {}
                "name" => m.name = text(k, v)?,
                "id" => m.id = text(k, v)?,
                "tool_calls" => {
                    m.tool_calls = list(k, v)?
                        .iter()
                        .map(ToolCall::from_json)
                        .collect::<Result<_, _>>()?
                }
                "invalid_tool_calls" => {
                    m.invalid_tool_calls = list(k, v)?
                        .iter()
                        .map(InvalidToolCall::from_json)
                        .collect::<Result<_, _>>()?
                }
                "usage_metadata" => {
                    m.usage = match v {
                        JsonValue::Null => None,
                        v => Some(Usage::from_json(&v)?),
                    }
                }
                "tool_call_id" => m.tool_call_id = text(k, v)?,
                "artifact" => m.artifact = v,
                // `success` is the default: `None` and an explicit `success` write the same.
                "status" => m.status = text(k, v)?.filter(|s| s != "success"),
                "role" => m.role = text(k, v)?,
                "tool_call_chunks" => {
                    m.tool_call_chunks = list(k, v)?
                        .iter()
                        .map(ToolCallChunk::from_json)
                        .collect::<Result<_, _>>()?
                }
                "chunk_position" => m.chunk_position = text(k, v)?,
                _ => {
                    m.extra.insert(k.to_owned(), v);
                }
            }
        }
        m.validate()?;
        Ok(m)
    }

    /// Reads a message from its msgpack extension (as found in a `messages` channel).
    pub fn from_value(value: &Value) -> Result<Message, CodecError> {
        let view = MessageView::of(value).ok_or_else(|| {
            CodecError::shape(
                "message",
                format!("not a LangChain message extension: {}", value.kind()),
            )
        })?;
        Message::from_view(&view)
    }

    /// Reads a message from a view.
    pub fn from_view(view: &MessageView<'_>) -> Result<Message, CodecError> {
        let mut fields = Vec::with_capacity(view.fields.len());
        for (k, v) in &view.fields.entries {
            let key = k
                .as_str()
                .ok_or_else(|| CodecError::shape("message", "a field name is not text"))?;
            let json = value_to_json(v)
                .map_err(|e| CodecError::shape("message", format!("field {key}: {e}")))?;
            fields.push((key, json));
        }
        Message::from_fields(view.class, fields.into_iter())
    }

    /// The extension Python writes for this message: pydantic v2
    /// `[module, class, {fields in model order}, "model_validate_json"]`.
    pub fn to_value(&self) -> Result<Value, CodecError> {
        self.validate()?;
        let mut map = Map::new();
        for field in self.class.fields() {
            map.push(field, json_to_value(&self.field_json(field))?);
        }
        for (k, v) in &self.extra {
            map.push(k, json_to_value(v)?);
        }
        Ok(build::pydantic_v2(
            self.class.module(),
            self.class.class_name(),
            map,
        ))
    }
}

impl From<Message> for JsonValue {
    fn from(m: Message) -> JsonValue {
        m.to_json()
    }
}

impl TryFrom<JsonValue> for Message {
    type Error = CodecError;
    fn try_from(json: JsonValue) -> Result<Message, CodecError> {
        Message::from_json(&json)
    }
}

/// Decodes a `messages` channel value (a list of message extensions; `null` is an empty
/// list).
pub fn decode_messages(typed: &TypedValue) -> Result<Vec<Message>, CodecError> {
    let value = decode_value(typed)?;
    messages_from_value(&value)
}

/// Reads a list of message extensions.
pub fn messages_from_value(value: &Value) -> Result<Vec<Message>, CodecError> {
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::Array(a) => a
            .items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                Message::from_value(v)
                    .map_err(|e| CodecError::shape("messages", format!("element {i}: {e}")))
            })
            .collect(),
        other => Err(CodecError::shape(
            "messages",
            format!("expected a list, found {}", other.kind()),
        )),
    }
}

/// Encodes messages as the `messages` channel value Python writes (a msgpack list).
pub fn encode_messages(messages: &[Message]) -> Result<TypedValue, CodecError> {
    let items = messages
        .iter()
        .map(Message::to_value)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(encode_value(&Value::array(items)))
}
