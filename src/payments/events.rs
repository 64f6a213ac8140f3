//! The provider events received: each event id is claimed once, so a redelivered event
//! (or two deliveries racing) is applied at most once.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::PaymentEvent;
use crate::db::schema::payment_events;
use crate::db::DbConnection;

/// Claims `event` for `provider`; a unique violation means it was claimed before.
pub fn claim(
    conn: &mut DbConnection,
    provider: &str,
    event: &PaymentEvent,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(payment_events::table)
        .values((
            payment_events::provider.eq(provider),
            payment_events::event_id.eq(&event.event_id),
            payment_events::order_id.eq(&event.order_id),
            payment_events::kind.eq(event.kind.label()),
            payment_events::outcome.eq("applying"),
            payment_events::received_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

/// Records what the claimed event did.
pub fn record_outcome(
    conn: &mut DbConnection,
    provider: &str,
    event_id: &str,
    outcome: &str,
) -> QueryResult<()> {
    diesel::update(payment_events::table.find((provider, event_id)))
        .set(payment_events::outcome.eq(outcome))
        .execute(conn)
        .map(drop)
}
