//! Notification settings as stored, shown and changed, and the data of the events they
//! cause.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::ToSchema;

use crate::cards::model::Balance;
use crate::db::schema::notification_settings;
use crate::domain::{Currency, MinorUnits, Money};
use crate::error::{ApiError, FieldError};
use crate::wallet::WalletBalance;

/// Percentages of a term's data at which `card.usage_threshold` is told by default.
pub const DEFAULT_DATA_THRESHOLDS: [u8; 3] = [75, 90, 100];
/// Days before a card's service ends at which `card.expiring` is told by default.
pub const DEFAULT_EXPIRY_DAYS: [u16; 3] = [7, 3, 1];
/// Most thresholds of each kind a partner may set.
pub const MAX_THRESHOLDS: usize = 10;
/// The earliest expiry notice: this many days before the end.
pub const MAX_EXPIRY_DAYS: u16 = 60;
/// Most wallet alerts: one per currency.
pub const MAX_WALLET_ALERTS: usize = 20;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = notification_settings)]
pub struct SettingsRow {
    pub partner_id: String,
    /// Space-separated, ascending.
    pub data_thresholds_percent: String,
    /// Space-separated, ascending.
    pub expiry_days: String,
    pub updated_at: NaiveDateTime,
}

/// The card thresholds in force for a partner, each list ascending and without repeats.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Thresholds {
    pub data_percent: Vec<u8>,
    pub expiry_days: Vec<u16>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            data_percent: sorted(DEFAULT_DATA_THRESHOLDS),
            expiry_days: sorted(DEFAULT_EXPIRY_DAYS),
        }
    }
}

fn sorted<T: Ord + Copy>(values: impl IntoIterator<Item = T>) -> Vec<T> {
    values
        .into_iter()
        .collect::<BTreeSet<T>>()
        .into_iter()
        .collect()
}

/// A stored list, read strictly: anything but whole numbers in range is corrupt data.
fn parse_stored<T: std::str::FromStr + Ord + Copy>(
    text: &str,
    in_range: impl Fn(T) -> bool,
    column: &str,
) -> Result<Vec<T>, ApiError> {
    let values = text
        .split_ascii_whitespace()
        .map(|word| word.parse::<T>().ok().filter(|v| in_range(*v)))
        .collect::<Option<Vec<T>>>()
        .ok_or_else(|| ApiError::internal(format!("unreadable stored {column}: {text:?}")))?;
    Ok(sorted(values))
}

fn stored_text<T: ToString>(values: &[T]) -> String {
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Thresholds {
    pub fn from_row(row: &SettingsRow) -> Result<Self, ApiError> {
        Ok(Self {
            data_percent: parse_stored(
                &row.data_thresholds_percent,
                |p: u8| (1..=100).contains(&p),
                "data_thresholds_percent",
            )?,
            expiry_days: parse_stored(
                &row.expiry_days,
                |d: u16| (1..=MAX_EXPIRY_DAYS).contains(&d),
                "expiry_days",
            )?,
        })
    }

    pub fn to_row(&self, partner_id: &str, now: NaiveDateTime) -> SettingsRow {
        SettingsRow {
            partner_id: partner_id.to_owned(),
            data_thresholds_percent: stored_text(&self.data_percent),
            expiry_days: stored_text(&self.expiry_days),
            updated_at: now,
        }
    }
}

/// Tell `wallet.low_balance` when the wallet in `currency` falls below `amount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WalletAlert {
    #[schema(value_type = crate::domain::Currency)]
    pub currency: Currency,
    /// Minor units.
    #[schema(value_type = i64, example = 50_000)]
    pub amount: MinorUnits,
}

/// When you are told about your cards and wallets.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NotificationSettings {
    /// `card.usage_threshold` is told once per term when its data use reaches each of
    /// these percentages of the allowance (ascending).
    #[schema(example = json!([75, 90, 100]))]
    pub data_thresholds_percent: Vec<u8>,
    /// `card.expiring` is told when a card's service will end within each of these
    /// many days (descending).
    #[schema(example = json!([7, 3, 1]))]
    pub expiry_days: Vec<u16>,
    /// `wallet.low_balance` is told each time a wallet falls below its amount.
    pub wallet_low_balance: Vec<WalletAlert>,
    /// When you last changed them; `null` while the defaults apply.
    pub updated_at: Option<DateTime<Utc>>,
}

fn integer_list(minimum: i64, maximum: i64, example: serde_json::Value) -> RefOr<Schema> {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(minimum))
                .maximum(Some(maximum)),
        )
        .max_items(Some(MAX_THRESHOLDS))
        .unique_items(true)
        .examples([example])
        .into()
}

fn percent_list() -> RefOr<Schema> {
    integer_list(1, 100, serde_json::json!([75, 90, 100]))
}

fn day_list() -> RefOr<Schema> {
    integer_list(1, i64::from(MAX_EXPIRY_DAYS), serde_json::json!([7, 3, 1]))
}

/// `PUT /v1/notification-settings`: the whole settings; a field left out (or `null`)
/// takes its default, an empty list turns that kind of notice off.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettingsChange {
    /// Percentages 1–100, at most 10, no repeats. Default `[75, 90, 100]`.
    #[schema(schema_with = percent_list, required = false)]
    #[serde(
        default,
        deserialize_with = "crate::domain::integral::optional_integers"
    )]
    pub data_thresholds_percent: Option<Vec<i64>>,
    /// Days 1–60, at most 10, no repeats. Default `[7, 3, 1]`.
    #[schema(schema_with = day_list, required = false)]
    #[serde(
        default,
        deserialize_with = "crate::domain::integral::optional_integers"
    )]
    pub expiry_days: Option<Vec<i64>>,
    /// At most 20, one per currency. Default: none.
    #[schema(max_items = 20)]
    pub wallet_low_balance: Option<Vec<WalletAlertChange>>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WalletAlertChange {
    #[schema(value_type = crate::domain::Currency)]
    pub currency: String,
    /// Minor units, greater than 0.
    #[schema(example = 50_000, minimum = 1, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "crate::domain::integral::integer")]
    pub amount: i64,
}

/// Settings whose every field parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSettings {
    pub thresholds: Thresholds,
    /// Sorted by currency, one each.
    pub wallet: Vec<Money>,
}

/// Checks a list of whole numbers: each in `range`, no repeats, at most `MAX_THRESHOLDS`.
fn check_list<T: TryFrom<i64> + Ord + Copy>(
    field: &str,
    values: &[i64],
    range: std::ops::RangeInclusive<i64>,
    errors: &mut Vec<FieldError>,
) -> Vec<T> {
    if values.len() > MAX_THRESHOLDS {
        errors.push(FieldError::new(
            field,
            format!("list at most {MAX_THRESHOLDS}"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut accepted = Vec::new();
    for (i, value) in values.iter().enumerate() {
        match T::try_from(*value) {
            Ok(v) if range.contains(value) => {
                if seen.insert(*value) {
                    accepted.push(v);
                } else {
                    errors.push(FieldError::new(
                        format!("{field}[{i}]"),
                        "appears twice in this list",
                    ));
                }
            }
            _ => errors.push(FieldError::new(
                format!("{field}[{i}]"),
                format!("must be {} to {}", range.start(), range.end()),
            )),
        }
    }
    sorted(accepted)
}

impl NotificationSettingsChange {
    /// Every field checked; every bad one named (`expiry_days[2]`,
    /// `wallet_low_balance[0].currency`) in one `422`.
    pub fn validate(&self) -> Result<ValidSettings, ApiError> {
        let mut errors = Vec::new();
        let defaults = Thresholds::default();
        let data_percent = match &self.data_thresholds_percent {
            Some(list) => check_list("data_thresholds_percent", list, 1..=100, &mut errors),
            None => defaults.data_percent,
        };
        let expiry_days = match &self.expiry_days {
            Some(list) => check_list(
                "expiry_days",
                list,
                1..=i64::from(MAX_EXPIRY_DAYS),
                &mut errors,
            ),
            None => defaults.expiry_days,
        };
        let alerts = self.wallet_low_balance.as_deref().unwrap_or_default();
        if alerts.len() > MAX_WALLET_ALERTS {
            errors.push(FieldError::new(
                "wallet_low_balance",
                format!("list at most {MAX_WALLET_ALERTS}, one per currency"),
            ));
        }
        let mut wallet: Vec<Money> = Vec::new();
        for (i, alert) in alerts.iter().enumerate() {
            let currency = match alert.currency.parse::<Currency>() {
                Ok(currency) => Some(currency),
                Err(e) => {
                    errors.push(FieldError::new(
                        format!("wallet_low_balance[{i}].currency"),
                        e.to_string(),
                    ));
                    None
                }
            };
            if !(1..=crate::wallet::MAX_CREDIT.get()).contains(&alert.amount) {
                errors.push(FieldError::new(
                    format!("wallet_low_balance[{i}].amount"),
                    format!("must be 1 to {} minor units", crate::wallet::MAX_CREDIT),
                ));
                continue;
            }
            let Some(currency) = currency else { continue };
            if wallet.iter().any(|m| m.currency == currency) {
                errors.push(FieldError::new(
                    format!("wallet_low_balance[{i}].currency"),
                    format!("{currency} appears twice; give one amount per currency"),
                ));
                continue;
            }
            wallet.push(Money::new(MinorUnits::new(alert.amount), currency));
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        wallet.sort_by_key(|m| m.currency);
        Ok(ValidSettings {
            thresholds: Thresholds {
                data_percent,
                expiry_days,
            },
            wallet,
        })
    }
}

/// `card.usage_threshold`: a term's data use reached `threshold_percent` of its
/// allowance.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageThresholdReached {
    #[schema(example = 90)]
    pub threshold_percent: u8,
    /// The term whose data it is.
    pub term_id: uuid::Uuid,
    /// The card's balance just after the usage that reached it.
    pub balance: Balance,
}

/// `card.expiring`: the card's service ends within `days_before` days, and nothing is
/// queued after it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServiceEnding {
    #[schema(example = 3)]
    pub days_before: u16,
    /// When service ends (exclusive).
    pub service_ends_at: DateTime<Utc>,
    pub balance: Balance,
}

/// `card.expired`: the card's last term ended and nothing follows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServiceEnded {
    pub service_ended_at: DateTime<Utc>,
    pub balance: Balance,
}

/// `wallet.low_balance`: an order took the wallet below `threshold`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WalletLow {
    /// Minor units: the alert amount it fell below.
    #[schema(value_type = i64, example = 50_000)]
    pub threshold: MinorUnits,
    pub balance: WalletBalance,
}
