//! `GET /metrics`: the HTTP metrics, the business counters (`business_metrics`) and
//! readings taken from the database at scrape time. A scrape that cannot read the
//! database still answers, with the last readings and `simrenew_readings_ok 0`.

use std::time::Duration;

use actix_web::{get, web, HttpResponse};
use chrono::{NaiveDateTime, TimeDelta};
use prometheus::{Encoder, TextEncoder};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::clock::Clock;
use crate::db::Db;
use crate::domain::{Currency, MinorUnits};
use crate::error::ApiError;
use crate::events::delivery;
use crate::orders::store as order_store;
use crate::payments::Payments;
use crate::wallet::store as wallet_store;

/// A scrape waits at most this long for its readings: Prometheus' own timeout is 10 s.
const READINGS_TIMEOUT: Duration = Duration::from_secs(3);

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(metrics);
}

/// What the database says at scrape time.
struct Readings {
    wallet_totals: Vec<(Currency, MinorUnits)>,
    oldest_unpaid: Option<NaiveDateTime>,
    deliveries_due: i64,
    oldest_due_delivery: Option<NaiveDateTime>,
}

async fn read(db: &Db, now: NaiveDateTime) -> Result<Readings, ApiError> {
    db.run(move |conn| {
        let (deliveries_due, oldest_due_delivery) = delivery::backlog(conn, now)?;
        Ok(Readings {
            wallet_totals: wallet_store::totals(conn)?,
            oldest_unpaid: order_store::oldest_unpaid(conn)?,
            deliveries_due,
            oldest_due_delivery,
        })
    })
    .await
}

/// Seconds from `since` to `now`, never negative.
fn seconds_since(since: Option<NaiveDateTime>, now: NaiveDateTime) -> f64 {
    since
        .map(|since| (now - since).max(TimeDelta::zero()))
        .and_then(|age| age.to_std().ok())
        .map_or(0.0, |age| age.as_secs_f64())
}

/// Sets the scrape-time gauges, or keeps the last ones with `simrenew_readings_ok 0`.
async fn take_readings(db: &Db, clock: &Clock, order_ttl: Duration) {
    let now = clock.now_db();
    let business = db.metrics();
    let readings = match tokio::time::timeout(READINGS_TIMEOUT, read(db, now)).await {
        Ok(Ok(readings)) => readings,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics readings failed; the last ones are served");
            business.readings_ok.set(0);
            return;
        }
        Err(_) => {
            tracing::warn!("metrics readings timed out; the last ones are served");
            business.readings_ok.set(0);
            return;
        }
    };
    for (currency, total) in readings.wallet_totals {
        business
            .wallet_balances
            .with_label_values(&[currency.code()])
            .set(total.get());
    }
    // An unpaid order is overdue once its time to pay has passed: the expiry sweep or
    // the provider's webhook should have settled it by then.
    let ttl = TimeDelta::from_std(order_ttl).unwrap_or(TimeDelta::MAX);
    let overdue_since = readings
        .oldest_unpaid
        .and_then(|created| created.checked_add_signed(ttl));
    business
        .settlement_lag
        .set(seconds_since(overdue_since.filter(|due| *due < now), now));
    business.delivery_backlog.set(readings.deliveries_due);
    business
        .delivery_backlog_age
        .set(seconds_since(readings.oldest_due_delivery, now));
    let (open, idle) = db.pool_state();
    business
        .pool_connections
        .with_label_values(&["idle"])
        .set(i64::from(idle));
    business
        .pool_connections
        .with_label_values(&["in_use"])
        .set(i64::from(open.saturating_sub(idle)));
    business.readings_ok.set(1);
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    operation_id = "get_metrics",
    tag = "operations",
    security(()),
    responses((status = 200, description = "Prometheus text format 0.0.4.", body = String,
               content_type = "text/plain; version=0.0.4"))
)]
#[get("/metrics")]
async fn metrics(
    registry: web::Data<prometheus::Registry>,
    db: web::Data<Db>,
    clock: web::Data<Clock>,
    payments: web::Data<Payments>,
) -> Result<HttpResponse, ApiError> {
    take_readings(&db, &clock, payments.order_ttl).await;
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buffer)
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type(TextEncoder::new().format_type())
        .body(buffer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_age_is_never_negative_and_none_is_zero() {
        let now = chrono::DateTime::from_timestamp(1_000_000, 0)
            .unwrap()
            .naive_utc();
        assert_eq!(seconds_since(None, now), 0.0);
        assert_eq!(seconds_since(Some(now - TimeDelta::seconds(90)), now), 90.0);
        assert_eq!(seconds_since(Some(now + TimeDelta::seconds(5)), now), 0.0);
    }
}
