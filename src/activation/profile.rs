//! eSIM profile events: what the SM-DP+ reports about a card's profile (the normalised
//! form of SGP.22 ES2+ `HandleDownloadProgressInfo`), kept once per event id. An event
//! naming an activation's matching id belongs to that activation's history.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::schema::profile_events;
use crate::db::{stored_uuid, DbConnection};
use crate::domain::{time, Eid, Iccid, ProfileState};
use crate::error::{ApiError, FieldError};

/// Most events in one report.
pub const MAX_BATCH: usize = 500;
const MAX_EVENT_ID: usize = 128;
const MAX_MATCHING_ID: usize = 64;
const MAX_REASON: usize = 500;
/// Most events an activation shows (the latest).
pub const MAX_HISTORY: i64 = 100;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = profile_events)]
pub struct ProfileEventRow {
    pub id: String,
    pub iccid: String,
    pub matching_id: Option<String>,
    pub eid: Option<String>,
    pub state: ProfileState,
    pub occurred_at: NaiveDateTime,
    pub reason: Option<String>,
    /// The activation whose matching id the event names.
    pub order_id: Option<String>,
    pub received_at: NaiveDateTime,
}

/// A profile event as reported and kept.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProfileEvent {
    /// The SM-DP+'s id for the event.
    pub id: String,
    #[schema(value_type = crate::domain::Iccid)]
    pub iccid: String,
    pub matching_id: Option<String>,
    #[schema(value_type = Option<crate::domain::Eid>)]
    pub eid: Option<String>,
    pub state: ProfileState,
    pub occurred_at: DateTime<Utc>,
    pub reason: Option<String>,
    /// The order whose activation code the event is about, when it named one.
    pub order_id: Option<uuid::Uuid>,
    pub received_at: DateTime<Utc>,
}

impl TryFrom<&ProfileEventRow> for ProfileEvent {
    type Error = ApiError;

    fn try_from(row: &ProfileEventRow) -> Result<Self, ApiError> {
        Ok(Self {
            id: row.id.clone(),
            iccid: row.iccid.clone(),
            matching_id: row.matching_id.clone(),
            eid: row.eid.clone(),
            state: row.state,
            occurred_at: time::from_db(row.occurred_at),
            reason: row.reason.clone(),
            order_id: row.order_id.as_deref().map(stored_uuid).transpose()?,
            received_at: time::from_db(row.received_at),
        })
    }
}

/// `profile.state_changed`: the card's profile is now in `state` (it was in
/// `previous_state`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProfileStateChange {
    /// `null`: nothing was reported before.
    pub previous_state: Option<ProfileState>,
    #[serde(flatten)]
    pub event: ProfileEvent,
}

/// One event from the SM-DP+.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileEventReport {
    /// The SM-DP+'s id for this event; an id is applied once, ever.
    #[schema(example = "dp-2026-11-25-000042", min_length = 1, max_length = 128)]
    pub id: String,
    #[schema(value_type = crate::domain::Iccid)]
    pub iccid: String,
    /// The matching id of the activation code used, if the event concerns one.
    #[schema(
        example = "K2Q8ZC4M7T1X9B6W3N5R",
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9-]+$"
    )]
    pub matching_id: Option<String>,
    /// The device the profile went to.
    #[schema(value_type = Option<crate::domain::Eid>)]
    pub eid: Option<String>,
    pub state: ProfileState,
    pub occurred_at: DateTime<Utc>,
    /// Why (for `error`, or a deletion), as the SM-DP+ gives it.
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileEventBatch {
    /// 1 to 500 events.
    #[schema(min_items = 1, max_items = 500)]
    pub events: Vec<ProfileEventReport>,
}

impl ProfileEventBatch {
    /// The report's shape: 1 to `MAX_BATCH` events, each well formed (`422` naming each
    /// `events[i].<field>` otherwise; nothing of the report is applied).
    pub fn check(&self) -> Result<(), ApiError> {
        if self.events.is_empty() || self.events.len() > MAX_BATCH {
            return Err(ApiError::validation(vec![FieldError::new(
                "events",
                format!("send 1 to {MAX_BATCH} events"),
            )]));
        }
        let mut errors = Vec::new();
        for (i, event) in self.events.iter().enumerate() {
            let field = |name: &str| format!("events[{i}].{name}");
            let id_length = event.id.chars().count();
            if id_length == 0 || id_length > MAX_EVENT_ID {
                errors.push(FieldError::new(
                    field("id"),
                    format!("must be 1 to {MAX_EVENT_ID} characters"),
                ));
            }
            if let Err(e) = event.iccid.parse::<Iccid>() {
                errors.push(FieldError::new(field("iccid"), e));
            }
            if let Some(matching_id) = &event.matching_id {
                let well_formed = (1..=MAX_MATCHING_ID).contains(&matching_id.len())
                    && matching_id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-');
                if !well_formed {
                    errors.push(FieldError::new(
                        field("matching_id"),
                        format!("must be 1 to {MAX_MATCHING_ID} letters, digits or hyphens"),
                    ));
                }
            }
            if let Some(Err(e)) = event.eid.as_deref().map(str::parse::<Eid>) {
                errors.push(FieldError::new(field("eid"), e));
            }
            if let Err(e) = time::check_accepted(event.occurred_at) {
                errors.push(FieldError::new(field("occurred_at"), e));
            }
            if event
                .reason
                .as_deref()
                .is_some_and(|r| r.chars().count() > MAX_REASON)
            {
                errors.push(FieldError::new(
                    field("reason"),
                    format!("must be at most {MAX_REASON} characters"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(errors))
        }
    }
}

pub fn is_recorded(conn: &mut DbConnection, event_id: &str) -> QueryResult<bool> {
    Ok(profile_events::table
        .find(event_id)
        .count()
        .get_result::<i64>(conn)?
        > 0)
}

pub fn insert(conn: &mut DbConnection, row: &ProfileEventRow) -> QueryResult<()> {
    diesel::insert_into(profile_events::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// The latest `MAX_HISTORY` events of an activation, in the order they occurred.
pub fn history(conn: &mut DbConnection, order_id: &str) -> QueryResult<Vec<ProfileEventRow>> {
    let mut rows: Vec<ProfileEventRow> = profile_events::table
        .filter(profile_events::order_id.eq(order_id))
        .select(ProfileEventRow::as_select())
        .order((
            profile_events::occurred_at.desc(),
            profile_events::id.desc(),
        ))
        .limit(MAX_HISTORY)
        .load(conn)?;
    rows.reverse();
    Ok(rows)
}
