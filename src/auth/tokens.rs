//! Access tokens: short-lived JWTs signed with the pinned algorithm.

use std::time::Duration;

use jsonwebtoken::{decode, decode_header, encode, Header, Validation};
use serde::{Deserialize, Serialize};

use super::keys::KeyRing;
use super::scopes::ScopeSet;

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_S: u64 = 30;
pub const LEEWAY: Duration = Duration::from_secs(LEEWAY_S);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The partner id.
    pub sub: String,
    /// Space-separated scopes granted.
    pub scope: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    /// The client id the token was issued to, so revoking that credential ends it.
    pub cid: String,
    /// The partner's token generation when it was issued: suspending the partner starts
    /// a new one, so the token stays dead after a resume.
    #[serde(default)]
    pub gen: i32,
}

#[derive(Debug, Clone)]
pub struct TokenPolicy {
    pub issuer: String,
    pub audience: String,
    pub lifetime: Duration,
}

/// Why a token was refused. The reason is logged; the client learns only that it is invalid.
#[derive(Debug, thiserror::Error)]
pub enum TokenRejection {
    #[error("malformed token header: {0}")]
    Header(jsonwebtoken::errors::Error),
    #[error("algorithm {0:?} is not the pinned one")]
    Algorithm(jsonwebtoken::Algorithm),
    #[error("no kid in the header")]
    MissingKid,
    #[error("unknown kid")]
    UnknownKid,
    #[error("rejected: {0}")]
    Invalid(jsonwebtoken::errors::Error),
    #[error("scope claim: {0}")]
    Scope(String),
    #[error("critical header extensions are not understood: {0:?}")]
    Critical(Vec<String>),
    #[error("issued in the future")]
    IssuedInTheFuture,
    #[error("lives longer than tokens are issued for")]
    TooLong,
    #[error("expired")]
    Expired,
}

pub struct TokenService {
    keys: KeyRing,
    policy: TokenPolicy,
    validation: Validation,
}

impl TokenService {
    pub fn new(keys: KeyRing, policy: TokenPolicy) -> Self {
        let mut validation = Validation::new(keys.algorithm().jsonwebtoken());
        validation.set_issuer(&[&policy.issuer]);
        validation.set_audience(&[&policy.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_S;
        Self {
            keys,
            policy,
            validation,
        }
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub fn lifetime(&self) -> Duration {
        self.policy.lifetime
    }

    /// Signs a token for `partner_id`, issued to `client_id`, carrying `scopes`.
    pub fn issue(
        &self,
        partner_id: &str,
        client_id: &str,
        scopes: &ScopeSet,
        generation: i32,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let lifetime = i64::try_from(self.policy.lifetime.as_secs()).unwrap_or(i64::MAX);
        let claims = Claims {
            iss: self.policy.issuer.clone(),
            aud: self.policy.audience.clone(),
            sub: partner_id.to_owned(),
            scope: scopes.to_string(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(lifetime),
            jti: uuid::Uuid::now_v7().to_string(),
            cid: client_id.to_owned(),
            gen: generation,
        };
        let (kid, key) = self.keys.signing();
        let mut header = Header::new(self.keys.algorithm().jsonwebtoken());
        header.kid = Some(kid.to_owned());
        encode(&header, &claims, key)
    }

    /// Whether claims that verified earlier are still within `exp` (and past `nbf`),
    /// with the same leeway as [`TokenService::verify`].
    pub fn is_current(&self, claims: &Claims) -> bool {
        let now = chrono::Utc::now().timestamp();
        let leeway = i64::try_from(LEEWAY_S).unwrap_or(i64::MAX);
        now <= claims.exp.saturating_add(leeway) && now >= claims.nbf.saturating_sub(leeway)
    }

    /// Checks signature, algorithm, `kid`, `iss`, `aud`, `exp` and `nbf`.
    pub fn verify(&self, token: &str) -> Result<(Claims, ScopeSet), TokenRejection> {
        let header = decode_header(token).map_err(TokenRejection::Header)?;
        // RFC 7515 §4.1.11: a `crit` extension not understood makes the token invalid;
        // this service understands none (RFC 8725 §3.1: reject what is not expected).
        if let Some(critical) = header.crit {
            return Err(TokenRejection::Critical(critical));
        }
        if header.alg != self.keys.algorithm().jsonwebtoken() {
            return Err(TokenRejection::Algorithm(header.alg));
        }
        let kid = header.kid.ok_or(TokenRejection::MissingKid)?;
        let key = self
            .keys
            .verification_key(&kid)
            .ok_or(TokenRejection::UnknownKid)?;
        let data =
            decode::<Claims>(token, key, &self.validation).map_err(TokenRejection::Invalid)?;
        let now = chrono::Utc::now().timestamp();
        let leeway = i64::try_from(LEEWAY_S).unwrap_or(i64::MAX);
        if data.claims.iat > now.saturating_add(leeway) {
            return Err(TokenRejection::IssuedInTheFuture);
        }
        let lifetime = i64::try_from(self.policy.lifetime.as_secs()).unwrap_or(i64::MAX);
        if data.claims.exp.saturating_sub(data.claims.iat) > lifetime.saturating_add(leeway) {
            return Err(TokenRejection::TooLong);
        }
        let scopes = data
            .claims
            .scope
            .parse::<ScopeSet>()
            .map_err(|e| TokenRejection::Scope(e.to_string()))?;
        Ok((data.claims, scopes))
    }
}
