//! Settling external payments by the events the provider documents for each flow: a
//! success pays the order only when its amount, currency and payment ids are the ones
//! stored for it; a declined attempt is written down (the payer can still pay); a final
//! failure fails the order; refund events move refunds on. Each event id is applied once.
//! Every state change goes through `orders::transition`.

use chrono::{NaiveDateTime, TimeDelta};

use crate::clock::Clock;
use crate::db::{Db, DbConnection};
use crate::domain::{Currency, MinorUnits, Money};
use crate::error::{ApiError, TxError};
use crate::orders::model::{OrderRow, PaymentStatus};
use crate::orders::state::{OrderEvent, OrderStatus};
use crate::orders::{self, store as order_store};
use crate::payments::{events, EventKind, PaymentEvent, Payments};

use super::refunds::{self, ReportedRefund};
use super::{cancellation, mark_paid_in};

/// What an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Paid,
    Failed,
    /// A declined attempt, written on the order; the payer can still pay.
    AttemptFailed,
    /// A refund moved on.
    Refund,
    /// This event id was applied before.
    Duplicate,
    /// The order is past this event (a success after it was paid, a failure after a success).
    NoChange,
    /// Money arrived for an order that is closed: it goes back through the provider.
    NeedsRefund,
    /// Money arrived that does not match the order (amount, currency or payment): it is
    /// recorded on the order and goes back; the order is not paid by it.
    Mismatch,
    /// Nothing to do: an unknown order or an event type this service does not use.
    Ignored(&'static str),
}

impl Settled {
    pub fn label(&self) -> &'static str {
        match self {
            Settled::Paid => "paid",
            Settled::Failed => "failed",
            Settled::AttemptFailed => "attempt_failed",
            Settled::Refund => "refund",
            Settled::Duplicate => "duplicate",
            Settled::NoChange => "no_change",
            Settled::NeedsRefund => "refund_owed",
            Settled::Mismatch => "mismatch",
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
    if let Some(session) = &event.session_id {
        if let Some(order) = order_store::find_by_provider_session(conn, provider, session)? {
            return Ok(Some(order));
        }
    }
    match &event.payment_id {
        Some(payment) => Ok(order_store::find_by_provider_payment(
            conn, provider, payment,
        )?),
        None => Ok(None),
    }
}

/// Why a success cannot pay `order`, if it cannot: another provider, another session or
/// payment than the one stored at checkout, another amount or currency.
fn mismatch(
    order: &OrderRow,
    provider: &str,
    event: &PaymentEvent,
    amount: MinorUnits,
    currency: Option<Currency>,
) -> Option<String> {
    let paid = match currency {
        Some(currency) => Money::new(amount, currency).to_string(),
        None => format!("{amount} minor units of an unknown currency"),
    };
    let expected = Money::new(order.amount, order.currency);
    let payment = event.payment_id.as_deref().unwrap_or("-");
    if order.provider.as_deref() != Some(provider) {
        return Some(format!(
            "a {provider} payment ({payment}) for an order paid another way"
        ));
    }
    let same_payment = match (&order.provider_session_id, &event.session_id) {
        (Some(stored), Some(seen)) => stored == seen,
        (None, None) => order.provider_payment_id.as_deref() == event.payment_id.as_deref(),
        _ => false,
    };
    if !same_payment {
        return Some(format!(
            "a payment of {paid} ({payment}) that is not the one made for this order"
        ));
    }
    if amount != order.amount || currency != Some(order.currency) {
        return Some(format!(
            "a payment of {paid} ({payment}) for an order of {expected}"
        ));
    }
    None
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
    let order = find_order(conn, provider, event)?;
    let settled = match (&event.kind, order) {
        (EventKind::Other(_), _) => Settled::Ignored("event type not used"),
        (_, None) => Settled::Ignored("unknown order"),
        // A card order is settled by its Checkout Session's events; the PaymentIntent
        // behind the session reports too, and is not a second payment.
        (
            EventKind::Succeeded { .. } | EventKind::Failed | EventKind::AttemptFailed { .. },
            Some(order),
        ) if order.provider_session_id.is_some() && event.session_id.is_none() => {
            Settled::Ignored("settled by its checkout session's events")
        }
        (EventKind::Succeeded { amount, currency }, Some(order)) => settle_success(
            conn,
            provider,
            event,
            &order,
            *amount,
            *currency,
            smdp_address,
            now,
        )?,
        (EventKind::AttemptFailed { reason }, Some(order)) => match order.status {
            OrderStatus::PendingPayment => {
                orders::record_payment_issue(
                    conn,
                    &order,
                    &format!("the last payment attempt was declined: {reason}"),
                    now,
                )?;
                Settled::AttemptFailed
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
        (
            EventKind::Refund {
                refund_id,
                our_refund_id,
                status,
                amount,
                failure_reason,
            },
            Some(order),
        ) => {
            let payment_id = event
                .payment_id
                .as_deref()
                .or(order.provider_payment_id.as_deref())
                .unwrap_or_default();
            refunds::record_provider_refund_in(
                conn,
                &order,
                &ReportedRefund {
                    provider,
                    payment_id,
                    provider_refund_id: refund_id,
                    our_refund_id: our_refund_id.as_deref(),
                    status: *status,
                    amount: *amount,
                    failure_reason: failure_reason.clone(),
                },
                now,
            )?;
            Settled::Refund
        }
    };
    events::record_outcome(conn, provider, &event.event_id, settled.label())?;
    Ok(settled)
}

#[allow(clippy::too_many_arguments)]
fn settle_success(
    conn: &mut DbConnection,
    provider: &str,
    event: &PaymentEvent,
    order: &OrderRow,
    amount: MinorUnits,
    currency: Option<Currency>,
    smdp_address: &str,
    now: NaiveDateTime,
) -> Result<Settled, ApiError> {
    let money_moved = event.payment_id.clone();
    if let Some(why) = mismatch(order, provider, event, amount, currency) {
        tracing::warn!(order_id = %order.id, issue = %why, "a payment does not match its order");
        let noted = orders::record_payment_issue(
            conn,
            order,
            &format!("{why}; it is refunded and did not pay the order"),
            now,
        )?;
        // The money goes back to whoever paid it, from the payment it came with.
        if let Some(payment_id) = money_moved.filter(|_| amount.is_positive()) {
            let mut refund_order = noted.clone();
            refund_order.provider = Some(provider.to_owned());
            if let Some(currency) = currency {
                refund_order.currency = currency;
            }
            refunds::request_provider_refund_in(conn, &refund_order, &payment_id, amount, now)?;
        }
        return Ok(Settled::Mismatch);
    }
    match order.status {
        OrderStatus::PendingPayment => {
            let mut order = order.clone();
            order.provider_payment_id = money_moved;
            mark_paid_in(conn, &order, smdp_address, now)?;
            Ok(Settled::Paid)
        }
        OrderStatus::Expired | OrderStatus::Cancelled | OrderStatus::Failed
            if order.payment_status == PaymentStatus::Pending =>
        {
            let payment_id = money_moved
                .ok_or_else(|| ApiError::internal("a success without its payment id"))?;
            let owed = orders::record_late_payment(conn, order, &payment_id, now)?;
            refunds::request_provider_refund_in(conn, &owed, &payment_id, owed.amount, now)?;
            Ok(Settled::NeedsRefund)
        }
        _ => Ok(Settled::NoChange),
    }
}

/// Applies a verified provider event in one transaction; a repeat of an event id is a
/// `Duplicate` and changes nothing. Money owed back (a late or mismatching payment) is
/// then refunded through the provider (if it is down, the sweep retries).
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
        .transaction(move |conn| {
            let settled = apply(conn, provider, &event, &smdp_address, now)?;
            let order_id = match &settled {
                Settled::NeedsRefund | Settled::Mismatch => {
                    find_order(conn, provider, &event)?.map(|o| o.id)
                }
                _ => None,
            };
            Ok::<_, TxError>((settled, order_id))
        })
        .await
    {
        Ok(settled) => settled,
        Err(TxError::Conflict) => (Settled::Duplicate, None),
        Err(TxError::Failed(e)) => return Err(e),
    };
    if let (_, Some(order_id)) = &settled {
        if let Err(e) = refunds::make_refunds_of(db, payments, clock, order_id.clone()).await {
            tracing::warn!(error = %e, "an owed refund was not made yet; the sweep retries");
        }
    }
    Ok(settled.0)
}

const SWEEP_BATCH: i64 = 100;

/// Expires unpaid orders older than the TTL, through the transition function. Safe with
/// any number of instances: the transition's conditional update lets one win per order.
pub async fn expire_unpaid(
    db: &Db,
    payments: &Payments,
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
                    orders::transition(conn, &order, OrderEvent::Expire, now).map(Some)
                }
                _ => Ok(None),
            })
            .await;
        match outcome {
            Ok(Some(order)) => {
                expired += 1;
                cancellation::after_unpaid_end(db, payments, clock, &order).await;
            }
            Ok(None) => {}
            // Another instance or a payment got there first.
            Err(ApiError::Problem { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(expired)
}
