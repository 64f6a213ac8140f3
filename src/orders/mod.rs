//! Orders: buying a plan for a card, paid from the partner's wallet (external payments
//! arrive with the payments capability), never charged twice.

pub mod model;
pub mod routes;
pub mod state;
pub mod store;

use crate::cards::{self, store as card_store};
use crate::catalog::store as catalog_store;
use crate::db::DbConnection;
use crate::domain::{time, Currency};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::wallet::{self, EntryKind, Movement};
use model::{NewOrder, OrderFilter, OrderQuery, OrderRow, PaymentMethod, PaymentStatus};
use state::{OrderEvent, OrderStatus};

const MAX_CLIENT_REFERENCE: usize = 100;

pub fn no_order(id: &str) -> ApiError {
    ApiError::not_found(format!("no order {id} is visible to this partner"))
}

fn invalid_transition(order: &OrderRow, event: OrderEvent) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidStateTransition,
        format!("the order is {}; cannot {}", order.status, event.describe()),
    )
}

/// The one way an order changes state. The update is conditional on the state read,
/// so two racing requests cannot both apply an event.
pub fn transition(
    conn: &mut DbConnection,
    order: &OrderRow,
    event: OrderEvent,
) -> Result<OrderRow, ApiError> {
    let from = order.status();
    let to = state::next(from, event).ok_or_else(|| invalid_transition(order, event))?;
    let now = time::to_db(time::now());
    let mut row = order.clone();
    row.status = to.as_str().to_owned();
    row.updated_at = now;
    match event {
        OrderEvent::PaymentSucceeded => {
            row.payment_status = PaymentStatus::Succeeded.as_str().to_owned();
            row.paid_at = Some(now);
            row.receipt_number = Some(store::next_receipt_number(conn, now)?);
        }
        OrderEvent::PaymentFailed => {
            row.payment_status = PaymentStatus::Failed.as_str().to_owned();
            row.closed_at = Some(now);
        }
        OrderEvent::Cancel
        | OrderEvent::Expire
        | OrderEvent::ActivationFailed
        | OrderEvent::ActivationConfirmed => {
            row.closed_at = Some(now);
        }
        OrderEvent::Refund => {}
    }
    if !store::update_if_status(conn, &row, from.as_str())? {
        let current = store::find(conn, &order.id)?.unwrap_or_else(|| order.clone());
        return Err(invalid_transition(&current, event));
    }
    Ok(row)
}

/// Returns a wallet payment to the wallet: one refund ledger entry, recorded on the order.
/// Does nothing for orders not paid from the wallet. Call in the transition's transaction.
pub fn refund_to_wallet(conn: &mut DbConnection, order: &OrderRow) -> Result<OrderRow, ApiError> {
    if order.method() != PaymentMethod::Wallet
        || order.payment_status != PaymentStatus::Succeeded.as_str()
    {
        return Ok(order.clone());
    }
    let currency: Currency = order.currency.parse().map_err(ApiError::internal)?;
    wallet::add(
        conn,
        Movement {
            partner_id: &order.partner_id,
            currency,
            kind: EntryKind::Refund,
            amount: order.amount,
            order_id: Some(&order.id),
            reference: order.receipt_number.as_deref(),
        },
    )?;
    let now = time::to_db(time::now());
    let mut row = order.clone();
    row.payment_status = PaymentStatus::Refunded.as_str().to_owned();
    row.refunded_amount = Some(order.amount);
    row.refunded_at = Some(now);
    row.updated_at = now;
    if !store::update_if_status(conn, &row, &order.status)? {
        return Err(ApiError::internal(
            "order changed while its refund was recorded",
        ));
    }
    Ok(row)
}

/// The checks that need no database, each with its own field error.
pub fn validate(input: &NewOrder) -> Result<Currency, ApiError> {
    let mut errors = Vec::new();
    let currency = input
        .currency
        .parse::<Currency>()
        .map_err(|e| errors.push(FieldError::new("currency", e.to_string())))
        .ok();
    if input
        .client_reference
        .as_deref()
        .is_some_and(|r| r.chars().count() > MAX_CLIENT_REFERENCE)
    {
        errors.push(FieldError::new(
            "client_reference",
            format!("must be at most {MAX_CLIENT_REFERENCE} characters"),
        ));
    }
    match currency {
        Some(currency) if errors.is_empty() => Ok(currency),
        _ => Err(ApiError::validation(errors)),
    }
}

/// What an order is for, once every check passed.
pub struct Priced {
    pub iccid: String,
    pub plan_id: String,
    pub card_type: crate::domain::CardType,
    pub amount: i64,
}

/// The checks, in this order: the card is the partner's (`404`), not suspended (`409
/// card_suspended`), the plan is on sale for its card type (`422
/// plan_not_available_for_card`), and priced in the currency (`422 currency_not_offered`).
pub fn price(
    conn: &mut DbConnection,
    partner_id: &str,
    input: &NewOrder,
    currency: Currency,
) -> Result<Priced, ApiError> {
    let iccid = input.iccid.trim();
    let card = card_store::find_partner_card(conn, partner_id, iccid)?
        .ok_or_else(|| cards::no_card(iccid))?;
    if card.suspended {
        return Err(ApiError::new(
            ErrorCode::CardSuspended,
            format!("card {iccid} is suspended and cannot be renewed"),
        ));
    }
    let plan_id = input.plan_id.to_string();
    let plan = catalog_store::find_by_id(conn, &plan_id)?
        .filter(|plan| plan.status == "active" && cards::plan_fits(plan, card.card_type()))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::PlanNotAvailableForCard,
                format!(
                    "plan {plan_id} is not on sale for {} cards",
                    card.card_type()
                ),
            )
        })?;
    let amount = catalog_store::price_of(conn, &plan.id, currency)?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::CurrencyNotOffered,
            format!("plan {} has no price in {currency}", plan.code),
        )
    })?;
    Ok(Priced {
        iccid: card.iccid.clone(),
        plan_id: plan.id,
        card_type: card.card_type(),
        amount,
    })
}

fn new_row(
    partner_id: &str,
    input: &NewOrder,
    currency: Currency,
    priced: &Priced,
    provider: Option<&str>,
) -> OrderRow {
    let now = time::to_db(time::now());
    OrderRow {
        id: uuid::Uuid::now_v7().to_string(),
        partner_id: partner_id.to_owned(),
        iccid: priced.iccid.clone(),
        plan_id: priced.plan_id.clone(),
        status: OrderStatus::PendingPayment.as_str().to_owned(),
        amount: priced.amount,
        currency: currency.code().to_owned(),
        payment_method: input.payment_method.as_str().to_owned(),
        payment_status: PaymentStatus::Pending.as_str().to_owned(),
        receipt_number: None,
        client_reference: input
            .client_reference
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned),
        refunded_amount: None,
        refunded_at: None,
        paid_at: None,
        closed_at: None,
        created_at: now,
        updated_at: now,
        provider: provider.map(str::to_owned),
        provider_payment_id: None,
        next_action: None,
        provider_refund_id: None,
    }
}

/// A wallet order: after the checks, the wallet is debited (`402 insufficient_funds`
/// otherwise), the order moves to `paid` with a receipt number, and its activation is
/// created — in the caller's transaction with the insert: all of it, or nothing.
pub fn create_wallet_order(
    conn: &mut DbConnection,
    partner_id: &str,
    input: &NewOrder,
    currency: Currency,
    smdp_address: &str,
) -> Result<OrderRow, ApiError> {
    let priced = price(conn, partner_id, input, currency)?;
    let order = new_row(partner_id, input, currency, &priced, None);
    store::insert(conn, &order)?;
    wallet::debit(conn, partner_id, currency, priced.amount, &order.id)?;
    let paid = transition(conn, &order, OrderEvent::PaymentSucceeded)?;
    crate::activation::create_pending(conn, &paid, priced.card_type, smdp_address)?;
    Ok(paid)
}

/// An external order, `pending_payment` until the provider's webhook settles it. It is
/// committed before the provider is called. Without a provider for its method it is
/// `422 payment_method_unavailable` (after the other checks).
pub fn create_external_order(
    conn: &mut DbConnection,
    partner_id: &str,
    input: &NewOrder,
    currency: Currency,
    provider: Option<&str>,
) -> Result<OrderRow, ApiError> {
    let priced = price(conn, partner_id, input, currency)?;
    let provider = provider.ok_or_else(|| {
        ApiError::new(
            ErrorCode::PaymentMethodUnavailable,
            format!(
                "`{}` payments are not enabled here; use `wallet`",
                input.payment_method.as_str()
            ),
        )
    })?;
    let order = new_row(partner_id, input, currency, &priced, Some(provider));
    store::insert(conn, &order)?;
    Ok(order)
}

/// Records the provider's payment and the client's next action on a pending order.
pub fn attach_payment(
    conn: &mut DbConnection,
    order: &OrderRow,
    created: &crate::payments::CreatedPayment,
) -> Result<OrderRow, ApiError> {
    let mut row = order.clone();
    row.provider_payment_id = Some(created.provider_payment_id.clone());
    row.next_action =
        Some(serde_json::to_string(&created.next_action).map_err(ApiError::internal)?);
    row.updated_at = time::to_db(time::now());
    if !store::update_if_status(conn, &row, &order.status)? {
        // Settled (or expired) meanwhile: keep what is stored.
        return store::find(conn, &order.id)?.ok_or_else(|| ApiError::internal("order vanished"));
    }
    Ok(row)
}

/// Cancels a partner's order from `pending_payment` or `paid` (before activation); a
/// wallet payment is refunded in the same transaction.
pub fn cancel(
    conn: &mut DbConnection,
    partner_id: &str,
    order_id: &str,
) -> Result<OrderRow, ApiError> {
    let order =
        store::find_for_partner(conn, partner_id, order_id)?.ok_or_else(|| no_order(order_id))?;
    let cancelled = transition(conn, &order, OrderEvent::Cancel)?;
    crate::activation::withdraw(conn, &cancelled.id, "the order was cancelled")?;
    refund_to_wallet(conn, &cancelled)
}

impl OrderQuery {
    pub fn filter(&self) -> Result<OrderFilter, ApiError> {
        let status = match self.status.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => Some(OrderStatus::parse(text).ok_or_else(|| {
                ApiError::validation(vec![FieldError::new(
                    "status",
                    format!("`{text}` is not an order status"),
                )])
            })?),
        };
        Ok(OrderFilter {
            status,
            iccid: self
                .iccid
                .as_deref()
                .map(str::trim)
                .filter(|i| !i.is_empty())
                .map(str::to_owned),
            created_after: self.created_after.map(time::to_db),
            created_before: self.created_before.map(time::to_db),
        })
    }
}
