//! Money: an integer amount in the currency's minor unit and an ISO 4217 currency.
//! There is no float anywhere on this path.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

/// An ISO 4217 currency code such as `CNY`, `USD` or `JPY`. Only real codes can be held.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    ToSchema,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[schema(value_type = String, example = "CNY", pattern = "^[A-Z]{3}$")]
pub struct Currency(iso_currency::Currency);

crate::db::text_mapping!(Currency);

impl Currency {
    pub fn code(self) -> &'static str {
        // `iso_currency` returns the static code of the enum variant.
        self.0.code()
    }

    /// The stored form: the code.
    pub fn as_str(&self) -> &'static str {
        self.code()
    }

    /// Digits after the decimal point of the minor unit (CNY 2, JPY 0, BHD 3).
    pub fn minor_unit_digits(self) -> u16 {
        self.0.exponent().unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an ISO 4217 currency code")]
pub struct UnknownCurrency(pub String);

impl FromStr for Currency {
    type Err = UnknownCurrency;

    /// Accepts exactly three upper-case letters naming a real currency.
    fn from_str(code: &str) -> Result<Self, Self::Err> {
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(UnknownCurrency(code.to_owned()));
        }
        iso_currency::Currency::from_code(code)
            .map(Currency)
            .ok_or_else(|| UnknownCurrency(code.to_owned()))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        code.parse().map_err(serde::de::Error::custom)
    }
}

/// A count of a currency's minor units (fen, cents): the only way an amount is held,
/// stored (`BigInt`) and shown (a JSON integer). Arithmetic on it is checked.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[serde(transparent)]
#[diesel(sql_type = diesel::sql_types::BigInt)]
pub struct MinorUnits(i64);

impl MinorUnits {
    pub const ZERO: MinorUnits = MinorUnits(0);

    pub const fn new(units: i64) -> Self {
        Self(units)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: MinorUnits) -> Option<MinorUnits> {
        self.0.checked_add(other.0).map(MinorUnits)
    }

    pub fn checked_sub(self, other: MinorUnits) -> Option<MinorUnits> {
        self.0.checked_sub(other.0).map(MinorUnits)
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }
}

impl fmt::Display for MinorUnits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl diesel::serialize::ToSql<diesel::sql_types::BigInt, crate::db::MultiBackend> for MinorUnits {
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, crate::db::MultiBackend>,
    ) -> diesel::serialize::Result {
        out.set_value((diesel::sql_types::BigInt, &self.0));
        Ok(diesel::serialize::IsNull::No)
    }
}

impl diesel::serialize::ToSql<diesel::sql_types::BigInt, diesel::pg::Pg> for MinorUnits {
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
    ) -> diesel::serialize::Result {
        <i64 as diesel::serialize::ToSql<diesel::sql_types::BigInt, diesel::pg::Pg>>::to_sql(
            &self.0, out,
        )
    }
}

impl diesel::serialize::ToSql<diesel::sql_types::BigInt, diesel::sqlite::Sqlite> for MinorUnits {
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, diesel::sqlite::Sqlite>,
    ) -> diesel::serialize::Result {
        <i64 as diesel::serialize::ToSql<diesel::sql_types::BigInt, diesel::sqlite::Sqlite>>::to_sql(
            &self.0, out,
        )
    }
}

impl diesel::deserialize::FromSql<diesel::sql_types::BigInt, crate::db::MultiBackend>
    for MinorUnits
{
    fn from_sql(bytes: crate::db::MultiRawValue<'_>) -> diesel::deserialize::Result<Self> {
        <i64 as diesel::deserialize::FromSql<diesel::sql_types::BigInt, crate::db::MultiBackend>>::from_sql(bytes)
            .map(MinorUnits)
    }
}

/// An amount of money in minor units (fen, cents), never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct Money {
    /// Integer amount in the currency's minor unit: `3000` CNY is ¥30.00.
    #[schema(value_type = i64, example = 3000)]
    pub amount: MinorUnits,
    pub currency: Currency,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("cannot combine {0} with {1}")]
    CurrencyMismatch(Currency, Currency),
    #[error("amount out of range")]
    Overflow,
}

impl Money {
    pub fn new(amount: MinorUnits, currency: Currency) -> Self {
        Self { amount, currency }
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        self.amount
            .checked_add(other.amount)
            .map(|amount| Money::new(amount, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    pub fn checked_neg(self) -> Result<Money, MoneyError> {
        self.amount
            .get()
            .checked_neg()
            .map(|amount| Money::new(MinorUnits(amount), self.currency))
            .ok_or(MoneyError::Overflow)
    }
}

impl fmt::Display for Money {
    /// `CNY 30.00`, `JPY 500`: the minor units placed by the currency's exponent, exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = u32::from(self.currency.minor_unit_digits());
        let sign = if self.amount.get() < 0 { "-" } else { "" };
        let magnitude = self.amount.get().unsigned_abs();
        if digits == 0 {
            return write!(f, "{} {sign}{magnitude}", self.currency);
        }
        let scale = 10u64.pow(digits);
        write!(
            f,
            "{} {sign}{}.{:0width$}",
            self.currency,
            magnitude / scale,
            magnitude % scale,
            width = digits as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cny() -> Currency {
        "CNY".parse().unwrap()
    }

    #[test]
    fn only_real_upper_case_codes_are_currencies() {
        assert!("CNY".parse::<Currency>().is_ok());
        assert!("USD".parse::<Currency>().is_ok());
        assert!("cny".parse::<Currency>().is_err());
        assert!("XYZ".parse::<Currency>().is_err());
        assert!("US".parse::<Currency>().is_err());
        assert!("USDD".parse::<Currency>().is_err());
    }

    #[test]
    fn serde_round_trip_rejects_unknown_codes() {
        let money: Money = serde_json::from_str(r#"{"amount": 3000, "currency": "CNY"}"#).unwrap();
        assert_eq!(money, Money::new(MinorUnits(3000), cny()));
        assert_eq!(
            serde_json::to_string(&money).unwrap(),
            r#"{"amount":3000,"currency":"CNY"}"#
        );
        assert!(serde_json::from_str::<Money>(r#"{"amount": 1, "currency": "ABC"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount": 1.5, "currency": "CNY"}"#).is_err());
    }

    #[test]
    fn displays_minor_units_by_the_currency_exponent() {
        assert_eq!(Money::new(MinorUnits(3000), cny()).to_string(), "CNY 30.00");
        assert_eq!(Money::new(MinorUnits(-5), cny()).to_string(), "CNY -0.05");
        assert_eq!(
            Money::new(MinorUnits(500), "JPY".parse().unwrap()).to_string(),
            "JPY 500"
        );
        assert_eq!(
            Money::new(MinorUnits(1234), "BHD".parse().unwrap()).to_string(),
            "BHD 1.234"
        );
    }

    #[test]
    fn arithmetic_refuses_mixed_currencies_and_overflow() {
        let usd: Currency = "USD".parse().unwrap();
        assert_eq!(
            Money::new(MinorUnits(1), cny()).checked_add(Money::new(MinorUnits(1), usd)),
            Err(MoneyError::CurrencyMismatch(cny(), usd))
        );
        assert_eq!(
            Money::new(MinorUnits(i64::MAX), cny()).checked_add(Money::new(MinorUnits(1), cny())),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::new(MinorUnits(250), cny()).checked_add(Money::new(MinorUnits(-50), cny())),
            Ok(Money::new(MinorUnits(200), cny()))
        );
        assert_eq!(
            Money::new(MinorUnits(i64::MIN), cny()).checked_neg(),
            Err(MoneyError::Overflow)
        );
    }
}
