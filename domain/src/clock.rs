//! Time as a port, so TTL, retention and "updated_at" behaviour can be tested without sleeps.

use std::sync::Mutex;

use chrono::{DateTime, Duration, SubsecRound, Utc};

/// Where stores and services read "now". Always UTC, always microsecond precision (what both
/// databases keep), so a value written and read back compares equal.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock, truncated to microseconds.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// A clock that stands still until moved; for tests of expiry and retention.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock reading `start` (truncated to microseconds).
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Mutex::new(start.trunc_subsecs(6)))
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = to.trunc_subsecs(6);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.1234567+00:00")
            .unwrap()
            .with_timezone(&Utc);
        let c = ManualClock::new(start);
        assert_eq!(c.now().timestamp_subsec_nanos(), 123_456_000);
        c.advance(Duration::seconds(10));
        assert_eq!(c.now() - start.trunc_subsecs(6), Duration::seconds(10));
        assert_eq!(SystemClock.now().timestamp_subsec_nanos() % 1000, 0);
    }
}
