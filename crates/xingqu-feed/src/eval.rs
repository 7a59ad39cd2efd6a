//! Offline evaluation: a model's top-10 lists for every evaluated user against the held-out items.

use crate::metrics::{Accumulator, Metrics, top_k};
use crate::models::Recommender;
use crate::rerank::{Candidate, Exposure, Rules, rerank};
use crate::split::{Protocol, Split};

pub const K: usize = 10;

/// Scores every user with held-out items: ranking over all items (no sampled negatives),
/// excluding the user's training items when the protocol says so.
pub fn evaluate(
    model: &dyn Recommender,
    split: &Split,
    histories: &[Vec<u32>],
    weights: &[Vec<f32>],
    n_items: usize,
    protocol: Protocol,
) -> Metrics {
    let mut accumulator = Accumulator::new(n_items);
    let mut scores = vec![0f32; n_items];
    let empty: Vec<u32> = Vec::new();
    for (user, held_out) in split.test.iter().enumerate() {
        if held_out.is_empty() {
            continue;
        }
        let history = histories.get(user).unwrap_or(&empty);
        let user_weights = weights.get(user).map_or(&[][..], Vec::as_slice);
        model.score_weighted(history, user_weights, &mut scores);
        let excluded = if protocol.excludes_training_items() { history.as_slice() } else { &[] };
        let ranked = top_k(&scores, excluded, K);
        accumulator.add(&ranked, held_out, K);
    }
    accumulator.finish()
}

/// Candidates a page is re-ranked from.
const CANDIDATES: usize = 200;

/// Like [`evaluate`], but each list is re-ranked by `rules` from the model's top candidates;
/// `support_bits(item)` says which traffic-support programmes an item belongs to. Returns the
/// metrics and the exposure delivered, to weigh what each boost costs against what it delivers.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_reranked(
    model: &dyn Recommender,
    split: &Split,
    histories: &[Vec<u32>],
    weights: &[Vec<f32>],
    n_items: usize,
    protocol: Protocol,
    rules: &Rules,
    support_bits: &dyn Fn(u32) -> u32,
) -> (Metrics, Exposure) {
    let mut accumulator = Accumulator::new(n_items);
    let mut exposure = Exposure::default();
    let mut scores = vec![0f32; n_items];
    let empty: Vec<u32> = Vec::new();
    for (user, held_out) in split.test.iter().enumerate() {
        if held_out.is_empty() {
            continue;
        }
        let history = histories.get(user).unwrap_or(&empty);
        let user_weights = weights.get(user).map_or(&[][..], Vec::as_slice);
        model.score_weighted(history, user_weights, &mut scores);
        let excluded = if protocol.excludes_training_items() { history.as_slice() } else { &[] };
        let candidates: Vec<Candidate> = top_k(&scores, excluded, CANDIDATES)
            .into_iter()
            .map(|item| Candidate {
                item,
                score: scores[item as usize],
                author: item,
                support_bits: support_bits(item),
                blocked: false,
            })
            .collect();
        let page = rerank(&candidates, rules, &[], K, &mut exposure);
        let ranked: Vec<u32> = page.iter().map(|r| r.item).collect();
        accumulator.add(&ranked, held_out, K);
    }
    (accumulator.finish(), exposure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interactions::parse;
    use crate::models::{Ease, Popularity, histories, recency_weights};
    use crate::split::split;

    /// Ten tastes of ten items each; every user lives in one taste and takes most of it.
    fn log() -> crate::interactions::Log {
        let mut rng = crate::SplitMix64::new(3);
        let mut text = String::new();
        for user in 0..200 {
            let taste = user % 10;
            for item in 0..10 {
                if rng.below(10) < 7 {
                    text.push_str(&format!("u{user},i{},{}\n", taste * 10 + item, rng.below(1000)));
                }
            }
        }
        parse(&text).expect("log")
    }

    #[test]
    fn ease_finds_tastes_popularity_cannot_and_runs_are_repeatable() {
        let log = log();
        let protocol = Protocol::Random7525 { seed: 11 };
        let split = split(&log, protocol);
        let histories = histories(&split.train, log.n_users);
        let weights = recency_weights(&split.train, &histories, 10.0, 0.6);
        let run = || {
            let mut ease = Ease::new(10.0, 1000);
            ease.fit(&histories, log.n_items).expect("fit");
            evaluate(&ease, &split, &histories, &weights, log.n_items, protocol)
        };
        let first = run();
        assert_eq!(first, run(), "deterministic given the seed");
        let mut popularity = Popularity::default();
        popularity.fit(&histories, log.n_items).expect("fit");
        let baseline = evaluate(&popularity, &split, &histories, &weights, log.n_items, protocol);
        assert!(
            first.recall > 0.9 && first.ndcg > 0.6 && first.ndcg > 5.0 * baseline.ndcg,
            "{first:?} vs {baseline:?}"
        );
    }
}
