//! Usage reported by the network, applied to the term that was current when it happened,
//! exactly once per record id, each record wholly or not at all.

pub mod routes;
pub mod store;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{Db, DbConnection};
use crate::domain::{time, Iccid};
use crate::error::{ApiError, FieldError, TxError};
use crate::notifications;

pub const MAX_BATCH: usize = 1000;
const MAX_RECORD_ID: usize = 128;
/// A petabyte: far beyond one record, far below the counters' range.
const MAX_QUANTITY: i64 = 1_000_000_000_000_000;

crate::db::stored_enum! {
    /// What a usage record counts.
    #[derive(ToSchema)]
    pub enum UsageKind {
        /// `quantity` in bytes.
        Data = "data",
        /// `quantity` in seconds; counted in whole minutes, rounded up per record.
        Voice = "voice",
        /// `quantity` in messages.
        Sms = "sms",
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageRecord {
    /// The network's id for this record; a record id is applied once, ever.
    #[schema(example = "cdr-2026-11-25-000042", min_length = 1, max_length = 128)]
    pub id: String,
    /// 18–20 digits ending in a Luhn check digit.
    #[schema(value_type = crate::domain::Iccid)]
    pub iccid: String,
    pub kind: UsageKind,
    /// Bytes, seconds or messages.
    #[schema(example = 1_048_576, minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    #[serde(deserialize_with = "crate::domain::integral::integer")]
    pub quantity: i64,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageBatch {
    /// 1 to 1000 records.
    #[schema(min_items = 1, max_items = 1000)]
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

/// One record in its own transaction: the usage row and the term's counter together.
fn apply(
    conn: &mut DbConnection,
    record: &UsageRecord,
    received_at: NaiveDateTime,
) -> Result<Applied, TxError> {
    if store::is_recorded(conn, &record.id)? {
        return Ok(Applied::Duplicate);
    }
    let Some(partner_id) = store::card_owner(conn, &record.iccid)? else {
        return Ok(Applied::Rejected("unknown ICCID".into()));
    };
    let at = time::to_db(record.occurred_at);
    let Some(term_id) = store::term_at(conn, &record.iccid, at)? else {
        return Ok(Applied::Rejected(
            "no term of this card was current at occurred_at".into(),
        ));
    };
    let amount = charged(record.kind, record.quantity);
    store::insert(
        conn,
        &store::NewUsage {
            id: &record.id,
            iccid: &record.iccid,
            term_id: &term_id,
            kind: record.kind,
            quantity: record.quantity,
            charged: amount,
            occurred_at: at,
            received_at,
        },
    )?;
    if !store::add_to_counter(conn, &record.iccid, &term_id, record.kind, amount)? {
        return Ok(Applied::Rejected(
            "the term's usage counter cannot hold this much more".into(),
        ));
    }
    if record.kind == UsageKind::Data {
        notifications::data_used(
            conn,
            &partner_id,
            &record.iccid,
            &term_id,
            amount,
            received_at,
        )?;
    }
    Ok(Applied::Accepted)
}

impl UsageBatch {
    /// The batch's shape: 1 to `MAX_BATCH` records, each with a valid ICCID, an id of
    /// 1 to `MAX_RECORD_ID` characters, a quantity in range and an `occurred_at` in the
    /// accepted range (`422` naming each `records[i].<field>` otherwise; nothing of the
    /// batch is applied).
    pub fn check(&self) -> Result<(), ApiError> {
        if self.records.is_empty() || self.records.len() > MAX_BATCH {
            return Err(ApiError::validation(vec![FieldError::new(
                "records",
                format!("send 1 to {MAX_BATCH} records"),
            )]));
        }
        let errors: Vec<FieldError> = self
            .records
            .iter()
            .enumerate()
            .flat_map(|(i, record)| {
                let iccid = record
                    .iccid
                    .parse::<Iccid>()
                    .err()
                    .map(|e| FieldError::new(format!("records[{i}].iccid"), e));
                let occurred_at = time::check_accepted(record.occurred_at)
                    .err()
                    .map(|e| FieldError::new(format!("records[{i}].occurred_at"), e));
                let id_length = record.id.chars().count();
                let id = (id_length == 0 || id_length > MAX_RECORD_ID).then(|| {
                    FieldError::new(
                        format!("records[{i}].id"),
                        format!("must be 1 to {MAX_RECORD_ID} characters"),
                    )
                });
                let quantity = (!(1..=MAX_QUANTITY).contains(&record.quantity)).then(|| {
                    FieldError::new(
                        format!("records[{i}].quantity"),
                        format!("must be 1 to {MAX_QUANTITY}"),
                    )
                });
                iccid
                    .into_iter()
                    .chain(occurred_at)
                    .chain(id)
                    .chain(quantity)
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(errors))
        }
    }
}

/// Applies a batch record by record. Records are taken in id order so that concurrent
/// batches lock rows in the same order.
pub async fn apply_batch(
    db: &Db,
    batch: UsageBatch,
    received_at: NaiveDateTime,
) -> Result<UsageOutcome, ApiError> {
    batch.check()?;
    let mut records = batch.records;
    records.sort_by(|a, b| a.id.cmp(&b.id));
    let mut outcome = UsageOutcome::default();
    for record in records {
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
