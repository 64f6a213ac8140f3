//! The two kinds of card this service renews.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `fm`: a physical SIM renewed over the air, whose renewal extends the current term.
/// `esim`: a downloadable profile, whose renewal replaces the current term at once.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    ToSchema,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "snake_case")]
pub enum CardType {
    Fm,
    Esim,
}

crate::db::text_mapping!(CardType);

impl CardType {
    pub fn as_str(self) -> &'static str {
        match self {
            CardType::Fm => "fm",
            CardType::Esim => "esim",
        }
    }
}

impl fmt::Display for CardType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CardType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fm" => Ok(CardType::Fm),
            "esim" => Ok(CardType::Esim),
            other => Err(format!("`{other}` is not a card type: use `fm` or `esim`")),
        }
    }
}
