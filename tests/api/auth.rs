//! OAuth2 client credentials, token verification, scopes and revocation, through HTTP.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, cli_create_partner, fetch_token, Backend, Process, TestApp, TestDatabase,
    TestPartner,
};
use simrenew::auth::keys::{KeySource, KeyText};
use simrenew::auth::scopes::Scope;

on_both_backends!(
    a_token_comes_by_basic_by_form_and_by_json,
    scope_narrowing_and_bad_grants_use_oauth_errors,
    unknown_client_and_wrong_secret_are_indistinguishable,
    forged_and_stale_tokens_are_refused,
    a_token_without_the_scope_is_forbidden,
    suspension_and_revocation_end_tokens,
    a_second_credential_rotates_a_secret_without_downtime,
    rotation_keeps_tokens_of_the_previous_key_valid,
    a_stranger_guessing_a_secret_cannot_lock_its_owner_out,
    a_sibling_instance_honours_suspension_within_the_check_interval,
);

fn ed25519_pem() -> (String, String) {
    let key = ed25519_dalek::SigningKey::from_bytes(&rand_seed());
    let line = ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF;
    (
        key.to_pkcs8_pem(line).unwrap().to_string(),
        key.verifying_key().to_public_key_pem(line).unwrap(),
    )
}

fn rand_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    seed
}

async fn token_response(
    request: reqwest::RequestBuilder,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        headers,
    )
}

async fn a_token_comes_by_basic_by_form_and_by_json(app: TestApp) {
    let partner = app
        .create_partner("Acme", &[Scope::CatalogRead, Scope::CardsRead])
        .await;
    let endpoint = app.url("/v1/oauth/token");
    let requests = [
        app.client
            .post(&endpoint)
            .basic_auth(&partner.client_id, Some(&partner.client_secret))
            .form(&[("grant_type", "client_credentials")]),
        app.client.post(&endpoint).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", partner.client_id.as_str()),
            ("client_secret", partner.client_secret.as_str()),
        ]),
        app.client.post(&endpoint).json(&json!({
            "grant_type": "client_credentials",
            "client_id": partner.client_id,
            "client_secret": partner.client_secret,
        })),
    ];
    for request in requests {
        let (status, body, headers) = token_response(request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 900);
        assert_eq!(body["scope"], "catalog:read cards:read");
        let token = body["access_token"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        let claims: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["sub"], partner.id);
        assert_eq!(claims["iss"], "simrenew");
        assert_eq!(claims["aud"], "simrenew-api");
        for claim in ["iat", "nbf", "exp", "jti"] {
            assert!(!claims[claim].is_null(), "{claim} missing");
        }
        // The key it names is published.
        let jwks: Value = app
            .get("/.well-known/jwks.json")
            .await
            .json()
            .await
            .unwrap();
        let kids: Vec<_> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].clone())
            .collect();
        assert!(kids.contains(&json!(header.kid.unwrap())));
    }
}

async fn scope_narrowing_and_bad_grants_use_oauth_errors(app: TestApp) {
    let partner = app
        .create_partner("Acme", &[Scope::CatalogRead, Scope::CardsRead])
        .await;
    let endpoint = app.url("/v1/oauth/token");
    let form = |extra: &[(&str, &str)]| {
        let mut fields = vec![
            ("client_id", partner.client_id.as_str()),
            ("client_secret", partner.client_secret.as_str()),
        ];
        fields.extend_from_slice(extra);
        app.client.post(&endpoint).form(&fields)
    };
    let (status, body, _) = token_response(form(&[
        ("grant_type", "client_credentials"),
        ("scope", "cards:read"),
    ]))
    .await;
    assert_eq!(
        (status, body["scope"].as_str()),
        (StatusCode::OK, Some("cards:read"))
    );

    type Case<'a> = (&'a [(&'a str, &'a str)], StatusCode, &'a str);
    let cases: [Case; 4] = [
        (
            &[("grant_type", "client_credentials"), ("scope", "admin")],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            &[("grant_type", "client_credentials"), ("scope", "root")],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            &[("grant_type", "password")],
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (&[], StatusCode::BAD_REQUEST, "invalid_request"),
    ];
    for (extra, expected_status, error) in cases {
        let (status, body, headers) = token_response(form(extra)).await;
        assert_eq!(status, expected_status, "{extra:?}: {body}");
        assert_eq!(body["error"], error, "{extra:?}");
        assert!(body["error_description"].is_string());
        assert_eq!(headers["cache-control"], "no-store");
    }
    // Credentials twice (Basic and body) is a malformed request.
    let both = app
        .client
        .post(&endpoint)
        .basic_auth(&partner.client_id, Some(&partner.client_secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", partner.client_id.as_str()),
        ]);
    let (status, body, _) = token_response(both).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
}

async fn unknown_client_and_wrong_secret_are_indistinguishable(app: TestApp) {
    let partner = app.create_partner("Acme", &[Scope::CatalogRead]).await;
    let attempt = |client_id: String, secret: &'static str| {
        let request = app
            .client
            .post(app.url("/v1/oauth/token"))
            .basic_auth(client_id, Some(secret))
            .form(&[("grant_type", "client_credentials")]);
        async move {
            let started = Instant::now();
            let response = request.send().await.unwrap();
            let elapsed = started.elapsed();
            let status = response.status();
            let challenge = response.headers().get("www-authenticate").cloned();
            let body: Value = response.json().await.unwrap();
            (status, body, challenge, elapsed)
        }
    };
    let mut wrong_times = Vec::new();
    let mut unknown_times = Vec::new();
    for _ in 0..5 {
        let wrong = attempt(partner.client_id.clone(), "sr_secret_wrong").await;
        let unknown = attempt(
            "sr_client_00000000000000000000000000000000".into(),
            "sr_secret_wrong",
        )
        .await;
        assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
        assert_eq!(
            (wrong.0, &wrong.1, &wrong.2),
            (unknown.0, &unknown.1, &unknown.2)
        );
        assert_eq!(wrong.1["error"], "invalid_client");
        wrong_times.push(wrong.3);
        unknown_times.push(unknown.3);
    }
    wrong_times.sort();
    unknown_times.sort();
    let (wrong, unknown) = (wrong_times[2], unknown_times[2]);
    // Both pay for one argon2id verification: medians within a factor of three.
    assert!(
        unknown * 3 >= wrong && wrong * 3 >= unknown,
        "median wrong secret {wrong:?} vs unknown client {unknown:?}"
    );
}

fn claims(partner: &TestPartner, overrides: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": "simrenew", "aud": "simrenew-api", "sub": partner.id,
        "scope": "catalog:read admin", "iat": now, "nbf": now, "exp": now + 600,
        "jti": uuid::Uuid::now_v7().to_string(), "cid": partner.client_id,
    });
    for (key, value) in overrides.as_object().unwrap() {
        claims[key] = value.clone();
    }
    claims
}

async fn forged_and_stale_tokens_are_refused(app: TestApp) {
    // A server whose signing key the test knows, so it can forge every variant.
    let (private_pem, public_pem) = ed25519_pem();
    let mut settings = app.settings();
    settings.auth.key_source = KeySource::Configured {
        signing: KeyText(private_pem.clone()),
        previous: vec![],
    };
    let app = app.spawn_sibling(settings).await;
    let partner = app
        .create_partner("Acme", &[Scope::CatalogRead, Scope::Admin])
        .await;
    let good = app.token_for(&partner).await;
    assert_eq!(
        app.get_with("/v1/admin/partners", &good).await.status(),
        StatusCode::OK
    );

    let kid = jsonwebtoken::decode_header(&good).unwrap().kid.unwrap();
    let key = EncodingKey::from_ed_pem(private_pem.as_bytes()).unwrap();
    let sign = |claims: &Value, kid: &str| {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        encode(&header, claims, &key).unwrap()
    };
    let now = chrono::Utc::now().timestamp();
    assert_eq!(
        app.get_with(
            "/v1/admin/partners",
            &sign(&claims(&partner, json!({})), &kid)
        )
        .await
        .status(),
        StatusCode::OK,
        "the forging itself is right"
    );

    let unsigned = {
        let header =
            URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string());
        let body = URL_SAFE_NO_PAD.encode(claims(&partner, json!({})).to_string());
        format!("{header}.{body}.")
    };
    let hs256_with_public_key = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        encode(
            &header,
            &claims(&partner, json!({})),
            &EncodingKey::from_secret(public_pem.as_bytes()),
        )
        .unwrap()
    };
    let tampered = {
        let parts: Vec<&str> = good.split('.').collect();
        let mut payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["sub"] = json!(uuid::Uuid::now_v7().to_string());
        format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            parts[2]
        )
    };
    let forged: Vec<(&str, String)> = vec![
        (
            "expired",
            sign(
                &claims(
                    &partner,
                    json!({"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}),
                ),
                &kid,
            ),
        ),
        (
            "not yet valid",
            sign(
                &claims(&partner, json!({"nbf": now + 3600, "exp": now + 7200})),
                &kid,
            ),
        ),
        (
            "wrong aud",
            sign(&claims(&partner, json!({"aud": "someone-else"})), &kid),
        ),
        (
            "wrong iss",
            sign(
                &claims(&partner, json!({"iss": "https://evil.example"})),
                &kid,
            ),
        ),
        ("alg none", unsigned),
        ("HS256 signed with the public key", hs256_with_public_key),
        ("tampered payload", tampered),
        (
            "unknown kid",
            sign(&claims(&partner, json!({})), "no-such-kid"),
        ),
        ("truncated", good[..good.len() - 10].to_owned()),
        (
            "issued in the future",
            sign(
                &claims(
                    &partner,
                    json!({"iat": now + 3600, "nbf": now, "exp": now + 7200}),
                ),
                &kid,
            ),
        ),
        (
            "living 100 years",
            sign(
                &claims(&partner, json!({"exp": now + 100 * 365 * 86_400})),
                &kid,
            ),
        ),
        ("a critical header extension", {
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = Some(kid.clone());
            header.crit = Some(vec!["exp-policy".into()]);
            encode(&header, &claims(&partner, json!({})), &key).unwrap()
        }),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, token) in forged {
        let response = app.get_with("/v1/admin/partners", &token).await;
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some(r#"Bearer realm="simrenew", error="invalid_token""#),
            "{what}"
        );
        assert_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }

    let missing = app.get("/v1/admin/partners").await;
    assert_eq!(
        missing.headers()["www-authenticate"],
        r#"Bearer realm="simrenew""#
    );
    assert_problem(missing, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let basic = app
        .client
        .get(app.url("/v1/admin/partners"))
        .basic_auth("a", Some("b"))
        .send()
        .await
        .unwrap();
    assert_problem(basic, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

async fn a_token_without_the_scope_is_forbidden(app: TestApp) {
    let partner = app.create_partner("Reader", &[Scope::CatalogRead]).await;
    let token = app.token_for(&partner).await;
    let response = app.get_with("/v1/admin/partners", &token).await;
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains(r#"scope="admin""#));
    let body = assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(body["detail"].as_str().unwrap().contains("admin"));
}

async fn suspension_and_revocation_end_tokens(app: TestApp) {
    let admin = app.admin_token().await;
    let partner = app.create_partner("Acme", &[Scope::Admin]).await;
    let token = app.token_for(&partner).await;
    assert_eq!(
        app.get_with("/v1/admin/partners", &token).await.status(),
        StatusCode::OK
    );

    let suspend = app
        .post_json(
            &format!("/v1/admin/partners/{}/suspend", partner.id),
            &admin,
            &json!({}),
        )
        .await;
    assert_eq!(suspend.status(), StatusCode::OK);
    assert_eq!(
        suspend.json::<Value>().await.unwrap()["status"],
        "suspended"
    );
    assert_problem(
        app.get_with("/v1/admin/partners", &token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    // A suspended partner cannot get a new token either.
    let refused = app
        .client
        .post(app.url("/v1/oauth/token"))
        .basic_auth(&partner.client_id, Some(&partner.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let resume = app
        .post_json(
            &format!("/v1/admin/partners/{}/resume", partner.id),
            &admin,
            &json!({}),
        )
        .await;
    assert_eq!(resume.status(), StatusCode::OK);
    // A token issued before the suspension stays dead: it carried what was true then.
    assert_problem(
        app.get_with("/v1/admin/partners", &token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let token = app.token_for(&partner).await;
    assert_eq!(
        app.get_with("/v1/admin/partners", &token).await.status(),
        StatusCode::OK,
        "a token issued after the resume works"
    );
    // A scope taken from the partner (here by hand in the database) leaves its live
    // tokens once the credential cache is refreshed: at once after an admin change on
    // this instance (the resume below), within the credential-check interval elsewhere.
    set_scopes_by_hand(&app, &admin, &partner.id, "catalog:read").await;
    assert_problem(
        app.get_with("/v1/admin/partners", &token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    set_scopes_by_hand(&app, &admin, &partner.id, "admin").await;
    assert_eq!(
        app.get_with("/v1/admin/partners", &token).await.status(),
        StatusCode::OK
    );

    let revoke = app
        .client
        .delete(app.url(&format!(
            "/v1/admin/partners/{}/credentials/{}",
            partner.id, partner.client_id
        )))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.get_with("/v1/admin/partners", &token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

async fn a_second_credential_rotates_a_secret_without_downtime(app: TestApp) {
    let admin = app.admin_token().await;
    let partner = app
        .create_partner("Acme", &[Scope::CatalogRead, Scope::Admin])
        .await;
    let old_token = app.token_for(&partner).await;
    let issued = app
        .post_json(
            &format!("/v1/admin/partners/{}/credentials", partner.id),
            &admin,
            &json!({}),
        )
        .await;
    assert_eq!(issued.status(), StatusCode::CREATED);
    assert_eq!(issued.headers()["cache-control"], "no-store");
    let issued: Value = issued.json().await.unwrap();
    let second = TestPartner {
        id: partner.id.clone(),
        client_id: issued["client_id"].as_str().unwrap().to_owned(),
        client_secret: issued["client_secret"].as_str().unwrap().to_owned(),
    };
    let new_token = app.token_for(&second).await;

    let listed: Value = app
        .get_with(
            &format!("/v1/admin/partners/{}/credentials", partner.id),
            &admin,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    assert!(
        !listed.to_string().contains("secret"),
        "secrets are never listed: {listed}"
    );

    let revoke = app
        .client
        .delete(app.url(&format!(
            "/v1/admin/partners/{}/credentials/{}",
            partner.id, partner.client_id
        )))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_with("/v1/admin/partners", &old_token)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_with("/v1/admin/partners", &new_token)
            .await
            .status(),
        StatusCode::OK
    );

    let unknown = app
        .client
        .delete(app.url(&format!(
            "/v1/admin/partners/{}/credentials/sr_client_nope",
            partner.id
        )))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
}

async fn rotation_keeps_tokens_of_the_previous_key_valid(app: TestApp) {
    let (old_private, old_public) = ed25519_pem();
    let (new_private, _) = ed25519_pem();
    let mut before = app.settings();
    before.auth.key_source = KeySource::Configured {
        signing: KeyText(old_private),
        previous: vec![],
    };
    let mut after = app.settings();
    after.auth.key_source = KeySource::Configured {
        signing: KeyText(new_private),
        previous: vec![KeyText(old_public)],
    };
    let old_instance = app.spawn_sibling(before).await;
    let new_instance = app.spawn_sibling(after).await;
    let partner = app.create_partner("Acme", &[Scope::Admin]).await;
    let old_token = old_instance.token_for(&partner).await;
    let new_token = new_instance.token_for(&partner).await;

    assert_eq!(
        new_instance
            .get_with("/v1/admin/partners", &old_token)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        new_instance
            .get_with("/v1/admin/partners", &new_token)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        old_instance
            .get_with("/v1/admin/partners", &new_token)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let jwks: Value = new_instance
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let new_kid = jsonwebtoken::decode_header(&new_token)
        .unwrap()
        .kid
        .unwrap();
    let old_kid = jsonwebtoken::decode_header(&old_token)
        .unwrap()
        .kid
        .unwrap();
    assert_ne!(new_kid, old_kid);
}

async fn a_stranger_guessing_a_secret_cannot_lock_its_owner_out(app: TestApp) {
    let partner = app.create_partner("Acme", &[Scope::CatalogRead]).await;
    // The stranger calls from another loopback address than the owner.
    let stranger = crate::helpers::http_client_builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let attempt = |client: &reqwest::Client, secret: &str| {
        client
            .post(app.url("/v1/oauth/token"))
            .basic_auth(&partner.client_id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    // 30 guesses at once: the limit is taken before a secret is checked, so no more
    // than 20 are ever checked (one more may come back every 3 s on a slow machine).
    let started = Instant::now();
    let guesses = (0..30).map(|_| attempt(&stranger, "sr_secret_guess"));
    let responses = futures_util::future::join_all(guesses).await;
    let refills = (started.elapsed().as_secs() / 3) as usize;
    let mut checked = 0;
    let mut refusal = None;
    for response in responses {
        let response = response.unwrap();
        match response.status() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => refusal = Some(response),
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        (20..=20 + refills).contains(&checked),
        "20 a minute per client and address: {checked} checked"
    );
    let refusal = refusal.expect("the stranger is refused");
    let seconds: u64 = refusal.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&seconds));
    assert_problem(refusal, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Even the right secret waits, from the stranger's address…
    let right_from_stranger = attempt(&stranger, &partner.client_secret).await.unwrap();
    if started.elapsed() < Duration::from_secs(3) {
        assert_eq!(right_from_stranger.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    // …while the owner, elsewhere, gets its tokens.
    for _ in 0..5 {
        let response = attempt(&app.client, &partner.client_secret).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    // Requests are counted before their secret is checked: 30 at once from a third
    // address, every one with the right secret, and still only 20 are answered.
    let busy = crate::helpers::http_client_builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 3]))
        .build()
        .unwrap();
    let started = Instant::now();
    let at_once = (0..30).map(|_| attempt(&busy, &partner.client_secret));
    let issued = futures_util::future::join_all(at_once)
        .await
        .into_iter()
        .filter(|r| r.as_ref().unwrap().status() == StatusCode::OK)
        .count();
    let refills = (started.elapsed().as_secs() / 3) as usize;
    assert!(
        (20..=20 + refills).contains(&issued),
        "{issued} tokens issued"
    );
}

async fn a_sibling_instance_honours_suspension_within_the_check_interval(app: TestApp) {
    let mut settings = app.settings();
    settings.auth.credential_check_interval = Duration::from_secs(1);
    let sibling = app.spawn_sibling(settings).await;
    let admin = app.admin_token().await;
    let partner = app.create_partner("Acme", &[Scope::Admin]).await;
    let token = app.token_for(&partner).await;
    assert_eq!(
        sibling
            .get_with("/v1/admin/partners", &token)
            .await
            .status(),
        StatusCode::OK,
        "tokens are shared"
    );

    let suspend = app
        .post_json(
            &format!("/v1/admin/partners/{}/suspend", partner.id),
            &admin,
            &json!({}),
        )
        .await;
    assert_eq!(suspend.status(), StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let status = sibling
            .get_with("/v1/admin/partners", &token)
            .await
            .status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(Instant::now() < deadline, "sibling still answers {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two `serve` processes started together on one empty PostgreSQL database agree on the
/// signing key and accept each other's tokens; the first admin comes from the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(postgres_tests),
    ignore = "TEST_POSTGRES_URL is not set: the PostgreSQL test did not run"
)]
async fn two_serve_processes_on_one_postgres_accept_each_others_tokens() {
    let db = TestDatabase::create(Backend::Postgres);
    // Started together on an empty database: both migrate and both look for the key.
    let (one, two) = tokio::join!(
        Process::serve(&db.raw_url, &[]),
        Process::serve(&db.raw_url, &[])
    );
    let root = cli_create_partner(&db.raw_url, "Root", "admin");
    let client = crate::helpers::http_client();
    let token = fetch_token(&client, &one.base_url, &root.client_id, &root.client_secret).await;
    for instance in [&one, &two] {
        let response = client
            .get(format!("{}/v1/admin/partners", instance.base_url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

/// Changes a partner's scopes in the database (no API does), then resumes it, an admin
/// change that refreshes this instance's credential cache.
async fn set_scopes_by_hand(app: &TestApp, admin: &str, partner_id: &str, scopes: &str) {
    app.sql(&format!(
        "UPDATE partners SET scopes = '{scopes}' WHERE id = '{partner_id}'"
    ));
    let resumed = app
        .post_json(
            &format!("/v1/admin/partners/{partner_id}/resume"),
            admin,
            &json!({}),
        )
        .await;
    assert_eq!(resumed.status(), StatusCode::OK);
}
