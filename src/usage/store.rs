//! Usage queries: the record ids seen, the term current at a moment, and the counters.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::UsageKind;
use crate::db::schema::{cards, terms, usage_records};
use crate::db::DbConnection;

pub fn is_recorded(conn: &mut DbConnection, record_id: &str) -> QueryResult<bool> {
    Ok(usage_records::table
        .find(record_id)
        .count()
        .get_result::<i64>(conn)?
        > 0)
}

/// The partner that holds the card, if there is such a card.
pub fn card_owner(conn: &mut DbConnection, iccid: &str) -> QueryResult<Option<String>> {
    cards::table
        .find(iccid)
        .select(cards::partner_id)
        .first(conn)
        .optional()
}

/// The id of the card's term that contains `at`.
pub fn term_at(
    conn: &mut DbConnection,
    iccid: &str,
    at: NaiveDateTime,
) -> QueryResult<Option<String>> {
    terms::table
        .filter(terms::iccid.eq(iccid))
        .filter(terms::valid_from.le(at))
        .filter(terms::valid_until.gt(at))
        .select(terms::id)
        .first::<String>(conn)
        .optional()
}

/// A usage record as stored.
pub struct NewUsage<'a> {
    pub id: &'a str,
    pub iccid: &'a str,
    pub term_id: &'a str,
    pub kind: UsageKind,
    pub quantity: i64,
    pub charged: i64,
    pub occurred_at: NaiveDateTime,
    pub received_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, usage: &NewUsage) -> QueryResult<()> {
    diesel::insert_into(usage_records::table)
        .values((
            usage_records::id.eq(usage.id),
            usage_records::iccid.eq(usage.iccid),
            usage_records::term_id.eq(usage.term_id),
            usage_records::kind.eq(usage.kind),
            usage_records::quantity.eq(usage.quantity),
            usage_records::charged.eq(usage.charged),
            usage_records::occurred_at.eq(usage.occurred_at),
            usage_records::received_at.eq(usage.received_at),
        ))
        .execute(conn)
        .map(drop)
}

/// Adds `amount` to the counter of `kind` of a term of the card `iccid`, unless the sum
/// would not fit in the counter: `false` then, and nothing changed.
pub fn add_to_counter(
    conn: &mut DbConnection,
    iccid: &str,
    term_id: &str,
    kind: UsageKind,
    amount: i64,
) -> QueryResult<bool> {
    let room = i64::MAX - amount;
    crate::db::changes::written(iccid);
    let term = terms::table.find(term_id);
    let updated = match kind {
        UsageKind::Data => diesel::update(term.filter(terms::data_used_bytes.le(room)))
            .set(terms::data_used_bytes.eq(terms::data_used_bytes + amount))
            .execute(conn)?,
        UsageKind::Voice => diesel::update(term.filter(terms::voice_used_minutes.le(room)))
            .set(terms::voice_used_minutes.eq(terms::voice_used_minutes + amount))
            .execute(conn)?,
        UsageKind::Sms => diesel::update(term.filter(terms::sms_used.le(room)))
            .set(terms::sms_used.eq(terms::sms_used + amount))
            .execute(conn)?,
    };
    Ok(updated == 1)
}
