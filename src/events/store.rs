//! Every query on events.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::model::{EventFilter, EventRow};
use crate::db::schema::events;
use crate::db::DbConnection;
use crate::pagination::PageRequest;

pub fn insert(conn: &mut DbConnection, row: &EventRow) -> QueryResult<()> {
    diesel::insert_into(events::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// A partner's events, oldest first (ids are UUIDv7, so they sort by time).
pub fn list_for_partner(
    conn: &mut DbConnection,
    partner_id: &str,
    filter: &EventFilter,
    page: &PageRequest,
) -> QueryResult<Vec<EventRow>> {
    let mut query = events::table
        .filter(events::partner_id.eq(partner_id.to_owned()))
        .select(EventRow::as_select())
        .order(events::id.asc())
        .limit(page.fetch_limit())
        .into_boxed();
    if let Some(after) = &page.after {
        query = query.filter(events::id.gt(after.clone()));
    }
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
