//! Xingqu's rules, pure: money, accounts, catalog. No I/O, no async, no serde, no clock.
//!
//! Every type here is valid by construction: raw input becomes a domain value through a `parse`
//! function at the edge, and code past the edge never re-checks it.

pub mod account;
pub mod after_sale;
pub mod allocation;
pub mod assurance;
pub mod campaign;
pub mod catalog;
pub mod checkout;
pub mod ledger;
pub mod money;
pub mod order;
pub mod price_protection;
pub mod promo;
pub mod rng;
pub mod text;

/// A rule broken by input: which field, a stable snake_case code, and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: &'static str,
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self { field, code, message: message.into() }
    }
}
