//! Token signing keys. The algorithm is pinned by configuration; verification accepts
//! only that algorithm and only the keys listed here, looked up by `kid`.
//!
//! Keys come from configuration (PEM files or an inline value) in production. With none
//! configured, one key is generated and kept in the database, so every instance sharing
//! the database signs and accepts the same tokens and a restart logs nobody out.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clap::ValueEnum;
use diesel::prelude::*;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::{Digest, Sha256};

use crate::auth::secrets::random_bytes;
use crate::db::schema::signing_keys;
use crate::db::{DbConnection, DbError};
use crate::domain::time;

/// The algorithms a deployment may pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JwtAlgorithm {
    /// Ed25519 signatures (default): small keys, fast, no parameter choices to get wrong.
    #[value(name = "EdDSA")]
    EdDsa,
    /// RSA PKCS#1 v1.5 with SHA-256, for verifiers that only know RSA. Needs a configured key.
    #[value(name = "RS256")]
    Rs256,
    /// HMAC-SHA-256 with a shared secret; nothing is published at the JWKS endpoint.
    #[value(name = "HS256")]
    Hs256,
}

impl JwtAlgorithm {
    pub fn jsonwebtoken(self) -> Algorithm {
        match self {
            JwtAlgorithm::EdDsa => Algorithm::EdDSA,
            JwtAlgorithm::Rs256 => Algorithm::RS256,
            JwtAlgorithm::Hs256 => Algorithm::HS256,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            JwtAlgorithm::EdDsa => "EdDSA",
            JwtAlgorithm::Rs256 => "RS256",
            JwtAlgorithm::Hs256 => "HS256",
        }
    }
}

/// Key material as configured: PEM text for EdDSA/RS256, the secret for HS256.
/// Its `Debug` never shows the value.
#[derive(Clone)]
pub struct KeyText(pub String);

impl std::fmt::Debug for KeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyText(<redacted>)")
    }
}

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// The signing key, plus older keys still accepted until their tokens expire.
    Configured {
        signing: KeyText,
        previous: Vec<KeyText>,
    },
    /// Generated once and stored in the database.
    Generated,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("RS256 needs a configured key (SIMRENEW_JWT_SIGNING_KEY_FILE): none is generated")]
    NoGeneratedRsa,
    #[error(transparent)]
    Database(#[from] DbError),
}

impl From<diesel::result::Error> for KeyError {
    fn from(e: diesel::result::Error) -> Self {
        KeyError::Database(DbError::Query(e))
    }
}

struct VerificationKey {
    kid: String,
    key: DecodingKey,
    /// The public form, `None` for HS256 whose key is a secret.
    public_jwk: Option<serde_json::Value>,
}

/// The signing key and every key tokens are accepted under.
pub struct KeyRing {
    algorithm: JwtAlgorithm,
    signing_kid: String,
    signing_key: EncodingKey,
    verification: Vec<VerificationKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("algorithm", &self.algorithm)
            .field("signing_kid", &self.signing_kid)
            .finish_non_exhaustive()
    }
}

fn invalid(what: &'static str) -> impl Fn(jsonwebtoken::errors::Error) -> KeyError {
    move |e| KeyError::Invalid {
        what,
        reason: e.to_string(),
    }
}

/// The public JWK of an asymmetric key, with its RFC 7638 thumbprint as `kid`.
fn public_jwk(
    mut jwk: Jwk,
    algorithm: JwtAlgorithm,
) -> Result<(String, serde_json::Value), KeyError> {
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(invalid("public key"))?;
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(algorithm.jsonwebtoken().into());
    let value = serde_json::to_value(&jwk).map_err(|e| KeyError::Invalid {
        what: "public key",
        reason: e.to_string(),
    })?;
    Ok((kid, value))
}

/// A `kid` for a shared secret that reveals nothing about it.
fn secret_kid(secret: &[u8]) -> String {
    let digest = Sha256::digest(secret);
    format!("hs-{}", URL_SAFE_NO_PAD.encode(&digest[..12]))
}

/// Parses a signing key: returns its kid, the encoding key and its verification key.
fn signing_key(
    algorithm: JwtAlgorithm,
    text: &KeyText,
) -> Result<(String, EncodingKey, VerificationKey), KeyError> {
    let pem = text.0.trim().as_bytes();
    match algorithm {
        JwtAlgorithm::Hs256 => {
            if text.0.len() < 32 {
                return Err(KeyError::Invalid {
                    what: "HS256 secret",
                    reason: "must be at least 32 bytes".into(),
                });
            }
            let secret = text.0.as_bytes();
            let kid = secret_kid(secret);
            let verification = VerificationKey {
                kid: kid.clone(),
                key: DecodingKey::from_secret(secret),
                public_jwk: None,
            };
            Ok((kid, EncodingKey::from_secret(secret), verification))
        }
        JwtAlgorithm::EdDsa => {
            // Parsed here rather than by jsonwebtoken so that PKCS#8 v1 and v2 files both work.
            let key = ed25519_dalek::SigningKey::from_pkcs8_pem(text.0.trim()).map_err(|e| {
                KeyError::Invalid {
                    what: "EdDSA signing key",
                    reason: e.to_string(),
                }
            })?;
            let v1 = ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: key.to_bytes(),
                public_key: None,
            }
            .to_pkcs8_der()
            .map_err(|e| KeyError::Invalid {
                what: "EdDSA signing key",
                reason: e.to_string(),
            })?;
            let x = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
            let decoding = DecodingKey::from_ed_components(&x).map_err(invalid("signing key"))?;
            let jwk: Jwk = serde_json::from_value(serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": x,
            }))
            .map_err(|e| KeyError::Invalid {
                what: "EdDSA public key",
                reason: e.to_string(),
            })?;
            let (kid, public) = public_jwk(jwk, algorithm)?;
            let verification = VerificationKey {
                kid: kid.clone(),
                key: decoding,
                public_jwk: Some(public),
            };
            Ok((kid, EncodingKey::from_ed_der(v1.as_bytes()), verification))
        }
        JwtAlgorithm::Rs256 => {
            let encoding = EncodingKey::from_rsa_pem(pem).map_err(invalid("signing key"))?;
            let jwk = Jwk::from_encoding_key(&encoding, algorithm.jsonwebtoken())
                .map_err(invalid("signing key"))?;
            let decoding = DecodingKey::from_jwk(&jwk).map_err(invalid("signing key"))?;
            let (kid, public) = public_jwk(jwk, algorithm)?;
            let verification = VerificationKey {
                kid: kid.clone(),
                key: decoding,
                public_jwk: Some(public),
            };
            Ok((kid, encoding, verification))
        }
    }
}

/// Parses a verification-only key: a public key PEM (or the old secret for HS256).
fn previous_key(algorithm: JwtAlgorithm, text: &KeyText) -> Result<VerificationKey, KeyError> {
    let pem = text.0.trim().as_bytes();
    let decoding = match algorithm {
        JwtAlgorithm::Hs256 => {
            return Ok(VerificationKey {
                kid: secret_kid(text.0.as_bytes()),
                key: DecodingKey::from_secret(text.0.as_bytes()),
                public_jwk: None,
            })
        }
        JwtAlgorithm::EdDsa => DecodingKey::from_ed_pem(pem),
        JwtAlgorithm::Rs256 => DecodingKey::from_rsa_pem(pem),
    }
    .map_err(invalid("previous public key"))?;
    let jwk = Jwk::from_decoding_key(&decoding, Some(algorithm.jsonwebtoken()))
        .map_err(invalid("previous public key"))?;
    let (kid, public) = public_jwk(jwk, algorithm)?;
    Ok(VerificationKey {
        kid,
        key: decoding,
        public_jwk: Some(public),
    })
}

impl KeyRing {
    /// Builds the ring from configuration, or from the database's generated key
    /// (creating it on first use).
    pub fn load(
        algorithm: JwtAlgorithm,
        source: &KeySource,
        conn: &mut DbConnection,
    ) -> Result<Self, KeyError> {
        match source {
            KeySource::Configured { signing, previous } => {
                Self::from_texts(algorithm, signing, previous)
            }
            KeySource::Generated => {
                let text = generated_key(algorithm, conn)?;
                Self::from_texts(algorithm, &text, &[])
            }
        }
    }

    pub fn from_texts(
        algorithm: JwtAlgorithm,
        signing: &KeyText,
        previous: &[KeyText],
    ) -> Result<Self, KeyError> {
        let (signing_kid, signing_key, current) = signing_key(algorithm, signing)?;
        let mut verification = vec![current];
        for text in previous {
            let key = previous_key(algorithm, text)?;
            if verification.iter().all(|known| known.kid != key.kid) {
                verification.push(key);
            }
        }
        Ok(Self {
            algorithm,
            signing_kid,
            signing_key,
            verification,
        })
    }

    pub fn algorithm(&self) -> JwtAlgorithm {
        self.algorithm
    }

    pub fn signing(&self) -> (&str, &EncodingKey) {
        (&self.signing_kid, &self.signing_key)
    }

    pub fn verification_key(&self, kid: &str) -> Option<&DecodingKey> {
        self.verification
            .iter()
            .find(|key| key.kid == kid)
            .map(|key| &key.key)
    }

    /// The public keys, as published at `/.well-known/jwks.json`.
    pub fn public_jwks(&self) -> Vec<serde_json::Value> {
        self.verification
            .iter()
            .filter_map(|key| key.public_jwk.clone())
            .collect()
    }
}

/// A fresh key in the text form configuration would give.
fn generate(algorithm: JwtAlgorithm) -> Result<KeyText, KeyError> {
    match algorithm {
        JwtAlgorithm::EdDsa => {
            let key = ed25519_dalek::SigningKey::from_bytes(&random_bytes::<32>());
            let pem = key
                .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                .map_err(|e| KeyError::Invalid {
                    what: "generated key",
                    reason: e.to_string(),
                })?;
            Ok(KeyText(pem.to_string()))
        }
        JwtAlgorithm::Hs256 => Ok(KeyText(URL_SAFE_NO_PAD.encode(random_bytes::<48>()))),
        JwtAlgorithm::Rs256 => Err(KeyError::NoGeneratedRsa),
    }
}

/// The database's key for `algorithm`. `algorithm` is unique in the table, so instances
/// starting together on an empty database all end up with the one row that won.
fn generated_key(algorithm: JwtAlgorithm, conn: &mut DbConnection) -> Result<KeyText, KeyError> {
    let stored = |conn: &mut DbConnection| {
        signing_keys::table
            .filter(signing_keys::algorithm.eq(algorithm.name()))
            .select(signing_keys::private_key)
            .first::<String>(conn)
            .optional()
    };
    if let Some(text) = stored(conn)? {
        return Ok(KeyText(text));
    }
    let fresh = generate(algorithm)?;
    let public = match algorithm {
        JwtAlgorithm::Hs256 => String::new(),
        _ => KeyRing::from_texts(algorithm, &fresh, &[])?
            .public_jwks()
            .first()
            .map(|jwk| jwk.to_string())
            .unwrap_or_default(),
    };
    let inserted = diesel::insert_into(signing_keys::table)
        .values((
            signing_keys::kid.eq(uuid::Uuid::now_v7().to_string()),
            signing_keys::algorithm.eq(algorithm.name()),
            signing_keys::private_key.eq(&fresh.0),
            signing_keys::public_key.eq(public),
            signing_keys::created_at.eq(time::to_db(time::now())),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(fresh),
        // Another instance stored its key first: use that one.
        Err(e) if crate::db::is_unique_violation(&e) => {
            stored(conn)?.map(KeyText).ok_or_else(|| KeyError::Invalid {
                what: "stored key",
                reason: "vanished after a conflicting insert".into(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_eddsa_key_signs_under_its_thumbprint() {
        let text = generate(JwtAlgorithm::EdDsa).unwrap();
        assert!(text.0.contains("BEGIN PRIVATE KEY"));
        let ring = KeyRing::from_texts(JwtAlgorithm::EdDsa, &text, &[]).unwrap();
        let (kid, _) = ring.signing();
        assert!(ring.verification_key(kid).is_some());
        let jwks = ring.public_jwks();
        assert_eq!(jwks.len(), 1);
        assert_eq!(jwks[0]["kid"], kid);
        assert_eq!(jwks[0]["kty"], "OKP");
        assert_eq!(jwks[0]["alg"], "EdDSA");
        assert!(jwks[0].get("d").is_none(), "never the private part");
    }

    #[test]
    fn hs256_publishes_nothing_and_needs_a_long_secret() {
        let ring = KeyRing::from_texts(JwtAlgorithm::Hs256, &KeyText("k".repeat(40)), &[]).unwrap();
        assert!(ring.public_jwks().is_empty());
        assert!(KeyRing::from_texts(JwtAlgorithm::Hs256, &KeyText("short".into()), &[]).is_err());
    }

    #[test]
    fn a_previous_public_key_is_accepted_alongside_the_new_one() {
        let old = generate(JwtAlgorithm::EdDsa).unwrap();
        let old_ring = KeyRing::from_texts(JwtAlgorithm::EdDsa, &old, &[]).unwrap();
        let old_public = {
            use ed25519_dalek::pkcs8::EncodePublicKey;
            ed25519_dalek::SigningKey::from_pkcs8_pem(&old.0)
                .unwrap()
                .verifying_key()
                .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                .unwrap()
        };
        let new = generate(JwtAlgorithm::EdDsa).unwrap();
        let ring = KeyRing::from_texts(JwtAlgorithm::EdDsa, &new, &[KeyText(old_public)]).unwrap();
        assert!(ring.verification_key(old_ring.signing().0).is_some());
        assert_ne!(ring.signing().0, old_ring.signing().0);
        assert_eq!(ring.public_jwks().len(), 2);
    }
}
