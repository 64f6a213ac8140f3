//! Puts the partner's quota on every answer the quota was counted for (see
//! `rate_limit`): `RateLimit-Policy` and `RateLimit`, successes and refusals alike.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};

use crate::rate_limit::{RateDecision, RATELIMIT, RATELIMIT_POLICY};

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let mut response = next.call(req).await?;
    let decision = response
        .request()
        .extensions()
        .get::<RateDecision>()
        .copied();
    if let Some(decision) = decision {
        let headers = response.headers_mut();
        headers.insert(RATELIMIT_POLICY.clone(), decision.quota.policy_header());
        headers.insert(RATELIMIT.clone(), decision.header());
    }
    Ok(response)
}
