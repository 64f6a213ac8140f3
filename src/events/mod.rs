//! Events: what happened to a partner's resources. Each is appended in the transaction
//! that makes its change (an outbox), so an event exists if and only if the change
//! committed; `data` is the resource as the API shows it at that moment. Partners read
//! them as a feed (`GET /v1/events`); they are kept `RETENTION` at least.

pub mod delivery;
pub mod endpoints;
pub mod model;
pub mod routes;
pub mod store;
pub mod webhook_routes;

use chrono::{NaiveDateTime, TimeDelta};
use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::Clock;
use crate::db::{Db, DbConnection};
use crate::error::ApiError;

crate::db::stored_enum! {
    /// What happened. The data of `order.*` events is an `Order`, of `activation.*`
    /// events an `Activation`; the others say theirs.
    #[derive(ToSchema)]
    pub enum EventType {
        /// The order's payment succeeded (its activation is ready).
        #[serde(rename = "order.paid")]
        OrderPaid = "order.paid",
        /// The order failed: its payment failed, or its activation did.
        #[serde(rename = "order.failed")]
        OrderFailed = "order.failed",
        #[serde(rename = "order.cancelled")]
        OrderCancelled = "order.cancelled",
        /// It stayed unpaid until its payment expired.
        #[serde(rename = "order.expired")]
        OrderExpired = "order.expired",
        /// Money went back to the payer (`refund` says how much in all).
        #[serde(rename = "order.refunded")]
        OrderRefunded = "order.refunded",
        /// The renewal took effect: the card's new term is in the data.
        #[serde(rename = "activation.confirmed")]
        ActivationConfirmed = "activation.confirmed",
        #[serde(rename = "activation.failed")]
        ActivationFailed = "activation.failed",
        /// The SM-DP+ reported a new state of the card's eSIM profile; the data is the
        /// `ProfileEvent`.
        #[serde(rename = "profile.state_changed")]
        ProfileStateChanged = "profile.state_changed",
        /// A term's data use reached one of your `data_thresholds_percent`; the data is
        /// a `UsageThresholdReached`.
        #[serde(rename = "card.usage_threshold")]
        CardUsageThreshold = "card.usage_threshold",
        /// The card's service ends within one of your `expiry_days`, nothing queued
        /// after it; the data is a `ServiceEnding`.
        #[serde(rename = "card.expiring")]
        CardExpiring = "card.expiring",
        /// The card's service ended; the data is a `ServiceEnded`.
        #[serde(rename = "card.expired")]
        CardExpired = "card.expired",
        /// A subscription placed its renewal; the data is a `SubscriptionRenewal`.
        #[serde(rename = "subscription.renewed")]
        SubscriptionRenewed = "subscription.renewed",
        /// A subscription's renewal could not be placed (`last_failure` says why); it
        /// is tried again. The data is the `Subscription`.
        #[serde(rename = "subscription.renewal_failed")]
        SubscriptionRenewalFailed = "subscription.renewal_failed",
        /// A subscription's retries are spent and the term ended; the data is the
        /// `Subscription`.
        #[serde(rename = "subscription.lapsed")]
        SubscriptionLapsed = "subscription.lapsed",
        /// An order took a wallet below your `wallet_low_balance` amount; the data is
        /// a `WalletLow`.
        #[serde(rename = "wallet.low_balance")]
        WalletLowBalance = "wallet.low_balance",
        /// Asked for with `POST /v1/webhook-endpoints/{id}/test`; its data is the
        /// endpoint. Delivered to that endpoint only.
        #[serde(rename = "webhook.test")]
        WebhookTest = "webhook.test",
        /// Every delivery to the endpoint failed for `delivery::GIVE_UP_AFTER`: it was
        /// disabled (its data is the endpoint). Enable it again with `PATCH`.
        #[serde(rename = "webhook.endpoint_disabled")]
        WebhookEndpointDisabled = "webhook.endpoint_disabled",
    }
}

impl EventType {
    /// The name of the schema its `data` follows (in the OpenAPI document).
    pub fn data_schema(self) -> &'static str {
        match self {
            Self::OrderPaid
            | Self::OrderFailed
            | Self::OrderCancelled
            | Self::OrderExpired
            | Self::OrderRefunded => "Order",
            Self::ActivationConfirmed | Self::ActivationFailed => "Activation",
            Self::ProfileStateChanged => "ProfileStateChange",
            Self::CardUsageThreshold => "UsageThresholdReached",
            Self::CardExpiring => "ServiceEnding",
            Self::CardExpired => "ServiceEnded",
            Self::WalletLowBalance => "WalletLow",
            Self::SubscriptionRenewed => "SubscriptionRenewal",
            Self::SubscriptionRenewalFailed | Self::SubscriptionLapsed => "Subscription",
            Self::WebhookTest | Self::WebhookEndpointDisabled => "Endpoint",
        }
    }
}

/// How long events are kept (the feed promises at least this).
pub const RETENTION: TimeDelta = TimeDelta::days(30);

/// Appends an event to `partner_id`'s feed, and its deliveries to the partner's
/// endpoints that take it, inside the caller's transaction.
pub fn append(
    conn: &mut DbConnection,
    partner_id: &str,
    event_type: EventType,
    data: &impl Serialize,
    now: NaiveDateTime,
) -> Result<(), ApiError> {
    let recipients = recipients(conn, partner_id)?;
    append_to(conn, &recipients, event_type, data, now)
}

/// Starts a new partner's event feed (its event counter at 0), so that its every event,
/// the first included, is numbered by the one-statement path (`store::NumberedEventCtes`).
pub fn open_feed(conn: &mut DbConnection, partner_id: &str) -> Result<(), ApiError> {
    store::create_counter(conn, partner_id).map_err(ApiError::from)
}

/// A partner and its enabled webhook endpoints, read before an event is appended: a
/// transaction that locks the partner's rows (its wallet, its event counter) reads this
/// first, so the locks are held for fewer statements.
pub struct Recipients {
    partner_id: String,
    endpoints: Vec<endpoints::EndpointRow>,
}

impl Recipients {
    /// A partner known (in this transaction) to have no enabled endpoint.
    pub fn without_endpoints(partner_id: &str) -> Self {
        Self {
            partner_id: partner_id.to_owned(),
            endpoints: Vec::new(),
        }
    }
}

/// Reads `partner_id`'s enabled endpoints.
pub fn recipients(conn: &mut DbConnection, partner_id: &str) -> Result<Recipients, ApiError> {
    Ok(Recipients {
        partner_id: partner_id.to_owned(),
        endpoints: endpoints::enabled_for_partner(conn, partner_id)?,
    })
}

/// [`append`] to recipients read earlier in the same transaction.
pub fn append_to(
    conn: &mut DbConnection,
    recipients: &Recipients,
    event_type: EventType,
    data: &impl Serialize,
    now: NaiveDateTime,
) -> Result<(), ApiError> {
    let mut row = unnumbered(recipients, event_type, data, now)?;
    store::insert_numbered(conn, &mut row)?;
    delivery::fan_out(conn, &recipients.endpoints, &row)
}

/// The event [`append_to`] writes, before it is numbered (`seq` 0): for a statement that
/// numbers and writes it with other changes (`store::NumberedEventCtes`) and its
/// deliveries ([`deliveries_part`]).
pub fn unnumbered(
    recipients: &Recipients,
    event_type: EventType,
    data: &impl Serialize,
    now: NaiveDateTime,
) -> Result<model::EventRow, ApiError> {
    Ok(model::EventRow {
        id: uuid::Uuid::now_v7().to_string(),
        partner_id: recipients.partner_id.clone(),
        seq: 0,
        event_type,
        data: serde_json::to_string(data).map_err(ApiError::internal)?,
        created_at: now,
    })
}

/// The deliveries of `row` to `recipients`' endpoints as part of the PostgreSQL statement
/// that writes the event (see `delivery::DeliveriesCte`).
pub fn deliveries_part<'a>(
    recipients: &Recipients,
    row: &'a model::EventRow,
) -> delivery::DeliveriesCte<'a> {
    delivery::DeliveriesCte::new(&recipients.endpoints, row)
}

/// Removes events older than `RETENTION`; how many went.
pub async fn purge_expired(db: &Db, clock: &Clock) -> Result<usize, ApiError> {
    let cutoff = clock.now_db() - RETENTION;
    db.run(move |conn| store::delete_older_than(conn, cutoff).map_err(ApiError::from))
        .await
}

/// What delivering needs, shared by the sender and the endpoint routes.
pub struct Webhooks {
    pub client: reqwest::Client,
    pub settings: crate::config::WebhookSettings,
}

impl Webhooks {
    pub fn new(settings: crate::config::WebhookSettings) -> Result<Self, String> {
        Ok(Self {
            client: delivery::client(&settings)?,
            settings,
        })
    }
}
