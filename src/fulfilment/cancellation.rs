//! Cancelling an order from `pending_payment` or `paid` (before activation), and closing
//! the provider payment of an order that ended unpaid.

use crate::activation::{self, ActivationStatus};
use crate::clock::Clock;
use crate::db::Db;
use crate::error::ApiError;
use crate::orders::model::{OrderRow, PaymentStatus};
use crate::orders::state::OrderEvent;
use crate::orders::{self, store as order_store};
use crate::payments::{CloseRequest, Payments};

use super::refunds;

/// Cancels a partner's order: the transition, the pending activation withdrawn (its code
/// no longer installs anything paid for), a wallet payment refunded and an external
/// payment's refund requested, in one transaction; then the provider is told: the refund
/// is made, or an unpaid payment closed so that nobody pays it late (if the provider is
/// down, the sweep does it).
pub async fn cancel(
    db: &Db,
    payments: &Payments,
    clock: &Clock,
    partner_id: String,
    order_id: String,
) -> Result<OrderRow, ApiError> {
    let now = clock.now_db();
    let cancelled = db
        .transaction(move |conn| {
            let order = order_store::find_for_partner(conn, &partner_id, &order_id)?
                .ok_or_else(|| orders::no_order(&order_id))?;
            let cancelled = orders::transition(conn, &order, OrderEvent::Cancel, now)?;
            let failed = activation::store::claim_pending(
                conn,
                &cancelled.id,
                ActivationStatus::Failed,
                Some("the order was cancelled"),
                now,
            )?;
            if failed {
                super::confirmation::tell_failed(conn, &cancelled, now)?;
            }
            // A subscription's renewal cancelled: the subscription pauses.
            crate::subscriptions::renewal_undone(conn, &cancelled.id, true, "cancelled", now)?;
            if cancelled.holds_external_payment() {
                refunds::request_rest_in(conn, &cancelled, now)?;
                return Ok(cancelled);
            }
            refunds::refund_to_wallet_in(conn, &cancelled, now)
        })
        .await?;
    after_unpaid_end(db, payments, clock, &cancelled).await;
    refunds::make_refunds_of(db, payments, clock, cancelled.id.clone()).await?;
    reload(db, cancelled.id).await
}

async fn reload(db: &Db, order_id: String) -> Result<OrderRow, ApiError> {
    db.run(move |conn| {
        order_store::find(conn, &order_id)?.ok_or_else(|| ApiError::internal("order vanished"))
    })
    .await
}

/// After an order ended unpaid (cancelled, expired, failed): closes its provider payment
/// (expires the Checkout Session, cancels the PaymentIntent) so that a late payer is not
/// charged. On failure the sweep retries ([`close_unclosed`]).
pub async fn after_unpaid_end(db: &Db, payments: &Payments, clock: &Clock, order: &OrderRow) {
    if order.payment_status != PaymentStatus::Pending || order.provider_closed_at.is_some() {
        return;
    }
    let Some(provider) = order.provider.as_deref().and_then(|p| payments.by_name(p)) else {
        return;
    };
    let request = CloseRequest {
        order_id: &order.id,
        payment_id: order.provider_payment_id.as_deref(),
        session_id: order.provider_session_id.as_deref(),
    };
    let now = clock.now_db();
    let id = order.id.clone();
    match provider.close(&request).await {
        // Closed, or already past closing (paid: the success event is refunded).
        Ok(_) => {
            let marked = db
                .transaction(move |conn| {
                    order_store::mark_provider_closed(conn, &id, now).map_err(ApiError::from)
                })
                .await;
            if let Err(e) = marked {
                tracing::warn!(error = %e, "could not record a closed provider payment");
            }
        }
        Err(e) => {
            tracing::warn!(order_id = %order.id, error = %e, "provider payment not closed yet; the sweep retries");
            let _ = db
                .transaction(move |conn| order_store::touch(conn, &id, now).map_err(ApiError::from))
                .await;
        }
    }
}

const SWEEP_BATCH: i64 = 100;

/// Closes the provider payments of orders that ended unpaid and are not closed yet.
pub async fn close_unclosed(
    db: &Db,
    payments: &Payments,
    clock: &Clock,
) -> Result<usize, ApiError> {
    let open = db
        .run(|conn| {
            order_store::unclosed_provider_payments(conn, SWEEP_BATCH).map_err(ApiError::from)
        })
        .await?;
    let count = open.len();
    for order in open {
        after_unpaid_end(db, payments, clock, &order).await;
    }
    Ok(count)
}
