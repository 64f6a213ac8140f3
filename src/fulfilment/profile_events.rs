//! Profile events from the SM-DP+: each is kept once per event id, moves the card's
//! profile state when it is the latest, tells the partner `profile.state_changed`, and
//! an `installed` or `enabled` event naming a pending activation's matching id confirms
//! that activation by the same rule as `POST …/activation/confirm`. One transaction
//! per event, all of it or nothing.

use chrono::NaiveDateTime;
use diesel::Connection;
use serde::Serialize;
use utoipa::ToSchema;

use super::confirmation;
use crate::activation::profile::{
    self, ProfileEvent, ProfileEventBatch, ProfileEventReport, ProfileEventRow, ProfileStateChange,
};
use crate::activation::{store as activation_store, ActivationStatus, Caller, Confirmation};
use crate::cards::store as card_store;
use crate::db::{Db, DbConnection};
use crate::domain::{time, CardType, ProfileState};
use crate::error::{ApiError, TxError};
use crate::events::{self, EventType};
use crate::usage::RejectedRecord;

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ProfileEventOutcome {
    /// Events applied now.
    pub accepted: usize,
    /// Events whose id was applied before; not applied again.
    pub duplicates: usize,
    /// Events not applied, with why; they may be sent again once fixed.
    pub rejected: Vec<RejectedRecord>,
}

enum Applied {
    Accepted,
    Duplicate,
}

/// Why an event is refused; the transaction is rolled back so nothing of it stays.
fn refuse(reason: &str) -> TxError {
    TxError::Failed(ApiError::bad_request(reason))
}

fn apply(
    conn: &mut DbConnection,
    report: &ProfileEventReport,
    received_at: NaiveDateTime,
) -> Result<Applied, TxError> {
    if profile::is_recorded(conn, &report.id)? {
        return Ok(Applied::Duplicate);
    }
    // Locked first: a card's events are applied one after another on any instance.
    card_store::lock_card(conn, &report.iccid, received_at)?;
    let Some(card) = card_store::find_card(conn, &report.iccid)? else {
        return Err(refuse("unknown ICCID"));
    };
    if card.card_type != CardType::Esim {
        return Err(refuse(
            "profile events are for eSIM cards; this is an FM card",
        ));
    }
    if let (Some(reported), Some(known)) = (&report.eid, &card.eid) {
        if reported != known {
            return Err(refuse("this card's profile is bound to another EID"));
        }
    }
    let activation = match &report.matching_id {
        None => None,
        Some(matching_id) => match activation_store::find_by_matching_id(conn, matching_id)? {
            Some(found) if found.iccid == card.iccid => Some(found),
            _ => return Err(refuse("no activation of this card has this matching id")),
        },
    };
    let row = ProfileEventRow {
        id: report.id.clone(),
        iccid: card.iccid.clone(),
        matching_id: report.matching_id.clone(),
        eid: report.eid.clone(),
        state: report.state,
        occurred_at: time::to_db(report.occurred_at),
        reason: report
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned),
        order_id: activation.as_ref().map(|a| a.order_id.clone()),
        received_at,
    };
    profile::insert(conn, &row)?;
    if let (None, Some(eid)) = (&card.eid, &report.eid) {
        card_store::record_eid(conn, &card.iccid, eid)?;
    }
    let latest = card_store::record_profile_state(conn, &card.iccid, row.state, row.occurred_at)?;
    if latest && card.profile_state != Some(row.state) {
        let mut event = ProfileEvent::try_from(&row)?;
        // The matching id is the withheld code's secret part until the subscriber is
        // verified: the partner is not told it before then.
        if activation.as_ref().is_some_and(|a| a.awaits_verification()) {
            event.matching_id = None;
        }
        let change = ProfileStateChange {
            previous_state: card.profile_state,
            event,
        };
        events::append(
            conn,
            &card.partner_id,
            EventType::ProfileStateChanged,
            &change,
            received_at,
        )?;
    }
    let installs = matches!(row.state, ProfileState::Installed | ProfileState::Enabled);
    if let Some(pending) = activation.filter(|a| installs && a.status == ActivationStatus::Pending)
    {
        // In a savepoint: an order that can no longer take effect (its payment was
        // refunded meanwhile) keeps its activation pending, and the event is still kept.
        let confirmed = conn.transaction(|conn| {
            confirmation::confirm_in(
                conn,
                &Caller::Network,
                &pending.order_id,
                &Confirmation {
                    eid: report.eid.clone(),
                },
                received_at,
            )
        });
        if let Err(e) = confirmed {
            tracing::warn!(order_id = %pending.order_id, error = %e,
                "an installed profile could not confirm its activation");
        }
    }
    Ok(Applied::Accepted)
}

/// Applies a report event by event, in id order (so concurrent reports lock cards in
/// the same order).
pub async fn apply_batch(
    db: &Db,
    batch: ProfileEventBatch,
    received_at: NaiveDateTime,
) -> Result<ProfileEventOutcome, ApiError> {
    batch.check()?;
    let mut reports = batch.events;
    reports.sort_by(|a, b| a.id.cmp(&b.id));
    let mut outcome = ProfileEventOutcome::default();
    for report in reports {
        let id = report.id.clone();
        let applied = db
            .transaction(move |conn| apply(conn, &report, received_at))
            .await;
        match applied {
            Ok(Applied::Accepted) => outcome.accepted += 1,
            Ok(Applied::Duplicate) | Err(TxError::Conflict) => outcome.duplicates += 1,
            Err(TxError::Failed(ApiError::Problem { detail, .. })) => {
                outcome.rejected.push(RejectedRecord { id, reason: detail })
            }
            Err(TxError::Failed(other)) => return Err(other),
        }
    }
    Ok(outcome)
}
