//! Threads and their metadata (spec `history-and-streams.md` §6).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult};
use crate::ids::{SessionId, ThreadId, UserId};
use crate::json::{JsonObject, JsonValue, check_json_object, json_scalar_eq, merge_patch};
use crate::paging::{OffsetPage, Page};
use crate::scope::UserScope;

/// The metadata key whose `true` value pins a thread to the top of searches.
pub const PINNED_KEY: &str = "pinned";

/// A thread's stored status (spec §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadStatus {
    /// No run active; the default.
    Idle,
    /// A run is active.
    Running,
    /// The last run stopped at an interrupt.
    Interrupted,
    /// The last run failed.
    Error,
    /// The last run timed out.
    Timeout,
}

impl ThreadStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Running => "running",
            Self::Interrupted => "interrupted",
            Self::Error => "error",
            Self::Timeout => "timeout",
        }
    }
}

impl std::str::FromStr for ThreadStatus {
    type Err = DomainError;
    fn from_str(s: &str) -> DomainResult<Self> {
        match s {
            "idle" => Ok(Self::Idle),
            "running" => Ok(Self::Running),
            "interrupted" => Ok(Self::Interrupted),
            "error" => Ok(Self::Error),
            "timeout" => Ok(Self::Timeout),
            other => Err(DomainError::invalid(
                "status",
                format!(
                    "unknown thread status {other:?}; use idle, running, interrupted, error or timeout"
                ),
            )),
        }
    }
}

/// A thread's metadata row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    /// The id (LangGraph's `thread_id`).
    pub id: ThreadId,
    /// The session holding it, if any.
    pub session_id: Option<SessionId>,
    /// The owner; `None` only for legacy or administrative data.
    pub owner: Option<UserId>,
    /// The assistant (graph) that runs on it.
    pub assistant_id: Option<String>,
    /// A display name.
    pub display_name: Option<String>,
    /// Stored status.
    pub status: ThreadStatus,
    /// Free-form metadata (a JSON object).
    pub metadata: JsonObject,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
}

impl Thread {
    /// True when metadata pins the thread.
    pub fn is_pinned(&self) -> bool {
        self.metadata.get(PINNED_KEY) == Some(&JsonValue::Bool(true))
    }
}

/// The fields of a thread to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewThread {
    /// The id.
    pub id: ThreadId,
    /// The session, if any (it must exist and be visible to the scope).
    pub session_id: Option<SessionId>,
    /// The assistant.
    pub assistant_id: Option<String>,
    /// A display name.
    pub display_name: Option<String>,
    /// Initial metadata.
    pub metadata: JsonObject,
}

impl NewThread {
    /// A thread with just an id.
    pub fn with_id(id: ThreadId) -> Self {
        Self {
            id,
            session_id: None,
            assistant_id: None,
            display_name: None,
            metadata: JsonObject::new(),
        }
    }

    /// Checks the free-text fields.
    pub fn validate(&self) -> DomainResult<()> {
        validate_short_text("assistant_id", self.assistant_id.as_deref(), 128)?;
        validate_short_text("display_name", self.display_name.as_deref(), 256)
    }

    /// The thread every store creates from these fields: owned by `owner` (the scope's user),
    /// status [`ThreadStatus::Idle`], created and last changed at `now`.
    pub fn into_thread(self, owner: Option<UserId>, now: DateTime<Utc>) -> Thread {
        Thread {
            id: self.id,
            session_id: self.session_id,
            owner,
            assistant_id: self.assistant_id,
            display_name: self.display_name,
            status: ThreadStatus::Idle,
            metadata: self.metadata,
            created_at: now,
            updated_at: now,
        }
    }

    /// The rules every store applies before creating a thread: [`NewThread::validate`], then no
    /// U+0000 in the metadata.
    pub fn validate_for_write(&self) -> DomainResult<()> {
        self.validate()?;
        check_json_object("metadata", &self.metadata)
    }
}

/// Checks an optional free-text field: bounded, no NUL.
pub fn validate_short_text(
    field: &'static str,
    value: Option<&str>,
    max_chars: usize,
) -> DomainResult<()> {
    if let Some(v) = value {
        if v.chars().count() > max_chars {
            return Err(DomainError::invalid(
                field,
                format!("is longer than {max_chars} characters"),
            ));
        }
        if v.contains('\0') {
            return Err(DomainError::invalid(field, "contains a NUL character"));
        }
    }
    Ok(())
}

/// Changes to a thread, applied atomically; `None` fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadUpdate {
    /// New display name (`Some(None)` clears it).
    pub display_name: Option<Option<String>>,
    /// New stored status.
    pub status: Option<ThreadStatus>,
    /// Shallow merge into metadata: patch keys replace stored keys, a null stores null.
    pub metadata_patch: Option<JsonObject>,
    /// Move to another session (`Some(None)` detaches it).
    pub session_id: Option<Option<SessionId>>,
    /// Hand the thread to another owner (administrative).
    pub owner: Option<Option<UserId>>,
    /// Advance `updated_at` (false for pin/unpin).
    pub touch: bool,
}

impl ThreadUpdate {
    /// The rules every store applies before an update: the display name as on create, no
    /// U+0000 in the metadata patch.
    pub fn validate(&self) -> DomainResult<()> {
        if let Some(name) = &self.display_name {
            validate_short_text("display_name", name.as_deref(), 256)?;
        }
        if let Some(patch) = &self.metadata_patch {
            check_json_object("metadata_patch", patch)?;
        }
        Ok(())
    }

    /// Applies the update to `thread` as every store does: set fields replace, the metadata
    /// patch merges shallowly ([`merge_patch`]), and `updated_at` becomes `now` only when
    /// `touch` is set. Whether a new session exists is the store's check, made before.
    pub fn apply_to(self, thread: &mut Thread, now: DateTime<Utc>) {
        if let Some(name) = self.display_name {
            thread.display_name = name;
        }
        if let Some(status) = self.status {
            thread.status = status;
        }
        if let Some(patch) = self.metadata_patch {
            merge_patch(&mut thread.metadata, patch);
        }
        if let Some(session) = self.session_id {
            thread.session_id = session;
        }
        if let Some(owner) = self.owner {
            thread.owner = owner;
        }
        if self.touch {
            thread.updated_at = now;
        }
    }
}

/// An exact-match metadata filter for thread search (spec §6.4). Not LangGraph's checkpoint
/// filter: keys are flat, `true` never matches `1`, null matches only an explicit null.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadFilter(JsonObject);

impl ThreadFilter {
    /// Parses a filter. Keys that are not `[A-Za-z0-9_-]+` are skipped and returned so the
    /// caller can warn; if every key is skipped the filter is refused. Values must be null,
    /// bool, a 64-bit integer, a float or a string.
    pub fn parse(raw: JsonObject) -> DomainResult<(Self, Vec<String>)> {
        let had_keys = !raw.is_empty();
        let mut kept = JsonObject::new();
        let mut skipped = Vec::new();
        for (k, v) in raw {
            let key_ok = !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !key_ok {
                skipped.push(k);
                continue;
            }
            match &v {
                JsonValue::Null | JsonValue::Bool(_) | JsonValue::String(_) => {}
                JsonValue::Number(n) => {
                    if crate::json::is_integer(n) && n.as_i64().is_none() {
                        return Err(DomainError::invalid(
                            "filter",
                            format!("value of {k:?} is outside the 64-bit signed range"),
                        ));
                    }
                    if n.as_f64().is_none() {
                        return Err(DomainError::invalid(
                            "filter",
                            format!("value of {k:?} is outside the 64-bit floating-point range"),
                        ));
                    }
                }
                _ => {
                    return Err(DomainError::invalid(
                        "filter",
                        format!("value of {k:?} must be null, a boolean, a number or a string"),
                    ));
                }
            }
            kept.insert(k, v);
        }
        if had_keys && kept.is_empty() {
            return Err(DomainError::invalid(
                "filter",
                format!("every key is invalid (keys match [A-Za-z0-9_-]+): {skipped:?}"),
            ));
        }
        Ok((Self(kept), skipped))
    }

    /// The kept conditions.
    pub fn conditions(&self) -> &JsonObject {
        &self.0
    }

    /// True when there are no conditions.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `metadata` satisfies every condition (the rule SQL stores push down).
    pub fn matches(&self, metadata: &JsonObject) -> bool {
        self.0.iter().all(|(k, want)| match metadata.get(k) {
            None => false,
            Some(have) => json_scalar_eq(have, want),
        })
    }
}

/// `search` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadQuery {
    /// Metadata conditions.
    pub filter: ThreadFilter,
    /// Only this stored status.
    pub status: Option<ThreadStatus>,
    /// Only threads of this session.
    pub session_id: Option<SessionId>,
    /// Page. Order: pinned first, then `updated_at` descending, then id descending.
    pub page: OffsetPage,
}

/// The thread port.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait ThreadRepository: Send + Sync {
    /// Creates the thread owned by the scope's user. Idempotent for the same owner (the
    /// existing row is returned); another owner's id is a conflict. A named session must
    /// exist.
    async fn create(&self, scope: &UserScope, thread: NewThread) -> DomainResult<Thread>;

    /// The thread, or `None` when missing or another user's.
    async fn get(&self, scope: &UserScope, id: &ThreadId) -> DomainResult<Option<Thread>>;

    /// Threads visible to the scope, filtered in the store so limit and offset are exact.
    async fn search(&self, scope: &UserScope, query: &ThreadQuery) -> DomainResult<Page<Thread>>;

    /// Applies the update atomically (concurrent merges of disjoint keys both survive);
    /// missing or another user's -> not found.
    async fn update(
        &self,
        scope: &UserScope,
        id: &ThreadId,
        update: ThreadUpdate,
    ) -> DomainResult<Thread>;

    /// Claims the id for the scope's first write (Waymark ownership model): when no row
    /// exists, creates one owned by the scope's user (no owner under `Unscoped`) in one
    /// atomic step, so of two users claiming one id concurrently exactly one becomes the
    /// owner. Answers the row when the scope may use it (its own, or any row under
    /// `Unscoped`) and `None` otherwise: another owner's row, an owner-less row, or an id
    /// that already holds checkpoints in this store without a row (row-less data written
    /// outside Waymark stays visible only to `Unscoped` callers and is never adopted by a
    /// user's claim).
    async fn claim(&self, scope: &UserScope, id: &ThreadId) -> DomainResult<Option<Thread>>;

    /// The access check (spec §6.6 with the Waymark rules of §0.2): a user may read and
    /// change only rows they own; a missing row, another owner's row and an owner-less row
    /// are denied. `Unscoped` may use every row, and may read (not mutate) a missing one.
    async fn check_access(
        &self,
        scope: &UserScope,
        id: &ThreadId,
        require_existing: bool,
    ) -> DomainResult<bool>;

    /// Deletes the thread and everything this store holds for it (events, feedback, chat
    /// stream, branches, snapshots, token usage, checkpoints) in one unit. Returns false when
    /// no thread row existed (owned data is still removed).
    async fn delete(&self, scope: &UserScope, id: &ThreadId) -> DomainResult<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: JsonValue) -> JsonObject {
        v.as_object().unwrap().clone()
    }

    fn thread() -> Thread {
        let at = DateTime::from_timestamp(0, 0).unwrap();
        Thread {
            id: ThreadId::parse("t").unwrap(),
            session_id: None,
            owner: None,
            assistant_id: None,
            display_name: Some("name".into()),
            status: ThreadStatus::Idle,
            metadata: obj(json!({"keep": 1, "replace": 1})),
            created_at: at,
            updated_at: at,
        }
    }

    fn field(r: DomainResult<()>) -> &'static str {
        match r {
            Err(DomainError::InvalidInput { field, .. }) => field,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn write_rules_check_text_fields_and_metadata() {
        let mut new = NewThread::with_id(ThreadId::parse("t").unwrap());
        assert!(new.validate_for_write().is_ok());
        new.metadata = obj(json!({"k": ["v\u{0}"]}));
        assert_eq!(field(new.validate_for_write()), "metadata");
        new.metadata = JsonObject::new();
        new.assistant_id = Some("a".repeat(129));
        assert_eq!(field(new.validate_for_write()), "assistant_id");

        assert!(ThreadUpdate::default().validate().is_ok());
        let long_name = ThreadUpdate {
            display_name: Some(Some("n".repeat(257))),
            ..ThreadUpdate::default()
        };
        assert_eq!(field(long_name.validate()), "display_name");
        let bad_patch = ThreadUpdate {
            metadata_patch: Some(obj(json!({"k\u{0}": 1}))),
            ..ThreadUpdate::default()
        };
        assert_eq!(field(bad_patch.validate()), "metadata_patch");
    }

    #[test]
    fn a_new_thread_starts_idle_owned_and_stamped() {
        let at = DateTime::from_timestamp(5, 0).unwrap();
        let mut new = NewThread::with_id(ThreadId::parse("t").unwrap());
        new.display_name = Some("n".into());
        new.metadata = obj(json!({"k": 1}));
        let owner = Some(UserId::parse("u").unwrap());
        let t = new.into_thread(owner.clone(), at);
        assert_eq!(t.id, ThreadId::parse("t").unwrap());
        assert_eq!((t.owner, t.status), (owner, ThreadStatus::Idle));
        assert_eq!(t.display_name.as_deref(), Some("n"));
        assert_eq!(JsonValue::Object(t.metadata), json!({"k": 1}));
        assert_eq!((t.created_at, t.updated_at), (at, at));
    }

    #[test]
    fn update_sets_given_fields_and_touches_only_when_asked() {
        let later = DateTime::from_timestamp(60, 0).unwrap();
        let mut t = thread();
        ThreadUpdate {
            display_name: Some(None),
            status: Some(ThreadStatus::Running),
            metadata_patch: Some(obj(json!({"replace": 2, "new": null}))),
            session_id: Some(Some(SessionId::parse("s").unwrap())),
            owner: Some(Some(UserId::parse("u").unwrap())),
            touch: false,
        }
        .apply_to(&mut t, later);
        assert_eq!(t.display_name, None);
        assert_eq!(t.status, ThreadStatus::Running);
        assert_eq!(
            JsonValue::Object(t.metadata.clone()),
            json!({"keep": 1, "replace": 2, "new": null})
        );
        assert_eq!(t.session_id, Some(SessionId::parse("s").unwrap()));
        assert_eq!(t.owner, Some(UserId::parse("u").unwrap()));
        assert_eq!(t.updated_at, DateTime::from_timestamp(0, 0).unwrap());

        ThreadUpdate {
            touch: true,
            ..ThreadUpdate::default()
        }
        .apply_to(&mut t, later);
        assert_eq!(t.updated_at, later);
        assert_eq!(t.status, ThreadStatus::Running);
    }

    #[test]
    fn filter_skips_bad_keys_and_refuses_all_bad() {
        let (f, skipped) = ThreadFilter::parse(obj(json!({"a.b": 1, "ok": 2}))).unwrap();
        assert_eq!(skipped, vec!["a.b".to_owned()]);
        assert_eq!(f.conditions().len(), 1);
        assert!(
            ThreadFilter::parse(obj(json!({"a.b": 1, "x y": 2})))
                .unwrap_err()
                .is_invalid_input()
        );
        assert!(ThreadFilter::parse(JsonObject::new()).unwrap().0.is_empty());
    }

    #[test]
    fn filter_value_types_and_range() {
        assert!(ThreadFilter::parse(obj(json!({"n": i64::MAX}))).is_ok());
        assert!(ThreadFilter::parse(obj(json!({"n": u64::MAX}))).is_err());
        let beyond: JsonObject = serde_json::from_str(r#"{"n": 1180591620717411303424}"#).unwrap();
        assert!(ThreadFilter::parse(beyond).unwrap_err().is_invalid_input());
        assert!(ThreadFilter::parse(obj(json!({"n": [1]}))).is_err());
        assert!(ThreadFilter::parse(obj(json!({"n": {"a": 1}}))).is_err());
    }

    #[test]
    fn integers_beyond_64_bits_compare_exactly() {
        let n = |text: &str| serde_json::from_str::<JsonValue>(text).unwrap();
        let big = n("1180591620717411303424");
        assert!(json_scalar_eq(&big, &n("1180591620717411303424")));
        assert!(
            !json_scalar_eq(&big, &n("1180591620717411303425")),
            "as f64 they would be equal"
        );
        assert!(json_scalar_eq(&big, &n("1.180591620717411303424e21")));
        assert!(json_scalar_eq(&n("1.5"), &n("1.50")));
        assert!(json_scalar_eq(&n("-0"), &n("0")));
        assert!(json_scalar_eq(&n("18446744073709551615"), &json!(u64::MAX)));
    }

    #[test]
    fn filter_matching_keeps_bools_and_nulls_apart() {
        let (flag, _) = ThreadFilter::parse(obj(json!({"flag": true}))).unwrap();
        assert!(flag.matches(&obj(json!({"flag": true}))));
        assert!(!flag.matches(&obj(json!({"flag": 1}))));
        let (null, _) = ThreadFilter::parse(obj(json!({"x": null}))).unwrap();
        assert!(null.matches(&obj(json!({"x": null}))));
        assert!(!null.matches(&obj(json!({}))));
        let (num, _) = ThreadFilter::parse(obj(json!({"n": 1}))).unwrap();
        assert!(num.matches(&obj(json!({"n": 1.0}))));
        assert!(!num.matches(&obj(json!({"n": "1"}))));
    }

    #[test]
    fn status_text_round_trips() {
        for s in [
            ThreadStatus::Idle,
            ThreadStatus::Running,
            ThreadStatus::Interrupted,
            ThreadStatus::Error,
            ThreadStatus::Timeout,
        ] {
            assert_eq!(s.as_str().parse::<ThreadStatus>().unwrap(), s);
        }
        assert!("busy".parse::<ThreadStatus>().is_err());
    }

    #[test]
    fn new_thread_text_fields_are_bounded() {
        let mut t = NewThread::with_id(ThreadId::parse("t").unwrap());
        assert!(t.validate().is_ok());
        t.display_name = Some("x".repeat(257));
        assert!(t.validate().is_err());
    }
}
