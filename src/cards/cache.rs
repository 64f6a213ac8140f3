//! Cards read recently, so that a balance — the read partners make most — needs no
//! database round trip. PostgreSQL only: there every change to a card is announced to
//! every instance (triggers on `cards` and `terms` send its ICCID on [`CHANNEL`] when the
//! change commits); SQLite, which other processes may write unannounced, always reads.
//!
//! A copy is served only while both hold:
//! - nothing changed the card since the copy was read: the card's change counter (see
//!   `db::changes`; moved by this process after its own writes, and by the watcher for
//!   announced ones) still stands where it stood before the read;
//! - the watcher confirmed within [`STALENESS_BOUND`] that its session is listening and
//!   had taken every announcement committed before the confirmation. A lost session
//!   stops every copy within the bound; a reopened one retires them all.
//!
//! So a change made through this instance is in its next answer, and one made through
//! another instance is in this one's answers within [`STALENESS_BOUND`] (typically after
//! one look, [`LOOK_EVERY`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mini_moka::sync::Cache;

use super::LoadedCard;
use crate::db::changes::ChangeCounters;
use crate::db::listener::Listener;
use crate::db::{Backend, Db};

/// The longest a change made through another instance takes to reach this one's answers.
pub const STALENESS_BOUND: Duration = Duration::from_secs(1);
/// How often the watcher takes the announcements received (no round trip).
const LOOK_EVERY: Duration = Duration::from_millis(50);
/// How often the watcher confirms its session with a round trip.
const CONFIRM_EVERY: Duration = Duration::from_millis(250);
/// A copy is dropped after this whatever was heard: memory is given back, and a write
/// that bypassed the triggers (a manual `UPDATE` with triggers disabled) is seen within it.
const LONGEST_KEPT: Duration = Duration::from_secs(60);
/// The PostgreSQL channel card changes are announced on; the payload is the ICCID.
pub const CHANNEL: &str = "simrenew_cards";

struct Copy {
    /// The card's change counter before it was read.
    counter: u64,
    card: Arc<LoadedCard>,
}

pub struct CardCache {
    /// `None`: copies are not kept (SQLite, or a size of 0).
    copies: Option<Cache<String, Arc<Copy>>>,
    /// Milliseconds after `origin` at which the watcher last confirmed; 0: never.
    confirmed_at_ms: AtomicU64,
    origin: Instant,
}

impl std::fmt::Debug for CardCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardCache")
            .field("enabled", &self.copies.is_some())
            .finish_non_exhaustive()
    }
}

impl CardCache {
    /// Keeps up to `size` cards on PostgreSQL; none on SQLite.
    pub fn new(backend: Backend, size: u64) -> Self {
        let copies = (backend == Backend::Postgres && size > 0).then(|| {
            Cache::builder()
                .max_capacity(size)
                .time_to_live(LONGEST_KEPT)
                .build()
        });
        Self {
            copies,
            confirmed_at_ms: AtomicU64::new(0),
            origin: Instant::now(),
        }
    }

    fn ms_since_origin(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX)
    }

    /// The watcher's confirmation, made by a look that began at `began`.
    fn confirmed(&self, began: Instant) {
        // 1 at the least: 0 means never.
        let at = self.ms_since_origin(began).max(1);
        self.confirmed_at_ms.fetch_max(at, Ordering::AcqRel);
    }

    /// Whether copies may be served now.
    fn confirmed_recently(&self) -> bool {
        let at = self.confirmed_at_ms.load(Ordering::Acquire);
        let bound = u64::try_from(STALENESS_BOUND.as_millis()).unwrap_or(0);
        at > 0 && self.ms_since_origin(Instant::now()).saturating_sub(at) < bound
    }

    /// `partner_id`'s card `iccid` from memory, when a current copy is held.
    pub fn get(
        &self,
        changes: &ChangeCounters,
        partner_id: &str,
        iccid: &str,
    ) -> Option<Arc<LoadedCard>> {
        let copy = self.copies.as_ref()?.get(&iccid.to_owned())?;
        let current = copy.counter == changes.of(iccid) && self.confirmed_recently();
        (current && copy.card.card.partner_id == partner_id).then(|| copy.card.clone())
    }

    /// Keeps `card`, read after its change counter stood at `counter`.
    pub fn keep(&self, counter: u64, card: Arc<LoadedCard>) {
        if let Some(copies) = &self.copies {
            copies.insert(card.card.iccid.clone(), Arc::new(Copy { counter, card }));
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.copies.is_some()
    }
}

/// Listens for card changes announced by any instance, moving their counters and
/// confirming the session, on a thread of its own (a busy blocking pool must not hold
/// up the confirmations), until `cache` is dropped. Nothing on SQLite.
pub fn spawn_watcher(db: Db, cache: &Arc<CardCache>) {
    if !cache.is_enabled() {
        return;
    }
    let cache = Arc::downgrade(cache);
    let watching = std::thread::Builder::new()
        .name("card-changes".into())
        .spawn(move || {
            let mut listener = Listener::new(&db, CHANNEL);
            let mut next_confirmation = Instant::now();
            while let Some(cache) = cache.upgrade() {
                let began = Instant::now();
                let confirm = began >= next_confirmation;
                let Some(listening) = listener.as_mut() else {
                    return;
                };
                match listening.look(confirm) {
                    Ok(heard) => {
                        if heard.opened {
                            // What was announced before the session listened is unknown.
                            db.changes().everything_changed();
                        }
                        for iccid in &heard.payloads {
                            db.changes().changed(iccid);
                        }
                        if confirm || heard.opened {
                            cache.confirmed(began);
                            next_confirmation = began + CONFIRM_EVERY;
                        }
                    }
                    Err(e) => {
                        // No confirmation until a new session listens: the copies stop
                        // being served within the bound.
                        tracing::debug!(error = %e, "not listening for card changes; will retry");
                        drop(cache);
                        std::thread::sleep(CONFIRM_EVERY);
                        continue;
                    }
                }
                drop(cache);
                std::thread::sleep(LOOK_EVERY);
            }
        });
    if let Err(e) = watching {
        tracing::warn!(error = %e, "cannot start the card change watcher; cards are read from the database");
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

    #[test]
    fn a_copy_is_served_to_its_owner_only_while_unchanged_and_confirmed() {
        let changes = ChangeCounters::default();
        let cache = CardCache::new(Backend::Postgres, 10);
        let iccid = "89860012345678901234";
        cache.keep(changes.of(iccid), card(iccid, "partner-a"));
        assert!(
            cache.get(&changes, "partner-a", iccid).is_none(),
            "not served before the watcher confirmed"
        );
        cache.confirmed(Instant::now());
        assert!(cache.get(&changes, "partner-a", iccid).is_some());
        assert!(
            cache.get(&changes, "partner-b", iccid).is_none(),
            "another partner's card is not found in memory either"
        );
        changes.changed(iccid);
        assert!(
            cache.get(&changes, "partner-a", iccid).is_none(),
            "a change retires the copy"
        );
        cache.keep(changes.of(iccid), card(iccid, "partner-a"));
        changes.everything_changed();
        assert!(cache.get(&changes, "partner-a", iccid).is_none());
    }

    #[test]
    fn a_confirmation_older_than_the_bound_stops_every_copy() {
        let changes = ChangeCounters::default();
        let cache = CardCache {
            origin: Instant::now() - STALENESS_BOUND * 3,
            ..CardCache::new(Backend::Postgres, 10)
        };
        let iccid = "89860012345678901234";
        cache.keep(changes.of(iccid), card(iccid, "partner-a"));
        cache.confirmed(Instant::now() - STALENESS_BOUND - Duration::from_millis(1));
        assert!(cache.get(&changes, "partner-a", iccid).is_none());
        cache.confirmed(Instant::now());
        assert!(cache.get(&changes, "partner-a", iccid).is_some());
    }

    #[test]
    fn sqlite_and_a_size_of_zero_keep_nothing() {
        let changes = ChangeCounters::default();
        for cache in [
            CardCache::new(Backend::Sqlite, 10),
            CardCache::new(Backend::Postgres, 0),
        ] {
            cache.confirmed(Instant::now());
            let iccid = "89860012345678901234";
            cache.keep(changes.of(iccid), card(iccid, "partner-a"));
            assert!(cache.get(&changes, "partner-a", iccid).is_none());
        }
    }
}
