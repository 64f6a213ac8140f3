//! ISO 3166-1 alpha-2 country codes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

/// An ISO 3166-1 alpha-2 code such as `CN`, `HK` or `JP`. Only assigned codes can be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ToSchema)]
#[schema(value_type = String, example = "JP", pattern = "^[A-Z]{2}$")]
pub struct Country([u8; 2]);

impl Country {
    pub fn code(&self) -> &str {
        // Constructed only from two ASCII upper-case letters.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an ISO 3166-1 alpha-2 country code")]
pub struct UnknownCountry(pub String);

impl FromStr for Country {
    type Err = UnknownCountry;

    /// Accepts exactly two upper-case letters naming an assigned country.
    fn from_str(code: &str) -> Result<Self, Self::Err> {
        let bytes = code.as_bytes();
        if bytes.len() != 2 || !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err(UnknownCountry(code.to_owned()));
        }
        isocountry::CountryCode::for_alpha2(code)
            .map(|_| Country([bytes[0], bytes[1]]))
            .map_err(|_| UnknownCountry(code.to_owned()))
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Country {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        code.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_assigned_upper_case_codes() {
        for ok in ["CN", "HK", "JP", "US", "MO"] {
            assert_eq!(ok.parse::<Country>().unwrap().code(), ok);
        }
        for bad in ["cn", "XX", "CHN", "C", "", "ZZ"] {
            assert!(bad.parse::<Country>().is_err(), "{bad}");
        }
    }
}
