//! Cursor pagination shared by every list: `?limit=&cursor=` → `{data, next_cursor}`.
//! Rows are ordered by a unique key (a UUIDv7 id, an ICCID), so a page boundary is one
//! key and pages never repeat or skip rows, whatever is inserted meanwhile.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, FieldError};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;
const CURSOR_PREFIX: &str = "after:";

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page; omit for the first page.
    #[param(pattern = r"^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageRequest {
    pub limit: u32,
    /// Return rows whose key sorts after this one.
    pub after: Option<String>,
}

impl PageRequest {
    /// How many rows to fetch: one more than the page, to learn whether another follows.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// Cuts the extra row off and returns the page with the cursor of the next one.
    pub fn finish<T>(
        &self,
        mut rows: Vec<T>,
        id_of: impl Fn(&T) -> String,
    ) -> (Vec<T>, Option<String>) {
        let limit = self.limit as usize;
        if rows.len() > limit {
            rows.truncate(limit);
            let next = rows.last().map(|row| encode_cursor(&id_of(row)));
            (rows, next)
        } else {
            (rows, None)
        }
    }
}

pub fn encode_cursor(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{id}"))
}

fn decode_cursor(cursor: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix(CURSOR_PREFIX)
        .filter(|key| !key.is_empty())
        .map(str::to_owned)
}

impl PageQuery {
    pub fn validate(&self) -> Result<PageRequest, ApiError> {
        let mut errors = Vec::new();
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push(FieldError::new(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(cursor) => match decode_cursor(cursor) {
                Some(id) => Some(id),
                None => {
                    errors.push(FieldError::new(
                        "cursor",
                        "is not a cursor this API returned",
                    ));
                    None
                }
            },
        };
        if errors.is_empty() {
            Ok(PageRequest { limit, after })
        } else {
            Err(ApiError::validation(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_and_stay_within_bounds() {
        assert_eq!(
            PageQuery::default().validate().unwrap().limit,
            DEFAULT_LIMIT
        );
        for bad in [0, 101] {
            let query = PageQuery {
                limit: Some(bad),
                cursor: None,
            };
            assert!(query.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_forgeries_are_refused() {
        let id = uuid::Uuid::now_v7().to_string();
        let query = PageQuery {
            limit: None,
            cursor: Some(encode_cursor(&id)),
        };
        assert_eq!(query.validate().unwrap().after, Some(id));
        for forged in ["not-base64!", "eHl6", ""] {
            let query = PageQuery {
                limit: None,
                cursor: Some(forged.into()),
            };
            assert_eq!(query.validate().is_ok(), forged.is_empty(), "{forged}");
        }
    }

    #[test]
    fn finish_returns_a_cursor_only_when_more_rows_exist() {
        let page = PageRequest {
            limit: 2,
            after: None,
        };
        let (rows, next) = page.finish(vec!["a", "b", "c"], |r| r.to_string());
        assert_eq!(rows, vec!["a", "b"]);
        assert_eq!(next, Some(encode_cursor("b")));
        let (rows, next) = page.finish(vec!["a", "b"], |r| r.to_string());
        assert_eq!((rows.len(), next), (2, None));
    }
}
