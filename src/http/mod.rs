//! HTTP plumbing shared by every capability: request ids, extractor errors, the
//! fallback for unmatched routes, metrics.

pub mod body_deadline;
pub mod extractors;
pub mod fallback;
pub mod language;
pub mod metrics;
pub mod outbound;
pub mod rate_limit_headers;
pub mod request_id;
