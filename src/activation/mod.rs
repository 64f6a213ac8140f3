//! Activation: how a paid renewal reaches the card and when it took effect. An eSIM gets
//! an SGP.22 activation code (and its QR); an FM card gets its term over the air.
//! Confirmation creates the term, in the same transaction as the state changes.

pub mod qr;
pub mod renewal;
pub mod routes;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use rand::rngs::OsRng;
use rand::Rng;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::cards::{self, store as card_store, terms::TermRow};
use crate::catalog::store as catalog_store;
use crate::db::schema::{activations, cards as cards_table, terms};
use crate::db::DbConnection;
use crate::domain::{time, CardType, Eid};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::orders::model::OrderRow;
use crate::orders::state::OrderEvent;
use crate::orders::{self, store as order_store};

const MATCHING_ID_LEN: usize = 20;
const MATCHING_ID_ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const APPLE_INSTALL_BASE: &str = "https://esimsetup.apple.com/esim_qrcode_provisioning?carddata=";
const MAX_REASON: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActivationMode {
    /// An eSIM profile, downloaded with the activation code.
    EsimProfile,
    /// An FM card's term, delivered over the air: no code to scan.
    Ota,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActivationStatus {
    Pending,
    Confirmed,
    Failed,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = activations)]
pub struct ActivationRow {
    pub order_id: String,
    pub iccid: String,
    pub card_type: String,
    pub mode: String,
    pub status: String,
    pub smdp_address: Option<String>,
    pub matching_id: Option<String>,
    pub term_id: Option<String>,
    pub effective_from: Option<NaiveDateTime>,
    pub valid_until: Option<NaiveDateTime>,
    pub previous_valid_until: Option<NaiveDateTime>,
    pub confirmed_at: Option<NaiveDateTime>,
    pub failure_reason: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl ActivationRow {
    /// `LPA:1$<SM-DP+ address>$<matching id>` (GSMA SGP.22 activation code).
    pub fn lpa_code(&self) -> Option<String> {
        match (&self.smdp_address, &self.matching_id) {
            (Some(address), Some(matching_id)) => Some(format!("LPA:1${address}${matching_id}")),
            _ => None,
        }
    }
}

/// How a renewal reaches the card and whether it took effect.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Activation {
    pub order_id: uuid::Uuid,
    #[schema(value_type = String)]
    pub iccid: String,
    pub card_type: CardType,
    pub mode: ActivationMode,
    pub status: ActivationStatus,
    /// eSIM: the SGP.22 activation code to scan or paste, `LPA:1$<SM-DP+>$<matching id>`.
    #[schema(example = "LPA:1$smdp.simrenew.test$K2Q8ZC4M7T1X9B6W3N5R")]
    pub lpa_activation_code: Option<String>,
    /// eSIM, for manual entry on Android: the SM-DP+ address.
    pub smdp_address: Option<String>,
    /// eSIM, for manual entry: the matching id (activation code token).
    pub matching_id: Option<String>,
    /// eSIM on iOS 17.4+: opens the installer directly.
    pub apple_install_url: Option<String>,
    pub qr_code_svg_url: Option<String>,
    pub qr_code_png_url: Option<String>,
    /// When the new term starts (once confirmed).
    pub effective_from: Option<DateTime<Utc>>,
    /// When the new term ends, exclusive (once confirmed).
    pub valid_until: Option<DateTime<Utc>>,
    /// When the card's service ended, or was to end, before this renewal.
    pub previous_valid_until: Option<DateTime<Utc>>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub failure_reason: Option<String>,
}

impl From<&ActivationRow> for Activation {
    fn from(row: &ActivationRow) -> Self {
        let code = row.lpa_code();
        let qr = |ext: &str| {
            code.as_ref()
                .map(|_| format!("/v1/orders/{}/activation/qr.{ext}", row.order_id))
        };
        Self {
            order_id: uuid::Uuid::parse_str(&row.order_id).unwrap_or_default(),
            iccid: row.iccid.clone(),
            card_type: if row.card_type == "esim" {
                CardType::Esim
            } else {
                CardType::Fm
            },
            mode: if row.mode == "ota" {
                ActivationMode::Ota
            } else {
                ActivationMode::EsimProfile
            },
            status: match row.status.as_str() {
                "confirmed" => ActivationStatus::Confirmed,
                "failed" => ActivationStatus::Failed,
                _ => ActivationStatus::Pending,
            },
            apple_install_url: code.as_ref().map(|code| {
                format!(
                    "{APPLE_INSTALL_BASE}{}",
                    percent_encoding::utf8_percent_encode(code, percent_encoding::NON_ALPHANUMERIC)
                )
            }),
            qr_code_svg_url: qr("svg"),
            qr_code_png_url: qr("png"),
            lpa_activation_code: code,
            smdp_address: row.smdp_address.clone(),
            matching_id: row.matching_id.clone(),
            effective_from: row.effective_from.map(time::from_db),
            valid_until: row.valid_until.map(time::from_db),
            previous_valid_until: row.previous_valid_until.map(time::from_db),
            confirmed_at: row.confirmed_at.map(time::from_db),
            failure_reason: row.failure_reason.clone(),
        }
    }
}

/// `POST /v1/orders/{id}/activation/confirm`: optionally the EID the profile went to.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    /// eSIM only: the device's EID (32 digits); recorded on the card, and refused if the
    /// card is known to have another.
    pub eid: Option<String>,
}

/// `POST /v1/orders/{id}/activation/fail`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    /// What went wrong, as the network reports it (1–500 characters).
    pub reason: String,
}

/// A matching id: 20 symbols of A–Z and 0–9 from the OS's CSPRNG (≈103 bits).
pub fn new_matching_id() -> String {
    (0..MATCHING_ID_LEN)
        .map(|_| char::from(MATCHING_ID_ALPHABET[OsRng.gen_range(0..MATCHING_ID_ALPHABET.len())]))
        .collect()
}

/// Creates the pending activation of an order that has just become paid.
pub fn create_pending(
    conn: &mut DbConnection,
    order: &OrderRow,
    card_type: CardType,
    smdp_address: &str,
) -> QueryResult<ActivationRow> {
    let now = time::to_db(time::now());
    let (mode, smdp, matching_id) = match card_type {
        CardType::Esim => (
            "esim_profile",
            Some(smdp_address.to_owned()),
            Some(new_matching_id()),
        ),
        CardType::Fm => ("ota", None, None),
    };
    let row = ActivationRow {
        order_id: order.id.clone(),
        iccid: order.iccid.clone(),
        card_type: card_type.as_str().to_owned(),
        mode: mode.to_owned(),
        status: "pending".to_owned(),
        smdp_address: smdp,
        matching_id,
        term_id: None,
        effective_from: None,
        valid_until: None,
        previous_valid_until: None,
        confirmed_at: None,
        failure_reason: None,
        created_at: now,
        updated_at: now,
    };
    diesel::insert_into(activations::table)
        .values(&row)
        .execute(conn)?;
    Ok(row)
}

pub fn find(conn: &mut DbConnection, order_id: &str) -> QueryResult<Option<ActivationRow>> {
    activations::table
        .find(order_id)
        .select(ActivationRow::as_select())
        .first(conn)
        .optional()
}

/// Who is asking: a partner sees only its orders; the network sees all.
#[derive(Debug, Clone)]
pub enum Caller {
    Partner(String),
    Network,
}

fn load_order(
    conn: &mut DbConnection,
    caller: &Caller,
    order_id: &str,
) -> Result<OrderRow, ApiError> {
    match caller {
        Caller::Partner(partner_id) => order_store::find_for_partner(conn, partner_id, order_id)?,
        Caller::Network => order_store::find(conn, order_id)?,
    }
    .ok_or_else(|| orders::no_order(order_id))
}

fn not_paid(order: &OrderRow) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidStateTransition,
        format!(
            "the order is {}; it has no activation until it is paid",
            order.status
        ),
    )
}

/// The activation of a partner's order.
pub fn get(
    conn: &mut DbConnection,
    caller: &Caller,
    order_id: &str,
) -> Result<ActivationRow, ApiError> {
    let order = load_order(conn, caller, order_id)?;
    find(conn, &order.id)?.ok_or_else(|| not_paid(&order))
}

/// Confirms the renewal took effect: creates the term by the card type's rule, records
/// the dates, completes the order — all in the caller's transaction. Confirming again
/// answers with the same activation and changes nothing.
pub fn confirm(
    conn: &mut DbConnection,
    caller: &Caller,
    order_id: &str,
    confirmation: &Confirmation,
) -> Result<ActivationRow, ApiError> {
    let order = load_order(conn, caller, order_id)?;
    let existing = find(conn, &order.id)?.ok_or_else(|| not_paid(&order))?;
    match existing.status.as_str() {
        "confirmed" => return Ok(existing),
        "failed" => {
            return Err(ApiError::new(
                ErrorCode::InvalidStateTransition,
                "the activation failed; it cannot be confirmed",
            ))
        }
        _ => {}
    }
    let now = time::to_db(time::now());
    // Confirmations of one card take turns: each sees the terms the previous one made.
    diesel::update(cards_table::table.find(&order.iccid))
        .set(cards_table::updated_at.eq(now))
        .execute(conn)?;
    let claimed = diesel::update(
        activations::table
            .find(&order.id)
            .filter(activations::status.eq("pending")),
    )
    .set((
        activations::status.eq("confirmed"),
        activations::updated_at.eq(now),
    ))
    .execute(conn)?;
    if claimed == 0 {
        // A concurrent confirmation (or failure) got here first.
        let current = find(conn, &order.id)?.ok_or_else(|| not_paid(&order))?;
        return if current.status == "confirmed" {
            Ok(current)
        } else {
            Err(ApiError::new(
                ErrorCode::InvalidStateTransition,
                "the activation failed; it cannot be confirmed",
            ))
        };
    }
    let card =
        card_store::find_card(conn, &order.iccid)?.ok_or_else(|| cards::no_card(&order.iccid))?;
    if let Some(eid_text) = confirmation
        .eid
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        if card.card_type() != CardType::Esim {
            return Err(ApiError::validation(vec![FieldError::new(
                "eid",
                "only eSIM cards have an EID",
            )]));
        }
        let eid: Eid = eid_text
            .parse()
            .map_err(|e: String| ApiError::validation(vec![FieldError::new("eid", e)]))?;
        match card.eid.as_deref() {
            Some(known) if known != eid.as_str() => {
                return Err(ApiError::new(
                    ErrorCode::EidMismatch,
                    "this card's profile is bound to another EID; nothing was changed",
                ))
            }
            Some(_) => {}
            None => {
                diesel::update(cards_table::table.find(&card.iccid))
                    .set(cards_table::eid.eq(eid.as_str()))
                    .execute(conn)?;
            }
        }
    }
    let plan = catalog_store::find_by_id(conn, &order.plan_id)?
        .ok_or_else(|| ApiError::internal("an order's plan is missing"))?;
    let existing_terms: Vec<TermRow> =
        card_store::terms_of(conn, std::slice::from_ref(&card.iccid))?;
    let plan_of_renewal = renewal::plan(card.card_type(), &existing_terms, plan.validity_days, now);
    if let Some((term_id, ends)) = &plan_of_renewal.truncate {
        diesel::update(terms::table.find(term_id))
            .set(terms::valid_until.eq(*ends))
            .execute(conn)?;
    }
    for (term_id, from, until) in &plan_of_renewal.requeue {
        diesel::update(terms::table.find(term_id))
            .set((terms::valid_from.eq(*from), terms::valid_until.eq(*until)))
            .execute(conn)?;
    }
    let term = cards::term_from_plan(
        &card.iccid,
        &plan,
        Some(order.id.clone()),
        plan_of_renewal.effective_from,
        now,
    );
    card_store::insert_term(conn, &term)?;
    diesel::update(activations::table.find(&order.id))
        .set((
            activations::term_id.eq(&term.id),
            activations::effective_from.eq(term.valid_from),
            activations::valid_until.eq(term.valid_until),
            activations::previous_valid_until.eq(plan_of_renewal.previous_valid_until),
            activations::confirmed_at.eq(now),
        ))
        .execute(conn)?;
    orders::transition(conn, &order, OrderEvent::ActivationConfirmed)?;
    find(conn, &order.id)?.ok_or_else(|| ApiError::internal("activation vanished"))
}

/// Withdraws a pending activation (its order was cancelled): its code no longer installs
/// anything this partner paid for.
pub fn withdraw(conn: &mut DbConnection, order_id: &str, reason: &str) -> QueryResult<()> {
    let now = time::to_db(time::now());
    diesel::update(
        activations::table
            .find(order_id)
            .filter(activations::status.eq("pending")),
    )
    .set((
        activations::status.eq("failed"),
        activations::failure_reason.eq(reason),
        activations::updated_at.eq(now),
    ))
    .execute(conn)
    .map(drop)
}

/// The network reports the renewal could not be applied: the order fails and a wallet
/// payment is refunded, once, in the same transaction.
pub fn fail(
    conn: &mut DbConnection,
    order_id: &str,
    failure: &Failure,
) -> Result<ActivationRow, ApiError> {
    let reason = failure.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return Err(ApiError::validation(vec![FieldError::new(
            "reason",
            format!("must be 1 to {MAX_REASON} characters"),
        )]));
    }
    let order = load_order(conn, &Caller::Network, order_id)?;
    find(conn, &order.id)?.ok_or_else(|| not_paid(&order))?;
    let now = time::to_db(time::now());
    let claimed = diesel::update(
        activations::table
            .find(&order.id)
            .filter(activations::status.eq("pending")),
    )
    .set((
        activations::status.eq("failed"),
        activations::failure_reason.eq(reason),
        activations::updated_at.eq(now),
    ))
    .execute(conn)?;
    if claimed == 0 {
        return Err(ApiError::new(
            ErrorCode::InvalidStateTransition,
            "the activation is no longer pending; it cannot fail now",
        ));
    }
    let failed = orders::transition(conn, &order, OrderEvent::ActivationFailed)?;
    orders::refund_to_wallet(conn, &failed)?;
    find(conn, &order.id)?.ok_or_else(|| ApiError::internal("activation vanished"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_ids_are_20_upper_case_alphanumerics_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_matching_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 20);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
                "{id}"
            );
        }
    }
}
