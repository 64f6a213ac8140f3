//! Who is calling: the bearer token verified, the credential still valid, and the
//! scope the route requires present. Routes declare their requirement in their
//! signature: `Authorized<require::OrdersWrite>`.

use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::scopes::{Scope, ScopeSet};
use super::Authenticator;
use crate::db::Db;
use crate::error::{ApiError, ErrorCode};

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The partner the token was issued to; every query for partner data filters by it.
    pub partner_id: String,
    pub client_id: String,
    pub scopes: ScopeSet,
}

/// A route's scope requirement: the caller needs at least one of `ANY_OF`.
pub trait ScopeRule {
    const ANY_OF: &'static [Scope];
}

/// The requirements routes can name.
pub mod require {
    use super::{Scope, ScopeRule};

    macro_rules! rule {
        ($($name:ident => [$($scope:ident),+]),+ $(,)?) => {
            $(
                #[derive(Debug)]
                pub struct $name;
                impl ScopeRule for $name {
                    const ANY_OF: &'static [Scope] = &[$(Scope::$scope),+];
                }
            )+
        };
    }

    rule! {
        CatalogRead => [CatalogRead],
        CardsRead => [CardsRead],
        OrdersRead => [OrdersRead],
        OrdersWrite => [OrdersWrite],
        WalletRead => [WalletRead],
        Admin => [Admin],
        Network => [Network],
        Webhooks => [Webhooks],
        OrdersWriteOrNetwork => [OrdersWrite, Network],
    }
}

/// An authenticated caller holding the scope `R` requires.
#[derive(Debug)]
pub struct Authorized<R: ScopeRule> {
    pub principal: Principal,
    _rule: PhantomData<R>,
}

fn unauthorized(detail: &str, token_was_sent: bool) -> ApiError {
    let challenge = if token_was_sent {
        HeaderValue::from_static(r#"Bearer realm="simrenew", error="invalid_token""#)
    } else {
        HeaderValue::from_static(r#"Bearer realm="simrenew""#)
    };
    ApiError::new(ErrorCode::Unauthorized, detail).with_header(header::WWW_AUTHENTICATE, challenge)
}

fn insufficient_scope(rule: &[Scope]) -> ApiError {
    let needed = rule
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let err = ApiError::new(
        ErrorCode::Forbidden,
        format!(
            "this operation needs the scope {}",
            needed.replace(' ', " or ")
        ),
    );
    match HeaderValue::from_str(&format!(
        r#"Bearer realm="simrenew", error="insufficient_scope", scope="{needed}""#
    )) {
        Ok(value) => err.with_header(header::WWW_AUTHENTICATE, value),
        Err(_) => err,
    }
}

fn rate_limited(retry_after_seconds: u64) -> ApiError {
    ApiError::new(
        ErrorCode::RateLimited,
        format!("this partner's request quota is spent; retry in {retry_after_seconds} s"),
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds))
}

fn bearer_token(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("send `Authorization: Bearer <access token>`", false))?;
    let text = value
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not readable", true))?;
    match text.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim().to_owned())
        }
        _ => Err(unauthorized(
            "the Authorization header must use the Bearer scheme",
            true,
        )),
    }
}

impl<R: ScopeRule> FromRequest for Authorized<R> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let authenticator = req.app_data::<web::Data<Authenticator>>().cloned();
        let db = req.app_data::<web::Data<Db>>().cloned();
        let token = bearer_token(req);
        let req = req.clone();
        Box::pin(async move {
            let (Some(authenticator), Some(db)) = (authenticator, db) else {
                return Err(ApiError::internal("authentication is not registered"));
            };
            let token = token?;
            let verified = authenticator.verify(&token).map_err(|rejection| {
                tracing::info!(reason = %rejection, "bearer token refused");
                unauthorized("the access token is invalid or expired", true)
            })?;
            let (claims, scopes) = &*verified;
            let Some(credential) = authenticator.usable_credential(&db, claims, scopes).await?
            else {
                tracing::info!(client_id = %claims.cid, "token of a revoked credential or suspended partner");
                return Err(unauthorized("the access token has been revoked", true));
            };
            // Counted before the scope check: a partner probing what it may do spends
            // its own quota, and every answer from here on carries the headers.
            let decision = authenticator
                .partner_limits
                .check(&claims.sub, credential.rate_limit);
            req.extensions_mut().insert(decision);
            if let Some(seconds) = decision.retry_after_seconds() {
                return Err(rate_limited(seconds));
            }
            if !R::ANY_OF.iter().any(|scope| scopes.contains(*scope)) {
                return Err(insufficient_scope(R::ANY_OF));
            }
            Ok(Authorized {
                principal: Principal {
                    partner_id: claims.sub.clone(),
                    client_id: claims.cid.clone(),
                    scopes: scopes.clone(),
                },
                _rule: PhantomData,
            })
        })
    }
}
