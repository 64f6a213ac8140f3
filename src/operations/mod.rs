//! What the platform running the service reads: `/metrics`, with readings taken from
//! several capabilities (wallets, orders, webhook deliveries) when it is scraped.

pub mod metrics;
pub mod progress;
