//! Orders: buying a plan for a card at the price of the day, and the one state machine
//! every path moves an order through. How an order is paid, activated or refunded is
//! the fulfilment module's business; this one owns the order's own rules and rows.

pub mod model;
pub mod routes;
pub mod state;
pub mod store;

use chrono::NaiveDateTime;

use crate::cards::{self, store as card_store};
use crate::catalog;
use crate::db::DbConnection;
use crate::domain::{time, CardType, Currency, Iccid, MinorUnits, NextAction};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::events::{self, EventType};
use model::{NewOrder, Order, OrderFilter, OrderQuery, OrderRequest, OrderRow, PaymentStatus};
use state::{OrderEvent, OrderStatus};

const MAX_CLIENT_REFERENCE: usize = 100;
/// How far ahead an order may be scheduled (`start_at`).
pub const MAX_MONTHS_AHEAD: u32 = 12;
/// Most scheduled orders a card may hold (not yet started, not cancelled).
pub const MAX_SCHEDULED_PER_CARD: i64 = 50;

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
    now: NaiveDateTime,
) -> Result<OrderRow, ApiError> {
    let receipt = match event {
        OrderEvent::PaymentSucceeded => Some(store::next_receipt_number(conn, now)?),
        _ => None,
    };
    let row = after(order, event, receipt, now)?;
    if !store::update_if_status(conn, &row, order.status)? {
        let current = store::find(conn, &order.id)?.unwrap_or_else(|| order.clone());
        return Err(invalid_transition(&current, event));
    }
    // Endpoints are read only when the new state has an event to tell.
    if let Some(event_type) = event_for(row.status) {
        events::append(
            conn,
            &row.partner_id,
            event_type,
            &Order::try_from(&row)?,
            now,
        )?;
    }
    Ok(row)
}

/// `order` as `event` leaves it (the state machine's step and the fields it sets); a
/// payment carries the receipt number it was given.
fn after(
    order: &OrderRow,
    event: OrderEvent,
    receipt_number: Option<String>,
    now: NaiveDateTime,
) -> Result<OrderRow, ApiError> {
    let to = state::next(order.status, event).ok_or_else(|| invalid_transition(order, event))?;
    let mut row = order.clone();
    row.status = to;
    row.updated_at = now;
    match event {
        OrderEvent::PaymentSucceeded => {
            row.payment_status = PaymentStatus::Succeeded;
            row.paid_at = Some(now);
            row.receipt_number = Some(
                receipt_number.ok_or_else(|| ApiError::internal("a payment without a receipt"))?,
            );
        }
        OrderEvent::PaymentFailed => {
            row.payment_status = PaymentStatus::Failed;
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
    Ok(row)
}

/// The one place a refund is written on the order: `refunded` of its payment has gone
/// back to the payer in all (to the wallet, or through the provider). The payment shows
/// `refunded` once all of it has, and a completed order paid back in full becomes
/// `refunded`. Recording the same total again changes nothing; a new total is told as
/// `order.refunded`.
pub fn record_refund(
    conn: &mut DbConnection,
    order: &OrderRow,
    refunded: MinorUnits,
    now: NaiveDateTime,
) -> Result<OrderRow, ApiError> {
    if order.refunded_amount == Some(refunded) || !refunded.is_positive() {
        return Ok(order.clone());
    }
    let mut row = order.clone();
    if refunded >= order.amount {
        row.payment_status = PaymentStatus::Refunded;
    }
    row.refunded_amount = Some(refunded);
    row.refunded_at = Some(now);
    row.updated_at = now;
    if !store::update_if_status(conn, &row, order.status)? {
        return Err(ApiError::internal(
            "order changed while its refund was recorded",
        ));
    }
    // A renewal that took effect and was then paid back in full is refunded; the event
    // tells the order as it ends up.
    if row.status == OrderStatus::Completed && refunded >= row.amount {
        row = transition(conn, &row, OrderEvent::Refund, now)?;
    }
    events::append(
        conn,
        &row.partner_id,
        EventType::OrderRefunded,
        &Order::try_from(&row)?,
        now,
    )?;
    Ok(row)
}

/// Writes down the last problem with the order's payment (see `Payment::issue`).
pub fn record_payment_issue(
    conn: &mut DbConnection,
    order: &OrderRow,
    issue: &str,
    now: NaiveDateTime,
) -> Result<OrderRow, ApiError> {
    let mut row = order.clone();
    row.payment_issue = Some(issue.chars().take(500).collect());
    row.updated_at = now;
    if !store::update_if_status(conn, &row, order.status)? {
        return Err(ApiError::internal(
            "order changed while its payment issue was recorded",
        ));
    }
    Ok(row)
}

/// Records that a provider's payment arrived for an order that is already closed (it
/// is owed back to the payer).
pub fn record_late_payment(
    conn: &mut DbConnection,
    order: &OrderRow,
    provider_payment_id: &str,
    now: NaiveDateTime,
) -> Result<OrderRow, ApiError> {
    let mut row = order.clone();
    row.payment_status = PaymentStatus::Succeeded;
    row.provider_payment_id = Some(provider_payment_id.to_owned());
    row.updated_at = now;
    if !store::update_if_status(conn, &row, order.status)? {
        return Err(ApiError::internal(
            "order changed while its late payment was recorded",
        ));
    }
    Ok(row)
}

impl NewOrder {
    /// Parses every field into its type, naming each invalid one (`422`).
    pub fn parse(self, now: NaiveDateTime) -> Result<OrderRequest, ApiError> {
        let mut errors = Vec::new();
        let start_at = self.start_at.map(time::to_db);
        if let Some(start) = start_at {
            let latest = now.checked_add_months(chrono::Months::new(MAX_MONTHS_AHEAD));
            if start <= now || latest.is_none_or(|latest| start > latest) {
                errors.push(FieldError::new(
                    "start_at",
                    format!("must be in the future, at most {MAX_MONTHS_AHEAD} months ahead"),
                ));
            }
        }
        // Exactly as sent: the document's pattern allows no surrounding whitespace.
        let iccid = self
            .iccid
            .parse::<Iccid>()
            .map_err(|e| errors.push(FieldError::new("iccid", e)))
            .ok();
        let currency = self
            .currency
            .parse::<Currency>()
            .map_err(|e| errors.push(FieldError::new("currency", e.to_string())))
            .ok();
        // Counted as sent (the document's `maxLength`); stored without surrounding spaces.
        let too_long = self
            .client_reference
            .as_deref()
            .is_some_and(|r| r.chars().count() > MAX_CLIENT_REFERENCE);
        let client_reference = self
            .client_reference
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned);
        if too_long {
            errors.push(FieldError::new(
                "client_reference",
                format!("must be at most {MAX_CLIENT_REFERENCE} characters"),
            ));
        }
        match (iccid, currency) {
            (Some(iccid), Some(currency)) if errors.is_empty() => Ok(OrderRequest {
                iccid,
                plan_id: self.plan_id,
                currency,
                payment_method: self.payment_method,
                client_reference,
                start_at,
            }),
            _ => Err(ApiError::validation(errors)),
        }
    }
}

/// What an order is for, once every check passed.
pub struct Priced {
    pub iccid: String,
    pub plan_id: String,
    pub card_type: CardType,
    pub amount: MinorUnits,
    /// The card as read with the price (its activation needs it).
    pub card: crate::cards::model::CardRow,
    /// Whether the partner wants subscribers verified before an eSIM code is released.
    pub verify_subscriber: bool,
    /// The partner's low-balance alert amount in the order's currency, if set.
    pub wallet_alert: Option<MinorUnits>,
    /// Whether the partner has an enabled webhook endpoint (read with the price).
    pub has_webhook_endpoints: bool,
    /// The receipt number's `n`, taken with the price for an order paid at once
    /// ([`price_paid_at_once`]; PostgreSQL).
    pub receipt_number: Option<i64>,
}

/// The checks, in this order: the card is the partner's (`404`), not suspended (`409
/// card_suspended`), the plan is on sale for its card type (`422
/// plan_not_available_for_card`), and priced in the currency (`422 currency_not_offered`).
pub fn price(
    conn: &mut DbConnection,
    partner_id: &str,
    request: &OrderRequest,
) -> Result<Priced, ApiError> {
    price_taking_receipt(conn, partner_id, request, false)
}

/// [`price`] for an order paid at once (from the wallet): on PostgreSQL the same round
/// trip takes its receipt number (a number taken by an order refused afterwards is
/// skipped, as one of an order rolled back is).
pub fn price_paid_at_once(
    conn: &mut DbConnection,
    partner_id: &str,
    request: &OrderRequest,
) -> Result<Priced, ApiError> {
    price_taking_receipt(conn, partner_id, request, true)
}

fn price_taking_receipt(
    conn: &mut DbConnection,
    partner_id: &str,
    request: &OrderRequest,
    take_receipt_number: bool,
) -> Result<Priced, ApiError> {
    let iccid = request.iccid.as_str();
    let plan_id = request.plan_id.to_string();
    // One round trip for the card, its partner's setting, the plan and its price.
    let offer = store::card_and_offer(
        conn,
        partner_id,
        iccid,
        &plan_id,
        request.currency,
        take_receipt_number,
    )?
    .ok_or_else(|| cards::no_card(iccid))?;
    let card = offer.card;
    if card.suspended {
        return Err(ApiError::new(
            ErrorCode::CardSuspended,
            format!("card {iccid} is suspended and cannot be renewed"),
        ));
    }
    let plan = offer
        .plan
        .filter(|plan| catalog::on_sale_for(plan, card.card_type))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::PlanNotAvailableForCard,
                format!("plan {plan_id} is not on sale for {} cards", card.card_type),
            )
        })?;
    let amount = offer.price.ok_or_else(|| {
        ApiError::new(
            ErrorCode::CurrencyNotOffered,
            format!("plan {} has no price in {}", plan.code, request.currency),
        )
    })?;
    Ok(Priced {
        iccid: card.iccid.clone(),
        plan_id: plan.id,
        card_type: card.card_type,
        amount,
        card,
        verify_subscriber: offer.verify_subscriber,
        wallet_alert: offer.wallet_alert,
        has_webhook_endpoints: offer.has_webhook_endpoints,
        receipt_number: offer.receipt_number,
    })
}

/// Writes a new `pending_payment` order for a priced request. `provider` names who
/// collects an external payment (`None` for the wallet).
pub fn insert_pending(
    conn: &mut DbConnection,
    partner_id: &str,
    request: &OrderRequest,
    priced: &Priced,
    provider: Option<&str>,
    now: NaiveDateTime,
) -> Result<OrderRow, ApiError> {
    if request.start_at.is_some() {
        limit_scheduled(conn, &priced.iccid, now)?;
    }
    let row = pending_row(partner_id, request, priced, provider, now);
    store::insert(conn, &row)?;
    Ok(row)
}

/// A wallet order's row, already `paid` with its receipt number — the row [`transition`]
/// would make of the pending order, so the order is written once — not yet written. The
/// caller writes it and takes the money in one transaction (or one statement: see
/// `fulfilment::checkout`), and tells `order.paid` ([`tell`]) once it has.
pub fn paid_row(
    conn: &mut DbConnection,
    partner_id: &str,
    request: &OrderRequest,
    priced: &Priced,
    now: NaiveDateTime,
) -> Result<OrderRow, ApiError> {
    if request.start_at.is_some() {
        limit_scheduled(conn, &priced.iccid, now)?;
    }
    let pending = pending_row(partner_id, request, priced, None, now);
    let receipt = match priced.receipt_number {
        Some(n) => store::receipt_number(n, now),
        None => store::next_receipt_number(conn, now)?,
    };
    after(&pending, OrderEvent::PaymentSucceeded, Some(receipt), now)
}

/// The event that tells of an order now in `status` (`None`: there is none).
fn event_for(status: OrderStatus) -> Option<EventType> {
    match status {
        OrderStatus::Paid => Some(EventType::OrderPaid),
        OrderStatus::Failed => Some(EventType::OrderFailed),
        OrderStatus::Cancelled => Some(EventType::OrderCancelled),
        OrderStatus::Expired => Some(EventType::OrderExpired),
        // A completed order is told as `activation.confirmed`; a refund, by
        // `record_refund` when the money has gone back.
        OrderStatus::PendingPayment | OrderStatus::Completed | OrderStatus::Refunded => None,
    }
}

/// Tells `order`'s state as its event (if that state has one), to `recipients`.
pub fn tell(
    conn: &mut DbConnection,
    recipients: &events::Recipients,
    order: &OrderRow,
    now: NaiveDateTime,
) -> Result<(), ApiError> {
    match event_for(order.status) {
        Some(event_type) => {
            events::append_to(conn, recipients, event_type, &Order::try_from(order)?, now)
        }
        None => Ok(()),
    }
}

/// The card row's lock makes the count and the insert one step per card.
fn limit_scheduled(
    conn: &mut DbConnection,
    iccid: &str,
    now: NaiveDateTime,
) -> Result<(), ApiError> {
    card_store::lock_card(conn, iccid, now)?;
    if store::count_scheduled(conn, iccid, now)? >= MAX_SCHEDULED_PER_CARD {
        return Err(ApiError::conflict(format!(
            "card {iccid} already holds {MAX_SCHEDULED_PER_CARD} scheduled orders; cancel one or wait until one starts"
        )));
    }
    Ok(())
}

fn pending_row(
    partner_id: &str,
    request: &OrderRequest,
    priced: &Priced,
    provider: Option<&str>,
    now: NaiveDateTime,
) -> OrderRow {
    OrderRow {
        id: uuid::Uuid::now_v7().to_string(),
        partner_id: partner_id.to_owned(),
        iccid: priced.iccid.clone(),
        plan_id: priced.plan_id.clone(),
        status: OrderStatus::PendingPayment,
        amount: priced.amount,
        currency: request.currency,
        payment_method: request.payment_method,
        payment_status: PaymentStatus::Pending,
        receipt_number: None,
        client_reference: request.client_reference.clone(),
        refunded_amount: None,
        refunded_at: None,
        paid_at: None,
        closed_at: None,
        created_at: now,
        updated_at: now,
        provider: provider.map(str::to_owned),
        provider_payment_id: None,
        next_action: None,
        provider_session_id: None,
        provider_attempt: 0,
        provider_closed_at: None,
        payment_issue: None,
        start_at: request.start_at,
    }
}

/// Records the provider's payment (its payment id, or the hosted page's session id) and
/// the client's next action on a pending order.
pub fn attach_payment(
    conn: &mut DbConnection,
    order: &OrderRow,
    payment_id: Option<&str>,
    session_id: Option<&str>,
    next_action: &NextAction,
    now: NaiveDateTime,
) -> Result<OrderRow, ApiError> {
    let mut row = order.clone();
    row.provider_payment_id = payment_id.map(str::to_owned);
    row.provider_session_id = session_id.map(str::to_owned);
    row.next_action = Some(serde_json::to_string(next_action).map_err(ApiError::internal)?);
    row.updated_at = now;
    if !store::update_if_status(conn, &row, order.status)? {
        // Settled (or expired) meanwhile: keep what is stored.
        return store::find(conn, &order.id)?.ok_or_else(|| ApiError::internal("order vanished"));
    }
    Ok(row)
}

impl OrderQuery {
    pub fn filter(&self) -> Result<OrderFilter, ApiError> {
        let mut errors = Vec::new();
        let status = self.status.as_deref().and_then(|text| {
            text.parse::<OrderStatus>()
                .map_err(|_| {
                    errors.push(FieldError::new(
                        "status",
                        format!("`{text}` is not an order status"),
                    ))
                })
                .ok()
        });
        let iccid = self.iccid.as_deref().and_then(|text| {
            text.parse::<Iccid>()
                .map_err(|e| errors.push(FieldError::new("iccid", e)))
                .ok()
        });
        for (field, at) in [
            ("created_after", self.created_after),
            ("created_before", self.created_before),
        ] {
            if let Some(Err(why)) = at.map(time::check_accepted) {
                errors.push(FieldError::new(field, why));
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        Ok(OrderFilter {
            status,
            iccid: iccid.map(|i| i.as_str().to_owned()),
            created_after: self.created_after.map(time::to_db),
            created_before: self.created_before.map(time::to_db),
        })
    }
}
