//! Placing an order and taking its money: from the wallet in one transaction, or from a
//! payment provider in three steps that are each safe to interrupt.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use chrono::{NaiveDateTime, TimeDelta};

use crate::clock::Clock;
use crate::db::{Db, DbConnection};
use crate::domain::{time, Money};
use crate::error::{ApiError, ErrorCode};
use crate::events;
use crate::idempotency::{self, Reply};
use crate::notifications;
use crate::orders::model::{Order, OrderRequest, OrderRow};
use crate::orders::state::OrderStatus;
use crate::orders::{self, store as order_store};
use crate::payments::{PaymentRequest, Payments, ProviderError};
use crate::wallet;

/// The `201` answer naming a new order.
pub fn created(order: &OrderRow) -> Result<Reply, ApiError> {
    Reply::json(
        StatusCode::CREATED,
        Some(format!("/v1/orders/{}", order.id)),
        &Order::try_from(order)?,
    )
}

/// A wallet order: after the checks, the order is written `paid` with a receipt number,
/// its activation is created, the wallet is debited (`402 insufficient_funds`
/// otherwise), `order.paid` is told, and a wallet taken below its alert amount too — in
/// the caller's transaction: all of it, or nothing.
pub fn place_wallet_order_in(
    conn: &mut DbConnection,
    partner_id: &str,
    request: &OrderRequest,
    smdp_address: &str,
    now: NaiveDateTime,
) -> Result<OrderRow, ApiError> {
    let unpaid = prepare_wallet_order_in(conn, partner_id, request, smdp_address, now)?;
    unpaid.take_payment_in(conn, now)
}

/// A wallet order written and activated but not yet paid for: the first of
/// [`place_wallet_order_in`]'s two stages. Nothing in it waits for another order.
pub struct UnpaidWalletOrder {
    pub order: OrderRow,
    price: Money,
    recipients: events::Recipients,
    alert: Option<crate::domain::MinorUnits>,
}

/// Checks and prices the order, writes it `paid` with its receipt number, creates its
/// activation, and reads who is told of it: every statement that locks nothing another
/// order of the partner needs.
pub fn prepare_wallet_order_in(
    conn: &mut DbConnection,
    partner_id: &str,
    request: &OrderRequest,
    smdp_address: &str,
    now: NaiveDateTime,
) -> Result<UnpaidWalletOrder, ApiError> {
    let priced = orders::price(conn, partner_id, request)?;
    let order = orders::insert_paid(conn, partner_id, request, &priced, now)?;
    if !order.waits_for_start(now) {
        super::open_activation_for(
            conn,
            &order,
            &priced.card,
            priced.verify_subscriber,
            smdp_address,
            now,
        )?;
    }
    // The price's query said whether the partner has an enabled endpoint: without one,
    // the order skips reading them (one round trip of the eleven).
    let recipients = if priced.has_webhook_endpoints {
        events::recipients(conn, partner_id)?
    } else {
        events::Recipients::without_endpoints(partner_id)
    };
    Ok(UnpaidWalletOrder {
        recipients,
        alert: priced.wallet_alert,
        price: Money::new(priced.amount, request.currency),
        order,
    })
}

impl UnpaidWalletOrder {
    /// The second stage: debits the wallet and tells `order.paid` (and a low balance).
    /// Every order of a partner locks the partner's wallet row and event counter until
    /// its transaction ends, so these come last in the transaction, after everything
    /// else (the idempotency answer included): the locks are held for the fewest
    /// statements.
    pub fn take_payment_in(
        self,
        conn: &mut DbConnection,
        now: NaiveDateTime,
    ) -> Result<OrderRow, ApiError> {
        let partner_id = &self.order.partner_id;
        let debit = wallet::debit(conn, partner_id, self.price, &self.order.id, now)?;
        orders::tell(conn, &self.recipients, &self.order, now)?;
        notifications::wallet_debited(conn, &self.recipients, self.alert, &debit, now)?;
        Ok(self.order)
    }
}

/// A wallet order at most once per idempotency key: the answer is stored in the
/// transaction of the debit, just before it.
pub async fn place_wallet_order(
    db: &Db,
    clock: &Clock,
    partner_id: String,
    request: OrderRequest,
    smdp_address: String,
    scope: Option<idempotency::Scope>,
) -> Result<HttpResponse, ApiError> {
    let now = clock.now_db();
    idempotency::execute_in_stages(
        db,
        scope,
        move |conn| {
            let unpaid = prepare_wallet_order_in(conn, &partner_id, &request, &smdp_address, now)?;
            Ok((created(&unpaid.order)?, unpaid))
        },
        move |conn, unpaid| unpaid.take_payment_in(conn, now).map(drop),
    )
    .await
}

fn provider_error(e: ProviderError) -> ApiError {
    match e {
        ProviderError::Unavailable(cause) | ProviderError::Unanswered(cause) => ApiError::new(
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
    route: Result<&'static str, String>,
    now: NaiveDateTime,
) -> Result<OrderRow, ApiError> {
    let priced = orders::price(conn, partner_id, request)?;
    let provider = route.map_err(|why| ApiError::new(ErrorCode::PaymentMethodUnavailable, why))?;
    orders::insert_pending(conn, partner_id, request, &priced, Some(provider), now)
}

/// Which provider takes `request`'s payment, or why none does here.
fn route_of(payments: &Payments, request: &OrderRequest) -> Result<&'static str, String> {
    let provider = payments.for_method(request.payment_method).ok_or_else(|| {
        format!(
            "`{}` payments are not enabled here; use `wallet`",
            request.payment_method
        )
    })?;
    match payments.refuses_currency(request.payment_method, request.currency) {
        Some(why) => Err(why),
        None => Ok(provider.name()),
    }
}

/// When the provider's payment page closes: with the order (its TTL) plus a margin, and
/// never sooner than the provider allows (Stripe: 30 minutes after creation).
fn payment_expires_at(
    order: &OrderRow,
    ttl: std::time::Duration,
    now: NaiveDateTime,
) -> chrono::DateTime<chrono::Utc> {
    let ttl = TimeDelta::from_std(ttl).unwrap_or(TimeDelta::minutes(30));
    let with_the_order = order.created_at + ttl + PAYMENT_PAGE_MARGIN;
    let earliest_allowed = now + MIN_PAYMENT_PAGE_LIFETIME + PAYMENT_PAGE_MARGIN;
    time::from_db(with_the_order.max(earliest_allowed))
}

/// Stripe's shortest Checkout Session lifetime
/// (https://docs.stripe.com/api/checkout/sessions/create#create_checkout_session-expires_at).
const MIN_PAYMENT_PAGE_LIFETIME: TimeDelta = TimeDelta::minutes(30);
/// Slack between the order's expiry and the page's, so that clocks that differ a
/// little never let the page outlive a closed order by much, nor close before it.
const PAYMENT_PAGE_MARGIN: TimeDelta = TimeDelta::minutes(2);

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
            let route = route_of(payments, &request);
            let now = clock.now_db();
            let made = db
                .transaction(move |conn| {
                    let order = insert_external_order_in(conn, &partner_id, &request, route, now)?;
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
    let payment = if order.provider_payment_id.is_none()
        && order.provider_session_id.is_none()
        && order.status == OrderStatus::PendingPayment
    {
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
            attempt: order.provider_attempt,
            expires_at: payment_expires_at(&order, payments.order_ttl, clock.now_db()),
        };
        match provider.create_payment(&request).await {
            Ok(payment) => Some(payment),
            // Retrying the same would be refused the same way: that answer is the answer.
            Err(rejected @ ProviderError::Rejected(_)) => {
                return held.refuse(db, &provider_error(rejected)).await
            }
            Err(unavailable) => {
                // The provider keeps its answer to a key (failures too): after an
                // answered failure, the retry this answer invites must reach it under a
                // new key. Without an answer the payment may exist: keep the key.
                if matches!(unavailable, ProviderError::Unavailable(_)) {
                    let order_id = order.id.clone();
                    let bumped = db
                        .transaction(move |conn| {
                            order_store::next_provider_attempt(conn, &order_id)
                                .map_err(ApiError::from)
                        })
                        .await;
                    if let Err(e) = bumped {
                        tracing::warn!(error = %e, "could not record a failed provider attempt");
                    }
                }
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
                    payment.payment_id.as_deref(),
                    payment.session_id.as_deref(),
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
