//! The renewal sweep: every due subscription places its renewal through the order path
//! (`checkout::place_wallet_order_in`, as `POST /v1/orders` does), in one transaction
//! with the subscription's move to its next term. The subscription row is claimed
//! first (a conditional update on "active and due"), so a term is renewed at most once
//! across instances, restarts and retries: (subscription, `covered_until`) is the
//! renewal's key. A refusal (no funds, a plan off sale, a suspended card) is recorded
//! and told instead, and tried again later.

use chrono::NaiveDateTime;
use diesel::Connection;

use super::checkout;
use crate::catalog::store as catalog_store;
use crate::clock::Clock;
use crate::db::{Db, DbConnection};
use crate::domain::{Iccid, PaymentMethod};
use crate::error::{ApiError, TxError};
use crate::events::{self, EventType};
use crate::orders::model::{Order, OrderRequest};
use crate::subscriptions::model::{Subscription, SubscriptionRenewal, SubscriptionStatus};
use crate::subscriptions::{self, store};

/// Subscriptions looked at per query.
const BATCH: i64 = 100;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub renewed: usize,
    pub failed: usize,
    pub lapsed: usize,
}

enum Outcome {
    Renewed,
    Failed,
    Lapsed,
    /// Not due after all (renewed elsewhere, paused, or its card renewed by hand).
    Skipped,
}

/// Renews every subscription due now.
pub async fn renew_due(db: &Db, clock: &Clock, smdp_address: &str) -> Result<Tally, ApiError> {
    let mut tally = Tally::default();
    loop {
        let now = clock.now_db();
        let due = db
            .run(move |conn| store::due(conn, now, BATCH).map_err(ApiError::from))
            .await?;
        let full = due.len() as i64 >= BATCH;
        let mut progressed = false;
        for id in due {
            let smdp_address = smdp_address.to_owned();
            let outcome = db
                .transaction(move |conn| renew_one(conn, &id, &smdp_address, now))
                .await;
            match outcome {
                Ok(Outcome::Renewed) => tally.renewed += 1,
                Ok(Outcome::Failed) => tally.failed += 1,
                Ok(Outcome::Lapsed) => tally.lapsed += 1,
                Ok(Outcome::Skipped) | Err(TxError::Conflict) => continue,
                Err(TxError::Failed(e)) => return Err(e),
            }
            progressed = true;
        }
        if !full || !progressed {
            return Ok(tally);
        }
    }
}

fn renew_one(
    conn: &mut DbConnection,
    id: &str,
    smdp_address: &str,
    now: NaiveDateTime,
) -> Result<Outcome, TxError> {
    if !store::claim_due(conn, id, now)? {
        return Ok(Outcome::Skipped);
    }
    let mut row =
        store::find(conn, id)?.ok_or_else(|| ApiError::internal("subscription vanished"))?;
    let (card_type, end) = subscriptions::service_end(conn, &row.iccid, now)?;
    // Renewed by hand meanwhile (or by an order placed beside it): the term to renew is
    // the one that now ends the service.
    if end > row.covered_until {
        row.covered_until = end;
        row.updated_at = now;
        subscriptions::schedule(&mut row, card_type);
        if row.next_renewal_at.is_some_and(|at| at > now) {
            store::save(conn, &row)?;
            return Ok(Outcome::Skipped);
        }
    }
    let request = OrderRequest {
        iccid: row
            .iccid
            .parse::<Iccid>()
            .map_err(|e| ApiError::internal(format!("stored ICCID unreadable: {e}")))?,
        plan_id: row
            .plan_id
            .parse()
            .map_err(|e| ApiError::internal(format!("stored plan id unreadable: {e}")))?,
        currency: row.currency,
        payment_method: PaymentMethod::Wallet,
        client_reference: Some(format!("subscription {}", row.id)),
        start_at: None,
    };
    // In a savepoint: a refused order leaves nothing behind, and its refusal is
    // recorded in this transaction instead.
    let placed = conn.transaction(|conn| {
        checkout::place_wallet_order_in(conn, &row.partner_id, &request, smdp_address, now)
    });
    match placed {
        Ok(order) => {
            let plan = catalog_store::find_by_id(conn, &row.plan_id)?
                .ok_or_else(|| ApiError::internal("a subscription's plan is missing"))?;
            row.covered_until =
                subscriptions::covered_after_renewal(row.covered_until, now, plan.validity_days);
            row.renewals = row.renewals.saturating_add(1);
            row.failed_attempts = 0;
            row.last_failure = None;
            row.last_order_id = Some(order.id.clone());
            row.updated_at = now;
            subscriptions::schedule(&mut row, card_type);
            store::save(conn, &row)?;
            let renewal = SubscriptionRenewal {
                subscription: Subscription::try_from(&row)?,
                order: Order::try_from(&order)?,
            };
            events::append(
                conn,
                &row.partner_id,
                EventType::SubscriptionRenewed,
                &renewal,
                now,
            )?;
            Ok(Outcome::Renewed)
        }
        Err(ApiError::Problem { code, detail, .. }) => {
            row.failed_attempts = row.failed_attempts.saturating_add(1);
            row.last_failure = Some(format!("{}: {detail}", code.as_str()));
            row.updated_at = now;
            let (event_type, outcome) = match subscriptions::retry_after_failure(
                row.failed_attempts,
                row.covered_until,
                now,
            ) {
                Some(retry) => {
                    row.next_renewal_at = Some(retry);
                    (EventType::SubscriptionRenewalFailed, Outcome::Failed)
                }
                None => {
                    row.status = SubscriptionStatus::Lapsed;
                    row.next_renewal_at = None;
                    (EventType::SubscriptionLapsed, Outcome::Lapsed)
                }
            };
            store::save(conn, &row)?;
            let shown = Subscription::try_from(&row)?;
            events::append(conn, &row.partner_id, event_type, &shown, now)?;
            Ok(outcome)
        }
        Err(other) => Err(TxError::Failed(other)),
    }
}
