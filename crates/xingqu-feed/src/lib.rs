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

/// A small deterministic generator (splitmix64) for seeded splits.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}
