//! Recommenders: EASE (the project's interest model) and the popularity and item-kNN baselines.
//! Each learns from training interactions and scores every item for a user's history.

use crate::interactions::Interaction;
use crate::linalg::{Singular, invert_in_place};

/// A model that learns from interactions and scores items for a history.
pub trait Recommender {
    fn name(&self) -> &'static str;
    /// Learns from `histories`: per user, the distinct items they interacted with (sorted).
    fn fit(&mut self, histories: &[Vec<u32>], n_items: usize) -> Result<(), Singular>;
    /// Writes a score for every item into `scores` (length `n_items`) for a user with `history`.
    fn score(&self, history: &[u32], scores: &mut [f32]) {
        self.score_weighted(history, &[], scores);
    }
    /// Like [`Recommender::score`], with a weight per history item (same order; empty: all 1).
    /// Models that learn from recency use it; the others ignore it.
    fn score_weighted(&self, history: &[u32], weights: &[f32], scores: &mut [f32]);
}

/// Per user, a weight for each item of their (sorted) history: how recently they touched it.
/// The most recent item weighs 1, one `half_life` items older ½, and so on, floored at `floor`:
/// fresh actions count more, old ones never vanish.
pub fn recency_weights(train: &[Interaction], histories: &[Vec<u32>], half_life: f32, floor: f32) -> Vec<Vec<f32>> {
    let mut last_seen: Vec<std::collections::HashMap<u32, i64>> =
        vec![std::collections::HashMap::new(); histories.len()];
    for interaction in train {
        let entry = last_seen[interaction.user as usize].entry(interaction.item).or_insert(i64::MIN);
        *entry = (*entry).max(interaction.timestamp);
    }
    histories
        .iter()
        .zip(&last_seen)
        .map(|(history, seen)| {
            let mut by_time: Vec<(i64, u32)> =
                history.iter().map(|&item| (seen.get(&item).copied().unwrap_or(0), item)).collect();
            by_time.sort_unstable_by(|a, b| b.cmp(a));
            let mut age_of = std::collections::HashMap::with_capacity(by_time.len());
            for (age, &(_, item)) in by_time.iter().enumerate() {
                age_of.insert(item, age);
            }
            history
                .iter()
                .map(|item| {
                    let age = age_of.get(item).copied().unwrap_or(0) as f32;
                    floor + (1.0 - floor) * 0.5f32.powf(age / half_life)
                })
                .collect()
        })
        .collect()
}

/// Per user, the distinct items of their training interactions, sorted.
pub fn histories(train: &[Interaction], n_users: usize) -> Vec<Vec<u32>> {
    let mut histories = vec![Vec::new(); n_users];
    for interaction in train {
        histories[interaction.user as usize].push(interaction.item);
    }
    for history in &mut histories {
        history.sort_unstable();
        history.dedup();
    }
    histories
}

fn item_counts(histories: &[Vec<u32>], n_items: usize) -> Vec<u32> {
    let mut counts = vec![0u32; n_items];
    for history in histories {
        for &item in history {
            counts[item as usize] += 1;
        }
    }
    counts
}

/// Most popular first: the baseline every model must beat.
#[derive(Debug, Default)]
pub struct Popularity {
    counts: Vec<f32>,
}

impl Recommender for Popularity {
    fn name(&self) -> &'static str {
        "popularity"
    }

    fn fit(&mut self, histories: &[Vec<u32>], n_items: usize) -> Result<(), Singular> {
        self.counts = item_counts(histories, n_items).into_iter().map(|c| c as f32).collect();
        Ok(())
    }

    fn score_weighted(&self, _history: &[u32], _weights: &[f32], scores: &mut [f32]) {
        scores.copy_from_slice(&self.counts);
    }
}

/// Item-based k-nearest neighbours: cosine similarity of items over the users who took them,
/// each item keeping its `k` most similar; a user's score for an item sums its similarity to
/// the items in their history.
#[derive(Debug)]
pub struct ItemKnn {
    pub k: usize,
    n_items: usize,
    /// Row-major `n_items × n_items`, each row pruned to its top `k`.
    similarity: Vec<f32>,
}

impl ItemKnn {
    pub fn new(k: usize) -> Self {
        Self { k, n_items: 0, similarity: Vec::new() }
    }
}

impl Recommender for ItemKnn {
    fn name(&self) -> &'static str {
        "item_knn"
    }

    fn fit(&mut self, histories: &[Vec<u32>], n_items: usize) -> Result<(), Singular> {
        self.n_items = n_items;
        let counts = item_counts(histories, n_items);
        let mut co = vec![0f32; n_items * n_items];
        for history in histories {
            for &i in history {
                let row = &mut co[i as usize * n_items..(i as usize + 1) * n_items];
                for &j in history {
                    row[j as usize] += 1.0;
                }
            }
        }
        for i in 0..n_items {
            let row = &mut co[i * n_items..(i + 1) * n_items];
            for (j, value) in row.iter_mut().enumerate() {
                let norm = ((counts[i] as f32) * (counts[j] as f32)).sqrt();
                *value = if i == j || norm == 0.0 { 0.0 } else { *value / norm };
            }
            if self.k < n_items {
                let mut sorted: Vec<f32> = row.to_vec();
                sorted.sort_by(|a, b| b.total_cmp(a));
                let threshold = sorted[self.k.saturating_sub(1)];
                let mut kept = 0;
                for value in row.iter_mut() {
                    if *value >= threshold && kept < self.k && *value > 0.0 {
                        kept += 1;
                    } else {
                        *value = 0.0;
                    }
                }
            }
        }
        self.similarity = co;
        Ok(())
    }

    fn score_weighted(&self, history: &[u32], _weights: &[f32], scores: &mut [f32]) {
        scores.fill(0.0);
        for &i in history {
            let row = &self.similarity[i as usize * self.n_items..(i as usize + 1) * self.n_items];
            for (score, s) in scores.iter_mut().zip(row) {
                *score += s;
            }
        }
    }
}

/// EASE (Steck, 2019): a linear item-to-item model with a closed form,
/// `B = I − P·diag(1/diag(P))` where `P = (XᵀX + λI)⁻¹` and `diag(B) = 0`. It learns which items
/// predict which others, including negative weights, from the whole co-occurrence structure at
/// once — one matrix inversion, no iterations, deterministic. Catalogs larger than `items_max` are
/// modelled on their most popular `items_max` items (the long tail then comes from other sources).
#[derive(Debug)]
pub struct Ease {
    pub lambda: f64,
    pub items_max: usize,
    /// Model index → item, and item → model index (`u32::MAX`: not modelled).
    items: Vec<u32>,
    index_of: Vec<u32>,
    /// Row-major `m × m` weights over the modelled items.
    weights: Vec<f32>,
}

impl Ease {
    pub fn new(lambda: f64, items_max: usize) -> Self {
        Self { lambda, items_max, items: Vec::new(), index_of: Vec::new(), weights: Vec::new() }
    }

    /// The items the model covers (the most popular `items_max`), sorted.
    pub fn modelled(&self) -> &[u32] {
        &self.items
    }

    /// The `k` best-scored modelled items for `history` (weights as in
    /// [`Recommender::score_weighted`]), best first, leaving out the history itself: what serving
    /// needs without scoring the whole catalogue.
    pub fn top(&self, history: &[u32], weights: &[f32], k: usize) -> Vec<(u32, f32)> {
        let m = self.items.len();
        let mut modelled = vec![0f32; m];
        let mut any = false;
        for (position, &i) in history.iter().enumerate() {
            let Some(&index) = self.index_of.get(i as usize) else { continue };
            if index == u32::MAX {
                continue;
            }
            any = true;
            let weight = weights.get(position).copied().unwrap_or(1.0);
            let row = &self.weights[index as usize * m..(index as usize + 1) * m];
            for (score, w) in modelled.iter_mut().zip(row) {
                *score += weight * w;
            }
        }
        if !any {
            return Vec::new();
        }
        // The history itself is not recommended back.
        for &i in history {
            if let Some(&index) = self.index_of.get(i as usize)
                && index != u32::MAX
            {
                modelled[index as usize] = 0.0;
            }
        }
        let mut best: Vec<(u32, f32)> = modelled
            .iter()
            .enumerate()
            .filter(|&(_, &score)| score > 0.0)
            .map(|(index, &score)| (self.items[index], score))
            .collect();
        if best.len() > k {
            best.select_nth_unstable_by(k, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            best.truncate(k);
        }
        best.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        best
    }
}

impl Recommender for Ease {
    fn name(&self) -> &'static str {
        "xingqu"
    }

    fn fit(&mut self, histories: &[Vec<u32>], n_items: usize) -> Result<(), Singular> {
        let counts = item_counts(histories, n_items);
        let mut by_popularity: Vec<u32> = (0..n_items as u32).filter(|&i| counts[i as usize] > 0).collect();
        by_popularity.sort_by_key(|&i| (std::cmp::Reverse(counts[i as usize]), i));
        by_popularity.truncate(self.items_max);
        by_popularity.sort_unstable();
        self.items = by_popularity;
        self.index_of = vec![u32::MAX; n_items];
        for (index, &item) in self.items.iter().enumerate() {
            self.index_of[item as usize] = index as u32;
        }
        let m = self.items.len();
        let mut gram = vec![0f64; m * m];
        for history in histories {
            let modelled: Vec<usize> = history
                .iter()
                .map(|&i| self.index_of[i as usize])
                .filter(|&i| i != u32::MAX)
                .map(|i| i as usize)
                .collect();
            for &i in &modelled {
                let row = &mut gram[i * m..(i + 1) * m];
                for &j in &modelled {
                    row[j] += 1.0;
                }
            }
        }
        for i in 0..m {
            gram[i * m + i] += self.lambda;
        }
        invert_in_place(&mut gram, m)?;
        let p = gram;
        let mut weights = vec![0f32; m * m];
        for i in 0..m {
            for j in 0..m {
                if i != j {
                    weights[i * m + j] = (-p[i * m + j] / p[j * m + j]) as f32;
                }
            }
        }
        self.weights = weights;
        Ok(())
    }

    fn score_weighted(&self, history: &[u32], weights: &[f32], scores: &mut [f32]) {
        scores.fill(0.0);
        let m = self.items.len();
        let mut modelled = vec![0f32; m];
        for (position, &i) in history.iter().enumerate() {
            let Some(&index) = self.index_of.get(i as usize) else { continue };
            if index == u32::MAX {
                continue;
            }
            let weight = weights.get(position).copied().unwrap_or(1.0);
            let row = &self.weights[index as usize * m..(index as usize + 1) * m];
            for (score, w) in modelled.iter_mut().zip(row) {
                *score += weight * w;
            }
        }
        for (index, &item) in self.items.iter().enumerate() {
            scores[item as usize] = modelled[index];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two tastes: users who take 0 also take 1; users who take 2 also take 3.
    fn histories() -> Vec<Vec<u32>> {
        let mut h = Vec::new();
        for _ in 0..20 {
            h.push(vec![0, 1]);
            h.push(vec![2, 3]);
        }
        h.push(vec![0]);
        h
    }

    fn top(model: &dyn Recommender, history: &[u32]) -> u32 {
        let mut scores = vec![0f32; 5];
        model.score(history, &mut scores);
        crate::metrics::top_k(&scores, history, 1)[0]
    }

    #[test]
    fn models_learn_co_occurrence() {
        let h = histories();
        let mut ease = Ease::new(1.0, 100);
        ease.fit(&h, 5).expect("fit");
        assert_eq!(top(&ease, &[0]), 1);
        assert_eq!(top(&ease, &[2]), 3);
        let mut knn = ItemKnn::new(2);
        knn.fit(&h, 5).expect("fit");
        assert_eq!(top(&knn, &[3]), 2);
        let mut popularity = Popularity::default();
        popularity.fit(&h, 5).expect("fit");
        assert_eq!(top(&popularity, &[]), 0);
    }

    #[test]
    fn ease_top_is_the_best_of_its_scores() {
        let h = histories();
        let mut ease = Ease::new(1.0, 100);
        ease.fit(&h, 5).expect("fit");
        let mut scores = vec![0f32; 5];
        ease.score(&[0], &mut scores);
        let top = ease.top(&[0], &[], 2);
        assert_eq!(top.first().map(|t| t.0), Some(1));
        assert!(top.iter().all(|&(item, score)| item != 0 && (scores[item as usize] - score).abs() < 1e-6));
        assert!(ease.top(&[4], &[], 2).is_empty(), "an item the model never saw scores nothing");
    }

    #[test]
    fn ease_is_deterministic_and_limits_its_catalog() {
        let h = histories();
        let (mut a, mut b) = (Ease::new(2.0, 2), Ease::new(2.0, 2));
        a.fit(&h, 5).expect("fit");
        b.fit(&h, 5).expect("fit");
        assert_eq!(a.weights, b.weights);
        assert_eq!(a.items, vec![0, 1], "the two most popular items (ties to the lower id)");
    }
}
