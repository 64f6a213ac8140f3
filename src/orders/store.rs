//! Order queries. Partner-facing lookups carry the partner id in the WHERE clause.

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::QueryFragment;
use diesel::sql_types::{BigInt, Nullable};

use super::model::{OrderFilter, OrderRow, PaymentStatus};
use super::state::OrderStatus;
use crate::business_metrics::{on_commit, Fact};
use crate::cards::model::CardRow;
use crate::catalog::model::PlanRow;
use crate::db::schema::{
    cards, orders, partners, plan_prices, plans, receipt_sequence, wallet_alert_thresholds,
    webhook_endpoints,
};
use crate::db::DbConnection;
use crate::domain::{Currency, MinorUnits};
use crate::events::endpoints::EndpointStatus;
use crate::pagination::PageRequest;

pub fn insert(conn: &mut DbConnection, row: &OrderRow) -> QueryResult<()> {
    diesel::insert_into(orders::table)
        .values(row)
        .execute(conn)?;
    count_status(row);
    Ok(())
}

/// The order's `INSERT` as part of a larger PostgreSQL statement (see
/// `fulfilment::checkout`); the caller counts it ([`count_status`]) once written.
pub fn insert_part(row: &OrderRow) -> Box<dyn QueryFragment<Pg> + '_> {
    Box::new(diesel::insert_into(orders::table).values(row))
}

/// The order's new status (and its payment, on entering `paid`) for the business
/// metrics, counted if the transaction commits.
pub fn count_status(row: &OrderRow) {
    let payment_method = row.payment_method.as_str();
    on_commit(Fact::OrderEntered {
        status: row.status.as_str(),
        payment_method,
    });
    if row.status == OrderStatus::Paid {
        on_commit(Fact::OrderPaid {
            currency: row.currency.code(),
            payment_method,
            minor_units: row.amount.get(),
        });
    }
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<OrderRow>> {
    orders::table
        .find(id)
        .select(OrderRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_for_partner(
    conn: &mut DbConnection,
    partner_id: &str,
    id: &str,
) -> QueryResult<Option<OrderRow>> {
    orders::table
        .filter(orders::id.eq(id))
        .filter(orders::partner_id.eq(partner_id))
        .select(OrderRow::as_select())
        .first(conn)
        .optional()
}

/// Newest first; the cursor is the last id seen.
pub fn list_for_partner(
    conn: &mut DbConnection,
    partner_id: &str,
    filter: &OrderFilter,
    page: &PageRequest,
) -> QueryResult<Vec<OrderRow>> {
    let mut query = orders::table
        .filter(orders::partner_id.eq(partner_id.to_owned()))
        .select(OrderRow::as_select())
        .order(orders::id.desc())
        .limit(page.fetch_limit())
        .into_boxed();
    if let Some(before) = &page.after {
        query = query.filter(orders::id.lt(before.clone()));
    }
    if let Some(status) = filter.status {
        query = query.filter(orders::status.eq(status));
    }
    if let Some(iccid) = &filter.iccid {
        query = query.filter(orders::iccid.eq(iccid.clone()));
    }
    if let Some(after) = filter.created_after {
        query = query.filter(orders::created_at.ge(after));
    }
    if let Some(before) = filter.created_before {
        query = query.filter(orders::created_at.lt(before));
    }
    query.load(conn)
}

/// The card's orders scheduled to start after `now` that may still start (unpaid or
/// paid).
pub fn count_scheduled(
    conn: &mut DbConnection,
    iccid: &str,
    now: NaiveDateTime,
) -> QueryResult<i64> {
    orders::table
        .filter(orders::iccid.eq(iccid))
        .filter(orders::start_at.gt(now))
        .filter(orders::status.eq_any([OrderStatus::PendingPayment, OrderStatus::Paid]))
        .count()
        .get_result(conn)
}

/// Writes `row` over the stored order only if the stored status is still `expected`:
/// `false` when another request changed it first.
pub fn update_if_status(
    conn: &mut DbConnection,
    row: &OrderRow,
    expected: OrderStatus,
) -> QueryResult<bool> {
    let updated = diesel::update(
        orders::table
            .find(&row.id)
            .filter(orders::status.eq(expected)),
    )
    .set((
        orders::status.eq(row.status),
        orders::payment_status.eq(row.payment_status),
        orders::receipt_number.eq(&row.receipt_number),
        orders::refunded_amount.eq(row.refunded_amount),
        orders::refunded_at.eq(row.refunded_at),
        orders::paid_at.eq(row.paid_at),
        orders::closed_at.eq(row.closed_at),
        orders::updated_at.eq(row.updated_at),
        orders::provider.eq(&row.provider),
        orders::provider_payment_id.eq(&row.provider_payment_id),
        orders::next_action.eq(&row.next_action),
        orders::provider_session_id.eq(&row.provider_session_id),
        orders::provider_attempt.eq(row.provider_attempt),
        orders::provider_closed_at.eq(row.provider_closed_at),
        orders::payment_issue.eq(&row.payment_issue),
    ))
    .execute(conn)?;
    let written = updated == 1;
    if written && row.status != expected {
        count_status(row);
    }
    Ok(written)
}

/// The order a provider's payment belongs to, by the provider's payment id.
pub fn find_by_provider_payment(
    conn: &mut DbConnection,
    provider: &str,
    provider_payment_id: &str,
) -> QueryResult<Option<OrderRow>> {
    orders::table
        .filter(orders::provider.eq(provider))
        .filter(orders::provider_payment_id.eq(provider_payment_id))
        .select(OrderRow::as_select())
        .first(conn)
        .optional()
}

/// Ids of up to `limit` orders still unpaid that were created before `cutoff`, oldest first.
pub fn unpaid_before(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<String>> {
    orders::table
        .filter(orders::status.eq(OrderStatus::PendingPayment))
        .filter(orders::created_at.lt(cutoff))
        .order(orders::created_at)
        .limit(limit)
        .select(orders::id)
        .load(conn)
}

/// When the oldest order still awaiting payment was created (for the settlement lag).
pub fn oldest_unpaid(conn: &mut DbConnection) -> QueryResult<Option<NaiveDateTime>> {
    orders::table
        .filter(orders::status.eq(OrderStatus::PendingPayment))
        .select(diesel::dsl::min(orders::created_at))
        .first(conn)
}

/// The order whose Checkout Session this is.
pub fn find_by_provider_session(
    conn: &mut DbConnection,
    provider: &str,
    session_id: &str,
) -> QueryResult<Option<OrderRow>> {
    orders::table
        .filter(orders::provider.eq(provider))
        .filter(orders::provider_session_id.eq(session_id))
        .select(OrderRow::as_select())
        .first(conn)
        .optional()
}

/// Up to `limit` orders that ended unpaid while their provider payment may still be
/// payable (not closed at the provider yet), least recently tried first.
pub fn unclosed_provider_payments(
    conn: &mut DbConnection,
    limit: i64,
) -> QueryResult<Vec<OrderRow>> {
    orders::table
        .filter(orders::status.eq_any([
            OrderStatus::Cancelled,
            OrderStatus::Expired,
            OrderStatus::Failed,
        ]))
        .filter(orders::payment_status.eq(PaymentStatus::Pending))
        .filter(orders::provider.is_not_null())
        .filter(orders::provider_closed_at.is_null())
        .order(orders::updated_at.asc())
        .limit(limit)
        .select(OrderRow::as_select())
        .load(conn)
}

/// Records that the order's provider payment can no longer be paid.
pub fn mark_provider_closed(
    conn: &mut DbConnection,
    id: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(orders::table.find(id))
        .set(orders::provider_closed_at.eq(now))
        .execute(conn)
        .map(drop)
}

/// A provider failed this order's payment request: the next request uses a new
/// provider idempotency key (the provider replays a saved failure for the old one).
pub fn next_provider_attempt(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    diesel::update(orders::table.find(id))
        .set(orders::provider_attempt.eq(orders::provider_attempt + 1))
        .execute(conn)
        .map(drop)
}

/// Takes the order's row lock for the rest of the transaction (on PostgreSQL; SQLite
/// writers take turns anyway): changes to one order made together see each other.
pub fn lock(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    diesel::update(orders::table.find(id))
        .set(orders::updated_at.eq(orders::updated_at))
        .execute(conn)
        .map(drop)
}

/// Moves an order to the back of a sweep's queue.
pub fn touch(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(orders::table.find(id))
        .set(orders::updated_at.eq(now))
        .execute(conn)
        .map(drop)
}

/// The next receipt number, `R-<day>-<n>`: `n` grows across days and instances and is
/// never handed out twice (a PostgreSQL sequence; on SQLite, whose one writer needs no
/// more, a counter row). A number taken by an order that rolled back is skipped, so the
/// numbers are unique and increasing but may have gaps. Unlike a counter row per day,
/// a sequence takes no row lock, so orders of different partners do not wait for each
/// other here.
pub fn next_receipt_number(conn: &mut DbConnection, at: NaiveDateTime) -> QueryResult<String> {
    let next: i64 = match conn {
        DbConnection::Postgres(pg) => diesel::select(nextval("receipt_numbers")).get_result(pg)?,
        DbConnection::Sqlite(_) => diesel::update(receipt_sequence::table.find(1))
            .set(receipt_sequence::last.eq(receipt_sequence::last + 1))
            .returning(receipt_sequence::last)
            .get_result(conn)?,
    };
    Ok(receipt_number(next, at))
}

/// Receipt number `n` as issued on the UTC day of `at`.
pub fn receipt_number(n: i64, at: NaiveDateTime) -> String {
    format!("R-{}-{n:06}", at.format("%Y%m%d"))
}

diesel::define_sql_function! {
    /// PostgreSQL's `nextval(sequence)`.
    fn nextval(sequence: diesel::sql_types::Text) -> diesel::sql_types::BigInt;
}

/// A partner's card with what ordering `plan_id` in `currency` for it needs: the
/// partner's verification setting and low-balance alert, the plan (if it exists) and its
/// price (if it has one), in one query.
pub fn card_and_offer(
    conn: &mut DbConnection,
    partner_id: &str,
    iccid: &str,
    plan_id: &str,
    currency: Currency,
    take_receipt_number: bool,
) -> QueryResult<Option<CardOffer>> {
    // The one query and its row, the last column the next receipt number or NULL.
    macro_rules! offer {
        ($receipt:expr) => {
            cards::table
                .inner_join(partners::table.on(partners::id.eq(cards::partner_id)))
                .left_join(plans::table.on(plans::id.eq(plan_id.to_owned())))
                .left_join(
                    plan_prices::table.on(plan_prices::plan_id
                        .eq(plans::id)
                        .and(plan_prices::currency.eq(currency.code().to_owned()))),
                )
                .left_join(
                    wallet_alert_thresholds::table.on(wallet_alert_thresholds::partner_id
                        .eq(cards::partner_id)
                        .and(wallet_alert_thresholds::currency.eq(currency.code().to_owned()))),
                )
                .filter(cards::iccid.eq(iccid))
                .filter(cards::partner_id.eq(partner_id))
                .select((
                    CardRow::as_select(),
                    partners::verify_subscriber_before_release,
                    Option::<PlanRow>::as_select(),
                    plan_prices::amount.nullable(),
                    wallet_alert_thresholds::amount.nullable(),
                    diesel::dsl::exists(
                        webhook_endpoints::table
                            .filter(webhook_endpoints::partner_id.eq(cards::partner_id))
                            .filter(webhook_endpoints::status.eq(EndpointStatus::Enabled)),
                    ),
                    $receipt,
                ))
                .first::<CardOffer>(conn)
                .optional()?
        };
    }
    // On PostgreSQL the number comes with the read: one round trip less.
    Ok(
        if take_receipt_number && matches!(conn, DbConnection::Postgres(_)) {
            offer!(nextval("receipt_numbers").nullable())
        } else {
            offer!(None::<i64>.into_sql::<Nullable<BigInt>>())
        },
    )
}

/// What [`card_and_offer`] found: its row, field by field in the order it is selected.
#[derive(Queryable)]
pub struct CardOffer {
    pub card: CardRow,
    pub verify_subscriber: bool,
    pub plan: Option<PlanRow>,
    pub price: Option<MinorUnits>,
    /// The partner's low-balance alert amount in the order's currency (notifications'
    /// setting, read here to save a round trip on the order's path).
    pub wallet_alert: Option<MinorUnits>,
    /// Whether the partner has an enabled webhook endpoint: without one, the order's
    /// event has no delivery to fan out and its recipients need no read.
    pub has_webhook_endpoints: bool,
    /// The next receipt number's `n`, when asked for and read with the offer (PostgreSQL).
    pub receipt_number: Option<i64>,
}
