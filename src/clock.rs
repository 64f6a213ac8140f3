//! The time every rule reads. Production uses the system clock; tests move it forward
//! (`advance`, `set`) instead of sleeping. One clock lives in the application state and
//! is cloned into whatever needs the time, so all of them see the same moves.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};

use crate::domain::time;

/// The system clock plus an offset that only tests change.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_micros: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    /// Now, at the microsecond precision both databases store.
    pub fn now(&self) -> DateTime<Utc> {
        let offset = TimeDelta::microseconds(self.offset_micros.load(Ordering::Relaxed));
        time::now() + offset
    }

    /// Now, in the form stored in the database.
    pub fn now_db(&self) -> NaiveDateTime {
        time::to_db(self.now())
    }

    /// Moves this clock (and every clone of it) forward by `by`.
    pub fn advance(&self, by: TimeDelta) {
        let micros = by.num_microseconds().unwrap_or(i64::MAX);
        self.offset_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// How far tests have moved this clock from the system clock.
    pub fn offset(&self) -> TimeDelta {
        TimeDelta::microseconds(self.offset_micros.load(Ordering::Relaxed))
    }

    /// Makes this clock read `at` now (and run on from there).
    pub fn set(&self, at: DateTime<Utc>) {
        let offset = at - time::now();
        self.offset_micros.store(
            offset.num_microseconds().unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_moves() {
        let clock = Clock::system();
        let seen_by_a_worker = clock.clone();
        let before = seen_by_a_worker.now();
        clock.advance(TimeDelta::days(3));
        let after = seen_by_a_worker.now();
        assert!(after - before >= TimeDelta::days(3));
        assert!(after - before < TimeDelta::days(3) + TimeDelta::minutes(1));
    }

    #[test]
    fn set_reads_back_the_time_set() {
        let clock = Clock::system();
        let at = time::from_db(
            chrono::NaiveDate::from_ymd_opt(2030, 1, 2)
                .unwrap()
                .and_hms_opt(3, 4, 5)
                .unwrap(),
        );
        clock.set(at);
        let read = clock.now();
        assert!(read >= at && read - at < TimeDelta::minutes(1), "{read}");
    }
}
