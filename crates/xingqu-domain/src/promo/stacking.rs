//! Applying a chosen set of coupons to a cart, and finding the set that saves the buyer the most.
//!
//! The rules, in the order [`apply`] checks them:
//! - **Count.** At most [`COUPONS_MAX`] coupons per checkout, each claim once.
//! - **Slots.** At most one coupon per slot: one shop coupon per merchant (its scope's merchant),
//!   one fan coupon, one platform coupon and one red packet per checkout.
//! - **Combining.** Two coupons that *meet* — they cover a common line, or either is a platform
//!   coupon or red packet, which are checkout-wide — go together only if each one's
//!   `combines_with` holds the other's class. Coupons that never meet (shop coupons of two
//!   merchants; a shop coupon and a fan coupon on other goods) need not agree.
//! - **Order.** The shop lane before the platform lane; within a lane shop, fan, platform, red
//!   packet (shop coupons by merchant id). A coupon's base is what its covered lines still cost
//!   after the coupons before it, and its threshold compares against that base; it takes off at
//!   most its `budget_left_fen`.
//! - **Applicable.** A coupon that covers no line, whose threshold its base misses, or that takes
//!   off nothing spoils the whole set: the buyer is told, not silently charged more.
//! - **Spreading.** A coupon's amount is split over its lines by largest remainder, weighted by
//!   what each still costs, so the parts sum exactly and no line goes below zero.

use super::coupon::{CouponClass, CouponKind, WalletCoupon};
use crate::Invalid;
use crate::allocation::allocate;
use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::iter::once;
use std::ops::Range;

pub const COUPONS_MAX: usize = 10;
/// [`best`] searches at most this many usable coupons: the ones that save the most alone.
pub const WALLET_MAX: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CartLine {
    /// The caller's line number, echoed in [`Applied::per_line_fen`].
    pub index: usize,
    pub merchant_id: i64,
    pub product_id: i64,
    pub units: i64,
    /// What the line costs after the item-price lane (flash sales, subsidies).
    pub base_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub claim_id: i64,
    pub coupon_id: i64,
    pub class: CouponClass,
    pub off_fen: i64,
    /// `(CartLine::index, part)` for each covered line; the parts sum to `off_fen`.
    pub per_line_fen: Vec<(usize, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stacked {
    /// In the order the coupons applied.
    pub applied: Vec<Applied>,
    /// What each input line pays after all coupons, in input order.
    pub line_paid_fen: Vec<i64>,
    pub total_off_fen: i64,
}

impl Stacked {
    fn untouched(lines: &[CartLine]) -> Self {
        Self { applied: Vec::new(), line_paid_fen: lines.iter().map(|l| l.base_fen).collect(), total_off_fen: 0 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Best {
    pub stacked: Stacked,
    /// Valid combinations the search evaluated (its second pass, which settles ties, may see a
    /// combination again).
    pub considered: u64,
    pub reason: String,
}

/// Where a coupon sits; a checkout holds one coupon per slot. Ordered as coupons apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Shop(Option<i64>),
    Fan,
    Platform,
    RedPacket,
}

/// A coupon with the cart lines it covers (positions in the input), worked out once.
struct Prepared<'a> {
    coupon: &'a WalletCoupon,
    slot: Slot,
    covered: Vec<usize>,
    units: i64,
}

impl<'a> Prepared<'a> {
    fn new(lines: &[CartLine], coupon: &'a WalletCoupon) -> Self {
        // A shop coupon belongs to a shop: without one it covers nothing.
        let homeless = coupon.class == CouponClass::Shop && coupon.scope.merchant_id.is_none();
        let covers = |l: &CartLine| !homeless && coupon.scope.covers(l.merchant_id, l.product_id);
        let covered: Vec<usize> = (0..lines.len()).filter(|&i| covers(&lines[i])).collect();
        let units = covered.iter().map(|&i| lines[i].units).sum();
        let slot = match coupon.class {
            CouponClass::Shop => Slot::Shop(coupon.scope.merchant_id),
            CouponClass::Fan => Slot::Fan,
            CouponClass::Platform => Slot::Platform,
            CouponClass::RedPacket => Slot::RedPacket,
        };
        Self { coupon, slot, covered, units }
    }

    fn meets(&self, other: &Prepared) -> bool {
        let wide = |p: &Prepared| matches!(p.coupon.class, CouponClass::Platform | CouponClass::RedPacket);
        wide(self) || wide(other) || self.covered.iter().any(|i| other.covered.contains(i))
    }

    fn combinable(&self, other: &Prepared) -> bool {
        !self.meets(other)
            || (self.coupon.combines_with.contains(other.coupon.class)
                && other.coupon.combines_with.contains(self.coupon.class))
    }

    /// What the coupon takes off at its turn, given what each line still costs; or the code of
    /// the rule that makes it inapplicable.
    fn off_fen(&self, remaining: &[i64]) -> Result<i64, &'static str> {
        let base: i64 = self.covered.iter().map(|&i| remaining[i]).sum();
        if let CouponKind::Threshold { threshold_fen, .. } = self.coupon.kind
            && base < threshold_fen
            && !self.covered.is_empty()
        {
            return Err("threshold_not_met");
        }
        let budget_fen = self.coupon.budget_left_fen.map_or(i64::MAX, |b| b.max(0));
        let off_fen = self.coupon.kind.off_fen(base, self.units).min(budget_fen);
        if off_fen > 0 { Ok(off_fen) } else { Err("coupon_not_applicable") }
    }

    /// Takes the coupon's amount off `remaining`; returns it with its parts, one per covered line.
    fn take(&self, remaining: &mut [i64]) -> Result<(i64, Vec<i64>), &'static str> {
        let off_fen = self.off_fen(remaining)?;
        let weights: Vec<i64> = self.covered.iter().map(|&i| remaining[i]).collect();
        // A part never exceeds its weight because the amount never exceeds the weights' sum.
        let parts = allocate(off_fen, &weights).ok_or("coupon_not_applicable")?;
        for (&i, &part) in self.covered.iter().zip(&parts) {
            remaining[i] -= part;
        }
        Ok((off_fen, parts))
    }
}

fn invalid(code: &'static str, message: String) -> Invalid {
    Invalid::new("coupon_ids", code, message)
}

fn named(coupon: &WalletCoupon) -> String {
    format!("claim {} (coupon {})", coupon.claim_id, coupon.coupon_id)
}

fn check_lines(lines: &[CartLine]) -> Result<(), Invalid> {
    if lines.iter().all(|l| l.units >= 1 && l.base_fen >= 0) {
        Ok(())
    } else {
        Err(Invalid::new("lines", "out_of_range", "every line needs at least 1 unit and a base of at least 0 分"))
    }
}

/// Applies exactly the `chosen` coupons, in the rules' order, or names the first rule they break.
pub fn apply(lines: &[CartLine], chosen: &[&WalletCoupon]) -> Result<Stacked, Invalid> {
    check_lines(lines)?;
    if chosen.len() > COUPONS_MAX {
        return Err(invalid("too_many_coupons", format!("at most {COUPONS_MAX} coupons per checkout")));
    }
    let mut claims = BTreeSet::new();
    if let Some(twice) = chosen.iter().find(|c| !claims.insert(c.claim_id)) {
        return Err(invalid("duplicate_coupon", format!("{} is chosen twice", named(twice))));
    }
    let mut prepared: Vec<Prepared> = chosen.iter().map(|c| Prepared::new(lines, c)).collect();
    prepared.sort_by_key(|p| (p.slot, p.coupon.claim_id));
    for pair in prepared.windows(2) {
        if pair[0].slot == pair[1].slot {
            let (a, b) = (named(pair[0].coupon), named(pair[1].coupon));
            return Err(invalid("slot_taken", format!("{a} and {b} take the same place; use one")));
        }
    }
    for (i, a) in prepared.iter().enumerate() {
        if let Some(b) = prepared[i + 1..].iter().find(|b| !a.combinable(b)) {
            let (a, b) = (named(a.coupon), named(b.coupon));
            return Err(invalid("not_combinable", format!("{a} and {b} cannot be used together")));
        }
    }
    let mut remaining: Vec<i64> = lines.iter().map(|l| l.base_fen).collect();
    let mut applied = Vec::with_capacity(prepared.len());
    for p in &prepared {
        let (off_fen, parts) = p.take(&mut remaining).map_err(|code| {
            let why = if code == "threshold_not_met" { "its threshold is not reached" } else { "takes nothing off" };
            invalid(code, format!("{}: {why} after the coupons before it", named(p.coupon)))
        })?;
        applied.push(Applied {
            claim_id: p.coupon.claim_id,
            coupon_id: p.coupon.coupon_id,
            class: p.coupon.class,
            off_fen,
            per_line_fen: p.covered.iter().map(|&i| lines[i].index).zip(parts).collect(),
        });
    }
    let total_off_fen = applied.iter().map(|a| a.off_fen).sum();
    Ok(Stacked { applied, line_paid_fen: remaining, total_off_fen })
}

/// How sets rank, smaller first: the larger saving; then fewer coupons (keep the rest for later);
/// then the sooner-expiring ones (sorted expiries compared in order); then the smaller claim ids.
type Rank = (Reverse<i64>, usize, Vec<i64>, Vec<i64>);

fn rank<'a>(total_off_fen: i64, coupons: impl Iterator<Item = &'a WalletCoupon>) -> Rank {
    let (mut expiries, mut claims): (Vec<i64>, Vec<i64>) = coupons.map(|c| (c.valid_until_ms, c.claim_id)).unzip();
    expiries.sort_unstable();
    claims.sort_unstable();
    (Reverse(total_off_fen), claims.len(), expiries, claims)
}

/// One slot's choice as [`Search::bound`] sees it: nothing; a coupon whose base is exactly the
/// amount it is given (it covers all of it); or one known only to take off at most `off_fen`.
#[derive(Clone, Copy)]
enum Step<'p> {
    Nothing,
    Exact(&'p Prepared<'p>),
    AtMost { off_fen: i64 },
}

impl Step<'_> {
    /// The least and most still to pay after this step, given `base_fen` before it.
    fn paid_fen(self, base_fen: i64) -> (i64, i64) {
        match self {
            Step::Nothing => (base_fen, base_fen),
            Step::Exact(p) => {
                let budget_fen = p.coupon.budget_left_fen.map_or(i64::MAX, |b| b.max(0));
                let paid_fen = base_fen - p.coupon.kind.off_fen(base_fen, p.units).min(budget_fen);
                (paid_fen, paid_fen)
            }
            Step::AtMost { off_fen } => ((base_fen - off_fen).max(0), base_fen),
        }
    }

    /// Where what is left to pay falls as the base rises: only at a threshold. Everywhere else it
    /// never falls, since no kind takes off more than 1 分 more for 1 分 more base.
    fn drop_at(self) -> Option<i64> {
        match self {
            Step::Exact(Prepared {
                coupon: WalletCoupon { kind: CouponKind::Threshold { threshold_fen, .. }, .. },
                ..
            }) => Some(*threshold_fen),
            _ => None,
        }
    }
}

/// The least left to pay after one of `firsts` then one of `seconds` (the second's base being
/// what the first left), for any base from `low_fen` to `high_fen`. What a first step leaves
/// never falls as its base rises except at its drop, so over each side of the drop it leaves
/// amounts between what it leaves at the ends; a second step leaves least over such a run at the
/// run's start or at its own drop. Overlapping runs are merged first, so each second step is
/// looked at once per merged run rather than once per first step.
fn least_left_fen<'p>(
    low_fen: i64,
    high_fen: i64,
    firsts: impl Iterator<Item = Step<'p>>,
    seconds: impl Iterator<Item = Step<'p>> + Clone,
) -> i64 {
    // One run each side of a first step's drop; there are at most the wallet's coupons and nothing.
    let mut runs = [(0, 0); 2 * (WALLET_MAX + 1)];
    let mut count = 0;
    for first in firsts {
        let (a, b) = (low_fen, high_fen);
        let pieces = match first.drop_at() {
            Some(t) if a < t && t <= b => [(a, t - 1), (t, b)],
            _ => [(a, b), (a, b)],
        };
        for (from, to) in pieces {
            runs[count] = (first.paid_fen(from).0, first.paid_fen(to).1);
            count += 1;
        }
    }
    let runs = &mut runs[..count];
    runs.sort_unstable();
    let mut least_fen = i64::MAX;
    let mut i = 0;
    while i < runs.len() {
        let (start, mut end) = runs[i];
        while i < runs.len() && runs[i].0 <= end.saturating_add(1) {
            end = end.max(runs[i].1);
            i += 1;
        }
        for second in seconds.clone() {
            least_fen = least_fen.min(second.paid_fen(start).0);
            if let Some(t) = second.drop_at()
                && start < t
                && t <= end
            {
                least_fen = least_fen.min(second.paid_fen(t).0);
            }
        }
    }
    least_fen
}

/// The sum of the `n` largest `values`.
fn top_sum(values: impl Iterator<Item = i64>, n: usize) -> i64 {
    let mut sorted = [0; WALLET_MAX];
    let mut count = 0;
    for value in values {
        sorted[count] = value;
        count += 1;
    }
    let sorted = &mut sorted[..count];
    if n < count {
        sorted.sort_unstable_by(|a, b| b.cmp(a));
    }
    sorted.iter().take(n).sum()
}

/// The search: usable coupons grouped by slot in applying order, and which pairs may not meet.
struct Search<'a> {
    coupons: Vec<Prepared<'a>>,
    /// What each coupon takes off alone; within a slot, largest first.
    alone: Vec<i64>,
    slots: Vec<Range<usize>>,
    /// The fan slot's coupons (empty if none).
    fans: Range<usize>,
    /// Per fan coupon, per coupon: what a shop coupon takes off that fan coupon's lines, and
    /// what it takes off the others.
    fan_split: Vec<Vec<(i64, i64)>>,
    /// Bit `j` of `clashes[i]`: coupons `i` and `j` cannot be used together.
    clashes: Vec<u64>,
    /// At most this many coupons per set.
    limit: usize,
    /// `None` while looking for the largest saving; then that saving, while looking for the
    /// best-ranked set that reaches it.
    target_fen: Option<i64>,
    chosen: Vec<usize>,
    best: Option<(i64, Vec<usize>)>,
    considered: u64,
}

impl Search<'_> {
    fn rank(&self, total_off_fen: i64, chosen: &[usize]) -> Rank {
        rank(total_off_fen, chosen.iter().map(|&i| self.coupons[i].coupon))
    }

    /// A lower bound on what the cart costs after the shop lane, from `remaining` now, using
    /// only coupons in `allowed`, at most `shops` shop coupons and, if `fan`, a fan coupon.
    ///
    /// A shop coupon only touches its own shop's lines, which nothing before it in the search
    /// touches, so it takes off exactly what it takes alone, split over the lines the same way.
    /// A fan coupon's base after the shop slots lies between what its lines cost now less what
    /// those slots can take off them, and what they cost now; [`least_left_fen`] finds the least
    /// it can leave over that range.
    fn shop_lane_low_fen(
        &self,
        pending: &[Range<usize>],
        remaining: &[i64],
        allowed: u64,
        shops: usize,
        fan: bool,
    ) -> i64 {
        let left_fen: i64 = remaining.iter().sum();
        let open = move |range: &Range<usize>, allowed: u64| range.clone().filter(move |&c| allowed & 1 << c != 0);
        let shop_slots = pending.iter().filter(|range| matches!(self.coupons[range.start].slot, Slot::Shop(_)));
        // Largest alone first: a shop slot's first open coupon takes off the most.
        let shop_fen = |allowed| {
            top_sum(shop_slots.clone().map(|range| open(range, allowed).next().map_or(0, |c| self.alone[c])), shops)
        };
        let mut low_fen = left_fen - shop_fen(allowed);
        let fan_slot = pending.iter().find(|range| self.coupons[range.start].slot == Slot::Fan);
        for fan in fan_slot.filter(|_| fan).into_iter().flat_map(|range| open(range, allowed)) {
            let (split, allowed) = (&self.fan_split[fan - self.fans.start], allowed & !self.clashes[fan]);
            let most = |pick: fn((i64, i64)) -> i64| {
                let per_slot =
                    shop_slots.clone().map(|range| open(range, allowed).map(|c| pick(split[c])).max().unwrap_or(0));
                top_sum(per_slot, shops)
            };
            let (on_fan_fen, elsewhere_fen) = (most(|(on, _)| on), most(|(_, elsewhere)| elsewhere));
            let f = &self.coupons[fan];
            let fan_lines_fen: i64 = f.covered.iter().map(|&i| remaining[i]).sum();
            let fan_paid_fen =
                least_left_fen(fan_lines_fen - on_fan_fen, fan_lines_fen, once(Step::Exact(f)), once(Step::Nothing));
            let with_fan_fen = fan_paid_fen + (left_fen - fan_lines_fen - elsewhere_fen);
            let plainly_fen = left_fen - shop_fen(allowed) - f.off_fen(remaining).unwrap_or(0);
            low_fen = low_fen.min(with_fan_fen.max(plainly_fen));
        }
        low_fen.max(0)
    }

    /// An upper bound on what the slots from `next` on can still take off a cart whose lines
    /// still cost `remaining`, with at most `limit` coupons in all: what it costs now less a
    /// lower bound on what it will cost after them.
    ///
    /// The platform lane is bounded over the range the cart can cost after the shop lane
    /// ([`Search::shop_lane_low_fen`]), by what it leaves ([`least_left_fen`]), not by what it
    /// would take off now: that keeps a fixed-price or percentage coupon from being counted for
    /// what a coupon before it took. (Each coupon sees at most what its lines cost now, and every
    /// kind takes off no more from a smaller base: `CouponKind::off_fen` is non-decreasing.)
    ///
    /// Platform coupons and red packets are checkout-wide, so they meet every coupon: the
    /// shop-lane coupons that can go with them, and whether the two go together, are fixed per
    /// coupon. So they are bounded in groups that agree on both, each group with the shop lane
    /// it allows; and with few coupons left to add, each way of sharing them out (a fan coupon
    /// or not, the rest to the shop slots that take off most) separately.
    fn bound(&self, next: usize, remaining: &[i64], chosen_mask: u64) -> i64 {
        let left_fen: i64 = remaining.iter().sum();
        let picks = self.limit - self.chosen.len();
        let pending = &self.slots[next..];
        let open_mask =
            (0..self.coupons.len()).filter(|&c| self.clashes[c] & chosen_mask == 0).fold(0u64, |m, c| m | 1 << c);
        let shop_slot_count = pending.iter().filter(|r| matches!(self.coupons[r.start].slot, Slot::Shop(_))).count();
        let fan_pending = pending.iter().any(|r| self.coupons[r.start].slot == Slot::Fan);
        let mut late =
            pending.iter().filter(|r| matches!(self.coupons[r.start].slot, Slot::Platform | Slot::RedPacket));
        // Groups of one platform-lane slot's coupons: (shop-lane coupons allowed alongside,
        // whether they go with the other platform-lane class, members). The first is "none".
        let groups = |range: Option<&Range<usize>>, other: CouponClass| {
            let mut groups: Vec<(u64, bool, Vec<usize>)> = vec![(u64::MAX, true, Vec::new())];
            for c in range.into_iter().flat_map(|r| r.clone()).filter(|&c| open_mask & 1 << c != 0) {
                let key = (!self.clashes[c], self.coupons[c].coupon.combines_with.contains(other));
                match groups.iter_mut().skip(1).find(|g| (g.0, g.1) == key) {
                    Some(group) => group.2.push(c),
                    None => groups.push((key.0, key.1, vec![c])),
                }
            }
            groups
        };
        let firsts = groups(late.next(), CouponClass::RedPacket);
        let seconds = groups(late.next(), CouponClass::Platform);
        let step = |c: &usize| {
            let p = &self.coupons[*c];
            if p.covered.len() == remaining.len() {
                Step::Exact(p)
            } else {
                // Covering part of the cart, it is known only to take off at most what it would now.
                Step::AtMost { off_fen: p.off_fen(remaining).unwrap_or(0) }
            }
        };
        let mut lows: Vec<((u64, usize, bool), i64)> = Vec::new();
        let mut most_fen = 0;
        for &(first_allows, first_pairs, ref first) in &firsts {
            for &(second_allows, second_pairs, ref second) in &seconds {
                let late = usize::from(!first.is_empty()) + usize::from(!second.is_empty());
                if late == 2 && !(first_pairs && second_pairs) || late > picks {
                    continue;
                }
                let allowed = open_mask & first_allows & second_allows;
                // Without a fan coupon: only worth a look when that leaves more for the shop slots.
                let roomy = picks - late > shop_slot_count;
                for fan in
                    [false, true].into_iter().filter(|&fan| if fan { fan_pending } else { !fan_pending || !roomy })
                {
                    let Some(shops) = (picks - late).checked_sub(usize::from(fan)) else { continue };
                    let key = (allowed, shops.min(shop_slot_count), fan);
                    let low_fen = match lows.iter().find(|(k, _)| *k == key) {
                        Some((_, low_fen)) => *low_fen,
                        None => {
                            let low_fen = self.shop_lane_low_fen(pending, remaining, allowed, key.1, fan);
                            lows.push((key, low_fen));
                            low_fen
                        }
                    };
                    let firsts = first.is_empty().then_some(Step::Nothing).into_iter().chain(first.iter().map(step));
                    let seconds = second.is_empty().then_some(Step::Nothing).into_iter().chain(second.iter().map(step));
                    let least_fen = least_left_fen(low_fen, left_fen, firsts, seconds);
                    most_fen = most_fen.max(left_fen - least_fen);
                }
            }
        }
        most_fen
    }

    /// Keeps `chosen`, saving `total_off_fen`, if it beats the best so far.
    fn consider(&mut self, total_off_fen: i64) {
        self.considered += 1;
        let better = match (self.target_fen, &self.best) {
            (None, best) => total_off_fen > best.as_ref().map_or(0, |(fen, _)| *fen),
            (Some(target_fen), None) => total_off_fen == target_fen,
            (Some(target_fen), Some((_, best))) => {
                total_off_fen == target_fen && self.rank(total_off_fen, &self.chosen) < self.rank(target_fen, best)
            }
        };
        if better {
            self.best = Some((total_off_fen, self.chosen.clone()));
        }
    }

    /// Visits the sets that extend `chosen` (saving `total_off_fen` and leaving `remaining`) with
    /// coupons of slots from `next` on, keeping the best in `best`.
    fn extend(&mut self, next: usize, remaining: &[i64], total_off_fen: i64, chosen_mask: u64) {
        if self.chosen.len() == self.limit {
            return;
        }
        // Worth going on only if some extension could beat the saving so far (first pass) or
        // reach the target (second pass); every coupon added takes off at least 1 分.
        let bound = self.bound(next, remaining, chosen_mask);
        let best_fen = self.best.as_ref().map_or(0, |(fen, _)| *fen);
        if bound == 0 || total_off_fen + bound < self.target_fen.unwrap_or(best_fen + 1) {
            return;
        }
        let last = self.chosen.len() + 1 == self.limit;
        for slot in next..self.slots.len() {
            for c in self.slots[slot].clone() {
                if self.clashes[c] & chosen_mask != 0 {
                    continue;
                }
                self.chosen.push(c);
                if last {
                    // Nothing can follow: what the coupon takes off is enough, not where from.
                    if let Ok(off_fen) = self.coupons[c].off_fen(remaining) {
                        self.consider(total_off_fen + off_fen);
                    }
                } else {
                    let mut left = remaining.to_vec();
                    if let Ok((off_fen, _)) = self.coupons[c].take(&mut left) {
                        self.consider(total_off_fen + off_fen);
                        self.extend(slot + 1, &left, total_off_fen + off_fen, chosen_mask | 1 << c);
                    }
                }
                self.chosen.pop();
            }
        }
    }
}

/// The set of wallet coupons that saves the most on this cart, exactly, under the rules above.
/// Ties go to fewer coupons, then sooner expiries, then smaller claim ids. Repeated claims count
/// once; coupons that take nothing off alone are dropped, of claims with the same terms only the
/// soonest-expiring is kept, and of the rest only the [`WALLET_MAX`] that save the most alone are
/// searched (a real wallet rarely holds more).
///
/// The search picks at most one coupon per slot, slot by slot in applying order, so each partial
/// set is priced incrementally; it cuts a branch when [`Search::bound`] shows it cannot beat the
/// best set found so far.
pub fn best(lines: &[CartLine], wallet: &[WalletCoupon]) -> Best {
    if let Err(e) = check_lines(lines) {
        return Best { stacked: Stacked::untouched(lines), considered: 0, reason: e.message };
    }
    let bases: Vec<i64> = lines.iter().map(|l| l.base_fen).collect();
    let mut seen = BTreeSet::new();
    let mut usable: Vec<(i64, Prepared)> = wallet
        .iter()
        .filter(|c| seen.insert(c.claim_id))
        .map(|c| Prepared::new(lines, c))
        .filter_map(|p| Some((p.off_fen(&bases).ok()?, p)))
        .collect();
    usable.sort_by_key(|(off_fen, p)| (Reverse(*off_fen), p.coupon.valid_until_ms, p.coupon.claim_id));
    // Of two claims of the same coupon terms (a buyer often holds several) only the first can be
    // in the best set: swapping in the sooner-expiring, smaller claim always ranks higher.
    let mut kept: Vec<(i64, Prepared)> = Vec::with_capacity(usable.len());
    for (off_fen, p) in usable {
        let terms = |c: &WalletCoupon| (c.class, c.kind, c.scope.clone(), c.combines_with, c.budget_left_fen);
        if !kept.iter().any(|(_, k)| terms(k.coupon) == terms(p.coupon)) {
            kept.push((off_fen, p));
        }
    }
    kept.truncate(WALLET_MAX);
    // Within a slot the best alone goes first: a good set found early prunes more.
    kept.sort_by_key(|(off_fen, p)| (p.slot, Reverse(*off_fen), p.coupon.valid_until_ms, p.coupon.claim_id));
    let (alone, coupons): (Vec<i64>, Vec<Prepared>) = kept.into_iter().unzip();
    let mut slots = Vec::new();
    for group in coupons.chunk_by(|a, b| a.slot == b.slot) {
        let start = slots.last().map_or(0, |s: &Range<usize>| s.end);
        slots.push(start..start + group.len());
    }
    let fans = slots.iter().find(|range| coupons[range.start].slot == Slot::Fan).cloned().unwrap_or(0..0);
    // How each shop coupon's amount falls on the lines, which is the same wherever it is chosen.
    let shop_parts: Vec<Vec<i64>> = coupons
        .iter()
        .map(|p| match p.slot {
            Slot::Shop(_) => p.take(&mut bases.clone()).map_or(Vec::new(), |(_, parts)| parts),
            _ => Vec::new(),
        })
        .collect();
    let fan_split = coupons[fans.clone()]
        .iter()
        .map(|fan| {
            let split = |(p, parts): (&Prepared, &Vec<i64>)| {
                let on_fan = p.covered.iter().zip(parts).filter(|(i, _)| fan.covered.contains(i)).map(|(_, part)| part);
                let on_fan_fen: i64 = on_fan.sum();
                (on_fan_fen, parts.iter().sum::<i64>() - on_fan_fen)
            };
            coupons.iter().zip(&shop_parts).map(split).collect()
        })
        .collect();
    let clashes = coupons
        .iter()
        .map(|a| coupons.iter().enumerate().filter(|(_, b)| !a.combinable(b)).fold(0u64, |m, (j, _)| m | 1 << j))
        .collect();
    let usable_count = coupons.len();
    let mut search = Search {
        coupons,
        alone,
        slots,
        fans,
        fan_split,
        clashes,
        limit: COUPONS_MAX,
        target_fen: None,
        chosen: Vec::new(),
        best: None,
        considered: 0,
    };
    // First the largest saving, cutting every branch that cannot beat it. Then, as ties go to
    // fewer coupons, the sets reaching it with 1 coupon, 2, …: the first count that has one is
    // the smallest, and the best-ranked set of that count wins. Searching ties only at the end
    // keeps a fixed-price coupon, which saves the same whatever comes before it, from making
    // every combination of shop coupons worth a look.
    search.consider(0);
    search.extend(0, &bases, 0, 0);
    let target_fen = search.best.take().map_or(0, |(fen, _)| fen);
    if target_fen > 0 {
        search.target_fen = Some(target_fen);
        for limit in 1..=COUPONS_MAX {
            search.limit = limit;
            search.extend(0, &bases, 0, 0);
            if search.best.is_some() {
                break;
            }
        }
    }
    let chosen_ids = search.best.take().map(|(_, chosen)| chosen).unwrap_or_default();
    let chosen: Vec<&WalletCoupon> = chosen_ids.iter().map(|&i| search.coupons[i].coupon).collect();
    // The search priced this set as `apply` does; `apply` also records the per-line parts.
    let stacked = apply(lines, &chosen).unwrap_or_else(|_| Stacked::untouched(lines));
    let reason = if usable_count == 0 {
        format!("none of the {} coupons in the wallet takes anything off this cart", wallet.len())
    } else {
        format!(
            "best of {} combinations evaluated from {usable_count} usable coupons: saves {} 分",
            search.considered, stacked.total_off_fen
        )
    };
    Best { stacked, considered: search.considered, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promo::coupon::{ClassSet, CouponScope};
    use crate::rng::SplitMix64;
    use proptest::prelude::*;

    fn line(index: usize, merchant_id: i64, product_id: i64, base_fen: i64) -> CartLine {
        CartLine { index, merchant_id, product_id, units: 1, base_fen }
    }

    fn coupon(claim_id: i64, class: CouponClass, kind: CouponKind, merchant_id: Option<i64>) -> WalletCoupon {
        WalletCoupon {
            claim_id,
            coupon_id: claim_id * 100,
            class,
            kind,
            scope: CouponScope { merchant_id, product_ids: None },
            combines_with: ClassSet::all(),
            funder_id: merchant_id,
            budget_left_fen: None,
            valid_until_ms: 0,
        }
    }

    fn code(result: Result<Stacked, Invalid>) -> &'static str {
        result.map(|_| "ok").unwrap_or_else(|e| e.code)
    }

    const SHOP: CouponClass = CouponClass::Shop;
    const PLATFORM: CouponClass = CouponClass::Platform;

    #[test]
    fn shop_lane_first_then_platform_on_what_is_left() {
        let lines = [line(10, 1, 1, 6_000), line(11, 1, 2, 4_000), line(20, 2, 3, 3_000)];
        let shop = coupon(1, SHOP, CouponKind::Threshold { threshold_fen: 10_000, off_fen: 1_000 }, Some(1));
        let platform = coupon(2, PLATFORM, CouponKind::PercentOff { percent_bps: 1_000, cap_fen: 5_000 }, None);
        let stacked = apply(&lines, &[&platform, &shop]).expect("valid");
        assert_eq!(stacked.applied[0].per_line_fen, vec![(10, 600), (11, 400)]);
        // 10 % of 5 400 + 3 600 + 3 000 = 12 000 left.
        assert_eq!(stacked.applied[1].off_fen, 1_200);
        assert_eq!(stacked.applied[1].per_line_fen, vec![(10, 540), (11, 360), (20, 300)]);
        assert_eq!(stacked.line_paid_fen, vec![4_860, 3_240, 2_700]);
        assert_eq!(stacked.total_off_fen, 2_200);
    }

    #[test]
    fn each_broken_rule_has_its_code() {
        let lines = [line(0, 1, 1, 9_000), line(1, 2, 2, 1_000)];
        let shop1 = coupon(1, SHOP, CouponKind::MoneyOff { off_fen: 500 }, Some(1));
        let shop1b = coupon(2, SHOP, CouponKind::MoneyOff { off_fen: 300 }, Some(1));
        let shop3 = coupon(3, SHOP, CouponKind::MoneyOff { off_fen: 300 }, Some(3));
        let platform = coupon(4, PLATFORM, CouponKind::Threshold { threshold_fen: 10_000, off_fen: 2_000 }, None);
        let mut alone = coupon(5, CouponClass::RedPacket, CouponKind::MoneyOff { off_fen: 100 }, None);
        alone.combines_with = ClassSet::of(&[PLATFORM]);
        let mut budgetless = shop1.clone();
        budgetless.budget_left_fen = Some(0);
        assert_eq!(code(apply(&lines, &[&platform])), "ok");
        assert_eq!(code(apply(&lines, &[&shop1, &platform])), "threshold_not_met", "9 500 left after the shop coupon");
        assert_eq!(code(apply(&lines, &[&shop3])), "coupon_not_applicable", "no line of merchant 3");
        assert_eq!(code(apply(&lines, &[&budgetless])), "coupon_not_applicable", "budget spent");
        assert_eq!(code(apply(&lines, &[&shop1, &shop1b])), "slot_taken");
        assert_eq!(code(apply(&lines, &[&shop1, &shop1])), "duplicate_coupon");
        assert_eq!(code(apply(&lines, &[&shop1, &alone])), "not_combinable", "red packets are checkout-wide");
        assert_eq!(code(apply(&lines, &[&platform, &alone])), "ok", "each names the other");
        let many: Vec<WalletCoupon> =
            (0..11).map(|m| coupon(10 + m, SHOP, CouponKind::MoneyOff { off_fen: 1 }, Some(m))).collect();
        assert_eq!(code(apply(&lines, &many.iter().collect::<Vec<_>>())), "too_many_coupons");
        assert_eq!(code(apply(&[CartLine { units: 0, ..lines[0] }], &[])), "out_of_range");
    }

    #[test]
    fn coupons_that_never_meet_need_not_agree() {
        let lines = [line(0, 1, 1, 5_000), line(1, 2, 2, 5_000)];
        let mut shop = coupon(1, SHOP, CouponKind::MoneyOff { off_fen: 500 }, Some(1));
        shop.combines_with = ClassSet::none();
        let mut fan = coupon(2, CouponClass::Fan, CouponKind::MoneyOff { off_fen: 700 }, None);
        fan.combines_with = ClassSet::none();
        fan.scope.product_ids = Some(BTreeSet::from([2]));
        assert_eq!(code(apply(&lines, &[&shop, &fan])), "ok");
        fan.scope.product_ids = Some(BTreeSet::from([1, 2]));
        assert_eq!(code(apply(&lines, &[&shop, &fan])), "not_combinable");
    }

    #[test]
    fn budget_caps_the_discount() {
        let lines = [line(0, 1, 1, 5_000)];
        let mut shop = coupon(1, SHOP, CouponKind::MoneyOff { off_fen: 500 }, Some(1));
        shop.budget_left_fen = Some(499);
        assert_eq!(apply(&lines, &[&shop]).expect("valid").total_off_fen, 499);
    }

    #[test]
    fn best_is_not_greedy() {
        // The shop coupon alone would push the cart below the platform threshold.
        let lines = [line(0, 1, 1, 10_200)];
        let wallet = [
            coupon(1, SHOP, CouponKind::MoneyOff { off_fen: 500 }, Some(1)),
            coupon(2, PLATFORM, CouponKind::Threshold { threshold_fen: 10_000, off_fen: 2_000 }, None),
            coupon(3, SHOP, CouponKind::MoneyOff { off_fen: 100 }, Some(1)),
        ];
        let best = best(&lines, &wallet);
        assert_eq!(best.stacked.total_off_fen, 2_100, "platform after the smaller shop coupon");
        assert_eq!(best.stacked.applied.iter().map(|a| a.claim_id).collect::<Vec<_>>(), vec![3, 2]);
        assert!(best.reason.contains("saves 2100 分"), "{}", best.reason);
        assert_eq!(super::best(&lines, &[]).stacked, Stacked::untouched(&lines));
    }

    #[test]
    fn ties_go_to_fewer_coupons_then_the_sooner_expiring() {
        let lines = [line(0, 1, 1, 10_000)];
        let shop = coupon(1, SHOP, CouponKind::MoneyOff { off_fen: 500 }, Some(1));
        let mut fixed = coupon(2, PLATFORM, CouponKind::FixedPrice { price_fen: 6_000 }, None);
        fixed.valid_until_ms = 200;
        // With the shop coupon first the fixed price still ends at 6 000: the shop coupon adds nothing.
        let chosen = |wallet: &[WalletCoupon]| {
            best(&lines, wallet).stacked.applied.iter().map(|a| a.claim_id).collect::<Vec<i64>>()
        };
        assert_eq!(chosen(&[shop.clone(), fixed.clone()]), vec![2]);
        let mut money = coupon(3, PLATFORM, CouponKind::MoneyOff { off_fen: 4_000 }, None);
        money.valid_until_ms = 100;
        assert_eq!(chosen(&[fixed, money.clone()]), vec![3], "both save 4 000; claim 3 expires sooner");
        money.valid_until_ms = 300;
        assert_eq!(chosen(&[shop, money]), vec![1, 3]);
    }

    #[test]
    fn fifty_coupons_over_five_merchants() {
        let mut rng = SplitMix64::new(42);
        let lines: Vec<CartLine> = (0..10)
            .map(|i| CartLine {
                index: i,
                merchant_id: (i % 5) as i64,
                product_id: i as i64,
                units: 1 + rng.below(3) as i64,
                base_fen: 1_000 + rng.below(20_000) as i64,
            })
            .collect();
        let wallet: Vec<WalletCoupon> = (0..50).map(|claim| random_coupon(&mut rng, claim)).collect();
        let best = best(&lines, &wallet);
        let chosen: Vec<&WalletCoupon> =
            best.stacked.applied.iter().filter_map(|a| wallet.iter().find(|c| c.claim_id == a.claim_id)).collect();
        assert_eq!(apply(&lines, &chosen).as_ref(), Ok(&best.stacked));
        assert!(best.stacked.total_off_fen > 0, "{}", best.reason);
    }

    fn random_coupon(rng: &mut SplitMix64, claim_id: i64) -> WalletCoupon {
        let class = CouponClass::ALL[[0, 0, 0, 0, 1, 2, 3][rng.below(7)]];
        let kind = match rng.below(4) {
            0 => CouponKind::Threshold { threshold_fen: 5_000 + rng.below(20_000) as i64, off_fen: 1_000 },
            1 => CouponKind::MoneyOff { off_fen: 100 + rng.below(2_000) as i64 },
            2 => CouponKind::PercentOff { percent_bps: 500 + rng.below(2_000) as i64, cap_fen: 3_000 },
            _ => CouponKind::FixedPrice { price_fen: 1_000 + rng.below(10_000) as i64 },
        };
        let mut c = coupon(claim_id, class, kind, (class == SHOP).then(|| rng.below(5) as i64));
        if class == CouponClass::Fan {
            c.scope.product_ids = Some((0..10).filter(|_| rng.below(2) == 0).collect());
        }
        c.combines_with = ClassSet::of(&CouponClass::ALL.into_iter().filter(|_| rng.below(4) > 0).collect::<Vec<_>>());
        c
    }

    fn any_kind() -> impl Strategy<Value = CouponKind> {
        prop_oneof![
            (2i64..=30_000)
                .prop_flat_map(|t| (Just(t), 1..t))
                .prop_map(|(threshold_fen, off_fen)| CouponKind::Threshold { threshold_fen, off_fen }),
            (1i64..=5_000).prop_map(|off_fen| CouponKind::MoneyOff { off_fen }),
            (1i64..=9_999, 1i64..=5_000)
                .prop_map(|(percent_bps, cap_fen)| CouponKind::PercentOff { percent_bps, cap_fen }),
            (1i64..=5_000).prop_map(|price_fen| CouponKind::FixedPrice { price_fen }),
        ]
    }

    fn any_coupon() -> impl Strategy<Value = WalletCoupon> {
        let products = prop::collection::btree_set(1i64..=6, 1..=4);
        let budget = prop::option::of(0i64..=3_000);
        (0usize..4, any_kind(), 1i64..=3, prop::option::of(products), 0u8..16, budget, 0i64..3, 0u8..6).prop_map(
            |(class, kind, merchant, products, combines, budget, valid_until_ms, odd)| {
                let class = CouponClass::ALL[class];
                // Now and then the odd ones: a shop coupon without a shop, a platform coupon
                // limited to some products.
                let merchant = (class == SHOP && odd > 0).then_some(merchant);
                let mut c = coupon(0, class, kind, merchant);
                c.scope.product_ids = match class {
                    CouponClass::Shop => products,
                    CouponClass::Fan => Some(products.unwrap_or_else(|| BTreeSet::from([1, 2, 3]))),
                    _ => products.filter(|_| odd == 0),
                };
                let combines: Vec<CouponClass> =
                    CouponClass::ALL.into_iter().filter(|c| combines & 1 << *c as u8 != 0).collect();
                c.combines_with = ClassSet::of(&combines);
                c.budget_left_fen = budget;
                c.valid_until_ms = valid_until_ms;
                c
            },
        )
    }

    fn any_cart() -> impl Strategy<Value = (Vec<CartLine>, Vec<WalletCoupon>)> {
        let lines = prop::collection::vec((1i64..=3, 1i64..=6, 1i64..=3, 0i64..=20_000), 1..=6);
        let wallet = prop::collection::vec(any_coupon(), 0..=7);
        (lines, wallet).prop_map(|(lines, mut wallet)| {
            let lines = lines
                .into_iter()
                .enumerate()
                .map(|(i, (merchant_id, product_id, units, base_fen))| CartLine {
                    index: 100 + i,
                    merchant_id,
                    product_id,
                    units,
                    base_fen,
                })
                .collect();
            for (i, c) in wallet.iter_mut().enumerate() {
                c.claim_id = i as i64 + 1;
            }
            (lines, wallet)
        })
    }

    /// Checks (b)-(d) independently of the code under test's helpers.
    fn check(lines: &[CartLine], wallet: &[WalletCoupon], stacked: &Stacked) -> Result<(), TestCaseError> {
        let position = |index: usize| lines.iter().position(|l| l.index == index).expect("a cart line");
        let mut paid: Vec<i64> = lines.iter().map(|l| l.base_fen).collect();
        let mut slots = BTreeSet::new();
        let mut touched: Vec<(&WalletCoupon, BTreeSet<usize>)> = Vec::new();
        for a in &stacked.applied {
            prop_assert!(a.off_fen > 0);
            prop_assert_eq!(a.per_line_fen.iter().map(|(_, part)| part).sum::<i64>(), a.off_fen);
            for &(index, part) in &a.per_line_fen {
                paid[position(index)] -= part;
            }
            let c = wallet.iter().find(|c| c.claim_id == a.claim_id).expect("from the wallet");
            let merchant = if c.class == SHOP { c.scope.merchant_id } else { None };
            prop_assert!(slots.insert((c.class, merchant)), "one coupon per slot");
            let covered = lines.iter().filter(|l| c.scope.covers(l.merchant_id, l.product_id)).map(|l| l.index);
            touched.push((c, covered.collect()));
        }
        prop_assert_eq!(&paid, &stacked.line_paid_fen);
        prop_assert!(paid.iter().all(|&p| p >= 0));
        prop_assert_eq!(stacked.total_off_fen, stacked.applied.iter().map(|a| a.off_fen).sum::<i64>());
        prop_assert!(stacked.total_off_fen <= lines.iter().map(|l| l.base_fen).sum::<i64>());
        let wide = |c: &WalletCoupon| matches!(c.class, PLATFORM | CouponClass::RedPacket);
        for (i, (a, a_lines)) in touched.iter().enumerate() {
            for (b, b_lines) in &touched[i + 1..] {
                if wide(a) || wide(b) || !a_lines.is_disjoint(b_lines) {
                    prop_assert!(a.combines_with.contains(b.class) && b.combines_with.contains(a.class));
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]
        #[test]
        fn best_equals_brute_force((lines, wallet) in any_cart()) {
            let best = best(&lines, &wallet);
            check(&lines, &wallet, &best.stacked)?;
            let mut brute: Option<(Rank, Stacked)> = None;
            for mask in 0u32..1 << wallet.len() {
                let chosen: Vec<&WalletCoupon> =
                    wallet.iter().enumerate().filter(|(i, _)| mask & 1 << i != 0).map(|(_, c)| c).collect();
                let Ok(stacked) = apply(&lines, &chosen) else { continue };
                check(&lines, &wallet, &stacked)?;
                let key = rank(stacked.total_off_fen, chosen.into_iter());
                if brute.as_ref().is_none_or(|(best_key, _)| key < *best_key) {
                    brute = Some((key, stacked));
                }
            }
            prop_assert_eq!(Some(best.stacked), brute.map(|(_, stacked)| stacked));
        }
    }
}
