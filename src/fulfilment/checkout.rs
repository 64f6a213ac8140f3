//! Placing an order and taking its money: from the wallet in one transaction, or from a
//! payment provider in three steps that are each safe to interrupt.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use chrono::NaiveDateTime;

use crate::clock::Clock;
use crate::db::{Db, DbConnection};
use crate::domain::Money;
use crate::error::{ApiError, ErrorCode};
use crate::idempotency::{self, Reply};
use crate::orders::model::{Order, OrderRequest, OrderRow};
use crate::orders::state::OrderStatus;
use crate::orders::{self, store as order_store};
use crate::payments::{PaymentRequest, Payments, ProviderError};
use crate::wallet;

use super::mark_paid_in;

/// The `201` answer naming a new order.
pub fn created(order: &OrderRow) -> Result<Reply, ApiError> {
    Reply::json(
        StatusCode::CREATED,
        Some(format!("/v1/orders/{}", order.id)),
        &Order::try_from(order)?,
    )
}

/// A wallet order: after the checks, the wallet is debited (`402 insufficient_funds`
/// otherwise), the order moves to `paid` with a receipt number, and its activation is
/// created — in the caller's transaction with the insert: all of it, or nothing.
pub fn place_wallet_order_in(
    conn: &mut DbConnection,
    partner_id: &str,
    request: &OrderRequest,
    smdp_address: &str,
    now: NaiveDateTime,
) -> Result<OrderRow, ApiError> {
    let priced = orders::price(conn, partner_id, request)?;
    let order = orders::insert_pending(conn, partner_id, request, &priced, None, now)?;
    wallet::debit(
        conn,
        partner_id,
        Money::new(priced.amount, request.currency),
        &order.id,
        now,
    )?;
    mark_paid_in(conn, &order, smdp_address, now)
}

/// A wallet order at most once per idempotency key: the answer is stored in the
/// transaction of the debit.
pub async fn place_wallet_order(
    db: &Db,
    clock: &Clock,
    partner_id: String,
    request: OrderRequest,
    smdp_address: String,
    scope: Option<idempotency::Scope>,
) -> Result<HttpResponse, ApiError> {
    let now = clock.now_db();
    idempotency::execute(db, scope, move |conn| {
        let order = place_wallet_order_in(conn, &partner_id, &request, &smdp_address, now)?;
        created(&order)
    })
    .await
}

fn provider_error(e: ProviderError) -> ApiError {
    match e {
        ProviderError::Unavailable(cause) => ApiError::new(
            ErrorCode::PaymentProviderUnavailable,
            format!("{cause}; nothing was charged yet: retry with the same Idempotency-Key"),
        )
        .with_header(header::RETRY_AFTER, header::HeaderValue::from_static("5")),
        ProviderError::Rejected(cause) => ApiError::new(
            ErrorCode::PaymentProviderRejected,
            format!("the payment provider refused this payment ({cause}); retrying will not help"),
        ),
    }
}

/// Writes an external order, `pending_payment` until the provider's webhook settles it.
/// Without a provider for its method it is `422 payment_method_unavailable` (after the
/// other checks).
fn insert_external_order_in(
    conn: &mut DbConnection,
    partner_id: &str,
    request: &OrderRequest,
    provider: Option<&str>,
    now: NaiveDateTime,
) -> Result<OrderRow, ApiError> {
    let priced = orders::price(conn, partner_id, request)?;
    let provider = provider.ok_or_else(|| {
        ApiError::new(
            ErrorCode::PaymentMethodUnavailable,
            format!(
                "`{}` payments are not enabled here; use `wallet`",
                request.payment_method
            ),
        )
    })?;
    orders::insert_pending(conn, partner_id, request, &priced, Some(provider), now)
}

/// An external payment in three steps, each safe to interrupt: (1) the order, committed
/// with the idempotency key pointing at it; (2) the provider's payment, made outside any
/// transaction, with the order id as the provider's idempotency key; (3) the provider's
/// reference and the answer, stored together. A retry with the same key resumes at the
/// step that did not finish, so a failure never leaves a charge without an order.
pub async fn place_external_order(
    db: &Db,
    payments: &Payments,
    clock: &Clock,
    partner_id: String,
    request: OrderRequest,
    scope: idempotency::Scope,
) -> Result<HttpResponse, ApiError> {
    let mut held = match idempotency::start(db, scope).await? {
        idempotency::Start::Replay(response) => return Ok(response),
        idempotency::Start::Held(held) => held,
    };
    // Step 1: the order (or the one an interrupted attempt committed).
    let order = match held.resource_id.clone() {
        Some(order_id) => {
            let found = db
                .run(move |conn| {
                    order_store::find(conn, &order_id)?.ok_or_else(|| orders::no_order(&order_id))
                })
                .await;
            match found {
                Ok(order) => order,
                Err(e) => {
                    held.release(db, true).await;
                    return Err(e);
                }
            }
        }
        None => {
            let attach = held.clone();
            let provider = payments
                .for_method(request.payment_method)
                .map(|p| p.name());
            let now = clock.now_db();
            let made = db
                .transaction(move |conn| {
                    let order =
                        insert_external_order_in(conn, &partner_id, &request, provider, now)?;
                    attach.attach(conn, &order.id)?;
                    Ok::<_, ApiError>(order)
                })
                .await;
            match made {
                Ok(order) => {
                    held.resource_id = Some(order.id.clone());
                    order
                }
                Err(e) if e.code().status().is_client_error() => return held.refuse(db, &e).await,
                Err(e) => {
                    held.release(db, false).await;
                    return Err(e);
                }
            }
        }
    };
    // Step 2: the provider's payment, outside any transaction.
    let payment =
        if order.provider_payment_id.is_none() && order.status == OrderStatus::PendingPayment {
            let provider = order
                .provider
                .as_deref()
                .and_then(|name| payments.by_name(name));
            let Some(provider) = provider else {
                held.release(db, true).await;
                return Err(ApiError::internal(
                    "the order's payment provider is not configured",
                ));
            };
            let request = PaymentRequest {
                order_id: &order.id,
                iccid: &order.iccid,
                method: order.payment_method,
                amount: order.amount,
                currency: order.currency,
            };
            match provider.create_payment(&request).await {
                Ok(payment) => Some(payment),
                // Retrying the same would be refused the same way: that answer is the answer.
                Err(rejected @ ProviderError::Rejected(_)) => {
                    return held.refuse(db, &provider_error(rejected)).await
                }
                Err(unavailable) => {
                    held.release(db, true).await;
                    return Err(provider_error(unavailable));
                }
            }
        } else {
            None
        };
    // Step 3: the provider's reference and the answer, together.
    let keeper = held.clone();
    let now = clock.now_db();
    let stored = db
        .transaction(move |conn| {
            let order = match &payment {
                Some(payment) => orders::attach_payment(
                    conn,
                    &order,
                    &payment.provider_payment_id,
                    &payment.next_action,
                    now,
                )?,
                None => order,
            };
            let reply = created(&order)?;
            keeper.complete(conn, &reply)?;
            Ok::<_, ApiError>(reply)
        })
        .await;
    match stored {
        Ok(reply) => Ok(idempotency::respond(reply)),
        Err(e) => {
            held.release(db, true).await;
            Err(e)
        }
    }
}
