//! Cards as stored, as shown to their partner, and as imported by operators.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::terms::CardStatus;
use crate::db::schema::cards;
use crate::domain::{CardType, ProfileState};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = cards)]
pub struct CardRow {
    pub iccid: String,
    pub partner_id: String,
    pub card_type: CardType,
    pub msisdn: Option<String>,
    pub eid: Option<String>,
    pub suspended: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub profile_state: Option<ProfileState>,
    pub profile_state_at: Option<NaiveDateTime>,
}

/// A term in brief.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TermSummary {
    pub term_id: uuid::Uuid,
    pub plan_id: uuid::Uuid,
    #[schema(example = "CN-FM-M-10G")]
    pub plan_code: String,
    pub valid_from: DateTime<Utc>,
    /// Exclusive: service ends at this instant.
    pub valid_until: DateTime<Utc>,
}

/// A card, as its partner sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Card {
    #[schema(value_type = String, example = "89860012345678901238")]
    pub iccid: String,
    pub card_type: CardType,
    #[schema(value_type = Option<String>, example = "+8613800138000")]
    pub msisdn: Option<String>,
    #[schema(value_type = Option<String>)]
    pub eid: Option<String>,
    pub status: CardStatus,
    /// eSIM: the profile's state as the SM-DP+ last reported it (`null`: nothing
    /// reported yet, and always for FM cards).
    pub profile_state: Option<ProfileState>,
    /// The term in force now, if any.
    pub current_term: Option<TermSummary>,
    pub created_at: DateTime<Utc>,
}

/// A card as operators see it: with its owner.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdminCard {
    pub partner_id: uuid::Uuid,
    #[serde(flatten)]
    pub card: Card,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CardList {
    pub data: Vec<Card>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DataBalance {
    /// `null` when unlimited.
    pub total_bytes: Option<i64>,
    pub used_bytes: i64,
    /// `null` when unlimited; never below 0 (usage past the allowance is kept as used).
    pub remaining_bytes: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VoiceBalance {
    pub total_minutes: i64,
    /// Each call counts in whole minutes, rounded up per call, as carriers bill.
    pub used_minutes: i64,
    pub remaining_minutes: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SmsBalance {
    pub total: i64,
    pub used: i64,
    pub remaining: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CurrentTermBalance {
    pub term_id: uuid::Uuid,
    pub plan_id: uuid::Uuid,
    pub plan_code: String,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    /// Whole days until `valid_until`, rounded up.
    pub days_left: i64,
    pub data: DataBalance,
    pub voice: VoiceBalance,
    pub sms: SmsBalance,
}

/// What is left on a card now, and what is queued after it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Balance {
    #[schema(value_type = String)]
    pub iccid: String,
    pub card_type: CardType,
    pub status: CardStatus,
    pub as_of: DateTime<Utc>,
    /// `null` when no term is current.
    pub current: Option<CurrentTermBalance>,
    /// Terms that start later, earliest first.
    pub upcoming: Vec<TermSummary>,
}

/// A card to import. Identifiers are checked one by one so every bad row is named.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCard {
    /// 18–20 digits ending in a Luhn check digit.
    #[schema(value_type = crate::domain::Iccid)]
    pub iccid: String,
    pub card_type: CardType,
    /// E.164, e.g. `+8613800138000`.
    #[schema(value_type = Option<crate::domain::Msisdn>)]
    pub msisdn: Option<String>,
    /// eSIM only: 32 digits, 1 modulo 97.
    #[schema(value_type = Option<crate::domain::Eid>)]
    pub eid: Option<String>,
}

/// `POST /v1/admin/cards`: all cards or none.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardImport {
    pub partner_id: uuid::Uuid,
    /// 1 to 500 cards (use `simrenew cards import` for larger files).
    #[schema(min_items = 1, max_items = 500)]
    pub cards: Vec<NewCard>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CardImportResult {
    pub imported: usize,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardMove {
    /// The partner that will own the card.
    pub partner_id: uuid::Uuid,
}

/// `GET /v1/cards` query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CardQuery {
    /// `inactive`, `active`, `expired` or `suspended`.
    #[param(value_type = Option<crate::cards::model::CardStatus>)]
    pub status: Option<String>,
    /// `fm` or `esim`.
    #[param(value_type = Option<crate::domain::CardType>)]
    pub card_type: Option<String>,
    /// Cards whose current term ends within this many days with nothing queued after it.
    #[param(minimum = 0, maximum = 3650)]
    pub expiring_within_days: Option<u32>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    #[param(pattern = r"^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

/// Validated card filters, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct CardFilter {
    pub status: Option<CardStatus>,
    pub card_type: Option<CardType>,
    pub expiring_within_days: Option<u32>,
}

/// An operator-granted term (compensation, trials): no order, no payment.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TermGrant {
    pub plan_id: uuid::Uuid,
    /// When it starts; default: when the card's service ends, or now.
    pub valid_from: Option<DateTime<Utc>>,
}
