//! Settling external payments: provider events applied exactly once per event id, and
//! the expiry of unpaid orders. Every state change goes through `orders::transition`.

use chrono::{NaiveDateTime, TimeDelta};

use crate::clock::Clock;
use crate::db::{Db, DbConnection};
use crate::error::{ApiError, TxError};
use crate::orders::model::{OrderRow, PaymentStatus};
use crate::orders::state::{OrderEvent, OrderStatus};
use crate::orders::{self, store as order_store};
use crate::payments::{events, EventKind, PaymentEvent, Payments};

use super::{mark_paid_in, refunds};

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
) -> Result<Option<OrderRow>, ApiError> {
    if let Some(id) = &event.order_id {
        if let Some(order) = order_store::find(conn, id)? {
            return Ok(Some(order));
        }
    }
    Ok(order_store::find_by_provider_payment(
        conn,
        provider,
        &event.provider_payment_id,
    )?)
}

fn apply(
    conn: &mut DbConnection,
    provider: &str,
    event: &PaymentEvent,
    smdp_address: &str,
    now: NaiveDateTime,
) -> Result<Settled, TxError> {
    // Claimed first: a concurrent delivery of the same event waits here, then finds it taken.
    events::claim(conn, provider, event, now)?;
    let settled = match (&event.kind, find_order(conn, provider, event)?) {
        (EventKind::Other(_), _) => Settled::Ignored("event type not used"),
        (_, None) => Settled::Ignored("unknown order"),
        (EventKind::Succeeded, Some(order)) => match order.status {
            OrderStatus::PendingPayment => {
                let mut order = order;
                order.provider_payment_id = Some(event.provider_payment_id.clone());
                mark_paid_in(conn, &order, smdp_address, now)?;
                Settled::Paid
            }
            OrderStatus::Expired | OrderStatus::Cancelled | OrderStatus::Failed
                if order.payment_status != PaymentStatus::Refunded =>
            {
                let owed =
                    orders::record_late_payment(conn, &order, &event.provider_payment_id, now)?;
                Settled::NeedsRefund(Box::new(owed))
            }
            _ => Settled::NoChange,
        },
        (EventKind::Failed, Some(order)) => match order.status {
            OrderStatus::PendingPayment => {
                orders::transition(conn, &order, OrderEvent::PaymentFailed, now)?;
                Settled::Failed
            }
            _ => Settled::NoChange,
        },
    };
    events::record_outcome(conn, provider, &event.event_id, settled.label())?;
    Ok(settled)
}

/// Applies a verified provider event in one transaction; a repeat of an event id is a
/// `Duplicate` and changes nothing. Money that arrived for a closed order is then sent
/// back through the provider (if it is down, the sweep retries).
pub async fn settle(
    db: &Db,
    payments: &Payments,
    clock: &Clock,
    provider: &'static str,
    event: PaymentEvent,
    smdp_address: String,
) -> Result<Settled, ApiError> {
    let now = clock.now_db();
    let settled = match db
        .transaction(move |conn| apply(conn, provider, &event, &smdp_address, now))
        .await
    {
        Ok(settled) => settled,
        Err(TxError::Conflict) => Settled::Duplicate,
        Err(TxError::Failed(e)) => return Err(e),
    };
    if let Settled::NeedsRefund(order) = &settled {
        let _ = refunds::refund_external(db, payments, clock, (**order).clone()).await;
    }
    Ok(settled)
}

const SWEEP_BATCH: i64 = 100;

/// Expires unpaid orders older than the TTL, through the transition function. Safe with
/// any number of instances: the transition's conditional update lets one win per order.
pub async fn expire_unpaid(
    db: &Db,
    clock: &Clock,
    ttl: std::time::Duration,
) -> Result<usize, ApiError> {
    let now = clock.now_db();
    let cutoff = now - TimeDelta::from_std(ttl).unwrap_or(TimeDelta::minutes(30));
    let due: Vec<String> = db
        .run(move |conn| {
            order_store::unpaid_before(conn, cutoff, SWEEP_BATCH).map_err(ApiError::from)
        })
        .await?;
    let mut expired = 0;
    for id in due {
        let outcome = db
            .transaction(move |conn| match order_store::find(conn, &id)? {
                Some(order) if order.status == OrderStatus::PendingPayment => {
                    orders::transition(conn, &order, OrderEvent::Expire, now).map(|_| true)
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
