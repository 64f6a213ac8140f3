//! `GET/PUT /v1/notification-settings` (scope `webhooks`).

use actix_web::{get, put, web};
use utoipa_actix_web::service_config::ServiceConfig;

use super::model::{NotificationSettings, NotificationSettingsChange};
use crate::auth::principal::{require, Authorized};
use crate::clock::Clock;
use crate::db::Db;
use crate::error::{ApiError, Problem};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_notification_settings)
        .service(replace_notification_settings);
}

/// When you are told about usage, expiry and wallets.
///
/// Until you change them: `card.usage_threshold` at 75, 90 and 100 % of a term's data,
/// `card.expiring` 7, 3 and 1 days before a card's service ends, no wallet alerts.
#[utoipa::path(
    operation_id = "get_notification_settings",
    tag = "events",
    responses((status = 200, body = NotificationSettings)),
    security(("oauth2" = ["webhooks"]), ("bearer" = ["webhooks"]))
)]
#[get("/v1/notification-settings")]
async fn get_notification_settings(
    auth: Authorized<require::Webhooks>,
    db: web::Data<Db>,
) -> Result<web::Json<NotificationSettings>, ApiError> {
    Ok(web::Json(
        super::get_settings(&db, auth.principal.partner_id).await?,
    ))
}

/// Replace your notification settings.
///
/// The whole settings at once: a field left out takes its default, an empty list turns
/// that notice off. Each data threshold is told once per term, also when one usage
/// batch passes several; each expiry threshold once per term (the closest only, when a
/// term is found past several); a wallet alert each time an order takes the wallet from
/// at or above the amount to below it. New settings apply to what happens next.
#[utoipa::path(
    operation_id = "replace_notification_settings",
    tag = "events",
    request_body = NotificationSettingsChange,
    responses(
        (status = 200, body = NotificationSettings),
        (status = 422, description = "A threshold out of range or repeated, more than 10 of a kind, an unknown currency, or a currency twice; every bad field is named.",
         body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["webhooks"]), ("bearer" = ["webhooks"]))
)]
#[put("/v1/notification-settings")]
async fn replace_notification_settings(
    auth: Authorized<require::Webhooks>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    body: web::Json<NotificationSettingsChange>,
) -> Result<web::Json<NotificationSettings>, ApiError> {
    let settings = body.validate()?;
    Ok(web::Json(
        super::replace_settings(&db, auth.principal.partner_id, settings, clock.now_db()).await?,
    ))
}
