//! Subscription queries. Changes are conditional on the state read, so that a sweep on
//! two instances, or a sweep and a partner, never both apply one.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::model::{SubscriptionRow, SubscriptionStatus};
use crate::db::schema::subscriptions;
use crate::db::DbConnection;
use crate::pagination::PageRequest;

pub fn insert(conn: &mut DbConnection, row: &SubscriptionRow) -> QueryResult<()> {
    diesel::insert_into(subscriptions::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    diesel::delete(subscriptions::table.find(id))
        .execute(conn)
        .map(drop)
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<SubscriptionRow>> {
    subscriptions::table
        .find(id)
        .select(SubscriptionRow::as_select())
        .first(conn)
        .optional()
}

/// The card's subscription, if its partner holds one.
pub fn find_for_card(
    conn: &mut DbConnection,
    partner_id: &str,
    iccid: &str,
) -> QueryResult<Option<SubscriptionRow>> {
    subscriptions::table
        .filter(subscriptions::iccid.eq(iccid))
        .filter(subscriptions::partner_id.eq(partner_id))
        .select(SubscriptionRow::as_select())
        .first(conn)
        .optional()
}

/// Locks the card's subscription row (if any) until the transaction ends, so that a
/// partner's change and the sweep's renewal of it happen one after the other: whoever
/// comes second reads what the first wrote.
pub fn lock_for_card(conn: &mut DbConnection, iccid: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(subscriptions::table.filter(subscriptions::iccid.eq(iccid)))
        .set(subscriptions::updated_at.eq(now))
        .execute(conn)
        .map(drop)
}

/// The subscription whose latest renewal is `order_id`, if any.
pub fn find_by_last_order(
    conn: &mut DbConnection,
    order_id: &str,
) -> QueryResult<Option<SubscriptionRow>> {
    subscriptions::table
        .filter(subscriptions::last_order_id.eq(order_id))
        .select(SubscriptionRow::as_select())
        .first(conn)
        .optional()
}

/// Any subscription of the card (whichever partner set it).
pub fn find_by_card(conn: &mut DbConnection, iccid: &str) -> QueryResult<Option<SubscriptionRow>> {
    subscriptions::table
        .filter(subscriptions::iccid.eq(iccid))
        .select(SubscriptionRow::as_select())
        .first(conn)
        .optional()
}

/// Writes every changeable field of `row` over the stored one.
pub fn save(conn: &mut DbConnection, row: &SubscriptionRow) -> QueryResult<()> {
    diesel::update(subscriptions::table.find(&row.id))
        .set((
            subscriptions::plan_id.eq(&row.plan_id),
            subscriptions::currency.eq(row.currency),
            subscriptions::renew_days_before_expiry.eq(row.renew_days_before_expiry),
            subscriptions::ends_after_renewals.eq(row.ends_after_renewals),
            subscriptions::status.eq(row.status),
            subscriptions::covered_until.eq(row.covered_until),
            subscriptions::next_renewal_at.eq(row.next_renewal_at),
            subscriptions::last_order_id.eq(&row.last_order_id),
            subscriptions::renewals.eq(row.renewals),
            subscriptions::failed_attempts.eq(row.failed_attempts),
            subscriptions::last_failure.eq(&row.last_failure),
            subscriptions::updated_at.eq(row.updated_at),
        ))
        .execute(conn)
        .map(drop)
}

/// Claims a due subscription for one renewal try: `false` when it is no longer active
/// and due (another instance renewed it, or its partner paused it, first). The row
/// stays locked until the claiming transaction ends.
pub fn claim_due(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> QueryResult<bool> {
    diesel::update(
        subscriptions::table
            .find(id)
            .filter(subscriptions::status.eq(SubscriptionStatus::Active))
            .filter(subscriptions::next_renewal_at.le(now)),
    )
    .set(subscriptions::updated_at.eq(now))
    .execute(conn)
    .map(|n| n == 1)
}

/// Ids of active subscriptions due at `now`, earliest first.
pub fn due(conn: &mut DbConnection, now: NaiveDateTime, limit: i64) -> QueryResult<Vec<String>> {
    subscriptions::table
        .filter(subscriptions::status.eq(SubscriptionStatus::Active))
        .filter(subscriptions::next_renewal_at.le(now))
        .select(subscriptions::id)
        .order((subscriptions::next_renewal_at, subscriptions::id))
        .limit(limit)
        .load(conn)
}

/// A partner's subscriptions, by id, optionally of one status.
pub fn list_for_partner(
    conn: &mut DbConnection,
    partner_id: &str,
    status: Option<SubscriptionStatus>,
    page: &PageRequest,
) -> QueryResult<Vec<SubscriptionRow>> {
    let mut query = subscriptions::table
        .filter(subscriptions::partner_id.eq(partner_id.to_owned()))
        .select(SubscriptionRow::as_select())
        .order(subscriptions::id)
        .limit(page.fetch_limit())
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(subscriptions::status.eq(status));
    }
    if let Some(after) = &page.after {
        query = query.filter(subscriptions::id.gt(after.clone()));
    }
    query.load(conn)
}
