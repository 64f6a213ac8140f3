//! Activation routes: read it and its QR (owner, `orders:read`), confirm it (owner with
//! `orders:write`, or the network), fail it (the network).

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{get, post, web, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{Activation, ActivationRow, Caller, Confirmation, Failure};
use crate::app::AppState;
use crate::auth::principal::{require, Authorized, Principal};
use crate::auth::scopes::Scope;
use crate::error::{ApiError, Problem};
use crate::http::extractors::{optional_json, read_body, MAX_BODY_BYTES};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_activation)
        .service(activation_qr_svg)
        .service(activation_qr_png)
        .service(confirm_activation)
        .service(fail_activation);
}

async fn owned_activation(
    state: &AppState,
    principal: Principal,
    order_id: uuid::Uuid,
) -> Result<ActivationRow, ApiError> {
    let caller = Caller::Partner(principal.partner_id);
    state
        .db
        .run(move |conn| super::get(conn, &caller, &order_id.to_string()))
        .await
}

/// An order's activation: the eSIM activation code (with QR links and the fields manual
/// entry needs) or the FM over-the-air status, and, once confirmed, the new validity.
#[utoipa::path(
    operation_id = "get_activation",
    tag = "activation",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, body = Activation),
        (status = 404, description = "No such order among yours.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid_state_transition`: the order is not paid, so it has no activation.", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:read"]), ("bearer" = ["orders:read"]))
)]
#[get("/v1/orders/{id}/activation")]
async fn get_activation(
    auth: Authorized<require::OrdersRead>,
    state: web::Data<AppState>,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<Activation>, ApiError> {
    let row = owned_activation(&state, auth.principal, id.into_inner()).await?;
    Ok(web::Json(Activation::from(&row)))
}

async fn lpa_code(
    state: &AppState,
    principal: Principal,
    order_id: uuid::Uuid,
) -> Result<String, ApiError> {
    owned_activation(state, principal, order_id)
        .await?
        .lpa_code()
        .ok_or_else(|| {
            ApiError::not_found("this activation has no QR code: FM cards are renewed over the air")
        })
}

fn private() -> CacheControl {
    CacheControl(vec![CacheDirective::Private, CacheDirective::MaxAge(300)])
}

/// The activation code as a QR code (SVG).
#[utoipa::path(
    operation_id = "get_activation_qr_svg",
    tag = "activation",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The QR code of the LPA activation code.", body = String, content_type = "image/svg+xml"),
        (status = 404, description = "No such order among yours, or an FM order (no code).", body = Problem,
         content_type = "application/problem+json"),
        (status = 409, description = "The order is not paid.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:read"]), ("bearer" = ["orders:read"]))
)]
#[get("/v1/orders/{id}/activation/qr.svg")]
async fn activation_qr_svg(
    auth: Authorized<require::OrdersRead>,
    state: web::Data<AppState>,
    id: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, ApiError> {
    let code = lpa_code(&state, auth.principal, id.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header(private())
        .body(super::qr::svg(&code)?))
}

/// The activation code as a QR code (PNG).
#[utoipa::path(
    operation_id = "get_activation_qr_png",
    tag = "activation",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The QR code of the LPA activation code.", body = String, content_type = "image/png"),
        (status = 404, description = "No such order among yours, or an FM order (no code).", body = Problem,
         content_type = "application/problem+json"),
        (status = 409, description = "The order is not paid.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:read"]), ("bearer" = ["orders:read"]))
)]
#[get("/v1/orders/{id}/activation/qr.png")]
async fn activation_qr_png(
    auth: Authorized<require::OrdersRead>,
    state: web::Data<AppState>,
    id: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, ApiError> {
    let code = lpa_code(&state, auth.principal, id.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        .insert_header(private())
        .body(super::qr::png(&code)?))
}

/// Confirm the renewal took effect, and learn the new validity.
///
/// Creates the term: an FM card's starts where its service ends (or now), an eSIM's starts
/// now and replaces the current one. Days are `validity_days × 24 h` in UTC. The answer
/// carries `effective_from`, `valid_until` and `previous_valid_until`; the order becomes
/// `completed`. Confirming again answers `200` with the same body and changes nothing.
#[utoipa::path(
    operation_id = "confirm_activation",
    tag = "activation",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    request_body(content = Option<Confirmation>, description = "Optional: the EID of the device (eSIM)"),
    responses(
        (status = 200, description = "Confirmed (now or before).", body = Activation),
        (status = 404, description = "No such order among yours.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`eid_mismatch`, or `invalid_state_transition` (not paid, or failed).", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "Invalid EID.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:write", "network"]), ("bearer" = ["orders:write", "network"]))
)]
#[post("/v1/orders/{id}/activation/confirm")]
async fn confirm_activation(
    auth: Authorized<require::OrdersWriteOrNetwork>,
    state: web::Data<AppState>,
    id: web::Path<uuid::Uuid>,
    req: actix_web::HttpRequest,
    payload: web::Payload,
) -> Result<web::Json<Activation>, ApiError> {
    let body = read_body(payload, MAX_BODY_BYTES).await?;
    let confirmation: Confirmation = optional_json(&req, &body)?.unwrap_or_default();
    let caller = if auth.principal.scopes.contains(Scope::Network) {
        Caller::Network
    } else {
        Caller::Partner(auth.principal.partner_id)
    };
    let order_id = id.into_inner().to_string();
    let row = state
        .db
        .transaction(move |conn| super::confirm(conn, &caller, &order_id, &confirmation))
        .await?;
    Ok(web::Json(Activation::from(&row)))
}

/// Report that the renewal could not be applied: the order fails and a wallet payment
/// is refunded, once.
#[utoipa::path(
    operation_id = "fail_activation",
    tag = "network",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    request_body = Failure,
    responses(
        (status = 200, body = Activation),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The activation is no longer pending.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or overlong reason.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["network"]), ("bearer" = ["network"]))
)]
#[post("/v1/orders/{id}/activation/fail")]
async fn fail_activation(
    _auth: Authorized<require::Network>,
    state: web::Data<AppState>,
    id: web::Path<uuid::Uuid>,
    body: web::Json<Failure>,
) -> Result<web::Json<Activation>, ApiError> {
    let failure = body.into_inner();
    let order_id = id.into_inner().to_string();
    let row = state
        .db
        .transaction(move |conn| super::fail(conn, &order_id, &failure))
        .await?;
    Ok(web::Json(Activation::from(&row)))
}
