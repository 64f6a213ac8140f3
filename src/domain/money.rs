//! Money: an integer amount in the currency's minor unit and an ISO 4217 currency.
//! There is no float anywhere on this path.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

/// An ISO 4217 currency code such as `CNY`, `USD` or `JPY`. Only real codes can be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ToSchema)]
#[schema(value_type = String, example = "CNY", pattern = "^[A-Z]{3}$")]
pub struct Currency(iso_currency::Currency);

impl Currency {
    pub fn code(self) -> &'static str {
        // `iso_currency` returns the static code of the enum variant.
        self.0.code()
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

/// An amount of money in minor units (fen, cents), never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct Money {
    /// Integer amount in the currency's minor unit: `3000` CNY is ¥30.00.
    #[schema(example = 3000)]
    pub amount: i64,
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
    pub fn new(amount: i64, currency: Currency) -> Self {
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
            .checked_neg()
            .map(|amount| Money::new(amount, self.currency))
            .ok_or(MoneyError::Overflow)
    }
}

impl fmt::Display for Money {
    /// `CNY 30.00`, `JPY 500`: the minor units placed by the currency's exponent, exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = u32::from(self.currency.minor_unit_digits());
        let sign = if self.amount < 0 { "-" } else { "" };
        let magnitude = self.amount.unsigned_abs();
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
        assert_eq!(money, Money::new(3000, cny()));
        assert_eq!(
            serde_json::to_string(&money).unwrap(),
            r#"{"amount":3000,"currency":"CNY"}"#
        );
        assert!(serde_json::from_str::<Money>(r#"{"amount": 1, "currency": "ABC"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount": 1.5, "currency": "CNY"}"#).is_err());
    }

    #[test]
    fn displays_minor_units_by_the_currency_exponent() {
        assert_eq!(Money::new(3000, cny()).to_string(), "CNY 30.00");
        assert_eq!(Money::new(-5, cny()).to_string(), "CNY -0.05");
        assert_eq!(
            Money::new(500, "JPY".parse().unwrap()).to_string(),
            "JPY 500"
        );
        assert_eq!(
            Money::new(1234, "BHD".parse().unwrap()).to_string(),
            "BHD 1.234"
        );
    }

    #[test]
    fn arithmetic_refuses_mixed_currencies_and_overflow() {
        let usd: Currency = "USD".parse().unwrap();
        assert_eq!(
            Money::new(1, cny()).checked_add(Money::new(1, usd)),
            Err(MoneyError::CurrencyMismatch(cny(), usd))
        );
        assert_eq!(
            Money::new(i64::MAX, cny()).checked_add(Money::new(1, cny())),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::new(250, cny()).checked_add(Money::new(-50, cny())),
            Ok(Money::new(200, cny()))
        );
        assert_eq!(
            Money::new(i64::MIN, cny()).checked_neg(),
            Err(MoneyError::Overflow)
        );
    }
}
