//! Partners (resellers, app backends, operators) and their client credentials.

pub mod model;
pub mod routes;
pub mod store;

use chrono::NaiveDateTime;

use crate::auth::scopes::ScopeSet;
use crate::auth::secrets;
use crate::db::Db;
use crate::domain::{time, PartnerStatus};
use crate::error::{ApiError, FieldError};
use crate::rate_limit::RateQuota;
use model::{CreatedPartner, IssuedCredential, NewPartner, Partner};

const MAX_NAME_CHARS: usize = 200;

fn validate(input: &NewPartner) -> Result<(String, ScopeSet), ApiError> {
    let mut errors = Vec::new();
    // Counted as sent (the document's `maxLength`); stored without surrounding spaces.
    let too_long = input.name.chars().count() > MAX_NAME_CHARS;
    let name = input.name.trim().to_owned();
    if name.is_empty() || too_long {
        errors.push(FieldError::new(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    if input.scopes.is_empty() {
        errors.push(FieldError::new("scopes", "must list at least one scope"));
    }
    if errors.is_empty() {
        Ok((name, input.scopes.iter().copied().collect()))
    } else {
        Err(ApiError::validation(errors))
    }
}

/// Hashing is slow by design: do it on the blocking pool, outside any transaction.
async fn new_secret_and_hash() -> Result<(String, String), ApiError> {
    tokio::task::spawn_blocking(|| {
        let secret = secrets::new_client_secret();
        secrets::hash_secret(&secret).map(|hash| (secret, hash))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}

/// Creates a partner with its first credential; the secret is in the answer and nowhere else.
pub async fn create_partner(db: &Db, input: NewPartner) -> Result<CreatedPartner, ApiError> {
    let (name, scopes) = validate(&input)?;
    let (secret, hash) = new_secret_and_hash().await?;
    let partner_id = uuid::Uuid::now_v7();
    let client_id = secrets::new_client_id();
    let now = time::now();
    let (row, client) = {
        let client_id = client_id.clone();
        db.transaction(move |conn| {
            let row = store::insert_partner(
                conn,
                &partner_id.to_string(),
                &name,
                &scopes,
                time::to_db(now),
            )?;
            store::insert_credential(conn, &row.id, &client_id, &hash, time::to_db(now))?;
            crate::events::open_feed(conn, &row.id)?;
            Ok::<_, ApiError>((row, client_id))
        })
        .await?
    };
    let partner = Partner::try_from(row)?;
    Ok(CreatedPartner {
        partner_id: partner.id,
        name: partner.name,
        status: partner.status,
        scopes: partner.scopes,
        client_id: client,
        client_secret: secret,
        created_at: partner.created_at,
    })
}

/// Adds a credential to an existing partner (to rotate a secret without downtime).
pub async fn issue_credential(
    db: &Db,
    partner_id: uuid::Uuid,
) -> Result<IssuedCredential, ApiError> {
    let (secret, hash) = new_secret_and_hash().await?;
    let client_id = secrets::new_client_id();
    let now = time::now();
    let stored = {
        let client_id = client_id.clone();
        db.transaction(move |conn| {
            let id = partner_id.to_string();
            if store::find_partner(conn, &id)?.is_none() {
                return Ok(false);
            }
            store::insert_credential(conn, &id, &client_id, &hash, time::to_db(now))?;
            Ok::<_, ApiError>(true)
        })
        .await?
    };
    if !stored {
        return Err(ApiError::not_found(format!("no partner {partner_id}")));
    }
    Ok(IssuedCredential {
        partner_id,
        client_id,
        client_secret: secret,
        created_at: now,
    })
}

/// Suspends or resumes a partner (`404` if there is none).
pub async fn set_status(
    db: &Db,
    id: uuid::Uuid,
    status: PartnerStatus,
    now: NaiveDateTime,
) -> Result<Partner, ApiError> {
    let row = db
        .transaction(move |conn| {
            store::set_partner_status(conn, &id.to_string(), status, now).map_err(ApiError::from)
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no partner {id}")))?;
    Partner::try_from(row)
}

/// Gives a partner its own request quota, or (`None`) returns it to the default
/// (`404` if there is no such partner).
pub async fn set_rate_limit(
    db: &Db,
    id: uuid::Uuid,
    quota: Option<RateQuota>,
    now: NaiveDateTime,
) -> Result<Partner, ApiError> {
    let row = db
        .transaction(move |conn| {
            store::set_rate_limit(conn, &id.to_string(), quota, now).map_err(ApiError::from)
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no partner {id}")))?;
    Partner::try_from(row)
}

/// Revokes one of a partner's credentials (`404` if it has no such credential).
pub async fn revoke_credential(
    db: &Db,
    id: uuid::Uuid,
    client_id: String,
    now: NaiveDateTime,
) -> Result<(), ApiError> {
    let key = client_id.clone();
    let found = db
        .transaction(move |conn| {
            store::revoke_credential(conn, &id.to_string(), &key, now).map_err(ApiError::from)
        })
        .await?;
    if !found {
        return Err(ApiError::not_found(format!(
            "partner {id} has no credential {client_id}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scopes::Scope;

    #[test]
    fn a_partner_needs_a_name_and_a_scope() {
        let err = validate(&NewPartner {
            name: "  ".into(),
            scopes: vec![],
        })
        .unwrap_err();
        match err {
            ApiError::Problem { errors, .. } => {
                let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
                assert_eq!(fields, ["name", "scopes"]);
            }
            other => panic!("{other:?}"),
        }
        let (name, scopes) = validate(&NewPartner {
            name: " Acme ".into(),
            scopes: vec![Scope::CatalogRead, Scope::CatalogRead],
        })
        .unwrap();
        assert_eq!(
            (name.as_str(), scopes.to_string().as_str()),
            ("Acme", "catalog:read")
        );
    }
}
