//! Order routes (scopes `orders:write` / `orders:read`).

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

use super::model::{NewOrder, Order, OrderList, OrderQuery, OrderRow, PaymentMethod};
use super::state::OrderStatus;
use super::store;
use crate::app::AppState;
use crate::auth::principal::{require, Authorized};
use crate::cards::{self, store as card_store};
use crate::domain::Currency;
use crate::error::ErrorCode;
use crate::error::{ApiError, Problem};
use crate::idempotency::{self, Reply};
use crate::pagination::PageQuery;
use crate::payments::ProviderError;
use actix_web::http::header;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_order)
        .service(list_orders)
        .service(get_order)
        .service(cancel_order)
        .service(list_card_orders);
}

/// Buy a plan for a card.
///
/// Requires an `Idempotency-Key`: a retry with the same key and body replays the first
/// answer (status, body and `Location`, errors included) and never charges twice; the
/// same key with another body is `422 idempotency_key_reused`; while the first request
/// runs, `409 idempotency_request_in_progress`. Keys live 24 hours, per partner.
/// Paid from the wallet, the order is `paid` at once with a receipt number.
#[utoipa::path(
    operation_id = "create_order",
    tag = "orders",
    params(("Idempotency-Key" = String, Header, description = "Unique per purchase, e.g. a UUID; reuse it only to retry")),
    request_body = NewOrder,
    responses(
        (status = 201, description = "Placed; `Location` names the order.", body = Order,
         headers(("Location" = String))),
        (status = 400, description = "Malformed body, unknown field, or no `Idempotency-Key`.", body = Problem,
         content_type = "application/problem+json"),
        (status = 402, description = "`insufficient_funds`: nothing was charged or written.", body = Problem,
         content_type = "application/problem+json"),
        (status = 404, description = "No such card among yours.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`card_suspended`, or `idempotency_request_in_progress`.", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "`plan_not_available_for_card`, `currency_not_offered`, `payment_method_unavailable`, \
`idempotency_key_reused` or invalid fields.", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`payment_provider_rejected`: the provider refused the payment; retrying will not help.",
         body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`payment_provider_unavailable`: nothing was charged; retry with the same Idempotency-Key.",
         body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:write"]), ("bearer" = ["orders:write"]))
)]
#[post("/v1/orders")]
async fn create_order(
    auth: Authorized<require::OrdersWrite>,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<NewOrder>,
) -> Result<HttpResponse, ApiError> {
    let input = body.into_inner();
    let partner_id = auth.principal.partner_id;
    let scope = idempotency::Scope::from_request(&req, &partner_id, &input, true)?;
    let currency = super::validate(&input)?;
    if input.payment_method == PaymentMethod::Wallet {
        let smdp_address = state.settings.smdp_address.clone();
        return idempotency::execute(&state.db, scope, move |conn| {
            let order =
                super::create_wallet_order(conn, &partner_id, &input, currency, &smdp_address)?;
            created(&order)
        })
        .await;
    }
    let scope =
        scope.ok_or_else(|| ApiError::internal("an order always has an idempotency scope"))?;
    create_external_order(&state, partner_id, input, currency, scope).await
}

/// One page of orders, newest first, with the cursor of the next.
fn order_page(page: &crate::pagination::PageRequest, rows: Vec<OrderRow>) -> OrderList {
    let (rows, next_cursor) = page.finish(rows, |row| row.id.clone());
    OrderList {
        data: rows.iter().map(Order::from).collect(),
        next_cursor,
    }
}

fn created(order: &OrderRow) -> Result<Reply, ApiError> {
    Reply::json(
        StatusCode::CREATED,
        Some(format!("/v1/orders/{}", order.id)),
        &Order::from(order),
    )
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

/// An external payment in three steps, each safe to interrupt: (1) the order, committed
/// with the idempotency key pointing at it; (2) the provider's payment, made outside any
/// transaction, with the order id as the provider's idempotency key; (3) the provider's
/// reference and the answer, stored together. A retry with the same key resumes at the
/// step that did not finish, so a failure never leaves a charge without an order.
async fn create_external_order(
    state: &AppState,
    partner_id: String,
    input: NewOrder,
    currency: Currency,
    scope: idempotency::Scope,
) -> Result<HttpResponse, ApiError> {
    let mut held = match idempotency::start(&state.db, scope).await? {
        idempotency::Start::Replay(response) => return Ok(response),
        idempotency::Start::Held(held) => held,
    };
    // Step 1: the order (or the one an interrupted attempt committed).
    let order = match held.resource_id.clone() {
        Some(order_id) => {
            let found = state
                .db
                .run(move |conn| {
                    store::find(conn, &order_id)?.ok_or_else(|| super::no_order(&order_id))
                })
                .await;
            match found {
                Ok(order) => order,
                Err(e) => {
                    held.release(&state.db, true).await;
                    return Err(e);
                }
            }
        }
        None => {
            let attach = held.clone();
            let provider = state
                .payments
                .for_method(input.payment_method)
                .map(|p| p.name());
            let made = state
                .db
                .transaction(move |conn| {
                    let order = super::create_external_order(
                        conn,
                        &partner_id,
                        &input,
                        currency,
                        provider,
                    )?;
                    attach.attach(conn, &order.id)?;
                    Ok::<_, ApiError>(order)
                })
                .await;
            match made {
                Ok(order) => {
                    held.resource_id = Some(order.id.clone());
                    order
                }
                Err(e) if e.code().status().is_client_error() => {
                    return held.refuse(&state.db, &e).await
                }
                Err(e) => {
                    held.release(&state.db, false).await;
                    return Err(e);
                }
            }
        }
    };
    // Step 2: the provider's payment, outside any transaction.
    let payment =
        if order.provider_payment_id.is_none() && order.status() == OrderStatus::PendingPayment {
            let provider = order
                .provider
                .as_deref()
                .and_then(|name| state.payments.by_name(name));
            let Some(provider) = provider else {
                held.release(&state.db, true).await;
                return Err(ApiError::internal(
                    "the order's payment provider is not configured",
                ));
            };
            match provider.create_payment(&order).await {
                Ok(payment) => Some(payment),
                // Retrying the same would be refused the same way: that answer is the answer.
                Err(rejected @ ProviderError::Rejected(_)) => {
                    return held.refuse(&state.db, &provider_error(rejected)).await
                }
                Err(unavailable) => {
                    held.release(&state.db, true).await;
                    return Err(provider_error(unavailable));
                }
            }
        } else {
            None
        };
    // Step 3: the provider's reference and the answer, together.
    let keeper = held.clone();
    let stored = state
        .db
        .transaction(move |conn| {
            let order = match &payment {
                Some(payment) => super::attach_payment(conn, &order, payment)?,
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
            held.release(&state.db, true).await;
            Err(e)
        }
    }
}

/// List your orders, newest first.
#[utoipa::path(
    operation_id = "list_orders",
    tag = "orders",
    params(OrderQuery),
    responses(
        (status = 200, body = OrderList),
        (status = 400, description = "Unknown parameter or malformed timestamp.", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "Invalid filter value.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:read"]), ("bearer" = ["orders:read"]))
)]
#[get("/v1/orders")]
async fn list_orders(
    auth: Authorized<require::OrdersRead>,
    state: web::Data<AppState>,
    query: web::Query<OrderQuery>,
) -> Result<web::Json<OrderList>, ApiError> {
    let filter = query.filter()?;
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .validate()?;
    let partner_id = auth.principal.partner_id;
    let rows = {
        let page = page.clone();
        state
            .db
            .run(move |conn| {
                store::list_for_partner(conn, &partner_id, &filter, &page).map_err(ApiError::from)
            })
            .await?
    };
    Ok(web::Json(order_page(&page, rows)))
}

/// Get one of your orders (its receipt number is the 交易凭证).
#[utoipa::path(
    operation_id = "get_order",
    tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, body = Order),
        (status = 404, description = "No such order among yours.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:read"]), ("bearer" = ["orders:read"]))
)]
#[get("/v1/orders/{id}")]
async fn get_order(
    auth: Authorized<require::OrdersRead>,
    state: web::Data<AppState>,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<Order>, ApiError> {
    let id = id.into_inner().to_string();
    let partner_id = auth.principal.partner_id;
    let row = state
        .db
        .run(move |conn| {
            store::find_for_partner(conn, &partner_id, &id)?.ok_or_else(|| super::no_order(&id))
        })
        .await?;
    Ok(web::Json(Order::from(&row)))
}

/// Cancel an order that is `pending_payment` or `paid` and not yet activated.
///
/// A wallet payment is refunded by a ledger entry in the same transaction; the order
/// shows `cancelled` and its refund.
#[utoipa::path(
    operation_id = "cancel_order",
    tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, body = Order),
        (status = 404, description = "No such order among yours.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid_state_transition`: it can no longer be cancelled.", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:write"]), ("bearer" = ["orders:write"]))
)]
#[post("/v1/orders/{id}/cancel")]
async fn cancel_order(
    auth: Authorized<require::OrdersWrite>,
    state: web::Data<AppState>,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<Order>, ApiError> {
    let id = id.into_inner().to_string();
    let partner_id = auth.principal.partner_id;
    let row = state
        .db
        .transaction(move |conn| super::cancel(conn, &partner_id, &id))
        .await?;
    let owes_refund = row.provider.is_some() && row.payment_status == "succeeded";
    if owes_refund {
        // Through the provider, after the cancellation committed; if the provider is down
        // the order shows the refund as owed and the sweep makes it.
        if let Ok(refunded) =
            crate::payments::settle::refund_external(&state.db, &state.payments, row.clone()).await
        {
            return Ok(web::Json(Order::from(&refunded)));
        }
    }
    Ok(web::Json(Order::from(&row)))
}

/// A card's orders, newest first.
#[utoipa::path(
    operation_id = "list_card_orders",
    tag = "orders",
    params(("iccid" = String, Path, description = "The card's ICCID"), PageQuery),
    responses(
        (status = 200, body = OrderList),
        (status = 404, description = "No such card among yours.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:read"]), ("bearer" = ["orders:read"]))
)]
#[get("/v1/cards/{iccid}/orders")]
async fn list_card_orders(
    auth: Authorized<require::OrdersRead>,
    state: web::Data<AppState>,
    iccid: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<OrderList>, ApiError> {
    let page = query.validate()?;
    let partner_id = auth.principal.partner_id;
    let iccid = iccid.into_inner();
    let rows = {
        let page = page.clone();
        state
            .db
            .run(move |conn| {
                card_store::find_partner_card(conn, &partner_id, &iccid)?
                    .ok_or_else(|| cards::no_card(&iccid))?;
                let filter = super::model::OrderFilter {
                    iccid: Some(iccid.clone()),
                    ..Default::default()
                };
                Ok::<_, ApiError>(store::list_for_partner(conn, &partner_id, &filter, &page)?)
            })
            .await?
    };
    Ok(web::Json(order_page(&page, rows)))
}
