//! Holding out test data: the protocols `random-75-25`, `temporal-80-20` and `last-basket`.

use crate::SplitMix64;
use crate::interactions::{Interaction, Log};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// A seeded random quarter of each user's interactions is held out.
    Random7525 { seed: u64 },
    /// Each user's latest 20% by time is held out.
    Temporal8020,
    /// Each user's interactions at their latest timestamp are the test basket; items bought
    /// before stay rankable (repeat purchase counts).
    LastBasket,
}

impl Protocol {
    pub fn parse(raw: &str, seed: u64) -> Option<Protocol> {
        match raw {
            "random-75-25" => Some(Protocol::Random7525 { seed }),
            "temporal-80-20" => Some(Protocol::Temporal8020),
            "last-basket" => Some(Protocol::LastBasket),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Random7525 { .. } => "random-75-25",
            Protocol::Temporal8020 => "temporal-80-20",
            Protocol::LastBasket => "last-basket",
        }
    }

    /// Whether items the user had in training are excluded from their ranking.
    pub fn excludes_training_items(self) -> bool {
        !matches!(self, Protocol::LastBasket)
    }
}

/// Training interactions and, per user, the distinct held-out items (empty: not evaluated).
#[derive(Debug, Clone)]
pub struct Split {
    pub train: Vec<Interaction>,
    pub test: Vec<Vec<u32>>,
}

/// Splits the log by `protocol`. Users with fewer than two interactions are all training.
pub fn split(log: &Log, protocol: Protocol) -> Split {
    let mut by_user: Vec<Vec<Interaction>> = vec![Vec::new(); log.n_users];
    for interaction in &log.interactions {
        by_user[interaction.user as usize].push(*interaction);
    }
    let mut rng = match protocol {
        Protocol::Random7525 { seed } => SplitMix64::new(seed),
        _ => SplitMix64::new(0),
    };
    let mut train = Vec::with_capacity(log.interactions.len());
    let mut test = vec![Vec::new(); log.n_users];
    for (user, mut rows) in by_user.into_iter().enumerate() {
        // A deterministic order first, whatever order the file had.
        rows.sort_by_key(|r| (r.timestamp, r.item));
        let n = rows.len();
        let n_test = match protocol {
            _ if n < 2 => 0,
            Protocol::Random7525 { .. } => {
                for i in (1..n).rev() {
                    rows.swap(i, rng.below(i + 1));
                }
                ((n as f64) * 0.25).round().max(1.0) as usize
            }
            Protocol::Temporal8020 => ((n as f64) * 0.2).round().max(1.0) as usize,
            Protocol::LastBasket => {
                let last = rows[n - 1].timestamp;
                let basket = rows.iter().filter(|r| r.timestamp == last).count();
                if basket == n { 0 } else { basket }
            }
        };
        let (kept, held) = rows.split_at(n - n_test);
        train.extend_from_slice(kept);
        let mut items: Vec<u32> = held.iter().map(|r| r.item).collect();
        items.sort_unstable();
        items.dedup();
        test[user] = items;
    }
    Split { train, test }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interactions::parse;

    fn log() -> Log {
        let mut text = String::new();
        for user in 0..3 {
            for item in 0..8 {
                text.push_str(&format!("u{user},i{item},{}\n", 100 + item / 2));
            }
        }
        parse(&text).expect("log")
    }

    #[test]
    fn protocols_hold_out_what_they_say() {
        let log = log();
        let random = split(&log, Protocol::Random7525 { seed: 7 });
        assert!(random.test.iter().all(|t| t.len() == 2));
        assert_eq!(random.train.len(), 18);
        assert_eq!(split(&log, Protocol::Random7525 { seed: 7 }).test, random.test, "seeded");
        let temporal = split(&log, Protocol::Temporal8020);
        assert_eq!(temporal.test[0], vec![6, 7], "the latest 20% (2 of 8)");
        let basket = split(&log, Protocol::LastBasket);
        assert_eq!(basket.test[0], vec![6, 7], "the items at the latest timestamp");
        assert!(!Protocol::LastBasket.excludes_training_items());
    }
}
