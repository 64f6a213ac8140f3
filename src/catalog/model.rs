//! Plans: what a card can be renewed with. Types as shown and as received, and the
//! pure rules that validate them.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::db::schema::plans;
use crate::domain::{CardType, Country, Currency};
use crate::error::{ApiError, FieldError};

crate::db::stored_enum! {
    /// How long a plan lasts. `month`, `quarter` and `year` are fixed day counts; `custom`
    /// takes `validity_days` from the plan.
    #[derive(ToSchema)]
    pub enum Period {
        Month = "month",
        Quarter = "quarter",
        Year = "year",
        Custom = "custom",
    }
}

impl Period {
    /// Days of a fixed period: month 30, quarter 90, year 365. `None` for `custom`.
    pub fn fixed_days(self) -> Option<i32> {
        match self {
            Period::Month => Some(30),
            Period::Quarter => Some(90),
            Period::Year => Some(365),
            Period::Custom => None,
        }
    }
}

crate::db::stored_enum! {
    /// Whether a plan can be ordered.
    #[derive(ToSchema)]
    pub enum PlanStatus {
        /// In the catalog, can be ordered.
        Active = "active",
        /// Out of the catalog; orders and terms that point at it keep working.
        Retired = "retired",
    }
}

/// A price in one currency, in the currency's minor unit (fen, cents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// ISO 4217 code.
    #[schema(value_type = crate::domain::Currency)]
    pub currency: String,
    /// Integer amount in minor units, > 0: `3000` CNY is ¥30.00.
    #[schema(example = 3000, minimum = 1)]
    #[serde(deserialize_with = "crate::domain::integral::integer")]
    pub amount: i64,
}

/// A plan as the catalog shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Plan {
    pub id: uuid::Uuid,
    #[schema(example = "CN-FM-M-10G")]
    pub code: String,
    #[schema(example = "China 10 GB · 30 days")]
    pub name: String,
    pub description: String,
    pub card_types: Vec<CardType>,
    pub period: Period,
    /// Days of service a purchase adds: 30, 90, 365, or the custom count.
    #[schema(example = 30)]
    pub validity_days: i32,
    /// Data allowance in bytes; `null` means unlimited.
    #[schema(example = 10_737_418_240_i64)]
    pub data_bytes: Option<i64>,
    pub voice_minutes: i32,
    pub sms: i32,
    /// ISO 3166-1 alpha-2 countries where the plan works.
    pub coverage: Vec<Country>,
    /// A label for the coverage, e.g. `Asia` or `Global`.
    pub region: Option<String>,
    pub prices: Vec<Price>,
    pub status: PlanStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A page of plans.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanList {
    pub data: Vec<Plan>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = plans)]
pub struct PlanRow {
    pub id: String,
    pub code: String,
    pub name: String,
    pub description: String,
    pub fits_fm: bool,
    pub fits_esim: bool,
    pub period: Period,
    pub validity_days: i32,
    pub data_bytes: Option<i64>,
    pub voice_minutes: i32,
    pub sms: i32,
    pub region: Option<String>,
    pub status: PlanStatus,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub name_zh: Option<String>,
    pub description_zh: Option<String>,
}

impl PlanRow {
    /// Name and description in `lang` (English where no Chinese text was set).
    pub fn texts(&self, lang: crate::i18n::Lang) -> (String, String) {
        match (lang, &self.name_zh) {
            (crate::i18n::Lang::ZhCn, Some(name)) => (
                name.clone(),
                self.description_zh
                    .clone()
                    .unwrap_or_else(|| self.description.clone()),
            ),
            _ => (self.name.clone(), self.description.clone()),
        }
    }

    /// Whether the plan is made for cards of `card_type` (on sale or not).
    pub fn fits(&self, card_type: CardType) -> bool {
        match card_type {
            CardType::Fm => self.fits_fm,
            CardType::Esim => self.fits_esim,
        }
    }
}

/// A plan to create (`POST /v1/admin/plans`, `simrenew plans import`).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPlan {
    /// Unique, human-readable: letters, digits, `-` and `_`, at most 64.
    #[schema(example = "CN-FM-M-10G", pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub code: String,
    #[schema(
        example = "China 10 GB · 30 days",
        min_length = 1,
        max_length = 200,
        pattern = r"\S"
    )]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub description: String,
    #[schema(min_items = 1)]
    pub card_types: Vec<CardType>,
    pub period: Period,
    /// Required for `custom` (1–3650); for the fixed periods it may be omitted or must match.
    #[schema(minimum = 1, maximum = 3650)]
    #[serde(
        default,
        deserialize_with = "crate::domain::integral::optional_integer"
    )]
    pub validity_days: Option<i32>,
    /// Bytes of data; omit or `null` for unlimited.
    #[schema(minimum = 0)]
    #[serde(
        default,
        deserialize_with = "crate::domain::integral::optional_integer"
    )]
    pub data_bytes: Option<i64>,
    #[serde(default, deserialize_with = "crate::domain::integral::integer")]
    #[schema(minimum = 0)]
    pub voice_minutes: i32,
    #[serde(default, deserialize_with = "crate::domain::integral::integer")]
    #[schema(minimum = 0)]
    pub sms: i32,
    #[schema(value_type = Vec<crate::domain::Country>, min_items = 1)]
    pub coverage: Vec<String>,
    #[schema(max_length = 100)]
    pub region: Option<String>,
    #[schema(min_items = 1)]
    pub prices: Vec<Price>,
    /// The name and description in other languages (shown to `Accept-Language: zh-CN`).
    pub translations: Option<PlanTranslations>,
}

/// A plan's texts in one language.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanText {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"\S",
        example = "中国大陆 10 GB · 30 天"
    )]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub description: String,
}

/// Texts by language tag.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanTranslations {
    /// Simplified Chinese.
    #[serde(rename = "zh-CN")]
    pub zh_cn: Option<PlanText>,
}

/// Changes to a plan (`PATCH /v1/admin/plans/{id}`): only these fields can change; a
/// list given replaces the whole list.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanPatch {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    #[schema(min_items = 1)]
    pub prices: Option<Vec<Price>>,
    #[schema(value_type = Option<Vec<crate::domain::Country>>, min_items = 1)]
    pub coverage: Option<Vec<String>>,
    #[schema(max_length = 100)]
    pub region: Option<String>,
    /// Replaces the texts in other languages (`{"zh-CN": null}` removes the Chinese).
    pub translations: Option<PlanTranslations>,
}

/// A plan's validated contents, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSpec {
    pub code: String,
    pub name: String,
    pub description: String,
    pub card_types: BTreeSet<CardType>,
    pub period: Period,
    pub validity_days: i32,
    pub data_bytes: Option<i64>,
    pub voice_minutes: i32,
    pub sms: i32,
    pub coverage: BTreeSet<Country>,
    pub region: Option<String>,
    pub prices: Vec<(Currency, i64)>,
    /// Chinese name and description.
    pub zh: Option<(String, String)>,
}

/// The validated contents of a patch.
#[derive(Debug, Clone, Default)]
pub struct PatchSpec {
    pub name: Option<String>,
    pub description: Option<String>,
    pub prices: Option<Vec<(Currency, i64)>>,
    pub coverage: Option<BTreeSet<Country>>,
    pub region: Option<String>,
    /// `Some(None)`: remove the Chinese texts.
    pub zh: Option<Option<(String, String)>>,
}

const MAX_CODE: usize = 64;
const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 2000;
const MAX_REGION: usize = 100;
const MAX_CUSTOM_DAYS: i32 = 3650;

/// Collects field errors under a path prefix (`plans[3].` for a bulk import).
struct Errors<'a> {
    prefix: &'a str,
    list: Vec<FieldError>,
}

impl Errors<'_> {
    fn add(&mut self, field: impl std::fmt::Display, message: impl Into<String>) {
        self.list
            .push(FieldError::new(format!("{}{field}", self.prefix), message));
    }
}

// Lengths are counted as sent, as the document's `maxLength` counts them; surrounding
// whitespace is dropped from what is stored.
fn check_name(errors: &mut Errors, name: &str) -> String {
    let too_long = name.chars().count() > MAX_NAME;
    let name = name.trim();
    if name.is_empty() || too_long {
        errors.add("name", format!("must be 1 to {MAX_NAME} characters"));
    }
    name.to_owned()
}

fn check_description(errors: &mut Errors, description: &str) -> String {
    if description.chars().count() > MAX_DESCRIPTION {
        errors.add(
            "description",
            format!("must be at most {MAX_DESCRIPTION} characters"),
        );
    }
    description.trim().to_owned()
}

fn check_translations(
    errors: &mut Errors,
    translations: Option<&PlanTranslations>,
) -> Option<(String, String)> {
    let text = translations?.zh_cn.as_ref()?;
    let mut inner = Errors {
        prefix: "",
        list: Vec::new(),
    };
    let name = check_name(&mut inner, &text.name);
    let description = check_description(&mut inner, &text.description);
    for error in inner.list {
        errors.add(
            format_args!("translations.zh-CN.{}", error.field),
            error.message,
        );
    }
    Some((name, description))
}

fn check_region(errors: &mut Errors, region: Option<&str>) -> Option<String> {
    let too_long = region.is_some_and(|r| r.chars().count() > MAX_REGION);
    let region = region.map(str::trim).filter(|r| !r.is_empty())?;
    if too_long {
        errors.add("region", format!("must be at most {MAX_REGION} characters"));
    }
    Some(region.to_owned())
}

fn check_coverage(errors: &mut Errors, coverage: &[String]) -> BTreeSet<Country> {
    if coverage.is_empty() {
        errors.add("coverage", "must list at least one country");
    }
    let mut countries = BTreeSet::new();
    for (i, code) in coverage.iter().enumerate() {
        // A set: a country listed twice is covered once.
        match code.parse::<Country>() {
            Ok(country) => {
                countries.insert(country);
            }
            Err(e) => errors.add(format_args!("coverage[{i}]"), e.to_string()),
        }
    }
    countries
}

fn check_prices(errors: &mut Errors, prices: &[Price]) -> Vec<(Currency, i64)> {
    if prices.is_empty() {
        errors.add("prices", "must list at least one price");
    }
    let mut seen = BTreeSet::new();
    let mut checked = Vec::new();
    for (i, price) in prices.iter().enumerate() {
        match price.currency.parse::<Currency>() {
            Ok(currency) => {
                if !seen.insert(currency) {
                    errors.add(
                        format_args!("prices[{i}].currency"),
                        format!("{currency} is priced twice"),
                    );
                }
                if price.amount <= 0 {
                    errors.add(
                        format_args!("prices[{i}].amount"),
                        "must be greater than 0 (minor units)",
                    );
                }
                checked.push((currency, price.amount));
            }
            Err(e) => errors.add(format_args!("prices[{i}].currency"), e.to_string()),
        }
    }
    checked.sort();
    checked
}

impl NewPlan {
    /// Validates every field; `prefix` names the plan inside a larger request.
    pub fn validate(&self, prefix: &str) -> Result<PlanSpec, Vec<FieldError>> {
        let mut errors = Errors {
            prefix,
            list: Vec::new(),
        };
        // Exactly as sent: the document's pattern allows no surrounding whitespace.
        let code = self.code.as_str();
        let code_ok = !code.is_empty()
            && code.len() <= MAX_CODE
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !code_ok {
            errors.add(
                "code",
                format!("must be 1 to {MAX_CODE} letters, digits, `-` or `_`"),
            );
        }
        let name = check_name(&mut errors, &self.name);
        let description = check_description(&mut errors, &self.description);
        if self.card_types.is_empty() {
            errors.add("card_types", "must list at least one card type");
        }
        let validity_days = match (self.period.fixed_days(), self.validity_days) {
            (Some(fixed), None) => fixed,
            (Some(fixed), Some(given)) if given == fixed => fixed,
            (Some(fixed), Some(_)) => {
                errors.add(
                    "validity_days",
                    format!("a {} is {fixed} days", self.period.as_str()),
                );
                fixed
            }
            (None, Some(days)) if (1..=MAX_CUSTOM_DAYS).contains(&days) => days,
            (None, _) => {
                errors.add(
                    "validity_days",
                    format!("a custom period needs 1 to {MAX_CUSTOM_DAYS} days"),
                );
                0
            }
        };
        if self.data_bytes.is_some_and(|bytes| bytes < 0) {
            errors.add("data_bytes", "must be 0 or more (null for unlimited)");
        }
        if self.voice_minutes < 0 {
            errors.add("voice_minutes", "must be 0 or more");
        }
        if self.sms < 0 {
            errors.add("sms", "must be 0 or more");
        }
        let coverage = check_coverage(&mut errors, &self.coverage);
        let region = check_region(&mut errors, self.region.as_deref());
        let prices = check_prices(&mut errors, &self.prices);
        let zh = check_translations(&mut errors, self.translations.as_ref());
        if !errors.list.is_empty() {
            return Err(errors.list);
        }
        Ok(PlanSpec {
            code: code.to_owned(),
            name,
            description,
            card_types: self.card_types.iter().copied().collect(),
            period: self.period,
            validity_days,
            data_bytes: self.data_bytes,
            voice_minutes: self.voice_minutes,
            sms: self.sms,
            coverage,
            region,
            prices,
            zh,
        })
    }
}

impl PlanPatch {
    pub fn validate(&self) -> Result<PatchSpec, ApiError> {
        let mut errors = Errors {
            prefix: "",
            list: Vec::new(),
        };
        let spec = PatchSpec {
            name: self.name.as_deref().map(|n| check_name(&mut errors, n)),
            description: self
                .description
                .as_deref()
                .map(|d| check_description(&mut errors, d)),
            prices: self.prices.as_deref().map(|p| check_prices(&mut errors, p)),
            coverage: self
                .coverage
                .as_deref()
                .map(|c| check_coverage(&mut errors, c)),
            region: self
                .region
                .as_deref()
                .and_then(|r| check_region(&mut errors, Some(r))),
            zh: self
                .translations
                .as_ref()
                .map(|t| check_translations(&mut errors, Some(t))),
        };
        if errors.list.is_empty() {
            Ok(spec)
        } else {
            Err(ApiError::validation(errors.list))
        }
    }
}

/// `GET /v1/plans` query. Values are checked here so that a bad one is a `422` naming
/// the parameter rather than a generic parse failure.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PlanQuery {
    /// `fm` or `esim`: plans that fit this card type.
    #[param(example = "esim", value_type = Option<crate::domain::CardType>)]
    pub card_type: Option<String>,
    /// ISO 3166-1 alpha-2: plans that cover this country.
    #[param(value_type = Option<crate::domain::Country>)]
    pub country: Option<String>,
    /// `month`, `quarter`, `year` or `custom`.
    #[param(example = "month", value_type = Option<crate::catalog::model::Period>)]
    pub period: Option<String>,
    /// ISO 4217: plans priced in this currency.
    #[param(value_type = Option<crate::domain::Currency>)]
    pub currency: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = r"^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

/// Validated catalog filters, combined with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PlanFilter {
    pub card_type: Option<CardType>,
    pub country: Option<Country>,
    pub period: Option<Period>,
    pub currency: Option<Currency>,
}

/// A query parameter's value, if one was given: exactly as sent, so that an empty or
/// padded value is refused like any other that breaks the parameter's schema.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref()
}

/// The value when `outcome` is good; otherwise records why under `name`.
fn keep<T>(errors: &mut Vec<FieldError>, name: &str, outcome: Result<T, String>) -> Option<T> {
    outcome
        .map_err(|e| errors.push(FieldError::new(name, e)))
        .ok()
}

impl PlanQuery {
    pub fn filter(&self) -> Result<PlanFilter, Vec<FieldError>> {
        let mut errors = Vec::new();
        let card_type = given(&self.card_type)
            .and_then(|v| keep(&mut errors, "card_type", v.parse::<CardType>()));
        let country = given(&self.country).and_then(|v| {
            keep(
                &mut errors,
                "country",
                v.parse::<Country>().map_err(|e| e.to_string()),
            )
        });
        let period = given(&self.period).and_then(|v| {
            let period = v
                .parse::<Period>()
                .map_err(|_| format!("`{v}` is not a period: use month, quarter, year or custom"));
            keep(&mut errors, "period", period)
        });
        let currency = given(&self.currency).and_then(|v| {
            keep(
                &mut errors,
                "currency",
                v.parse::<Currency>().map_err(|e| e.to_string()),
            )
        });
        if errors.is_empty() {
            Ok(PlanFilter {
                card_type,
                country,
                period,
                currency,
            })
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> NewPlan {
        NewPlan {
            code: "JP-ESIM-M-5G".into(),
            name: "Japan 5 GB".into(),
            description: String::new(),
            card_types: vec![CardType::Esim],
            period: Period::Month,
            validity_days: None,
            data_bytes: Some(5 << 30),
            voice_minutes: 0,
            sms: 0,
            coverage: vec!["JP".into()],
            region: None,
            prices: vec![Price {
                currency: "USD".into(),
                amount: 1200,
            }],
            translations: None,
        }
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn fixed_periods_have_fixed_days() {
        assert_eq!(Period::Month.fixed_days(), Some(30));
        assert_eq!(Period::Quarter.fixed_days(), Some(90));
        assert_eq!(Period::Year.fixed_days(), Some(365));
        assert_eq!(Period::Custom.fixed_days(), None);
        assert_eq!(plan().validate("").unwrap().validity_days, 30);
    }

    #[test]
    fn custom_periods_need_their_days_and_fixed_ones_must_match() {
        let mut custom = plan();
        custom.period = Period::Custom;
        assert_eq!(fields(custom.validate("").unwrap_err()), ["validity_days"]);
        custom.validity_days = Some(7);
        assert_eq!(custom.validate("").unwrap().validity_days, 7);
        let mut wrong = plan();
        wrong.validity_days = Some(31);
        assert_eq!(fields(wrong.validate("").unwrap_err()), ["validity_days"]);
    }

    #[test]
    fn every_bad_field_is_named_with_its_path() {
        let mut bad = plan();
        bad.code = "has space".into();
        bad.card_types.clear();
        // `JP` twice is no error: coverage is a set, and the second one merges.
        bad.coverage = vec!["JP".into(), "XX".into(), "JP".into()];
        bad.prices = vec![
            Price {
                currency: "USD".into(),
                amount: 0,
            },
            Price {
                currency: "ABC".into(),
                amount: 5,
            },
            Price {
                currency: "USD".into(),
                amount: 5,
            },
        ];
        assert_eq!(
            fields(bad.validate("plans[2].").unwrap_err()),
            [
                "plans[2].code",
                "plans[2].card_types",
                "plans[2].coverage[1]",
                "plans[2].prices[0].amount",
                "plans[2].prices[1].currency",
                "plans[2].prices[2].currency",
            ]
        );
    }

    #[test]
    fn unknown_filter_values_name_their_parameter() {
        let query = PlanQuery {
            card_type: Some("sim".into()),
            country: Some("jp".into()),
            period: Some("week".into()),
            currency: Some("RMB".into()),
            ..Default::default()
        };
        assert_eq!(
            fields(query.filter().unwrap_err()),
            ["card_type", "country", "period", "currency"]
        );
        let good = PlanQuery {
            card_type: Some("fm".into()),
            currency: Some("CNY".into()),
            ..Default::default()
        };
        let filter = good.filter().unwrap();
        assert_eq!(filter.card_type, Some(CardType::Fm));
        assert_eq!(filter.currency.map(|c| c.code()), Some("CNY"));
    }
}
