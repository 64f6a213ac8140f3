//! Webhook endpoints and their deliveries (scope `webhooks`). Another partner's
//! endpoint or delivery is `404`.

use actix_web::http::StatusCode;
use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

use super::delivery::{self, Delivery, DeliveryList};
use super::endpoints::{
    self, Endpoint, EndpointList, EndpointPatch, EndpointWithSecret, NewEndpoint,
};
use super::Webhooks;
use crate::auth::principal::{require, Authorized};
use crate::clock::Clock;
use crate::db::Db;
use crate::error::{ApiError, Problem};
use crate::idempotency::{self, Reply};
use crate::pagination::PageQuery;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_endpoint)
        .service(list_endpoints)
        .service(get_endpoint)
        .service(update_endpoint)
        .service(delete_endpoint)
        .service(rotate_secret)
        .service(test_endpoint)
        .service(list_deliveries)
        .service(retry_delivery);
}

/// Register a webhook endpoint.
///
/// Events of the types listed (all, when none are) are delivered to `url` per the
/// Standard Webhooks specification: `webhook-id` (the event id, the same on every
/// retry), `webhook-timestamp` and `webhook-signature` (`v1,<base64 HMAC-SHA256 of
/// "{id}.{timestamp}.{body}">`). A 2xx within 10 s is success; anything else is tried
/// again on the configured schedule. The `secret` is in this answer only. The URL must
/// be `https` on a public address: loopback, private, link-local, carrier-grade NAT,
/// multicast and cloud metadata addresses are refused, also when a name resolves to
/// them at delivery time, and redirects are not followed.
#[utoipa::path(
    operation_id = "create_webhook_endpoint",
    tag = "events",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe (recommended): the same key and body answer the first endpoint and its secret instead of making another. 1–255 visible ASCII characters", min_length = 1, max_length = 255, pattern = r"^[!-~]{1,255}$")),
    request_body = NewEndpoint,
    responses(
        (status = 201, body = EndpointWithSecret),
        (status = 409, description = "A request with this key is in progress.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A URL that is not https on a public address, a description too long, 20 endpoints already, or the key used for another request.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["webhooks"]), ("bearer" = ["webhooks"]))
)]
#[post("/v1/webhook-endpoints")]
async fn create_endpoint(
    auth: Authorized<require::Webhooks>,
    req: HttpRequest,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    webhooks: web::Data<Webhooks>,
    body: web::Json<NewEndpoint>,
) -> Result<HttpResponse, ApiError> {
    let input = body.into_inner();
    let partner_id = auth.principal.partner_id;
    let scope = idempotency::Scope::from_request(&req, &partner_id, &input, false)?;
    let row = endpoints::prepare(
        partner_id,
        &input,
        webhooks.settings.allow_private_targets,
        clock.now_db(),
    )?;
    idempotency::execute(&db, scope, move |conn| {
        let created = endpoints::insert_in(conn, row)?;
        Reply::json(StatusCode::CREATED, None, &created)
    })
    .await
}

/// List your webhook endpoints (at most 20).
#[utoipa::path(
    operation_id = "list_webhook_endpoints",
    tag = "events",
    responses((status = 200, body = EndpointList)),
    security(("oauth2" = ["webhooks"]), ("bearer" = ["webhooks"]))
)]
#[get("/v1/webhook-endpoints")]
async fn list_endpoints(
    auth: Authorized<require::Webhooks>,
    db: web::Data<Db>,
) -> Result<web::Json<EndpointList>, ApiError> {
    Ok(web::Json(
        endpoints::list(&db, auth.principal.partner_id).await?,
    ))
}

/// Get one of your webhook endpoints.
#[utoipa::path(
    operation_id = "get_webhook_endpoint",
    tag = "events",
    params(("id" = uuid::Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 200, body = Endpoint),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["webhooks"]), ("bearer" = ["webhooks"]))
)]
#[get("/v1/webhook-endpoints/{id}")]
async fn get_endpoint(
    auth: Authorized<require::Webhooks>,
    db: web::Data<Db>,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<Endpoint>, ApiError> {
    Ok(web::Json(
        endpoints::get(&db, auth.principal.partner_id, id.into_inner().to_string()).await?,
    ))
}

/// Change a webhook endpoint's URL, event types, description or status.
///
/// A disabled endpoint receives nothing; what was due waits until it is enabled again.
#[utoipa::path(
    operation_id = "update_webhook_endpoint",
    tag = "events",
    params(("id" = uuid::Uuid, Path, description = "Endpoint id")),
    request_body = EndpointPatch,
    responses(
        (status = 200, body = Endpoint),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A URL that is not https on a public address, or a description too long.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["webhooks"]), ("bearer" = ["webhooks"]))
)]
#[patch("/v1/webhook-endpoints/{id}")]
async fn update_endpoint(
    auth: Authorized<require::Webhooks>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    webhooks: web::Data<Webhooks>,
    id: web::Path<uuid::Uuid>,
    body: web::Json<EndpointPatch>,
) -> Result<web::Json<Endpoint>, ApiError> {
    Ok(web::Json(
        endpoints::update(
            &db,
            auth.principal.partner_id,
            id.into_inner().to_string(),
            body.into_inner(),
            webhooks.settings.allow_private_targets,
            clock.now_db(),
        )
        .await?,
    ))
}

/// Remove a webhook endpoint and its deliveries.
#[utoipa::path(
    operation_id = "delete_webhook_endpoint",
    tag = "events",
    params(("id" = uuid::Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["webhooks"]), ("bearer" = ["webhooks"]))
)]
#[delete("/v1/webhook-endpoints/{id}")]
async fn delete_endpoint(
    auth: Authorized<require::Webhooks>,
    db: web::Data<Db>,
    id: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, ApiError> {
    endpoints::delete(&db, auth.principal.partner_id, id.into_inner().to_string()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Give a webhook endpoint a new secret.
///
/// The new secret is in this answer only. For 24 hours deliveries carry a signature by
/// each secret (space-separated in `webhook-signature`), so a receiver can switch at
/// its own pace.
#[utoipa::path(
    operation_id = "rotate_webhook_secret",
    tag = "events",
    params(("id" = uuid::Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 200, body = EndpointWithSecret),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["webhooks"]), ("bearer" = ["webhooks"]))
)]
#[post("/v1/webhook-endpoints/{id}/rotate-secret")]
async fn rotate_secret(
    auth: Authorized<require::Webhooks>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<EndpointWithSecret>, ApiError> {
    Ok(web::Json(
        endpoints::rotate_secret(
            &db,
            auth.principal.partner_id,
            id.into_inner().to_string(),
            clock.now_db(),
        )
        .await?,
    ))
}

/// Send a `webhook.test` event to this endpoint.
///
/// The event is in your feed too; its delivery is made like any other (follow it in the
/// endpoint's deliveries).
#[utoipa::path(
    operation_id = "test_webhook_endpoint",
    tag = "events",
    params(("id" = uuid::Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 202, description = "The delivery, due now.", body = Delivery),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["webhooks"]), ("bearer" = ["webhooks"]))
)]
#[post("/v1/webhook-endpoints/{id}/test")]
async fn test_endpoint(
    auth: Authorized<require::Webhooks>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    id: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, ApiError> {
    let delivery = delivery::test(
        &db,
        auth.principal.partner_id,
        id.into_inner().to_string(),
        clock.now_db(),
    )
    .await?;
    Ok(HttpResponse::Accepted().json(delivery))
}

/// An endpoint's deliveries, newest first, with every attempt.
#[utoipa::path(
    operation_id = "list_webhook_deliveries",
    tag = "events",
    params(("id" = uuid::Uuid, Path, description = "Endpoint id"), PageQuery),
    responses(
        (status = 200, body = DeliveryList),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["webhooks"]), ("bearer" = ["webhooks"]))
)]
#[get("/v1/webhook-endpoints/{id}/deliveries")]
async fn list_deliveries(
    auth: Authorized<require::Webhooks>,
    db: web::Data<Db>,
    id: web::Path<uuid::Uuid>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<DeliveryList>, ApiError> {
    let page = query.validate()?;
    Ok(web::Json(
        delivery::list(
            &db,
            auth.principal.partner_id,
            id.into_inner().to_string(),
            page,
        )
        .await?,
    ))
}

/// Deliver again now (after fixing the receiver), whatever the delivery's state.
#[utoipa::path(
    operation_id = "retry_webhook_delivery",
    tag = "events",
    params(
        ("id" = uuid::Uuid, Path, description = "Endpoint id"),
        ("delivery_id" = uuid::Uuid, Path, description = "Delivery id"),
    ),
    responses(
        (status = 202, description = "The delivery, due now.", body = Delivery),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["webhooks"]), ("bearer" = ["webhooks"]))
)]
#[post("/v1/webhook-endpoints/{id}/deliveries/{delivery_id}/retry")]
async fn retry_delivery(
    auth: Authorized<require::Webhooks>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    path: web::Path<(uuid::Uuid, uuid::Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (endpoint_id, delivery_id) = path.into_inner();
    let delivery = delivery::retry(
        &db,
        auth.principal.partner_id,
        endpoint_id.to_string(),
        delivery_id.to_string(),
        clock.now_db(),
    )
    .await?;
    Ok(HttpResponse::Accepted().json(delivery))
}
