//! Integers as JSON Schema counts them: `39` and `39.0` are the same integer
//! (JSON Schema 2020-12 §6.1.1, "a number with a zero fractional part"), so both are
//! accepted wherever the document says `integer`; `39.5` and out-of-range values are not.
//! Used with `#[serde(deserialize_with = "…")]` on request fields.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

struct Integral<T>(PhantomData<T>);

impl<'de, T> Visitor<'de> for Integral<T>
where
    T: TryFrom<i64> + TryFrom<u64>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer in range")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        // Within ±2^53 an f64 holds every integer exactly; beyond it `1e300` would
        // silently become some other integer.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        if v.fract() != 0.0 || !v.is_finite() || v.abs() > EXACT {
            return Err(E::custom(format!("{v} is not an integer")));
        }
        #[allow(clippy::cast_possible_truncation)] // checked just above
        self.visit_i64(v as i64)
    }
}

/// An integer field.
pub fn integer<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    deserializer.deserialize_any(Integral(PhantomData))
}

/// One integer, for reading integers inside other shapes (an option, a list).
struct Whole<T>(T);

impl<'de, T: TryFrom<i64> + TryFrom<u64>> Deserialize<'de> for Whole<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        integer(d).map(Whole)
    }
}

/// An optional integer field (`null` or absent: `None`).
pub fn optional_integer<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    Ok(Option::<Whole<T>>::deserialize(deserializer)?.map(|w| w.0))
}

/// An optional list of integers (`null` or absent: `None`).
pub fn optional_integers<'de, D, T>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    Ok(Option::<Vec<Whole<T>>>::deserialize(deserializer)?
        .map(|list| list.into_iter().map(|w| w.0).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Sample {
        #[serde(deserialize_with = "integer")]
        count: i32,
        #[serde(default, deserialize_with = "optional_integer")]
        bytes: Option<i64>,
        #[serde(deserialize_with = "integer")]
        rate: u32,
        #[serde(default, deserialize_with = "optional_integers")]
        list: Option<Vec<i64>>,
    }

    fn parse(text: &str) -> Result<Sample, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn integral_numbers_in_any_notation() {
        let s = parse(r#"{"count": 39.0, "bytes": 1e3, "rate": 5}"#).unwrap();
        assert_eq!((s.count, s.bytes, s.rate), (39, Some(1000), 5));
        let s = parse(r#"{"count": -2, "bytes": null, "rate": 1.0}"#).unwrap();
        assert_eq!((s.count, s.bytes), (-2, None));
        assert_eq!(parse(r#"{"count": 1, "rate": 1}"#).unwrap().bytes, None);
        let s = parse(r#"{"count": 1, "rate": 1, "list": [75, 90.0, 1e2]}"#).unwrap();
        assert_eq!(s.list, Some(vec![75, 90, 100]));
    }

    #[test]
    fn fractions_strings_and_out_of_range_are_refused() {
        for text in [
            r#"{"count": 39.5, "rate": 1}"#,
            r#"{"count": "39", "rate": 1}"#,
            r#"{"count": 3000000000, "rate": 1}"#,
            r#"{"count": 1, "rate": -1}"#,
            r#"{"count": 1, "rate": -1.0}"#,
            r#"{"count": 1e300, "rate": 1}"#,
            r#"{"count": 1, "bytes": 1e19, "rate": 1}"#,
            r#"{"count": 1, "rate": 1, "list": [75.5]}"#,
            r#"{"count": 1, "rate": 1, "list": ["75"]}"#,
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
    }
}
