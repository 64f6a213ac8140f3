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
use rate_limit::TokenRateLimits;
use store::credential_usable;
use tokens::{Claims, TokenService};

/// The authentication state shared by all workers of one process.
pub struct Authenticator {
    pub tokens: TokenService,
    pub limits: TokenRateLimits,
    /// client id → may its tokens be used. Entries live `credential_check_interval`, the
    /// longest a revoked credential's or suspended partner's token keeps working here.
    credential_usable: Cache<(String, String), bool>,
    credential_check_interval: Duration,
}

impl Authenticator {
    pub fn new(
        tokens: TokenService,
        limits: TokenRateLimits,
        credential_check_interval: Duration,
    ) -> Self {
        Self {
            tokens,
            limits,
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

    /// Whether the credential a token was issued to still works (cached briefly).
    pub async fn credential_usable(&self, db: &Db, claims: &Claims) -> Result<bool, ApiError> {
        let key = (claims.cid.clone(), claims.sub.clone());
        if let Some(usable) = self.credential_usable.get(&key) {
            return Ok(usable);
        }
        let usable = {
            let (client_id, partner_id) = key.clone();
            db.run(move |conn| {
                credential_usable(conn, &client_id, &partner_id).map_err(ApiError::from)
            })
            .await?
        };
        self.credential_usable.insert(key, usable);
        Ok(usable)
    }

    /// Drops what this process remembers, after a change made here (revocation, suspension).
    pub fn forget_credentials(&self) {
        self.credential_usable.invalidate_all();
    }
}
