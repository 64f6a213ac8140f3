//! Timestamps: stored as UTC `NaiveDateTime` (portable across both databases),
//! shown as RFC 3339 with `Z`.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};

/// Now, at the microsecond precision both databases store, so a value read back
/// compares equal to the value written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// The span a timestamp from a client may fall in: far beyond any term or record this
/// service handles, and well inside what both databases and every client can represent
/// (so that no date compares or overflows strangely anywhere).
pub fn accepted_range() -> (DateTime<Utc>, DateTime<Utc>) {
    let at = |year| {
        chrono::NaiveDate::from_ymd_opt(year, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc())
            .unwrap_or_default()
    };
    (at(2000), at(2100))
}

/// `Err` with the reason when `at` is outside [`accepted_range`].
pub fn check_accepted(at: DateTime<Utc>) -> Result<(), String> {
    let (earliest, latest) = accepted_range();
    if at < earliest || at >= latest {
        return Err(format!(
            "must be from {} to before {}",
            earliest.format("%Y-%m-%d"),
            latest.format("%Y-%m-%d")
        ));
    }
    Ok(())
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
    fn client_timestamps_are_bounded() {
        let parse = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
        assert!(check_accepted(parse("2026-11-25T00:00:00Z")).is_ok());
        assert!(check_accepted(parse("9999-12-31T23:59:59Z")).is_err());
        assert!(check_accepted(parse("0001-01-01T00:00:00Z")).is_err());
        assert!(check_accepted(parse("2100-01-01T00:00:00Z")).is_err());
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
