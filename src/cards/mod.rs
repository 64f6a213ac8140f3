//! Cards, their service terms, and what is left on them.

pub mod cache;
pub mod import;
pub mod model;
pub mod routes;
pub mod store;
pub mod terms;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDateTime;

use crate::catalog::model::PlanRow;
use crate::catalog::store as catalog_store;
use crate::db::{stored_uuid, Db, DbConnection};
use crate::domain::{time, CardType, Eid, Iccid, Msisdn};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::pagination::PageRequest;
use crate::partners::store as partner_store;
use cache::CardCache;
use model::{
    Balance, Card, CardFilter, CardQuery, CardRow, CurrentTermBalance, DataBalance, NewCard,
    SmsBalance, TermGrant, TermSummary, VoiceBalance,
};
use terms::{remaining, CardStatus, TermRow};

/// Largest batch `POST /v1/admin/cards` takes; the CLI takes files of any size.
pub const MAX_IMPORT_BATCH: usize = 500;

pub fn no_card(iccid: &str) -> ApiError {
    ApiError::not_found(format!("no card {iccid} is visible to this partner"))
}

/// The code of a term's plan (plans are never deleted, so a missing one is corrupt data).
fn plan_code_of(term: &TermRow, codes: &HashMap<String, String>) -> Result<String, ApiError> {
    codes
        .get(&term.plan_id)
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("term {} has no plan", term.id)))
}

fn summary(term: &TermRow, codes: &HashMap<String, String>) -> Result<TermSummary, ApiError> {
    Ok(TermSummary {
        term_id: stored_uuid(&term.id)?,
        plan_id: stored_uuid(&term.plan_id)?,
        plan_code: plan_code_of(term, codes)?,
        valid_from: time::from_db(term.valid_from),
        valid_until: time::from_db(term.valid_until),
    })
}

pub fn card_view(
    card: &CardRow,
    terms: &[TermRow],
    codes: &HashMap<String, String>,
    now: NaiveDateTime,
) -> Result<Card, ApiError> {
    Ok(Card {
        iccid: card.iccid.clone(),
        card_type: card.card_type,
        msisdn: card.msisdn.clone(),
        eid: card.eid.clone(),
        status: terms::status(card.suspended, terms, now),
        profile_state: card.profile_state,
        current_term: terms::term_at(terms, now)
            .map(|t| summary(t, codes))
            .transpose()?,
        created_at: time::from_db(card.created_at),
    })
}

pub fn balance_view(
    card: &CardRow,
    terms: &[TermRow],
    codes: &HashMap<String, String>,
    now: NaiveDateTime,
) -> Result<Balance, ApiError> {
    let current = terms::term_at(terms, now).map(|t| -> Result<_, ApiError> {
        Ok(CurrentTermBalance {
            term_id: stored_uuid(&t.id)?,
            plan_id: stored_uuid(&t.plan_id)?,
            plan_code: plan_code_of(t, codes)?,
            valid_from: time::from_db(t.valid_from),
            valid_until: time::from_db(t.valid_until),
            days_left: terms::days_left(t.valid_until, now),
            data: DataBalance {
                total_bytes: t.data_total_bytes,
                used_bytes: t.data_used_bytes,
                remaining_bytes: t
                    .data_total_bytes
                    .map(|total| remaining(total, t.data_used_bytes)),
            },
            voice: VoiceBalance {
                total_minutes: i64::from(t.voice_total_minutes),
                used_minutes: t.voice_used_minutes,
                remaining_minutes: remaining(
                    i64::from(t.voice_total_minutes),
                    t.voice_used_minutes,
                ),
            },
            sms: SmsBalance {
                total: i64::from(t.sms_total),
                used: t.sms_used,
                remaining: remaining(i64::from(t.sms_total), t.sms_used),
            },
        })
    });
    Ok(Balance {
        iccid: card.iccid.clone(),
        card_type: card.card_type,
        status: terms::status(card.suspended, terms, now),
        as_of: time::from_db(now),
        current: current.transpose()?,
        upcoming: terms::upcoming(terms, now)
            .into_iter()
            .map(|t| summary(t, codes))
            .collect::<Result<_, _>>()?,
    })
}

/// A card with everything its views need.
pub struct LoadedCard {
    pub card: CardRow,
    pub terms: Vec<TermRow>,
    /// plan id → plan code, for the terms' plans.
    pub plan_codes: HashMap<String, String>,
}

/// A partner's card with its terms and their plan codes; `404` when not theirs.
pub fn load_partner_card(
    conn: &mut DbConnection,
    partner_id: &str,
    iccid: &str,
) -> Result<LoadedCard, ApiError> {
    store::partner_card_with_terms(conn, partner_id, iccid)?.ok_or_else(|| no_card(iccid))
}

/// Any card with its terms and their plan codes (for the network and sweeps, which are
/// not a partner); `404` when there is none.
pub fn load_card(conn: &mut DbConnection, iccid: &str) -> Result<LoadedCard, ApiError> {
    let card = store::find_card(conn, iccid)?.ok_or_else(|| no_card(iccid))?;
    let terms = store::terms_of(conn, std::slice::from_ref(&card.iccid))?;
    let plan_codes = store::plan_codes(conn, &terms)?;
    Ok(LoadedCard {
        card,
        terms,
        plan_codes,
    })
}

/// A partner's card as [`load_partner_card`] reads it, from `cache` when it holds a
/// current copy (and kept there when read).
async fn load_partner_card_cached(
    db: &Db,
    cache: &CardCache,
    partner_id: String,
    iccid: String,
) -> Result<Arc<LoadedCard>, ApiError> {
    let held = cache.get(db.changes(), &partner_id, &iccid);
    db.metrics().card_read(held.is_some());
    if let Some(card) = held {
        return Ok(card);
    }
    // Taken before the read: a change committing during it retires the copy.
    let counter = db.changes().of(&iccid);
    let read_at = std::time::Instant::now();
    let loaded = db
        .run(move |conn| load_partner_card(conn, &partner_id, &iccid))
        .await
        .map(Arc::new)?;
    cache.keep(counter, read_at, loaded.clone());
    Ok(loaded)
}

pub async fn get_card(
    db: &Db,
    cache: &CardCache,
    partner_id: String,
    iccid: String,
    now: NaiveDateTime,
) -> Result<Card, ApiError> {
    let loaded = load_partner_card_cached(db, cache, partner_id, iccid).await?;
    card_view(&loaded.card, &loaded.terms, &loaded.plan_codes, now)
}

pub async fn get_balance(
    db: &Db,
    cache: &CardCache,
    partner_id: String,
    iccid: String,
    now: NaiveDateTime,
) -> Result<Balance, ApiError> {
    let loaded = load_partner_card_cached(db, cache, partner_id, iccid).await?;
    balance_view(&loaded.card, &loaded.terms, &loaded.plan_codes, now)
}

impl CardQuery {
    pub fn filter(&self) -> Result<CardFilter, ApiError> {
        let mut errors = Vec::new();
        let status = self.status.as_deref().and_then(|s| {
            CardStatus::parse(s).or_else(|| {
                errors.push(FieldError::new(
                    "status",
                    format!("`{s}` is not a status: use inactive, active, expired or suspended"),
                ));
                None
            })
        });
        let card_type = self.card_type.as_deref().and_then(|s| {
            s.parse::<CardType>()
                .map_err(|e| errors.push(FieldError::new("card_type", e)))
                .ok()
        });
        if self.expiring_within_days.is_some_and(|d| d > 3650) {
            errors.push(FieldError::new(
                "expiring_within_days",
                "must be between 0 and 3650",
            ));
        }
        if errors.is_empty() {
            Ok(CardFilter {
                status,
                card_type,
                expiring_within_days: self.expiring_within_days,
            })
        } else {
            Err(ApiError::validation(errors))
        }
    }
}

pub async fn list_cards(
    db: &Db,
    partner_id: String,
    filter: CardFilter,
    page: PageRequest,
    now: NaiveDateTime,
) -> Result<(Vec<Card>, Option<String>), ApiError> {
    db.run(move |conn| {
        let rows = store::list_partner_cards(conn, &partner_id, &filter, &page, now)?;
        let (rows, next) = page.finish(rows, |card| card.iccid.clone());
        let iccids: Vec<String> = rows.iter().map(|c| c.iccid.clone()).collect();
        let terms = store::terms_of(conn, &iccids)?;
        let codes = store::plan_codes(conn, &terms)?;
        let mut by_card: HashMap<&str, Vec<TermRow>> = HashMap::new();
        for term in &terms {
            by_card
                .entry(term.iccid.as_str())
                .or_default()
                .push(term.clone());
        }
        let cards = rows
            .iter()
            .map(|card| {
                card_view(
                    card,
                    by_card
                        .get(card.iccid.as_str())
                        .map(Vec::as_slice)
                        .unwrap_or(&[]),
                    &codes,
                    now,
                )
            })
            .collect::<Result<_, _>>()?;
        Ok((cards, next))
    })
    .await
}

/// Checks every card of a batch; every bad row is named (`cards[3].iccid`).
pub fn validate_cards(
    cards: &[NewCard],
    partner_id: &str,
    now: NaiveDateTime,
) -> Result<Vec<CardRow>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    if cards.is_empty() {
        errors.push(FieldError::new("cards", "must list at least one card"));
    }
    for (i, card) in cards.iter().enumerate() {
        let prefix = format!("cards[{i}].");
        if seen.contains(card.iccid.as_str()) {
            errors.push(FieldError::new(
                format!("{prefix}iccid"),
                "appears twice in this batch",
            ));
        }
        match validate_card(card, &prefix, partner_id, now) {
            Ok(row) => {
                seen.insert(row.iccid.clone());
                rows.push(row);
            }
            Err(mut bad) => errors.append(&mut bad),
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

/// Checks one card; its errors are named `{prefix}iccid`, `{prefix}eid`, ….
pub fn validate_card(
    card: &NewCard,
    prefix: &str,
    partner_id: &str,
    now: NaiveDateTime,
) -> Result<CardRow, Vec<FieldError>> {
    let mut errors = Vec::new();
    // Identifiers exactly as sent: the document's patterns allow no surrounding
    // whitespace and no empty string (`simrenew cards import` trims CSV cells and
    // reads an empty one as absent).
    let iccid = card.iccid.as_str();
    if let Err(e) = iccid.parse::<Iccid>() {
        errors.push(FieldError::new(format!("{prefix}iccid"), e));
    }
    let msisdn = card.msisdn.as_deref();
    if let Some(Err(e)) = msisdn.map(str::parse::<Msisdn>) {
        errors.push(FieldError::new(format!("{prefix}msisdn"), e));
    }
    let eid = card.eid.as_deref();
    match (card.card_type, eid) {
        (CardType::Fm, Some(_)) => errors.push(FieldError::new(
            format!("{prefix}eid"),
            "only eSIM cards have an EID",
        )),
        (CardType::Esim, Some(eid)) => {
            if let Err(e) = eid.parse::<Eid>() {
                errors.push(FieldError::new(format!("{prefix}eid"), e));
            }
        }
        _ => {}
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(CardRow {
        iccid: iccid.to_owned(),
        partner_id: partner_id.to_owned(),
        card_type: card.card_type,
        msisdn: msisdn.map(str::to_owned),
        eid: eid.map(str::to_owned),
        suspended: false,
        created_at: now,
        updated_at: now,
        profile_state: None,
        profile_state_at: None,
    })
}

/// Registers cards for a partner, all or none: bad rows are `422`, ICCIDs already
/// registered `409`, both listing every offending row.
pub async fn import_cards(
    db: &Db,
    partner_id: uuid::Uuid,
    cards: Vec<NewCard>,
) -> Result<usize, ApiError> {
    let now = time::to_db(time::now());
    let partner = partner_id.to_string();
    let rows = validate_cards(&cards, &partner, now).map_err(ApiError::validation)?;
    db.transaction(move |conn| {
        if partner_store::find_partner(conn, &partner)?.is_none() {
            return Err(ApiError::validation(vec![FieldError::new(
                "partner_id",
                "no such partner",
            )]));
        }
        let iccids: Vec<String> = rows.iter().map(|r| r.iccid.clone()).collect();
        let taken = store::existing_iccids(conn, &iccids)?;
        if !taken.is_empty() {
            let errors = rows
                .iter()
                .enumerate()
                .filter(|(_, row)| taken.binary_search(&row.iccid).is_ok())
                .map(|(i, row)| {
                    FieldError::new(
                        format!("cards[{i}].iccid"),
                        format!("{} is already registered", row.iccid),
                    )
                })
                .collect();
            return Err(ApiError::Problem {
                code: ErrorCode::Conflict,
                detail: format!("{} of these ICCIDs are already registered", taken.len()),
                errors,
                headers: Vec::new(),
                attempts_left: None,
            });
        }
        for row in &rows {
            store::insert_card(conn, row)?;
        }
        Ok(rows.len())
    })
    .await
}

/// A new term for `card` from `plan`, starting at `valid_from`: the plan's allowances
/// are copied, and it lasts `validity_days × 24 h` (UTC, no calendar arithmetic).
pub fn term_from_plan(
    iccid: &str,
    plan: &PlanRow,
    order_id: Option<String>,
    valid_from: NaiveDateTime,
    now: NaiveDateTime,
) -> TermRow {
    TermRow {
        id: uuid::Uuid::now_v7().to_string(),
        iccid: iccid.to_owned(),
        plan_id: plan.id.clone(),
        order_id,
        valid_from,
        valid_until: valid_from + terms::term_length(plan.validity_days),
        data_total_bytes: plan.data_bytes,
        voice_total_minutes: plan.voice_minutes,
        sms_total: plan.sms,
        data_used_bytes: 0,
        voice_used_minutes: 0,
        sms_used: 0,
        created_at: now,
    }
}

/// An operator grants a term without an order. It may not overlap another term.
pub async fn grant_term(
    db: &Db,
    iccid: String,
    grant: TermGrant,
    now: NaiveDateTime,
) -> Result<Balance, ApiError> {
    if let Some(at) = grant.valid_from {
        time::check_accepted(at)
            .map_err(|why| ApiError::validation(vec![FieldError::new("valid_from", why)]))?;
    }
    db.transaction(move |conn| {
        let card = store::find_card(conn, &iccid)?
            .ok_or_else(|| ApiError::not_found(format!("no card {iccid}")))?;
        let plan =
            catalog_store::find_by_id(conn, &grant.plan_id.to_string())?.ok_or_else(|| {
                ApiError::validation(vec![FieldError::new("plan_id", "no such plan")])
            })?;
        if !crate::catalog::on_sale_for(&plan, card.card_type) {
            return Err(ApiError::validation(vec![FieldError::new(
                "plan_id",
                format!("this plan is not on sale for {} cards", card.card_type),
            )]));
        }
        let existing = store::terms_of(conn, std::slice::from_ref(&card.iccid))?;
        let from = match grant.valid_from {
            Some(at) => time::to_db(at),
            None => terms::service_end(&existing, now).unwrap_or(now),
        };
        let term = term_from_plan(&card.iccid, &plan, None, from, now);
        if existing
            .iter()
            .any(|t| t.valid_from < term.valid_until && term.valid_from < t.valid_until)
        {
            return Err(ApiError::conflict(
                "the granted term would overlap another term of this card",
            ));
        }
        store::insert_term(conn, &term)?;
        let mut all = existing;
        all.push(term);
        let codes = store::plan_codes(conn, &all)?;
        balance_view(&card, &all, &codes, now)
    })
    .await
}

/// Suspends or resumes a card (`404` if there is none).
pub async fn set_suspended(
    db: &Db,
    iccid: String,
    suspended: bool,
    now: NaiveDateTime,
) -> Result<(), ApiError> {
    let key = iccid.clone();
    let found = db
        .transaction(move |conn| {
            store::set_suspended(conn, &key, suspended, now).map_err(ApiError::from)
        })
        .await?;
    if !found {
        return Err(ApiError::not_found(format!("no card {iccid}")));
    }
    Ok(())
}

/// Gives a card to another partner (`422` naming `partner_id` if there is no such
/// partner, `404` if there is no such card).
pub async fn move_card(
    db: &Db,
    iccid: String,
    partner_id: String,
    now: NaiveDateTime,
) -> Result<(), ApiError> {
    let key = iccid.clone();
    let found = db
        .transaction(move |conn| {
            if partner_store::find_partner(conn, &partner_id)?.is_none() {
                return Err(ApiError::validation(vec![FieldError::new(
                    "partner_id",
                    "no such partner",
                )]));
            }
            store::set_owner(conn, &key, &partner_id, now).map_err(ApiError::from)
        })
        .await?;
    if !found {
        return Err(ApiError::not_found(format!("no card {iccid}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_names_every_bad_row() {
        let now = time::to_db(time::now());
        let good = "89860012345678901238";
        assert!(good.parse::<Iccid>().is_ok(), "fixture ICCID is valid");
        let cards = vec![
            NewCard {
                iccid: good.into(),
                card_type: CardType::Fm,
                msisdn: Some("+8613800138000".into()),
                eid: None,
            },
            NewCard {
                iccid: "123".into(),
                card_type: CardType::Esim,
                msisdn: Some("13800138000".into()),
                eid: None,
            },
            NewCard {
                iccid: good.into(),
                card_type: CardType::Fm,
                msisdn: None,
                eid: Some("1".into()),
            },
        ];
        let errors = validate_cards(&cards, "p", now).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "cards[1].iccid",
                "cards[1].msisdn",
                "cards[2].iccid",
                "cards[2].eid"
            ]
        );
    }
}
