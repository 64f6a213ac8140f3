//! Admin routes for partners and credentials (scope `admin`).

use actix_web::http::header;
use actix_web::{delete, get, post, put, web, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

use super::model::{
    CreatedPartner, CredentialList, IssuedCredential, NewPartner, Partner, PartnerList,
};
use super::store;
use crate::auth::principal::{require, Authorized};
use crate::auth::Authenticator;
use crate::db::Db;
use crate::domain::time;
use crate::domain::PartnerStatus;
use crate::error::{ApiError, Problem};
use crate::pagination::PageQuery;
use crate::rate_limit::{NewRateQuota, RateQuota};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_partner)
        .service(list_partners)
        .service(get_partner)
        .service(suspend_partner)
        .service(resume_partner)
        .service(set_rate_limit)
        .service(clear_rate_limit)
        .service(list_credentials)
        .service(create_credential)
        .service(revoke_credential);
}

fn no_partner(id: uuid::Uuid) -> ApiError {
    ApiError::not_found(format!("no partner {id}"))
}

/// Create a partner with its first credential.
///
/// The `client_secret` is in this response only; it is stored as an argon2id hash.
#[utoipa::path(
    operation_id = "create_partner",
    tag = "admin",
    request_body = NewPartner,
    responses(
        (status = 201, description = "Created; `Location` names the partner.", body = CreatedPartner),
        (status = 400, description = "Malformed body.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[post("/v1/admin/partners")]
async fn create_partner(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    body: web::Json<NewPartner>,
) -> Result<HttpResponse, ApiError> {
    let created = super::create_partner(&db, body.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/v1/admin/partners/{}", created.partner_id),
        ))
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .json(created))
}

/// List partners, oldest first.
#[utoipa::path(
    operation_id = "list_partners",
    tag = "admin",
    params(PageQuery),
    responses(
        (status = 200, body = PartnerList),
        (status = 422, description = "Invalid `limit` or `cursor`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[get("/v1/admin/partners")]
async fn list_partners(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<PartnerList>, ApiError> {
    let page = query.validate()?;
    let rows = {
        let page = page.clone();
        db.run(move |conn| store::list_partners(conn, &page).map_err(ApiError::from))
            .await?
    };
    let (rows, next_cursor) = page.finish(rows, |row| row.id.clone());
    Ok(web::Json(PartnerList {
        data: rows
            .into_iter()
            .map(Partner::try_from)
            .collect::<Result<_, _>>()?,
        next_cursor,
    }))
}

/// Get one partner.
#[utoipa::path(
    operation_id = "get_partner",
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Partner id")),
    responses(
        (status = 200, body = Partner),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[get("/v1/admin/partners/{id}")]
async fn get_partner(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<Partner>, ApiError> {
    let id = id.into_inner();
    let row = db
        .run(move |conn| store::find_partner(conn, &id.to_string()).map_err(ApiError::from))
        .await?
        .ok_or_else(|| no_partner(id))?;
    Ok(web::Json(Partner::try_from(row)?))
}

async fn set_status(
    db: &Db,
    authenticator: &Authenticator,
    id: uuid::Uuid,
    status: PartnerStatus,
) -> Result<Partner, ApiError> {
    let partner = super::set_status(db, id, status, time::to_db(time::now())).await?;
    authenticator.forget_credentials();
    Ok(partner)
}

/// Suspend a partner: its tokens stop working within the credential-check interval.
#[utoipa::path(
    operation_id = "suspend_partner",
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Partner id")),
    responses(
        (status = 200, body = Partner),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[post("/v1/admin/partners/{id}/suspend")]
async fn suspend_partner(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    authenticator: web::Data<Authenticator>,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<Partner>, ApiError> {
    Ok(web::Json(
        set_status(
            &db,
            &authenticator,
            id.into_inner(),
            PartnerStatus::Suspended,
        )
        .await?,
    ))
}

/// Resume a suspended partner.
#[utoipa::path(
    operation_id = "resume_partner",
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Partner id")),
    responses(
        (status = 200, body = Partner),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[post("/v1/admin/partners/{id}/resume")]
async fn resume_partner(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    authenticator: web::Data<Authenticator>,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<Partner>, ApiError> {
    Ok(web::Json(
        set_status(&db, &authenticator, id.into_inner(), PartnerStatus::Active).await?,
    ))
}

/// Give a partner its own request quota.
///
/// Replaces the deployment's default (`SIMRENEW_RATE_LIMIT_PER_S`,
/// `SIMRENEW_RATE_LIMIT_BURST`) for this partner, with a full bucket: at once on this
/// instance, within the credential-check interval on the others. Quotas are kept per
/// instance.
#[utoipa::path(
    operation_id = "set_partner_rate_limit",
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Partner id")),
    request_body = NewRateQuota,
    responses(
        (status = 200, body = Partner),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A value out of 1–100000 (`validation_failed`, naming each).", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[put("/v1/admin/partners/{id}/rate-limit")]
async fn set_rate_limit(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    authenticator: web::Data<Authenticator>,
    id: web::Path<uuid::Uuid>,
    quota: web::Json<NewRateQuota>,
) -> Result<web::Json<Partner>, ApiError> {
    let quota = quota.check()?;
    change_quota(&db, &authenticator, id.into_inner(), Some(quota)).await
}

/// Sets or clears a quota; this instance's cached credentials (which carry the quota)
/// are dropped so that it applies at once here.
async fn change_quota(
    db: &Db,
    authenticator: &Authenticator,
    id: uuid::Uuid,
    quota: Option<RateQuota>,
) -> Result<web::Json<Partner>, ApiError> {
    let partner = super::set_rate_limit(db, id, quota, time::to_db(time::now())).await?;
    authenticator.forget_credentials();
    Ok(web::Json(partner))
}

/// Return a partner to the deployment's default request quota.
#[utoipa::path(
    operation_id = "clear_partner_rate_limit",
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Partner id")),
    responses(
        (status = 200, body = Partner),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[delete("/v1/admin/partners/{id}/rate-limit")]
async fn clear_rate_limit(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    authenticator: web::Data<Authenticator>,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<Partner>, ApiError> {
    change_quota(&db, &authenticator, id.into_inner(), None).await
}

/// List a partner's credentials (never their secrets).
#[utoipa::path(
    operation_id = "list_partner_credentials",
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Partner id")),
    responses(
        (status = 200, body = CredentialList),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[get("/v1/admin/partners/{id}/credentials")]
async fn list_credentials(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<CredentialList>, ApiError> {
    let id = id.into_inner();
    let rows = db
        .run(move |conn| {
            let key = id.to_string();
            match store::find_partner(conn, &key)? {
                Some(_) => store::list_credentials(conn, &key).map(Some),
                None => Ok(None),
            }
            .map_err(ApiError::from)
        })
        .await?
        .ok_or_else(|| no_partner(id))?;
    Ok(web::Json(CredentialList {
        data: rows.into_iter().map(Into::into).collect(),
    }))
}

/// Issue another credential, e.g. to rotate a secret without downtime.
#[utoipa::path(
    operation_id = "create_partner_credential",
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Partner id")),
    responses(
        (status = 201, description = "The new credential; its secret is shown this once.", body = IssuedCredential),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[post("/v1/admin/partners/{id}/credentials")]
async fn create_credential(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    id: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, ApiError> {
    let issued = super::issue_credential(&db, id.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .json(issued))
}

/// Revoke a credential: tokens issued to it stop working within the credential-check interval.
#[utoipa::path(
    operation_id = "revoke_partner_credential",
    tag = "admin",
    params(
        ("id" = uuid::Uuid, Path, description = "Partner id"),
        ("client_id" = String, Path, description = "The credential's client id"),
    ),
    responses(
        (status = 204, description = "Revoked (revoking again is harmless)."),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[delete("/v1/admin/partners/{id}/credentials/{client_id}")]
async fn revoke_credential(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    authenticator: web::Data<Authenticator>,
    path: web::Path<(uuid::Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, client_id) = path.into_inner();
    super::revoke_credential(&db, id, client_id, time::to_db(time::now())).await?;
    authenticator.forget_credentials();
    Ok(HttpResponse::NoContent().finish())
}
