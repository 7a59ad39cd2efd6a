//! Lucky bags (超级福袋): who may enter a draw, and the draw itself, verifiable by anyone.
//!
//! Before the draw the operator publishes [`commitment`] of a secret 32-byte seed; after it, the
//! seed and the participant list. Anyone can then check the seed against the commitment and redo
//! [`draw`] — so the operator could not have picked the seed after seeing who entered.

use sha2::{Digest, Sha256};

/// What a viewer must have done to enter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conditions {
    pub watch_s_min: i64,
    /// A word the viewer must have commented; `None`: no comment needed.
    pub comment_keyword: Option<String>,
    pub must_follow: bool,
}

/// What a viewer did in the live room before the deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerActivity {
    pub watched_s: i64,
    pub comments: Vec<String>,
    pub follows: bool,
}

/// Whether the viewer met every condition. A keyword matches a comment that contains it, exactly
/// as written (no case folding: it is usually Chinese).
pub fn eligible(conditions: &Conditions, activity: &ViewerActivity) -> bool {
    activity.watched_s >= conditions.watch_s_min
        && (!conditions.must_follow || activity.follows)
        && conditions.comment_keyword.as_ref().is_none_or(|k| activity.comments.iter().any(|c| c.contains(k.as_str())))
}

/// Lowercase hex SHA-256 of the seed, published before the draw.
pub fn commitment(seed: &[u8; 32]) -> String {
    Sha256::digest(seed).iter().map(|b| format!("{b:02x}")).collect()
}

/// The j-th random number of a draw: the first 8 bytes, big-endian, of SHA-256(seed ‖ j as 8
/// big-endian bytes).
fn random(seed: &[u8; 32], j: u64) -> u64 {
    let digest = Sha256::new().chain_update(seed).chain_update(j.to_be_bytes()).finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Draws `min(winners, n)` distinct winners from the eligible `participants` (the caller filters
/// with [`eligible`]), in draw order. Ids are sorted and deduplicated first, so anyone given the
/// same list in any order gets the same winners. Then a partial Fisher–Yates shuffle: for place
/// `i`, with `m = n - i` ids left, take random numbers `j = 0, 1, 2, …` (one counter for the whole
/// draw, rejected ones included) until one is below the largest multiple of `m` not above 2^64,
/// and swap place `i` with place `i + x % m`. Rejection keeps every id equally likely. In Python:
///
/// ```python
/// import hashlib
/// def draw(seed: bytes, participants, k):
///     ids = sorted(set(participants)); n = len(ids); j = 0
///     for i in range(min(k, n)):
///         m = n - i; limit = (2**64 // m) * m
///         while True:
///             x = int.from_bytes(hashlib.sha256(seed + j.to_bytes(8, "big")).digest()[:8], "big"); j += 1
///             if x < limit: break
///         r = i + x % m
///         ids[i], ids[r] = ids[r], ids[i]
///     return ids[:min(k, n)]
/// ```
pub fn draw(seed: &[u8; 32], participants: &[i64], winners: usize) -> Vec<i64> {
    let mut ids = participants.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let k = winners.min(ids.len());
    let mut j = 0u64;
    for i in 0..k {
        let m = (ids.len() - i) as u64;
        // 2^64 mod m: numbers at or above 2^64 minus it would favour the low indices.
        let excess = (u64::MAX % m + 1) % m;
        let x = loop {
            let x = random(seed, j);
            j += 1;
            if x <= u64::MAX - excess {
                break x;
            }
        };
        ids.swap(i, i + (x % m) as usize);
    }
    ids.truncate(k);
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const SEED: [u8; 32] = [7; 32];

    #[test]
    fn known_answer_matches_the_python_reference() {
        let participants: Vec<i64> = (1..=10).collect();
        assert_eq!(draw(&SEED, &participants, 3), vec![3, 1, 9]);
        assert_eq!(draw(&SEED, &participants, 10), vec![3, 1, 9, 6, 4, 7, 10, 5, 8, 2]);
        assert_eq!(commitment(&SEED), "4bb06f8e4e3a7715d201d573d0aa423762e55dabd61a2c02278fa56cc6d294e0");
    }

    #[test]
    fn deterministic_distinct_and_order_free() {
        let participants: Vec<i64> = (100..400).rev().chain(150..160).collect();
        let winners = draw(&SEED, &participants, 20);
        assert_eq!(winners.len(), 20);
        assert_eq!(winners.iter().collect::<BTreeSet<_>>().len(), 20);
        assert!(winners.iter().all(|w| participants.contains(w)));
        let mut shuffled = participants.clone();
        shuffled.sort_unstable();
        assert_eq!(draw(&SEED, &shuffled, 20), winners, "the caller's order does not matter");
        assert_ne!(draw(&[8; 32], &participants, 20), winners, "another seed, other winners");
    }

    #[test]
    fn more_winners_than_entrants_takes_everyone() {
        let mut everyone = draw(&SEED, &[5, 3, 3, 9], 10);
        everyone.sort_unstable();
        assert_eq!(everyone, vec![3, 5, 9]);
        assert!(draw(&SEED, &[], 3).is_empty());
        assert!(draw(&SEED, &[1, 2], 0).is_empty());
    }

    #[test]
    fn eligibility() {
        let conditions = Conditions { watch_s_min: 60, comment_keyword: Some("福袋".to_owned()), must_follow: true };
        let viewer = ViewerActivity { watched_s: 60, comments: vec!["我要福袋!".to_owned()], follows: true };
        assert!(eligible(&conditions, &viewer));
        assert!(!eligible(&conditions, &ViewerActivity { watched_s: 59, ..viewer.clone() }));
        assert!(!eligible(&conditions, &ViewerActivity { follows: false, ..viewer.clone() }));
        assert!(!eligible(&conditions, &ViewerActivity { comments: vec!["好".to_owned()], ..viewer.clone() }));
        let open = Conditions { watch_s_min: 0, comment_keyword: None, must_follow: false };
        assert!(eligible(&open, &ViewerActivity { watched_s: 0, comments: vec![], follows: false }));
    }
}
