//! Per-partner request quotas for every authenticated operation: a token bucket per
//! partner (`governor`'s GCRA, so no timer task refills anything), a deployment-wide
//! default and a per-partner override. Buckets live in this process: with N instances
//! behind a balancer a partner may get up to N times its quota (see the README).
//!
//! The decision is kept with the request so that every answer to a known partner
//! carries the IETF `RateLimit-Policy` and `RateLimit` headers
//! (draft-ietf-httpapi-ratelimit-headers), refusals included.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderName, HeaderValue};
use governor::clock::Clock as GovernorClock;
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::RateLimiter;
use mini_moka::sync::Cache;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::Clock;
use crate::error::{ApiError, FieldError};

/// Largest sustained rate and burst an override may set: beyond them a quota protects
/// nothing, and the refill arithmetic stays far from overflow.
pub const MAX_PER_SECOND: u32 = 100_000;
pub const MAX_BURST: u32 = 100_000;

/// The name the headers give the policy.
const POLICY_NAME: &str = "partner";

pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// A sustained rate with a burst: `burst` requests at once, then `per_second` a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
pub struct RateQuota {
    /// Requests a second, sustained (1–100000).
    #[schema(value_type = u32, minimum = 1, maximum = 100000, example = 20)]
    pub requests_per_second: NonZeroU32,
    /// Requests that may come at once after a quiet spell (1–100000).
    #[schema(value_type = u32, minimum = 1, maximum = 100000, example = 40)]
    pub burst: NonZeroU32,
}

/// `PUT /v1/admin/partners/{id}/rate-limit`: a partner's own quota, as sent.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRateQuota {
    /// Requests a second, sustained (1–100000).
    #[schema(minimum = 1, maximum = 100000, example = 20)]
    #[serde(deserialize_with = "crate::domain::integral::integer")]
    pub requests_per_second: u32,
    /// Requests that may come at once after a quiet spell (1–100000).
    #[schema(minimum = 1, maximum = 100000, example = 40)]
    #[serde(deserialize_with = "crate::domain::integral::integer")]
    pub burst: u32,
}

impl NewRateQuota {
    /// The quota, or each value out of range named (`422`).
    pub fn check(&self) -> Result<RateQuota, ApiError> {
        let out_of_range = |field: &str, value: u32, max: u32| {
            (value == 0 || value > max)
                .then(|| FieldError::new(field, format!("must be 1 to {max}")))
        };
        let errors: Vec<FieldError> = out_of_range(
            "requests_per_second",
            self.requests_per_second,
            MAX_PER_SECOND,
        )
        .into_iter()
        .chain(out_of_range("burst", self.burst, MAX_BURST))
        .collect();
        match RateQuota::new(self.requests_per_second, self.burst) {
            Some(quota) if errors.is_empty() => Ok(quota),
            _ => Err(ApiError::validation(errors)),
        }
    }
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

    /// The policy's window: how long an empty bucket takes to fill, in whole seconds
    /// (at least 1).
    fn window_seconds(self) -> u64 {
        let (burst, rate) = (
            u64::from(self.burst.get()),
            u64::from(self.requests_per_second.get()),
        );
        burst.div_ceil(rate).max(1)
    }

    /// `"partner";q=40;w=2`: `q` requests per `w` seconds, the sustained rate over the
    /// refill window (the burst, `r` of the `RateLimit` header, is what may come at once).
    pub fn policy_header(self) -> HeaderValue {
        let window = self.window_seconds();
        let text = format!(
            "\"{POLICY_NAME}\";q={};w={window}",
            u64::from(self.requests_per_second.get()).saturating_mul(window)
        );
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("\"partner\""))
    }
}

/// A duration in whole seconds, rounded up (what `Retry-After` and `t=` carry).
pub fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// A monotonic clock for `governor` (a wall clock stepped back by NTP must not refuse
/// every partner), plus the application clock's test offset, so that tests move quotas
/// in time the way they move every other rule.
#[derive(Debug, Clone)]
struct QuotaClock {
    started: Instant,
    clock: Clock,
}

impl GovernorClock for QuotaClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        let elapsed = self.started.elapsed();
        let offset = self.clock.offset();
        match offset.to_std() {
            Ok(ahead) => elapsed.saturating_add(ahead),
            // Set into the past: never before the start.
            Err(_) => elapsed.saturating_sub((-offset).to_std().unwrap_or_default()),
        }
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
    clock: QuotaClock,
    /// (partner id, quota) → its bucket. Keyed by the quota too: while a changed quota
    /// reaches this instance's cached credentials one by one, a partner's tokens may
    /// name either quota, and alternating them must not start a fresh bucket each time.
    /// Buckets idle for longer than any refill takes are full anyway, so forgetting
    /// them loses nothing.
    buckets: Cache<(String, RateQuota), Arc<Bucket>>,
    /// Held only to create a missing bucket, so that two first requests at once share
    /// one bucket instead of one of them counting in a bucket that is then replaced.
    creating: Mutex<()>,
}

impl PartnerRateLimits {
    pub fn new(default: RateQuota, clock: Clock) -> Self {
        let longest_refill = Duration::from_secs(u64::from(MAX_BURST) + 1);
        Self {
            default,
            clock: QuotaClock {
                started: Instant::now(),
                clock,
            },
            buckets: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(longest_refill)
                .build(),
            creating: Mutex::new(()),
        }
    }

    pub fn default_quota(&self) -> RateQuota {
        self.default
    }

    fn bucket(&self, partner: &str, quota: RateQuota) -> Arc<Bucket> {
        let key = (partner.to_owned(), quota);
        if let Some(bucket) = self.buckets.get(&key) {
            return bucket;
        }
        let _creating = self.creating.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = self.buckets.get(&key) {
            return bucket;
        }
        let bucket = Arc::new(
            RateLimiter::direct_with_clock(quota.governor_quota(), self.clock.clone())
                .with_middleware::<StateInformationMiddleware>(),
        );
        self.buckets.insert(key, bucket.clone());
        bucket
    }

    /// Takes one request from `partner`'s bucket; `quota` is its override, if any. A
    /// changed override starts a new, full bucket.
    pub fn check(&self, partner: &str, quota: Option<RateQuota>) -> RateDecision {
        let quota = quota.unwrap_or(self.default);
        let bucket = self.bucket(partner, quota);
        let per_request = Duration::from_secs_f64(1.0 / f64::from(quota.requests_per_second.get()));
        let until_full = |remaining: u32| per_request * quota.burst.get().saturating_sub(remaining);
        match bucket.check() {
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
                let now = self.clock.now();
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
        // The sustained rate, whatever the burst: 100/s with a burst of 5 is 100 a second,
        // 3/s with a burst of 4 is 6 per 2 s (not 4 per 2 s, which would read as 2/s).
        assert_eq!(quota(100, 5).policy_header(), "\"partner\";q=100;w=1");
        assert_eq!(quota(3, 4).policy_header(), "\"partner\";q=6;w=2");
        assert_eq!(quota(1, 3).policy_header(), "\"partner\";q=3;w=3");
    }

    #[test]
    fn tokens_naming_an_old_and_a_new_quota_do_not_reset_each_other() {
        let limits = PartnerRateLimits::new(quota(1, 1), Clock::system());
        let (old, new) = (quota(1, 2), quota(1, 3));
        let mut allowed = 0;
        for i in 0..10 {
            let named = if i % 2 == 0 { old } else { new };
            if limits.check("a", Some(named)).refused_for.is_none() {
                allowed += 1;
            }
        }
        assert_eq!(
            allowed, 5,
            "2 from one bucket and 3 from the other, no more"
        );
    }

    #[test]
    fn a_clock_moved_back_never_goes_before_the_start() {
        let clock = Clock::system();
        let limits = PartnerRateLimits::new(quota(1, 1), clock.clone());
        assert!(limits.check("a", None).refused_for.is_none());
        clock.advance(chrono::TimeDelta::seconds(2));
        assert!(limits.check("a", None).refused_for.is_none());
        // A test moving the clock back (as NTP might move the wall clock) does not go
        // before the start, and refills nothing early.
        clock.advance(chrono::TimeDelta::hours(-1));
        let refused = limits.check("a", None);
        assert!(refused
            .refused_for
            .is_some_and(|w| w <= Duration::from_secs(4)));
    }

    #[test]
    fn out_of_range_quotas_are_refused() {
        assert!(RateQuota::new(0, 1).is_none());
        assert!(RateQuota::new(1, 0).is_none());
        assert!(RateQuota::new(MAX_PER_SECOND + 1, 1).is_none());
        assert!(RateQuota::new(1, MAX_BURST + 1).is_none());
    }
}
