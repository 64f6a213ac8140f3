//! Rate limits on the token endpoint, per source address (so that hashing cannot be
//! used to exhaust the CPU) and on failed attempts per client id and source address (so
//! that guessing a secret is slow). Successful requests do not count against the
//! client, so a stranger who knows a `client_id` cannot lock its owner out.
//! Limits are per process: N instances allow N times the rate.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use mini_moka::sync::Cache;

/// Beyond this many remembered keys, keys idle long enough to be full again are dropped.
const MAX_REMEMBERED_KEYS: usize = 10_000;

pub struct KeyedLimit<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// `per_minute` requests a minute, of which `burst` may come at once.
    pub fn new(per_minute: NonZeroU32, burst: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
        }
    }

    /// `Ok` when `key` may proceed now; otherwise how long until it may.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        if self.limiter.len() > MAX_REMEMBERED_KEYS {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// A client id as tried from one address.
type Attempt = (String, IpAddr);

/// Failed attempts per (client id, address): counted only when they fail; once the
/// allowance is spent, that pair is refused without checking its secret until a
/// failure would be allowed again.
pub struct FailedAttempts {
    failures: KeyedLimit<Attempt>,
    blocked_until: Cache<Attempt, Instant>,
}

impl FailedAttempts {
    fn new(per_minute: NonZeroU32) -> Self {
        Self {
            failures: KeyedLimit::new(per_minute, per_minute),
            blocked_until: Cache::builder()
                .max_capacity(MAX_REMEMBERED_KEYS as u64)
                .time_to_live(Duration::from_secs(60))
                .build(),
        }
    }

    /// Before the secret is checked: `Err(wait)` while this pair is blocked.
    pub fn check(&self, client_id: &str, address: IpAddr) -> Result<(), Duration> {
        let key = (client_id.to_owned(), address);
        match self.blocked_until.get(&key) {
            Some(until) if until > Instant::now() => Err(until - Instant::now()),
            _ => Ok(()),
        }
    }

    /// After a failure: `Err(wait)` when it used up the allowance (the pair is blocked).
    pub fn record_failure(&self, client_id: &str, address: IpAddr) -> Result<(), Duration> {
        let key = (client_id.to_owned(), address);
        self.failures.check(&key).inspect_err(|wait| {
            self.blocked_until.insert(key, Instant::now() + *wait);
        })
    }
}

pub struct TokenRateLimits {
    pub failed_attempts: FailedAttempts,
    pub per_address: KeyedLimit<IpAddr>,
}

impl TokenRateLimits {
    pub fn new(
        failures_per_client_per_minute: NonZeroU32,
        per_address_per_minute: NonZeroU32,
    ) -> Self {
        Self {
            failed_attempts: FailedAttempts::new(failures_per_client_per_minute),
            per_address: KeyedLimit::new(per_address_per_minute, per_address_per_minute),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_burst_beyond_the_quota_is_refused_per_key() {
        let limit = KeyedLimit::new(NonZeroU32::new(5).unwrap(), NonZeroU32::new(5).unwrap());
        for _ in 0..5 {
            assert!(limit.check(&"a".to_owned()).is_ok());
        }
        let wait = limit.check(&"a".to_owned()).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(12));
        assert!(limit.check(&"b".to_owned()).is_ok(), "keys are independent");
    }

    #[test]
    fn failures_block_their_pair_only() {
        let attempts = FailedAttempts::new(NonZeroU32::new(3).unwrap());
        let stranger = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let owner = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
        for _ in 0..3 {
            assert!(attempts.check("client", stranger).is_ok());
            assert!(attempts.record_failure("client", stranger).is_ok());
        }
        assert!(attempts.record_failure("client", stranger).is_err());
        assert!(attempts.check("client", stranger).is_err(), "blocked now");
        assert!(
            attempts.check("client", owner).is_ok(),
            "the owner's address is not"
        );
        assert!(
            attempts.check("other", stranger).is_ok(),
            "other clients are not"
        );
    }
}
