//! Card identifiers, parsed once at the edge: once constructed, they are valid.
//! ICCID (ITU-T E.118, Luhn), EID (GSMA SGP.29, ISO 7064 MOD 97-10), MSISDN (E.164).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

/// `true` when the digits' last one is the Luhn check digit of the others.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, c) in digits.bytes().rev().enumerate() {
        let Some(d) = (c as char).to_digit(10) else {
            return false;
        };
        sum += if i % 2 == 1 {
            let doubled = d * 2;
            if doubled > 9 {
                doubled - 9
            } else {
                doubled
            }
        } else {
            d
        };
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// The remainder of a decimal string modulo 97, digit by digit (no big integers).
pub fn mod97(digits: &str) -> Option<u32> {
    digits.bytes().try_fold(0u32, |acc, c| {
        (c as char).to_digit(10).map(|d| (acc * 10 + d) % 97)
    })
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A SIM's ICCID: 18–20 digits, the last a Luhn check digit (ITU-T E.118).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, ToSchema)]
#[schema(value_type = String, example = "89860012345678901238", pattern = "^[0-9]{18,20}$")]
pub struct Iccid(String);
string_newtype!(Iccid);

impl FromStr for Iccid {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !(18..=20).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err("an ICCID is 18 to 20 digits".into());
        }
        if !luhn_valid(s) {
            return Err("the ICCID's last digit is not its Luhn check digit".into());
        }
        Ok(Self(s.to_owned()))
    }
}

/// An eUICC identifier: 32 digits whose value is 1 modulo 97 (GSMA SGP.29).
#[derive(Debug, Clone, PartialEq, Eq, Hash, ToSchema)]
#[schema(value_type = String, example = "89049032123451234512345678901235", pattern = "^[0-9]{32}$")]
pub struct Eid(String);
string_newtype!(Eid);

impl FromStr for Eid {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err("an EID is 32 digits".into());
        }
        if mod97(s) != Some(1) {
            return Err("the EID's check digits are wrong (it must be 1 modulo 97)".into());
        }
        Ok(Self(s.to_owned()))
    }
}

/// A phone number in E.164: `+`, a country code not starting with 0, at most 15 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, ToSchema)]
#[schema(value_type = String, example = "+8613800138000", pattern = "^\\+[1-9][0-9]{6,14}$")]
pub struct Msisdn(String);
string_newtype!(Msisdn);

impl FromStr for Msisdn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s
            .strip_prefix('+')
            .ok_or("an MSISDN is E.164: it starts with +")?;
        let ok = (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err("an MSISDN is E.164: + then 7 to 15 digits, not starting with 0".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends the Luhn digit that makes `body` valid.
    fn with_check_digit(body: &str) -> String {
        (0..10)
            .map(|d| format!("{body}{d}"))
            .find(|candidate| luhn_valid(candidate))
            .unwrap()
    }

    #[test]
    fn luhn_accepts_known_numbers_and_catches_single_digit_errors() {
        assert!(luhn_valid("79927398713"));
        assert!(!luhn_valid("79927398710"));
        assert!(luhn_valid("4539578763621486"));
        let iccid = with_check_digit("8986001234567890123");
        assert!(luhn_valid(&iccid));
        let mut broken = iccid.clone().into_bytes();
        broken[5] = if broken[5] == b'9' {
            b'0'
        } else {
            broken[5] + 1
        };
        assert!(!luhn_valid(std::str::from_utf8(&broken).unwrap()));
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("12a4"));
    }

    #[test]
    fn iccids_are_18_to_20_digits_with_a_luhn_digit() {
        for body in [
            "89860012345678901",
            "898600123456789012",
            "8986001234567890123",
        ] {
            let iccid = with_check_digit(body);
            assert!(iccid.parse::<Iccid>().is_ok(), "{iccid}");
        }
        assert!(
            with_check_digit("8986001234567890")
                .parse::<Iccid>()
                .is_err(),
            "17 digits"
        );
        assert!(
            with_check_digit("89860012345678901234")
                .parse::<Iccid>()
                .is_err(),
            "21 digits"
        );
        let valid = with_check_digit("8986001234567890123");
        let wrong_digit = format!("{}{}", &valid[..19], (valid.as_bytes()[19] - b'0' + 1) % 10);
        assert!(wrong_digit.parse::<Iccid>().is_err());
        assert!("89860012345678901A3".parse::<Iccid>().is_err());
    }

    #[test]
    fn eids_are_32_digits_equal_to_1_mod_97() {
        // Check digits chosen as ISO 7064 MOD 97-10 does: 98 - (body·100 mod 97).
        let body = "890490321234512345123456789012";
        let check = 98 - mod97(&format!("{body}00")).unwrap();
        let eid = format!("{body}{check:02}");
        assert_eq!(mod97(&eid), Some(1));
        assert!(eid.parse::<Eid>().is_ok());
        let wrong = format!("{body}{:02}", (check + 1) % 100);
        assert!(wrong.parse::<Eid>().is_err());
        assert!(eid[..31].parse::<Eid>().is_err());
    }

    #[test]
    fn msisdns_follow_e164() {
        for ok in ["+8613800138000", "+14155552671", "+85291234567"] {
            assert!(ok.parse::<Msisdn>().is_ok(), "{ok}");
        }
        for bad in [
            "8613800138000",
            "+0861380013800",
            "+1234",
            "+1234567890123456",
            "+86 138",
        ] {
            assert!(bad.parse::<Msisdn>().is_err(), "{bad}");
        }
    }
}

/// The `{iccid}` path parameter, declared once for every operation on one card. (The
/// handlers read it as text and parse it; anything that is no ICCID names no card.)
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CardPath {
    /// The card's ICCID: 18–20 digits ending in a Luhn check digit (anything else names
    /// no card: `404`).
    #[param(value_type = Iccid)]
    pub iccid: String,
}
