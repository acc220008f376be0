//! Parse-don't-validate newtypes for identifiers and names.
//!
//! Every id that crosses a port is one of these types, so a store never sees an empty thread
//! id, a NUL byte (which PostgreSQL `TEXT` cannot hold) or a 10 MB "name". Construction is the
//! only place the rules are checked; once a value exists it is valid.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{DomainError, DomainResult};

/// Checks shared by every text id: length bounds in bytes and no control characters.
fn check_text(
    field: &'static str,
    value: &str,
    allow_empty: bool,
    max_bytes: usize,
) -> DomainResult<()> {
    if value.is_empty() && !allow_empty {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if value.len() > max_bytes {
        return Err(DomainError::invalid(
            field,
            format!(
                "is {} bytes long; at most {max_bytes} are allowed",
                value.len()
            ),
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(DomainError::invalid(
            field,
            format!("contains the control character U+{:04X}", c as u32),
        ));
    }
    Ok(())
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, max = $max:expr, empty = $empty:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The field name used in validation errors.
            pub const FIELD: &'static str = $field;
            /// The longest accepted value, in UTF-8 bytes.
            pub const MAX_BYTES: usize = $max;

            /// Parses `value`, refusing what the rules above forbid.
            pub fn parse(value: impl Into<String>) -> DomainResult<Self> {
                let value = value.into();
                check_text($field, &value, $empty, $max)?;
                Ok(Self(value))
            }

            /// The text form.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Gives back the owned text.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> DomainResult<Self> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = DomainError;
            fn try_from(s: String) -> DomainResult<Self> {
                Self::parse(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = DomainError;
            fn try_from(s: &str) -> DomainResult<Self> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

text_id!(
    /// A thread: one line of conversation and its checkpoints. LangGraph's `thread_id`.
    ThreadId, "thread_id", max = 255, empty = false
);
text_id!(
    /// A session: a user's container of threads with a checkpoint policy.
    SessionId, "session_id", max = 255, empty = false
);
text_id!(
    /// A run: one execution of a graph on a thread.
    RunId, "run_id", max = 255, empty = false
);
text_id!(
    /// The owner of user data. Owner ids are text (spec §0.2).
    UserId, "user_id", max = 255, empty = false
);
text_id!(
    /// A checkpoint id. Opaque text ordered as text (LangGraph writes uuid6); never
    /// format-checked beyond the common rules, because LangGraph does not check it either.
    CheckpointId, "checkpoint_id", max = 255, empty = false
);
text_id!(
    /// A checkpoint namespace: `""` is the root graph, `"node:task"` a subgraph, levels joined
    /// with `|`.
    CheckpointNamespace, "checkpoint_ns", max = 2048, empty = true
);
text_id!(
    /// The task a pending write belongs to (`00000000-0000-0000-0000-000000000000` for none).
    TaskId, "task_id", max = 255, empty = false
);
text_id!(
    /// A graph channel, e.g. `messages` or `branch:to:agent`.
    ChannelName, "channel", max = 1024, empty = false
);
text_id!(
    /// The model that consumed tokens, e.g. `gpt-4o-mini`.
    ModelName, "model", max = 255, empty = false
);
text_id!(
    /// A run-event type such as `llm.ai.response` (column limit 32, spec §1.2).
    EventType, "event_type", max = 32, empty = false
);
text_id!(
    /// A run-event category such as `message` or `trace` (column limit 16, spec §1.2).
    EventCategory, "category", max = 16, empty = false
);
text_id!(
    /// A key in the key-value store.
    ItemKey, "key", max = 1024, empty = false
);

impl CheckpointNamespace {
    /// The root graph's namespace, `""`.
    pub fn root() -> Self {
        Self(String::new())
    }

    /// True for the root namespace.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// True for a subgraph namespace (LangGraph separates node and task with `:`).
    pub fn is_subgraph(&self) -> bool {
        self.0.contains(':')
    }
}

impl Default for CheckpointNamespace {
    fn default() -> Self {
        Self::root()
    }
}

impl TaskId {
    /// LangGraph's `NULL_TASK_ID`, used for writes that belong to no task.
    pub const NULL: &'static str = "00000000-0000-0000-0000-000000000000";

    /// The null task id.
    pub fn null() -> Self {
        Self(Self::NULL.to_owned())
    }
}

impl EventCategory {
    /// The category of UI-visible messages.
    pub const MESSAGE: &'static str = "message";
    /// The only category whose content is truncated (spec §1.6).
    pub const TRACE: &'static str = "trace";

    /// True for `message`.
    pub fn is_message(&self) -> bool {
        self.0 == Self::MESSAGE
    }

    /// True for `trace`.
    pub fn is_trace(&self) -> bool {
        self.0 == Self::TRACE
    }
}

/// A human-chosen, trimmed, non-empty name of at most 128 characters (branch and snapshot
/// names, session titles use their own rule).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    /// The longest accepted name, in characters.
    pub const MAX_CHARS: usize = 128;

    /// Parses a name: surrounding whitespace is refused rather than silently trimmed, so what
    /// is stored is exactly what was given.
    pub fn parse(value: impl Into<String>) -> DomainResult<Self> {
        let value = value.into();
        check_text("name", &value, false, Self::MAX_CHARS * 4)?;
        if value.chars().count() > Self::MAX_CHARS {
            return Err(DomainError::invalid(
                "name",
                format!("is longer than {} characters", Self::MAX_CHARS),
            ));
        }
        if value.trim() != value {
            return Err(DomainError::invalid(
                "name",
                "must not start or end with whitespace",
            ));
        }
        Ok(Self(value))
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Name {
    type Error = DomainError;
    fn try_from(s: String) -> DomainResult<Self> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for Name {
    type Error = DomainError;
    fn try_from(s: &str) -> DomainResult<Self> {
        Self::parse(s)
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }

            /// Wraps an existing uuid.
            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The uuid.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Parses the hyphenated text form.
            pub fn parse(value: &str) -> DomainResult<Self> {
                Uuid::parse_str(value)
                    .map(Self)
                    .map_err(|e| DomainError::invalid($field, format!("is not a uuid: {e}")))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> DomainResult<Self> {
                Self::parse(s)
            }
        }
    };
}

uuid_id!(
    /// A branch record.
    BranchId, "branch_id"
);
uuid_id!(
    /// A snapshot record.
    SnapshotId, "snapshot_id"
);
uuid_id!(
    /// A feedback row (spec: uuid4 text).
    FeedbackId, "feedback_id"
);
uuid_id!(
    /// A token-usage record.
    UsageRecordId, "usage_record_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_ids_refuse_empty_overlong_and_control_characters() {
        assert!(ThreadId::parse("t-1").is_ok());
        let e = ThreadId::parse("").unwrap_err();
        assert_eq!(e, DomainError::invalid("thread_id", "must not be empty"));
        assert!(ThreadId::parse("a".repeat(255)).is_ok());
        assert!(
            ThreadId::parse("a".repeat(256))
                .unwrap_err()
                .is_invalid_input()
        );
        let nul = RunId::parse("r\0").unwrap_err();
        assert!(nul.to_string().contains("U+0000"), "{nul}");
        assert!(UserId::parse("line\nbreak").is_err());
        assert!(ThreadId::parse("unicode ✓ ok").is_ok());
    }

    #[test]
    fn namespace_may_be_empty_and_knows_subgraphs() {
        let root = CheckpointNamespace::parse("").unwrap();
        assert!(root.is_root() && !root.is_subgraph());
        assert_eq!(root, CheckpointNamespace::default());
        let child = CheckpointNamespace::parse("child:abc").unwrap();
        assert!(child.is_subgraph() && !child.is_root());
        assert!(CheckpointNamespace::parse("x\0").is_err());
    }

    #[test]
    fn event_type_and_category_keep_their_column_limits() {
        assert!(EventType::parse(format!("middleware:{}", "t".repeat(21))).is_ok());
        assert!(EventType::parse(format!("middleware:{}", "t".repeat(22))).is_err());
        assert!(EventCategory::parse("message").unwrap().is_message());
        assert!(EventCategory::parse("x".repeat(17)).is_err());
    }

    #[test]
    fn names_are_trimmed_by_the_caller_not_silently() {
        assert!(Name::parse("milestone 1").is_ok());
        assert!(Name::parse(" padded").is_err());
        assert!(Name::parse("").is_err());
        assert!(Name::parse("é".repeat(128)).is_ok());
        assert!(Name::parse("é".repeat(129)).is_err());
    }

    #[test]
    fn ids_deserialize_through_validation() {
        let ok: ThreadId = serde_json::from_str("\"t-9\"").unwrap();
        assert_eq!(ok.as_str(), "t-9");
        assert!(serde_json::from_str::<ThreadId>("\"\"").is_err());
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"t-9\"");
        let f = FeedbackId::new_random();
        assert_eq!(FeedbackId::parse(&f.to_string()).unwrap(), f);
        assert!(FeedbackId::parse("nope").unwrap_err().is_invalid_input());
    }

    #[test]
    fn null_task_id_is_langgraphs() {
        assert_eq!(
            TaskId::null().as_str(),
            "00000000-0000-0000-0000-000000000000"
        );
    }
}
