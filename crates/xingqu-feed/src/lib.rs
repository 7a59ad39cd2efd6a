//! Xingqu's interest model and its offline evaluation. In memory and pure: no I/O, no clock,
//! deterministic given a seed.
//!
//! [`interactions`] reads a `user,item,timestamp[,weight]` log, [`split`] holds out test data by
//! a protocol, [`models`] are the recommenders (the project's EASE model and the popularity and
//! item-kNN baselines), [`metrics`] scores top-10 lists against the held-out data, and [`eval`]
//! runs them all.

pub mod eval;
pub mod interactions;
pub mod linalg;
pub mod metrics;
pub mod models;
pub mod rerank;
pub mod split;

pub use xingqu_domain::rng::SplitMix64;
