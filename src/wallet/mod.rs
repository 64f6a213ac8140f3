//! Partner wallets: an append-only ledger per partner and currency, with a running
//! balance changed only in the same transaction as the entry that explains it.
//! A debit is a conditional update (`… WHERE available >= amount`), so no interleaving
//! of requests, on any number of instances, can take a wallet below zero.

pub mod routes;
pub mod store;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::schema::ledger_entries;
use crate::db::stored_uuid;
use crate::db::DbConnection;
use crate::domain::{time, Currency, MinorUnits, Money};
use crate::error::{ApiError, ErrorCode, FieldError};

/// Largest single credit, in minor units: a typo guard, not a business limit.
pub const MAX_CREDIT: MinorUnits = MinorUnits::new(1_000_000_000_000);

crate::db::stored_enum! {
    /// Why a wallet's balance moved.
    #[derive(ToSchema)]
    pub enum EntryKind {
        /// Money added by an operator.
        Credit = "credit",
        /// Money taken for an order.
        Debit = "debit",
        /// Money returned for a cancelled or failed order.
        Refund = "refund",
        /// An operator correction.
        Adjustment = "adjustment",
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
// None is written as NULL, not DEFAULT (the same for every nullable column here), so
// the INSERT's text never changes and PostgreSQL prepares it once per connection.
#[diesel(table_name = ledger_entries, treat_none_as_default_value = false)]
pub struct EntryRow {
    pub id: String,
    pub partner_id: String,
    pub currency: Currency,
    pub kind: EntryKind,
    pub amount: MinorUnits,
    pub balance_after: MinorUnits,
    pub order_id: Option<String>,
    pub reference: Option<String>,
    pub created_at: NaiveDateTime,
}

/// A ledger entry. The balance equals the sum of a wallet's entries.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LedgerEntry {
    pub id: uuid::Uuid,
    pub kind: EntryKind,
    #[schema(value_type = String, example = "CNY")]
    pub currency: Currency,
    /// Signed minor units: credits and refunds positive, debits negative.
    #[schema(value_type = i64)]
    pub amount: MinorUnits,
    #[schema(value_type = i64)]
    pub balance_after: MinorUnits,
    pub order_id: Option<uuid::Uuid>,
    pub reference: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<EntryRow> for LedgerEntry {
    type Error = ApiError;

    fn try_from(row: EntryRow) -> Result<Self, ApiError> {
        Ok(Self {
            id: stored_uuid(&row.id)?,
            kind: row.kind,
            currency: row.currency,
            amount: row.amount,
            balance_after: row.balance_after,
            order_id: row.order_id.as_deref().map(stored_uuid).transpose()?,
            reference: row.reference,
            created_at: time::from_db(row.created_at),
        })
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WalletBalance {
    #[schema(value_type = String, example = "CNY")]
    pub currency: Currency,
    /// Minor units available to spend.
    #[schema(value_type = i64)]
    pub available: MinorUnits,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Wallet {
    pub balances: Vec<WalletBalance>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerPage {
    /// Newest first.
    pub data: Vec<LedgerEntry>,
    pub next_cursor: Option<String>,
}

/// `POST /v1/admin/partners/{id}/wallet/credits`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCredit {
    #[schema(value_type = crate::domain::Currency)]
    pub currency: String,
    /// Minor units, greater than 0.
    #[schema(example = 100_000, minimum = 1, maximum = 1_000_000_000_000_i64)]
    #[serde(deserialize_with = "crate::domain::integral::integer")]
    pub amount: i64,
    /// Your reference for it (a bank transfer id, an invoice).
    #[schema(max_length = 200)]
    pub reference: Option<String>,
}

/// A credit whose every field parsed.
#[derive(Debug, Clone)]
pub struct ValidCredit {
    pub money: Money,
    pub reference: Option<String>,
}

impl NewCredit {
    pub fn validate(&self) -> Result<ValidCredit, ApiError> {
        let mut errors = Vec::new();
        let currency = self
            .currency
            .parse::<Currency>()
            .map_err(|e| errors.push(FieldError::new("currency", e.to_string())))
            .ok();
        if !(1..=MAX_CREDIT.get()).contains(&self.amount) {
            errors.push(FieldError::new(
                "amount",
                format!("must be 1 to {MAX_CREDIT} minor units"),
            ));
        }
        // Counted as sent (the document's `maxLength`); stored without surrounding spaces.
        let too_long = self
            .reference
            .as_deref()
            .is_some_and(|r| r.chars().count() > 200);
        let reference = self
            .reference
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        if too_long {
            errors.push(FieldError::new(
                "reference",
                "must be at most 200 characters",
            ));
        }
        match currency {
            Some(currency) if errors.is_empty() => Ok(ValidCredit {
                money: Money::new(MinorUnits::new(self.amount), currency),
                reference: reference.map(str::to_owned),
            }),
            _ => Err(ApiError::validation(errors)),
        }
    }
}

/// Credits a partner's wallet (the CLI's path; the HTTP route adds idempotency).
pub async fn credit(
    db: &crate::db::Db,
    partner_id: uuid::Uuid,
    credit: NewCredit,
    now: NaiveDateTime,
) -> Result<LedgerEntry, ApiError> {
    let valid = credit.validate()?;
    let partner_id = partner_id.to_string();
    db.transaction(move |conn| credit_in(conn, &partner_id, &valid, now))
        .await
}

/// Credits an existing partner's wallet inside the caller's transaction (`404` if there
/// is no such partner).
pub fn credit_in(
    conn: &mut DbConnection,
    partner_id: &str,
    credit: &ValidCredit,
    now: NaiveDateTime,
) -> Result<LedgerEntry, ApiError> {
    if crate::partners::store::find_partner(conn, partner_id)?.is_none() {
        return Err(ApiError::not_found(format!("no partner {partner_id}")));
    }
    let entry = add(
        conn,
        Movement {
            partner_id,
            money: credit.money,
            kind: EntryKind::Credit,
            order_id: None,
            reference: credit.reference.as_deref(),
        },
        now,
    )?;
    LedgerEntry::try_from(entry)
}

/// One addition to a wallet, as its ledger entry will record it.
#[derive(Debug, Clone, Copy)]
pub struct Movement<'a> {
    pub partner_id: &'a str,
    /// Positive: what is added.
    pub money: Money,
    pub kind: EntryKind,
    pub order_id: Option<&'a str>,
    pub reference: Option<&'a str>,
}

/// Writes the ledger entry of a change already applied to the balance.
/// Writes the ledger entry of a movement already applied to the balance, which is now
/// `balance_after`.
fn append(
    conn: &mut DbConnection,
    movement: &Movement,
    signed_amount: MinorUnits,
    balance_after: MinorUnits,
    now: NaiveDateTime,
) -> QueryResult<EntryRow> {
    let row = entry_row(movement, signed_amount, balance_after, now);
    store::insert_entry(conn, &row)?;
    Ok(row)
}

fn entry_row(
    movement: &Movement,
    signed_amount: MinorUnits,
    balance_after: MinorUnits,
    now: NaiveDateTime,
) -> EntryRow {
    EntryRow {
        id: uuid::Uuid::now_v7().to_string(),
        partner_id: movement.partner_id.to_owned(),
        currency: movement.money.currency,
        kind: movement.kind,
        amount: signed_amount,
        balance_after,
        order_id: movement.order_id.map(str::to_owned),
        reference: movement.reference.map(str::to_owned),
        created_at: now,
    }
}

/// Adds money (a credit, refund or positive adjustment). Call inside a transaction.
pub fn add(
    conn: &mut DbConnection,
    movement: Movement,
    now: NaiveDateTime,
) -> Result<EntryRow, ApiError> {
    if !movement.money.amount.is_positive() {
        return Err(ApiError::internal("a wallet addition must be positive"));
    }
    let currency = movement.money.currency;
    store::ensure_wallet(conn, movement.partner_id, currency, now)?;
    let balance = store::available(conn, movement.partner_id, currency)?;
    if balance.checked_add(movement.money.amount).is_none() {
        return Err(ApiError::validation(vec![FieldError::new(
            "amount",
            "the wallet's balance would exceed the largest amount it can hold",
        )]));
    }
    let balance_after = store::increase(conn, movement.partner_id, movement.money, now)?;
    Ok(append(
        conn,
        &movement,
        movement.money.amount,
        balance_after,
        now,
    )?)
}

/// The ledger entry of an order's debit of `price`, its balance to be filled in by the
/// debit itself.
pub fn debit_entry(
    partner_id: &str,
    price: Money,
    order_id: &str,
    now: NaiveDateTime,
) -> Result<EntryRow, ApiError> {
    let movement = Movement {
        partner_id,
        money: price,
        kind: EntryKind::Debit,
        order_id: Some(order_id),
        reference: None,
    };
    let negated = MinorUnits::ZERO
        .checked_sub(price.amount)
        .ok_or_else(|| ApiError::internal("debit amount out of range"))?;
    Ok(entry_row(&movement, negated, MinorUnits::ZERO, now))
}

/// Takes money for an order, or refuses with `402 insufficient_funds` having changed
/// nothing. Call inside the transaction that creates the order.
pub fn debit(
    conn: &mut DbConnection,
    partner_id: &str,
    price: Money,
    order_id: &str,
    now: NaiveDateTime,
) -> Result<EntryRow, ApiError> {
    let Money { amount, currency } = price;
    let entry = debit_entry(partner_id, price, order_id, now)?;
    store::debit_with_entry(conn, entry, now)?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InsufficientFunds,
            format!(
                "the {currency} wallet holds less than {amount} minor units; nothing was charged"
            ),
        )
    })
}
