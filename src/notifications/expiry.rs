//! The expiry sweep: `card.expiring` when a card's service will end within one of the
//! partner's `expiry_days`, and `card.expired` when it has ended. Each is told once per
//! term and threshold, on any number of instances (a unique notice row, written in the
//! event's transaction). A service with nothing queued after it is judged by its last
//! term; a renewal queued after it moves the end, and the new term is told in its turn.
//!
//! A threshold that had already passed when the term was created is not told (a 7-day
//! plan bought today is not "expiring within 7 days"), and when a sweep finds several
//! thresholds passed at once (after an outage) it tells only the closest one.

use std::collections::BTreeMap;

use chrono::{NaiveDateTime, TimeDelta};

use super::model::{ServiceEnded, ServiceEnding, Thresholds};
use super::store::{self, EndingTerm, NoticeKind, Partners};
use crate::cards::{self, store as card_store, terms};
use crate::clock::Clock;
use crate::db::{Db, DbConnection};
use crate::domain::time;
use crate::error::ApiError;
use crate::events::{self, EventType};

/// Terms looked at per query.
const BATCH: i64 = 200;

/// How far back a sweep looks for services that ended: one that ended longer ago (the
/// sweep was down that long, or the term predates these notices) is not told.
const ENDED_LOOKBACK: TimeDelta = TimeDelta::days(7);

/// One pass: every notice due now. Returns how many events were told.
pub async fn sweep(db: &Db, clock: &Clock) -> Result<usize, ApiError> {
    let now = clock.now_db();
    let custom = db
        .run(|conn| store::all_settings(conn).map_err(ApiError::from))
        .await?;
    // Partners grouped by their expiry days: one query per group and threshold.
    let mut groups: BTreeMap<Vec<u16>, Vec<String>> = BTreeMap::new();
    for row in &custom {
        match Thresholds::from_row(row) {
            Ok(thresholds) => groups
                .entry(thresholds.expiry_days)
                .or_default()
                .push(row.partner_id.clone()),
            // One unreadable row must not stop everyone's notices: that partner waits.
            Err(e) => tracing::error!(partner_id = %row.partner_id, error = %e,
                "unreadable notification settings; no expiry notices for this partner"),
        }
    }
    let customised: Vec<String> = custom.into_iter().map(|row| row.partner_id).collect();
    let mut told = 0;
    let defaults = Thresholds::default().expiry_days;
    told += sweep_expiring(db, Partners::AllBut(customised), &defaults, now).await?;
    for (days, partners) in groups {
        told += sweep_expiring(db, Partners::Only(partners), &days, now).await?;
    }
    told += sweep_ended(db, now).await?;
    Ok(told)
}

/// `days` ascending, so that the closest threshold passed is handled first and the
/// farther ones are then skipped (their query excludes terms with a closer notice).
async fn sweep_expiring(
    db: &Db,
    partners: Partners,
    days: &[u16],
    now: NaiveDateTime,
) -> Result<usize, ApiError> {
    let mut told = 0;
    for &d in days {
        let horizon = now + TimeDelta::days(i64::from(d));
        let partners = partners.clone();
        let query = move |conn: &mut DbConnection| {
            store::terms_due(
                conn,
                &partners,
                NoticeKind::Expiring,
                i32::from(d),
                now,
                horizon,
                BATCH,
            )
        };
        told += sweep_batches(db, query, move |conn, term| {
            notify_expiring(conn, term, d, now)
        })
        .await?;
    }
    Ok(told)
}

async fn sweep_ended(db: &Db, now: NaiveDateTime) -> Result<usize, ApiError> {
    sweep_batches(
        db,
        move |conn| {
            store::terms_due(
                conn,
                &Partners::AllBut(Vec::new()),
                NoticeKind::Expired,
                0,
                now - ENDED_LOOKBACK,
                now,
                BATCH,
            )
        },
        move |conn, term| notify_ended(conn, term, now),
    )
    .await
}

/// What handling one term came to.
enum Handled {
    /// An event was appended.
    Told,
    /// The notice was recorded without an event (its threshold passed before the term
    /// existed).
    Recorded,
    /// Nothing: another instance handled it, or a renewal moved the end meanwhile.
    Skipped,
}

/// Runs `due` and handles each term in a transaction of its own, batch after batch,
/// until a batch is short or changed nothing (so a term that keeps being skipped cannot
/// hold the sweep).
async fn sweep_batches<Q, H>(db: &Db, due: Q, handle: H) -> Result<usize, ApiError>
where
    Q: Fn(&mut DbConnection) -> diesel::QueryResult<Vec<EndingTerm>> + Clone + Send + 'static,
    H: Fn(&mut DbConnection, &EndingTerm) -> Result<Handled, ApiError> + Clone + Send + 'static,
{
    let mut told = 0;
    loop {
        let query = due.clone();
        let batch = db
            .run(move |conn| query(conn).map_err(ApiError::from))
            .await?;
        let mut progressed = false;
        let full = batch.len() as i64 >= BATCH;
        for term in batch {
            let handle = handle.clone();
            match db.transaction(move |conn| handle(conn, &term)).await? {
                Handled::Told => {
                    told += 1;
                    progressed = true;
                }
                Handled::Recorded => progressed = true,
                Handled::Skipped => {}
            }
        }
        if !full || !progressed {
            return Ok(told);
        }
    }
}

/// The card of `term` locked, with its terms, if `term` still ends its service.
fn still_ending(
    conn: &mut DbConnection,
    term: &EndingTerm,
    now: NaiveDateTime,
) -> Result<Option<cards::LoadedCard>, ApiError> {
    card_store::lock_card(conn, &term.iccid, now)?;
    let loaded = cards::load_card(conn, &term.iccid)?;
    let last_end = loaded.terms.iter().map(|t| t.valid_until).max();
    Ok((last_end == Some(term.valid_until)).then_some(loaded))
}

fn notify_expiring(
    conn: &mut DbConnection,
    term: &EndingTerm,
    days_before: u16,
    now: NaiveDateTime,
) -> Result<Handled, ApiError> {
    let Some(loaded) = still_ending(conn, term, now)? else {
        return Ok(Handled::Skipped);
    };
    let passed_at = term.valid_until - TimeDelta::days(i64::from(days_before));
    let tell = term.created_at < passed_at;
    let threshold = i32::from(days_before);
    if !store::record_notice(
        conn,
        &term.term_id,
        NoticeKind::Expiring,
        threshold,
        tell,
        now,
    )? {
        return Ok(Handled::Skipped);
    }
    if !tell {
        return Ok(Handled::Recorded);
    }
    let notice = ServiceEnding {
        days_before,
        service_ends_at: time::from_db(term.valid_until),
        balance: cards::balance_view(&loaded.card, &loaded.terms, &loaded.plan_codes, now)?,
    };
    events::append(
        conn,
        &loaded.card.partner_id,
        EventType::CardExpiring,
        &notice,
        now,
    )?;
    Ok(Handled::Told)
}

fn notify_ended(
    conn: &mut DbConnection,
    term: &EndingTerm,
    now: NaiveDateTime,
) -> Result<Handled, ApiError> {
    let Some(loaded) = still_ending(conn, term, now)? else {
        return Ok(Handled::Skipped);
    };
    if terms::term_at(&loaded.terms, now).is_some() {
        return Ok(Handled::Skipped);
    }
    // A term created after its end (an operator's grant in the past) ended nothing.
    let tell = term.created_at < term.valid_until;
    if !store::record_notice(conn, &term.term_id, NoticeKind::Expired, 0, tell, now)? {
        return Ok(Handled::Skipped);
    }
    if !tell {
        return Ok(Handled::Recorded);
    }
    let notice = ServiceEnded {
        service_ended_at: time::from_db(term.valid_until),
        balance: cards::balance_view(&loaded.card, &loaded.terms, &loaded.plan_codes, now)?,
    };
    events::append(
        conn,
        &loaded.card.partner_id,
        EventType::CardExpired,
        &notice,
        now,
    )?;
    Ok(Handled::Told)
}
