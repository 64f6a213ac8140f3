//! `POST /v1/network/usage` (scope `network`).

use actix_web::{post, web, HttpRequest};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{UsageBatch, UsageOutcome};
use crate::auth::principal::{require, Authorized};
use crate::clock::Clock;
use crate::db::Db;
use crate::error::{ApiError, Problem};
use crate::http::extractors::{optional_json, read_body};

/// Largest usage batch body: 1000 records whose ids are 128 characters, each escaped
/// as `\uXXXX` pairs at worst, fit in it.
pub const MAX_USAGE_BODY_BYTES: usize = 2 * 1024 * 1024;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(report_usage);
}

/// Report usage from the network.
///
/// Each record is applied to the term that was current at `occurred_at`, exactly once per
/// record `id` (a repeated id is counted as a duplicate, also when two copies of a batch
/// arrive at once on two instances). Voice is reported in seconds and counted in whole
/// minutes, rounded up per record, as carriers bill. Usage past an allowance is kept:
/// `remaining` then shows 0.
#[utoipa::path(
    operation_id = "report_usage",
    tag = "network",
    request_body = UsageBatch,
    responses(
        (status = 200, description = "What was applied, what was a duplicate, what was rejected and why.", body = UsageOutcome),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Empty or oversized batch, or a malformed ICCID (`records[i].iccid`): nothing applied.",
         body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["network"]), ("bearer" = ["network"]))
)]
#[post("/v1/network/usage")]
async fn report_usage(
    _auth: Authorized<require::Network>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<web::Json<UsageOutcome>, ApiError> {
    // Read here rather than by `web::Json`: a full batch of long record ids is larger
    // than the 64 KiB every other body is held to.
    let body = read_body(payload, MAX_USAGE_BODY_BYTES).await?;
    let batch: UsageBatch = optional_json(&req, &body)?
        .ok_or_else(|| ApiError::bad_request("send the batch as a JSON body"))?;
    Ok(web::Json(
        super::apply_batch(&db, batch, clock.now_db()).await?,
    ))
}
