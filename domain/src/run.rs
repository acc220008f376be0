//! First-class runs (spec `history-and-streams.md` §6.2): one execution of a graph on a thread,
//! its lifecycle, and the lease that lets several worker processes share one database.
//!
//! Rules every store applies (the contract suite checks them on every backend):
//!
//! * **At most one active run per thread.** A run is *active* while `pending` or `running`;
//!   `create` on a thread that has one is a conflict (a partial unique index on the SQL stores).
//! * **Start is a compare-and-set** from `pending` to `running` that takes a lease for one
//!   worker: the lease holder alone may renew it, and only while the run is `running`.
//! * **Progress** updates apply only to `running` rows.
//! * **Finishing** sets a final status ([`FinalStatus`]) on a `pending`, `running` or
//!   `interrupted` row. A row already `success`, `error` or `timeout` is never overwritten by a
//!   different status (conflict); finishing it again with the same status answers the row
//!   unchanged (idempotent).
//! * **Lists** are newest first (`created_at`, then `run_id`, descending) and cursor-paged with
//!   `has_more`, never cut silently (DeerFlow #5282).
//! * **Lease expiry** ([`RunRepository::reclaim_expired`]): a `running` run whose lease expired
//!   goes back to `pending` (lease cleared, ready for another worker's `start`) while its
//!   `attempt` is below `max_attempts`; otherwise it ends as `error` with
//!   [`LEASE_EXPIRED_ERROR`]. `attempt` counts starts.
//! * **Scoping** (§0.2): a run belongs to its thread's owner (stamped at creation). Another user's runs read as
//!   missing, and mutations on them are not found.
//! * Time comes from the store's [`Clock`](crate::clock::Clock).

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::checkpoint::CheckpointTuple;
use crate::error::{DomainError, DomainResult};
use crate::ids::{RunId, ThreadId, UserId};
use crate::json::{JsonObject, check_json_object};
use crate::paging::Limit;
use crate::scope::UserScope;
use crate::thread::ThreadStatus;

/// The error text of a run ended by [`RunRepository::reclaim_expired`].
pub const LEASE_EXPIRED_ERROR: &str = "the worker's lease expired";

/// A run's status (spec §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Admitted, waiting for a worker.
    Pending,
    /// A worker holds its lease.
    Running,
    /// Ended successfully.
    Success,
    /// Ended with an error.
    Error,
    /// Ended by a timeout.
    Timeout,
    /// Stopped at an interrupt or cancelled; may still be finished later.
    Interrupted,
}

impl RunStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Success => "success",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Interrupted => "interrupted",
        }
    }

    /// `pending` or `running`: at most one such run per thread.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Pending | Self::Running)
    }

    /// Whether `finish` may still change the row (`pending`, `running`, `interrupted`).
    pub fn is_finishable(self) -> bool {
        matches!(self, Self::Pending | Self::Running | Self::Interrupted)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RunStatus {
    type Err = DomainError;
    fn from_str(s: &str) -> DomainResult<Self> {
        match s {
            "pending" => Ok(Self::Pending),
            "running" => Ok(Self::Running),
            "success" => Ok(Self::Success),
            "error" => Ok(Self::Error),
            "timeout" => Ok(Self::Timeout),
            "interrupted" => Ok(Self::Interrupted),
            other => Err(DomainError::invalid(
                "status",
                format!(
                    "unknown run status {other:?}; use pending, running, success, error, timeout or interrupted"
                ),
            )),
        }
    }
}

/// The statuses a run can be finished with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalStatus {
    /// Ended successfully.
    Success,
    /// Ended with an error.
    Error,
    /// Ended by a timeout.
    Timeout,
    /// Stopped at an interrupt (or cancelled).
    Interrupted,
}

impl FinalStatus {
    /// The run status it sets.
    pub fn status(self) -> RunStatus {
        match self {
            Self::Success => RunStatus::Success,
            Self::Error => RunStatus::Error,
            Self::Timeout => RunStatus::Timeout,
            Self::Interrupted => RunStatus::Interrupted,
        }
    }

    /// The thread status a run ending this way leaves behind (spec §6.8.2).
    pub fn thread_status(self) -> ThreadStatus {
        match self {
            Self::Success => ThreadStatus::Idle,
            Self::Error => ThreadStatus::Error,
            Self::Timeout => ThreadStatus::Timeout,
            Self::Interrupted => ThreadStatus::Interrupted,
        }
    }
}

impl std::str::FromStr for FinalStatus {
    type Err = DomainError;
    fn from_str(s: &str) -> DomainResult<Self> {
        match s {
            "success" => Ok(Self::Success),
            "error" => Ok(Self::Error),
            "timeout" => Ok(Self::Timeout),
            "interrupted" => Ok(Self::Interrupted),
            other => Err(DomainError::invalid(
                "status",
                format!(
                    "{other:?} is not a final run status; use success, error, timeout or interrupted"
                ),
            )),
        }
    }
}

/// A worker process's id (the lease holder): 1-255 bytes, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkerId(String);

impl WorkerId {
    /// Parses a worker id.
    pub fn parse(value: impl Into<String>) -> DomainResult<Self> {
        let value = value.into();
        if value.is_empty() {
            return Err(DomainError::invalid("worker_id", "must not be empty"));
        }
        if value.len() > 255 {
            return Err(DomainError::invalid(
                "worker_id",
                format!("is {} bytes long; at most 255 are allowed", value.len()),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "worker_id",
                "contains a control character",
            ));
        }
        Ok(Self(value))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for WorkerId {
    type Error = DomainError;
    fn try_from(s: String) -> DomainResult<Self> {
        Self::parse(s)
    }
}

impl From<WorkerId> for String {
    fn from(w: WorkerId) -> String {
        w.0
    }
}

impl std::str::FromStr for WorkerId {
    type Err = DomainError;
    fn from_str(s: &str) -> DomainResult<Self> {
        Self::parse(s)
    }
}

/// How long a lease lasts: 1 second to 1 hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseTtl(Duration);

impl LeaseTtl {
    /// The shortest lease, in seconds.
    pub const MIN_SECONDS: i64 = 1;
    /// The longest lease, in seconds.
    pub const MAX_SECONDS: i64 = 3600;

    /// A lease of `seconds`.
    pub fn seconds(seconds: i64) -> DomainResult<Self> {
        if !(Self::MIN_SECONDS..=Self::MAX_SECONDS).contains(&seconds) {
            return Err(DomainError::invalid(
                "lease_seconds",
                format!(
                    "is {seconds}; a lease lasts {} to {} seconds",
                    Self::MIN_SECONDS,
                    Self::MAX_SECONDS
                ),
            ));
        }
        Ok(Self(Duration::seconds(seconds)))
    }

    /// The duration.
    pub fn duration(self) -> Duration {
        self.0
    }
}

/// The longest run error text, in characters.
pub const MAX_RUN_ERROR_CHARS: usize = 10_000;

/// A run's error text: at most [`MAX_RUN_ERROR_CHARS`] characters, no NUL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunErrorText(String);

impl RunErrorText {
    /// Parses an error text.
    pub fn parse(value: impl Into<String>) -> DomainResult<Self> {
        let value = value.into();
        if value.chars().count() > MAX_RUN_ERROR_CHARS {
            return Err(DomainError::invalid(
                "error",
                format!("is longer than {MAX_RUN_ERROR_CHARS} characters"),
            ));
        }
        if value.contains('\0') {
            return Err(DomainError::invalid("error", "contains a NUL character"));
        }
        Ok(Self(value))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RunErrorText {
    type Error = DomainError;
    fn try_from(s: String) -> DomainResult<Self> {
        Self::parse(s)
    }
}

impl From<RunErrorText> for String {
    fn from(e: RunErrorText) -> String {
        e.0
    }
}

/// A worker's hold on a running run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLease {
    /// The holder.
    pub worker_id: WorkerId,
    /// When the lease lapses unless renewed (UTC).
    pub expires_at: DateTime<Utc>,
}

/// A run row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The id (unique across threads).
    pub run_id: RunId,
    /// The thread it runs on.
    pub thread_id: ThreadId,
    /// The thread's owner; `None` only for administrative data.
    pub owner: Option<UserId>,
    /// The status.
    pub status: RunStatus,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// When the latest start happened.
    pub started_at: Option<DateTime<Utc>>,
    /// When it was finished.
    pub ended_at: Option<DateTime<Utc>>,
    /// The error text of a failed, timed-out or cancelled run.
    pub error: Option<String>,
    /// The latest progress report (a JSON object; `{}` before any).
    pub progress: JsonObject,
    /// Free-form metadata given at creation.
    pub metadata: JsonObject,
    /// The lease while running.
    pub lease: Option<RunLease>,
    /// How many times it was started.
    pub attempt: u32,
}

impl Run {
    /// The conflict answered when `what` (a lease renewal, a progress update) needs a
    /// running run and this one is not running; every store reports it in these words.
    pub fn not_running(&self, what: &str) -> DomainError {
        DomainError::conflict(
            "run",
            format!(
                "run {} is {}; {what} needs a running run",
                self.run_id, self.status
            ),
        )
    }

    /// The conflict answered when a start finds the run no longer pending.
    pub fn not_pending(&self) -> DomainError {
        DomainError::conflict(
            "run",
            format!(
                "run {} is {}; only a pending run starts",
                self.run_id, self.status
            ),
        )
    }

    /// The conflict answered when `worker` renews a lease it does not hold.
    pub fn lease_not_held(&self, worker: &WorkerId) -> DomainError {
        DomainError::conflict(
            "run",
            format!(
                "worker {worker} does not hold the lease of run {}",
                self.run_id
            ),
        )
    }

    /// True when the lease exists and has lapsed at `now`.
    pub fn lease_expired(&self, now: DateTime<Utc>) -> bool {
        self.lease.as_ref().is_some_and(|l| l.expires_at <= now)
    }
}

/// The largest metadata or progress object, in bytes of JSON text.
pub const MAX_RUN_JSON_BYTES: usize = 256 * 1024;

fn check_run_json(field: &'static str, v: &JsonObject) -> DomainResult<()> {
    check_json_object(field, v)?;
    let len = serde_json::to_string(v).map(|s| s.len()).unwrap_or(0);
    if len > MAX_RUN_JSON_BYTES {
        return Err(DomainError::invalid(
            field,
            format!("is {len} bytes of JSON; at most {MAX_RUN_JSON_BYTES} are allowed"),
        ));
    }
    Ok(())
}

/// A run to create (status `pending`, attempt 0, owned by its thread's owner).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRun {
    /// The id.
    pub run_id: RunId,
    /// The thread; it must exist and be visible to the scope.
    pub thread_id: ThreadId,
    /// Metadata.
    pub metadata: JsonObject,
}

impl NewRun {
    /// A run with no metadata.
    pub fn new(thread_id: ThreadId, run_id: RunId) -> Self {
        Self {
            run_id,
            thread_id,
            metadata: JsonObject::new(),
        }
    }

    /// The rules every store applies before creating: metadata is a bounded JSON object
    /// without U+0000.
    pub fn validate(&self) -> DomainResult<()> {
        check_run_json("metadata", &self.metadata)
    }

    /// The row every store creates.
    pub fn into_run(self, owner: Option<UserId>, now: DateTime<Utc>) -> Run {
        Run {
            run_id: self.run_id,
            thread_id: self.thread_id,
            owner,
            status: RunStatus::Pending,
            created_at: now,
            updated_at: now,
            started_at: None,
            ended_at: None,
            error: None,
            progress: JsonObject::new(),
            metadata: self.metadata,
            lease: None,
            attempt: 0,
        }
    }
}

/// A validated progress report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "JsonObject", into = "JsonObject")]
pub struct RunProgress(JsonObject);

impl RunProgress {
    /// Parses a progress object (bounded, no U+0000).
    pub fn new(v: JsonObject) -> DomainResult<Self> {
        check_run_json("progress", &v)?;
        Ok(Self(v))
    }

    /// The object.
    pub fn as_object(&self) -> &JsonObject {
        &self.0
    }

    /// Gives back the object.
    pub fn into_inner(self) -> JsonObject {
        self.0
    }
}

impl TryFrom<JsonObject> for RunProgress {
    type Error = DomainError;
    fn try_from(v: JsonObject) -> DomainResult<Self> {
        Self::new(v)
    }
}

impl From<RunProgress> for JsonObject {
    fn from(p: RunProgress) -> JsonObject {
        p.0
    }
}

/// How a run ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    /// The final status.
    pub status: FinalStatus,
    /// The error text, if any.
    pub error: Option<RunErrorText>,
}

/// What `finish` does to a row in `current` status when asked for `wanted`: `Ok(true)` when
/// the row changes, `Ok(false)` when the call is an idempotent repeat, a conflict otherwise.
pub fn finish_transition(
    run_id: &RunId,
    current: RunStatus,
    wanted: FinalStatus,
) -> DomainResult<bool> {
    if current.is_finishable() {
        return Ok(!(current == RunStatus::Interrupted && wanted == FinalStatus::Interrupted));
    }
    if current == wanted.status() {
        return Ok(false);
    }
    Err(DomainError::conflict(
        "run",
        format!(
            "run {run_id} already ended as {current}; it cannot become {}",
            wanted.status()
        ),
    ))
}

/// Where a run list continues: after the run at (`created_at`, `run_id`) in newest-first
/// order. Its text form is `<microseconds since the epoch>:<run_id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCursor {
    /// The last listed run's creation time.
    pub created_at: DateTime<Utc>,
    /// The last listed run's id.
    pub run_id: RunId,
}

impl RunCursor {
    /// The cursor after `run`.
    pub fn after(run: &Run) -> Self {
        Self {
            created_at: run.created_at,
            run_id: run.run_id.clone(),
        }
    }

    /// The text form.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.created_at.timestamp_micros(), self.run_id)
    }

    /// Parses the text form.
    pub fn parse(s: &str) -> DomainResult<Self> {
        let bad = || DomainError::invalid("cursor", "is not a run cursor from a previous page");
        let (micros, run) = s.split_once(':').ok_or_else(bad)?;
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        let created_at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
        Ok(Self {
            created_at,
            run_id: RunId::parse(run).map_err(|_| bad())?,
        })
    }

    /// True when `run` comes after this cursor in newest-first order.
    pub fn precedes(&self, run: &Run) -> bool {
        (run.created_at, &run.run_id) < (self.created_at, &self.run_id)
    }
}

/// A page request of a run list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPage {
    /// Page size.
    pub limit: Limit,
    /// Continue after this run; the newest first when absent.
    pub after: Option<RunCursor>,
}

/// A page of runs, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunList {
    /// The runs.
    pub items: Vec<Run>,
    /// True when older runs exist beyond this page.
    pub has_more: bool,
    /// The cursor of the next page, present exactly when `has_more`.
    pub next_cursor: Option<RunCursor>,
}

impl RunList {
    /// Builds a page from `limit + 1` fetched rows in newest-first order.
    pub fn from_look_ahead(mut rows: Vec<Run>, limit: Limit) -> Self {
        let has_more = rows.len() > limit.as_usize();
        rows.truncate(limit.as_usize());
        let next_cursor = if has_more {
            rows.last().map(RunCursor::after)
        } else {
            None
        };
        Self {
            items: rows,
            has_more,
            next_cursor,
        }
    }
}

/// The newest-first order of run lists.
pub fn newest_first(a: &Run, b: &Run) -> std::cmp::Ordering {
    (b.created_at, &b.run_id).cmp(&(a.created_at, &a.run_id))
}

/// Applies a lease-expiry reclaim to `run` at `now` (the rule in the module docs): back to
/// `pending` while `attempt < max_attempts`, else `error`.
pub fn reclaim(run: &mut Run, now: DateTime<Utc>, max_attempts: u32) {
    run.lease = None;
    run.updated_at = now;
    if run.attempt < max_attempts {
        run.status = RunStatus::Pending;
    } else {
        run.status = RunStatus::Error;
        run.error = Some(LEASE_EXPIRED_ERROR.to_owned());
        run.ended_at = Some(now);
    }
}

/// The run port.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait RunRepository: Send + Sync {
    /// Creates a `pending` run owned by the thread's owner. The thread must exist and be visible
    /// (else not found); a thread with an active run, or a run id already used, is a conflict.
    async fn create(&self, scope: &UserScope, run: NewRun) -> DomainResult<Run>;

    /// The run of the thread, or `None` when missing or another user's.
    async fn get(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
    ) -> DomainResult<Option<Run>>;

    /// Compare-and-set `pending` -> `running`: takes a lease for `worker` lasting `ttl`,
    /// stamps `started_at` and increments `attempt`. Not pending -> conflict.
    async fn start(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        worker: &WorkerId,
        ttl: LeaseTtl,
    ) -> DomainResult<Run>;

    /// Extends the lease to now + `ttl`; only the holder, only while `running` (else conflict).
    async fn renew_lease(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        worker: &WorkerId,
        ttl: LeaseTtl,
    ) -> DomainResult<Run>;

    /// Replaces the progress report; only while `running` (else conflict).
    async fn update_progress(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        progress: RunProgress,
    ) -> DomainResult<Run>;

    /// Sets a final status (see [`finish_transition`]); clears the lease, stamps `ended_at`.
    async fn finish(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        run_id: &RunId,
        outcome: RunOutcome,
    ) -> DomainResult<Run>;

    /// The thread's runs, newest first, cursor-paged.
    async fn list(
        &self,
        scope: &UserScope,
        thread_id: &ThreadId,
        page: &RunPage,
    ) -> DomainResult<RunList>;

    /// The thread's `pending` or `running` run, if any.
    async fn active(&self, scope: &UserScope, thread_id: &ThreadId) -> DomainResult<Option<Run>>;

    /// Reclaims every visible `running` run whose lease expired by now (the rule in the module
    /// docs) and returns the changed rows. Safe to call from several workers at once: each
    /// run is reclaimed by one caller.
    async fn reclaim_expired(&self, scope: &UserScope, max_attempts: u32)
    -> DomainResult<Vec<Run>>;
}

/// The status the thread read endpoint reports (spec §6.2): `running` while a run is active;
/// otherwise derived from the latest root checkpoint's pending writes: `error` when a task
/// wrote `__error__`, `interrupted` when one wrote `__interrupt__` (a pending interrupt),
/// `idle` otherwise (no checkpoint included).
pub fn derive_thread_status(latest: Option<&CheckpointTuple>, run_active: bool) -> ThreadStatus {
    if run_active {
        return ThreadStatus::Running;
    }
    let Some(tuple) = latest else {
        return ThreadStatus::Idle;
    };
    let wrote = |channel: &str| {
        tuple
            .pending_writes
            .iter()
            .any(|w| w.channel.as_str() == channel)
    };
    if wrote("__error__") {
        ThreadStatus::Error
    } else if wrote("__interrupt__") {
        ThreadStatus::Interrupted
    } else {
        ThreadStatus::Idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{Checkpoint, CheckpointMetadata, PendingWrite, TypedValue};
    use crate::ids::{ChannelName, CheckpointNamespace, TaskId};

    fn run() -> Run {
        NewRun::new(ThreadId::parse("t").unwrap(), RunId::parse("r").unwrap()).into_run(
            Some(UserId::parse("u").unwrap()),
            DateTime::from_timestamp(10, 0).unwrap(),
        )
    }

    #[test]
    fn status_text_round_trips_and_classifies() {
        for s in [
            RunStatus::Pending,
            RunStatus::Running,
            RunStatus::Success,
            RunStatus::Error,
            RunStatus::Timeout,
            RunStatus::Interrupted,
        ] {
            assert_eq!(s.as_str().parse::<RunStatus>().unwrap(), s);
        }
        assert!("done".parse::<RunStatus>().is_err());
        assert!("pending".parse::<FinalStatus>().is_err());
        assert_eq!(
            "timeout".parse::<FinalStatus>().unwrap().thread_status(),
            ThreadStatus::Timeout
        );
        assert!(RunStatus::Pending.is_active() && !RunStatus::Interrupted.is_active());
        assert!(RunStatus::Interrupted.is_finishable() && !RunStatus::Error.is_finishable());
    }

    #[test]
    fn inputs_are_validated_at_construction() {
        assert!(WorkerId::parse("").is_err());
        assert!(WorkerId::parse("w\n").is_err());
        assert!(WorkerId::parse("w".repeat(256)).is_err());
        assert_eq!(WorkerId::parse("w-1").unwrap().as_str(), "w-1");
        assert!(LeaseTtl::seconds(0).is_err());
        assert!(LeaseTtl::seconds(3601).is_err());
        assert_eq!(LeaseTtl::seconds(30).unwrap().duration().num_seconds(), 30);
        assert!(RunErrorText::parse("a\0b").is_err());
        assert!(RunErrorText::parse("x".repeat(MAX_RUN_ERROR_CHARS + 1)).is_err());
        let mut bad = JsonObject::new();
        bad.insert("k".into(), "v\0".into());
        assert!(RunProgress::new(bad.clone()).is_err());
        let mut new = NewRun::new(ThreadId::parse("t").unwrap(), RunId::parse("r").unwrap());
        new.metadata = bad;
        assert!(new.validate().unwrap_err().is_invalid_input());
    }

    #[test]
    fn finish_never_overwrites_a_different_final_status() {
        let r = RunId::parse("r").unwrap();
        assert_eq!(
            finish_transition(&r, RunStatus::Running, FinalStatus::Success),
            Ok(true)
        );
        assert_eq!(
            finish_transition(&r, RunStatus::Interrupted, FinalStatus::Success),
            Ok(true)
        );
        assert_eq!(
            finish_transition(&r, RunStatus::Interrupted, FinalStatus::Interrupted),
            Ok(false)
        );
        assert_eq!(
            finish_transition(&r, RunStatus::Error, FinalStatus::Error),
            Ok(false)
        );
        assert!(
            finish_transition(&r, RunStatus::Success, FinalStatus::Error)
                .unwrap_err()
                .is_conflict()
        );
    }

    #[test]
    fn cursor_round_trips_and_orders() {
        let mut a = run();
        let c = RunCursor::after(&a);
        assert_eq!(RunCursor::parse(&c.encode()).unwrap(), c);
        assert!(RunCursor::parse("x").is_err());
        assert!(RunCursor::parse("12:").is_err());
        a.run_id = RunId::parse("q").unwrap();
        assert!(c.precedes(&a));
        a.run_id = RunId::parse("s").unwrap();
        assert!(!c.precedes(&a));
        let limit = Limit::new(1).unwrap();
        let page = RunList::from_look_ahead(vec![run(), a], limit);
        assert!(page.has_more);
        assert_eq!(page.next_cursor, Some(c));
    }

    #[test]
    fn reclaim_requeues_until_attempts_run_out() {
        let now = DateTime::from_timestamp(100, 0).unwrap();
        let mut r = run();
        r.status = RunStatus::Running;
        r.attempt = 1;
        r.lease = Some(RunLease {
            worker_id: WorkerId::parse("w").unwrap(),
            expires_at: now,
        });
        assert!(r.lease_expired(now));
        let mut again = r.clone();
        reclaim(&mut again, now, 2);
        assert_eq!(
            (again.status, again.lease.clone()),
            (RunStatus::Pending, None)
        );
        reclaim(&mut r, now, 1);
        assert_eq!(r.status, RunStatus::Error);
        assert_eq!(r.error.as_deref(), Some(LEASE_EXPIRED_ERROR));
        assert_eq!(r.ended_at, Some(now));
    }

    #[test]
    fn derived_status_reads_the_latest_checkpoints_writes() {
        let tuple = |channel: Option<&str>| CheckpointTuple {
            thread_id: ThreadId::parse("t").unwrap(),
            namespace: CheckpointNamespace::root(),
            checkpoint: Checkpoint::empty(0),
            metadata: CheckpointMetadata::default(),
            parent_id: None,
            pending_writes: channel
                .map(|c| PendingWrite {
                    task_id: TaskId::parse("task").unwrap(),
                    task_path: String::new(),
                    channel: ChannelName::parse(c).unwrap(),
                    value: TypedValue::null(),
                    idx: 0,
                })
                .into_iter()
                .collect(),
        };
        assert_eq!(derive_thread_status(None, false), ThreadStatus::Idle);
        assert_eq!(derive_thread_status(None, true), ThreadStatus::Running);
        let err = tuple(Some("__error__"));
        assert_eq!(derive_thread_status(Some(&err), false), ThreadStatus::Error);
        assert_eq!(
            derive_thread_status(Some(&err), true),
            ThreadStatus::Running
        );
        let int = tuple(Some("__interrupt__"));
        assert_eq!(
            derive_thread_status(Some(&int), false),
            ThreadStatus::Interrupted
        );
        let plain = tuple(Some("messages"));
        assert_eq!(
            derive_thread_status(Some(&plain), false),
            ThreadStatus::Idle
        );
        assert_eq!(
            derive_thread_status(Some(&tuple(None)), false),
            ThreadStatus::Idle
        );
    }
}
