//! Provider refunds as tracked objects: requested (by us) → pending (accepted by the
//! provider, final outcome to come by event) → succeeded | failed. Refunds made at the
//! provider (its dashboard) are learnt from its events and recorded the same way.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::schema::refunds;
use crate::db::{stored_uuid, DbConnection};
use crate::domain::{time, Currency, MinorUnits};
use crate::error::ApiError;

crate::db::stored_enum! {
    /// Where a refund stands.
    #[derive(ToSchema)]
    pub enum RefundStatus {
        /// Decided here; not yet accepted by the provider (retried while it is down).
        Requested = "requested",
        /// Accepted by the provider; its outcome comes later (Alipay, WeChat Pay).
        Pending = "pending",
        Succeeded = "succeeded",
        /// Final: `failure_reason` says why; nobody retries it.
        Failed = "failed",
    }
}

crate::db::stored_enum! {
    /// Who asked for a refund.
    #[derive(ToSchema)]
    pub enum RefundOrigin {
        /// This service (a cancellation, a late or mismatching payment).
        Simrenew = "simrenew",
        /// Made at the provider (e.g. in its dashboard), learnt from its events.
        Provider = "provider",
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refunds)]
pub struct RefundRow {
    pub id: String,
    pub order_id: String,
    pub provider: String,
    pub provider_payment_id: String,
    pub provider_refund_id: Option<String>,
    pub amount: MinorUnits,
    pub currency: Currency,
    pub status: RefundStatus,
    pub origin: RefundOrigin,
    pub failure_reason: Option<String>,
    pub attempts: i32,
    /// The attempt number in the provider idempotency key: it changes only after the
    /// provider answered a failure (an unanswered request may have been applied).
    pub key_attempt: i32,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A refund of an order's external payment.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Refund {
    pub id: uuid::Uuid,
    pub order_id: uuid::Uuid,
    #[schema(value_type = i64)]
    pub amount: MinorUnits,
    #[schema(value_type = String, example = "CNY")]
    pub currency: Currency,
    pub status: RefundStatus,
    pub origin: RefundOrigin,
    /// The provider's refund id, once it has one.
    pub provider_refund_id: Option<String>,
    /// Why it failed (final), or why the last attempt could not be made.
    pub failure_reason: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl TryFrom<&RefundRow> for Refund {
    type Error = ApiError;

    fn try_from(row: &RefundRow) -> Result<Self, ApiError> {
        Ok(Self {
            id: stored_uuid(&row.id)?,
            order_id: stored_uuid(&row.order_id)?,
            amount: row.amount,
            currency: row.currency,
            status: row.status,
            origin: row.origin,
            provider_refund_id: row.provider_refund_id.clone(),
            failure_reason: row.failure_reason.clone(),
            created_at: time::from_db(row.created_at),
            updated_at: time::from_db(row.updated_at),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundList {
    pub data: Vec<Refund>,
}

pub fn insert(conn: &mut DbConnection, row: &RefundRow) -> QueryResult<()> {
    diesel::insert_into(refunds::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<RefundRow>> {
    refunds::table
        .find(id)
        .select(RefundRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_provider_id(
    conn: &mut DbConnection,
    provider: &str,
    provider_refund_id: &str,
) -> QueryResult<Option<RefundRow>> {
    refunds::table
        .filter(refunds::provider.eq(provider))
        .filter(refunds::provider_refund_id.eq(provider_refund_id))
        .select(RefundRow::as_select())
        .first(conn)
        .optional()
}

/// An order's refunds, oldest first.
pub fn of_order(conn: &mut DbConnection, order_id: &str) -> QueryResult<Vec<RefundRow>> {
    refunds::table
        .filter(refunds::order_id.eq(order_id))
        .order((refunds::created_at.asc(), refunds::id.asc()))
        .select(RefundRow::as_select())
        .load(conn)
}

/// Ids of up to `limit` requested refunds whose next attempt is due.
pub fn due(conn: &mut DbConnection, now: NaiveDateTime, limit: i64) -> QueryResult<Vec<String>> {
    refunds::table
        .filter(refunds::status.eq(RefundStatus::Requested))
        .filter(refunds::next_attempt_at.le(now))
        .order(refunds::next_attempt_at.asc())
        .limit(limit)
        .select(refunds::id)
        .load(conn)
}

/// Writes the refund's new state, only if it is still `expected` (a racing event or
/// sweep that moved it first wins).
pub fn update_if_status(
    conn: &mut DbConnection,
    row: &RefundRow,
    expected: RefundStatus,
) -> QueryResult<bool> {
    diesel::update(
        refunds::table
            .find(&row.id)
            .filter(refunds::status.eq(expected)),
    )
    .set((
        refunds::status.eq(row.status),
        refunds::provider_refund_id.eq(&row.provider_refund_id),
        refunds::failure_reason.eq(&row.failure_reason),
        refunds::attempts.eq(row.attempts),
        refunds::key_attempt.eq(row.key_attempt),
        refunds::next_attempt_at.eq(row.next_attempt_at),
        refunds::updated_at.eq(row.updated_at),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// The sum of the refunds of one payment of an order, in its currency, in `statuses`
/// (refunds of another payment that came for the order, e.g. a mismatching one, are not
/// the order's money).
pub fn total_of_payment(
    conn: &mut DbConnection,
    order_id: &str,
    payment_id: &str,
    currency: Currency,
    statuses: &[RefundStatus],
) -> QueryResult<MinorUnits> {
    let amounts: Vec<MinorUnits> = refunds::table
        .filter(refunds::order_id.eq(order_id))
        .filter(refunds::provider_payment_id.eq(payment_id))
        .filter(refunds::currency.eq(currency))
        .filter(refunds::status.eq_any(statuses.to_vec()))
        .select(refunds::amount)
        .load(conn)?;
    amounts
        .into_iter()
        .try_fold(MinorUnits::ZERO, MinorUnits::checked_add)
        .ok_or_else(|| {
            diesel::result::Error::DeserializationError("refund total out of range".into())
        })
}

/// Whether any of the order's refunds is still on its way (requested or pending).
pub fn any_open(conn: &mut DbConnection, order_id: &str) -> QueryResult<bool> {
    Ok(refunds::table
        .filter(refunds::order_id.eq(order_id))
        .filter(refunds::status.eq_any([RefundStatus::Requested, RefundStatus::Pending]))
        .count()
        .get_result::<i64>(conn)?
        > 0)
}
