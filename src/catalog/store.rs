//! Catalog queries. Every write bumps the catalog version in the caller's transaction.

use crate::i18n::Lang;
use std::collections::{BTreeSet, HashMap};

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::model::{PatchSpec, Plan, PlanFilter, PlanRow, PlanSpec, PlanStatus, Price};
use crate::db::schema::{catalog_version, plan_countries, plan_prices, plans};
use crate::db::stored_uuid;
use crate::db::DbConnection;
use crate::domain::{time, CardType, Country, Currency, MinorUnits};
use crate::pagination::PageRequest;

pub fn catalog_version(conn: &mut DbConnection) -> QueryResult<i64> {
    catalog_version::table
        .find(1)
        .select(catalog_version::version)
        .first(conn)
}

/// Counts a catalog change; on PostgreSQL, announces the new version to every
/// instance listening (delivered when the transaction commits; see `version`).
pub fn bump_version(conn: &mut DbConnection) -> QueryResult<()> {
    let version: i64 = diesel::update(catalog_version::table.find(1))
        .set(catalog_version::version.eq(catalog_version::version + 1))
        .returning(catalog_version::version)
        .get_result(conn)?;
    if let DbConnection::Postgres(pg) = conn {
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<diesel::sql_types::Text, _>(super::version::CHANNEL)
            .bind::<diesel::sql_types::Text, _>(version.to_string())
            .execute(pg)?;
    }
    Ok(())
}

fn replace_prices(
    conn: &mut DbConnection,
    plan_id: &str,
    prices: &[(Currency, i64)],
) -> QueryResult<()> {
    diesel::delete(plan_prices::table.filter(plan_prices::plan_id.eq(plan_id))).execute(conn)?;
    // One statement per row: MultiConnection has no multi-row INSERT for SQLite.
    for (currency, amount) in prices {
        diesel::insert_into(plan_prices::table)
            .values((
                plan_prices::plan_id.eq(plan_id),
                plan_prices::currency.eq(currency.code()),
                plan_prices::amount.eq(*amount),
            ))
            .execute(conn)?;
    }
    Ok(())
}

fn replace_coverage(
    conn: &mut DbConnection,
    plan_id: &str,
    countries: &BTreeSet<Country>,
) -> QueryResult<()> {
    diesel::delete(plan_countries::table.filter(plan_countries::plan_id.eq(plan_id)))
        .execute(conn)?;
    for country in countries {
        diesel::insert_into(plan_countries::table)
            .values((
                plan_countries::plan_id.eq(plan_id),
                plan_countries::country.eq(country.code()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn find_by_id(conn: &mut DbConnection, id: &str) -> QueryResult<Option<PlanRow>> {
    plans::table
        .find(id)
        .select(PlanRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_code(conn: &mut DbConnection, code: &str) -> QueryResult<Option<PlanRow>> {
    plans::table
        .filter(plans::code.eq(code))
        .select(PlanRow::as_select())
        .first(conn)
        .optional()
}

pub fn insert_plan(
    conn: &mut DbConnection,
    id: &str,
    spec: &PlanSpec,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let row = PlanRow {
        id: id.to_owned(),
        code: spec.code.clone(),
        name: spec.name.clone(),
        description: spec.description.clone(),
        fits_fm: spec.card_types.contains(&CardType::Fm),
        fits_esim: spec.card_types.contains(&CardType::Esim),
        period: spec.period,
        validity_days: spec.validity_days,
        data_bytes: spec.data_bytes,
        voice_minutes: spec.voice_minutes,
        sms: spec.sms,
        region: spec.region.clone(),
        status: PlanStatus::Active,
        created_at: now,
        updated_at: now,
        name_zh: spec.zh.as_ref().map(|(name, _)| name.clone()),
        description_zh: spec.zh.as_ref().map(|(_, description)| description.clone()),
    };
    diesel::insert_into(plans::table)
        .values(&row)
        .execute(conn)?;
    replace_prices(conn, id, &spec.prices)?;
    replace_coverage(conn, id, &spec.coverage)?;
    bump_version(conn)
}

/// Applies a patch; `false` when there is no such plan.
pub fn update_plan(
    conn: &mut DbConnection,
    id: &str,
    patch: &PatchSpec,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let target = plans::table.find(id);
    let updated = diesel::update(target)
        .set(plans::updated_at.eq(now))
        .execute(conn)?;
    if updated == 0 {
        return Ok(false);
    }
    if let Some(name) = &patch.name {
        diesel::update(target)
            .set(plans::name.eq(name))
            .execute(conn)?;
    }
    if let Some(description) = &patch.description {
        diesel::update(target)
            .set(plans::description.eq(description))
            .execute(conn)?;
    }
    if let Some(zh) = &patch.zh {
        diesel::update(target)
            .set((
                plans::name_zh.eq(zh.as_ref().map(|(name, _)| name)),
                plans::description_zh.eq(zh.as_ref().map(|(_, description)| description)),
            ))
            .execute(conn)?;
    }
    if let Some(region) = &patch.region {
        diesel::update(target)
            .set(plans::region.eq(region))
            .execute(conn)?;
    }
    if let Some(prices) = &patch.prices {
        replace_prices(conn, id, prices)?;
    }
    if let Some(coverage) = &patch.coverage {
        replace_coverage(conn, id, coverage)?;
    }
    bump_version(conn)?;
    Ok(true)
}

/// Takes a plan out of the catalog; `false` when there is no such plan. Idempotent.
pub fn retire_plan(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> QueryResult<bool> {
    let exists = find_by_id(conn, id)?.is_some();
    if exists {
        let changed = diesel::update(
            plans::table
                .find(id)
                .filter(plans::status.eq(PlanStatus::Active)),
        )
        .set((
            plans::status.eq(PlanStatus::Retired),
            plans::updated_at.eq(now),
        ))
        .execute(conn)?;
        if changed > 0 {
            bump_version(conn)?;
        }
    }
    Ok(exists)
}

/// Active plans matching every given filter, one page, ordered by id.
pub fn list_active(
    conn: &mut DbConnection,
    filter: &PlanFilter,
    page: &PageRequest,
) -> QueryResult<Vec<PlanRow>> {
    let mut query = plans::table
        .filter(plans::status.eq(PlanStatus::Active))
        .select(PlanRow::as_select())
        .order(plans::id.asc())
        .limit(page.fetch_limit())
        .into_boxed();
    if let Some(after) = &page.after {
        query = query.filter(plans::id.gt(after.clone()));
    }
    match filter.card_type {
        Some(CardType::Fm) => query = query.filter(plans::fits_fm.eq(true)),
        Some(CardType::Esim) => query = query.filter(plans::fits_esim.eq(true)),
        None => {}
    }
    if let Some(period) = filter.period {
        query = query.filter(plans::period.eq(period));
    }
    if let Some(country) = filter.country {
        query = query.filter(
            plans::id.eq_any(
                plan_countries::table
                    .filter(plan_countries::country.eq(country.code().to_owned()))
                    .select(plan_countries::plan_id),
            ),
        );
    }
    if let Some(currency) = filter.currency {
        query = query.filter(
            plans::id.eq_any(
                plan_prices::table
                    .filter(plan_prices::currency.eq(currency.code()))
                    .select(plan_prices::plan_id),
            ),
        );
    }
    query.load(conn)
}

/// Completes rows with their prices and coverage (two queries for the whole page).
/// Plans as shown, their texts in `lang`.
pub fn with_details(
    conn: &mut DbConnection,
    rows: Vec<PlanRow>,
    lang: Lang,
) -> QueryResult<Vec<Plan>> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut prices: HashMap<String, Vec<Price>> = HashMap::new();
    for (plan_id, currency, amount) in plan_prices::table
        .filter(plan_prices::plan_id.eq_any(&ids))
        .order((plan_prices::plan_id, plan_prices::currency))
        .select((
            plan_prices::plan_id,
            plan_prices::currency,
            plan_prices::amount,
        ))
        .load::<(String, String, i64)>(conn)?
    {
        prices
            .entry(plan_id)
            .or_default()
            .push(Price { currency, amount });
    }
    let mut coverage: HashMap<String, Vec<Country>> = HashMap::new();
    for (plan_id, country) in plan_countries::table
        .filter(plan_countries::plan_id.eq_any(&ids))
        .order((plan_countries::plan_id, plan_countries::country))
        .select((plan_countries::plan_id, plan_countries::country))
        .load::<(String, String)>(conn)?
    {
        let country = country.parse::<Country>().map_err(|e| {
            diesel::result::Error::DeserializationError(
                format!("unreadable stored country: {e}").into(),
            )
        })?;
        coverage.entry(plan_id).or_default().push(country);
    }
    rows.into_iter()
        .map(|row| {
            let mut card_types = Vec::new();
            if row.fits_fm {
                card_types.push(CardType::Fm);
            }
            if row.fits_esim {
                card_types.push(CardType::Esim);
            }
            let (name, description) = row.texts(lang);
            Ok(Plan {
                id: stored_uuid(&row.id)?,
                prices: prices.remove(&row.id).unwrap_or_default(),
                coverage: coverage.remove(&row.id).unwrap_or_default(),
                code: row.code,
                name,
                description,
                card_types,
                period: row.period,
                validity_days: row.validity_days,
                data_bytes: row.data_bytes,
                voice_minutes: row.voice_minutes,
                sms: row.sms,
                region: row.region,
                status: row.status,
                created_at: time::from_db(row.created_at),
                updated_at: time::from_db(row.updated_at),
            })
        })
        .collect()
}

/// The plan's price in `currency`, if it has one.
pub fn price_of(
    conn: &mut DbConnection,
    plan_id: &str,
    currency: Currency,
) -> QueryResult<Option<MinorUnits>> {
    plan_prices::table
        .find((plan_id, currency.code()))
        .select(plan_prices::amount)
        .first(conn)
        .optional()
}
