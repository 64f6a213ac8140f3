//! Rate limits on the token endpoint: per source address (so that hashing cannot be
//! used to exhaust the CPU) and per client id *and* source address (so that guessing
//! a secret is slow). The second is counted before the secret is checked, so no more
//! guesses are verified than it allows, even when they arrive at once; and it is kept
//! per address, so that a stranger who knows a `client_id` and calls from elsewhere
//! cannot lock its owner out. IPv6 addresses count per /64, the block one subscriber
//! usually holds. Limits are per process: N instances allow N times the rate.

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

/// Where a request comes from, as the limits count it: an IPv4 address, or the /64 an
/// IPv6 address is in (a subscriber rotating through its own block is one source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl From<IpAddr> for Source {
    fn from(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(_) => Self(address),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1_u128 << 64) - 1);
                    Self(IpAddr::V6(prefix.into()))
                }
            },
        }
    }
}

pub struct TokenRateLimits {
    pub per_client: KeyedLimit<(String, Source)>,
    pub per_address: KeyedLimit<Source>,
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
    use std::net::{Ipv4Addr, Ipv6Addr};

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
    fn ipv6_sources_are_their_64_block() {
        let a: Ipv6Addr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Source::from(IpAddr::V6(a)), Source::from(IpAddr::V6(b)));
        assert_ne!(Source::from(IpAddr::V6(a)), Source::from(IpAddr::V6(other)));
        let mapped: Ipv6Addr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            Source::from(IpAddr::V6(mapped)),
            Source::from(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
        );
    }
}
