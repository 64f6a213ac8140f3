//! The flows that cross capabilities: placing an order and taking its money (wallet or
//! provider), settling a provider's payment, confirming or failing the activation
//! (by a call, or by the SM-DP+'s profile events), cancelling, expiring and refunding. The only module that calls orders, wallet,
//! activation and payments together; none of them calls it.
//!
//! Each use-case function here owns its transaction: it opens it (`Db::transaction`) or,
//! when named `…_in`, runs inside the one its caller opened. Nothing below it opens one.

pub mod cancellation;
pub mod checkout;
pub mod confirmation;
pub mod profile_events;
pub mod receipts;
pub mod refunds;
pub mod renewals;
pub mod routes;
pub mod scheduled;
pub mod settlement;

use chrono::NaiveDateTime;

use crate::activation;
use crate::cards::model::CardRow;
use crate::cards::store as card_store;
use crate::db::DbConnection;
use crate::domain::CardType;
use crate::error::ApiError;
use crate::orders::{self, model::OrderRow, state::OrderEvent};

/// The one way an order becomes paid, whoever paid (wallet, webhook, sandbox): the
/// transition (state, receipt number) and, unless it is scheduled to start later, the
/// order's pending activation, together.
pub fn mark_paid_in(
    conn: &mut DbConnection,
    order: &OrderRow,
    smdp_address: &str,
    now: NaiveDateTime,
) -> Result<OrderRow, ApiError> {
    let paid = orders::transition(conn, order, OrderEvent::PaymentSucceeded, now)?;
    if !paid.waits_for_start(now) {
        open_activation_in(conn, &paid, smdp_address, now)?;
    }
    Ok(paid)
}

/// Makes a paid order's pending activation, the moment its renewal starts: an eSIM
/// whose profile is known to be installed (the SM-DP+ says so, or nothing was reported
/// and an earlier renewal of it was confirmed) is renewed in place, without a new code;
/// a new code is withheld until the subscriber is verified if the partner wants that.
pub fn open_activation_in(
    conn: &mut DbConnection,
    order: &OrderRow,
    smdp_address: &str,
    now: NaiveDateTime,
) -> Result<(), ApiError> {
    let card = card_store::find_card(conn, &order.iccid)?
        .ok_or_else(|| ApiError::internal("an order's card is missing"))?;
    let verify = crate::partners::store::find_partner(conn, &order.partner_id)?
        .ok_or_else(|| ApiError::internal("an order's partner is missing"))?
        .verify_subscriber_before_release;
    open_activation_for(conn, order, &card, verify, smdp_address, now)
}

/// [`open_activation_in`] with the order's card and its partner's verification setting
/// already read.
pub fn open_activation_for(
    conn: &mut DbConnection,
    order: &OrderRow,
    card: &CardRow,
    verify: bool,
    smdp_address: &str,
    now: NaiveDateTime,
) -> Result<(), ApiError> {
    let pending = activation_for(conn, order, card, verify, smdp_address, now)?;
    activation::store::insert(conn, &pending)?;
    Ok(())
}

/// The activation [`open_activation_for`] writes, not yet written.
pub fn activation_for(
    conn: &mut DbConnection,
    order: &OrderRow,
    card: &CardRow,
    verify: bool,
    smdp_address: &str,
    now: NaiveDateTime,
) -> Result<activation::ActivationRow, ApiError> {
    let installed = card.card_type == CardType::Esim
        && match card.profile_state {
            Some(state) => state.is_installed(),
            None => activation::store::any_confirmed(conn, &card.iccid)?,
        };
    let pending = activation::new_pending(
        &order.id,
        &order.iccid,
        card.card_type,
        installed,
        verify,
        smdp_address,
        now,
    );
    Ok(pending)
}
