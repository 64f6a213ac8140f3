//! Wallet queries: the running balances and the ledger. A balance changes only in the
//! transaction of the ledger entry that explains it (the callers in `wallet` see to it).

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment};

use super::{EntryRow, WalletBalance};
use crate::business_metrics::{on_commit, Fact};
use crate::db::fixed_sql::fixed_pg_statement;
use crate::db::schema::{ledger_entries, wallet_balances};
use crate::db::{is_unique_violation, DbConnection};
use crate::domain::{Currency, MinorUnits, Money};
use crate::pagination::PageRequest;

pub fn available(
    conn: &mut DbConnection,
    partner_id: &str,
    currency: Currency,
) -> QueryResult<MinorUnits> {
    wallet_balances::table
        .find((partner_id, currency))
        .select(wallet_balances::available)
        .first(conn)
}

/// Makes sure the wallet row exists (a savepoint, so losing an insert race to another
/// transaction does not abort this one).
pub fn ensure_wallet(
    conn: &mut DbConnection,
    partner_id: &str,
    currency: Currency,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let exists = wallet_balances::table
        .find((partner_id, currency))
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if exists {
        return Ok(());
    }
    let inserted = conn.transaction(|conn| {
        diesel::insert_into(wallet_balances::table)
            .values((
                wallet_balances::partner_id.eq(partner_id),
                wallet_balances::currency.eq(currency),
                wallet_balances::available.eq(MinorUnits::ZERO),
                wallet_balances::updated_at.eq(now),
            ))
            .execute(conn)
    });
    match inserted {
        Err(e) if is_unique_violation(&e) => Ok(()),
        other => other.map(drop),
    }
}

/// Adds `money` to an existing wallet; the balance after it.
pub fn increase(
    conn: &mut DbConnection,
    partner_id: &str,
    money: Money,
    now: NaiveDateTime,
) -> QueryResult<MinorUnits> {
    diesel::update(wallet_balances::table.find((partner_id, money.currency)))
        .set((
            wallet_balances::available.eq(wallet_balances::available + money.amount),
            wallet_balances::updated_at.eq(now),
        ))
        .returning(wallet_balances::available)
        .get_result(conn)
}

/// Takes `money` only if the wallet holds at least that much, in one conditional update:
/// the balance left, or `None` (and nothing changed) otherwise, whatever runs beside it.
pub fn take_if_available(
    conn: &mut DbConnection,
    partner_id: &str,
    money: Money,
    now: NaiveDateTime,
) -> QueryResult<Option<MinorUnits>> {
    diesel::update(
        wallet_balances::table
            .find((partner_id, money.currency))
            .filter(wallet_balances::available.ge(money.amount)),
    )
    .set((
        wallet_balances::available.eq(wallet_balances::available - money.amount),
        wallet_balances::updated_at.eq(now),
    ))
    .returning(wallet_balances::available)
    .get_result(conn)
    .optional()
}

/// Takes `entry.amount` (negative: a debit) from the wallet only if it holds that much,
/// and writes `entry` with the balance left: `None`, and nothing written, when the wallet
/// holds less. On PostgreSQL one statement does both, so the wallet row — which every
/// order of the partner waits for — is held for one round trip less; SQLite, with its one
/// writer, runs the two statements.
pub fn debit_with_entry(
    conn: &mut DbConnection,
    mut entry: EntryRow,
    now: NaiveDateTime,
) -> QueryResult<Option<EntryRow>> {
    let taken = MinorUnits::ZERO
        .checked_sub(entry.amount)
        .ok_or_else(|| diesel::result::Error::QueryBuilderError("debit out of range".into()))?;
    let money = Money::new(taken, entry.currency);
    if let DbConnection::Postgres(pg) = conn {
        let debit = DebitCtes::new(&entry, MinorUnits::ZERO, now, None)?;
        let left: Option<i64> = DebitStatement(debit).get_result(pg).optional()?;
        return Ok(left.map(|left| {
            entry.balance_after = MinorUnits::new(left);
            count_movement(&entry);
            entry
        }));
    }
    let Some(balance_after) = take_if_available(conn, &entry.partner_id, money, now)? else {
        return Ok(None);
    };
    entry.balance_after = balance_after;
    insert_entry(conn, &entry)?;
    Ok(Some(entry))
}

/// A debit's SQL on PostgreSQL, for a statement of its own or inside a larger one: the CTE
/// `debited` takes the money if the wallet holds it and the debit does not take the
/// balance from `alert` or more to below it (`notifications::fell_below`: such a debit
/// has a low balance to tell, which a statement cannot; with an alert of 0 every debit
/// the wallet can pay qualifies) — with `after`, only if that CTE of the enclosing
/// statement has a row — and `entry` writes the ledger entry with the balance left,
/// returning `balance_after` (no row: nothing was taken).
pub struct DebitCtes<'a> {
    entry: &'a EntryRow,
    taken: MinorUnits,
    alert: MinorUnits,
    now: NaiveDateTime,
    after: Option<&'static str>,
}

impl<'a> DebitCtes<'a> {
    /// `entry.amount` is the debit, negative. A statement type passes the same `after`
    /// every time (see `db::fixed_sql`).
    pub fn new(
        entry: &'a EntryRow,
        alert: MinorUnits,
        now: NaiveDateTime,
        after: Option<&'static str>,
    ) -> QueryResult<Self> {
        let taken = MinorUnits::ZERO
            .checked_sub(entry.amount)
            .ok_or_else(|| diesel::result::Error::QueryBuilderError("debit out of range".into()))?;
        Ok(Self {
            entry,
            taken,
            alert,
            now,
            after,
        })
    }

    pub fn walk<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
        let entry = self.entry;
        out.push_sql("debited AS (UPDATE wallet_balances SET available = available - ");
        out.push_bind_param::<BigInt, _>(&self.taken)?;
        out.push_sql(", updated_at = ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" WHERE partner_id = ");
        out.push_bind_param::<Text, _>(&entry.partner_id)?;
        out.push_sql(" AND currency = ");
        out.push_bind_param::<Text, _>(entry.currency.code())?;
        out.push_sql(" AND available >= ");
        out.push_bind_param::<BigInt, _>(&self.taken)?;
        out.push_sql(" AND (available - ");
        out.push_bind_param::<BigInt, _>(&self.taken)?;
        out.push_sql(" >= ");
        out.push_bind_param::<BigInt, _>(&self.alert)?;
        out.push_sql(" OR available < ");
        out.push_bind_param::<BigInt, _>(&self.alert)?;
        out.push_sql(")");
        if let Some(after) = self.after {
            out.push_sql(" AND EXISTS (SELECT 1 FROM ");
            out.push_sql(after);
            out.push_sql(")");
        }
        out.push_sql(
            " RETURNING available), entry AS (INSERT INTO ledger_entries \
             (id, partner_id, currency, kind, amount, balance_after, order_id, reference, created_at) \
             SELECT ",
        );
        out.push_bind_param::<Text, _>(&entry.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&entry.partner_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(entry.currency.code())?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(entry.kind.as_str())?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&entry.amount)?;
        out.push_sql(", available, ");
        out.push_bind_param::<Nullable<Text>, _>(&entry.order_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&entry.reference)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&entry.created_at)?;
        out.push_sql(" FROM debited RETURNING balance_after)");
        Ok(())
    }
}

/// A debit as a statement of its own: the balance left, or no row.
struct DebitStatement<'a>(DebitCtes<'a>);

impl QueryFragment<Pg> for DebitStatement<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH ");
        self.0.walk(&mut out)?;
        out.push_sql(" SELECT balance_after FROM entry");
        Ok(())
    }
}

fixed_pg_statement!(DebitStatement, diesel::sql_types::BigInt);

pub fn insert_entry(conn: &mut DbConnection, row: &EntryRow) -> QueryResult<()> {
    diesel::insert_into(ledger_entries::table)
        .values(row)
        .execute(conn)?;
    count_movement(row);
    Ok(())
}

/// Money moved through a wallet, for the business metrics (counted if it commits).
pub fn count_movement(entry: &EntryRow) {
    on_commit(Fact::WalletMoved {
        currency: entry.currency.code(),
        kind: entry.kind.as_str(),
        minor_units: entry.amount.get(),
    });
}

/// Money held in all wallets, by currency. One row per partner and currency: summed
/// here with checked arithmetic (a SQL `SUM` of `BIGINT` is `NUMERIC` on PostgreSQL).
pub fn totals(conn: &mut DbConnection) -> QueryResult<Vec<(Currency, MinorUnits)>> {
    let rows: Vec<(Currency, MinorUnits)> = wallet_balances::table
        .select((wallet_balances::currency, wallet_balances::available))
        .load(conn)?;
    let mut totals: Vec<(Currency, MinorUnits)> = Vec::new();
    for (currency, amount) in rows {
        match totals.iter_mut().find(|(c, _)| *c == currency) {
            Some((_, total)) => {
                *total = total.checked_add(amount).ok_or_else(|| {
                    diesel::result::Error::QueryBuilderError("wallet total out of range".into())
                })?
            }
            None => totals.push((currency, amount)),
        }
    }
    Ok(totals)
}

pub fn balances(conn: &mut DbConnection, partner_id: &str) -> QueryResult<Vec<WalletBalance>> {
    Ok(wallet_balances::table
        .filter(wallet_balances::partner_id.eq(partner_id))
        .order(wallet_balances::currency)
        .select((wallet_balances::currency, wallet_balances::available))
        .load::<(Currency, MinorUnits)>(conn)?
        .into_iter()
        .map(|(currency, available)| WalletBalance {
            currency,
            available,
        })
        .collect())
}

/// Newest first; the cursor is the last entry id seen.
pub fn entries(
    conn: &mut DbConnection,
    partner_id: &str,
    page: &PageRequest,
) -> QueryResult<Vec<EntryRow>> {
    let mut query = ledger_entries::table
        .filter(ledger_entries::partner_id.eq(partner_id.to_owned()))
        .select(EntryRow::as_select())
        .order(ledger_entries::id.desc())
        .limit(page.fetch_limit())
        .into_boxed();
    if let Some(before) = &page.after {
        query = query.filter(ledger_entries::id.lt(before.clone()));
    }
    query.load(conn)
}
