//! `POST /v1/oauth/token` (RFC 6749 §4.4 client credentials) and the public keys.

use std::net::{IpAddr, Ipv4Addr};

use actix_web::http::header::{self, HeaderValue};
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::rate_limit::Source;
use super::scopes::ScopeSet;
use super::secrets;
use super::store;
use super::Authenticator;
use crate::db::Db;
use crate::error::{ApiError, ErrorCode, OAuthError, OAuthErrorCode, Problem};

/// A token request is a handful of short parameters.
const MAX_TOKEN_REQUEST_BYTES: usize = 8 * 1024;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(issue_token).service(jwks);
}

/// Client credentials grant. Send the credentials with HTTP Basic or in the body, not both.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// Must be `client_credentials` (absent: `invalid_request`; another grant:
    /// `unsupported_grant_type`).
    #[schema(value_type = String, required = true, example = "client_credentials", pattern = "^client_credentials$")]
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Space-separated scopes to narrow the token to; default: all the partner's scopes.
    /// A scope the partner lacks is `invalid_scope`.
    // The document's pattern for it is built from `Scope::ALL` in `openapi::finish`.
    #[schema(example = "catalog:read cards:read")]
    pub scope: Option<String>,
}

/// The same parameters sent as JSON (a convenience beyond RFC 6749): like every other
/// JSON body here, an unknown field is refused. (In the standard form body, RFC 6749
/// §3.2 has unknown parameters ignored.)
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonTokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

impl From<JsonTokenRequest> for TokenRequest {
    fn from(json: JsonTokenRequest) -> Self {
        Self {
            grant_type: json.grant_type,
            client_id: json.client_id,
            client_secret: json.client_secret,
            scope: json.scope,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
    /// The scopes granted, space-separated.
    #[schema(example = "catalog:read cards:read")]
    pub scope: String,
}

/// The JSON Web Key Set the access tokens can be verified with.
#[derive(Debug, Serialize, ToSchema)]
pub struct JwkSet {
    /// Public keys (RFC 7517); empty when tokens are HMAC-signed.
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<serde_json::Value>,
}

fn invalid_request(description: &str) -> ApiError {
    ApiError::oauth(OAuthErrorCode::InvalidRequest, description)
}

fn invalid_client(basic: bool) -> ApiError {
    ApiError::OAuth {
        error: OAuthErrorCode::InvalidClient,
        description: "client authentication failed".into(),
        basic_challenge: basic,
    }
}

fn rate_limited(wait: std::time::Duration) -> ApiError {
    let seconds = crate::rate_limit::whole_seconds(wait).max(1);
    ApiError::new(
        ErrorCode::RateLimited,
        format!("too many token requests from this address; retry in {seconds} s"),
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
}

fn parse_body(req: &HttpRequest, body: &[u8]) -> Result<TokenRequest, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "application/x-www-form-urlencoded" => serde_urlencoded::from_bytes(body)
            .map_err(|e| invalid_request(&format!("the form body cannot be read: {e}"))),
        "application/json" => serde_json::from_slice::<JsonTokenRequest>(body)
            .map(TokenRequest::from)
            .map_err(|e| invalid_request(&format!("the JSON body cannot be read: {e}"))),
        "" if body.is_empty() => Ok(TokenRequest::default()),
        _ => Err(invalid_request(
            "send the parameters as application/x-www-form-urlencoded (or application/json)",
        )),
    }
}

/// RFC 6749 §2.3.1: `Basic base64(urlencode(client_id) ":" urlencode(client_secret))`.
fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, String)>, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| invalid_client(true))?;
    let Some((scheme, encoded)) = text.split_once(' ') else {
        return Err(invalid_client(true));
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(invalid_request(
            "use HTTP Basic or body parameters to authenticate the client",
        ));
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| invalid_client(true))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| invalid_client(true))?;
    let unescape = |part: &str| {
        percent_encoding::percent_decode_str(&part.replace('+', " "))
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| invalid_client(true))
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
}

/// Exchange client credentials for an access token.
///
/// OAuth 2.0 client credentials grant (RFC 6749 §4.4). Errors use RFC 6749 §5.2 bodies.
/// Rate-limited per source address, and per client id and source address (so that a
/// stranger calling from elsewhere cannot lock a client out); over a limit the answer
/// is `429` with `Retry-After`.
#[utoipa::path(
    operation_id = "issue_token",
    tag = "auth",
    request_body(content(
        (TokenRequest = "application/x-www-form-urlencoded"),
        (TokenRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "A bearer token. Sent with `Cache-Control: no-store`.", body = TokenResponse),
        (status = 400, description = "`invalid_request`, `unsupported_grant_type` or `invalid_scope`.", body = OAuthError),
        (status = 401, description = "`invalid_client`: unknown client, wrong secret, revoked credential or suspended partner — indistinguishable.", body = OAuthError),
        (status = 429, description = "Too many requests; see `Retry-After`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/v1/oauth/token")]
async fn issue_token(
    req: HttpRequest,
    payload: web::Payload,
    db: web::Data<Db>,
    authenticator: web::Data<Authenticator>,
) -> Result<HttpResponse, ApiError> {
    let source = Source::from(
        req.peer_addr()
            .map(|addr| addr.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
    );
    authenticator
        .limits
        .per_address
        .check(&source)
        .map_err(rate_limited)?;

    let body = match payload.to_bytes_limited(MAX_TOKEN_REQUEST_BYTES).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) if crate::http::body_deadline::timed_out_error(&e) => {
            return Err(crate::http::body_deadline::request_timeout())
        }
        Ok(Err(e)) => return Err(invalid_request(&format!("the body cannot be read: {e}"))),
        Err(_) => return Err(invalid_request("the body is too large")),
    };
    let request = parse_body(&req, &body)?;
    let basic = basic_credentials(&req)?;
    match request.grant_type.as_deref() {
        Some("client_credentials") => {}
        Some(_) => {
            return Err(ApiError::oauth(
                OAuthErrorCode::UnsupportedGrantType,
                "only grant_type=client_credentials is supported",
            ))
        }
        None => return Err(invalid_request("grant_type is required")),
    }
    let used_basic = basic.is_some();
    let (client_id, client_secret) = match (basic, request.client_id, request.client_secret) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(invalid_request(
                "send the client credentials once: HTTP Basic or the body",
            ))
        }
        (Some(pair), None, None) => pair,
        (None, Some(id), Some(secret)) => (id, secret),
        (None, _, _) => return Err(invalid_client(false)),
    };
    // Separators only, as the documented pattern allows: other whitespace is an error.
    let separators: &[char] = &[' ', ','];
    let requested: Option<ScopeSet> =
        match request.scope.as_deref().map(|s| s.trim_matches(separators)) {
            None | Some("") => None,
            Some(text) => Some(
                text.parse()
                    .map_err(|e| ApiError::oauth(OAuthErrorCode::InvalidScope, format!("{e}")))?,
            ),
        };
    // Counted before the secret is checked: no more guesses are verified than allowed.
    authenticator
        .limits
        .per_client
        .check(&(client_id.clone(), source))
        .map_err(rate_limited)?;

    let client = {
        let client_id = client_id.clone();
        db.run(move |conn| store::find_client(conn, &client_id).map_err(ApiError::from))
            .await?
    };
    // One argon2 verification whether or not the client exists, so timing tells nothing.
    let verified = {
        let stored = client.as_ref().map(|c| c.secret_hash.clone());
        web::block(move || secrets::verify_secret(&client_secret, stored.as_deref()))
            .await
            .map_err(ApiError::internal)?
    };
    let client = match client {
        Some(client) if verified && client.usable => client,
        _ => {
            tracing::info!(%client_id, "client authentication failed");
            return Err(invalid_client(used_basic));
        }
    };
    let granted = match requested {
        None => client.partner_scopes.clone(),
        Some(scopes) if scopes.is_subset(&client.partner_scopes) => scopes,
        Some(_) => {
            return Err(ApiError::oauth(
                OAuthErrorCode::InvalidScope,
                "the requested scope exceeds what this client may request",
            ))
        }
    };
    let token = authenticator
        .tokens
        .issue(
            &client.partner_id,
            &client_id,
            &granted,
            client.token_generation,
        )
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(TokenResponse {
            access_token: token,
            token_type: "Bearer",
            expires_in: authenticator.tokens.lifetime().as_secs(),
            scope: granted.to_string(),
        }))
}

/// The public keys access tokens are signed with.
///
/// During a key rotation both the new and the previous key are listed.
#[utoipa::path(
    operation_id = "get_jwks",
    tag = "auth",
    responses((status = 200, body = JwkSet)),
    security(())
)]
#[get("/.well-known/jwks.json")]
async fn jwks(authenticator: web::Data<Authenticator>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(JwkSet {
            keys: authenticator.tokens.keys().public_jwks(),
        })
}
