//! simrenew: the renewal (top-up) backend for FM cards and eSIMs.

pub mod activation;
pub mod app;
pub mod auth;
pub mod cards;
pub mod catalog;
pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod error;
pub mod health;
pub mod http;
pub mod idempotency;
pub mod openapi;
pub mod orders;
pub mod pagination;
pub mod partners;
pub mod payments;
pub mod telemetry;
pub mod usage;
pub mod wallet;
