//! The credential reads authentication needs: a client id's secret hash, its partner and
//! whether its tokens may be used. Partners and credentials are written by `partners`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::scopes::ScopeSet;
use crate::db::schema::{partner_credentials, partners};
use crate::db::DbConnection;
use crate::domain::PartnerStatus;
use crate::rate_limit::RateQuota;

/// A partner's stored quota override: both columns or neither, within range; anything
/// else is an unreadable row, never silently the default.
pub fn stored_quota(
    (per_second, burst): (Option<i32>, Option<i32>),
) -> QueryResult<Option<RateQuota>> {
    match (per_second, burst) {
        (None, None) => Ok(None),
        (Some(per_second), Some(burst)) => u32::try_from(per_second)
            .ok()
            .zip(u32::try_from(burst).ok())
            .and_then(|(per_second, burst)| RateQuota::new(per_second, burst))
            .map(Some)
            .ok_or_else(|| {
                diesel::result::Error::DeserializationError(
                    format!("unreadable stored rate limit {per_second}/s burst {burst}").into(),
                )
            }),
        _ => Err(diesel::result::Error::DeserializationError(
            "a stored rate limit has only one of its two values".into(),
        )),
    }
}

/// What the token endpoint needs to know about a client id.
#[derive(Debug, Clone)]
pub struct ClientRecord {
    pub partner_id: String,
    pub secret_hash: String,
    /// The credential is not revoked and its partner is active.
    pub usable: bool,
    pub partner_scopes: ScopeSet,
    /// The partner's token generation: tokens of an earlier one (before a suspension)
    /// no longer work.
    pub token_generation: i32,
    /// The partner's own request quota; `None`: the deployment's default.
    pub rate_limit: Option<RateQuota>,
}

pub fn find_client(conn: &mut DbConnection, client_id: &str) -> QueryResult<Option<ClientRecord>> {
    let row = partner_credentials::table
        .inner_join(partners::table)
        .filter(partner_credentials::client_id.eq(client_id))
        .select((
            partner_credentials::partner_id,
            partner_credentials::secret_hash,
            partner_credentials::revoked_at,
            partners::status,
            partners::scopes,
            partners::token_generation,
            (partners::rate_limit_per_second, partners::rate_limit_burst),
        ))
        .first::<(
            String,
            String,
            Option<NaiveDateTime>,
            PartnerStatus,
            String,
            i32,
            (Option<i32>, Option<i32>),
        )>(conn)
        .optional()?;
    row.map(
        |(partner_id, secret_hash, revoked_at, status, scopes, token_generation, quota)| {
            let partner_scopes = scopes.parse::<ScopeSet>().map_err(|e| {
                diesel::result::Error::DeserializationError(
                    format!("unreadable stored scopes: {e}").into(),
                )
            })?;
            Ok(ClientRecord {
                partner_id,
                secret_hash,
                usable: revoked_at.is_none() && status == PartnerStatus::Active,
                partner_scopes,
                token_generation,
                rate_limit: stored_quota(quota)?,
            })
        },
    )
    .transpose()
}

/// What decides whether a token of `client_id` for `partner_id` may still be used:
/// `None` when the credential is revoked, its partner suspended, or not this partner's.
pub fn credential_state(
    conn: &mut DbConnection,
    client_id: &str,
    partner_id: &str,
) -> QueryResult<Option<ClientRecord>> {
    Ok(find_client(conn, client_id)?
        .filter(|client| client.usable && client.partner_id == partner_id))
}
