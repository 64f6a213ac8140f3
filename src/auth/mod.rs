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

use std::sync::Arc;
use std::time::Duration;

use mini_moka::sync::Cache;
use sha2::{Digest, Sha256};

use crate::db::Db;
use crate::error::ApiError;
use crate::rate_limit::PartnerRateLimits;
use rate_limit::TokenRateLimits;
use scopes::ScopeSet;
use store::{credential_state, ClientRecord};
use tokens::{Claims, TokenRejection, TokenService};

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
    /// SHA-256 of a token → what verifying it found. Checking an EdDSA signature costs
    /// tens of microseconds, more than the rest of a cached catalog read; a partner sends
    /// the same token until it expires, so it is verified once. An entry is used only
    /// while the token's `exp` (with the leeway) has not passed, and only ever holds a
    /// token that verified; revocation and suspension are checked on every request all
    /// the same, by `usable_credential`.
    verified_tokens: Cache<[u8; 32], Arc<(Claims, ScopeSet)>>,
}

/// The most verified tokens kept (about 1 KiB each).
const VERIFIED_TOKENS_KEPT: u64 = 50_000;

impl Authenticator {
    pub fn new(
        tokens: TokenService,
        limits: TokenRateLimits,
        partner_limits: PartnerRateLimits,
        credential_check_interval: Duration,
    ) -> Self {
        Self {
            limits,
            partner_limits,
            credential_usable: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(credential_check_interval)
                .build(),
            credential_check_interval,
            verified_tokens: Cache::builder()
                .max_capacity(VERIFIED_TOKENS_KEPT)
                .time_to_live(tokens.lifetime() + tokens::LEEWAY)
                .build(),
            tokens,
        }
    }

    /// The token's claims and scopes if its signature, issuer, audience and times are
    /// right (see [`TokenService::verify`]); from the cache of verified tokens when it
    /// was seen before and has not expired since.
    pub fn verify(&self, token: &str) -> Result<Arc<(Claims, ScopeSet)>, TokenRejection> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(known) = self.verified_tokens.get(&key) {
            if self.tokens.is_current(&known.0) {
                return Ok(known);
            }
            self.verified_tokens.invalidate(&key);
            return Err(TokenRejection::Expired);
        }
        let verified = Arc::new(self.tokens.verify(token)?);
        self.verified_tokens.insert(key, verified.clone());
        Ok(verified)
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

#[cfg(test)]
mod tests {
    use super::*;
    use keys::{JwtAlgorithm, KeyRing, KeyText};
    use std::num::NonZeroU32;
    use tokens::TokenPolicy;

    fn authenticator() -> Authenticator {
        let secret = KeyText("a test secret of at least thirty-two bytes".into());
        let ring = KeyRing::from_texts(JwtAlgorithm::Hs256, &secret, &[]).expect("key ring");
        let tokens = TokenService::new(
            ring,
            TokenPolicy {
                issuer: "simrenew".into(),
                audience: "simrenew-api".into(),
                lifetime: Duration::from_secs(900),
            },
        );
        let per_minute = NonZeroU32::new(60).expect("non-zero");
        Authenticator::new(
            tokens,
            TokenRateLimits::new(per_minute, per_minute),
            PartnerRateLimits::new(
                crate::rate_limit::RateQuota::DEFAULT,
                crate::clock::Clock::system(),
            ),
            Duration::from_secs(5),
        )
    }

    fn key_of(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    #[test]
    fn a_verified_token_is_remembered_and_a_refused_one_is_not() {
        let auth = authenticator();
        let scopes: ScopeSet = "catalog:read".parse().expect("scopes");
        let token = auth.tokens.issue("p-1", "c-1", &scopes, 0).expect("token");
        let first = auth.verify(&token).expect("verifies");
        assert_eq!(first.0.sub, "p-1");
        assert!(auth.verified_tokens.get(&key_of(&token)).is_some());
        assert!(Arc::ptr_eq(&first, &auth.verify(&token).expect("again")));

        let mut forged = token.clone();
        forged.push('A');
        assert!(auth.verify(&forged).is_err());
        assert!(auth.verified_tokens.get(&key_of(&forged)).is_none());
    }

    #[test]
    fn a_remembered_token_stops_working_at_its_expiry() {
        let auth = authenticator();
        let scopes: ScopeSet = "catalog:read".parse().expect("scopes");
        let token = auth.tokens.issue("p-1", "c-1", &scopes, 0).expect("token");
        let verified = auth.verify(&token).expect("verifies");
        // The same claims, as if the token had been issued long enough ago to have expired.
        let mut claims = verified.0.clone();
        let past = chrono::Utc::now().timestamp() - 3_600;
        (claims.iat, claims.nbf, claims.exp) = (past, past, past + 900);
        auth.verified_tokens
            .insert(key_of(&token), Arc::new((claims, scopes)));
        assert!(matches!(auth.verify(&token), Err(TokenRejection::Expired)));
        assert!(auth.verified_tokens.get(&key_of(&token)).is_none());
    }
}
