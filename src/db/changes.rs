//! Which keys (card ICCIDs) changed, as a counter per key: a copy of a key's rows read
//! while its counter stood at `n` is current only while the counter still stands at
//! `n`. A reader takes the counter *before* it reads, so a change that commits while it
//! reads moves the counter past what the copy is filed under.
//!
//! A counter moves after a call that wrote its key ends: the writer names the key with
//! [`written`], and `Db` counts it once the call returned, committed or not. Keys share a
//! fixed number of counters, so a change may also retire copies of other keys (a read
//! more, never a stale answer). Changes made by other processes are not seen here: a
//! cache bounds its copies' age for them (see `cards::cache`).

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by all keys; a few thousand make a collision between two hot keys
/// rare, at 32 KiB.
const COUNTERS: usize = 4096;

pub struct ChangeCounters {
    per_key: Box<[AtomicU64]>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for ChangeCounters {
    fn default() -> Self {
        Self {
            per_key: (0..COUNTERS).map(|_| AtomicU64::new(0)).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }
}

impl std::fmt::Debug for ChangeCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeCounters").finish_non_exhaustive()
    }
}

impl ChangeCounters {
    fn counter(&self, key: &str) -> &AtomicU64 {
        // The remainder of a division by the counters' number is below it.
        let index = usize::try_from(self.hasher.hash_one(key) % COUNTERS as u64).unwrap_or(0);
        &self.per_key[index]
    }

    /// Where `key` stands now.
    pub fn of(&self, key: &str) -> u64 {
        self.counter(key).load(Ordering::Acquire)
    }

    pub fn changed(&self, key: &str) {
        self.counter(key).fetch_add(1, Ordering::AcqRel);
    }
}

thread_local! {
    /// Keys written by the database call running on this blocking thread. A call runs to
    /// its end on one thread, so no two calls share it.
    static WRITTEN: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Names a key the running database call writes; its counter moves when the call ends.
pub fn written(key: &str) {
    WRITTEN.with(|keys| keys.borrow_mut().push(key.to_owned()));
}

/// Takes the keys named by the call that just ended on this thread (for `Db`).
pub(super) fn take_written() -> Vec<String> {
    WRITTEN.with(|keys| std::mem::take(&mut *keys.borrow_mut()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_moves_its_key() {
        let counters = ChangeCounters::default();
        let before = counters.of("8986001");
        counters.changed("8986001");
        assert_ne!(counters.of("8986001"), before);
    }

    #[test]
    fn written_keys_are_taken_once() {
        take_written();
        written("8986001");
        written("8986002");
        assert_eq!(take_written(), vec!["8986001", "8986002"]);
        assert!(take_written().is_empty());
    }
}
