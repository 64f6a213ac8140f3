//! The plan catalog: what a card can be renewed with, filtered the way subscribers shop
//! (card type, destination, period, currency), paged stably and cheap to cache.

pub mod devices;
pub mod model;
pub mod routes;
pub mod store;
pub mod version;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use mini_moka::sync::Cache;
use serde::Serialize;

use crate::db::{is_unique_violation, Db, DbConnection};
use crate::domain::time;
use crate::error::{ApiError, FieldError};
use crate::i18n::Lang;
use crate::pagination::PageRequest;
use model::{NewPlan, Plan, PlanFilter, PlanList, PlanPatch, PlanRow, PlanSpec};

/// Rendered catalog pages, keyed by catalog version and request, and the version itself.
/// A change anywhere bumps the version, so an entry is never served for a catalog it does
/// not show; the version is held in memory and is at most
/// [`version::STALENESS_BOUND`] old (see `version`).
pub struct CatalogCache {
    pages: Cache<PageKey, Bytes>,
    pub version: Arc<version::CatalogVersion>,
}

/// A rendered page: the catalog version, the validated query, the language.
type PageKey = (i64, PlanFilter, PageRequest, Lang);

impl Default for CatalogCache {
    fn default() -> Self {
        Self {
            version: Arc::default(),
            pages: Cache::builder()
                .max_capacity(2_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
        }
    }
}

fn conflict_code(code: &str) -> ApiError {
    ApiError::conflict(format!("a plan with code `{code}` already exists"))
}

fn one_plan(conn: &mut DbConnection, row: PlanRow, lang: Lang) -> Result<Plan, ApiError> {
    store::with_details(conn, vec![row], lang)?
        .pop()
        .ok_or_else(|| ApiError::internal("plan vanished while being read"))
}

/// Whether `plan` can be bought, or granted, for a card of `card_type`: it is on sale
/// and made for that type. Orders and operator grants both ask here.
pub fn on_sale_for(plan: &model::PlanRow, card_type: crate::domain::CardType) -> bool {
    plan.status == model::PlanStatus::Active && plan.fits(card_type)
}

/// Runs a catalog change in one transaction. This instance then answers from the new
/// catalog at once; the others within the staleness bound (see `version`), which also
/// covers this instance if reading the new version fails here.
async fn change<F>(db: &Db, cache: &CatalogCache, work: F) -> Result<Plan, ApiError>
where
    F: FnOnce(&mut DbConnection) -> Result<Plan, ApiError> + Send + 'static,
{
    let plan = db.transaction(work).await?;
    if let Err(e) = cache.version.refresh(db).await {
        tracing::warn!(error = %e, "the new catalog version was not read; it will be shortly");
    }
    Ok(plan)
}

/// Adds a plan to the catalog. A code already taken is `409 conflict`.
pub async fn create_plan(
    db: &Db,
    cache: &CatalogCache,
    input: NewPlan,
    lang: Lang,
) -> Result<Plan, ApiError> {
    let spec = input.validate("").map_err(ApiError::validation)?;
    let id = uuid::Uuid::now_v7().to_string();
    let now = time::to_db(time::now());
    change(db, cache, move |conn| {
        if store::find_by_code(conn, &spec.code)?.is_some() {
            return Err(conflict_code(&spec.code));
        }
        match store::insert_plan(conn, &id, &spec, now) {
            Err(e) if is_unique_violation(&e) => return Err(conflict_code(&spec.code)),
            other => other?,
        }
        let row = store::find_by_id(conn, &id)?
            .ok_or_else(|| ApiError::internal("inserted plan not found"))?;
        one_plan(conn, row, lang)
    })
    .await
}

pub async fn update_plan(
    db: &Db,
    cache: &CatalogCache,
    id: uuid::Uuid,
    patch: PlanPatch,
    lang: Lang,
) -> Result<Plan, ApiError> {
    let spec = patch.validate()?;
    let now = time::to_db(time::now());
    change(db, cache, move |conn| {
        let key = id.to_string();
        if !store::update_plan(conn, &key, &spec, now)? {
            return Err(ApiError::not_found(format!("no plan {id}")));
        }
        let row = store::find_by_id(conn, &key)?
            .ok_or_else(|| ApiError::not_found(format!("no plan {id}")))?;
        one_plan(conn, row, lang)
    })
    .await
}

pub async fn retire_plan(
    db: &Db,
    cache: &CatalogCache,
    id: uuid::Uuid,
    lang: Lang,
) -> Result<Plan, ApiError> {
    let now = time::to_db(time::now());
    change(db, cache, move |conn| {
        let key = id.to_string();
        if !store::retire_plan(conn, &key, now)? {
            return Err(ApiError::not_found(format!("no plan {id}")));
        }
        let row = store::find_by_id(conn, &key)?
            .ok_or_else(|| ApiError::not_found(format!("no plan {id}")))?;
        one_plan(conn, row, lang)
    })
    .await
}

/// Any plan by id, retired ones included (orders and terms keep pointing at them).
pub async fn get_plan(db: &Db, id: uuid::Uuid, lang: Lang) -> Result<(i64, Plan), ApiError> {
    db.run(move |conn| {
        let version = store::catalog_version(conn)?;
        let row = store::find_by_id(conn, &id.to_string())?
            .ok_or_else(|| ApiError::not_found(format!("no plan {id}")))?;
        Ok((version, one_plan(conn, row, lang)?))
    })
    .await
}

/// One page of the active catalog as JSON, from the cache when this version of it was
/// rendered before.
pub async fn plan_page(
    db: &Db,
    cache: &CatalogCache,
    version: i64,
    filter: PlanFilter,
    page: PageRequest,
    lang: Lang,
) -> Result<Bytes, ApiError> {
    let key = (version, filter.clone(), page.clone(), lang);
    if let Some(body) = cache.pages.get(&key) {
        return Ok(body);
    }
    let (body, read_at_version) = db
        .run(move |conn| {
            let rows = store::list_active(conn, &filter, &page)?;
            let (rows, next_cursor) = page.finish(rows, |row| row.id.clone());
            let data = store::with_details(conn, rows, lang)?;
            let body =
                serde_json::to_vec(&PlanList { data, next_cursor }).map_err(ApiError::internal)?;
            // Only a page read entirely at the version it is filed under may be cached.
            Ok::<_, ApiError>((Bytes::from(body), store::catalog_version(conn)?))
        })
        .await?;
    if read_at_version == version {
        cache.pages.insert(key, body.clone());
    }
    Ok(body)
}

/// What `simrenew plans import` did.
#[derive(Debug, Default, Serialize)]
pub struct ImportSummary {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// The parts of a plan a purchase depends on; an import may not change them under an
/// existing code (create a new code instead).
fn fixed_terms_differ(row: &PlanRow, spec: &PlanSpec) -> bool {
    use crate::domain::CardType;
    row.fits_fm != spec.card_types.contains(&CardType::Fm)
        || row.fits_esim != spec.card_types.contains(&CardType::Esim)
        || row.period != spec.period
        || row.validity_days != spec.validity_days
        || row.data_bytes != spec.data_bytes
        || row.voice_minutes != spec.voice_minutes
        || row.sms != spec.sms
}

/// Loads or updates plans in bulk, idempotent by code, all or nothing.
pub async fn import_plans(db: &Db, plans: Vec<NewPlan>) -> Result<ImportSummary, ApiError> {
    let mut errors: Vec<FieldError> = Vec::new();
    let mut specs = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        match plan.validate(&format!("plans[{i}].")) {
            Ok(spec) => specs.push(spec),
            Err(mut list) => errors.append(&mut list),
        }
    }
    let mut codes = std::collections::HashSet::new();
    for (i, spec) in specs.iter().enumerate() {
        if !codes.insert(spec.code.clone()) {
            errors.push(FieldError::new(
                format!("plans[{i}].code"),
                "appears twice in the file",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let now = time::to_db(time::now());
    db.transaction(move |conn| {
        let mut summary = ImportSummary::default();
        let mut conflicts = Vec::new();
        for (i, spec) in specs.into_iter().enumerate() {
            match store::find_by_code(conn, &spec.code)? {
                None => {
                    store::insert_plan(conn, &uuid::Uuid::now_v7().to_string(), &spec, now)?;
                    summary.created += 1;
                }
                Some(row) if fixed_terms_differ(&row, &spec) => conflicts.push(FieldError::new(
                    format!("plans[{i}].code"),
                    format!(
                        "`{}` exists with other card types, period or allowances; use a new code",
                        spec.code
                    ),
                )),
                Some(row) => {
                    let existing = one_plan(conn, row.clone(), Lang::En)?;
                    let zh = row.name_zh.clone().zip(row.description_zh.clone());
                    let prices: Vec<_> = spec
                        .prices
                        .iter()
                        .map(|(c, a)| (c.code().to_owned(), *a))
                        .collect();
                    let current: Vec<_> = existing
                        .prices
                        .iter()
                        .map(|p| (p.currency.clone(), p.amount))
                        .collect();
                    let same = existing.name == spec.name
                        && zh == spec.zh
                        && existing.description == spec.description
                        && existing.region == spec.region
                        && existing
                            .coverage
                            .iter()
                            .copied()
                            .collect::<std::collections::BTreeSet<_>>()
                            == spec.coverage
                        && current == prices;
                    if same {
                        summary.unchanged += 1;
                        continue;
                    }
                    let patch = model::PatchSpec {
                        name: Some(spec.name),
                        description: Some(spec.description),
                        prices: Some(spec.prices),
                        coverage: Some(spec.coverage),
                        region: spec.region,
                        zh: Some(spec.zh),
                    };
                    store::update_plan(conn, &row.id, &patch, now)?;
                    summary.updated += 1;
                }
            }
        }
        if conflicts.is_empty() {
            Ok(summary)
        } else {
            Err(ApiError::validation(conflicts))
        }
    })
    .await
}

/// The demo catalog shipped with the binary (`serve --demo`, benchmarks).
pub fn demo_plans() -> Result<Vec<NewPlan>, String> {
    serde_json::from_str(include_str!("demo_plans.json")).map_err(|e| format!("demo catalog: {e}"))
}
