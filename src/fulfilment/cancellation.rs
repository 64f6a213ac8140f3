//! Cancelling an order from `pending_payment` or `paid` (before activation).

use crate::activation::{self, ActivationStatus};
use crate::clock::Clock;
use crate::db::Db;
use crate::error::ApiError;
use crate::orders::model::OrderRow;
use crate::orders::state::OrderEvent;
use crate::orders::{self, store as order_store};
use crate::payments::Payments;

use super::refunds;

/// Cancels a partner's order: the transition, the pending activation withdrawn (its code
/// no longer installs anything paid for) and a wallet payment refunded, in one
/// transaction; then an external payment is refunded through its provider (if the
/// provider is down, the order shows the refund as owed and the sweep makes it).
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
            activation::store::claim_pending(
                conn,
                &cancelled.id,
                ActivationStatus::Failed,
                Some("the order was cancelled"),
                now,
            )?;
            refunds::refund_to_wallet_in(conn, &cancelled, now)
        })
        .await?;
    if cancelled.holds_external_payment() {
        if let Ok(refunded) = refunds::refund_external(db, payments, clock, cancelled.clone()).await
        {
            return Ok(refunded);
        }
    }
    Ok(cancelled)
}
