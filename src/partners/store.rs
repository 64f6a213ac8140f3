//! Partner and credential queries. Every function takes a connection; the caller
//! decides the transaction.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::model::{CredentialRow, PartnerRow};
use crate::auth::scopes::ScopeSet;
use crate::db::schema::{partner_credentials, partners};
use crate::db::DbConnection;
use crate::domain::PartnerStatus;
use crate::pagination::PageRequest;
use crate::rate_limit::RateQuota;

pub fn insert_partner(
    conn: &mut DbConnection,
    id: &str,
    name: &str,
    scopes: &ScopeSet,
    now: NaiveDateTime,
) -> QueryResult<PartnerRow> {
    diesel::insert_into(partners::table)
        .values((
            partners::id.eq(id),
            partners::name.eq(name),
            partners::status.eq(PartnerStatus::Active),
            partners::scopes.eq(scopes.to_string()),
            partners::created_at.eq(now),
            partners::updated_at.eq(now),
        ))
        .execute(conn)?;
    find_partner(conn, id)?.ok_or(diesel::result::Error::NotFound)
}

pub fn insert_credential(
    conn: &mut DbConnection,
    partner_id: &str,
    client_id: &str,
    secret_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(partner_credentials::table)
        .values((
            partner_credentials::client_id.eq(client_id),
            partner_credentials::partner_id.eq(partner_id),
            partner_credentials::secret_hash.eq(secret_hash),
            partner_credentials::created_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

pub fn find_partner(conn: &mut DbConnection, id: &str) -> QueryResult<Option<PartnerRow>> {
    partners::table
        .find(id)
        .select(PartnerRow::as_select())
        .first(conn)
        .optional()
}

pub fn list_partners(conn: &mut DbConnection, page: &PageRequest) -> QueryResult<Vec<PartnerRow>> {
    let mut query = partners::table
        .select(PartnerRow::as_select())
        .order(partners::id.asc())
        .limit(page.fetch_limit())
        .into_boxed();
    if let Some(after) = &page.after {
        query = query.filter(partners::id.gt(after.clone()));
    }
    query.load(conn)
}

/// Sets the status; `None` when there is no such partner.
pub fn set_partner_status(
    conn: &mut DbConnection,
    id: &str,
    status: PartnerStatus,
    now: NaiveDateTime,
) -> QueryResult<Option<PartnerRow>> {
    let updated = match status {
        // Tokens issued until now stop working for good: a new token generation begins,
        // and resuming does not bring the old one back.
        PartnerStatus::Suspended => diesel::update(partners::table.find(id))
            .set((
                partners::status.eq(status),
                partners::updated_at.eq(now),
                partners::token_generation.eq(partners::token_generation + 1),
            ))
            .execute(conn)?,
        PartnerStatus::Active => diesel::update(partners::table.find(id))
            .set((partners::status.eq(status), partners::updated_at.eq(now)))
            .execute(conn)?,
    };
    if updated == 0 {
        return Ok(None);
    }
    find_partner(conn, id)
}

/// Sets or clears the partner's own quota; `None` when there is no such partner.
pub fn set_rate_limit(
    conn: &mut DbConnection,
    id: &str,
    quota: Option<RateQuota>,
    now: NaiveDateTime,
) -> QueryResult<Option<PartnerRow>> {
    let as_stored = |value: std::num::NonZeroU32| {
        i32::try_from(value.get())
            .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
    };
    let (per_second, burst) = match quota {
        Some(q) => (
            Some(as_stored(q.requests_per_second)?),
            Some(as_stored(q.burst)?),
        ),
        None => (None, None),
    };
    let updated = diesel::update(partners::table.find(id))
        .set((
            partners::rate_limit_per_second.eq(per_second),
            partners::rate_limit_burst.eq(burst),
            partners::updated_at.eq(now),
        ))
        .execute(conn)?;
    if updated == 0 {
        return Ok(None);
    }
    find_partner(conn, id)
}

pub fn list_credentials(
    conn: &mut DbConnection,
    partner_id: &str,
) -> QueryResult<Vec<CredentialRow>> {
    partner_credentials::table
        .filter(partner_credentials::partner_id.eq(partner_id))
        .select(CredentialRow::as_select())
        .order((
            partner_credentials::created_at.asc(),
            partner_credentials::client_id.asc(),
        ))
        .load(conn)
}

/// Revokes a credential of this partner; `false` when the partner has no such credential.
/// Revoking twice keeps the first revocation time.
pub fn revoke_credential(
    conn: &mut DbConnection,
    partner_id: &str,
    client_id: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let owned = partner_credentials::table
        .filter(partner_credentials::partner_id.eq(partner_id))
        .filter(partner_credentials::client_id.eq(client_id));
    let exists = owned.count().get_result::<i64>(conn)? > 0;
    if exists {
        diesel::update(owned.filter(partner_credentials::revoked_at.is_null()))
            .set(partner_credentials::revoked_at.eq(now))
            .execute(conn)?;
    }
    Ok(exists)
}

/// Locks the partner's row until the transaction ends (changes to its settings happen
/// one after another).
pub fn lock(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(partners::table.find(id))
        .set(partners::updated_at.eq(now))
        .execute(conn)
        .map(drop)
}

/// Sets whether new eSIM codes wait for the subscriber's SMS verification; `false` when
/// there is no such partner.
pub fn set_verification(
    conn: &mut DbConnection,
    id: &str,
    required: bool,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(partners::table.find(id))
        .set((
            partners::verify_subscriber_before_release.eq(required),
            partners::updated_at.eq(now),
        ))
        .execute(conn)
        .map(|n| n == 1)
}
