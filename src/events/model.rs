//! Events as stored and as shown.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{AnyOfBuilder, Ref, Schema};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, ToSchema};

use super::EventType;
use crate::db::schema::events;
use crate::db::stored_uuid;
use crate::domain::time;
use crate::error::{ApiError, FieldError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub id: String,
    pub partner_id: String,
    /// The partner's events in commit order (what the feed pages by).
    pub seq: i64,
    pub event_type: EventType,
    pub data: String,
    pub created_at: NaiveDateTime,
}

/// Something that happened to one of your resources.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Event {
    /// Unique; also the `webhook-id` of its deliveries.
    pub id: uuid::Uuid,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the change was made.
    pub timestamp: DateTime<Utc>,
    /// The resource as the API showed it then; the event's `type` says which.
    #[schema(schema_with = event_data)]
    pub data: serde_json::Value,
}

/// `Event.data`: any of the schemas the event types carry (`EventType::data_schema`).
fn event_data() -> RefOr<Schema> {
    let mut names: Vec<&str> = EventType::ALL.iter().map(|t| t.data_schema()).collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .fold(AnyOfBuilder::new(), |any, name| {
            any.item(Ref::from_schema_name(name))
        })
        .description(Some(
            "The resource as the API showed it then; the event's `type` says which.",
        ))
        .into()
}

impl TryFrom<&EventRow> for Event {
    type Error = ApiError;

    fn try_from(row: &EventRow) -> Result<Self, ApiError> {
        Ok(Self {
            id: stored_uuid(&row.id)?,
            event_type: row.event_type,
            timestamp: time::from_db(row.created_at),
            data: serde_json::from_str(&row.data)
                .map_err(|e| ApiError::internal(format!("unreadable stored event data: {e}")))?,
        })
    }
}

/// A page of events, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    pub data: Vec<Event>,
    /// Where the next page starts: always present, also after the last event, so a
    /// saved cursor resumes the feed exactly where it stopped (later events included).
    pub next_cursor: String,
    /// Whether more events follow right now.
    pub has_more: bool,
}

/// `GET /v1/events` query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<EventType>)]
    pub event_type: Option<String>,
    /// RFC 3339; events made at or after it.
    pub created_after: Option<DateTime<Utc>>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page; omit for the first page.
    #[param(pattern = r"^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

/// Validated event filters, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub event_type: Option<EventType>,
    pub created_after: Option<NaiveDateTime>,
}

impl EventQuery {
    pub fn filter(&self) -> Result<EventFilter, ApiError> {
        let mut errors = Vec::new();
        let event_type = self.event_type.as_deref().and_then(|text| {
            text.parse::<EventType>()
                .map_err(|_| {
                    errors.push(FieldError::new(
                        "type",
                        format!("`{text}` is not an event type"),
                    ))
                })
                .ok()
        });
        if let Some(Err(why)) = self.created_after.map(time::check_accepted) {
            errors.push(FieldError::new("created_after", why));
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        Ok(EventFilter {
            event_type,
            created_after: self.created_after.map(time::to_db),
        })
    }
}
