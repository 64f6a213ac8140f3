//! Giving money back: to the wallet (in the transaction of the change that owes it), or
//! through the payment provider (after that change committed; retried by the sweep).
//! Either way `orders::record_refund` is the one place the refund is written down.

use chrono::NaiveDateTime;

use crate::clock::Clock;
use crate::db::{Db, DbConnection};
use crate::domain::{Money, PaymentMethod};
use crate::error::ApiError;
use crate::orders::model::{OrderRow, PaymentStatus};
use crate::orders::{self, store as order_store};
use crate::payments::{Payments, RefundRequest};
use crate::wallet::{self, EntryKind, Movement};

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
    orders::record_refund(conn, order, None, now)
}

/// Returns an external payment through its provider and records the refund on the order.
/// On a provider failure the order keeps `payment.status: succeeded` and the sweep tries again.
pub async fn refund_external(
    db: &Db,
    payments: &Payments,
    clock: &Clock,
    order: OrderRow,
) -> Result<OrderRow, ApiError> {
    let provider = order
        .provider
        .as_deref()
        .and_then(|name| payments.by_name(name))
        .ok_or_else(|| ApiError::internal("the order's payment provider is not configured"))?;
    let request = RefundRequest {
        order_id: &order.id,
        provider_payment_id: order.provider_payment_id.as_deref(),
    };
    let refund_id = provider.refund(&request).await.map_err(|e| {
        tracing::warn!(order_id = %order.id, error = %e, "refund not made yet; the sweep retries");
        ApiError::Unavailable(e.to_string())
    })?;
    let now = clock.now_db();
    db.transaction(move |conn| {
        let current = order_store::find(conn, &order.id)?
            .ok_or_else(|| ApiError::internal("order vanished"))?;
        orders::record_refund(conn, &current, Some(refund_id), now)
    })
    .await
}

const SWEEP_BATCH: i64 = 100;

/// Retries refunds owed on closed orders whose external payment succeeded.
pub async fn refund_owed(db: &Db, payments: &Payments, clock: &Clock) -> Result<usize, ApiError> {
    let owed: Vec<OrderRow> = db
        .run(|conn| order_store::owing_external_refunds(conn, SWEEP_BATCH).map_err(ApiError::from))
        .await?;
    let mut refunded = 0;
    for order in owed {
        let id = order.id.clone();
        if refund_external(db, payments, clock, order).await.is_ok() {
            refunded += 1;
        } else {
            // To the back of the queue, so refunds that keep failing cannot starve the rest.
            let now = clock.now_db();
            let _ = db
                .transaction(move |conn| order_store::touch(conn, &id, now).map_err(ApiError::from))
                .await;
        }
    }
    Ok(refunded)
}
