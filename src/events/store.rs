//! Every query on events.

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment};

use super::model::{EventFilter, EventRow};
use crate::db::fixed_sql::fixed_pg_statement;
use crate::db::schema::{event_counters, events};
use crate::db::{is_unique_violation, DbConnection};

/// The partner's next event number. The counter row stays locked by this transaction
/// until it commits, so numbers are handed out in commit order.
pub fn next_seq(conn: &mut DbConnection, partner_id: &str) -> QueryResult<i64> {
    let counter = event_counters::table.find(partner_id);
    let bump = |conn: &mut DbConnection| {
        diesel::update(counter)
            .set(event_counters::last_seq.eq(event_counters::last_seq + 1_i64))
            .returning(event_counters::last_seq)
            .get_result::<i64>(conn)
            .optional()
    };
    if let Some(seq) = bump(conn)? {
        return Ok(seq);
    }
    // The partner's first event; a savepoint, so that losing the race aborts nothing.
    let created = conn.transaction(|conn| {
        diesel::insert_into(event_counters::table)
            .values((
                event_counters::partner_id.eq(partner_id),
                event_counters::last_seq.eq(1_i64),
            ))
            .execute(conn)
    });
    match created {
        Ok(_) => Ok(1),
        Err(e) if is_unique_violation(&e) => bump(conn)?.ok_or(diesel::result::Error::NotFound),
        Err(e) => Err(e),
    }
}

/// A partner's event counter at 0 (its first event will be 1).
pub fn create_counter(conn: &mut DbConnection, partner_id: &str) -> QueryResult<()> {
    diesel::insert_into(event_counters::table)
        .values((
            event_counters::partner_id.eq(partner_id),
            event_counters::last_seq.eq(0_i64),
        ))
        .execute(conn)
        .map(drop)
}

/// Numbers `row` with the partner's next `seq` (see [`next_seq`]) and inserts it. On
/// PostgreSQL one statement does both once the partner has a counter, so the counter
/// row — which every event of the partner waits for — is held for one round trip less.
pub fn insert_numbered(conn: &mut DbConnection, row: &mut EventRow) -> QueryResult<()> {
    if let DbConnection::Postgres(pg) = conn {
        let numbered: Option<i64> = NumberedEventStatement(NumberedEventCtes::new(row, None))
            .get_result(pg)
            .optional()?;
        if let Some(seq) = numbered {
            row.seq = seq;
            return Ok(());
        }
        // A partner without a counter (every partner gets one when made, and migration
        // 000018 gave the older ones theirs): numbered the general way.
    }
    row.seq = next_seq(conn, &row.partner_id)?;
    insert(conn, row)
}

/// An event's numbering and writing on PostgreSQL, for a statement of its own or inside a
/// larger one: the CTE `counted` takes the partner's next number (with `after`: only if
/// that CTE of the enclosing statement has a row) and `told` writes the event with it,
/// returning `seq`. No row when the partner has no counter yet (its first event: see
/// [`next_seq`]).
pub struct NumberedEventCtes<'a> {
    row: &'a EventRow,
    after: Option<&'static str>,
}

impl<'a> NumberedEventCtes<'a> {
    /// A statement type passes the same `after` every time (see `db::fixed_sql`).
    pub fn new(row: &'a EventRow, after: Option<&'static str>) -> Self {
        Self { row, after }
    }

    pub fn walk<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        use diesel::sql_types::{Text, Timestamp};
        let row = self.row;
        out.push_sql(
            "counted AS (UPDATE event_counters SET last_seq = last_seq + 1 WHERE partner_id = ",
        );
        out.push_bind_param::<Text, _>(&row.partner_id)?;
        if let Some(after) = self.after {
            out.push_sql(" AND EXISTS (SELECT 1 FROM ");
            out.push_sql(after);
            out.push_sql(")");
        }
        out.push_sql(
            " RETURNING last_seq), told AS (INSERT INTO events \
             (id, partner_id, seq, type, data, created_at) SELECT ",
        );
        out.push_bind_param::<Text, _>(&row.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&row.partner_id)?;
        out.push_sql(", last_seq, ");
        out.push_bind_param::<Text, _>(row.event_type.as_str())?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&row.data)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&row.created_at)?;
        out.push_sql(" FROM counted RETURNING seq)");
        Ok(())
    }
}

/// An event numbered and written by a statement of its own: its number, or no row.
struct NumberedEventStatement<'a>(NumberedEventCtes<'a>);

impl QueryFragment<Pg> for NumberedEventStatement<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH ");
        self.0.walk(&mut out)?;
        out.push_sql(" SELECT seq FROM told");
        Ok(())
    }
}

fixed_pg_statement!(NumberedEventStatement, diesel::sql_types::BigInt);

pub fn insert(conn: &mut DbConnection, row: &EventRow) -> QueryResult<()> {
    diesel::insert_into(events::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// A partner's events after `after_seq`, in commit order.
pub fn list_for_partner(
    conn: &mut DbConnection,
    partner_id: &str,
    filter: &EventFilter,
    after_seq: i64,
    fetch: i64,
) -> QueryResult<Vec<EventRow>> {
    let mut query = events::table
        .filter(events::partner_id.eq(partner_id.to_owned()))
        .filter(events::seq.gt(after_seq))
        .select(EventRow::as_select())
        .order(events::seq.asc())
        .limit(fetch)
        .into_boxed();
    if let Some(event_type) = filter.event_type {
        query = query.filter(events::event_type.eq(event_type));
    }
    if let Some(after) = filter.created_after {
        query = query.filter(events::created_at.ge(after));
    }
    query.load(conn)
}

pub fn find_for_partner(
    conn: &mut DbConnection,
    partner_id: &str,
    id: &str,
) -> QueryResult<Option<EventRow>> {
    events::table
        .filter(events::id.eq(id))
        .filter(events::partner_id.eq(partner_id))
        .select(EventRow::as_select())
        .first(conn)
        .optional()
}

pub fn delete_older_than(conn: &mut DbConnection, cutoff: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(events::table.filter(events::created_at.lt(cutoff))).execute(conn)
}
