//! A small deterministic generator (splitmix64) for everything seeded: demo data, evaluation
//! splits, benchmark workloads. Not for secrets.

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

    /// A value in `0..n` (`n` = 0 is taken as 1).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn same_seed_same_sequence() {
        let (mut a, mut b) = (super::SplitMix64::new(7), super::SplitMix64::new(7));
        assert_eq!((a.next_u64(), a.below(10)), (b.next_u64(), b.below(10)));
        assert!(super::SplitMix64::new(7).below(0) == 0);
    }
}
