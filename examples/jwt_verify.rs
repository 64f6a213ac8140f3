//! Access-token verifications per second on one core, per algorithm (run by bench/jwt.sh).

use std::time::{Duration, Instant};

use simrenew::auth::keys::{JwtAlgorithm, KeyRing, KeyText};
use simrenew::auth::tokens::{TokenPolicy, TokenService};

fn eddsa_key() -> KeyText {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8 * 7 + 1);
    let pem = ed25519_dalek::SigningKey::from_bytes(&seed)
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .expect("pem");
    KeyText(pem.to_string())
}

fn measure(name: &str, algorithm: JwtAlgorithm, key: KeyText) {
    let ring = KeyRing::from_texts(algorithm, &key, &[]).expect("key ring");
    let tokens = TokenService::new(
        ring,
        TokenPolicy {
            issuer: "simrenew".into(),
            audience: "simrenew-api".into(),
            lifetime: Duration::from_secs(900),
        },
    );
    let scopes = "catalog:read cards:read orders:write"
        .parse()
        .expect("scopes");
    let token = tokens
        .issue(
            "0193b7c2-0000-7000-8000-000000000001",
            "sr_client_bench",
            &scopes,
            0,
        )
        .expect("token");
    let window = Duration::from_secs(3);
    let started = Instant::now();
    let mut verified = 0u64;
    while started.elapsed() < window {
        for _ in 0..100 {
            tokens.verify(&token).expect("valid");
        }
        verified += 100;
    }
    let rate = verified as f64 / started.elapsed().as_secs_f64();
    println!(
        "{name:<8} {rate:>10.0} verifications/s on one core ({:.1} µs each)",
        1e6 / rate
    );
}

fn main() {
    measure("EdDSA", JwtAlgorithm::EdDsa, eddsa_key());
    measure(
        "HS256",
        JwtAlgorithm::Hs256,
        KeyText("a-benchmark-secret-of-at-least-32-bytes!".into()),
    );
}
