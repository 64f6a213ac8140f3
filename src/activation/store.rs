//! Activation queries. State changes are conditional on the state read, so racing
//! confirmations and failures cannot both apply.

use chrono::NaiveDateTime;
use diesel::dsl::{exists, not};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::QueryFragment;

use super::{ActivationRow, ActivationStatus};
use crate::db::schema::{activations, orders};
use crate::db::DbConnection;
use crate::orders::model::OrderRow;
use crate::orders::state::OrderStatus;

pub fn insert(conn: &mut DbConnection, row: &ActivationRow) -> QueryResult<()> {
    diesel::insert_into(activations::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// The activation's `INSERT` as part of a larger PostgreSQL statement (see
/// `fulfilment::checkout`).
pub fn insert_part(row: &ActivationRow) -> Box<dyn QueryFragment<Pg> + '_> {
    Box::new(diesel::insert_into(activations::table).values(row))
}

pub fn find(conn: &mut DbConnection, order_id: &str) -> QueryResult<Option<ActivationRow>> {
    activations::table
        .find(order_id)
        .select(ActivationRow::as_select())
        .first(conn)
        .optional()
}

/// The activation whose eSIM code carries `matching_id`.
pub fn find_by_matching_id(
    conn: &mut DbConnection,
    matching_id: &str,
) -> QueryResult<Option<ActivationRow>> {
    activations::table
        .filter(activations::matching_id.eq(matching_id))
        .select(ActivationRow::as_select())
        .first(conn)
        .optional()
}

/// Moves a pending activation to `to` (with the reason of a failure); `false` when it was
/// not pending any more (another request got there first).
pub fn claim_pending(
    conn: &mut DbConnection,
    order_id: &str,
    to: ActivationStatus,
    failure_reason: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        activations::table
            .find(order_id)
            .filter(activations::status.eq(ActivationStatus::Pending)),
    )
    .set((
        activations::status.eq(to),
        activations::failure_reason.eq(failure_reason),
        activations::updated_at.eq(now),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// The term a confirmation created, and the dates it answers with.
pub struct ConfirmedTerm<'a> {
    pub term_id: &'a str,
    pub effective_from: NaiveDateTime,
    pub valid_until: NaiveDateTime,
    pub previous_valid_until: Option<NaiveDateTime>,
}

pub fn record_confirmation(
    conn: &mut DbConnection,
    order_id: &str,
    term: &ConfirmedTerm,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(activations::table.find(order_id))
        .set((
            activations::term_id.eq(term.term_id),
            activations::effective_from.eq(term.effective_from),
            activations::valid_until.eq(term.valid_until),
            activations::previous_valid_until.eq(term.previous_valid_until),
            activations::confirmed_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

/// Scheduled orders whose start has come, paid and without their activation yet,
/// earliest first.
pub fn started_without_activation(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<OrderRow>> {
    orders::table
        .filter(orders::status.eq(OrderStatus::Paid))
        .filter(orders::start_at.le(now))
        .filter(not(exists(
            activations::table.filter(activations::order_id.eq(orders::id)),
        )))
        .select(OrderRow::as_select())
        .order((orders::start_at, orders::id))
        .limit(limit)
        .load(conn)
}

/// Whether any renewal of the card was confirmed (its profile was installed then).
pub fn any_confirmed(conn: &mut DbConnection, iccid: &str) -> QueryResult<bool> {
    Ok(activations::table
        .filter(activations::iccid.eq(iccid))
        .filter(activations::status.eq(ActivationStatus::Confirmed))
        .count()
        .get_result::<i64>(conn)?
        > 0)
}

/// Locks the activation's row until the transaction ends (verification sends for one
/// order are counted one after another).
pub fn lock(conn: &mut DbConnection, order_id: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(activations::table.find(order_id))
        .set(activations::updated_at.eq(now))
        .execute(conn)
        .map(drop)
}

/// Records that the subscriber confirmed the SMS code: the code is released.
pub fn record_verification(
    conn: &mut DbConnection,
    order_id: &str,
    msisdn: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        activations::table
            .find(order_id)
            .filter(activations::verified_at.is_null()),
    )
    .set((
        activations::verified_at.eq(now),
        activations::verified_msisdn.eq(msisdn),
        activations::updated_at.eq(now),
    ))
    .execute(conn)
    .map(drop)
}
