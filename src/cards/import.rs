//! `simrenew cards import`: registers cards from a CSV file of any size, streamed in
//! batches, so memory stays bounded by one batch whatever the file holds.
//!
//! Unlike `POST /v1/admin/cards` (all or nothing), a bad row does not stop the import:
//! it is refused, with its line number and why, and the other rows go in. Each batch is
//! one transaction. A row whose ICCID the same partner already holds is counted as
//! already registered, so an import that was interrupted can simply be run again.

use std::collections::HashMap;
use std::io::Read;

use chrono::NaiveDateTime;

use super::model::{CardRow, NewCard};
use super::{store, validate_card};
use crate::db::Db;
use crate::domain::time;
use crate::error::{ApiError, FieldError};
use crate::partners::store as partner_store;

/// Rows per transaction: large enough that a batch costs few round trips, small enough
/// that its bind parameters (10 per row) stay under every backend's limit.
pub const BATCH_ROWS: usize = 1_000;

/// A row that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The line in the file (the header is line 1).
    pub line: u64,
    pub reason: String,
}

/// Where an import stands, after each batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Data rows read so far.
    pub rows: u64,
    pub imported: u64,
    /// Rows whose card this partner already held before the import.
    pub already_registered: u64,
    pub refused: u64,
    /// Bytes of the file read so far (for progress against the file's size).
    #[serde(skip)]
    pub bytes: u64,
}

/// What the import tells its caller as it goes.
pub trait ImportObserver {
    fn refused(&mut self, refusal: &Refusal);
    fn progressed(&mut self, tally: &Tally);
}

/// Imports every row of `csv` (header `iccid,card_type,msisdn,eid`) for `partner_id`.
/// Fails, with the rows of the batches before it kept, only when the database does; a
/// bad row is refused and reported to `observer`.
pub async fn import_csv<R: Read>(
    db: &Db,
    partner_id: uuid::Uuid,
    csv: R,
    observer: &mut dyn ImportObserver,
) -> Result<Tally, ApiError> {
    let partner = partner_id.to_string();
    let known = {
        let partner = partner.clone();
        db.run(move |conn| Ok::<_, ApiError>(partner_store::find_partner(conn, &partner)?))
            .await?
    };
    if known.is_none() {
        return Err(ApiError::validation(vec![FieldError::new(
            "partner",
            "no such partner",
        )]));
    }
    // Every row of this run carries this instant: a row found registered to this partner
    // at exactly this instant was written by an earlier line of the same file.
    let started_at = time::to_db(time::now());
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(csv);
    let mut tally = Tally::default();
    let mut batch = Batch::default();
    let mut record = csv::StringRecord::new();
    let headers = reader
        .headers()
        .map_err(|e| ApiError::bad_request(format!("line 1: {e}")))?
        .clone();
    for required in ["iccid", "card_type"] {
        if !headers.iter().any(|name| name == required) {
            return Err(ApiError::bad_request(format!(
                "line 1: the header must name the columns iccid,card_type,msisdn,eid \
                 (no `{required}`)"
            )));
        }
    }
    loop {
        let more = match reader.read_record(&mut record) {
            Ok(more) => more,
            Err(e) if e.is_io_error() => {
                return Err(ApiError::bad_request(format!(
                    "the file cannot be read: {e}"
                )))
            }
            // An unreadable row (bad UTF-8, wrong field count) is refused; the reader
            // goes on at the next line.
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                tally.rows = tally.rows.saturating_add(1);
                refuse(&mut tally, observer, line, e.to_string());
                continue;
            }
        };
        if more {
            tally.rows = tally.rows.saturating_add(1);
            let line = record.position().map_or(0, |p| p.line());
            match record.deserialize::<NewCard>(Some(&headers)) {
                Ok(card) => match validate_card(&card, "", &partner, started_at) {
                    Ok(row) => batch.add(line, row, &mut tally, observer),
                    Err(errors) => refuse(&mut tally, observer, line, describe(&errors)),
                },
                Err(e) => refuse(&mut tally, observer, line, without_position(&e)),
            }
        }
        if batch.rows.len() >= BATCH_ROWS || (!more && !batch.rows.is_empty()) {
            let full = std::mem::take(&mut batch);
            store_batch(db, &partner, started_at, full, &mut tally, observer).await?;
        }
        tally.bytes = reader.position().byte();
        if !more {
            observer.progressed(&tally);
            return Ok(tally);
        }
        if tally.rows % BATCH_ROWS as u64 == 0 {
            observer.progressed(&tally);
        }
    }
}

/// The rows waiting for the next transaction, with their line numbers.
#[derive(Default)]
struct Batch {
    rows: Vec<CardRow>,
    lines: Vec<u64>,
    /// ICCID → its line, within this batch.
    seen: HashMap<String, u64>,
}

impl Batch {
    fn add(
        &mut self,
        line: u64,
        row: CardRow,
        tally: &mut Tally,
        observer: &mut dyn ImportObserver,
    ) {
        if let Some(first) = self.seen.get(&row.iccid) {
            let reason = format!(
                "iccid: {} appears earlier in the file (line {first})",
                row.iccid
            );
            refuse(tally, observer, line, reason);
            return;
        }
        self.seen.insert(row.iccid.clone(), line);
        self.rows.push(row);
        self.lines.push(line);
    }
}

/// Inserts the rows of `batch` that no one holds yet, in one transaction.
async fn store_batch(
    db: &Db,
    partner: &str,
    started_at: NaiveDateTime,
    batch: Batch,
    tally: &mut Tally,
    observer: &mut dyn ImportObserver,
) -> Result<(), ApiError> {
    let partner = partner.to_owned();
    let (verdicts, inserted) = db
        .transaction(move |conn| {
            let iccids: Vec<String> = batch.rows.iter().map(|r| r.iccid.clone()).collect();
            let owners: HashMap<String, (String, NaiveDateTime)> = store::owners(conn, &iccids)?
                .into_iter()
                .map(|(iccid, owner, since)| (iccid, (owner, since)))
                .collect();
            let mut fresh = Vec::with_capacity(batch.rows.len());
            let mut verdicts = Vec::new();
            for (row, line) in batch.rows.into_iter().zip(batch.lines) {
                match owners.get(&row.iccid) {
                    None => fresh.push(row),
                    Some((owner, since)) if *owner == partner && *since == started_at => verdicts
                        .push(Verdict::Refused(Refusal {
                            line,
                            reason: format!("iccid: {} appears earlier in the file", row.iccid),
                        })),
                    Some((owner, _)) if *owner == partner => verdicts.push(Verdict::AlreadyHeld),
                    Some(_) => verdicts.push(Verdict::Refused(Refusal {
                        line,
                        reason: format!("iccid: {} is registered to another partner", row.iccid),
                    })),
                }
            }
            let inserted = if fresh.is_empty() {
                0
            } else {
                store::insert_cards(conn, &fresh)?
            };
            Ok::<_, ApiError>((verdicts, inserted))
        })
        .await?;
    tally.imported = tally.imported.saturating_add(inserted as u64);
    for verdict in verdicts {
        match verdict {
            Verdict::AlreadyHeld => {
                tally.already_registered = tally.already_registered.saturating_add(1)
            }
            Verdict::Refused(refusal) => {
                tally.refused = tally.refused.saturating_add(1);
                observer.refused(&refusal);
            }
        }
    }
    Ok(())
}

enum Verdict {
    AlreadyHeld,
    Refused(Refusal),
}

fn refuse(tally: &mut Tally, observer: &mut dyn ImportObserver, line: u64, reason: String) {
    tally.refused = tally.refused.saturating_add(1);
    observer.refused(&Refusal { line, reason });
}

/// `iccid: …; eid: …` for one row's errors.
fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The csv crate's message without its own position (the line is reported beside it).
fn without_position(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => match err.field() {
            Some(field) => format!("field {}: {}", field + 1, err.kind()),
            None => err.kind().to_string(),
        },
        _ => e.to_string(),
    }
}
