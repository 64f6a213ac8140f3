//! Wallet routes: partners read their balances and ledger (scope `wallet:read`);
//! operators credit wallets (scope `admin`, honours `Idempotency-Key`).

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{LedgerEntry, LedgerPage, NewCredit, Wallet};
use crate::auth::principal::{require, Authorized};
use crate::clock::Clock;
use crate::db::Db;
use crate::error::{ApiError, Problem};
use crate::idempotency::{self, Reply};
use crate::pagination::PageQuery;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_wallet)
        .service(list_transactions)
        .service(credit_wallet);
}

/// Your wallet balances, one per currency.
#[utoipa::path(
    operation_id = "get_wallet",
    tag = "wallet",
    responses((status = 200, body = Wallet)),
    security(("oauth2" = ["wallet:read"]), ("bearer" = ["wallet:read"]))
)]
#[get("/v1/wallet")]
async fn get_wallet(
    auth: Authorized<require::WalletRead>,
    db: web::Data<Db>,
) -> Result<web::Json<Wallet>, ApiError> {
    let partner_id = auth.principal.partner_id;
    let balances = db
        .run(move |conn| super::store::balances(conn, &partner_id).map_err(ApiError::from))
        .await?;
    Ok(web::Json(Wallet { balances }))
}

/// Your wallet's ledger, newest first.
#[utoipa::path(
    operation_id = "list_wallet_transactions",
    tag = "wallet",
    params(PageQuery),
    responses(
        (status = 200, body = LedgerPage),
        (status = 422, description = "Invalid `limit` or `cursor`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["wallet:read"]), ("bearer" = ["wallet:read"]))
)]
#[get("/v1/wallet/transactions")]
async fn list_transactions(
    auth: Authorized<require::WalletRead>,
    db: web::Data<Db>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<LedgerPage>, ApiError> {
    let page = query.validate()?;
    let partner_id = auth.principal.partner_id;
    let rows = {
        let page = page.clone();
        db.run(move |conn| super::store::entries(conn, &partner_id, &page).map_err(ApiError::from))
            .await?
    };
    let (rows, next_cursor) = page.finish(rows, |row| row.id.clone());
    Ok(web::Json(LedgerPage {
        data: rows
            .into_iter()
            .map(LedgerEntry::try_from)
            .collect::<Result<_, _>>()?,
        next_cursor,
    }))
}

/// Credit a partner's wallet.
///
/// Send an `Idempotency-Key` to make a retry safe: the same key and body replay the first
/// answer instead of crediting twice.
#[utoipa::path(
    operation_id = "credit_wallet",
    tag = "admin",
    params(
        ("id" = uuid::Uuid, Path, description = "Partner id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe (recommended): 1–255 visible ASCII characters, e.g. a UUID", min_length = 1, max_length = 255, pattern = r"^[!-~]{1,255}$"),
    ),
    request_body = NewCredit,
    responses(
        (status = 201, description = "The ledger entry of the credit.", body = LedgerEntry),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with this key is in progress.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or the key was used for another request.", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[post("/v1/admin/partners/{id}/wallet/credits")]
async fn credit_wallet(
    auth: Authorized<require::Admin>,
    req: HttpRequest,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    id: web::Path<uuid::Uuid>,
    body: web::Json<NewCredit>,
) -> Result<HttpResponse, ApiError> {
    let credit = body.into_inner();
    let scope = idempotency::Scope::from_request(&req, &auth.principal.partner_id, &credit, false)?;
    let valid = credit.validate()?;
    let partner_id = id.into_inner().to_string();
    let now = clock.now_db();
    idempotency::execute(&db, scope, move |conn| {
        let entry = super::credit_in(conn, &partner_id, &valid, now)?;
        Reply::json(StatusCode::CREATED, None, &entry)
    })
    .await
}
