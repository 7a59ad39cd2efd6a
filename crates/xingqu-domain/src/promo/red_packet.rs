//! Red-packet pools: how a pool is split among the buyers who claim it, fixed or random.

use crate::Invalid;
use crate::allocation::allocate;
use crate::promo::coupon::COUPON_FEN_MAX;
use crate::rng::SplitMix64;

pub const RECIPIENTS_MAX: i64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Every packet holds `amount_fen`; the pool is a whole number of packets.
    Fixed { amount_fen: i64 },
    /// `recipients` packets of random size, each at least `min_fen`.
    Random { recipients: i64, min_fen: i64 },
}

impl Split {
    /// `mode` is `fixed` (uses `amount_fen`) or `random` (uses `recipients` and `min_fen`); the
    /// values a mode does not use must be 0, as for coupon kinds.
    pub fn parse(mode: &str, amount_fen: i64, recipients: i64, min_fen: i64) -> Result<Self, Invalid> {
        let in_range = |field: &'static str, value: i64, max: i64| {
            if (1..=max).contains(&value) {
                Ok(value)
            } else {
                Err(Invalid::new(field, "out_of_range", format!("must be between 1 and {max}")))
            }
        };
        let unused = |field: &'static str, value: i64| {
            if value == 0 {
                Ok(())
            } else {
                Err(Invalid::new(field, "unexpected_field", format!("{mode} has no {field}")))
            }
        };
        match mode {
            "fixed" => {
                unused("recipients", recipients)?;
                unused("min_fen", min_fen)?;
                Ok(Split::Fixed { amount_fen: in_range("amount_fen", amount_fen, COUPON_FEN_MAX)? })
            }
            "random" => {
                unused("amount_fen", amount_fen)?;
                Ok(Split::Random {
                    recipients: in_range("recipients", recipients, RECIPIENTS_MAX)?,
                    min_fen: in_range("min_fen", min_fen, COUPON_FEN_MAX)?,
                })
            }
            _ => Err(Invalid::new("mode", "unknown_mode", "must be fixed or random")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Split::Fixed { .. } => "fixed",
            Split::Random { .. } => "random",
        }
    }

    /// The packets a pool of `pool_fen` makes under this split.
    pub fn packets(self, pool_fen: i64, rng: &mut SplitMix64) -> Result<Vec<i64>, Invalid> {
        match self {
            Split::Fixed { amount_fen } => {
                let count = pool_fen / amount_fen.max(1);
                if pool_fen <= 0 || pool_fen % amount_fen.max(1) != 0 || count > RECIPIENTS_MAX {
                    return Err(Invalid::new(
                        "pool_fen",
                        "not_a_multiple",
                        format!("must be 1 to {RECIPIENTS_MAX} packets of {amount_fen} 分"),
                    ));
                }
                Ok(vec![amount_fen; usize::try_from(count).unwrap_or(0)])
            }
            Split::Random { recipients, min_fen } => {
                split_random(pool_fen, usize::try_from(recipients).unwrap_or(0), min_fen, rng)
            }
        }
    }
}

/// Splits `pool_fen` into `recipients` parts of at least `min_fen` that sum exactly to the pool:
/// each gets the minimum, and the rest is shared by independent uniform weights through
/// [`allocate`]. Independent weights keep every part's expectation equal, unlike "take a random
/// share of what is left", which favours whoever opens first.
pub fn split_random(pool_fen: i64, recipients: usize, min_fen: i64, rng: &mut SplitMix64) -> Result<Vec<i64>, Invalid> {
    let count = i64::try_from(recipients).unwrap_or(i64::MAX);
    if !(1..=RECIPIENTS_MAX).contains(&count) {
        return Err(Invalid::new("recipients", "out_of_range", format!("must be between 1 and {RECIPIENTS_MAX}")));
    }
    if !(1..=COUPON_FEN_MAX).contains(&min_fen) {
        return Err(Invalid::new("min_fen", "out_of_range", format!("must be between 1 and {COUPON_FEN_MAX}")));
    }
    let rest_fen = count.checked_mul(min_fen).map(|floor_fen| pool_fen - floor_fen).filter(|&r| r >= 0);
    let Some(rest_fen) = rest_fen else {
        return Err(Invalid::new(
            "pool_fen",
            "pool_too_small",
            format!("must hold {recipients} × {min_fen} 分 at least"),
        ));
    };
    // Weights of 1 to 2^31 never all vanish and keep `allocate`'s products far from overflow.
    let weights: Vec<i64> = (0..recipients).map(|_| (rng.next_u64() >> 33) as i64 + 1).collect();
    let shares = allocate(rest_fen, &weights)
        .ok_or_else(|| Invalid::new("pool_fen", "out_of_range", "the pool is too large to split"))?;
    Ok(shares.into_iter().map(|share| share + min_fen).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_and_packets() {
        let code = |r: Result<Split, Invalid>| r.map_err(|e| (e.field, e.code));
        assert_eq!(code(Split::parse("fixed", 500, 0, 0)), Ok(Split::Fixed { amount_fen: 500 }));
        assert_eq!(code(Split::parse("fixed", 0, 0, 0)), Err(("amount_fen", "out_of_range")));
        assert_eq!(code(Split::parse("fixed", 500, 3, 0)), Err(("recipients", "unexpected_field")));
        assert_eq!(code(Split::parse("random", 0, 10, 1)), Ok(Split::Random { recipients: 10, min_fen: 1 }));
        assert_eq!(code(Split::parse("random", 0, RECIPIENTS_MAX + 1, 1)), Err(("recipients", "out_of_range")));
        assert_eq!(code(Split::parse("lottery", 0, 0, 0)), Err(("mode", "unknown_mode")));
        let mut rng = SplitMix64::new(1);
        assert_eq!(Split::Fixed { amount_fen: 500 }.packets(1_500, &mut rng), Ok(vec![500; 3]));
        assert!(Split::Fixed { amount_fen: 500 }.packets(1_499, &mut rng).is_err());
        assert_eq!(Split::Random { recipients: 4, min_fen: 1 }.packets(10, &mut rng).map(|p| p.len()), Ok(4));
    }

    #[test]
    fn random_split_limits() {
        let mut rng = SplitMix64::new(7);
        assert_eq!(split_random(300, 3, 100, &mut rng), Ok(vec![100; 3]), "exactly the minimum each");
        assert_eq!(split_random(299, 3, 100, &mut rng).map_err(|e| e.code), Err("pool_too_small"));
        assert_eq!(split_random(300, 0, 1, &mut rng).map_err(|e| e.code), Err("out_of_range"));
        assert_eq!(split_random(300, 100_001, 1, &mut rng).map_err(|e| e.field), Err("recipients"));
        assert_eq!(split_random(300, 3, 0, &mut rng).map_err(|e| e.field), Err("min_fen"));
        assert_eq!(split_random(300, 3, 1, &mut SplitMix64::new(9)), split_random(300, 3, 1, &mut SplitMix64::new(9)));
    }

    proptest! {
        #[test]
        fn random_parts_sum_to_the_pool_and_keep_the_minimum(
            seed in any::<u64>(), recipients in 1usize..500, min_fen in 1i64..1_000, extra in 0i64..10_000_000,
        ) {
            let pool_fen = recipients as i64 * min_fen + extra;
            let parts = split_random(pool_fen, recipients, min_fen, &mut SplitMix64::new(seed)).expect("valid");
            prop_assert_eq!(parts.len(), recipients);
            prop_assert_eq!(parts.iter().sum::<i64>(), pool_fen);
            prop_assert!(parts.iter().all(|&p| p >= min_fen));
        }
    }
}
