//! Notices: the partner is told, through events, when a term's data use reaches a
//! threshold, when a card's service is about to end or has ended, and when a wallet
//! falls below an amount.
//!
//! Usage and wallet notices are decided inside the transaction that changes the
//! counter or the balance, from its value before and after: that row is locked until
//! the transaction ends, so each crossing is seen by exactly one transaction, on any
//! number of instances, and a batch that jumps two thresholds tells both. Expiry
//! notices come from a sweep (`expiry`), once per term and threshold.

pub mod expiry;
pub mod model;
pub mod routes;
pub mod store;

use chrono::NaiveDateTime;

use crate::cards;
use crate::db::{stored_uuid, Db, DbConnection};
use crate::domain::{time, MinorUnits};
use crate::error::ApiError;
use crate::events::{self, EventType};
use crate::wallet::{EntryRow, WalletBalance};
use model::{
    NotificationSettings, SettingsRow, Thresholds, UsageThresholdReached, ValidSettings,
    WalletAlert, WalletLow,
};

/// The percentages of `total` that use going from `before` to `after` reaches:
/// `before < p% of total <= after`, each at most once since use only grows.
pub fn percentages_reached(thresholds: &[u8], total: i64, before: i64, after: i64) -> Vec<u8> {
    if total <= 0 {
        return Vec::new();
    }
    thresholds
        .iter()
        .copied()
        .filter(|p| {
            let mark = i128::from(total) * i128::from(*p);
            i128::from(before) * 100 < mark && mark <= i128::from(after) * 100
        })
        .collect()
}

/// Whole percent of `total` that `used` is (a threshold can only be reached when this
/// changes, which spares most usage records the settings read).
fn whole_percent(used: i64, total: i64) -> i128 {
    i128::from(used) * 100 / i128::from(total)
}

/// A balance going from `before` to `after` fell below `threshold`.
pub fn fell_below(threshold: MinorUnits, before: MinorUnits, after: MinorUnits) -> bool {
    before >= threshold && after < threshold
}

/// The card thresholds in force for a partner (its own, or the defaults).
pub fn thresholds_of(conn: &mut DbConnection, partner_id: &str) -> Result<Thresholds, ApiError> {
    match store::settings(conn, partner_id)? {
        Some(row) => Thresholds::from_row(&row),
        None => Ok(Thresholds::default()),
    }
}

/// Tells `card.usage_threshold` for each threshold that `charged` bytes, just added to
/// the term's counter in this transaction, made its use reach. Only the current term's
/// use is told (late records for an ended term are counted, not told).
pub fn data_used(
    conn: &mut DbConnection,
    partner_id: &str,
    iccid: &str,
    term_id: &str,
    charged: i64,
    now: NaiveDateTime,
) -> Result<(), ApiError> {
    let (total, used, valid_from, valid_until) = store::data_counter(conn, term_id)?;
    let Some(total) = total.filter(|t| *t > 0) else {
        return Ok(());
    };
    if !(valid_from <= now && now < valid_until) {
        return Ok(());
    }
    let before = used
        .checked_sub(charged)
        .ok_or_else(|| ApiError::internal("usage counter below the usage just added"))?;
    if whole_percent(before, total) == whole_percent(used, total) {
        return Ok(());
    }
    let thresholds = thresholds_of(conn, partner_id)?;
    let reached = percentages_reached(&thresholds.data_percent, total, before, used);
    if reached.is_empty() {
        return Ok(());
    }
    let loaded = cards::load_card(conn, iccid)?;
    let balance = cards::balance_view(&loaded.card, &loaded.terms, &loaded.plan_codes, now)?;
    let term_id = stored_uuid(term_id)?;
    for threshold_percent in reached {
        let notice = UsageThresholdReached {
            threshold_percent,
            term_id,
            balance: balance.clone(),
        };
        events::append(
            conn,
            partner_id,
            EventType::CardUsageThreshold,
            &notice,
            now,
        )?;
    }
    Ok(())
}

/// Tells `wallet.low_balance` when the debit `entry` took the wallet from at or above
/// `alert` (the partner's alert amount in its currency, read with the order's checks) to
/// below it (once per crossing), in the debit's transaction.
pub fn wallet_debited(
    conn: &mut DbConnection,
    recipients: &events::Recipients,
    alert: Option<MinorUnits>,
    entry: &EntryRow,
    now: NaiveDateTime,
) -> Result<(), ApiError> {
    let Some(threshold) = alert else {
        return Ok(());
    };
    let after = entry.balance_after;
    let before = after
        .checked_sub(entry.amount)
        .ok_or_else(|| ApiError::internal("wallet balance before a debit out of range"))?;
    if !fell_below(threshold, before, after) {
        return Ok(());
    }
    let notice = WalletLow {
        threshold,
        balance: WalletBalance {
            currency: entry.currency,
            available: after,
        },
    };
    events::append_to(conn, recipients, EventType::WalletLowBalance, &notice, now)
}

fn settings_view(
    conn: &mut DbConnection,
    partner_id: &str,
) -> Result<NotificationSettings, ApiError> {
    let row: Option<SettingsRow> = store::settings(conn, partner_id)?;
    let thresholds = match &row {
        Some(row) => Thresholds::from_row(row)?,
        None => Thresholds::default(),
    };
    let wallet = store::wallet_alerts(conn, partner_id)?;
    Ok(NotificationSettings {
        data_thresholds_percent: thresholds.data_percent,
        expiry_days: thresholds.expiry_days.into_iter().rev().collect(),
        wallet_low_balance: wallet
            .into_iter()
            .map(|money| WalletAlert {
                currency: money.currency,
                amount: money.amount,
            })
            .collect(),
        updated_at: row.map(|r| time::from_db(r.updated_at)),
    })
}

pub async fn get_settings(db: &Db, partner_id: String) -> Result<NotificationSettings, ApiError> {
    db.run(move |conn| settings_view(conn, &partner_id)).await
}

/// Replaces the partner's settings, all fields together.
pub async fn replace_settings(
    db: &Db,
    partner_id: String,
    settings: ValidSettings,
    now: NaiveDateTime,
) -> Result<NotificationSettings, ApiError> {
    db.transaction(move |conn| {
        // Two replacements at once would both delete, then both insert.
        crate::partners::store::lock(conn, &partner_id, now)?;
        store::save_settings(conn, &settings.thresholds.to_row(&partner_id, now))?;
        store::replace_wallet_alerts(conn, &partner_id, &settings.wallet)?;
        settings_view(conn, &partner_id)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jump_over_two_thresholds_reaches_both_and_only_once() {
        let gib = 1_073_741_824;
        let total = 10 * gib;
        // 70 % → 95 %: 75 and 90 reached; 100 not yet.
        assert_eq!(
            percentages_reached(&[75, 90, 100], total, 7 * gib, total * 95 / 100),
            vec![75, 90]
        );
        // Exactly at a threshold counts as reaching it; the next record does not again.
        assert_eq!(
            percentages_reached(&[75], total, 0, total * 3 / 4),
            vec![75]
        );
        assert!(percentages_reached(&[75], total, total * 3 / 4, total * 3 / 4 + 1).is_empty());
        // Past the allowance: 100 is reached once.
        assert_eq!(
            percentages_reached(&[75, 90, 100], total, total * 95 / 100, 2 * total),
            vec![100]
        );
        // No allowance, no percentages; the largest counters do not overflow.
        assert!(percentages_reached(&[75], 0, 0, 10).is_empty());
        assert_eq!(
            percentages_reached(&[100], i64::MAX, 0, i64::MAX),
            vec![100]
        );
    }

    #[test]
    fn the_whole_percent_changes_whenever_a_threshold_is_reached() {
        let total = 1_000_003;
        for before in (0..total).step_by(997) {
            for step in [1, 13, 9_999, 250_000] {
                let after = before + step;
                if !percentages_reached(&(1..=100).collect::<Vec<u8>>(), total, before, after)
                    .is_empty()
                {
                    assert_ne!(whole_percent(before, total), whole_percent(after, total));
                }
            }
        }
    }

    #[test]
    fn a_wallet_falls_below_once_per_crossing() {
        let m = MinorUnits::new;
        assert!(fell_below(m(500), m(800), m(499)));
        assert!(fell_below(m(500), m(500), m(0)));
        assert!(!fell_below(m(500), m(499), m(100)), "already below");
        assert!(
            !fell_below(m(500), m(900), m(500)),
            "at the amount is not below"
        );
    }
}
