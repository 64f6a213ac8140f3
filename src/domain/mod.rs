//! Value types that validate on construction: once you hold one, it is valid.

pub mod money;
pub mod time;

pub use money::{Currency, Money};
