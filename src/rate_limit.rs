//! Per-partner request quotas for every authenticated operation: a token bucket per
//! partner (`governor`'s GCRA, so no timer task refills anything), a deployment-wide
//! default and a per-partner override. Buckets live in this process: with N instances
//! behind a balancer a partner may get up to N times its quota (see the README).
//!
//! The decision is kept with the request so that every answer to a known partner
//! carries the IETF `RateLimit-Policy` and `RateLimit` headers
//! (draft-ietf-httpapi-ratelimit-headers), refusals included.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{HeaderName, HeaderValue};
use governor::clock::Clock as GovernorClock;
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::RateLimiter;
use mini_moka::sync::Cache;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::Clock;

/// Largest sustained rate and burst an override may set: beyond them a quota protects
/// nothing, and the refill arithmetic stays far from overflow.
pub const MAX_PER_SECOND: u32 = 100_000;
pub const MAX_BURST: u32 = 100_000;

/// The name the headers give the policy.
const POLICY_NAME: &str = "partner";

pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// A sustained rate with a burst: `burst` requests at once, then `per_second` a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateQuota {
    /// Requests a second, sustained (1–100000).
    #[schema(value_type = u32, minimum = 1, maximum = 100000, example = 20)]
    #[serde(deserialize_with = "crate::domain::integral::nonzero_u32")]
    pub requests_per_second: NonZeroU32,
    /// Requests that may come at once after a quiet spell (1–100000).
    #[schema(value_type = u32, minimum = 1, maximum = 100000, example = 40)]
    #[serde(deserialize_with = "crate::domain::integral::nonzero_u32")]
    pub burst: NonZeroU32,
}

impl RateQuota {
    /// 20 requests a second, 40 at once: the deployment default unless configured.
    pub const DEFAULT: Self = Self {
        requests_per_second: NonZeroU32::new(20).unwrap(),
        burst: NonZeroU32::new(40).unwrap(),
    };

    /// `None` when either value is beyond the limits above.
    pub fn new(requests_per_second: u32, burst: u32) -> Option<Self> {
        if requests_per_second > MAX_PER_SECOND || burst > MAX_BURST {
            return None;
        }
        Some(Self {
            requests_per_second: NonZeroU32::new(requests_per_second)?,
            burst: NonZeroU32::new(burst)?,
        })
    }

    fn governor_quota(self) -> governor::Quota {
        governor::Quota::per_second(self.requests_per_second).allow_burst(self.burst)
    }

    /// How long an empty bucket takes to fill: the policy's window.
    fn window(self) -> Duration {
        Duration::from_secs_f64(
            f64::from(self.burst.get()) / f64::from(self.requests_per_second.get()),
        )
    }

    /// `"partner";q=40;w=2`: `burst` requests per refill window.
    pub fn policy_header(self) -> HeaderValue {
        let text = format!(
            "\"{POLICY_NAME}\";q={};w={}",
            self.burst,
            whole_seconds(self.window()).max(1)
        );
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("\"partner\""))
    }
}

fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// The application clock as `governor` reads it, so that tests move quotas in time
/// the way they move every other rule.
#[derive(Debug, Clone)]
struct QuotaClock(Clock);

impl GovernorClock for QuotaClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        let micros = self.0.now().timestamp_micros();
        Duration::from_micros(u64::try_from(micros).unwrap_or(0))
    }
}

type Bucket = RateLimiter<NotKeyed, InMemoryState, QuotaClock, StateInformationMiddleware>;

/// What one request was told: allowed or not, and what is left.
#[derive(Debug, Clone, Copy)]
pub struct RateDecision {
    pub quota: RateQuota,
    /// Requests that may still be made at once.
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset: Duration,
    /// `Some(wait)` when this request was refused.
    pub refused_for: Option<Duration>,
}

impl RateDecision {
    /// `"partner";r=12;t=1`.
    pub fn header(&self) -> HeaderValue {
        let text = format!(
            "\"{POLICY_NAME}\";r={};t={}",
            self.remaining,
            whole_seconds(self.reset)
        );
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("\"partner\""))
    }

    /// Whole seconds to wait before a retry can succeed (at least 1).
    pub fn retry_after_seconds(&self) -> Option<u64> {
        self.refused_for.map(|wait| whole_seconds(wait).max(1))
    }
}

/// Every partner's bucket in this process.
pub struct PartnerRateLimits {
    default: RateQuota,
    clock: Clock,
    /// partner id → (the quota its bucket was made for, the bucket). Buckets idle for
    /// longer than any refill takes are full anyway, so forgetting them loses nothing.
    buckets: Cache<String, Arc<(RateQuota, Bucket)>>,
}

impl PartnerRateLimits {
    pub fn new(default: RateQuota, clock: Clock) -> Self {
        let longest_refill = Duration::from_secs(u64::from(MAX_BURST) + 1);
        Self {
            default,
            clock,
            buckets: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(longest_refill)
                .build(),
        }
    }

    pub fn default_quota(&self) -> RateQuota {
        self.default
    }

    /// Takes one request from `partner`'s bucket; `quota` is its override, if any. A
    /// changed override starts a new, full bucket.
    pub fn check(&self, partner: &str, quota: Option<RateQuota>) -> RateDecision {
        let quota = quota.unwrap_or(self.default);
        let key = partner.to_owned();
        let bucket = match self.buckets.get(&key) {
            Some(bucket) if bucket.0 == quota => bucket,
            _ => {
                let bucket = Arc::new((
                    quota,
                    RateLimiter::direct_with_clock(
                        quota.governor_quota(),
                        QuotaClock(self.clock.clone()),
                    )
                    .with_middleware::<StateInformationMiddleware>(),
                ));
                self.buckets.insert(key, bucket.clone());
                bucket
            }
        };
        let per_request = Duration::from_secs_f64(1.0 / f64::from(quota.requests_per_second.get()));
        let until_full = |remaining: u32| per_request * quota.burst.get().saturating_sub(remaining);
        match bucket.1.check() {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                RateDecision {
                    quota,
                    remaining,
                    reset: until_full(remaining),
                    refused_for: None,
                }
            }
            Err(not_until) => {
                let now = QuotaClock(self.clock.clone()).now();
                RateDecision {
                    quota,
                    remaining: 0,
                    reset: until_full(0),
                    refused_for: Some(not_until.wait_time_from(now)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(per_second: u32, burst: u32) -> RateQuota {
        RateQuota::new(per_second, burst).unwrap()
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let clock = Clock::system();
        let limits = PartnerRateLimits::new(quota(2, 3), clock.clone());
        let remaining: Vec<_> = (0..3).map(|_| limits.check("a", None).remaining).collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limits.check("a", None);
        let wait = refused.refused_for.expect("the fourth is refused");
        assert!(wait <= Duration::from_millis(500), "{wait:?}");
        assert_eq!(refused.retry_after_seconds(), Some(1));
        assert!(
            limits.check("b", None).refused_for.is_none(),
            "partners are independent"
        );
        clock.advance(chrono::TimeDelta::milliseconds(500));
        assert!(limits.check("a", None).refused_for.is_none(), "one back");
        assert!(limits.check("a", None).refused_for.is_some());
        clock.advance(chrono::TimeDelta::seconds(10));
        assert_eq!(limits.check("a", None).remaining, 2, "full again");
    }

    #[test]
    fn an_override_replaces_the_default_with_a_full_bucket() {
        let limits = PartnerRateLimits::new(quota(1, 1), Clock::system());
        assert!(limits.check("a", None).refused_for.is_none());
        assert!(limits.check("a", None).refused_for.is_some());
        let raised = limits.check("a", Some(quota(100, 5)));
        assert_eq!((raised.remaining, raised.quota.burst.get()), (4, 5));
    }

    #[test]
    fn headers_follow_the_draft_syntax() {
        let q = quota(20, 40);
        assert_eq!(q.policy_header(), "\"partner\";q=40;w=2");
        let decision = RateDecision {
            quota: q,
            remaining: 12,
            reset: Duration::from_millis(1400),
            refused_for: None,
        };
        assert_eq!(decision.header(), "\"partner\";r=12;t=2");
        assert_eq!(quota(100, 5).policy_header(), "\"partner\";q=5;w=1");
    }

    #[test]
    fn out_of_range_quotas_are_refused() {
        assert!(RateQuota::new(0, 1).is_none());
        assert!(RateQuota::new(1, 0).is_none());
        assert!(RateQuota::new(MAX_PER_SECOND + 1, 1).is_none());
        assert!(RateQuota::new(1, MAX_BURST + 1).is_none());
    }
}
