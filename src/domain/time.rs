//! Timestamps: stored as UTC `NaiveDateTime` (portable across both databases),
//! shown as RFC 3339 with `Z`.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};

/// Now, at the microsecond precision both databases store, so a value read back
/// compares equal to the value written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub fn to_db(at: DateTime<Utc>) -> NaiveDateTime {
    at.naive_utc()
}

pub fn from_db(at: NaiveDateTime) -> DateTime<Utc> {
    at.and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_database_form() {
        let at = now();
        assert_eq!(from_db(to_db(at)), at);
        assert_eq!(at.timestamp_subsec_nanos() % 1000, 0);
    }

    #[test]
    fn serializes_as_rfc3339_with_z() {
        let at = from_db(
            chrono::NaiveDate::from_ymd_opt(2026, 11, 25)
                .unwrap()
                .and_hms_opt(1, 2, 3)
                .unwrap(),
        );
        assert_eq!(
            serde_json::to_string(&at).unwrap(),
            "\"2026-11-25T01:02:03Z\""
        );
    }
}
