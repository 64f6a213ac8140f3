//! The HTTP test suite, one test crate (`cargo test --test api`) so that it links once.
//! Each module is one capability; `helpers` is the shared harness and comes first, so
//! its macros (`on_both_backends!`) are in scope in every module after it.

#[macro_use]
mod helpers;

mod activation;
mod auth;
mod cards;
mod catalog;
mod demo;
mod events;
mod fake_sms;
mod fake_stripe;
mod foundation;
mod localisation;
mod notifications;
mod openapi;
mod operations;
mod orders;
mod partners;
mod payments;
mod profiles;
mod rate_limits;
mod receiver;
mod subscriptions;
mod verification;
mod webhooks;
