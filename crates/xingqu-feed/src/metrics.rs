//! Top-N metrics over held-out items: precision, recall, NDCG, MAP, hit rate, catalog coverage.

/// Averages over evaluated users.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Metrics {
    pub precision: f64,
    pub recall: f64,
    pub ndcg: f64,
    pub map: f64,
    pub hit_rate: f64,
    /// Distinct items recommended to anyone, over all items.
    pub coverage: f64,
    pub users: usize,
}

/// Accumulates per-user results.
#[derive(Debug, Clone, Default)]
pub struct Accumulator {
    sums: Metrics,
    recommended: Vec<bool>,
}

impl Accumulator {
    pub fn new(n_items: usize) -> Self {
        Self { sums: Metrics::default(), recommended: vec![false; n_items] }
    }

    /// Adds one user's ranked list (best first, length `k`) against their held-out items (sorted).
    pub fn add(&mut self, ranked: &[u32], held_out: &[u32], k: usize) {
        if held_out.is_empty() {
            return;
        }
        let mut hits = 0usize;
        let mut dcg = 0.0;
        let mut ap = 0.0;
        for (rank, item) in ranked.iter().take(k).enumerate() {
            if let Some(seen) = self.recommended.get_mut(*item as usize) {
                *seen = true;
            }
            if held_out.binary_search(item).is_ok() {
                hits += 1;
                dcg += 1.0 / ((rank + 2) as f64).log2();
                ap += hits as f64 / (rank + 1) as f64;
            }
        }
        let ideal = held_out.len().min(k);
        let idcg: f64 = (0..ideal).map(|rank| 1.0 / ((rank + 2) as f64).log2()).sum();
        self.sums.precision += hits as f64 / k as f64;
        self.sums.recall += hits as f64 / held_out.len() as f64;
        self.sums.ndcg += dcg / idcg;
        self.sums.map += ap / ideal as f64;
        self.sums.hit_rate += if hits > 0 { 1.0 } else { 0.0 };
        self.sums.users += 1;
    }

    pub fn finish(&self) -> Metrics {
        let users = self.sums.users.max(1) as f64;
        let n_items = self.recommended.len().max(1) as f64;
        Metrics {
            precision: self.sums.precision / users,
            recall: self.sums.recall / users,
            ndcg: self.sums.ndcg / users,
            map: self.sums.map / users,
            hit_rate: self.sums.hit_rate / users,
            coverage: self.recommended.iter().filter(|&&r| r).count() as f64 / n_items,
            users: self.sums.users,
        }
    }
}

/// The `k` best-scoring items, skipping `excluded` (sorted), best first; ties to the lower index.
pub fn top_k(scores: &[f32], excluded: &[u32], k: usize) -> Vec<u32> {
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
    for (item, &score) in scores.iter().enumerate() {
        let item = item as u32;
        if excluded.binary_search(&item).is_ok() {
            continue;
        }
        if best.len() == k && best.last().is_some_and(|&(worst, _)| score <= worst) {
            continue;
        }
        let at = best.partition_point(|&(s, i)| s > score || (s == score && i < item));
        best.insert(at, (score, item));
        best.truncate(k);
    }
    best.into_iter().map(|(_, item)| item).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_empty_rankings() {
        let mut perfect = Accumulator::new(10);
        perfect.add(&[3, 5], &[3, 5], 2);
        let m = perfect.finish();
        assert_eq!((m.precision, m.recall, m.ndcg, m.map, m.hit_rate), (1.0, 1.0, 1.0, 1.0, 1.0));
        assert_eq!(m.coverage, 0.2);
        let mut miss = Accumulator::new(10);
        miss.add(&[1, 2], &[3], 2);
        assert_eq!(miss.finish().ndcg, 0.0);
        let mut second = Accumulator::new(10);
        second.add(&[1, 3], &[3], 2);
        let m = second.finish();
        assert!((m.ndcg - 1.0 / 3f64.log2()).abs() < 1e-12 && m.map == 0.5 && m.precision == 0.5);
    }

    #[test]
    fn top_k_orders_and_excludes() {
        assert_eq!(top_k(&[0.1, 0.9, 0.5, 0.9, 0.3], &[2], 3), vec![1, 3, 4]);
        assert_eq!(top_k(&[1.0, 2.0], &[], 5), vec![1, 0]);
    }
}
