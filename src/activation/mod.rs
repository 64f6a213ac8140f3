//! Activation: how a paid renewal reaches the card and when it took effect. An eSIM gets
//! an SGP.22 activation code (and its QR); an FM card gets its term over the air.
//! Confirmation creates the term, in the same transaction as the state changes.

pub mod instructions;
pub mod profile;
pub mod qr;
pub mod renewal;
pub mod routes;
pub mod store;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use rand::rngs::OsRng;
use rand::Rng;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::schema::activations;
use crate::db::{stored_uuid, DbConnection};
use crate::domain::{time, CardType, Eid, ProfileState};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::orders::model::OrderRow;
use crate::orders::{self, store as order_store};
use profile::{ProfileEvent, ProfileEventRow};

const MATCHING_ID_LEN: usize = 20;
const MATCHING_ID_ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const APPLE_INSTALL_BASE: &str = "https://esimsetup.apple.com/esim_qrcode_provisioning?carddata=";
const MAX_REASON: usize = 500;

crate::db::stored_enum! {
    /// How the renewal reaches the card.
    #[derive(ToSchema)]
    pub enum ActivationMode {
        /// An eSIM profile, downloaded with the activation code.
        EsimProfile = "esim_profile",
        /// An FM card's term, delivered over the air: no code to scan.
        Ota = "ota",
        /// An eSIM whose profile is installed, renewed by the network on that profile:
        /// no new code, confirmed like an over-the-air renewal.
        InPlace = "in_place",
    }
}

crate::db::stored_enum! {
    /// Whether the renewal took effect.
    #[derive(ToSchema)]
    pub enum ActivationStatus {
        Pending = "pending",
        Confirmed = "confirmed",
        Failed = "failed",
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
// None is written as NULL, not DEFAULT (the same for every nullable column here), so
// the INSERT's text never changes and PostgreSQL prepares it once per connection.
#[diesel(table_name = activations, treat_none_as_default_value = false)]
pub struct ActivationRow {
    pub order_id: String,
    pub iccid: String,
    pub card_type: CardType,
    pub mode: ActivationMode,
    pub status: ActivationStatus,
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
    /// The code is withheld until the subscriber confirms an SMS code.
    pub verification_required: bool,
    pub verified_at: Option<NaiveDateTime>,
    pub verified_msisdn: Option<String>,
}

impl ActivationRow {
    /// Its code is withheld: verification is required and has not happened (whatever
    /// became of the activation since: a failed one never shows its code either).
    pub fn awaits_verification(&self) -> bool {
        self.verification_required && self.verified_at.is_none()
    }

    /// A verification can still happen: withheld, and still pending.
    pub fn verification_due(&self) -> bool {
        self.awaits_verification() && self.status == ActivationStatus::Pending
    }

    /// The activation code as it may be shown now: withheld while verification is due.
    pub fn released_code(&self) -> Option<String> {
        self.lpa_code().filter(|_| !self.awaits_verification())
    }

    /// `LPA:1$<SM-DP+ address>$<matching id>` (GSMA SGP.22 activation code).
    pub fn lpa_code(&self) -> Option<String> {
        match (&self.smdp_address, &self.matching_id) {
            (Some(address), Some(matching_id)) => Some(format!("LPA:1${address}${matching_id}")),
            _ => None,
        }
    }
}

/// Where an activation stands, as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActivationState {
    /// Waiting for the renewal to take effect (the code is shown, when there is one).
    Pending,
    /// The subscriber must confirm an SMS code first
    /// (`POST …/activation/verification`); no code, QR or link is shown until then.
    VerificationRequired,
    Confirmed,
    Failed,
}

/// How a renewal reaches the card and whether it took effect.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Activation {
    pub order_id: uuid::Uuid,
    #[schema(value_type = String)]
    pub iccid: String,
    pub card_type: CardType,
    pub mode: ActivationMode,
    pub status: ActivationState,
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
    /// eSIM: the profile's state as the SM-DP+ last reported it for this activation
    /// code (`null`: nothing reported yet, and always for FM cards).
    pub profile_state: Option<ProfileState>,
    /// eSIM: what the SM-DP+ reported for this activation code, in the order it
    /// happened (the latest 100).
    pub profile_history: Vec<ProfileEvent>,
    /// When the subscriber's SMS code was confirmed (`null`: not needed, or not yet).
    pub verified_at: Option<DateTime<Utc>>,
}

impl Activation {
    fn build(row: &ActivationRow, history: &[ProfileEventRow]) -> Result<Self, ApiError> {
        let code = row.released_code();
        let withheld = row.awaits_verification();
        let status = match row.status {
            ActivationStatus::Pending if withheld => ActivationState::VerificationRequired,
            ActivationStatus::Pending => ActivationState::Pending,
            ActivationStatus::Confirmed => ActivationState::Confirmed,
            ActivationStatus::Failed => ActivationState::Failed,
        };
        let qr = |ext: &str| {
            code.as_ref()
                .map(|_| format!("/v1/orders/{}/activation/qr.{ext}", row.order_id))
        };
        Ok(Self {
            order_id: stored_uuid(&row.order_id)?,
            iccid: row.iccid.clone(),
            card_type: row.card_type,
            mode: row.mode,
            status,
            apple_install_url: code.as_ref().map(|code| {
                format!(
                    "{APPLE_INSTALL_BASE}{}",
                    percent_encoding::utf8_percent_encode(code, percent_encoding::NON_ALPHANUMERIC)
                )
            }),
            qr_code_svg_url: qr("svg"),
            qr_code_png_url: qr("png"),
            lpa_activation_code: code,
            smdp_address: row.smdp_address.clone().filter(|_| !withheld),
            matching_id: row.matching_id.clone().filter(|_| !withheld),
            effective_from: row.effective_from.map(time::from_db),
            valid_until: row.valid_until.map(time::from_db),
            previous_valid_until: row.previous_valid_until.map(time::from_db),
            confirmed_at: row.confirmed_at.map(time::from_db),
            failure_reason: row.failure_reason.clone(),
            // The history names the matching id: withheld with the code.
            profile_state: history
                .last()
                .map(|event| event.state)
                .filter(|_| !withheld),
            profile_history: history
                .iter()
                .filter(|_| !withheld)
                .map(ProfileEvent::try_from)
                .collect::<Result<_, _>>()?,
            verified_at: row.verified_at.map(time::from_db),
        })
    }
}

/// The activation as the API shows it, with its profile history.
pub fn view(conn: &mut DbConnection, row: &ActivationRow) -> Result<Activation, ApiError> {
    let history = match row.mode {
        ActivationMode::EsimProfile => profile::history(conn, &row.order_id)?,
        ActivationMode::Ota | ActivationMode::InPlace => Vec::new(),
    };
    Activation::build(row, &history)
}

/// `POST /v1/orders/{id}/activation/confirm`: optionally the EID the profile went to.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    /// eSIM only: the device's EID (32 digits); recorded on the card, and refused if the
    /// card is known to have another.
    #[schema(value_type = Option<crate::domain::Eid>)]
    pub eid: Option<String>,
}

/// `POST /v1/orders/{id}/activation/fail`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    /// What went wrong, as the network reports it (1–500 characters).
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub reason: String,
}

/// A matching id: 20 symbols of A–Z and 0–9 from the OS's CSPRNG (≈103 bits).
pub fn new_matching_id() -> String {
    (0..MATCHING_ID_LEN)
        .map(|_| char::from(MATCHING_ID_ALPHABET[OsRng.gen_range(0..MATCHING_ID_ALPHABET.len())]))
        .collect()
}

impl Failure {
    /// The reason, trimmed, or a `422` naming `reason`.
    pub fn reason(&self) -> Result<&str, ApiError> {
        // Counted as sent (the document's `maxLength`); used without surrounding spaces.
        let too_long = self.reason.chars().count() > MAX_REASON;
        let reason = self.reason.trim();
        if reason.is_empty() || too_long {
            return Err(ApiError::validation(vec![FieldError::new(
                "reason",
                format!("must be 1 to {MAX_REASON} characters"),
            )]));
        }
        Ok(reason)
    }
}

impl Confirmation {
    /// The EID given, parsed (`422` naming `eid`), if any.
    pub fn eid(&self) -> Result<Option<Eid>, ApiError> {
        // Exactly as sent: the document's pattern allows no surrounding whitespace.
        self.eid
            .as_deref()
            .map(|text| {
                text.parse::<Eid>()
                    .map_err(|e| ApiError::validation(vec![FieldError::new("eid", e)]))
            })
            .transpose()
    }
}

/// The pending activation of an order whose renewal starts now: an eSIM with an
/// installed profile is renewed in place, another gets a fresh matching id at
/// `smdp_address` (withheld until the subscriber is verified, if `verify_subscriber`),
/// an FM card goes over the air.
pub fn new_pending(
    order_id: &str,
    iccid: &str,
    card_type: CardType,
    profile_installed: bool,
    verify_subscriber: bool,
    smdp_address: &str,
    now: NaiveDateTime,
) -> ActivationRow {
    let (mode, smdp, matching_id) = match card_type {
        CardType::Esim if profile_installed => (ActivationMode::InPlace, None, None),
        CardType::Esim => (
            ActivationMode::EsimProfile,
            Some(smdp_address.to_owned()),
            Some(new_matching_id()),
        ),
        CardType::Fm => (ActivationMode::Ota, None, None),
    };
    ActivationRow {
        order_id: order_id.to_owned(),
        iccid: iccid.to_owned(),
        card_type,
        mode,
        status: ActivationStatus::Pending,
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
        verification_required: verify_subscriber && mode == ActivationMode::EsimProfile,
        verified_at: None,
        verified_msisdn: None,
    }
}

/// Who is asking: a partner sees only its orders; the network sees all.
#[derive(Debug, Clone)]
pub enum Caller {
    Partner(String),
    Network,
}

/// The order an activation belongs to, as `caller` may see it (`404` otherwise).
pub fn load_order(
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

/// `409`: an order that is not paid, or not started, has no activation.
pub fn not_paid(order: &OrderRow) -> ApiError {
    let detail = match order.start_at {
        Some(start) if order.status == orders::state::OrderStatus::Paid => format!(
            "the order starts at {}; its activation is made then",
            time::from_db(start).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        _ => format!(
            "the order is {}; it has no activation until it is paid",
            order.status
        ),
    };
    ApiError::new(ErrorCode::InvalidStateTransition, detail)
}

/// `409 verification_required`: the code is withheld until the subscriber is verified.
pub fn awaiting_verification() -> ApiError {
    ApiError::new(
        ErrorCode::VerificationRequired,
        "the subscriber must confirm an SMS code first: POST /v1/orders/{id}/activation/verification",
    )
}

/// `409`: a failed activation stays failed.
pub fn already_failed() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidStateTransition,
        "the activation failed; it cannot be confirmed",
    )
}

/// The activation of an order `caller` may see.
pub fn get(
    conn: &mut DbConnection,
    caller: &Caller,
    order_id: &str,
) -> Result<ActivationRow, ApiError> {
    let order = load_order(conn, caller, order_id)?;
    store::find(conn, &order.id)?.ok_or_else(|| not_paid(&order))
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
