//! Notification queries: settings, wallet alerts, the expiry notices handled, and the
//! terms whose notices are due.

use chrono::NaiveDateTime;
use diesel::dsl::{exists, not};
use diesel::prelude::*;

use super::model::SettingsRow;
use crate::db::schema::{
    card_notices, cards, notification_settings, terms, wallet_alert_thresholds,
};
use crate::db::{is_unique_violation, DbConnection};
use crate::domain::{Currency, MinorUnits, Money};

pub fn settings(conn: &mut DbConnection, partner_id: &str) -> QueryResult<Option<SettingsRow>> {
    notification_settings::table
        .find(partner_id)
        .select(SettingsRow::as_select())
        .first(conn)
        .optional()
}

/// Every partner's own settings (partners without a row have the defaults).
pub fn all_settings(conn: &mut DbConnection) -> QueryResult<Vec<SettingsRow>> {
    notification_settings::table
        .select(SettingsRow::as_select())
        .order(notification_settings::partner_id)
        .load(conn)
}

/// Replaces a partner's settings row.
pub fn save_settings(conn: &mut DbConnection, row: &SettingsRow) -> QueryResult<()> {
    diesel::delete(notification_settings::table.find(&row.partner_id)).execute(conn)?;
    diesel::insert_into(notification_settings::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// A partner's wallet alerts, by currency.
pub fn wallet_alerts(conn: &mut DbConnection, partner_id: &str) -> QueryResult<Vec<Money>> {
    let rows: Vec<(Currency, MinorUnits)> = wallet_alert_thresholds::table
        .filter(wallet_alert_thresholds::partner_id.eq(partner_id))
        .select((
            wallet_alert_thresholds::currency,
            wallet_alert_thresholds::amount,
        ))
        .order(wallet_alert_thresholds::currency)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(currency, amount)| Money::new(amount, currency))
        .collect())
}

/// The amount below which the partner's `currency` wallet is told about, if any.
pub fn replace_wallet_alerts(
    conn: &mut DbConnection,
    partner_id: &str,
    alerts: &[Money],
) -> QueryResult<()> {
    diesel::delete(
        wallet_alert_thresholds::table.filter(wallet_alert_thresholds::partner_id.eq(partner_id)),
    )
    .execute(conn)?;
    for alert in alerts {
        diesel::insert_into(wallet_alert_thresholds::table)
            .values((
                wallet_alert_thresholds::partner_id.eq(partner_id),
                wallet_alert_thresholds::currency.eq(alert.currency),
                wallet_alert_thresholds::amount.eq(alert.amount),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// A term's data allowance and use, read inside the transaction that just counted usage
/// on it (its row is locked until that transaction ends).
pub fn data_counter(
    conn: &mut DbConnection,
    term_id: &str,
) -> QueryResult<(Option<i64>, i64, NaiveDateTime, NaiveDateTime)> {
    terms::table
        .find(term_id)
        .select((
            terms::data_total_bytes,
            terms::data_used_bytes,
            terms::valid_from,
            terms::valid_until,
        ))
        .first(conn)
}

crate::db::stored_enum! {
    /// Which expiry notice a `card_notices` row stands for.
    pub enum NoticeKind {
        Expiring = "expiring",
        Expired = "expired",
    }
}

/// A term that ends a card's service, with what a notice about it needs.
#[derive(Debug, Clone, Queryable)]
pub struct EndingTerm {
    pub term_id: String,
    pub iccid: String,
    pub partner_id: String,
    pub valid_until: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

/// Which partners a query covers: those listed, or all but those listed.
#[derive(Debug, Clone)]
pub enum Partners {
    Only(Vec<String>),
    AllBut(Vec<String>),
}

/// Terms that end their card's service (no term of the card ends later) within
/// `(from, until]`, of `partners`' cards, with no `kind` notice at `threshold` or
/// closer yet; earliest end first.
pub fn terms_due(
    conn: &mut DbConnection,
    partners: &Partners,
    kind: NoticeKind,
    threshold: i32,
    from: NaiveDateTime,
    until: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<EndingTerm>> {
    let later = diesel::alias!(terms as later);
    let mut query = terms::table
        .inner_join(cards::table)
        .filter(terms::valid_until.gt(from))
        .filter(terms::valid_until.le(until))
        .filter(not(exists(
            later
                .filter(later.field(terms::iccid).eq(terms::iccid))
                .filter(later.field(terms::valid_until).gt(terms::valid_until)),
        )))
        .filter(not(exists(
            card_notices::table
                .filter(card_notices::term_id.eq(terms::id))
                .filter(card_notices::kind.eq(kind))
                .filter(card_notices::threshold.le(threshold)),
        )))
        .select((
            terms::id,
            terms::iccid,
            cards::partner_id,
            terms::valid_until,
            terms::created_at,
        ))
        .order((terms::valid_until, terms::id))
        .limit(limit)
        .into_boxed();
    query = match partners {
        Partners::Only(ids) => query.filter(cards::partner_id.eq_any(ids.clone())),
        Partners::AllBut(ids) if ids.is_empty() => query,
        Partners::AllBut(ids) => query.filter(cards::partner_id.ne_all(ids.clone())),
    };
    query.load(conn)
}

/// Records that a term's notice was handled; `false` when another instance did first.
pub fn record_notice(
    conn: &mut DbConnection,
    term_id: &str,
    kind: NoticeKind,
    threshold: i32,
    told: bool,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    // In a savepoint, so that losing the race does not abort the caller's transaction.
    let inserted = conn.transaction(|conn| {
        diesel::insert_into(card_notices::table)
            .values((
                card_notices::term_id.eq(term_id),
                card_notices::kind.eq(kind),
                card_notices::threshold.eq(threshold),
                card_notices::told.eq(told),
                card_notices::created_at.eq(now),
            ))
            .execute(conn)
    });
    match inserted {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}
