//! simrenew: the renewal (top-up) backend for FM cards and eSIMs.

pub mod activation;
pub mod app;
pub mod auth;
pub mod business_metrics;
pub mod cards;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod error;
pub mod events;
pub mod fulfilment;
pub mod health;
pub mod http;
pub mod i18n;
pub mod idempotency;
pub mod notifications;
pub mod openapi;
pub mod operations;
pub mod orders;
pub mod pagination;
pub mod partners;
pub mod payments;
pub mod rate_limit;
pub mod request_scope;
pub mod state;
pub mod subscriptions;
pub mod telemetry;
pub mod usage;
pub mod verification;
pub mod wallet;

#[cfg(test)]
mod tests {
    /// Every stored enum is shown (serde, the OpenAPI document) by the name it is stored
    /// by: the two come from one declaration and must not drift apart.
    #[test]
    fn stored_names() {
        fn check<T: serde::Serialize + Copy>(all: &[T], name: impl Fn(T) -> &'static str) {
            for &value in all {
                assert_eq!(serde_json::to_value(value).unwrap(), name(value));
            }
        }
        check(crate::orders::state::OrderStatus::ALL, |v| v.as_str());
        check(crate::orders::model::PaymentStatus::ALL, |v| v.as_str());
        check(crate::domain::PaymentMethod::ALL, |v| v.as_str());
        check(crate::domain::PartnerStatus::ALL, |v| v.as_str());
        check(crate::activation::ActivationMode::ALL, |v| v.as_str());
        check(crate::activation::ActivationStatus::ALL, |v| v.as_str());
        check(crate::wallet::EntryKind::ALL, |v| v.as_str());
        check(crate::catalog::model::Period::ALL, |v| v.as_str());
        check(crate::catalog::model::PlanStatus::ALL, |v| v.as_str());
        check(crate::error::ErrorCode::ALL, |v| v.as_str());
        check(crate::idempotency::KeyState::ALL, |v| v.as_str());
        check(crate::usage::UsageKind::ALL, |v| v.as_str());
        check(crate::events::EventType::ALL, |v| v.as_str());
        check(crate::events::endpoints::EndpointStatus::ALL, |v| {
            v.as_str()
        });
        check(crate::events::delivery::DeliveryStatus::ALL, |v| v.as_str());
        check(crate::domain::ProfileState::ALL, |v| v.as_str());
        check(crate::verification::store::CodeStatus::ALL, |v| v.as_str());
        check(crate::notifications::store::NoticeKind::ALL, |v| v.as_str());
        check(crate::subscriptions::model::SubscriptionStatus::ALL, |v| {
            v.as_str()
        });
    }
}
