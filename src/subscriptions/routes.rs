//! `/v1/cards/{iccid}/subscription` (and pause, resume), `GET /v1/subscriptions`
//! (scopes `orders:write` to change, `orders:read` to read), and the operators' view.

use actix_web::{delete, get, post, put, web, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

use super::model::{Subscription, SubscriptionList, SubscriptionQuery, SubscriptionRequest};
use super::Change;
use crate::auth::principal::{require, Authorized};
use crate::clock::Clock;
use crate::db::Db;
use crate::domain::{CardPath, Iccid};
use crate::error::{ApiError, Problem};
use crate::pagination::PageQuery;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(put_subscription)
        .service(get_subscription)
        .service(cancel_subscription)
        .service(pause_subscription)
        .service(resume_subscription)
        .service(list_subscriptions)
        .service(list_partner_subscriptions);
}

/// Renew a card automatically from your wallet.
///
/// FM cards are renewed `renew_days_before_expiry` days before their service ends (the
/// new term extends it); eSIMs when their term ends (the new term replaces it, so no
/// day is forfeited). Each renewal is an order placed by the same path as
/// `POST /v1/orders`, paid from the wallet, at most once per term however many
/// instances run. A failure (`insufficient_funds`, a plan no longer on sale) is told as
/// `subscription.renewal_failed` and tried again after 1 h, 6 h, then every 24 h; once
/// those are spent and the term has ended it lapses (`subscription.lapsed`). A renewal
/// is told as `subscription.renewed` with its order. Putting again changes the plan and
/// timing of an active or paused subscription; on a lapsed or cancelled one it starts a
/// new one.
#[utoipa::path(
    operation_id = "put_subscription",
    tag = "orders",
    params(CardPath),
    request_body = SubscriptionRequest,
    responses(
        (status = 200, description = "Changed.", body = Subscription),
        (status = 201, description = "Subscribed.", body = Subscription),
        (status = 404, description = "No such card among yours.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`card_suspended`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`plan_not_available_for_card`, `currency_not_offered`, or invalid fields.", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:write"]), ("bearer" = ["orders:write"]))
)]
#[put("/v1/cards/{iccid}/subscription")]
async fn put_subscription(
    auth: Authorized<require::OrdersWrite>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    iccid: web::Path<Iccid>,
    body: web::Json<SubscriptionRequest>,
) -> Result<HttpResponse, ApiError> {
    let wanted = body.parse()?;
    let (subscription, created) = super::subscribe(
        &db,
        auth.principal.partner_id,
        iccid.into_inner(),
        wanted,
        clock.now_db(),
    )
    .await?;
    Ok(if created {
        HttpResponse::Created().json(subscription)
    } else {
        HttpResponse::Ok().json(subscription)
    })
}

/// The card's subscription.
#[utoipa::path(
    operation_id = "get_subscription",
    tag = "orders",
    params(CardPath),
    responses(
        (status = 200, body = Subscription),
        (status = 404, description = "No such card among yours, or it has no subscription.", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:read"]), ("bearer" = ["orders:read"]))
)]
#[get("/v1/cards/{iccid}/subscription")]
async fn get_subscription(
    auth: Authorized<require::OrdersRead>,
    db: web::Data<Db>,
    iccid: web::Path<Iccid>,
) -> Result<web::Json<Subscription>, ApiError> {
    Ok(web::Json(
        super::get(&db, auth.principal.partner_id, iccid.into_inner()).await?,
    ))
}

async fn changed(
    auth: Authorized<require::OrdersWrite>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    iccid: web::Path<Iccid>,
    change: Change,
) -> Result<web::Json<Subscription>, ApiError> {
    Ok(web::Json(
        super::change(
            &db,
            auth.principal.partner_id,
            iccid.into_inner(),
            change,
            clock.now_db(),
        )
        .await?,
    ))
}

/// Cancel the card's subscription: nothing more is placed (orders already placed stay).
#[utoipa::path(
    operation_id = "cancel_subscription",
    tag = "orders",
    params(CardPath),
    responses(
        (status = 200, description = "Cancelled (now or before).", body = Subscription),
        (status = 404, description = "No such card among yours, or it has no subscription.", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:write"]), ("bearer" = ["orders:write"]))
)]
#[delete("/v1/cards/{iccid}/subscription")]
async fn cancel_subscription(
    auth: Authorized<require::OrdersWrite>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    iccid: web::Path<Iccid>,
) -> Result<web::Json<Subscription>, ApiError> {
    changed(auth, db, clock, iccid, Change::Cancel).await
}

/// Pause the card's subscription: it places nothing until resumed.
#[utoipa::path(
    operation_id = "pause_subscription",
    tag = "orders",
    params(CardPath),
    responses(
        (status = 200, description = "Paused (now or before).", body = Subscription),
        (status = 404, description = "No such card among yours, or it has no subscription.", body = Problem,
         content_type = "application/problem+json"),
        (status = 409, description = "`invalid_state_transition`: it is cancelled or lapsed.", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:write"]), ("bearer" = ["orders:write"]))
)]
#[post("/v1/cards/{iccid}/subscription/pause")]
async fn pause_subscription(
    auth: Authorized<require::OrdersWrite>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    iccid: web::Path<Iccid>,
) -> Result<web::Json<Subscription>, ApiError> {
    changed(auth, db, clock, iccid, Change::Pause).await
}

/// Resume a paused or lapsed subscription: it is due again by its rule, at once if that
/// moment has passed.
#[utoipa::path(
    operation_id = "resume_subscription",
    tag = "orders",
    params(CardPath),
    responses(
        (status = 200, description = "Active (now or before).", body = Subscription),
        (status = 404, description = "No such card among yours, or it has no subscription.", body = Problem,
         content_type = "application/problem+json"),
        (status = 409, description = "`invalid_state_transition`: it is cancelled.", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:write"]), ("bearer" = ["orders:write"]))
)]
#[post("/v1/cards/{iccid}/subscription/resume")]
async fn resume_subscription(
    auth: Authorized<require::OrdersWrite>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    iccid: web::Path<Iccid>,
) -> Result<web::Json<Subscription>, ApiError> {
    changed(auth, db, clock, iccid, Change::Resume).await
}

fn page_of(query: &SubscriptionQuery) -> Result<crate::pagination::PageRequest, ApiError> {
    PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .validate()
}

/// Your subscriptions, oldest first.
#[utoipa::path(
    operation_id = "list_subscriptions",
    tag = "orders",
    params(SubscriptionQuery),
    responses(
        (status = 200, body = SubscriptionList),
        (status = 422, description = "An unknown status, or a cursor this API did not return.", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:read"]), ("bearer" = ["orders:read"]))
)]
#[get("/v1/subscriptions")]
async fn list_subscriptions(
    auth: Authorized<require::OrdersRead>,
    db: web::Data<Db>,
    query: web::Query<SubscriptionQuery>,
) -> Result<web::Json<SubscriptionList>, ApiError> {
    let status = super::status_filter(query.status.as_deref())?;
    let page = page_of(&query)?;
    Ok(web::Json(
        super::list(&db, auth.principal.partner_id, status, page).await?,
    ))
}

/// A partner's subscriptions, oldest first (operators).
#[utoipa::path(
    operation_id = "list_partner_subscriptions",
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Partner id"), SubscriptionQuery),
    responses(
        (status = 200, body = SubscriptionList),
        (status = 404, description = "No such partner.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown status, or a cursor this API did not return.", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[get("/v1/admin/partners/{id}/subscriptions")]
async fn list_partner_subscriptions(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    id: web::Path<uuid::Uuid>,
    query: web::Query<SubscriptionQuery>,
) -> Result<web::Json<SubscriptionList>, ApiError> {
    let status = super::status_filter(query.status.as_deref())?;
    let page = page_of(&query)?;
    Ok(web::Json(
        super::list_of_partner(&db, id.into_inner().to_string(), status, page).await?,
    ))
}
