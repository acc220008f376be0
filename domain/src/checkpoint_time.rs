//! When a checkpoint was taken, written and read in one place.
//!
//! LangGraph stamps a checkpoint twice: its id is a version-6 uuid whose time field is the
//! creation instant (spec §1.6), and `ts` is `datetime.now(timezone.utc).isoformat()`. Both are
//! produced here from a [`Clock`], so a test that pins the clock pins the ids' time and `ts`
//! too, and the time an id carries is decoded by the same module that encodes it. The layout
//! itself is the `uuid` crate's (`Builder::from_sorted_gregorian_timestamp`,
//! `Uuid::get_timestamp`).

use std::sync::Mutex;

use chrono::{DateTime, TimeZone, Utc};
use indexmap::IndexMap;
use uuid::{Builder, Uuid};

use crate::checkpoint::{Checkpoint, CheckpointTuple};
use crate::clock::{Clock, SystemClock};
use crate::ids::CheckpointId;

/// 100-ns ticks from the Gregorian epoch (1582-10-15), where uuid time starts, to 1970-01-01.
const GREGORIAN_TO_UNIX_TICKS: u64 = 0x01B2_1DD2_1381_4000;
/// A uuid's time field holds 60 bits.
const MAX_TICKS: u64 = (1 << 60) - 1;

impl CheckpointId {
    /// A new time-ordered id in LangGraph's uuid6 layout, read from the system clock.
    /// Code that holds a [`Clock`] uses [`CheckpointId::generate_with`].
    pub fn generate(step: i64) -> Self {
        Self::generate_with(&SystemClock, step)
    }

    /// A new id in LangGraph's uuid6 layout carrying `clock`'s time, strictly increasing
    /// within this process (an instant not after the last id's gets the next tick); `step`
    /// goes into the clock-sequence field as pregel does, the node field is random.
    pub fn generate_with(clock: &dyn Clock, step: i64) -> Self {
        let ticks = next_ticks(gregorian_ticks(clock.now()));
        let random = Uuid::new_v4();
        let mut node = [0u8; 6];
        node.copy_from_slice(&random.as_bytes()[10..16]);
        let counter = (step as u64 & 0x3fff) as u16;
        let id = Builder::from_sorted_gregorian_timestamp(ticks, counter, &node).into_uuid();
        Self::parse(id.hyphenated().to_string()).expect("a uuid is a valid checkpoint id")
    }

    /// The instant a uuid6 id carries; `None` for any other text (ids are opaque, so callers
    /// must expect that).
    pub fn uuid6_time(&self) -> Option<DateTime<Utc>> {
        uuid6_time(self.as_str())
    }
}

impl Checkpoint {
    /// An empty checkpoint with a fresh id, the system clock's time and format version 4.
    /// Code that holds a [`Clock`] uses [`Checkpoint::empty_with`].
    pub fn empty(step: i64) -> Self {
        Self::empty_with(&SystemClock, step)
    }

    /// An empty checkpoint whose id and `ts` carry `clock`'s time.
    pub fn empty_with(clock: &dyn Clock, step: i64) -> Self {
        let ts = python_isoformat(clock.now());
        Self {
            v: 4,
            id: CheckpointId::generate_with(clock, step),
            ts,
            channel_values: IndexMap::new(),
            channel_versions: IndexMap::new(),
            versions_seen: IndexMap::new(),
            updated_channels: None,
            extra: IndexMap::new(),
        }
    }
}

/// The timestamp of a version-6 uuid (LangGraph's checkpoint ids), `None` for other text and
/// for times before 1970.
pub fn uuid6_time(id: &str) -> Option<DateTime<Utc>> {
    let uuid = Uuid::parse_str(id).ok()?;
    if uuid.get_version_num() != 6 {
        return None;
    }
    let (ticks, _) = uuid.get_timestamp()?.to_gregorian();
    let unix_ticks = ticks.checked_sub(GREGORIAN_TO_UNIX_TICKS)?;
    let secs = i64::try_from(unix_ticks / 10_000_000).ok()?;
    let nanos = ((unix_ticks % 10_000_000) * 100) as u32;
    Utc.timestamp_opt(secs, nanos).single()
}

/// When a checkpoint was taken: its `ts` read as RFC 3339, else the time its uuid6 id
/// carries, else unknown (`ts` is opaque text and ids need not be uuids).
pub fn taken_at(tuple: &CheckpointTuple) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&tuple.checkpoint.ts)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| tuple.checkpoint.id.uuid6_time())
}

/// An instant as Python's `datetime.isoformat()` writes an aware UTC datetime: microseconds
/// only when there are any, offset `+00:00` (what LangGraph puts in `ts`).
pub fn python_isoformat(at: DateTime<Utc>) -> String {
    if at.timestamp_subsec_micros() == 0 {
        at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
    } else {
        at.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
    }
}

/// 100-ns ticks since the Gregorian epoch, clamped to what the uuid time field holds.
fn gregorian_ticks(at: DateTime<Utc>) -> u64 {
    let ticks = i128::from(at.timestamp()) * 10_000_000
        + i128::from(at.timestamp_subsec_nanos() / 100)
        + i128::from(GREGORIAN_TO_UNIX_TICKS);
    ticks.clamp(0, i128::from(MAX_TICKS)) as u64
}

/// `ticks`, or the tick after the last one handed out when the clock has not moved past it.
fn next_ticks(ticks: u64) -> u64 {
    static LAST: Mutex<u64> = Mutex::new(0);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let next = if ticks <= *last {
        (*last + 1).min(MAX_TICKS)
    } else {
        ticks
    };
    *last = next;
    next
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::clock::ManualClock;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn generated_ids_have_the_uuid6_layout_and_increase() {
        let a = CheckpointId::generate(0);
        let b = CheckpointId::generate(0);
        let c = CheckpointId::generate(-1);
        assert!(a < b && b < c, "{a} {b} {c}");
        let text = a.as_str();
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "6");
        assert_eq!(&text[19..23], "8000");
        assert_eq!(&c.as_str()[19..23], "bfff");
        assert_eq!(&CheckpointId::generate(4).as_str()[19..23], "8004");
    }

    /// Every exact-time check in one test, in increasing clock order: ids are increasing per
    /// process, so a test pinned earlier than an id another test generated would see the
    /// guard's tick instead of its own time.
    #[test]
    fn ids_and_ts_carry_the_pinned_clock_time() {
        let clock = ManualClock::new(at("2996-01-01T00:00:00.5Z"));
        let cp = Checkpoint::empty_with(&clock, 2);
        assert_eq!(cp.ts, "2996-01-01T00:00:00.500000+00:00");
        assert_eq!(cp.id.uuid6_time(), Some(clock.now()));
        assert_eq!(cp.v, 4);
        assert_eq!(&cp.id.as_str()[19..23], "8002");

        clock.set(at("2997-03-04T05:06:07.123456Z"));
        let id = CheckpointId::generate_with(&clock, 7);
        assert_eq!(id.uuid6_time(), Some(clock.now()));
        clock.advance(Duration::seconds(1));
        let later = CheckpointId::generate_with(&clock, 7);
        assert_eq!(later.uuid6_time(), Some(clock.now()));
        assert!(id < later);
        let stuck = CheckpointId::generate_with(&clock, 7);
        assert!(
            later < stuck,
            "a clock that stands still still gives increasing ids"
        );
    }

    #[test]
    fn only_uuid6_text_carries_a_time() {
        assert_eq!(uuid6_time("c1"), None);
        assert_eq!(uuid6_time(&Uuid::new_v4().to_string()), None);
        // An id LangGraph wrote in 2024.
        let t = uuid6_time("1ef4f797-8335-6428-8001-8a1503f9b875").unwrap();
        assert_eq!(t.format("%Y").to_string(), "2024");
    }

    #[test]
    fn taken_at_prefers_ts_then_the_id() {
        let id = CheckpointId::parse("1ef4f797-8335-6428-8001-8a1503f9b875").unwrap();
        let mut cp = Checkpoint::empty(0);
        cp.id = id.clone();
        let tuple = |cp: Checkpoint| CheckpointTuple {
            thread_id: crate::ThreadId::parse("t").unwrap(),
            namespace: crate::CheckpointNamespace::root(),
            parent_id: None,
            checkpoint: cp,
            metadata: Default::default(),
            pending_writes: Vec::new(),
        };
        cp.ts = "2020-01-01T00:00:00+00:00".into();
        assert_eq!(
            taken_at(&tuple(cp.clone())),
            Some(at("2020-01-01T00:00:00Z"))
        );
        cp.ts = "not a time".into();
        assert_eq!(taken_at(&tuple(cp.clone())), id.uuid6_time());
        cp.id = CheckpointId::parse("c1").unwrap();
        assert_eq!(taken_at(&tuple(cp)), None);
    }

    #[test]
    fn python_isoformat_drops_zero_microseconds() {
        assert_eq!(
            python_isoformat(at("2026-01-02T03:04:05Z")),
            "2026-01-02T03:04:05+00:00"
        );
        assert_eq!(
            python_isoformat(at("2026-01-02T03:04:05.000010Z")),
            "2026-01-02T03:04:05.000010+00:00"
        );
    }
}
