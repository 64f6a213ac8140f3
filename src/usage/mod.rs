//! Usage reported by the network, applied to the term that was current when it happened,
//! exactly once per record id, each record wholly or not at all.

pub mod routes;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::schema::{cards, terms, usage_records};
use crate::db::{Db, DbConnection};
use crate::domain::time;
use crate::error::{ApiError, TxError};

pub const MAX_BATCH: usize = 1000;
const MAX_RECORD_ID: usize = 128;
/// A petabyte: far beyond one record, far below the counters' range.
const MAX_QUANTITY: i64 = 1_000_000_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UsageKind {
    /// `quantity` in bytes.
    Data,
    /// `quantity` in seconds; counted in whole minutes, rounded up per record.
    Voice,
    /// `quantity` in messages.
    Sms,
}

impl UsageKind {
    fn as_str(self) -> &'static str {
        match self {
            UsageKind::Data => "data",
            UsageKind::Voice => "voice",
            UsageKind::Sms => "sms",
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageRecord {
    /// The network's id for this record; a record id is applied once, ever.
    #[schema(example = "cdr-2026-11-25-000042")]
    pub id: String,
    #[schema(example = "89860012345678901238")]
    pub iccid: String,
    pub kind: UsageKind,
    /// Bytes, seconds or messages; greater than 0.
    #[schema(example = 1_048_576)]
    pub quantity: i64,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageBatch {
    /// 1 to 1000 records.
    pub records: Vec<UsageRecord>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct RejectedRecord {
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct UsageOutcome {
    /// Records applied now.
    pub accepted: usize,
    /// Records whose id was applied before; not applied again.
    pub duplicates: usize,
    /// Records not applied, with why; they may be sent again once fixed.
    pub rejected: Vec<RejectedRecord>,
}

/// How much of the allowance a record uses: voice seconds become minutes rounded up
/// (61 s is 2 minutes), as carriers bill; data and SMS count as reported.
pub fn charged(kind: UsageKind, quantity: i64) -> i64 {
    match kind {
        UsageKind::Voice => quantity / 60 + i64::from(quantity % 60 != 0),
        UsageKind::Data | UsageKind::Sms => quantity,
    }
}

enum Applied {
    Accepted,
    Duplicate,
    Rejected(String),
}

fn check(record: &UsageRecord) -> Result<(), String> {
    if record.id.is_empty() || record.id.len() > MAX_RECORD_ID {
        return Err(format!("id must be 1 to {MAX_RECORD_ID} characters"));
    }
    if !(1..=MAX_QUANTITY).contains(&record.quantity) {
        return Err(format!("quantity must be 1 to {MAX_QUANTITY}"));
    }
    Ok(())
}

/// One record in its own transaction: the usage row and the term's counter together.
fn apply(
    conn: &mut DbConnection,
    record: &UsageRecord,
    received_at: NaiveDateTime,
) -> Result<Applied, TxError> {
    let seen = usage_records::table
        .find(&record.id)
        .count()
        .get_result::<i64>(conn)?;
    if seen > 0 {
        return Ok(Applied::Duplicate);
    }
    let card_exists = cards::table
        .find(&record.iccid)
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if !card_exists {
        return Ok(Applied::Rejected("unknown ICCID".into()));
    }
    let at = time::to_db(record.occurred_at);
    let term_id = terms::table
        .filter(terms::iccid.eq(&record.iccid))
        .filter(terms::valid_from.le(at))
        .filter(terms::valid_until.gt(at))
        .select(terms::id)
        .first::<String>(conn)
        .optional()?;
    let Some(term_id) = term_id else {
        return Ok(Applied::Rejected(
            "no term of this card was current at occurred_at".into(),
        ));
    };
    let amount = charged(record.kind, record.quantity);
    diesel::insert_into(usage_records::table)
        .values((
            usage_records::id.eq(&record.id),
            usage_records::iccid.eq(&record.iccid),
            usage_records::term_id.eq(&term_id),
            usage_records::kind.eq(record.kind.as_str()),
            usage_records::quantity.eq(record.quantity),
            usage_records::charged.eq(amount),
            usage_records::occurred_at.eq(at),
            usage_records::received_at.eq(received_at),
        ))
        .execute(conn)?;
    let term = terms::table.find(&term_id);
    match record.kind {
        UsageKind::Data => diesel::update(term)
            .set(terms::data_used_bytes.eq(terms::data_used_bytes + amount))
            .execute(conn)?,
        UsageKind::Voice => diesel::update(term)
            .set(terms::voice_used_minutes.eq(terms::voice_used_minutes + amount))
            .execute(conn)?,
        UsageKind::Sms => diesel::update(term)
            .set(terms::sms_used.eq(terms::sms_used + amount))
            .execute(conn)?,
    };
    Ok(Applied::Accepted)
}

/// Applies a batch record by record. Records are taken in id order so that concurrent
/// batches lock rows in the same order.
pub async fn apply_batch(
    db: &Db,
    batch: UsageBatch,
    received_at: NaiveDateTime,
) -> Result<UsageOutcome, ApiError> {
    let mut records = batch.records;
    records.sort_by(|a, b| a.id.cmp(&b.id));
    let mut outcome = UsageOutcome::default();
    for record in records {
        if let Err(reason) = check(&record) {
            outcome.rejected.push(RejectedRecord {
                id: record.id,
                reason,
            });
            continue;
        }
        let id = record.id.clone();
        let applied = db
            .transaction(move |conn| match apply(conn, &record, received_at)? {
                // A rejection writes nothing: roll back to be sure.
                Applied::Rejected(reason) => Err(TxError::Failed(ApiError::bad_request(reason))),
                other => Ok(other),
            })
            .await;
        match applied {
            Ok(Applied::Accepted) => outcome.accepted += 1,
            Ok(Applied::Duplicate) | Err(TxError::Conflict) => outcome.duplicates += 1,
            Ok(Applied::Rejected(reason)) => outcome.rejected.push(RejectedRecord { id, reason }),
            Err(TxError::Failed(ApiError::Problem { detail, .. })) => {
                outcome.rejected.push(RejectedRecord { id, reason: detail })
            }
            Err(TxError::Failed(other)) => return Err(other),
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_seconds_round_up_to_whole_minutes_per_record() {
        assert_eq!(charged(UsageKind::Voice, 1), 1);
        assert_eq!(charged(UsageKind::Voice, 60), 1);
        assert_eq!(charged(UsageKind::Voice, 61), 2);
        assert_eq!(charged(UsageKind::Voice, 3600), 60);
        assert_eq!(charged(UsageKind::Data, 1500), 1500);
        assert_eq!(charged(UsageKind::Sms, 3), 3);
    }
}
