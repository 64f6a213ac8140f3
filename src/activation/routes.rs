//! Activation routes: read it and its QR (owner, `orders:read`). Confirming and failing
//! it cross into orders and the wallet: `fulfilment::routes`.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{get, web, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

use super::instructions::{Instructions, InstructionsQuery};
use super::{Activation, ActivationRow, Caller};
use crate::auth::principal::{require, Authorized, Principal};
use crate::db::Db;
use crate::error::{ApiError, Problem};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_activation)
        .service(get_activation_instructions)
        .service(activation_qr_svg)
        .service(activation_qr_png);
}

async fn owned_activation(
    db: &Db,
    principal: Principal,
    order_id: uuid::Uuid,
) -> Result<ActivationRow, ApiError> {
    let caller = Caller::Partner(principal.partner_id);
    db.run(move |conn| super::get(conn, &caller, &order_id.to_string()))
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
    db: web::Data<Db>,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<Activation>, ApiError> {
    let caller = Caller::Partner(auth.principal.partner_id);
    let order_id = id.into_inner().to_string();
    let activation = db
        .run(move |conn| {
            let row = super::get(conn, &caller, &order_id)?;
            super::view(conn, &row)
        })
        .await?;
    Ok(web::Json(activation))
}

async fn lpa_code(db: &Db, principal: Principal, order_id: uuid::Uuid) -> Result<String, ApiError> {
    let row = owned_activation(db, principal, order_id).await?;
    if row.awaits_verification() {
        return Err(super::awaiting_verification());
    }
    row.lpa_code().ok_or_else(|| {
            ApiError::not_found("this activation has no QR code: FM cards and installed eSIM profiles are renewed over the air")
        })
}

/// How to install the renewal, step by step, for iOS or Android, in the language of
/// `Accept-Language` (`zh-CN` or `en`).
///
/// A new eSIM profile: the QR path, the manual path (SM-DP+ address and matching id),
/// and on iOS Apple's direct link; an FM card or an installed eSIM renewed in place:
/// the over-the-air explanation and what to do if the new term has not appeared.
#[utoipa::path(
    operation_id = "get_activation_instructions",
    tag = "activation",
    params(("id" = uuid::Uuid, Path, description = "Order id"), InstructionsQuery),
    responses(
        (status = 200, body = Instructions),
        (status = 404, description = "No such order among yours.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not paid yet, or `verification_required`.", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "`platform` is not ios or android.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:read"]), ("bearer" = ["orders:read"]))
)]
#[get("/v1/orders/{id}/activation/instructions")]
async fn get_activation_instructions(
    auth: Authorized<require::OrdersRead>,
    db: web::Data<Db>,
    id: web::Path<uuid::Uuid>,
    query: web::Query<InstructionsQuery>,
) -> Result<web::Json<Instructions>, ApiError> {
    let platform = query.platform()?;
    let lang = crate::request_scope::current_lang();
    let caller = Caller::Partner(auth.principal.partner_id);
    let order_id = id.into_inner().to_string();
    let guide = db
        .run(move |conn| {
            let row = super::get(conn, &caller, &order_id)?;
            let shown = super::view(conn, &row)?;
            super::instructions::guide(&row, &shown, platform, lang)
        })
        .await?;
    Ok(web::Json(guide))
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
        (status = 409, description = "The order is not paid, or `verification_required`: the subscriber has not confirmed the SMS code yet.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:read"]), ("bearer" = ["orders:read"]))
)]
#[get("/v1/orders/{id}/activation/qr.svg")]
async fn activation_qr_svg(
    auth: Authorized<require::OrdersRead>,
    db: web::Data<Db>,
    id: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, ApiError> {
    let code = lpa_code(&db, auth.principal, id.into_inner()).await?;
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
        (status = 409, description = "The order is not paid, or `verification_required`: the subscriber has not confirmed the SMS code yet.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:read"]), ("bearer" = ["orders:read"]))
)]
#[get("/v1/orders/{id}/activation/qr.png")]
async fn activation_qr_png(
    auth: Authorized<require::OrdersRead>,
    db: web::Data<Db>,
    id: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, ApiError> {
    let code = lpa_code(&db, auth.principal, id.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        .insert_header(private())
        .body(super::qr::png(&code)?))
}
