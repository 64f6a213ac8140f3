//! Service terms: the periods a card has service. `valid_until` is exclusive. These
//! rules are pure: they take the card's terms and a moment, and read nothing else.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::schema::terms;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
// None is written as NULL, not DEFAULT (the same for every nullable column here), so
// the INSERT's text never changes and PostgreSQL prepares it once per connection.
#[diesel(table_name = terms, treat_none_as_default_value = false)]
pub struct TermRow {
    pub id: String,
    pub iccid: String,
    pub plan_id: String,
    pub order_id: Option<String>,
    pub valid_from: NaiveDateTime,
    pub valid_until: NaiveDateTime,
    pub data_total_bytes: Option<i64>,
    pub voice_total_minutes: i32,
    pub sms_total: i32,
    pub data_used_bytes: i64,
    pub voice_used_minutes: i64,
    pub sms_used: i64,
    pub created_at: NaiveDateTime,
}

/// How long a term of a plan with `validity_days` lasts: that many 24-hour days in UTC,
/// no calendar arithmetic. The one place this rule lives.
pub fn term_length(validity_days: i32) -> chrono::TimeDelta {
    chrono::TimeDelta::hours(24 * i64::from(validity_days))
}

/// Where a card stands. Only `suspended` is stored; the rest follows from the terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CardStatus {
    /// No term has started yet (none at all, or only future ones).
    Inactive,
    /// A term is current.
    Active,
    /// Every term has ended.
    Expired,
    /// An operator suspended the card; it cannot be renewed until resumed.
    Suspended,
}

impl CardStatus {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "inactive" => Some(Self::Inactive),
            "active" => Some(Self::Active),
            "expired" => Some(Self::Expired),
            "suspended" => Some(Self::Suspended),
            _ => None,
        }
    }
}

/// The term containing `at`: `valid_from <= at < valid_until`.
pub fn term_at(terms: &[TermRow], at: NaiveDateTime) -> Option<&TermRow> {
    terms
        .iter()
        .find(|t| t.valid_from <= at && at < t.valid_until)
}

/// Terms that start after `now`, earliest first.
pub fn upcoming(terms: &[TermRow], now: NaiveDateTime) -> Vec<&TermRow> {
    let mut later: Vec<&TermRow> = terms.iter().filter(|t| t.valid_from > now).collect();
    later.sort_by_key(|t| t.valid_from);
    later
}

pub fn status(suspended: bool, terms: &[TermRow], now: NaiveDateTime) -> CardStatus {
    if suspended {
        CardStatus::Suspended
    } else if term_at(terms, now).is_some() {
        CardStatus::Active
    } else if !terms.is_empty() && terms.iter().all(|t| t.valid_until <= now) {
        CardStatus::Expired
    } else {
        CardStatus::Inactive
    }
}

/// When service ends: the end of the last current or queued term, `None` if none.
pub fn service_end(terms: &[TermRow], now: NaiveDateTime) -> Option<NaiveDateTime> {
    terms
        .iter()
        .filter(|t| t.valid_until > now)
        .map(|t| t.valid_until)
        .max()
}

/// Whole days left, rounded up: 1 second left is 1 day; none left is 0.
pub fn days_left(valid_until: NaiveDateTime, now: NaiveDateTime) -> i64 {
    let left = valid_until - now;
    if left <= TimeDelta::zero() {
        return 0;
    }
    let day = TimeDelta::days(1);
    let whole = left.num_days();
    if left > day * i32::try_from(whole).unwrap_or(i32::MAX) {
        whole + 1
    } else {
        whole
    }
}

/// `what - used`, never below zero (usage past an allowance is kept, not shown as negative).
pub fn remaining(total: i64, used: i64) -> i64 {
    total.saturating_sub(used).max(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::NaiveDate;

    pub fn at(day: u32, hour: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, day)
            .unwrap()
            .and_hms_opt(hour, 0, 0)
            .unwrap()
    }

    pub fn term(id: &str, from: NaiveDateTime, until: NaiveDateTime) -> TermRow {
        TermRow {
            id: id.into(),
            iccid: "89860000000000000000".into(),
            plan_id: "p".into(),
            order_id: None,
            valid_from: from,
            valid_until: until,
            data_total_bytes: Some(100),
            voice_total_minutes: 10,
            sms_total: 5,
            data_used_bytes: 0,
            voice_used_minutes: 0,
            sms_used: 0,
            created_at: from,
        }
    }

    #[test]
    fn valid_until_is_exclusive_and_valid_from_inclusive() {
        let terms = [term("a", at(1, 0), at(5, 0)), term("b", at(5, 0), at(9, 0))];
        assert_eq!(term_at(&terms, at(1, 0)).unwrap().id, "a");
        assert_eq!(term_at(&terms, at(4, 23)).unwrap().id, "a");
        assert_eq!(
            term_at(&terms, at(5, 0)).unwrap().id,
            "b",
            "the boundary belongs to the next term"
        );
        assert!(term_at(&terms, at(9, 0)).is_none());
        assert!(term_at(&terms, at(1, 0) - TimeDelta::seconds(1)).is_none());
    }

    #[test]
    fn status_follows_the_terms() {
        let now = at(10, 12);
        assert_eq!(status(false, &[], now), CardStatus::Inactive);
        assert_eq!(
            status(false, &[term("a", at(1, 0), at(11, 0))], now),
            CardStatus::Active
        );
        assert_eq!(
            status(false, &[term("a", at(1, 0), at(10, 12))], now),
            CardStatus::Expired
        );
        assert_eq!(
            status(false, &[term("a", at(11, 0), at(20, 0))], now),
            CardStatus::Inactive
        );
        assert_eq!(
            status(true, &[term("a", at(1, 0), at(11, 0))], now),
            CardStatus::Suspended
        );
    }

    #[test]
    fn upcoming_and_service_end_see_queued_terms() {
        let now = at(2, 0);
        let terms = [
            term("later", at(20, 0), at(25, 0)),
            term("now", at(1, 0), at(10, 0)),
            term("next", at(10, 0), at(20, 0)),
            term("past", at(1, 0), at(1, 12)),
        ];
        let ids: Vec<_> = upcoming(&terms, now)
            .iter()
            .map(|t| t.id.as_str())
            .collect();
        assert_eq!(ids, ["next", "later"]);
        assert_eq!(service_end(&terms, now), Some(at(25, 0)));
        assert_eq!(service_end(&terms, at(26, 0)), None);
    }

    #[test]
    fn days_left_round_up() {
        assert_eq!(days_left(at(10, 0), at(10, 0)), 0);
        assert_eq!(days_left(at(10, 0), at(11, 0)), 0);
        assert_eq!(days_left(at(10, 0), at(9, 23)), 1);
        assert_eq!(days_left(at(10, 0), at(9, 0)), 1);
        assert_eq!(days_left(at(10, 0), at(8, 23)), 2);
    }

    #[test]
    fn remaining_never_goes_negative() {
        assert_eq!(remaining(100, 30), 70);
        assert_eq!(remaining(100, 130), 0);
    }
}
