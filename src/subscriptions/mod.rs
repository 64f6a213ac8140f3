//! Subscriptions: a card renewed automatically from its partner's wallet, one renewal
//! per term. The rules of when are here; the renewal itself goes through the order path
//! (`fulfilment::renewals`, the sweep), which this module does not call.
//!
//! FM cards are renewed `renew_days_before_expiry` before their service ends (the new
//! term extends it); eSIMs when their term ends (the new one replaces it, so no day is
//! forfeited). `covered_until` is where the service ends counting the renewals placed,
//! so a renewal the network has not confirmed yet is never placed twice.

pub mod model;
pub mod routes;
pub mod store;

use chrono::{NaiveDateTime, TimeDelta};

use crate::cards::{self, store as card_store, terms};
use crate::db::{Db, DbConnection};
use crate::domain::{CardType, Currency, Iccid, PaymentMethod};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::orders::{self, model::OrderRequest};
use crate::pagination::PageRequest;
use model::{
    Subscription, SubscriptionList, SubscriptionRequest, SubscriptionRow, SubscriptionStatus,
    SubscriptionTerms,
};

pub const DEFAULT_DAYS_BEFORE: i32 = 1;
const MAX_DAYS_BEFORE: i64 = 30;
const MAX_RENEWALS: i64 = 1000;
/// After a failed try the next comes after these, in turn, then after the last one
/// again; once they are spent and the term has ended, the subscription lapses.
pub const RETRY_DELAYS: [TimeDelta; 3] = [
    TimeDelta::hours(1),
    TimeDelta::hours(6),
    TimeDelta::hours(24),
];

/// When the renewal of the term ending at `covered_until` is placed.
pub fn due_at(
    card_type: CardType,
    covered_until: NaiveDateTime,
    days_before: i32,
) -> NaiveDateTime {
    match card_type {
        CardType::Fm => covered_until - TimeDelta::days(i64::from(days_before)),
        CardType::Esim => covered_until,
    }
}

/// When to try again after the `failed_attempts`-th failure in a row; `None`: the
/// retries are spent and the term has ended, so the subscription lapses.
pub fn retry_after_failure(
    failed_attempts: i32,
    covered_until: NaiveDateTime,
    now: NaiveDateTime,
) -> Option<NaiveDateTime> {
    let spent = usize::try_from(failed_attempts).unwrap_or(usize::MAX) > RETRY_DELAYS.len();
    if spent && now >= covered_until {
        return None;
    }
    let step = usize::try_from(failed_attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(RETRY_DELAYS.len() - 1);
    Some(now + RETRY_DELAYS[step])
}

/// Where service ends once a renewal of `validity_days` placed at `now` takes effect:
/// after the covered term, or from now when it has already ended.
pub fn covered_after_renewal(
    covered_until: NaiveDateTime,
    now: NaiveDateTime,
    validity_days: i32,
) -> NaiveDateTime {
    covered_until.max(now) + terms::term_length(validity_days)
}

/// Where the subscription stands after a renewal: `cancelled` once it has made
/// `ends_after_renewals`, otherwise due again for the new term.
pub fn schedule(row: &mut SubscriptionRow, card_type: CardType) {
    if row
        .ends_after_renewals
        .is_some_and(|limit| row.renewals >= limit)
    {
        row.status = SubscriptionStatus::Cancelled;
        row.next_renewal_at = None;
    } else if row.status == SubscriptionStatus::Active {
        row.next_renewal_at = Some(due_at(
            card_type,
            row.covered_until,
            row.renew_days_before_expiry,
        ));
    } else {
        row.next_renewal_at = None;
    }
}

impl SubscriptionRequest {
    /// Every field parsed, every bad one named (`422`).
    pub fn parse(&self) -> Result<SubscriptionTerms, ApiError> {
        let mut errors = Vec::new();
        let currency = self
            .currency
            .parse::<Currency>()
            .map_err(|e| errors.push(FieldError::new("currency", e.to_string())))
            .ok();
        let days = self
            .renew_days_before_expiry
            .unwrap_or(i64::from(DEFAULT_DAYS_BEFORE));
        if !(0..=MAX_DAYS_BEFORE).contains(&days) {
            errors.push(FieldError::new(
                "renew_days_before_expiry",
                format!("must be 0 to {MAX_DAYS_BEFORE}"),
            ));
        }
        if self
            .ends_after_renewals
            .is_some_and(|n| !(1..=MAX_RENEWALS).contains(&n))
        {
            errors.push(FieldError::new(
                "ends_after_renewals",
                format!("must be 1 to {MAX_RENEWALS}"),
            ));
        }
        match currency {
            Some(currency) if errors.is_empty() => Ok(SubscriptionTerms {
                plan_id: self.plan_id,
                currency,
                renew_days_before_expiry: i32::try_from(days).unwrap_or(DEFAULT_DAYS_BEFORE),
                ends_after_renewals: self.ends_after_renewals.and_then(|n| i32::try_from(n).ok()),
            }),
            _ => Err(ApiError::validation(errors)),
        }
    }
}

pub fn no_subscription(iccid: &str) -> ApiError {
    ApiError::not_found(format!("card {iccid} has no subscription of yours"))
}

/// The card's type and its end of service now (its terms, queued ones included), or
/// `now`: what a subscription's schedule is computed from, here and in the sweep.
pub fn service_end(
    conn: &mut DbConnection,
    iccid: &str,
    now: NaiveDateTime,
) -> Result<(CardType, NaiveDateTime), ApiError> {
    let card = card_store::find_card(conn, iccid)?.ok_or_else(|| cards::no_card(iccid))?;
    let terms = card_store::terms_of(conn, std::slice::from_ref(&card.iccid))?;
    let end = terms::service_end(&terms, now).unwrap_or(now);
    Ok((card.card_type, end))
}

/// Subscribes a card (or changes its subscription's plan and timing): the plan must be
/// on sale for the card and priced in the currency, the card not suspended, exactly as
/// an order would be checked. `true` when a new subscription was made.
pub async fn subscribe(
    db: &Db,
    partner_id: String,
    iccid: Iccid,
    wanted: SubscriptionTerms,
    now: NaiveDateTime,
) -> Result<(Subscription, bool), ApiError> {
    db.transaction(move |conn| {
        let probe = OrderRequest {
            iccid: iccid.clone(),
            plan_id: wanted.plan_id,
            currency: wanted.currency,
            payment_method: PaymentMethod::Wallet,
            client_reference: None,
            start_at: None,
        };
        orders::price(conn, &partner_id, &probe)?;
        let iccid = iccid.to_string();
        card_store::lock_card(conn, &iccid, now)?;
        let (card_type, end) = service_end(conn, &iccid, now)?;
        store::lock_for_card(conn, &iccid, now)?;
        let existing = store::find_by_card(conn, &iccid)?;
        let mut row = match existing {
            Some(row)
                if row.partner_id == partner_id
                    && matches!(
                        row.status,
                        SubscriptionStatus::Active | SubscriptionStatus::Paused
                    ) =>
            {
                row
            }
            stale => {
                if let Some(stale) = stale {
                    store::delete(conn, &stale.id)?;
                }
                let mut row = SubscriptionRow {
                    id: uuid::Uuid::now_v7().to_string(),
                    partner_id: partner_id.clone(),
                    iccid: iccid.clone(),
                    plan_id: wanted.plan_id.to_string(),
                    currency: wanted.currency,
                    renew_days_before_expiry: wanted.renew_days_before_expiry,
                    ends_after_renewals: wanted.ends_after_renewals,
                    status: SubscriptionStatus::Active,
                    covered_until: end,
                    next_renewal_at: None,
                    last_order_id: None,
                    renewals: 0,
                    failed_attempts: 0,
                    last_failure: None,
                    created_at: now,
                    updated_at: now,
                };
                schedule(&mut row, card_type);
                store::insert(conn, &row)?;
                return Ok((Subscription::try_from(&row)?, true));
            }
        };
        row.plan_id = wanted.plan_id.to_string();
        row.currency = wanted.currency;
        row.renew_days_before_expiry = wanted.renew_days_before_expiry;
        row.ends_after_renewals = wanted.ends_after_renewals;
        row.covered_until = row.covered_until.max(end);
        row.updated_at = now;
        schedule(&mut row, card_type);
        store::save(conn, &row)?;
        Ok((Subscription::try_from(&row)?, false))
    })
    .await
}

pub async fn get(db: &Db, partner_id: String, iccid: Iccid) -> Result<Subscription, ApiError> {
    let iccid = iccid.to_string();
    db.run(move |conn| {
        let row = store::find_for_card(conn, &partner_id, &iccid)?
            .ok_or_else(|| no_subscription(&iccid))?;
        Subscription::try_from(&row)
    })
    .await
}

/// What a partner asks of its subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Pause,
    Resume,
    Cancel,
}

/// Pauses, resumes or cancels the card's subscription. Asking for the state it is in
/// changes nothing; a cancelled one stays cancelled (`409` to pause or resume it), a
/// lapsed one can be resumed or cancelled. Resumed, it is due again by its rule (at
/// once if that moment has passed).
pub async fn change(
    db: &Db,
    partner_id: String,
    iccid: Iccid,
    change: Change,
    now: NaiveDateTime,
) -> Result<Subscription, ApiError> {
    let iccid = iccid.to_string();
    db.transaction(move |conn| {
        store::lock_for_card(conn, &iccid, now)?;
        let mut row = store::find_for_card(conn, &partner_id, &iccid)?
            .ok_or_else(|| no_subscription(&iccid))?;
        use SubscriptionStatus::{Active, Cancelled, Lapsed, Paused};
        let to = match (change, row.status) {
            (Change::Cancel, _) => Cancelled,
            (_, Cancelled) | (Change::Pause, Lapsed) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidStateTransition,
                    format!(
                        "the subscription is {}; it cannot be changed so",
                        row.status
                    ),
                ))
            }
            (Change::Pause, _) => Paused,
            (Change::Resume, _) => Active,
        };
        if to == row.status {
            return Subscription::try_from(&row);
        }
        if to == Active {
            let (card_type, end) = service_end(conn, &iccid, now)?;
            row.covered_until = row.covered_until.max(end);
            row.failed_attempts = 0;
            row.status = Active;
            schedule(&mut row, card_type);
        } else {
            row.status = to;
            row.next_renewal_at = None;
        }
        row.updated_at = now;
        store::save(conn, &row)?;
        Subscription::try_from(&row)
    })
    .await
}

/// A partner's subscriptions, a page at a time.
pub async fn list(
    db: &Db,
    partner_id: String,
    status: Option<SubscriptionStatus>,
    page: PageRequest,
) -> Result<SubscriptionList, ApiError> {
    db.run(move |conn| {
        let rows = store::list_for_partner(conn, &partner_id, status, &page)?;
        let (rows, next_cursor) = page.finish(rows, |row| row.id.clone());
        Ok(SubscriptionList {
            data: rows
                .iter()
                .map(Subscription::try_from)
                .collect::<Result<_, _>>()?,
            next_cursor,
        })
    })
    .await
}

/// The subscription's renewal order `order_id` will not take effect (the network
/// failed it, or its partner cancelled it and was refunded): the subscription covers
/// only what the card really has again. A failure is tried again at once (and told);
/// a cancellation pauses the subscription, since its partner chose not to renew now.
/// `None` when the order was no subscription's latest renewal. Runs in the caller's
/// transaction.
pub fn renewal_undone(
    conn: &mut DbConnection,
    order_id: &str,
    cancelled: bool,
    why: &str,
    now: NaiveDateTime,
) -> Result<Option<Subscription>, ApiError> {
    let Some(found) = store::find_by_last_order(conn, order_id)? else {
        return Ok(None);
    };
    store::lock_for_card(conn, &found.iccid, now)?;
    let Some(mut row) = store::find(conn, &found.id)? else {
        return Ok(None);
    };
    if row.last_order_id.as_deref() != Some(order_id)
        || !matches!(
            row.status,
            SubscriptionStatus::Active | SubscriptionStatus::Paused
        )
    {
        return Ok(None);
    }
    let (card_type, end) = service_end(conn, &row.iccid, now)?;
    row.covered_until = end;
    row.renewals = row.renewals.saturating_sub(1);
    row.updated_at = now;
    if cancelled {
        row.status = SubscriptionStatus::Paused;
        row.next_renewal_at = None;
    } else {
        row.failed_attempts = row.failed_attempts.saturating_add(1);
        row.last_failure = Some(format!("renewal order {order_id} failed: {why}"));
        schedule(&mut row, card_type);
        row.next_renewal_at = row.next_renewal_at.map(|due| due.min(now));
    }
    store::save(conn, &row)?;
    Ok(Some(Subscription::try_from(&row)?))
}

/// An operator's view of a partner's subscriptions (`404` if there is no such partner).
pub async fn list_of_partner(
    db: &Db,
    partner_id: String,
    status: Option<SubscriptionStatus>,
    page: PageRequest,
) -> Result<SubscriptionList, ApiError> {
    let known = partner_id.clone();
    let exists = db
        .run(move |conn| crate::partners::store::find_partner(conn, &known).map_err(ApiError::from))
        .await?
        .is_some();
    if !exists {
        return Err(ApiError::not_found(format!("no partner {partner_id}")));
    }
    list(db, partner_id, status, page).await
}

/// `?status=` parsed (`422` naming `status`).
pub fn status_filter(text: Option<&str>) -> Result<Option<SubscriptionStatus>, ApiError> {
    text.map(|s| {
        s.parse::<SubscriptionStatus>().map_err(|_| {
            ApiError::validation(vec![FieldError::new(
                "status",
                format!("`{s}` is not a status: use active, paused, lapsed or cancelled"),
            )])
        })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cards::terms::tests::at;

    #[test]
    fn fm_renews_days_before_and_esim_at_the_end() {
        let end = at(30, 0);
        assert_eq!(due_at(CardType::Fm, end, 3), at(27, 0));
        assert_eq!(due_at(CardType::Fm, end, 0), end);
        assert_eq!(due_at(CardType::Esim, end, 3), end, "no day forfeited");
    }

    #[test]
    fn failures_are_retried_until_the_term_ended_and_the_retries_are_spent() {
        let end = at(20, 0);
        let before = at(19, 0);
        assert_eq!(
            retry_after_failure(1, end, before),
            Some(before + TimeDelta::hours(1))
        );
        assert_eq!(
            retry_after_failure(2, end, before),
            Some(before + TimeDelta::hours(6))
        );
        assert_eq!(
            retry_after_failure(3, end, before),
            Some(before + TimeDelta::hours(24))
        );
        // Spent, but the term runs on: every 24 h until it ends.
        assert_eq!(
            retry_after_failure(9, end, before),
            Some(before + TimeDelta::hours(24))
        );
        // Ended, retries left: go on; ended and spent: lapse.
        assert_eq!(retry_after_failure(2, end, at(21, 0)), Some(at(21, 6)));
        assert_eq!(retry_after_failure(4, end, at(21, 0)), None);
    }

    #[test]
    fn a_renewal_covers_from_the_end_or_from_now() {
        assert_eq!(
            covered_after_renewal(at(20, 0), at(19, 0), 30),
            at(20, 0) + TimeDelta::days(30)
        );
        assert_eq!(
            covered_after_renewal(at(20, 0), at(22, 0), 30),
            at(22, 0) + TimeDelta::days(30)
        );
    }
}
