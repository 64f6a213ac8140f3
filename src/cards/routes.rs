//! Card routes: partners read their own cards (scope `cards:read`); operators import,
//! suspend, resume, move cards and grant terms (scope `admin`).

use actix_web::{get, post, web, HttpResponse};
use chrono::NaiveDateTime;
use utoipa_actix_web::service_config::ServiceConfig;

use super::cache::CardCache;
use super::model::{
    AdminCard, Balance, Card, CardImport, CardImportResult, CardList, CardMove, CardQuery,
    TermGrant,
};
use super::{store, MAX_IMPORT_BATCH};
use crate::auth::principal::{require, Authorized};
use crate::clock::Clock;
use crate::db::{stored_uuid, Db};
use crate::domain::{CardPath, Iccid};
use crate::error::{ApiError, FieldError, Problem};
use crate::pagination::PageQuery;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_cards)
        .service(get_card)
        .service(get_balance)
        .service(import_cards)
        .service(get_admin_card)
        .service(suspend_card)
        .service(resume_card)
        .service(move_card)
        .service(grant_term);
}

/// List your cards.
///
/// `expiring_within_days=N` finds cards whose current term ends within N days with
/// nothing queued after it: the ones to remind about renewing.
#[utoipa::path(
    operation_id = "list_cards",
    tag = "cards",
    params(CardQuery),
    responses(
        (status = 200, body = CardList),
        (status = 400, description = "Unknown query parameter.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A filter value is invalid.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["cards:read"]), ("bearer" = ["cards:read"]))
)]
#[get("/v1/cards")]
async fn list_cards(
    auth: Authorized<require::CardsRead>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    query: web::Query<CardQuery>,
) -> Result<web::Json<CardList>, ApiError> {
    let filter = query.filter()?;
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .validate()?;
    let (data, next_cursor) =
        super::list_cards(&db, auth.principal.partner_id, filter, page, clock.now_db()).await?;
    Ok(web::Json(CardList { data, next_cursor }))
}

/// Get one of your cards, with its current term.
#[utoipa::path(
    operation_id = "get_card",
    tag = "cards",
    params(CardPath),
    responses(
        (status = 200, body = Card),
        (status = 404, description = "No such card among yours.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["cards:read"]), ("bearer" = ["cards:read"]))
)]
#[get("/v1/cards/{iccid}")]
async fn get_card(
    auth: Authorized<require::CardsRead>,
    db: web::Data<Db>,
    cache: web::Data<CardCache>,
    clock: web::Data<Clock>,
    iccid: web::Path<Iccid>,
) -> Result<web::Json<Card>, ApiError> {
    Ok(web::Json(
        super::get_card(
            &db,
            &cache,
            auth.principal.partner_id,
            iccid.into_inner().to_string(),
            clock.now_db(),
        )
        .await?,
    ))
}

/// What is left on a card: data, minutes and texts of the current term, days left, and
/// the terms queued after it.
///
/// Voice is counted in whole minutes, each call rounded up, as carriers bill.
#[utoipa::path(
    operation_id = "get_card_balance",
    tag = "cards",
    params(CardPath),
    responses(
        (status = 200, body = Balance),
        (status = 404, description = "No such card among yours.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["cards:read"]), ("bearer" = ["cards:read"]))
)]
#[get("/v1/cards/{iccid}/balance")]
async fn get_balance(
    auth: Authorized<require::CardsRead>,
    db: web::Data<Db>,
    cache: web::Data<CardCache>,
    clock: web::Data<Clock>,
    iccid: web::Path<Iccid>,
) -> Result<web::Json<Balance>, ApiError> {
    Ok(web::Json(
        super::get_balance(
            &db,
            &cache,
            auth.principal.partner_id,
            iccid.into_inner().to_string(),
            clock.now_db(),
        )
        .await?,
    ))
}

/// Register cards for a partner: all of them, or none.
///
/// Every invalid row is named (`cards[3].iccid`); ICCIDs already registered are a `409`
/// listing each of them.
#[utoipa::path(
    operation_id = "import_cards",
    tag = "admin",
    request_body = CardImport,
    responses(
        (status = 201, body = CardImportResult),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Some ICCIDs are already registered; `errors` lists them.", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "Invalid rows, each named.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[post("/v1/admin/cards")]
async fn import_cards(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    body: web::Json<CardImport>,
) -> Result<HttpResponse, ApiError> {
    let import = body.into_inner();
    if import.cards.len() > MAX_IMPORT_BATCH {
        return Err(ApiError::validation(vec![FieldError::new(
            "cards",
            format!("at most {MAX_IMPORT_BATCH} cards per request; use `simrenew cards import` for more"),
        )]));
    }
    let imported = super::import_cards(&db, import.partner_id, import.cards).await?;
    Ok(HttpResponse::Created().json(CardImportResult { imported }))
}

async fn admin_card(db: &Db, iccid: String, now: NaiveDateTime) -> Result<AdminCard, ApiError> {
    db.run(move |conn| {
        let card = store::find_card(conn, &iccid)?
            .ok_or_else(|| ApiError::not_found(format!("no card {iccid}")))?;
        let terms = store::terms_of(conn, std::slice::from_ref(&card.iccid))?;
        let codes = store::plan_codes(conn, &terms)?;
        Ok(AdminCard {
            partner_id: stored_uuid(&card.partner_id)?,
            card: super::card_view(&card, &terms, &codes, now)?,
        })
    })
    .await
}

/// Get any card, with its owner.
#[utoipa::path(
    operation_id = "get_admin_card",
    tag = "admin",
    params(CardPath),
    responses((status = 200, body = AdminCard), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[get("/v1/admin/cards/{iccid}")]
async fn get_admin_card(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    iccid: web::Path<Iccid>,
) -> Result<web::Json<AdminCard>, ApiError> {
    Ok(web::Json(
        admin_card(&db, iccid.into_inner().to_string(), clock.now_db()).await?,
    ))
}

async fn set_suspended(
    db: &Db,
    iccid: String,
    suspended: bool,
    now: NaiveDateTime,
) -> Result<AdminCard, ApiError> {
    super::set_suspended(db, iccid.clone(), suspended, now).await?;
    admin_card(db, iccid, now).await
}

/// Suspend a card: it cannot be renewed until resumed.
#[utoipa::path(
    operation_id = "suspend_card",
    tag = "admin",
    params(CardPath),
    responses((status = 200, body = AdminCard), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[post("/v1/admin/cards/{iccid}/suspend")]
async fn suspend_card(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    iccid: web::Path<Iccid>,
) -> Result<web::Json<AdminCard>, ApiError> {
    Ok(web::Json(
        set_suspended(&db, iccid.into_inner().to_string(), true, clock.now_db()).await?,
    ))
}

/// Resume a suspended card.
#[utoipa::path(
    operation_id = "resume_card",
    tag = "admin",
    params(CardPath),
    responses((status = 200, body = AdminCard), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[post("/v1/admin/cards/{iccid}/resume")]
async fn resume_card(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    iccid: web::Path<Iccid>,
) -> Result<web::Json<AdminCard>, ApiError> {
    Ok(web::Json(
        set_suspended(&db, iccid.into_inner().to_string(), false, clock.now_db()).await?,
    ))
}

/// Move a card to another partner.
#[utoipa::path(
    operation_id = "move_card",
    tag = "admin",
    params(CardPath),
    request_body = CardMove,
    responses(
        (status = 200, body = AdminCard),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No such partner.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[post("/v1/admin/cards/{iccid}/move")]
async fn move_card(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    iccid: web::Path<Iccid>,
    body: web::Json<CardMove>,
) -> Result<web::Json<AdminCard>, ApiError> {
    let iccid = iccid.into_inner().to_string();
    let partner_id = body.partner_id.to_string();
    let now = clock.now_db();
    super::move_card(&db, iccid.clone(), partner_id, now).await?;
    Ok(web::Json(admin_card(&db, iccid, now).await?))
}

/// Grant a term without an order (compensation, trials).
///
/// It starts at `valid_from`, or when the card's service ends, or now; it may not overlap
/// another term.
#[utoipa::path(
    operation_id = "grant_term",
    tag = "admin",
    params(CardPath),
    request_body = TermGrant,
    responses(
        (status = 201, description = "Granted; the card's balance after it.", body = Balance),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It would overlap another term.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No such plan, or not for this card type.", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[post("/v1/admin/cards/{iccid}/terms")]
async fn grant_term(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    iccid: web::Path<Iccid>,
    body: web::Json<TermGrant>,
) -> Result<HttpResponse, ApiError> {
    let balance = super::grant_term(
        &db,
        iccid.into_inner().to_string(),
        body.into_inner(),
        clock.now_db(),
    )
    .await?;
    Ok(HttpResponse::Created().json(balance))
}
