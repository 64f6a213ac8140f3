//! Card and term queries. Partner-facing lookups take the partner id and put it in the
//! WHERE clause: another partner's card is simply not found.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{NaiveDateTime, TimeDelta};
use diesel::dsl::{exists, not};
use diesel::prelude::*;
use mini_moka::sync::Cache;

use super::model::{CardFilter, CardRow};
use super::terms::{CardStatus, TermRow};
use super::LoadedCard;
use crate::db::changes::written;
use crate::db::schema::{cards, plans, terms};
use crate::db::DbConnection;
use crate::domain::ProfileState;
use crate::pagination::PageRequest;

pub fn insert_card(conn: &mut DbConnection, row: &CardRow) -> QueryResult<()> {
    diesel::insert_into(cards::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Registers many cards. On PostgreSQL one statement takes them all, as arrays (diesel's
/// multi-row insert does not exist for the two-backend connection); SQLite, in-process,
/// inserts them one by one in the caller's transaction.
pub fn insert_cards(conn: &mut DbConnection, rows: &[CardRow]) -> QueryResult<usize> {
    let DbConnection::Postgres(pg) = conn else {
        for row in rows {
            insert_card(conn, row)?;
        }
        return Ok(rows.len());
    };
    use diesel::sql_types::{Array, Bool, Nullable, Text, Timestamp};
    let column = |pick: fn(&CardRow) -> Option<String>| rows.iter().map(pick).collect::<Vec<_>>();
    let text = |pick: fn(&CardRow) -> String| rows.iter().map(pick).collect::<Vec<_>>();
    diesel::sql_query(
        "INSERT INTO cards (iccid, partner_id, card_type, msisdn, eid, suspended, created_at, \
           updated_at, profile_state, profile_state_at) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
           $6::bool[], $7::timestamp[], $8::timestamp[], $9::text[], $10::timestamp[])",
    )
    .bind::<Array<Text>, _>(text(|r| r.iccid.clone()))
    .bind::<Array<Text>, _>(text(|r| r.partner_id.clone()))
    .bind::<Array<Text>, _>(text(|r| r.card_type.as_str().to_owned()))
    .bind::<Array<Nullable<Text>>, _>(column(|r| r.msisdn.clone()))
    .bind::<Array<Nullable<Text>>, _>(column(|r| r.eid.clone()))
    .bind::<Array<Bool>, _>(rows.iter().map(|r| r.suspended).collect::<Vec<_>>())
    .bind::<Array<Timestamp>, _>(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
    .bind::<Array<Timestamp>, _>(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(column(|r| r.profile_state.map(|s| s.as_str().to_owned())))
    .bind::<Array<Nullable<Timestamp>>, _>(
        rows.iter().map(|r| r.profile_state_at).collect::<Vec<_>>(),
    )
    .execute(pg)
}

/// Who holds each of `iccids` that is registered, and since when.
pub fn owners(
    conn: &mut DbConnection,
    iccids: &[String],
) -> QueryResult<Vec<(String, String, NaiveDateTime)>> {
    cards::table
        .filter(cards::iccid.eq_any(iccids))
        .select((cards::iccid, cards::partner_id, cards::created_at))
        .load(conn)
}

/// Which of `iccids` are already registered.
pub fn existing_iccids(conn: &mut DbConnection, iccids: &[String]) -> QueryResult<Vec<String>> {
    let mut found = Vec::new();
    // Chunks keep the IN list within both backends' bind-parameter limits.
    for chunk in iccids.chunks(500) {
        found.extend(
            cards::table
                .filter(cards::iccid.eq_any(chunk))
                .select(cards::iccid)
                .load::<String>(conn)?,
        );
    }
    found.sort();
    Ok(found)
}

pub fn find_card(conn: &mut DbConnection, iccid: &str) -> QueryResult<Option<CardRow>> {
    cards::table
        .find(iccid)
        .select(CardRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_partner_card(
    conn: &mut DbConnection,
    partner_id: &str,
    iccid: &str,
) -> QueryResult<Option<CardRow>> {
    cards::table
        .filter(cards::iccid.eq(iccid))
        .filter(cards::partner_id.eq(partner_id))
        .select(CardRow::as_select())
        .first(conn)
        .optional()
}

/// A partner's card with all its terms (in order) and their plan codes: one query, the
/// codes coming from memory once seen (see [`plan_codes`]).
pub fn partner_card_with_terms(
    conn: &mut DbConnection,
    partner_id: &str,
    iccid: &str,
) -> QueryResult<Option<LoadedCard>> {
    let rows: Vec<(CardRow, Option<TermRow>)> = cards::table
        .left_join(terms::table)
        .filter(cards::iccid.eq(iccid))
        .filter(cards::partner_id.eq(partner_id))
        .select((CardRow::as_select(), Option::<TermRow>::as_select()))
        .load(conn)?;
    let Some(card) = rows.first().map(|(card, _)| card.clone()) else {
        return Ok(None);
    };
    // Sorted here rather than by the database: a card has a handful of terms.
    let mut terms: Vec<TermRow> = rows.into_iter().filter_map(|(_, term)| term).collect();
    terms.sort_by_key(|term| term.valid_from);
    let plan_codes = plan_codes(conn, &terms)?;
    Ok(Some(LoadedCard {
        card,
        terms,
        plan_codes,
    }))
}

pub fn terms_of(conn: &mut DbConnection, iccids: &[String]) -> QueryResult<Vec<TermRow>> {
    terms::table
        .filter(terms::iccid.eq_any(iccids))
        .order((terms::iccid, terms::valid_from))
        .select(TermRow::as_select())
        .load(conn)
}

/// Plan id → code, as seen before. A plan's code never changes and a plan is never
/// deleted, and ids are UUIDs (never the same in two databases), so an entry is never
/// wrong: one map serves the whole process. Bounded like the catalog it mirrors.
static PLAN_CODES: LazyLock<Cache<String, String>> =
    LazyLock::new(|| Cache::builder().max_capacity(100_000).build());

/// The codes of the plans `terms` name, from memory, reading only the ones not seen yet.
pub fn plan_codes(
    conn: &mut DbConnection,
    terms: &[TermRow],
) -> QueryResult<HashMap<String, String>> {
    let mut codes = HashMap::new();
    let mut missing: Vec<&str> = Vec::new();
    for term in terms {
        match PLAN_CODES.get(&term.plan_id) {
            Some(code) => {
                codes.insert(term.plan_id.clone(), code);
            }
            None => missing.push(term.plan_id.as_str()),
        }
    }
    if missing.is_empty() {
        return Ok(codes);
    }
    missing.sort_unstable();
    missing.dedup();
    let read: Vec<(String, String)> = plans::table
        .filter(plans::id.eq_any(missing))
        .select((plans::id, plans::code))
        .load(conn)?;
    for (id, code) in read {
        PLAN_CODES.insert(id.clone(), code.clone());
        codes.insert(id, code);
    }
    Ok(codes)
}

pub fn insert_term(conn: &mut DbConnection, term: &TermRow) -> QueryResult<()> {
    written(&term.iccid);
    diesel::insert_into(terms::table)
        .values(term)
        .execute(conn)
        .map(drop)
}

/// One page of a partner's cards matching `filter` at `now`, ordered by ICCID.
pub fn list_partner_cards(
    conn: &mut DbConnection,
    partner_id: &str,
    filter: &CardFilter,
    page: &PageRequest,
    now: NaiveDateTime,
) -> QueryResult<Vec<CardRow>> {
    let mut query = cards::table
        .filter(cards::partner_id.eq(partner_id.to_owned()))
        .select(CardRow::as_select())
        .order(cards::iccid.asc())
        .limit(page.fetch_limit())
        .into_boxed();
    if let Some(after) = &page.after {
        query = query.filter(cards::iccid.gt(after.clone()));
    }
    if let Some(card_type) = filter.card_type {
        query = query.filter(cards::card_type.eq(card_type));
    }
    let any_term = || terms::table.filter(terms::iccid.eq(cards::iccid));
    let current = || {
        any_term()
            .filter(terms::valid_from.le(now))
            .filter(terms::valid_until.gt(now))
    };
    let not_ended = || any_term().filter(terms::valid_until.gt(now));
    match filter.status {
        Some(CardStatus::Suspended) => query = query.filter(cards::suspended.eq(true)),
        Some(CardStatus::Active) => {
            query = query
                .filter(cards::suspended.eq(false))
                .filter(exists(current()));
        }
        Some(CardStatus::Expired) => {
            query = query
                .filter(cards::suspended.eq(false))
                .filter(exists(any_term()))
                .filter(not(exists(not_ended())));
        }
        Some(CardStatus::Inactive) => {
            query = query
                .filter(cards::suspended.eq(false))
                .filter(not(exists(current())))
                .filter(
                    not(exists(any_term()))
                        .or(exists(any_term().filter(terms::valid_from.gt(now)))),
                );
        }
        None => {}
    }
    if let Some(days) = filter.expiring_within_days {
        // A term is current, and no term (current or queued) runs past the horizon.
        let horizon = now + TimeDelta::days(i64::from(days));
        query = query.filter(exists(current())).filter(not(exists(
            any_term().filter(terms::valid_until.gt(horizon)),
        )));
    }
    query.load(conn)
}

pub fn set_suspended(
    conn: &mut DbConnection,
    iccid: &str,
    suspended: bool,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    written(iccid);
    diesel::update(cards::table.find(iccid))
        .set((cards::suspended.eq(suspended), cards::updated_at.eq(now)))
        .execute(conn)
        .map(|n| n > 0)
}

pub fn set_owner(
    conn: &mut DbConnection,
    iccid: &str,
    partner_id: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    written(iccid);
    diesel::update(cards::table.find(iccid))
        .set((cards::partner_id.eq(partner_id), cards::updated_at.eq(now)))
        .execute(conn)
        .map(|n| n > 0)
}

/// Takes the card's row lock for the rest of the transaction: renewals of one card take
/// turns, each seeing the terms the previous one made.
pub fn lock_card(conn: &mut DbConnection, iccid: &str, now: NaiveDateTime) -> QueryResult<()> {
    written(iccid);
    diesel::update(cards::table.find(iccid))
        .set(cards::updated_at.eq(now))
        .execute(conn)
        .map(drop)
}

/// Records the profile state reported as happening at `at`, unless a later one is
/// already recorded (events may arrive out of order); `true` when recorded.
pub fn record_profile_state(
    conn: &mut DbConnection,
    iccid: &str,
    state: ProfileState,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    written(iccid);
    diesel::update(
        cards::table.find(iccid).filter(
            cards::profile_state_at
                .is_null()
                .or(cards::profile_state_at.le(at)),
        ),
    )
    .set((
        cards::profile_state.eq(state),
        cards::profile_state_at.eq(at),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Records the EID an eSIM's profile was installed on.
pub fn record_eid(conn: &mut DbConnection, iccid: &str, eid: &str) -> QueryResult<()> {
    written(iccid);
    diesel::update(cards::table.find(iccid))
        .set(cards::eid.eq(eid))
        .execute(conn)
        .map(drop)
}

/// Moves a term of the card `iccid` to `[valid_from, valid_until)`.
pub fn move_term(
    conn: &mut DbConnection,
    iccid: &str,
    term_id: &str,
    valid_from: NaiveDateTime,
    valid_until: NaiveDateTime,
) -> QueryResult<()> {
    written(iccid);
    diesel::update(terms::table.find(term_id))
        .set((
            terms::valid_from.eq(valid_from),
            terms::valid_until.eq(valid_until),
        ))
        .execute(conn)
        .map(drop)
}

/// Ends a term of the card `iccid` at `valid_until`.
pub fn end_term(
    conn: &mut DbConnection,
    iccid: &str,
    term_id: &str,
    valid_until: NaiveDateTime,
) -> QueryResult<()> {
    written(iccid);
    diesel::update(terms::table.find(term_id))
        .set(terms::valid_until.eq(valid_until))
        .execute(conn)
        .map(drop)
}
