//! OAuth scopes. Explicit and flat: no scope implies another, `admin` included.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

/// An OAuth scope a token can carry.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
pub enum Scope {
    #[serde(rename = "catalog:read")]
    CatalogRead,
    #[serde(rename = "cards:read")]
    CardsRead,
    #[serde(rename = "orders:read")]
    OrdersRead,
    #[serde(rename = "orders:write")]
    OrdersWrite,
    #[serde(rename = "wallet:read")]
    WalletRead,
    #[serde(rename = "admin")]
    Admin,
    #[serde(rename = "network")]
    Network,
    #[serde(rename = "webhooks")]
    Webhooks,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Scope::CatalogRead,
        Scope::CardsRead,
        Scope::OrdersRead,
        Scope::OrdersWrite,
        Scope::WalletRead,
        Scope::Admin,
        Scope::Network,
        Scope::Webhooks,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::CatalogRead => "catalog:read",
            Scope::CardsRead => "cards:read",
            Scope::OrdersRead => "orders:read",
            Scope::OrdersWrite => "orders:write",
            Scope::WalletRead => "wallet:read",
            Scope::Admin => "admin",
            Scope::Network => "network",
            Scope::Webhooks => "webhooks",
        }
    }

    pub const fn description(self) -> &'static str {
        match self {
            Scope::CatalogRead => "Read the plan catalog and device compatibility",
            Scope::CardsRead => "Read your cards, their terms and balances",
            Scope::OrdersRead => "Read your orders and their activations",
            Scope::OrdersWrite => "Place, cancel and confirm your orders",
            Scope::WalletRead => "Read your wallet balances and ledger",
            Scope::Admin => "Operate the service: partners, plans, cards, wallet credits",
            Scope::Network => "Report usage and activation results from the network",
            Scope::Webhooks => "Read your events (what happened to your orders and activations)",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope `{0}`")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_owned()))
    }
}

/// A set of scopes, written as OAuth writes it: space-separated (`"cards:read orders:write"`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    pub fn to_vec(&self) -> Vec<Scope> {
        self.0.iter().copied().collect()
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl FromStr for ScopeSet {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split([' ', ','])
            .filter(|part| !part.is_empty())
            .map(Scope::from_str)
            .collect()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for scope in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
            first = false;
        }
        Ok(())
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_match_the_oauth_names() {
        for scope in Scope::ALL {
            assert_eq!(serde_json::to_value(scope).unwrap(), scope.as_str());
        }
    }

    #[test]
    fn parses_space_separated_and_prints_canonically() {
        let set: ScopeSet = "orders:write  catalog:read".parse().unwrap();
        assert!(set.contains(Scope::OrdersWrite) && set.contains(Scope::CatalogRead));
        assert!(!set.contains(Scope::Admin));
        assert_eq!(set.to_string(), "catalog:read orders:write");
        assert_eq!("".parse::<ScopeSet>().unwrap(), ScopeSet::default());
    }

    #[test]
    fn refuses_unknown_scopes() {
        assert_eq!(
            "catalog:read superuser".parse::<ScopeSet>(),
            Err(UnknownScope("superuser".into()))
        );
    }

    #[test]
    fn no_scope_implies_another() {
        let admin: ScopeSet = "admin".parse().unwrap();
        for scope in Scope::ALL.into_iter().filter(|s| *s != Scope::Admin) {
            assert!(!admin.contains(scope));
        }
    }
}
