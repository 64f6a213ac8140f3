//! Subscriber verification: a new eSIM activation code is withheld until the subscriber
//! confirms a 6-digit code sent by SMS to their number (when the partner wants it, the
//! default). Codes are kept only as keyed hashes, compared in constant time, and never
//! logged or put in an answer; each takes five tries and lives ten minutes; a number and
//! an order each get at most five codes an hour, one a minute.

pub mod routes;
pub mod sms;
pub mod store;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::activation::{self, store as activation_store, Activation, Caller};
use crate::db::Db;
use crate::domain::{time, Msisdn};
use crate::error::{ApiError, ErrorCode, FieldError};
use sms::{Sms, SmsError};
use store::{CodeRow, CodeStatus};

/// How long a code is good for.
pub const CODE_TTL: TimeDelta = TimeDelta::minutes(10);
/// How soon another code may be sent for the same order.
pub const RESEND_AFTER: TimeDelta = TimeDelta::seconds(60);
/// Codes per hour, per number and per order.
pub const MAX_SENDS_PER_HOUR: usize = 5;
/// Tries per code.
pub const MAX_CHECKS: i32 = 5;

/// The key of the codes' keyed hashes.
#[derive(Clone)]
pub struct VerificationKey(Vec<u8>);

impl VerificationKey {
    /// The configured key, or one made now for this process.
    pub fn new(configured: Option<Vec<u8>>) -> Self {
        Self(configured.unwrap_or_else(|| {
            tracing::warn!(
                "SIMRENEW_VERIFICATION_KEY is not set: verification codes check only on the instance that sent them"
            );
            let mut key = vec![0_u8; 32];
            OsRng.fill(key.as_mut_slice());
            key
        }))
    }

    fn hash(&self, order_id: &str, msisdn: &str, code: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(format!("{order_id}\n{msisdn}\n{code}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// What verification needs: the SMS routes and the key.
pub struct Verification {
    pub sms: Sms,
    pub key: VerificationKey,
}

/// `POST /v1/orders/{id}/activation/verification`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// The subscriber's number, E.164 (`+8613800138000`).
    #[schema(value_type = crate::domain::Msisdn)]
    pub msisdn: String,
}

/// `POST /v1/orders/{id}/activation/verification/check`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeCheck {
    /// The 6 digits the subscriber received.
    #[schema(pattern = r"^[0-9]{6}$", example = "482913")]
    pub code: String,
}

/// A code is on its way.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CodeSent {
    /// The code works until then (10 minutes).
    pub expires_at: DateTime<Utc>,
    /// No new code for this order before then (60 seconds).
    pub resend_after: DateTime<Utc>,
}

/// Whether new eSIM activation codes wait for the subscriber's SMS verification.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationSettings {
    pub verify_subscriber_before_release: bool,
}

fn new_code() -> String {
    format!("{:06}", OsRng.gen_range(0..1_000_000))
}

/// `429 verification_rate_limited` with when to come back.
fn rate_limited(why: &str, retry_at: NaiveDateTime, now: NaiveDateTime) -> ApiError {
    let seconds = (retry_at - now).num_seconds().max(1);
    ApiError::new(ErrorCode::VerificationRateLimited, why.to_owned()).with_header(
        actix_web::http::header::RETRY_AFTER,
        actix_web::http::header::HeaderValue::from(seconds),
    )
}

/// When a sixth send in the hour would be allowed, if five were made since `hour_ago`.
fn window_full(sends: &[NaiveDateTime]) -> Option<NaiveDateTime> {
    (sends.len() >= MAX_SENDS_PER_HOUR)
        .then(|| sends.first().map(|first| *first + TimeDelta::hours(1)))
        .flatten()
}

fn no_verification_due() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidStateTransition,
        "this activation needs no verification now (none is required, it is done, or the activation is no longer pending)",
    )
}

/// Sends a new code to `msisdn` for the order's activation.
pub async fn send_code(
    db: &Db,
    verification: &Verification,
    now: NaiveDateTime,
    partner_id: String,
    order_id: String,
    request: CodeRequest,
) -> Result<CodeSent, ApiError> {
    // Exactly as sent: the document's pattern allows no surrounding whitespace.
    let msisdn = request
        .msisdn
        .parse::<Msisdn>()
        .map_err(|e| ApiError::validation(vec![FieldError::new("msisdn", e)]))?
        .to_string();
    let provider = verification.sms.provider_for(&msisdn).ok_or_else(|| {
        ApiError::new(
            ErrorCode::SmsProviderUnavailable,
            "no SMS provider is configured for this number",
        )
    })?;
    let code = new_code();
    let row = CodeRow {
        id: uuid::Uuid::now_v7().to_string(),
        code_hash: verification.key.hash(&order_id, &msisdn, &code),
        order_id,
        msisdn,
        provider: provider.as_str().to_owned(),
        provider_message_id: None,
        status: CodeStatus::Sending,
        checks: 0,
        sent_at: now,
        expires_at: now + CODE_TTL,
    };
    let caller = Caller::Partner(partner_id);
    let row = db
        .transaction(move |conn| {
            let current = activation::get(conn, &caller, &row.order_id)?;
            if !current.verification_due() {
                return Err(no_verification_due());
            }
            activation_store::lock(conn, &row.order_id, now)?;
            store::lock_number(conn, &row.msisdn)?;
            let hour_ago = now - TimeDelta::hours(1);
            let for_order = store::sends_for_order(conn, &row.order_id, hour_ago)?;
            if let Some(last) = for_order.last().filter(|last| **last + RESEND_AFTER > now) {
                return Err(rate_limited(
                    "a code was sent for this order less than a minute ago",
                    *last + RESEND_AFTER,
                    now,
                ));
            }
            if let Some(retry_at) = window_full(&for_order) {
                return Err(rate_limited(
                    "five codes were sent for this order in the last hour",
                    retry_at,
                    now,
                ));
            }
            let to_number = store::sends_to_number(conn, &row.msisdn, hour_ago)?;
            if let Some(retry_at) = window_full(&to_number) {
                return Err(rate_limited(
                    "five codes were sent to this number in the last hour",
                    retry_at,
                    now,
                ));
            }
            store::insert(conn, &row)?;
            Ok(row)
        })
        .await?;
    let sent = verification
        .sms
        .send(provider, &row.msisdn, &code, &row.id, time::from_db(now))
        .await;
    // A refusal is final; an outage or timeout may still have delivered the message, so
    // its code stays checkable (and counted).
    let (status, message_id, failure) = match sent {
        Ok(message_id) => (CodeStatus::Sent, message_id, None),
        Err(e @ SmsError::Rejected(_)) => (CodeStatus::SendFailed, None, Some(e)),
        Err(e @ SmsError::Unavailable(_)) => (CodeStatus::Sending, None, Some(e)),
    };
    let id = row.id.clone();
    db.transaction(move |conn| {
        store::record_send(conn, &id, status, message_id.as_deref()).map_err(ApiError::from)
    })
    .await?;
    match failure {
        None => {
            tracing::info!(order_id = %row.order_id, provider = provider.as_str(), "verification code sent");
            Ok(CodeSent {
                expires_at: time::from_db(row.expires_at),
                resend_after: time::from_db(now + RESEND_AFTER),
            })
        }
        Some(SmsError::Unavailable(why)) => {
            tracing::warn!(order_id = %row.order_id, error = %why, "verification SMS not sent");
            Err(ApiError::new(
                ErrorCode::SmsProviderUnavailable,
                "the SMS provider could not be reached; ask for a new code in a minute",
            ))
        }
        Some(SmsError::Rejected(why)) => {
            tracing::warn!(order_id = %row.order_id, error = %why, "verification SMS refused");
            Err(ApiError::new(
                ErrorCode::SmsProviderRejected,
                format!("the SMS provider refused the message: {why}"),
            ))
        }
    }
}

/// What a check came to (decided and recorded in one transaction, answered after it).
enum Checked {
    Verified(Box<Activation>),
    Wrong { attempts_left: u32 },
    Expired,
    Locked,
}

/// Checks the subscriber's code against the order's latest one; right, the activation
/// code is released and the activation answered.
pub async fn check_code(
    db: &Db,
    verification: &Verification,
    now: NaiveDateTime,
    partner_id: String,
    order_id: String,
    check: CodeCheck,
) -> Result<Activation, ApiError> {
    let well_formed = check.code.len() == 6 && check.code.bytes().all(|b| b.is_ascii_digit());
    if !well_formed {
        return Err(ApiError::validation(vec![FieldError::new(
            "code",
            "must be the 6 digits sent by SMS",
        )]));
    }
    let caller = Caller::Partner(partner_id);
    let key = verification.key.clone();
    let checked = db
        .transaction(move |conn| {
            let current = activation::get(conn, &caller, &order_id)?;
            if !current.verification_due() {
                return Err(no_verification_due());
            }
            let Some(row) = store::latest_for_order(conn, &order_id)? else {
                return Err(ApiError::new(
                    ErrorCode::InvalidStateTransition,
                    "no code was sent for this order: POST /v1/orders/{id}/activation/verification first",
                ));
            };
            if row.expires_at <= now {
                return Ok(Checked::Expired);
            }
            if !store::reserve_check(conn, &row.id, MAX_CHECKS)? {
                return Ok(Checked::Locked);
            }
            let presented = key.hash(&row.order_id, &row.msisdn, &check.code);
            let matches: bool = presented.as_bytes().ct_eq(row.code_hash.as_bytes()).into();
            if !matches {
                let used = row.checks.saturating_add(1);
                return Ok(Checked::Wrong {
                    attempts_left: u32::try_from(MAX_CHECKS - used).unwrap_or(0),
                });
            }
            store::mark_verified(conn, &row.id)?;
            activation_store::record_verification(conn, &order_id, &row.msisdn, now)?;
            let released = activation_store::find(conn, &order_id)?
                .ok_or_else(|| ApiError::internal("activation vanished"))?;
            Ok(Checked::Verified(Box::new(activation::view(conn, &released)?)))
        })
        .await?;
    match checked {
        Checked::Verified(shown) => Ok(*shown),
        Checked::Wrong { attempts_left } => Err(ApiError::new(
            ErrorCode::VerificationCodeInvalid,
            if attempts_left == 0 {
                "the code is wrong, and this code is now locked: send a new one".to_owned()
            } else {
                format!("the code is wrong; {attempts_left} more tries on this code")
            },
        )
        .with_attempts_left(attempts_left)),
        Checked::Expired => Err(ApiError::new(
            ErrorCode::VerificationCodeExpired,
            "the code expired: send a new one",
        )),
        Checked::Locked => Err(ApiError::new(
            ErrorCode::VerificationCodeLocked,
            "five wrong tries locked this code: send a new one",
        )
        .with_attempts_left(0)),
    }
}

/// Whether a partner's new eSIM codes wait for verification (`404` for no partner).
pub async fn settings_of(db: &Db, partner_id: String) -> Result<VerificationSettings, ApiError> {
    db.run(move |conn| {
        let partner = crate::partners::store::find_partner(conn, &partner_id)?
            .ok_or_else(|| ApiError::not_found(format!("no partner {partner_id}")))?;
        Ok(VerificationSettings {
            verify_subscriber_before_release: partner.verify_subscriber_before_release,
        })
    })
    .await
}

/// Sets it; applies to activations made from now on.
pub async fn set_settings(
    db: &Db,
    partner_id: String,
    settings: VerificationSettings,
    now: NaiveDateTime,
) -> Result<VerificationSettings, ApiError> {
    let id = partner_id.clone();
    let found = db
        .transaction(move |conn| {
            crate::partners::store::set_verification(
                conn,
                &id,
                settings.verify_subscriber_before_release,
                now,
            )
            .map_err(ApiError::from)
        })
        .await?;
    if !found {
        return Err(ApiError::not_found(format!("no partner {partner_id}")));
    }
    settings_of(db, partner_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_hashes_depend_on_everything() {
        for _ in 0..200 {
            let code = new_code();
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
        let key = VerificationKey::new(Some(vec![7; 32]));
        let base = key.hash("o", "+861", "123456");
        assert_ne!(base, key.hash("o", "+861", "123457"));
        assert_ne!(base, key.hash("p", "+861", "123456"));
        assert_ne!(base, key.hash("o", "+862", "123456"));
        assert_ne!(
            base,
            VerificationKey::new(Some(vec![8; 32])).hash("o", "+861", "123456")
        );
        assert!(!base.contains("123456"));
    }

    #[test]
    fn the_hour_window_opens_an_hour_after_its_first_send() {
        let t = |m: i64| crate::cards::terms::tests::at(1, 0) + TimeDelta::minutes(m);
        assert_eq!(window_full(&[t(0), t(5), t(10), t(15)]), None);
        assert_eq!(window_full(&[t(0), t(5), t(10), t(15), t(20)]), Some(t(60)));
    }
}
