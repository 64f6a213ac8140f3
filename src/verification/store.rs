//! Verification code queries. A check first reserves one of the code's tries with a
//! conditional update, so parallel guesses cannot exceed the limit.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::verification_codes;
use crate::db::DbConnection;

crate::db::stored_enum! {
    /// What became of a code sent.
    pub enum CodeStatus {
        /// Written before the provider was called: it may have arrived.
        Sending = "sending",
        Sent = "sent",
        /// The provider refused it or could not be reached; it never counts as sent.
        SendFailed = "send_failed",
        Verified = "verified",
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = verification_codes)]
pub struct CodeRow {
    pub id: String,
    pub order_id: String,
    pub msisdn: String,
    /// Keyed hash (HMAC-SHA256, hex) of order, number and code; never the code.
    pub code_hash: String,
    pub provider: String,
    pub provider_message_id: Option<String>,
    pub status: CodeStatus,
    /// Tries used on this code.
    pub checks: i32,
    pub sent_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// Serialises sends to one number, across orders and instances, until the transaction
/// ends (PostgreSQL: a transaction-scoped advisory lock on the number's hash; SQLite
/// has one writer already), so that the per-number limit is counted one send at a time.
pub fn lock_number(conn: &mut DbConnection, msisdn: &str) -> QueryResult<()> {
    match conn {
        DbConnection::Postgres(pg) => {
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind::<diesel::sql_types::Text, _>(msisdn)
                .execute(pg)
                .map(drop)
        }
        DbConnection::Sqlite(_) => Ok(()),
    }
}

pub fn insert(conn: &mut DbConnection, row: &CodeRow) -> QueryResult<()> {
    diesel::insert_into(verification_codes::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Sends made for an order since `since`, oldest first (every attempt counts).
pub fn sends_for_order(
    conn: &mut DbConnection,
    order_id: &str,
    since: NaiveDateTime,
) -> QueryResult<Vec<NaiveDateTime>> {
    verification_codes::table
        .filter(verification_codes::order_id.eq(order_id))
        .filter(verification_codes::sent_at.gt(since))
        .select(verification_codes::sent_at)
        .order(verification_codes::sent_at)
        .load(conn)
}

/// Sends made to a number since `since`, oldest first, whatever the order.
pub fn sends_to_number(
    conn: &mut DbConnection,
    msisdn: &str,
    since: NaiveDateTime,
) -> QueryResult<Vec<NaiveDateTime>> {
    verification_codes::table
        .filter(verification_codes::msisdn.eq(msisdn))
        .filter(verification_codes::sent_at.gt(since))
        .select(verification_codes::sent_at)
        .order(verification_codes::sent_at)
        .load(conn)
}

/// The order's latest code that may have reached the subscriber.
pub fn latest_for_order(conn: &mut DbConnection, order_id: &str) -> QueryResult<Option<CodeRow>> {
    verification_codes::table
        .filter(verification_codes::order_id.eq(order_id))
        .filter(verification_codes::status.ne(CodeStatus::SendFailed))
        .select(CodeRow::as_select())
        .order((
            verification_codes::sent_at.desc(),
            verification_codes::id.desc(),
        ))
        .first(conn)
        .optional()
}

pub fn record_send(
    conn: &mut DbConnection,
    id: &str,
    status: CodeStatus,
    provider_message_id: Option<&str>,
) -> QueryResult<()> {
    diesel::update(verification_codes::table.find(id))
        .set((
            verification_codes::status.eq(status),
            verification_codes::provider_message_id.eq(provider_message_id),
        ))
        .execute(conn)
        .map(drop)
}

/// Takes one try of the code, if it has one left and is not used up: `false` otherwise.
pub fn reserve_check(conn: &mut DbConnection, id: &str, max_checks: i32) -> QueryResult<bool> {
    diesel::update(
        verification_codes::table
            .find(id)
            .filter(verification_codes::checks.lt(max_checks))
            .filter(verification_codes::status.eq_any([CodeStatus::Sending, CodeStatus::Sent])),
    )
    .set(verification_codes::checks.eq(verification_codes::checks + 1))
    .execute(conn)
    .map(|n| n == 1)
}

pub fn mark_verified(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    diesel::update(verification_codes::table.find(id))
        .set(verification_codes::status.eq(CodeStatus::Verified))
        .execute(conn)
        .map(drop)
}
