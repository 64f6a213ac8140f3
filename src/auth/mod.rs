//! Authentication and authorization: the OAuth2 client-credentials token endpoint,
//! pinned-algorithm JWTs, scopes, and the extractor every protected route uses.

pub mod keys;
pub mod principal;
pub mod rate_limit;
pub mod routes;
pub mod scopes;
pub mod secrets;
pub mod store;
pub mod tokens;

use std::time::Duration;

use mini_moka::sync::Cache;

use crate::db::Db;
use crate::error::ApiError;
use crate::rate_limit::PartnerRateLimits;
use rate_limit::TokenRateLimits;
use scopes::ScopeSet;
use store::{credential_state, ClientRecord};
use tokens::{Claims, TokenService};

/// The authentication state shared by all workers of one process.
pub struct Authenticator {
    pub tokens: TokenService,
    pub limits: TokenRateLimits,
    /// Every partner's request quota on the authenticated operations.
    pub partner_limits: PartnerRateLimits,
    /// (client id, partner id) → its credential's state (`None`: no token of it works).
    /// Entries live `credential_check_interval`, the longest a change (revocation,
    /// suspension, a scope taken away) takes to reach a token here.
    credential_usable: Cache<(String, String), Option<ClientRecord>>,
    credential_check_interval: Duration,
}

impl Authenticator {
    pub fn new(
        tokens: TokenService,
        limits: TokenRateLimits,
        partner_limits: PartnerRateLimits,
        credential_check_interval: Duration,
    ) -> Self {
        Self {
            tokens,
            limits,
            partner_limits,
            credential_usable: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(credential_check_interval)
                .build(),
            credential_check_interval,
        }
    }

    pub fn credential_check_interval(&self) -> Duration {
        self.credential_check_interval
    }

    /// The token's credential if the token still carries what is true of it (cached
    /// briefly): the credential works, the partner was not suspended since the token was
    /// issued (resuming does not revive it), and the partner still has every scope it
    /// names. `None`: the token no longer works.
    pub async fn usable_credential(
        &self,
        db: &Db,
        claims: &Claims,
        scopes: &ScopeSet,
    ) -> Result<Option<ClientRecord>, ApiError> {
        let key = (claims.cid.clone(), claims.sub.clone());
        let state = match self.credential_usable.get(&key) {
            Some(state) => state,
            None => {
                let (client_id, partner_id) = key.clone();
                let state = db
                    .run(move |conn| {
                        credential_state(conn, &client_id, &partner_id).map_err(ApiError::from)
                    })
                    .await?;
                self.credential_usable.insert(key, state.clone());
                state
            }
        };
        Ok(state.filter(|client| {
            claims.gen == client.token_generation && scopes.is_subset(&client.partner_scopes)
        }))
    }

    /// Drops what this process remembers, after a change made here (revocation,
    /// suspension, a new quota).
    pub fn forget_credentials(&self) {
        self.credential_usable.invalidate_all();
    }
}
