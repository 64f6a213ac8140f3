//! Webhook endpoints: where a partner wants its events pushed, with the secret their
//! deliveries are signed with. The secret is shown once, when made or rotated; a rotated
//! secret keeps signing beside the new one for `ROTATION_OVERLAP`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::EventType;
use crate::db::schema::webhook_endpoints;
use crate::db::{stored_uuid, Db, DbConnection};
use crate::domain::time;
use crate::error::{ApiError, FieldError};

/// How long a rotated secret keeps signing beside its successor.
pub const ROTATION_OVERLAP: TimeDelta = TimeDelta::hours(24);
const MAX_URL_CHARS: usize = 2000;
const MAX_DESCRIPTION_CHARS: usize = 500;
/// Endpoints one partner may hold.
pub const MAX_ENDPOINTS: i64 = 20;

crate::db::stored_enum! {
    /// Whether deliveries are made to it.
    #[derive(ToSchema)]
    pub enum EndpointStatus {
        Enabled = "enabled",
        Disabled = "disabled",
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = webhook_endpoints, treat_none_as_null = true)]
pub struct EndpointRow {
    pub id: String,
    pub partner_id: String,
    pub url: String,
    pub event_types: String,
    pub description: Option<String>,
    pub status: EndpointStatus,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<NaiveDateTime>,
    pub failing_since: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl EndpointRow {
    /// The event types it takes; empty: all.
    pub fn types(&self) -> Result<Vec<EventType>, ApiError> {
        self.event_types
            .split_whitespace()
            .map(|t| t.parse::<EventType>().map_err(ApiError::from))
            .collect()
    }

    pub fn takes(&self, event_type: EventType) -> Result<bool, ApiError> {
        let types = self.types()?;
        Ok(types.is_empty() || types.contains(&event_type))
    }

    /// The secrets deliveries are signed with now: the current one, and the previous
    /// one while a rotation overlaps.
    pub fn signing_secrets(&self, now: NaiveDateTime) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_secret_until) {
            if now < until {
                secrets.push(previous);
            }
        }
        secrets
    }
}

/// A webhook endpoint (its secret is shown only when made or rotated).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Endpoint {
    pub id: uuid::Uuid,
    #[schema(example = "https://partner.example/simrenew/events")]
    pub url: String,
    /// The event types delivered to it; empty: every type.
    pub event_types: Vec<EventType>,
    pub description: Option<String>,
    pub status: EndpointStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<&EndpointRow> for Endpoint {
    type Error = ApiError;

    fn try_from(row: &EndpointRow) -> Result<Self, ApiError> {
        Ok(Self {
            id: stored_uuid(&row.id)?,
            url: row.url.clone(),
            event_types: row.types()?,
            description: row.description.clone(),
            status: row.status,
            created_at: time::from_db(row.created_at),
            updated_at: time::from_db(row.updated_at),
        })
    }
}

/// An endpoint with its new signing secret: shown once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// `whsec_` and the base64 key (Standard Webhooks): keep it to verify deliveries.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

/// Your endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    pub data: Vec<Endpoint>,
}

/// `POST /v1/webhook-endpoints`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// Where to deliver: `https` on a public address (see the SSRF rules in the
    /// operation's description).
    #[schema(
        min_length = 1,
        max_length = 2000,
        example = "https://partner.example/simrenew/events"
    )]
    pub url: String,
    /// The event types to deliver; empty or absent: every type.
    #[serde(default)]
    pub event_types: Vec<EventType>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

/// `PATCH /v1/webhook-endpoints/{id}`: what is given changes.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    #[schema(min_length = 1, max_length = 2000)]
    pub url: Option<String>,
    pub event_types: Option<Vec<EventType>>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    pub status: Option<EndpointStatus>,
}

fn new_secret() -> String {
    let mut key = [0_u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}

fn type_list(types: &[EventType]) -> String {
    let mut names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.join(" ")
}

fn check_description(errors: &mut Vec<FieldError>, description: Option<&str>) -> Option<String> {
    let description = description?;
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        errors.push(FieldError::new(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Some(description.trim().to_owned()).filter(|d| !d.is_empty())
}

fn check_url(errors: &mut Vec<FieldError>, url: &str, allow_private: bool) -> Option<reqwest::Url> {
    if url.chars().count() > MAX_URL_CHARS {
        errors.push(FieldError::new(
            "url",
            format!("must be at most {MAX_URL_CHARS} characters"),
        ));
        return None;
    }
    match super::delivery::target_allowed(url, allow_private) {
        Ok(parsed) => Some(parsed),
        Err(why) => {
            errors.push(FieldError::new("url", why));
            None
        }
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("no webhook endpoint {id}"))
}

/// Checks a new endpoint and makes its row, with a fresh secret (nothing is written).
pub fn prepare(
    partner_id: String,
    input: &NewEndpoint,
    allow_private: bool,
    now: NaiveDateTime,
) -> Result<EndpointRow, ApiError> {
    let mut errors = Vec::new();
    let url = check_url(&mut errors, &input.url, allow_private);
    let description = check_description(&mut errors, input.description.as_deref());
    let Some(url) = url.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    Ok(EndpointRow {
        id: uuid::Uuid::now_v7().to_string(),
        partner_id,
        url: url.to_string(),
        event_types: type_list(&input.event_types),
        description,
        status: EndpointStatus::Enabled,
        secret: new_secret(),
        previous_secret: None,
        previous_secret_until: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
    })
}

/// Registers a prepared endpoint, inside the caller's transaction; the answer carries
/// its secret (shown this once, or replayed for the same `Idempotency-Key`).
pub fn insert_in(
    conn: &mut DbConnection,
    row: EndpointRow,
) -> Result<EndpointWithSecret, ApiError> {
    let held: i64 = webhook_endpoints::table
        .filter(webhook_endpoints::partner_id.eq(&row.partner_id))
        .count()
        .get_result(conn)?;
    if held >= MAX_ENDPOINTS {
        return Err(ApiError::validation(vec![FieldError::new(
            "url",
            format!("a partner holds at most {MAX_ENDPOINTS} endpoints"),
        )]));
    }
    diesel::insert_into(webhook_endpoints::table)
        .values(&row)
        .execute(conn)?;
    Ok(EndpointWithSecret {
        endpoint: Endpoint::try_from(&row)?,
        secret: row.secret,
    })
}

pub fn find(conn: &mut DbConnection, partner_id: &str, id: &str) -> Result<EndpointRow, ApiError> {
    webhook_endpoints::table
        .filter(webhook_endpoints::id.eq(id))
        .filter(webhook_endpoints::partner_id.eq(partner_id))
        .select(EndpointRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| not_found(id))
}

/// A partner's enabled endpoints (the ones its events go to).
pub fn enabled_for_partner(
    conn: &mut DbConnection,
    partner_id: &str,
) -> QueryResult<Vec<EndpointRow>> {
    webhook_endpoints::table
        .filter(webhook_endpoints::partner_id.eq(partner_id))
        .filter(webhook_endpoints::status.eq(EndpointStatus::Enabled))
        .select(EndpointRow::as_select())
        .load(conn)
}

pub async fn list(db: &Db, partner_id: String) -> Result<EndpointList, ApiError> {
    let rows: Vec<EndpointRow> = db
        .run(move |conn| {
            webhook_endpoints::table
                .filter(webhook_endpoints::partner_id.eq(partner_id))
                .order(webhook_endpoints::id.asc())
                .limit(MAX_ENDPOINTS)
                .select(EndpointRow::as_select())
                .load(conn)
                .map_err(ApiError::from)
        })
        .await?;
    Ok(EndpointList {
        data: rows
            .iter()
            .map(Endpoint::try_from)
            .collect::<Result<_, _>>()?,
    })
}

pub async fn get(db: &Db, partner_id: String, id: String) -> Result<Endpoint, ApiError> {
    let row = db.run(move |conn| find(conn, &partner_id, &id)).await?;
    Endpoint::try_from(&row)
}

pub async fn update(
    db: &Db,
    partner_id: String,
    id: String,
    patch: EndpointPatch,
    allow_private: bool,
    now: NaiveDateTime,
) -> Result<Endpoint, ApiError> {
    let mut errors = Vec::new();
    let url = patch
        .url
        .as_deref()
        .and_then(|url| check_url(&mut errors, url, allow_private));
    let description = check_description(&mut errors, patch.description.as_deref());
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let row = db
        .transaction(move |conn| {
            let mut row = find(conn, &partner_id, &id)?;
            if let Some(url) = url {
                row.url = url.to_string();
            }
            if let Some(types) = &patch.event_types {
                row.event_types = type_list(types);
            }
            if patch.description.is_some() {
                row.description = description;
            }
            if let Some(status) = patch.status {
                if status == EndpointStatus::Enabled && row.status == EndpointStatus::Disabled {
                    // Enabled again: its failures are counted afresh.
                    row.failing_since = None;
                }
                row.status = status;
            }
            row.updated_at = now;
            diesel::update(webhook_endpoints::table.find(&row.id))
                .set(&row)
                .execute(conn)?;
            Ok::<_, ApiError>(row)
        })
        .await?;
    Endpoint::try_from(&row)
}

pub async fn delete(db: &Db, partner_id: String, id: String) -> Result<(), ApiError> {
    db.transaction(move |conn| {
        let row = find(conn, &partner_id, &id)?;
        diesel::delete(webhook_endpoints::table.find(&row.id)).execute(conn)?;
        Ok::<_, ApiError>(())
    })
    .await
}

/// A new secret; the old one keeps signing beside it for `ROTATION_OVERLAP`.
pub async fn rotate_secret(
    db: &Db,
    partner_id: String,
    id: String,
    now: NaiveDateTime,
) -> Result<EndpointWithSecret, ApiError> {
    let row = db
        .transaction(move |conn| {
            let mut row = find(conn, &partner_id, &id)?;
            row.previous_secret = Some(std::mem::replace(&mut row.secret, new_secret()));
            row.previous_secret_until = Some(now + ROTATION_OVERLAP);
            row.updated_at = now;
            diesel::update(webhook_endpoints::table.find(&row.id))
                .set(&row)
                .execute(conn)?;
            Ok::<_, ApiError>(row)
        })
        .await?;
    Ok(EndpointWithSecret {
        endpoint: Endpoint::try_from(&row)?,
        secret: row.secret,
    })
}
