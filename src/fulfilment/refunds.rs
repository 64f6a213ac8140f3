//! Giving money back: to the wallet (in the transaction of the change that owes it), or
//! through the payment provider as a tracked refund (requested → pending → succeeded |
//! failed), made after the change committed and retried by the sweep, a bounded number
//! of times. `orders::record_refund` is the one place a refund is written on the order.

use chrono::{NaiveDateTime, TimeDelta};

use crate::clock::Clock;
use crate::db::{Db, DbConnection};
use crate::domain::{MinorUnits, Money, PaymentMethod};
use crate::error::ApiError;
use crate::orders::model::{OrderRow, PaymentStatus};
use crate::orders::{self, store as order_store};
use crate::payments::refunds::{self as refund_store, RefundOrigin, RefundRow, RefundStatus};
use crate::payments::{Payments, ProviderError, ProviderRefundStatus, RefundRequest};
use crate::wallet::{self, EntryKind, Movement};

/// After this many attempts the provider could not be reached for, a refund fails for
/// good (with the reason) instead of being retried forever.
pub const MAX_REFUND_ATTEMPTS: i32 = 6;
/// Wait before attempt n+1 after n failed: 1 min, 5 min, 30 min, 2 h, 6 h.
const RETRY_DELAYS_MIN: [i64; 5] = [1, 5, 30, 120, 360];

/// How long after the payment a method can still be refunded: Alipay 90 days
/// (https://docs.stripe.com/payments/alipay), WeChat Pay 180 days
/// (https://docs.stripe.com/payments/wechat-pay).
fn refund_window(method: PaymentMethod) -> Option<TimeDelta> {
    match method {
        PaymentMethod::Alipay => Some(TimeDelta::days(90)),
        PaymentMethod::WechatPay => Some(TimeDelta::days(180)),
        PaymentMethod::Card | PaymentMethod::Wallet => None,
    }
}

/// Returns a wallet payment to the wallet: one refund ledger entry, recorded on the order.
/// Does nothing for orders not paid from the wallet. Call in the transaction of the
/// change that owes the refund.
pub fn refund_to_wallet_in(
    conn: &mut DbConnection,
    order: &OrderRow,
    now: NaiveDateTime,
) -> Result<OrderRow, ApiError> {
    if order.payment_method != PaymentMethod::Wallet
        || order.payment_status != PaymentStatus::Succeeded
    {
        return Ok(order.clone());
    }
    wallet::add(
        conn,
        Movement {
            partner_id: &order.partner_id,
            money: Money::new(order.amount, order.currency),
            kind: EntryKind::Refund,
            order_id: Some(&order.id),
            reference: order.receipt_number.as_deref(),
        },
        now,
    )?;
    orders::record_refund(conn, order, order.amount, now)
}

/// Decides that `amount` of the provider payment `payment_id` goes back to the payer: a
/// `requested` refund, in the transaction of the change that owes it. It is made by
/// [`make_refund`] once that transaction committed (or by the sweep).
pub fn request_provider_refund_in(
    conn: &mut DbConnection,
    order: &OrderRow,
    payment_id: &str,
    amount: MinorUnits,
    now: NaiveDateTime,
) -> Result<RefundRow, ApiError> {
    let provider = order
        .provider
        .clone()
        .ok_or_else(|| ApiError::internal("a provider refund of a wallet order"))?;
    let row = RefundRow {
        id: uuid::Uuid::now_v7().to_string(),
        order_id: order.id.clone(),
        provider,
        provider_payment_id: payment_id.to_owned(),
        provider_refund_id: None,
        amount,
        currency: order.currency,
        status: RefundStatus::Requested,
        origin: RefundOrigin::Simrenew,
        failure_reason: None,
        attempts: 0,
        key_attempt: 0,
        next_attempt_at: Some(now),
        created_at: now,
        updated_at: now,
    };
    refund_store::insert(conn, &row)?;
    Ok(row)
}

/// The part of the order's own payment not yet refunded nor on its way back.
fn refundable_rest(
    conn: &mut DbConnection,
    order: &OrderRow,
    payment_id: &str,
) -> Result<MinorUnits, ApiError> {
    let taken = refund_store::total_of_payment(
        conn,
        &order.id,
        payment_id,
        order.currency,
        &[
            RefundStatus::Requested,
            RefundStatus::Pending,
            RefundStatus::Succeeded,
        ],
    )?;
    Ok(order.amount.checked_sub(taken).unwrap_or(MinorUnits::ZERO))
}

/// Decides the refund of what is left of the order's external payment (all of it, unless
/// part was refunded at the provider already); nothing when nothing is left.
pub fn request_rest_in(
    conn: &mut DbConnection,
    order: &OrderRow,
    now: NaiveDateTime,
) -> Result<Option<RefundRow>, ApiError> {
    let payment_id = order
        .provider_payment_id
        .clone()
        .ok_or_else(|| ApiError::internal("a paid external order without its payment id"))?;
    let rest = refundable_rest(conn, order, &payment_id)?;
    if !rest.is_positive() {
        return Ok(None);
    }
    request_provider_refund_in(conn, order, &payment_id, rest, now).map(Some)
}

/// Recomputes what of the order's own payment went back (its succeeded refunds, not those
/// of another payment that came for it) and records it; a completed order refunded in
/// full becomes `refunded`. The order's row is locked first, so that two refunds
/// settling at once each count the other.
pub fn apply_refund_totals_in(
    conn: &mut DbConnection,
    order_id: &str,
    now: NaiveDateTime,
) -> Result<OrderRow, ApiError> {
    order_store::lock(conn, order_id)?;
    let order =
        order_store::find(conn, order_id)?.ok_or_else(|| ApiError::internal("order vanished"))?;
    // Only money that paid the order is the order's refund (a mismatching payment given
    // back never paid it).
    let paid_by_it = matches!(
        order.payment_status,
        PaymentStatus::Succeeded | PaymentStatus::Refunded
    );
    let Some(payment_id) = order.provider_payment_id.clone().filter(|_| paid_by_it) else {
        return Ok(order);
    };
    let total = refund_store::total_of_payment(
        conn,
        order_id,
        &payment_id,
        order.currency,
        &[RefundStatus::Succeeded],
    )?;
    orders::record_refund(conn, &order, total, now)
}

/// Writes a refund's new state (if it is still `from`) and, when it succeeded, the
/// order's new refunded total.
fn settle_refund_in(
    conn: &mut DbConnection,
    updated: &RefundRow,
    from: RefundStatus,
    now: NaiveDateTime,
) -> Result<RefundRow, ApiError> {
    if !refund_store::update_if_status(conn, updated, from)? {
        return refund_store::find(conn, &updated.id)?
            .ok_or_else(|| ApiError::internal("refund vanished"));
    }
    if updated.status == RefundStatus::Succeeded {
        apply_refund_totals_in(conn, &updated.order_id, now)?;
    }
    if updated.status == RefundStatus::Failed {
        tracing::warn!(refund_id = %updated.id, order_id = %updated.order_id,
            reason = updated.failure_reason.as_deref().unwrap_or(""), "refund failed for good");
    }
    Ok(updated.clone())
}

/// Makes a requested refund at its provider: it becomes `pending` or `succeeded` (or
/// `failed`, with the provider's reason, outside the method's refund window, or after
/// `MAX_REFUND_ATTEMPTS` attempts the provider could not be reached for). A refund that
/// is not `requested` is returned as it is.
pub async fn make_refund(
    db: &Db,
    payments: &Payments,
    clock: &Clock,
    refund_id: String,
) -> Result<RefundRow, ApiError> {
    let (refund, order) = {
        let id = refund_id.clone();
        db.run(move |conn| {
            let refund = refund_store::find(conn, &id)?
                .ok_or_else(|| ApiError::internal("refund vanished"))?;
            let order = order_store::find(conn, &refund.order_id)?
                .ok_or_else(|| ApiError::internal("order vanished"))?;
            Ok::<_, ApiError>((refund, order))
        })
        .await?
    };
    if refund.status != RefundStatus::Requested {
        return Ok(refund);
    }
    let now = clock.now_db();
    let mut updated = refund.clone();
    updated.updated_at = now;
    let paid_at = order.paid_at.unwrap_or(order.created_at);
    let outside_window =
        refund_window(order.payment_method).filter(|window| now > paid_at + *window);
    let provider = payments.by_name(&refund.provider);
    match (outside_window, provider) {
        (Some(window), _) => {
            updated.status = RefundStatus::Failed;
            updated.failure_reason = Some(format!(
                "{} payments can be refunded for {} days only; refund it outside the provider",
                order.payment_method,
                window.num_days()
            ));
        }
        (None, None) => {
            updated.status = RefundStatus::Failed;
            updated.failure_reason = Some(format!(
                "the payment provider `{}` is not configured here",
                refund.provider
            ));
        }
        (None, Some(provider)) => {
            let request = RefundRequest {
                refund_id: &refund.id,
                order_id: &refund.order_id,
                payment_id: &refund.provider_payment_id,
                amount: refund.amount,
                attempt: refund.key_attempt,
            };
            let outcome = provider.refund(&request).await;
            if let Err(ProviderError::Unavailable(_)) = &outcome {
                // The provider keeps its answer to a key: the next try needs a new one.
                // (Without an answer the refund may exist: the key is kept.)
                updated.key_attempt = refund.key_attempt.saturating_add(1);
            }
            match outcome {
                Ok(made) => {
                    updated.provider_refund_id = Some(made.refund_id);
                    updated.failure_reason = made.failure_reason;
                    updated.next_attempt_at = None;
                    updated.status = match made.status {
                        ProviderRefundStatus::Pending => RefundStatus::Pending,
                        ProviderRefundStatus::Succeeded => RefundStatus::Succeeded,
                        ProviderRefundStatus::Failed => RefundStatus::Failed,
                    };
                }
                Err(ProviderError::Rejected(why)) => {
                    updated.status = RefundStatus::Failed;
                    updated.failure_reason = Some(why);
                    updated.next_attempt_at = None;
                }
                Err(ProviderError::Unavailable(why) | ProviderError::Unanswered(why)) => {
                    updated.attempts = refund.attempts.saturating_add(1);
                    if updated.attempts >= MAX_REFUND_ATTEMPTS {
                        updated.status = RefundStatus::Failed;
                        updated.failure_reason = Some(format!(
                            "the provider could not be reached in {MAX_REFUND_ATTEMPTS} attempts: {why}"
                        ));
                        updated.next_attempt_at = None;
                    } else {
                        let index = usize::try_from(updated.attempts - 1).unwrap_or(0);
                        let delay = RETRY_DELAYS_MIN
                            .get(index)
                            .copied()
                            .unwrap_or(RETRY_DELAYS_MIN[RETRY_DELAYS_MIN.len() - 1]);
                        updated.failure_reason = Some(why);
                        updated.next_attempt_at = Some(now + TimeDelta::minutes(delay));
                    }
                }
            }
        }
    }
    db.transaction(move |conn| settle_refund_in(conn, &updated, RefundStatus::Requested, now))
        .await
}

/// A refund as a provider's event reports it.
#[derive(Debug, Clone)]
pub struct ReportedRefund<'a> {
    pub provider: &'a str,
    pub payment_id: &'a str,
    pub provider_refund_id: &'a str,
    /// Our refund's id, when the provider's refund names it (its metadata).
    pub our_refund_id: Option<&'a str>,
    pub status: ProviderRefundStatus,
    pub amount: MinorUnits,
    pub failure_reason: Option<String>,
}

/// The provider reports a refund of one of our payments (ours, or one made at the
/// provider): its state is recorded, and an unknown refund of a known payment is
/// recorded as the provider's. Runs in the caller's transaction.
pub fn record_provider_refund_in(
    conn: &mut DbConnection,
    order: &OrderRow,
    report: &ReportedRefund,
    now: NaiveDateTime,
) -> Result<RefundRow, ApiError> {
    let ReportedRefund {
        provider,
        payment_id,
        provider_refund_id,
        our_refund_id,
        status,
        amount,
        failure_reason,
    } = report.clone();
    let status = match status {
        ProviderRefundStatus::Pending => RefundStatus::Pending,
        ProviderRefundStatus::Succeeded => RefundStatus::Succeeded,
        ProviderRefundStatus::Failed => RefundStatus::Failed,
    };
    // Our own refund may be reported before our request for it came back: find it by
    // our id (its metadata) first, so that it is not recorded a second time.
    let known = match our_refund_id {
        Some(ours) => refund_store::find(conn, ours)?.filter(|r| r.order_id == order.id),
        None => None,
    };
    let known = match known {
        Some(known) => Some(known),
        None => refund_store::find_by_provider_id(conn, provider, provider_refund_id)?,
    };
    match known {
        Some(known) if known.status == status => Ok(known),
        Some(known) if matches!(known.status, RefundStatus::Succeeded | RefundStatus::Failed) => {
            // Final states stay final; a late or repeated event changes nothing.
            Ok(known)
        }
        Some(known) => {
            let mut updated = known.clone();
            updated.status = status;
            updated.provider_refund_id = Some(provider_refund_id.to_owned());
            updated.next_attempt_at = None;
            updated.failure_reason = failure_reason.or(known.failure_reason.clone());
            updated.updated_at = now;
            settle_refund_in(conn, &updated, known.status, now)
        }
        None => {
            let row = RefundRow {
                id: uuid::Uuid::now_v7().to_string(),
                order_id: order.id.clone(),
                provider: provider.to_owned(),
                provider_payment_id: payment_id.to_owned(),
                provider_refund_id: Some(provider_refund_id.to_owned()),
                amount,
                currency: order.currency,
                status,
                origin: RefundOrigin::Provider,
                failure_reason,
                attempts: 0,
                key_attempt: 0,
                next_attempt_at: None,
                created_at: now,
                updated_at: now,
            };
            refund_store::insert(conn, &row)?;
            if status == RefundStatus::Succeeded {
                apply_refund_totals_in(conn, &order.id, now)?;
            }
            Ok(row)
        }
    }
}

const SWEEP_BATCH: i64 = 100;

/// Makes the requested refunds whose attempt is due (the sweep).
pub async fn refunds_due(db: &Db, payments: &Payments, clock: &Clock) -> Result<usize, ApiError> {
    let now = clock.now_db();
    let due = db
        .run(move |conn| refund_store::due(conn, now, SWEEP_BATCH).map_err(ApiError::from))
        .await?;
    let mut made = 0;
    for id in due {
        match make_refund(db, payments, clock, id).await {
            Ok(row) if row.status != RefundStatus::Requested => made += 1,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "a refund could not be made; the sweep retries"),
        }
    }
    Ok(made)
}

/// Makes every requested refund of one order now (after the change that owed them).
pub async fn make_refunds_of(
    db: &Db,
    payments: &Payments,
    clock: &Clock,
    order_id: String,
) -> Result<(), ApiError> {
    let requested = db
        .run(move |conn| refund_store::of_order(conn, &order_id).map_err(ApiError::from))
        .await?;
    for refund in requested
        .into_iter()
        .filter(|r| r.status == RefundStatus::Requested)
    {
        make_refund(db, payments, clock, refund.id).await?;
    }
    Ok(())
}

/// The refunds of one of a partner's orders (`404` if the order is not theirs).
pub async fn refunds_of(
    db: &Db,
    partner_id: String,
    order_id: String,
) -> Result<Vec<RefundRow>, ApiError> {
    db.run(move |conn| {
        order_store::find_for_partner(conn, &partner_id, &order_id)?
            .ok_or_else(|| orders::no_order(&order_id))?;
        Ok(refund_store::of_order(conn, &order_id)?)
    })
    .await
}
