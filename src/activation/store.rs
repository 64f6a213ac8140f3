//! Activation queries. State changes are conditional on the state read, so racing
//! confirmations and failures cannot both apply.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{ActivationRow, ActivationStatus};
use crate::db::schema::activations;
use crate::db::DbConnection;

pub fn insert(conn: &mut DbConnection, row: &ActivationRow) -> QueryResult<()> {
    diesel::insert_into(activations::table)
        .values(row)
        .execute(conn)
        .map(drop)
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
