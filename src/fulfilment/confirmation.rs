//! The renewal took effect, or could not: confirming creates the card's new term by its
//! type's rule and completes the order; failing fails the order and refunds a wallet
//! payment. Each in one transaction, each idempotent against a repeat.

use chrono::NaiveDateTime;

use crate::activation::store::{self as activation_store, ConfirmedTerm};
use crate::activation::{
    self, renewal, Activation, ActivationRow, ActivationStatus, Caller, Confirmation,
};
use crate::cards::{self, store as card_store};
use crate::catalog::store as catalog_store;
use crate::clock::Clock;
use crate::db::{Db, DbConnection};
use crate::domain::CardType;
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::events::{self, EventType};
use crate::orders::model::PaymentStatus;
use crate::orders::{self, state::OrderEvent};
use crate::payments::Payments;
use crate::subscriptions;

use super::refunds;

/// Confirms the renewal took effect: creates the term by the card type's rule, records
/// the dates, completes the order. Confirming again answers with the same activation
/// and changes nothing. Runs in the caller's transaction.
pub fn confirm_in(
    conn: &mut DbConnection,
    caller: &Caller,
    order_id: &str,
    confirmation: &Confirmation,
    now: NaiveDateTime,
) -> Result<ActivationRow, ApiError> {
    let eid = confirmation.eid()?;
    let order = activation::load_order(conn, caller, order_id)?;
    let existing =
        activation_store::find(conn, &order.id)?.ok_or_else(|| activation::not_paid(&order))?;
    if order.payment_status == PaymentStatus::Refunded {
        return Err(ApiError::new(
            ErrorCode::InvalidStateTransition,
            "the order's payment was refunded; its renewal cannot take effect",
        ));
    }
    match existing.status {
        ActivationStatus::Confirmed => return Ok(existing),
        ActivationStatus::Failed => return Err(activation::already_failed()),
        ActivationStatus::Pending if existing.awaits_verification() => {
            return Err(activation::awaiting_verification())
        }
        ActivationStatus::Pending => {}
    }
    card_store::lock_card(conn, &order.iccid, now)?;
    if !activation_store::claim_pending(conn, &order.id, ActivationStatus::Confirmed, None, now)? {
        // A concurrent confirmation (or failure) got here first.
        let current =
            activation_store::find(conn, &order.id)?.ok_or_else(|| activation::not_paid(&order))?;
        return match current.status {
            ActivationStatus::Confirmed => Ok(current),
            _ => Err(activation::already_failed()),
        };
    }
    let card =
        card_store::find_card(conn, &order.iccid)?.ok_or_else(|| cards::no_card(&order.iccid))?;
    if let Some(eid) = eid {
        if card.card_type != CardType::Esim {
            return Err(ApiError::validation(vec![FieldError::new(
                "eid",
                "only eSIM cards have an EID",
            )]));
        }
        match card.eid.as_deref() {
            Some(known) if known != eid.as_str() => {
                return Err(ApiError::new(
                    ErrorCode::EidMismatch,
                    "this card's profile is bound to another EID; nothing was changed",
                ))
            }
            Some(_) => {}
            None => card_store::record_eid(conn, &card.iccid, eid.as_str())?,
        }
    }
    let plan = catalog_store::find_by_id(conn, &order.plan_id)?
        .ok_or_else(|| ApiError::internal("an order's plan is missing"))?;
    let existing_terms = card_store::terms_of(conn, std::slice::from_ref(&card.iccid))?;
    let renewal = renewal::plan(card.card_type, &existing_terms, plan.validity_days, now);
    if let Some((term_id, ends)) = &renewal.truncate {
        card_store::end_term(conn, &card.iccid, term_id, *ends)?;
    }
    for (term_id, from, until) in &renewal.requeue {
        card_store::move_term(conn, &card.iccid, term_id, *from, *until)?;
    }
    let term = cards::term_from_plan(
        &card.iccid,
        &plan,
        Some(order.id.clone()),
        renewal.effective_from,
        now,
    );
    card_store::insert_term(conn, &term)?;
    activation_store::record_confirmation(
        conn,
        &order.id,
        &ConfirmedTerm {
            term_id: &term.id,
            effective_from: term.valid_from,
            valid_until: term.valid_until,
            previous_valid_until: renewal.previous_valid_until,
        },
        now,
    )?;
    orders::transition(conn, &order, OrderEvent::ActivationConfirmed, now)?;
    let confirmed = activation_store::find(conn, &order.id)?
        .ok_or_else(|| ApiError::internal("activation vanished"))?;
    tell(
        conn,
        &order.partner_id,
        EventType::ActivationConfirmed,
        &confirmed,
        now,
    )?;
    Ok(confirmed)
}

/// Tells `order`'s partner that its activation failed (the activation was just moved
/// to failed, in this transaction).
pub fn tell_failed(
    conn: &mut DbConnection,
    order: &crate::orders::model::OrderRow,
    now: NaiveDateTime,
) -> Result<(), ApiError> {
    let activation = activation_store::find(conn, &order.id)?
        .ok_or_else(|| ApiError::internal("activation vanished"))?;
    tell(
        conn,
        &order.partner_id,
        EventType::ActivationFailed,
        &activation,
        now,
    )
}

/// Appends the activation's event to its partner's feed, in the change's transaction.
fn tell(
    conn: &mut DbConnection,
    partner_id: &str,
    event_type: EventType,
    activation: &ActivationRow,
    now: NaiveDateTime,
) -> Result<(), ApiError> {
    let shown = activation::view(conn, activation)?;
    events::append(conn, partner_id, event_type, &shown, now)
}

/// The network reports the renewal could not be applied: the order fails and a wallet
/// payment is refunded, once. Runs in the caller's transaction.
pub fn fail_in(
    conn: &mut DbConnection,
    order_id: &str,
    reason: &str,
    now: NaiveDateTime,
) -> Result<ActivationRow, ApiError> {
    let order = activation::load_order(conn, &Caller::Network, order_id)?;
    activation_store::find(conn, &order.id)?.ok_or_else(|| activation::not_paid(&order))?;
    if !activation_store::claim_pending(
        conn,
        &order.id,
        ActivationStatus::Failed,
        Some(reason),
        now,
    )? {
        return Err(ApiError::new(
            ErrorCode::InvalidStateTransition,
            "the activation is no longer pending; it cannot fail now",
        ));
    }
    let failed = orders::transition(conn, &order, OrderEvent::ActivationFailed, now)?;
    if failed.holds_external_payment() {
        refunds::request_rest_in(conn, &failed, now)?;
    } else {
        refunds::refund_to_wallet_in(conn, &failed, now)?;
    }
    tell_failed(conn, &order, now)?;
    if let Some(subscription) = subscriptions::renewal_undone(conn, &order.id, false, reason, now)?
    {
        events::append(
            conn,
            &order.partner_id,
            EventType::SubscriptionRenewalFailed,
            &subscription,
            now,
        )?;
    }
    activation_store::find(conn, &order.id)?
        .ok_or_else(|| ApiError::internal("activation vanished"))
}

/// Confirms in one transaction of its own (see [`confirm_in`]).
pub async fn confirm(
    db: &Db,
    caller: Caller,
    order_id: String,
    confirmation: Confirmation,
    now: NaiveDateTime,
) -> Result<Activation, ApiError> {
    db.transaction(move |conn| {
        let row = confirm_in(conn, &caller, &order_id, &confirmation, now)?;
        activation::view(conn, &row)
    })
    .await
}

/// Fails in one transaction of its own (see [`fail_in`]); an external payment is then
/// refunded through its provider.
pub async fn fail(
    db: &Db,
    payments: &Payments,
    clock: &Clock,
    order_id: String,
    reason: String,
) -> Result<Activation, ApiError> {
    let now = clock.now_db();
    let (order_id, shown) = db
        .transaction(move |conn| {
            let row = fail_in(conn, &order_id, &reason, now)?;
            Ok::<_, ApiError>((row.order_id.clone(), activation::view(conn, &row)?))
        })
        .await?;
    refunds::make_refunds_of(db, payments, clock, order_id).await?;
    Ok(shown)
}
