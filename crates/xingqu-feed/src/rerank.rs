//! Re-ranking a model's candidates into a page: filtered (banned, delisted, already seen),
//! scaled by the creator grade, at most so many per author, and with operator traffic support
//! delivered against its target share of exposure. Every item says why it is there.

use std::collections::HashMap;

/// A scored candidate with what the rules need to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub item: u32,
    pub score: f32,
    pub author: u32,
    /// Bit set of the traffic-support programmes the item qualifies for (bit `i`: programme `i`).
    pub support_bits: u32,
    /// Banned or delisted: never shown.
    pub blocked: bool,
}

/// Why an item is on the page.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// The model ranked it here on its own.
    Model,
    /// A creator-grade multiplier other than 1 changed its score.
    CreatorGrade(f32),
    /// It took a slot reserved for an operator's traffic-support programme.
    TrafficSupport(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub item: u32,
    pub score: f32,
    pub reasons: Vec<Reason>,
}

/// An operator's programme: items with `bit` should get `target_share` of all exposure.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficSupport {
    pub name: String,
    pub bit: u32,
    pub target_share: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub supports: Vec<TrafficSupport>,
    /// At most this many items of one author on a page (0: no limit).
    pub max_per_author: usize,
    /// Creator-grade multipliers by author (absent: 1).
    pub grade_multiplier: HashMap<u32, f32>,
}

/// Exposure delivered so far: what traffic support measures itself against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposure {
    pub total: u64,
    /// Impressions per programme, by programme index.
    pub supported: Vec<u64>,
}

impl Exposure {
    pub fn share(&self, programme: usize) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.supported.get(programme).copied().unwrap_or(0) as f64 / self.total as f64
        }
    }
}

/// Builds a page of at most `k` items. `seen` (sorted) are items already shown in this session.
/// Updates `exposure` with what the page delivers.
pub fn rerank(candidates: &[Candidate], rules: &Rules, seen: &[u32], k: usize, exposure: &mut Exposure) -> Vec<Ranked> {
    let mut pool: Vec<(Candidate, f32, Option<f32>)> = candidates
        .iter()
        .filter(|c| !c.blocked && seen.binary_search(&c.item).is_err())
        .map(|c| {
            let multiplier = rules.grade_multiplier.get(&c.author).copied();
            (c.clone(), c.score * multiplier.unwrap_or(1.0), multiplier.filter(|m| (*m - 1.0).abs() > f32::EPSILON))
        })
        .collect();
    pool.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.item.cmp(&b.0.item)));

    // The natural page: best first, at most `max_per_author` per author.
    let mut per_author: HashMap<u32, usize> = HashMap::new();
    let mut page: Vec<(usize, Reason)> = Vec::with_capacity(k);
    let allowed = |per_author: &HashMap<u32, usize>, author: u32| {
        rules.max_per_author == 0 || per_author.get(&author).copied().unwrap_or(0) < rules.max_per_author
    };
    for (index, (candidate, _, _)) in pool.iter().enumerate() {
        if page.len() == k {
            break;
        }
        if allowed(&per_author, candidate.author) {
            *per_author.entry(candidate.author).or_default() += 1;
            page.push((index, Reason::Model));
        }
    }

    // Traffic support: each programme gets the slots that bring its delivered share to target,
    // taken from the lowest-ranked items outside the programme.
    exposure.supported.resize(rules.supports.len(), 0);
    let page_len = page.len() as u64;
    for (programme, support) in rules.supports.iter().enumerate() {
        let bit = 1u32 << support.bit;
        let on_page =
            |page: &[(usize, Reason)]| page.iter().filter(|(i, _)| pool[*i].0.support_bits & bit != 0).count() as u64;
        let wanted =
            (support.target_share * (exposure.total + page_len) as f64 - exposure.supported[programme] as f64).round();
        let wanted = wanted.clamp(0.0, page_len as f64) as u64;
        let mut missing = wanted.saturating_sub(on_page(&page));
        let mut next = 0;
        while missing > 0 {
            let Some(candidate) =
                (next..pool.len()).find(|&i| pool[i].0.support_bits & bit != 0 && !page.iter().any(|(p, _)| *p == i))
            else {
                break;
            };
            next = candidate + 1;
            // Replace the lowest-ranked item that no programme needs.
            let Some(victim) = page
                .iter()
                .rposition(|(i, reason)| pool[*i].0.support_bits & bit == 0 && matches!(reason, Reason::Model))
            else {
                break;
            };
            page.remove(victim);
            page.push((candidate, Reason::TrafficSupport(support.name.clone())));
            missing -= 1;
        }
    }

    exposure.total += page.len() as u64;
    for (programme, support) in rules.supports.iter().enumerate() {
        let bit = 1u32 << support.bit;
        exposure.supported[programme] += page.iter().filter(|(i, _)| pool[*i].0.support_bits & bit != 0).count() as u64;
    }
    page.into_iter()
        .map(|(index, reason)| {
            let (candidate, score, multiplier) = &pool[index];
            let mut reasons = vec![reason];
            if let Some(m) = multiplier {
                reasons.push(Reason::CreatorGrade(*m));
            }
            Ranked { item: candidate.item, score: *score, reasons }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(item: u32, score: f32, author: u32, support_bits: u32) -> Candidate {
        Candidate { item, score, author, support_bits, blocked: false }
    }

    fn items(page: &[Ranked]) -> Vec<u32> {
        page.iter().map(|r| r.item).collect()
    }

    #[test]
    fn filters_diversifies_and_grades() {
        let mut candidates: Vec<Candidate> = (0..6).map(|i| candidate(i, 10.0 - i as f32, i % 2, 0)).collect();
        candidates[0].blocked = true;
        let rules = Rules { max_per_author: 2, grade_multiplier: HashMap::from([(1, 0.5)]), ..Rules::default() };
        let page = rerank(&candidates, &rules, &[2], 4, &mut Exposure::default());
        // Item 0 is blocked, 2 was seen; author 1's items are halved.
        assert_eq!(items(&page), vec![4, 1, 3]);
        assert!(page[1].reasons.contains(&Reason::CreatorGrade(0.5)));
    }

    #[test]
    fn traffic_support_delivers_its_target_share() {
        let support = TrafficSupport { name: "farm_specialty".into(), bit: 0, target_share: 0.15 };
        let rules = Rules { supports: vec![support], ..Rules::default() };
        let mut exposure = Exposure::default();
        // Supported items are every 10th, and always score below the others.
        let candidates: Vec<Candidate> = (0..100)
            .map(|i| candidate(i, if i % 10 == 0 { 1.0 } else { 100.0 - i as f32 }, i, u32::from(i % 10 == 0)))
            .collect();
        for _ in 0..50 {
            let page = rerank(&candidates, &rules, &[], 10, &mut exposure);
            assert_eq!(page.len(), 10);
        }
        assert!((exposure.share(0) - 0.15).abs() < 0.01, "{}", exposure.share(0));
        let page = rerank(&candidates, &rules, &[], 10, &mut Exposure::default());
        assert!(page.iter().any(|r| r.reasons == vec![Reason::TrafficSupport("farm_specialty".into())]));
    }
}
