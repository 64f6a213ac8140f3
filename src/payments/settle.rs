//! Settling external payments: provider events applied exactly once per event id, the
//! expiry of unpaid orders, and refunds of money that arrived for a closed order.
//! Every state change goes through `orders::transition`.

use chrono::TimeDelta;
use diesel::prelude::*;

use super::{EventKind, PaymentEvent, Payments};
use crate::activation;
use crate::cards::store as card_store;
use crate::db::schema::{orders, payment_events};
use crate::db::{Db, DbConnection};
use crate::domain::time;
use crate::error::{ApiError, TxError};
use crate::orders::model::{OrderRow, PaymentStatus};
use crate::orders::state::{OrderEvent, OrderStatus};
use crate::orders::{self as order_rules, store as order_store};

/// What an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Paid,
    Failed,
    /// This event id was applied before.
    Duplicate,
    /// The order is past this event (a success after it was paid, a failure after a success).
    NoChange,
    /// Money arrived for an order that is closed: it goes back through the provider.
    NeedsRefund(Box<OrderRow>),
    /// Nothing to do: an unknown order or an event type this service does not use.
    Ignored(&'static str),
}

impl Settled {
    pub fn label(&self) -> &'static str {
        match self {
            Settled::Paid => "paid",
            Settled::Failed => "failed",
            Settled::Duplicate => "duplicate",
            Settled::NoChange => "no_change",
            Settled::NeedsRefund(_) => "refund",
            Settled::Ignored(_) => "ignored",
        }
    }
}

fn find_order(
    conn: &mut DbConnection,
    provider: &str,
    event: &PaymentEvent,
) -> QueryResult<Option<OrderRow>> {
    if let Some(id) = &event.order_id {
        if let Some(order) = order_store::find(conn, id)? {
            return Ok(Some(order));
        }
    }
    orders::table
        .filter(orders::provider.eq(provider))
        .filter(orders::provider_payment_id.eq(&event.provider_payment_id))
        .select(OrderRow::as_select())
        .first(conn)
        .optional()
}

/// Makes a freshly paid order's activation.
pub fn mark_paid(
    conn: &mut DbConnection,
    order: &OrderRow,
    smdp_address: &str,
) -> Result<OrderRow, ApiError> {
    let paid = order_rules::transition(conn, order, OrderEvent::PaymentSucceeded)?;
    let card = card_store::find_card(conn, &paid.iccid)?
        .ok_or_else(|| ApiError::internal("an order's card is missing"))?;
    activation::create_pending(conn, &paid, card.card_type(), smdp_address)?;
    Ok(paid)
}

fn apply(
    conn: &mut DbConnection,
    provider: &str,
    event: &PaymentEvent,
    smdp_address: &str,
) -> Result<Settled, TxError> {
    let now = time::to_db(time::now());
    // Claimed first: a concurrent delivery of the same event waits here, then finds it taken.
    diesel::insert_into(payment_events::table)
        .values((
            payment_events::provider.eq(provider),
            payment_events::event_id.eq(&event.event_id),
            payment_events::order_id.eq(&event.order_id),
            payment_events::kind.eq(match &event.kind {
                EventKind::Succeeded => "succeeded",
                EventKind::Failed => "failed",
                EventKind::Other(kind) => kind.as_str(),
            }),
            payment_events::outcome.eq("applying"),
            payment_events::received_at.eq(now),
        ))
        .execute(conn)?;
    let settled = match (&event.kind, find_order(conn, provider, event)?) {
        (EventKind::Other(_), _) => Settled::Ignored("event type not used"),
        (_, None) => Settled::Ignored("unknown order"),
        (EventKind::Succeeded, Some(order)) => {
            let mut order = order;
            order.provider_payment_id = Some(event.provider_payment_id.clone());
            match order.status() {
                OrderStatus::PendingPayment => {
                    mark_paid(conn, &order, smdp_address)?;
                    Settled::Paid
                }
                OrderStatus::Expired | OrderStatus::Cancelled | OrderStatus::Failed
                    if order.payment_status != PaymentStatus::Refunded.as_str() =>
                {
                    order.payment_status = PaymentStatus::Succeeded.as_str().to_owned();
                    order.updated_at = now;
                    order_store::update_if_status(conn, &order, &order.status.clone())?;
                    Settled::NeedsRefund(Box::new(order))
                }
                _ => Settled::NoChange,
            }
        }
        (EventKind::Failed, Some(order)) => match order.status() {
            OrderStatus::PendingPayment => {
                order_rules::transition(conn, &order, OrderEvent::PaymentFailed)?;
                Settled::Failed
            }
            _ => Settled::NoChange,
        },
    };
    diesel::update(payment_events::table.find((provider, &event.event_id)))
        .set(payment_events::outcome.eq(settled.label()))
        .execute(conn)?;
    Ok(settled)
}

/// Applies a verified provider event in one transaction; a repeat of an event id is a
/// `Duplicate` and changes nothing.
pub async fn apply_event(
    db: &Db,
    provider: &'static str,
    event: PaymentEvent,
    smdp_address: String,
) -> Result<Settled, ApiError> {
    match db
        .transaction(move |conn| apply(conn, provider, &event, &smdp_address))
        .await
    {
        Ok(settled) => Ok(settled),
        Err(TxError::Conflict) => Ok(Settled::Duplicate),
        Err(TxError::Failed(e)) => Err(e),
    }
}

/// Returns an external payment through its provider and records the refund on the order.
/// On a provider failure the order keeps `payment.status: succeeded` and the sweep tries again.
pub async fn refund_external(
    db: &Db,
    payments: &Payments,
    order: OrderRow,
) -> Result<OrderRow, ApiError> {
    let provider = order
        .provider
        .as_deref()
        .and_then(|name| payments.by_name(name))
        .ok_or_else(|| ApiError::internal("the order's payment provider is not configured"))?;
    let refund_id = provider.refund(&order).await.map_err(|e| {
        tracing::warn!(order_id = %order.id, error = %e, "refund not made yet; the sweep retries");
        ApiError::Unavailable(e.to_string())
    })?;
    db.transaction(move |conn| {
        let current = order_store::find(conn, &order.id)?
            .ok_or_else(|| ApiError::internal("order vanished"))?;
        if current.payment_status == PaymentStatus::Refunded.as_str() {
            return Ok(current);
        }
        let now = time::to_db(time::now());
        let mut row = current.clone();
        row.payment_status = PaymentStatus::Refunded.as_str().to_owned();
        row.refunded_amount = Some(row.amount);
        row.refunded_at = Some(now);
        row.provider_refund_id = Some(refund_id);
        row.updated_at = now;
        order_store::update_if_status(conn, &row, &current.status)?;
        Ok(row)
    })
    .await
}

const SWEEP_BATCH: i64 = 100;

/// Expires unpaid orders older than the TTL, through the transition function. Safe with
/// any number of instances: the transition's conditional update lets one win per order.
pub async fn expire_unpaid(db: &Db, ttl: std::time::Duration) -> Result<usize, ApiError> {
    let cutoff =
        time::to_db(time::now()) - TimeDelta::from_std(ttl).unwrap_or(TimeDelta::minutes(30));
    let due: Vec<String> = db
        .run(move |conn| {
            orders::table
                .filter(orders::status.eq(OrderStatus::PendingPayment.as_str()))
                .filter(orders::created_at.lt(cutoff))
                .order(orders::created_at)
                .limit(SWEEP_BATCH)
                .select(orders::id)
                .load(conn)
                .map_err(ApiError::from)
        })
        .await?;
    let mut expired = 0;
    for id in due {
        let outcome = db
            .transaction(move |conn| match order_store::find(conn, &id)? {
                Some(order) if order.status() == OrderStatus::PendingPayment => {
                    order_rules::transition(conn, &order, OrderEvent::Expire).map(|_| true)
                }
                _ => Ok(false),
            })
            .await;
        match outcome {
            Ok(true) => expired += 1,
            Ok(false) => {}
            // Another instance or a payment got there first.
            Err(ApiError::Problem { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(expired)
}

/// Retries refunds owed on closed orders whose external payment succeeded.
pub async fn refund_owed(db: &Db, payments: &Payments) -> Result<usize, ApiError> {
    let owed: Vec<OrderRow> = db
        .run(|conn| {
            orders::table
                .filter(orders::status.eq_any(["cancelled", "expired", "failed"]))
                .filter(orders::payment_status.eq(PaymentStatus::Succeeded.as_str()))
                .filter(orders::provider.is_not_null())
                .order(orders::updated_at.asc())
                .limit(SWEEP_BATCH)
                .select(OrderRow::as_select())
                .load(conn)
                .map_err(ApiError::from)
        })
        .await?;
    let mut refunded = 0;
    for order in owed {
        let id = order.id.clone();
        if refund_external(db, payments, order).await.is_ok() {
            refunded += 1;
        } else {
            // To the back of the queue, so refunds that keep failing cannot starve the rest.
            let now = time::to_db(time::now());
            let _ = db
                .transaction(move |conn| {
                    diesel::update(orders::table.find(&id))
                        .set(orders::updated_at.eq(now))
                        .execute(conn)
                        .map_err(ApiError::from)
                })
                .await;
        }
    }
    Ok(refunded)
}
