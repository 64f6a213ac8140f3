//! Subscriptions as stored, shown and asked for.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::db::schema::subscriptions;
use crate::db::stored_uuid;
use crate::domain::{time, Currency};
use crate::error::ApiError;
use crate::orders::model::Order;

crate::db::stored_enum! {
    /// Where a subscription stands.
    #[derive(ToSchema)]
    pub enum SubscriptionStatus {
        /// Renews when due.
        Active = "active",
        /// Places nothing until resumed.
        Paused = "paused",
        /// A renewal kept failing until the term ended; resume to try again.
        Lapsed = "lapsed",
        /// Cancelled, or ended after `ends_after_renewals`.
        Cancelled = "cancelled",
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = subscriptions)]
pub struct SubscriptionRow {
    pub id: String,
    pub partner_id: String,
    pub iccid: String,
    pub plan_id: String,
    pub currency: Currency,
    pub renew_days_before_expiry: i32,
    pub ends_after_renewals: Option<i32>,
    pub status: SubscriptionStatus,
    pub covered_until: NaiveDateTime,
    pub next_renewal_at: Option<NaiveDateTime>,
    pub last_order_id: Option<String>,
    pub renewals: i32,
    pub failed_attempts: i32,
    pub last_failure: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A card renewed automatically from your wallet.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Subscription {
    pub id: uuid::Uuid,
    #[schema(value_type = crate::domain::Iccid)]
    pub iccid: String,
    pub plan_id: uuid::Uuid,
    #[schema(value_type = crate::domain::Currency)]
    pub currency: Currency,
    /// FM cards: the renewal is placed this many days before the service ends (the new
    /// term extends it). eSIMs are renewed when the term ends (the new term replaces it).
    pub renew_days_before_expiry: i32,
    /// It ends (`cancelled`) after this many renewals; `null`: until cancelled.
    pub ends_after_renewals: Option<i32>,
    pub status: SubscriptionStatus,
    /// When the next renewal is placed (or tried again after a failure); `null` when
    /// not active.
    pub next_renewal_at: Option<DateTime<Utc>>,
    /// Where the card's service ends, counting the renewals this subscription placed
    /// (also those the network has not confirmed yet): the term renewed next.
    pub covered_until: DateTime<Utc>,
    /// The order of the latest renewal.
    pub last_order_id: Option<uuid::Uuid>,
    /// Renewals placed.
    pub renewals: i32,
    /// Failed tries since the last renewal.
    pub failed_attempts: i32,
    /// Why the last try failed (`insufficient_funds: …`, `plan_not_available_for_card: …`).
    pub last_failure: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<&SubscriptionRow> for Subscription {
    type Error = ApiError;

    fn try_from(row: &SubscriptionRow) -> Result<Self, ApiError> {
        Ok(Self {
            id: stored_uuid(&row.id)?,
            iccid: row.iccid.clone(),
            plan_id: stored_uuid(&row.plan_id)?,
            currency: row.currency,
            renew_days_before_expiry: row.renew_days_before_expiry,
            ends_after_renewals: row.ends_after_renewals,
            status: row.status,
            next_renewal_at: row.next_renewal_at.map(time::from_db),
            covered_until: time::from_db(row.covered_until),
            last_order_id: row.last_order_id.as_deref().map(stored_uuid).transpose()?,
            renewals: row.renewals,
            failed_attempts: row.failed_attempts,
            last_failure: row.last_failure.clone(),
            created_at: time::from_db(row.created_at),
            updated_at: time::from_db(row.updated_at),
        })
    }
}

/// `PUT /v1/cards/{iccid}/subscription`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionRequest {
    /// The plan each renewal buys (on sale for the card's type, priced in `currency`).
    pub plan_id: uuid::Uuid,
    /// Paid from your wallet in this currency.
    #[schema(value_type = crate::domain::Currency)]
    pub currency: String,
    /// FM cards: renew this many days before the service ends, 0–30 (default 1).
    #[schema(minimum = 0, maximum = 30)]
    #[serde(
        default,
        deserialize_with = "crate::domain::integral::optional_integer"
    )]
    pub renew_days_before_expiry: Option<i64>,
    /// End after this many renewals, 1–1000; absent: until cancelled.
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(
        default,
        deserialize_with = "crate::domain::integral::optional_integer"
    )]
    pub ends_after_renewals: Option<i64>,
}

/// A `SubscriptionRequest` whose every field parsed.
#[derive(Debug, Clone)]
pub struct SubscriptionTerms {
    pub plan_id: uuid::Uuid,
    pub currency: Currency,
    pub renew_days_before_expiry: i32,
    pub ends_after_renewals: Option<i32>,
}

/// `subscription.renewed`: the renewal placed, and the subscription after it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriptionRenewal {
    pub subscription: Subscription,
    pub order: Order,
}

/// `GET /v1/subscriptions` query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionQuery {
    /// `active`, `paused`, `lapsed` or `cancelled`.
    #[param(value_type = Option<crate::subscriptions::model::SubscriptionStatus>)]
    pub status: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    #[param(pattern = r"^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionList {
    pub data: Vec<Subscription>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}
