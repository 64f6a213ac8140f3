//! Rate limits on the token endpoint, per client id and per source address, so that
//! guessing secrets is slow and hashing cannot be used to exhaust the CPU.
//! Limits are per process: N instances allow N times the rate.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

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

pub struct TokenRateLimits {
    pub per_client: KeyedLimit<String>,
    pub per_address: KeyedLimit<IpAddr>,
}

impl TokenRateLimits {
    pub fn new(per_client_per_minute: NonZeroU32, per_address_per_minute: NonZeroU32) -> Self {
        Self {
            per_client: KeyedLimit::new(per_client_per_minute, per_client_per_minute),
            per_address: KeyedLimit::new(per_address_per_minute, per_address_per_minute),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
