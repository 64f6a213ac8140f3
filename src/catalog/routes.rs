//! Catalog routes: the public list and plan (scope `catalog:read`) with HTTP caching,
//! and the admin writes (scope `admin`).

use actix_web::http::header::{self, CacheControl, CacheDirective, ETag, EntityTag, IfNoneMatch};
use actix_web::{get, patch, post, web, HttpMessage, HttpRequest, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

use super::model::{NewPlan, Plan, PlanList, PlanPatch, PlanQuery};
use crate::auth::principal::{require, Authorized};
use crate::db::Db;
use crate::error::{ApiError, Problem};
use crate::pagination::PageQuery;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_plans)
        .service(get_plan)
        .service(create_plan)
        .service(update_plan)
        .service(retire_plan);
}

const MAX_AGE_S: u32 = 60;

/// The catalog's version and the language it is shown in: the texts differ by language,
/// so the tags do too.
fn catalog_etag(version: i64) -> EntityTag {
    let lang = crate::request_scope::current_lang();
    EntityTag::new_strong(format!("catalog-{version}-{}", lang.tag()))
}

/// `If-None-Match` names this version (weak comparison, as RFC 9110 asks for it).
fn not_modified(req: &HttpRequest, etag: &EntityTag) -> bool {
    match req.get_header::<IfNoneMatch>() {
        Some(IfNoneMatch::Any) => true,
        Some(IfNoneMatch::Items(tags)) => tags.iter().any(|tag| tag.weak_eq(etag)),
        None => false,
    }
}

fn cached(etag: EntityTag) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::Ok();
    builder
        .insert_header(ETag(etag))
        .insert_header(CacheControl(vec![
            CacheDirective::Private,
            CacheDirective::MaxAge(MAX_AGE_S),
        ]));
    builder
}

fn not_modified_response(etag: EntityTag) -> HttpResponse {
    HttpResponse::NotModified()
        .insert_header(ETag(etag))
        .insert_header(CacheControl(vec![
            CacheDirective::Private,
            CacheDirective::MaxAge(MAX_AGE_S),
        ]))
        .finish()
}

/// List the plans on sale.
///
/// Filters combine with AND. Ordered by id; pages never repeat or skip a plan, even
/// while plans are added. Cacheable: a strong `ETag` that changes with any catalog change,
/// `Cache-Control: private, max-age=60`, and `304` on a matching `If-None-Match`.
#[utoipa::path(
    operation_id = "list_plans",
    tag = "catalog",
    params(PlanQuery, ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer")),
    responses(
        (status = 200, description = "A page of active plans.", body = PlanList,
         headers(("ETag" = String, description = "Catalog version"), ("Cache-Control" = String))),
        (status = 304, description = "Not modified since the ETag given."),
        (status = 400, description = "Unknown query parameter.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A filter value is invalid; `errors` names the parameter.", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["catalog:read"]), ("bearer" = ["catalog:read"]))
)]
#[get("/v1/plans")]
async fn list_plans(
    _auth: Authorized<require::CatalogRead>,
    req: HttpRequest,
    db: web::Data<Db>,
    cache: web::Data<super::CatalogCache>,
    query: web::Query<PlanQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = query.filter().map_err(ApiError::validation)?;
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .validate()?;
    let version = cache.version.current(&db).await?;
    let etag = catalog_etag(version);
    if not_modified(&req, &etag) {
        return Ok(not_modified_response(etag));
    }
    let lang = crate::request_scope::current_lang();
    let body = super::plan_page(&db, &cache, version, filter, page, lang).await?;
    Ok(cached(etag).content_type("application/json").body(body))
}

/// Get a plan by id (retired plans too, marked `retired`).
#[utoipa::path(
    operation_id = "get_plan",
    tag = "catalog",
    params(("id" = uuid::Uuid, Path, description = "Plan id"),
           ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer")),
    responses(
        (status = 200, body = Plan, headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "Not modified since the ETag given."),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["catalog:read"]), ("bearer" = ["catalog:read"]))
)]
#[get("/v1/plans/{id}")]
async fn get_plan(
    _auth: Authorized<require::CatalogRead>,
    req: HttpRequest,
    db: web::Data<Db>,
    cache: web::Data<super::CatalogCache>,
    id: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, ApiError> {
    let version = cache.version.current(&db).await?;
    let etag = catalog_etag(version);
    if not_modified(&req, &etag) {
        return Ok(not_modified_response(etag));
    }
    let lang = crate::request_scope::current_lang();
    let (read_version, plan) = super::get_plan(&db, id.into_inner(), lang).await?;
    Ok(cached(catalog_etag(read_version)).json(plan))
}

/// Add a plan to the catalog.
#[utoipa::path(
    operation_id = "create_plan",
    tag = "admin",
    request_body = NewPlan,
    responses(
        (status = 201, description = "Created; `Location` names the plan.", body = Plan),
        (status = 400, description = "Malformed body or unknown field.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The code is taken.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[post("/v1/admin/plans")]
async fn create_plan(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    cache: web::Data<super::CatalogCache>,
    body: web::Json<NewPlan>,
) -> Result<HttpResponse, ApiError> {
    let lang = crate::request_scope::current_lang();
    let plan = super::create_plan(&db, &cache, body.into_inner(), lang).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/plans/{}", plan.id)))
        .json(plan))
}

/// Change a plan's name, description, prices, coverage or region.
///
/// Prices already copied into orders do not change.
#[utoipa::path(
    operation_id = "update_plan",
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Plan id")),
    request_body = PlanPatch,
    responses(
        (status = 200, body = Plan),
        (status = 400, description = "Malformed body or a field that cannot change.", body = Problem,
         content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[patch("/v1/admin/plans/{id}")]
async fn update_plan(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    cache: web::Data<super::CatalogCache>,
    id: web::Path<uuid::Uuid>,
    body: web::Json<PlanPatch>,
) -> Result<web::Json<Plan>, ApiError> {
    Ok(web::Json(
        super::update_plan(
            &db,
            &cache,
            id.into_inner(),
            body.into_inner(),
            crate::request_scope::current_lang(),
        )
        .await?,
    ))
}

/// Retire a plan: it leaves the catalog; orders and terms that use it keep working.
#[utoipa::path(
    operation_id = "retire_plan",
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Plan id")),
    responses(
        (status = 200, description = "Retired (retiring again changes nothing).", body = Plan),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[post("/v1/admin/plans/{id}/retire")]
async fn retire_plan(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    cache: web::Data<super::CatalogCache>,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<Plan>, ApiError> {
    Ok(web::Json(
        super::retire_plan(
            &db,
            &cache,
            id.into_inner(),
            crate::request_scope::current_lang(),
        )
        .await?,
    ))
}
