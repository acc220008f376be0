//! Typed views of the Python objects LangGraph checkpoints carry besides messages:
//! `langgraph.types.Send` / `Interrupt` / `Command`, `datetime.datetime` and `uuid.UUID`.
//!
//! Each type reads from a [`Value`] (failing with a [`CodecError::Shape`] when the value is
//! something else) and writes the exact extension Python's encoder produces (spec §2.4).

use chrono::{DateTime, FixedOffset, NaiveDateTime, Timelike};

use super::error::CodecError;
use super::ext::{ExtView, build};
use super::value::{Map, Value};

const TYPES_MODULE: &str = "langgraph.types";

fn ext_view<'a>(value: &'a Value, what: &'static str) -> Result<ExtView<'a>, CodecError> {
    value
        .as_ext()
        .ok_or_else(|| {
            CodecError::shape(
                what,
                format!("expected an extension, found {}", value.kind()),
            )
        })?
        .view()
}

fn check_class(
    view: &ExtView<'_>,
    what: &'static str,
    module: &str,
    name: &str,
) -> Result<(), CodecError> {
    match view.class() {
        Some((m, n)) if m == module && n == name => Ok(()),
        other => Err(CodecError::shape(
            what,
            format!("expected {module}.{name}, found {other:?}"),
        )),
    }
}

/// `langgraph.types.Send(node, arg)`: a packet for the `__pregel_tasks` channel
/// (extension 1 `["langgraph.types", "Send", [node, arg]]`, a third argument when a timeout
/// is set).
#[derive(Debug, Clone, PartialEq)]
pub struct Send {
    /// The target node.
    pub node: String,
    /// The node's input.
    pub arg: Value,
    /// The timeout argument, when set.
    pub timeout: Option<Value>,
}

impl Send {
    /// Reads a `Send` extension.
    pub fn from_value(value: &Value) -> Result<Send, CodecError> {
        const WHAT: &str = "Send";
        let view = ext_view(value, WHAT)?;
        check_class(&view, WHAT, TYPES_MODULE, "Send")?;
        let ExtView::PosArgs { args, .. } = view else {
            return Err(CodecError::shape(
                WHAT,
                "not a positional-arguments extension",
            ));
        };
        match args {
            [node, arg] | [node, arg, _] => Ok(Send {
                node: node
                    .as_str()
                    .ok_or_else(|| CodecError::shape(WHAT, "node is not text"))?
                    .to_owned(),
                arg: arg.clone(),
                timeout: args.get(2).cloned(),
            }),
            _ => Err(CodecError::shape(
                WHAT,
                format!("expected 2 or 3 arguments, found {}", args.len()),
            )),
        }
    }

    /// The extension Python writes.
    pub fn to_value(&self) -> Value {
        let mut args = vec![Value::from(self.node.as_str()), self.arg.clone()];
        args.extend(self.timeout.clone());
        build::pos_args(TYPES_MODULE, "Send", args)
    }
}

/// Keyword fields of a dataclass extension, the known ones split out and the rest kept.
fn dataclass_fields<'a>(
    value: &'a Value,
    what: &'static str,
    name: &str,
) -> Result<&'a Map, CodecError> {
    let view = ext_view(value, what)?;
    check_class(&view, what, TYPES_MODULE, name)?;
    match view {
        ExtView::KwArgs { kwargs, .. } => Ok(kwargs),
        _ => Err(CodecError::shape(what, "not a keyword-arguments extension")),
    }
}

fn rest(fields: &Map, known: &[&str]) -> Vec<(Value, Value)> {
    fields
        .entries
        .iter()
        .filter(|(k, _)| !k.as_str().is_some_and(|k| known.contains(&k)))
        .cloned()
        .collect()
}

/// `langgraph.types.Interrupt`: the value written to `__interrupt__` (a dataclass,
/// extension 2, fields `value, id, response_schema` in langgraph 1.2).
#[derive(Debug, Clone, PartialEq)]
pub struct Interrupt {
    /// What the interrupt asks.
    pub value: Value,
    /// The interrupt id (32 hex digits).
    pub id: String,
    /// `response_schema`; `None` when the field is absent (older langgraph), `Some(Nil)` when
    /// Python wrote `None`.
    pub response_schema: Option<Value>,
    /// Fields this model does not name, in order, written after the known ones.
    pub extra: Vec<(Value, Value)>,
}

impl Interrupt {
    /// An interrupt as langgraph 1.2 writes it (`response_schema` null).
    pub fn new(value: Value, id: impl Into<String>) -> Interrupt {
        Interrupt {
            value,
            id: id.into(),
            response_schema: Some(Value::Nil),
            extra: Vec::new(),
        }
    }

    /// Reads an `Interrupt` extension.
    pub fn from_value(value: &Value) -> Result<Interrupt, CodecError> {
        const WHAT: &str = "Interrupt";
        let fields = dataclass_fields(value, WHAT, "Interrupt")?;
        Ok(Interrupt {
            value: fields.get("value").cloned().unwrap_or(Value::Nil),
            id: fields
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| CodecError::shape(WHAT, "id is missing or not text"))?
                .to_owned(),
            response_schema: fields.get("response_schema").cloned(),
            extra: rest(fields, &["value", "id", "response_schema"]),
        })
    }

    /// The extension Python writes.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new()
            .with("value", self.value.clone())
            .with("id", self.id.as_str());
        if let Some(schema) = &self.response_schema {
            map.push("response_schema", schema.clone());
        }
        map.entries.extend(self.extra.iter().cloned());
        build::kw_args(TYPES_MODULE, "Interrupt", map)
    }
}

/// `langgraph.types.Command` (a dataclass, extension 2, fields `graph, update, resume, goto`).
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// `graph` (`None` or `"__parent__"`).
    pub graph: Value,
    /// `update`.
    pub update: Value,
    /// `resume`.
    pub resume: Value,
    /// `goto` (Python's default is the empty tuple, written as an empty array).
    pub goto: Value,
    /// Fields this model does not name, in order.
    pub extra: Vec<(Value, Value)>,
}

impl Default for Command {
    fn default() -> Self {
        Command {
            graph: Value::Nil,
            update: Value::Nil,
            resume: Value::Nil,
            goto: Value::array(Vec::new()),
            extra: Vec::new(),
        }
    }
}

impl Command {
    /// `Command(resume=value)`.
    pub fn resume(value: Value) -> Command {
        Command {
            resume: value,
            ..Command::default()
        }
    }

    /// Reads a `Command` extension.
    pub fn from_value(value: &Value) -> Result<Command, CodecError> {
        let fields = dataclass_fields(value, "Command", "Command")?;
        let get = |k: &str| fields.get(k).cloned();
        let default = Command::default();
        Ok(Command {
            graph: get("graph").unwrap_or(default.graph),
            update: get("update").unwrap_or(default.update),
            resume: get("resume").unwrap_or(default.resume),
            goto: get("goto").unwrap_or(default.goto),
            extra: rest(fields, &["graph", "update", "resume", "goto"]),
        })
    }

    /// The extension Python writes.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new()
            .with("graph", self.graph.clone())
            .with("update", self.update.clone())
            .with("resume", self.resume.clone())
            .with("goto", self.goto.clone());
        map.entries.extend(self.extra.iter().cloned());
        build::kw_args(TYPES_MODULE, "Command", map)
    }
}

/// A Python `datetime.datetime` (extension 3 `["datetime", "datetime", isoformat,
/// "fromisoformat"]`), aware or naive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PyDateTime {
    /// With a UTC offset.
    Aware(DateTime<FixedOffset>),
    /// Without one.
    Naive(NaiveDateTime),
}

impl PyDateTime {
    /// Reads a datetime extension.
    pub fn from_value(value: &Value) -> Result<PyDateTime, CodecError> {
        const WHAT: &str = "datetime";
        let view = ext_view(value, WHAT)?;
        let ExtView::Method {
            module: "datetime",
            name: "datetime",
            arg,
            method: "fromisoformat",
        } = view
        else {
            return Err(CodecError::shape(WHAT, format!("not a datetime: {view:?}")));
        };
        let text = arg
            .as_str()
            .ok_or_else(|| CodecError::shape(WHAT, "the isoformat argument is not text"))?;
        PyDateTime::parse_isoformat(text)
    }

    /// Parses Python `isoformat()` output.
    pub fn parse_isoformat(text: &str) -> Result<PyDateTime, CodecError> {
        if let Ok(dt) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%:z") {
            return Ok(PyDateTime::Aware(dt));
        }
        if let Ok(dt) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
            return Ok(PyDateTime::Naive(dt));
        }
        Err(CodecError::shape(
            "datetime",
            format!("{text:?} is not an isoformat timestamp"),
        ))
    }

    /// Python's `isoformat()`: microseconds (6 digits) only when non-zero, offset as
    /// `+HH:MM` (`+HH:MM:SS` when it has seconds). Sub-microsecond precision is truncated, as
    /// Python has none.
    pub fn isoformat(&self) -> String {
        let naive = match self {
            PyDateTime::Aware(dt) => dt.naive_local(),
            PyDateTime::Naive(dt) => *dt,
        };
        let micros = naive.nanosecond() % 1_000_000_000 / 1000;
        let mut out = naive.format("%Y-%m-%dT%H:%M:%S").to_string();
        if micros != 0 {
            out.push_str(&format!(".{micros:06}"));
        }
        if let PyDateTime::Aware(dt) = self {
            let secs = dt.offset().local_minus_utc();
            let sign = if secs < 0 { '-' } else { '+' };
            let abs = secs.unsigned_abs();
            out.push_str(&format!("{sign}{:02}:{:02}", abs / 3600, abs / 60 % 60));
            if abs % 60 != 0 {
                out.push_str(&format!(":{:02}", abs % 60));
            }
        }
        out
    }

    /// The extension Python writes.
    pub fn to_value(&self) -> Value {
        build::method_single_arg(
            "datetime",
            "datetime",
            self.isoformat().into(),
            "fromisoformat",
        )
    }
}

/// Reads a `uuid.UUID` extension (code 0, 32 hex digits).
pub fn uuid_from_value(value: &Value) -> Result<uuid::Uuid, CodecError> {
    const WHAT: &str = "UUID";
    let view = ext_view(value, WHAT)?;
    let ExtView::SingleArg {
        module: "uuid",
        name: "UUID",
        arg,
    } = view
    else {
        return Err(CodecError::shape(WHAT, format!("not a UUID: {view:?}")));
    };
    let text = arg
        .as_str()
        .ok_or_else(|| CodecError::shape(WHAT, "the argument is not text"))?;
    uuid::Uuid::try_parse(text).map_err(|e| CodecError::shape(WHAT, e.to_string()))
}

/// The extension Python writes for a `uuid.UUID`.
pub fn uuid_to_value(id: uuid::Uuid) -> Value {
    build::single_arg("uuid", "UUID", id.simple().to_string().into())
}
