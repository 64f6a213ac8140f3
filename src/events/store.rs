//! Every query on events.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::model::{EventFilter, EventRow};
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

/// Numbers `row` with the partner's next `seq` (see [`next_seq`]) and inserts it. On
/// PostgreSQL one statement does both once the partner has a counter, so the counter
/// row — which every event of the partner waits for — is held for one round trip less.
pub fn insert_numbered(conn: &mut DbConnection, row: &mut EventRow) -> QueryResult<()> {
    if let DbConnection::Postgres(pg) = conn {
        use diesel::sql_types::{BigInt, Text, Timestamp};
        #[derive(QueryableByName)]
        struct Numbered {
            #[diesel(sql_type = BigInt)]
            seq: i64,
        }
        let numbered: Option<Numbered> = diesel::sql_query(
            "WITH counted AS ( \
               UPDATE event_counters SET last_seq = last_seq + 1 WHERE partner_id = $1 \
               RETURNING last_seq) \
             INSERT INTO events (id, partner_id, seq, type, data, created_at) \
             SELECT $2, $1, last_seq, $3, $4, $5 FROM counted \
             RETURNING seq",
        )
        .bind::<Text, _>(&row.partner_id)
        .bind::<Text, _>(&row.id)
        .bind::<Text, _>(row.event_type.as_str())
        .bind::<Text, _>(&row.data)
        .bind::<Timestamp, _>(row.created_at)
        .get_result(pg)
        .optional()?;
        if let Some(numbered) = numbered {
            row.seq = numbered.seq;
            return Ok(());
        }
        // The partner's first event: no counter yet.
    }
    row.seq = next_seq(conn, &row.partner_id)?;
    insert(conn, row)
}

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
