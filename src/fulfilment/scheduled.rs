//! Scheduled orders start: a paid order whose `start_at` has come gets its pending
//! activation (an eSIM code, an in-place renewal or an over-the-air term), from where
//! the renewal goes on as any other. Any instance may run it: the activation's primary
//! key lets one make it.

use crate::activation::store as activation_store;
use crate::clock::Clock;
use crate::db::Db;
use crate::error::{ApiError, TxError};
use crate::orders::state::OrderStatus;
use crate::orders::store as order_store;

/// Orders started per query.
const BATCH: i64 = 200;

/// Starts every scheduled order whose time has come; how many it started.
pub async fn start_due(db: &Db, clock: &Clock, smdp_address: &str) -> Result<usize, ApiError> {
    let mut started = 0;
    loop {
        let now = clock.now_db();
        let due = db
            .run(move |conn| {
                activation_store::started_without_activation(conn, now, BATCH)
                    .map_err(ApiError::from)
            })
            .await?;
        let full = due.len() as i64 >= BATCH;
        let mut progressed = false;
        for order in due {
            let smdp_address = smdp_address.to_owned();
            let opened = db
                .transaction(move |conn| {
                    // Still paid and without its activation (a cancellation, or another
                    // instance, may have come first)? Rewriting the row unchanged, only if
                    // it is still paid, locks it against a cancellation until this commits.
                    let Some(current) = order_store::find(conn, &order.id)? else {
                        return Ok(false);
                    };
                    if !order_store::update_if_status(conn, &current, OrderStatus::Paid)?
                        || activation_store::find(conn, &current.id)?.is_some()
                    {
                        return Ok(false);
                    }
                    super::open_activation_in(conn, &current, &smdp_address, now)?;
                    Ok::<_, TxError>(true)
                })
                .await;
            match opened {
                Ok(true) => {
                    started += 1;
                    progressed = true;
                }
                Ok(false) | Err(TxError::Conflict) => {}
                Err(TxError::Failed(e)) => return Err(e),
            }
        }
        if !full || !progressed {
            return Ok(started);
        }
    }
}
