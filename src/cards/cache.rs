//! Cards read recently, so that a balance — the read partners make most — usually needs
//! no database round trip.
//!
//! A copy is served only while both hold:
//! - nothing this process wrote changed the card since the copy was read: the card's
//!   change counter (see `db::changes`, moved after every call that wrote the card) still
//!   stands where it stood before the read;
//! - the read began less than [`STALENESS_BOUND`] ago.
//!
//! So a change made through this instance is in its next answer, and one made anywhere
//! else (another instance, the CLI, an operator's SQL) is in this one's answers within
//! [`STALENESS_BOUND`]. Announcing changes to other instances instead (a `NOTIFY` per
//! changed card) would make the bound shorter but serialize every commit that changes a
//! card across the cluster: measured, one-row term updates fell from 14,700 to 5,100 a
//! second. Usage arrives from the network minutes late anyway.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mini_moka::sync::Cache;

use super::LoadedCard;
use crate::db::changes::ChangeCounters;

/// The oldest a copy served may be: the longest a change made elsewhere takes to reach
/// this instance's answers.
pub const STALENESS_BOUND: Duration = Duration::from_secs(1);

struct Copy {
    /// The card's change counter before it was read.
    counter: u64,
    /// When its read began.
    read_at: Instant,
    card: Arc<LoadedCard>,
}

pub struct CardCache {
    /// `None`: copies are not kept (a size of 0).
    copies: Option<Cache<String, Arc<Copy>>>,
}

impl std::fmt::Debug for CardCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardCache")
            .field("enabled", &self.copies.is_some())
            .finish()
    }
}

impl CardCache {
    /// Keeps up to `size` cards, each for at most [`STALENESS_BOUND`].
    pub fn new(size: u64) -> Self {
        let copies = (size > 0).then(|| {
            Cache::builder()
                .max_capacity(size)
                .time_to_live(STALENESS_BOUND)
                .build()
        });
        Self { copies }
    }

    /// `partner_id`'s card `iccid` from memory, when a current copy is held.
    pub fn get(
        &self,
        changes: &ChangeCounters,
        partner_id: &str,
        iccid: &str,
    ) -> Option<Arc<LoadedCard>> {
        let copy = self.copies.as_ref()?.get(&iccid.to_owned())?;
        let current = copy.counter == changes.of(iccid) && copy.read_at.elapsed() < STALENESS_BOUND;
        (current && copy.card.card.partner_id == partner_id).then(|| copy.card.clone())
    }

    /// Keeps `card`, whose read began at `read_at` with its change counter at `counter`.
    pub fn keep(&self, counter: u64, read_at: Instant, card: Arc<LoadedCard>) {
        if let Some(copies) = &self.copies {
            let copy = Copy {
                counter,
                read_at,
                card,
            };
            copies.insert(copy.card.card.iccid.clone(), Arc::new(copy));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cards::model::CardRow;
    use crate::domain::CardType;

    fn card(iccid: &str, partner_id: &str) -> Arc<LoadedCard> {
        let now = chrono::DateTime::UNIX_EPOCH.naive_utc();
        Arc::new(LoadedCard {
            card: CardRow {
                iccid: iccid.into(),
                partner_id: partner_id.into(),
                card_type: CardType::Fm,
                msisdn: None,
                eid: None,
                suspended: false,
                created_at: now,
                updated_at: now,
                profile_state: None,
                profile_state_at: None,
            },
            terms: Vec::new(),
            plan_codes: Default::default(),
        })
    }

    const ICCID: &str = "89860012345678901234";

    #[test]
    fn a_copy_is_served_to_its_owner_only_while_unchanged() {
        let changes = ChangeCounters::default();
        let cache = CardCache::new(10);
        cache.keep(changes.of(ICCID), Instant::now(), card(ICCID, "partner-a"));
        assert!(cache.get(&changes, "partner-a", ICCID).is_some());
        assert!(
            cache.get(&changes, "partner-b", ICCID).is_none(),
            "another partner's card is not found in memory either"
        );
        changes.changed(ICCID);
        assert!(
            cache.get(&changes, "partner-a", ICCID).is_none(),
            "a change retires the copy"
        );
    }

    #[test]
    fn a_copy_read_a_bound_ago_is_not_served() {
        let changes = ChangeCounters::default();
        let cache = CardCache::new(10);
        let long_ago = Instant::now() - STALENESS_BOUND;
        cache.keep(changes.of(ICCID), long_ago, card(ICCID, "partner-a"));
        assert!(cache.get(&changes, "partner-a", ICCID).is_none());
    }

    #[test]
    fn a_size_of_zero_keeps_nothing() {
        let changes = ChangeCounters::default();
        let cache = CardCache::new(0);
        cache.keep(changes.of(ICCID), Instant::now(), card(ICCID, "partner-a"));
        assert!(cache.get(&changes, "partner-a", ICCID).is_none());
    }
}
