//! How typed values are stored: every stored state is an enum kept as TEXT, every amount
//! a `BigInt` of minor units. Reading a value that no variant names is an error (the
//! read fails, the request answers a logged 500), never a silent default.

/// A stored text that names no variant of the enum it is read into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a {type_name}")]
pub struct UnknownValue {
    pub type_name: &'static str,
    pub value: String,
}

/// A read that met an unknown stored value fails as a deserialization error.
impl From<UnknownValue> for diesel::result::Error {
    fn from(e: UnknownValue) -> Self {
        diesel::result::Error::DeserializationError(Box::new(e))
    }
}

/// An id column read back as the UUID it was written as.
pub fn stored_uuid(text: &str) -> Result<uuid::Uuid, UnknownValue> {
    uuid::Uuid::parse_str(text).map_err(|_| UnknownValue {
        type_name: "UUID",
        value: text.to_owned(),
    })
}

/// Maps a type to a TEXT column on both backends through its `as_str()` and `FromStr`.
/// The type must also derive `AsExpression` and `FromSqlRow` with `sql_type = Text`.
macro_rules! text_mapping {
    ($type:ty) => {
        impl diesel::serialize::ToSql<diesel::sql_types::Text, $crate::db::MultiBackend> for $type {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, $crate::db::MultiBackend>,
            ) -> diesel::serialize::Result {
                out.set_value((diesel::sql_types::Text, self.as_str()));
                Ok(diesel::serialize::IsNull::No)
            }
        }

        // Inserts bind each value for the backend in use, so both need the mapping too.
        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $type {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg>>::to_sql(
                    self.as_str(),
                    out,
                )
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::sqlite::Sqlite> for $type {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::sqlite::Sqlite>,
            ) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<
                                                                    diesel::sql_types::Text,
                                                                    diesel::sqlite::Sqlite,
                                                                >>::to_sql(self.as_str(), out)
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Text, $crate::db::MultiBackend>
            for $type
        {
            fn from_sql(bytes: $crate::db::MultiRawValue<'_>) -> diesel::deserialize::Result<Self> {
                let text = <String as diesel::deserialize::FromSql<
                    diesel::sql_types::Text,
                    $crate::db::MultiBackend,
                >>::from_sql(bytes)?;
                text.parse::<$type>().map_err(|e| {
                    format!("unreadable stored {}: {e}", std::any::type_name::<$type>()).into()
                })
            }
        }
    };
}
pub(crate) use text_mapping;

/// Declares an enum that is stored and shown by the same snake_case names (each variant's
/// name in snake_case; `tests::stored_names` in lib.rs checks every such enum): the enum
/// (with serde and diesel derives), `ALL`, `as_str`, `FromStr` (an unknown name is an
/// [`UnknownValue`]), `Display`, and its TEXT mapping. Add `ToSchema` through the
/// attributes when the API shows it.
macro_rules! stored_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        // serde and utoipa both read this; the names below must be the same (tested).
        #[serde(rename_all = "snake_case")]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::db::UnknownValue;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::db::UnknownValue {
                        type_name: stringify!($name),
                        value: other.to_owned(),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        $crate::db::text_mapping!($name);
    };
}
pub(crate) use stored_enum;

#[cfg(test)]
mod tests {
    crate::db::stored_enum! {
        enum Colour {
            Red = "red",
            DarkBlue = "dark_blue",
        }
    }

    #[test]
    fn names_round_trip_through_text_and_json() {
        for colour in Colour::ALL {
            assert_eq!(colour.as_str().parse::<Colour>(), Ok(*colour));
            assert_eq!(serde_json::to_value(colour).unwrap(), colour.as_str());
        }
        assert_eq!(Colour::DarkBlue.to_string(), "dark_blue");
    }

    #[test]
    fn an_unknown_name_is_an_error_naming_the_type() {
        let err = "green".parse::<Colour>().unwrap_err();
        assert_eq!(err.type_name, "Colour");
        assert_eq!(err.to_string(), "`green` is not a Colour");
    }
}
