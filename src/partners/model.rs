//! Partners and their credentials, as stored and as shown.

use chrono::Utc;
use chrono::{DateTime, NaiveDateTime};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::scopes::{Scope, ScopeSet};
use crate::auth::store::stored_quota;
use crate::db::schema::{partner_credentials, partners};
use crate::db::stored_uuid;
use crate::domain::{time, PartnerStatus};
use crate::error::ApiError;
use crate::rate_limit::RateQuota;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = partners)]
pub struct PartnerRow {
    pub id: String,
    pub name: String,
    pub status: PartnerStatus,
    pub scopes: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub rate_limit_per_second: Option<i32>,
    pub rate_limit_burst: Option<i32>,
    pub verify_subscriber_before_release: bool,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = partner_credentials)]
pub struct CredentialRow {
    pub client_id: String,
    pub partner_id: String,
    pub secret_hash: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

/// A partner: a reseller, an app backend, or an operator.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Partner {
    pub id: uuid::Uuid,
    #[schema(example = "Acme Mobile")]
    pub name: String,
    pub status: PartnerStatus,
    /// The scopes its credentials may request.
    pub scopes: Vec<Scope>,
    /// Its own request quota; `null`: the deployment's default (see `RateLimit-Policy`).
    pub rate_limit: Option<RateQuota>,
    /// New eSIM activation codes are withheld until the subscriber confirms an SMS code.
    pub verify_subscriber_before_release: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<PartnerRow> for Partner {
    type Error = ApiError;

    fn try_from(row: PartnerRow) -> Result<Self, ApiError> {
        Ok(Self {
            id: stored_uuid(&row.id)?,
            scopes: row
                .scopes
                .parse::<ScopeSet>()
                .map_err(|e| ApiError::internal(format!("unreadable stored scopes: {e}")))?
                .to_vec(),
            rate_limit: stored_quota((row.rate_limit_per_second, row.rate_limit_burst))?,
            verify_subscriber_before_release: row.verify_subscriber_before_release,
            name: row.name,
            status: row.status,
            created_at: time::from_db(row.created_at),
            updated_at: time::from_db(row.updated_at),
        })
    }
}

/// A credential as listed: never its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Credential {
    pub client_id: String,
    pub created_at: DateTime<Utc>,
    /// When it stopped working; absent while it works.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<CredentialRow> for Credential {
    fn from(row: CredentialRow) -> Self {
        Self {
            client_id: row.client_id,
            created_at: time::from_db(row.created_at),
            revoked_at: row.revoked_at.map(time::from_db),
        }
    }
}

/// A new credential. `client_secret` is shown this once and stored only as a hash.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssuedCredential {
    pub partner_id: uuid::Uuid,
    #[schema(example = "sr_client_0f4c6a1e2b3d4c5e8f90a1b2c3d4e5f6")]
    pub client_id: String,
    #[schema(example = "sr_secret_3q2-7wVfQ1ZB9n0l0d1u8sM2o3Xk4aP5yR6tT7uU8vW")]
    pub client_secret: String,
    pub created_at: DateTime<Utc>,
}

/// A partner just created, with its first credential.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedPartner {
    pub partner_id: uuid::Uuid,
    pub name: String,
    pub status: PartnerStatus,
    pub scopes: Vec<Scope>,
    pub client_id: String,
    /// Shown this once; store it now.
    pub client_secret: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPartner {
    #[schema(
        example = "Acme Mobile",
        min_length = 1,
        max_length = 200,
        pattern = r"\S"
    )]
    pub name: String,
    /// Scopes its credentials may request; at least one.
    #[schema(min_items = 1)]
    pub scopes: Vec<Scope>,
}

/// A page of partners.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerList {
    pub data: Vec<Partner>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A partner's credentials, newest last.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialList {
    pub data: Vec<Credential>,
}
