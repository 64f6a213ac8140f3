//! Client credentials: unguessable ids, high-entropy secrets shown once, and argon2id
//! hashes, the only form in which a secret is stored.

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;

/// `rand`'s OS generator: the kernel's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// A public client id: 128 random bits, recognisable by its prefix.
pub fn new_client_id() -> String {
    format!("sr_client_{}", hex(&random_bytes::<16>()))
}

/// A client secret: 256 random bits. It is returned once and never stored.
pub fn new_client_secret() -> String {
    format!("sr_secret_{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, thiserror::Error)]
#[error("cannot hash the secret: {0}")]
pub struct HashError(String);

/// The argon2id PHC string of a secret (random salt, the crate's OWASP-recommended parameters).
pub fn hash_secret(secret: &str) -> Result<String, HashError> {
    Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// A hash of a secret nobody knows, verified against when the client id is unknown so
/// that "no such client" takes as long as "wrong secret".
static DECOY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_secret(&new_client_secret()).unwrap_or_default());

/// Checks `secret` against `stored_hash`, or against a decoy when there is no stored hash.
/// Either way the work done is one argon2id verification.
pub fn verify_secret(secret: &str, stored_hash: Option<&str>) -> bool {
    let argon2 = Argon2::default();
    match stored_hash {
        Some(hash) => argon2.verify_password(secret.as_bytes(), hash).is_ok(),
        None => {
            let _ = argon2.verify_password(secret.as_bytes(), DECOY_HASH.as_str());
            false
        }
    }
}

/// Pays the decoy's one-time set-up cost (one argon2 hash, about 100 ms) at start rather
/// than on a first unknown client, on a thread of its own so that start-up does not wait
/// for it (a token request arriving sooner waits for the hash instead).
pub fn warm_up() {
    std::thread::spawn(|| LazyLock::force(&DECOY_HASH));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_secrets_are_unique_and_prefixed() {
        let (a, b) = (new_client_id(), new_client_id());
        assert_ne!(a, b);
        assert!(a.starts_with("sr_client_") && a.len() == 10 + 32);
        let secret = new_client_secret();
        assert!(secret.starts_with("sr_secret_") && secret.len() == 10 + 43);
    }

    #[test]
    fn a_hash_verifies_its_secret_only() {
        let secret = new_client_secret();
        let hash = hash_secret(&secret).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains(&secret));
        assert!(verify_secret(&secret, Some(&hash)));
        assert!(!verify_secret("sr_secret_wrong", Some(&hash)));
        assert!(!verify_secret(&secret, None));
    }
}
