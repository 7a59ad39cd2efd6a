//! Real-time hot-sales lists (实时热卖榜): top SKUs by net units and net GMV over sliding windows
//! (1 h, 24 h) and campaign-to-date, overall and per category, fed by sale events. Refunds are
//! negative events; events flagged as suspected brushing are kept apart for review, not counted.
//!
//! Minute buckets hold what each minute added; each window keeps running totals and an ordered
//! index per measure, and subtracts a bucket when it leaves the window. Events are applied in
//! batches, so a hot SKU sold a thousand times in a batch touches the indexes once.

use std::collections::{BTreeSet, HashMap, VecDeque};

const MINUTE_MS: i64 = 60_000;

/// Net (units, GMV in 分) added per (sku, category).
type Deltas = HashMap<(i64, i64), (i64, i64)>;
/// Events kept for review at most (the oldest are dropped first).
const REVIEW_MAX: usize = 100_000;

/// A sale (positive) or refund (negative) of a SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaleEvent {
    pub sku_id: i64,
    pub category_id: i64,
    pub units: i64,
    pub gmv_fen: i64,
    pub at_ms: i64,
    /// Flagged by the brushing rules: excluded from the lists, kept for review.
    pub suspected_brushing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    Hour,
    Day,
    CampaignToDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Measure {
    Units,
    GmvFen,
}

impl Window {
    pub const ALL: [Window; 3] = [Window::Hour, Window::Day, Window::CampaignToDate];

    fn span_minutes(self) -> Option<i64> {
        match self {
            Window::Hour => Some(60),
            Window::Day => Some(24 * 60),
            Window::CampaignToDate => None,
        }
    }
}

/// Running totals of one window and the rankings over them. Only positive totals are ranked.
#[derive(Debug)]
struct WindowState {
    totals: HashMap<i64, (i64, i64, i64)>,
    units: Ranking,
    gmv: Ranking,
    /// Minute buckets up to this one have been subtracted (they left the window).
    expired_through_minute: i64,
}

#[derive(Debug, Default)]
struct Ranking {
    overall: BTreeSet<(i64, std::cmp::Reverse<i64>)>,
    by_category: HashMap<i64, BTreeSet<(i64, std::cmp::Reverse<i64>)>>,
}

impl Ranking {
    fn set(&mut self, sku_id: i64, old_category_id: i64, category_id: i64, old: i64, new: i64) {
        let key = std::cmp::Reverse(sku_id);
        if old > 0 {
            self.overall.remove(&(old, key));
            if let Some(set) = self.by_category.get_mut(&old_category_id) {
                set.remove(&(old, key));
            }
        }
        if new > 0 {
            self.overall.insert((new, key));
            self.by_category.entry(category_id).or_default().insert((new, key));
        }
    }

    fn top(&self, category_id: Option<i64>, n: usize) -> Vec<(i64, i64)> {
        let set = match category_id {
            None => Some(&self.overall),
            Some(c) => self.by_category.get(&c),
        };
        set.map(|s| s.iter().rev().take(n).map(|&(value, std::cmp::Reverse(sku))| (sku, value)).collect())
            .unwrap_or_default()
    }
}

impl Default for WindowState {
    fn default() -> Self {
        Self {
            totals: HashMap::new(),
            units: Ranking::default(),
            gmv: Ranking::default(),
            expired_through_minute: i64::MIN,
        }
    }
}

impl WindowState {
    fn add(&mut self, sku_id: i64, category_id: i64, units: i64, gmv_fen: i64) {
        let entry = self.totals.entry(sku_id).or_insert((0, 0, category_id));
        let (old_units, old_gmv, old_category) = *entry;
        entry.0 += units;
        entry.1 += gmv_fen;
        // A SKU whose product moved category is re-filed under the new one.
        entry.2 = category_id;
        let (new_units, new_gmv) = (entry.0, entry.1);
        if new_units == 0 && new_gmv == 0 {
            self.totals.remove(&sku_id);
        }
        if old_units != new_units || old_category != category_id {
            self.units.set(sku_id, old_category, category_id, old_units, new_units);
        }
        if old_gmv != new_gmv || old_category != category_id {
            self.gmv.set(sku_id, old_category, category_id, old_gmv, new_gmv);
        }
    }
}

/// The hot lists. Not thread-safe by itself: one task applies batches, readers take a lock or a
/// snapshot (see the bench and the app's projection).
#[derive(Debug, Default)]
pub struct HotLists {
    /// (minute, what that minute added), oldest first, the last 24 h.
    buckets: VecDeque<(i64, Deltas)>,
    windows: [WindowState; 3],
    review: VecDeque<SaleEvent>,
    applied: u64,
}

impl HotLists {
    pub fn new() -> Self {
        Self::default()
    }

    /// Events applied so far (brushing excluded).
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Applies a batch of events and moves the windows to `now_ms`. Each event counts in the
    /// minute it happened: a late or replayed event lands in the windows that still cover it.
    pub fn apply(&mut self, events: &[SaleEvent], now_ms: i64) {
        let now_minute = now_ms.div_euclid(MINUTE_MS);
        self.advance(now_minute);
        let mut by_minute: HashMap<i64, Deltas> = HashMap::new();
        for event in events {
            if event.suspected_brushing {
                if self.review.len() == REVIEW_MAX {
                    self.review.pop_front();
                }
                self.review.push_back(*event);
                continue;
            }
            let minute = event.at_ms.div_euclid(MINUTE_MS).min(now_minute);
            let delta = by_minute.entry(minute).or_default().entry((event.sku_id, event.category_id)).or_default();
            delta.0 += event.units;
            delta.1 += event.gmv_fen;
            self.applied += 1;
        }
        for (minute, deltas) in by_minute {
            for (index, window) in Window::ALL.iter().enumerate() {
                let state = &mut self.windows[index];
                let covered = window.span_minutes().is_none_or(|span| minute > now_minute - span);
                if covered && minute > state.expired_through_minute {
                    for (&(sku, category), &(units, gmv)) in &deltas {
                        state.add(sku, category, units, gmv);
                    }
                }
            }
            if minute > now_minute - 24 * 60 {
                let at = self.buckets.partition_point(|(m, _)| *m < minute);
                if self.buckets.get(at).is_none_or(|(m, _)| *m != minute) {
                    self.buckets.insert(at, (minute, Deltas::new()));
                }
                if let Some((_, bucket)) = self.buckets.get_mut(at) {
                    for (key, (units, gmv)) in deltas {
                        let entry = bucket.entry(key).or_default();
                        entry.0 += units;
                        entry.1 += gmv;
                    }
                }
            }
        }
    }

    /// Subtracts the minutes that left each window; drops buckets older than a day.
    fn advance(&mut self, now_minute: i64) {
        for (index, window) in Window::ALL.iter().enumerate() {
            let Some(span) = window.span_minutes() else { continue };
            let cutoff = now_minute - span;
            let state = &mut self.windows[index];
            for (minute, bucket) in &self.buckets {
                if *minute > cutoff {
                    break;
                }
                if *minute > state.expired_through_minute {
                    for (&(sku, category), &(units, gmv)) in bucket {
                        state.add(sku, category, -units, -gmv);
                    }
                }
            }
            state.expired_through_minute = state.expired_through_minute.max(cutoff);
        }
        let day_cutoff = now_minute - 24 * 60;
        while self.buckets.front().is_some_and(|(minute, _)| *minute <= day_cutoff) {
            self.buckets.pop_front();
        }
    }

    /// The top `n` SKUs of a window by a measure, overall or in one category: (sku, value).
    pub fn top(&self, window: Window, measure: Measure, category_id: Option<i64>, n: usize) -> Vec<(i64, i64)> {
        let index = Window::ALL.iter().position(|w| *w == window).unwrap_or(0);
        let state = &self.windows[index];
        match measure {
            Measure::Units => state.units.top(category_id, n),
            Measure::GmvFen => state.gmv.top(category_id, n),
        }
    }

    /// The top `n` of `skus` (a zone's) in a window by a measure, optionally in one category.
    pub fn top_of(
        &self,
        window: Window,
        measure: Measure,
        skus: &[i64],
        category_id: Option<i64>,
        n: usize,
    ) -> Vec<(i64, i64)> {
        let index = Window::ALL.iter().position(|w| *w == window).unwrap_or(0);
        let totals = &self.windows[index].totals;
        let mut top: Vec<(i64, i64)> = skus
            .iter()
            .filter_map(|sku| {
                let &(units, gmv, category) = totals.get(sku)?;
                let value = match measure {
                    Measure::Units => units,
                    Measure::GmvFen => gmv,
                };
                (value > 0 && category_id.is_none_or(|c| c == category)).then_some((*sku, value))
            })
            .collect();
        // The same order as the full lists: value down, then SKU id up.
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        top.dedup_by_key(|e| e.0);
        top.truncate(n);
        top
    }

    /// Events excluded as suspected brushing, most recent last.
    pub fn for_review(&self) -> impl Iterator<Item = &SaleEvent> {
        self.review.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(sku_id: i64, category_id: i64, units: i64, at_ms: i64) -> SaleEvent {
        SaleEvent { sku_id, category_id, units, gmv_fen: units * 100, at_ms, suspected_brushing: false }
    }

    #[test]
    fn windows_slide_refunds_subtract_and_brushing_is_kept_apart() {
        let mut lists = HotLists::new();
        let t0 = 1_000 * MINUTE_MS;
        lists.apply(&[sale(1, 10, 5, t0), sale(2, 10, 3, t0), sale(3, 20, 4, t0)], t0);
        assert_eq!(lists.top(Window::Hour, Measure::Units, None, 2), vec![(1, 5), (3, 4)]);
        assert_eq!(lists.top(Window::Hour, Measure::Units, Some(10), 5), vec![(1, 5), (2, 3)]);
        // A refund subtracts; a brushed order does not count.
        let brushed = SaleEvent { suspected_brushing: true, ..sale(2, 10, 100, t0) };
        lists.apply(&[sale(1, 10, -4, t0 + 1), brushed], t0 + 1);
        assert_eq!(lists.top(Window::Hour, Measure::Units, None, 3), vec![(3, 4), (2, 3), (1, 1)]);
        assert_eq!(lists.for_review().count(), 1);
        // Thirty minutes later sku 2 sells again; an hour after t0 the first minute leaves the hour.
        lists.apply(&[sale(2, 10, 2, t0 + 30 * MINUTE_MS)], t0 + 30 * MINUTE_MS);
        lists.apply(&[], t0 + 61 * MINUTE_MS);
        assert_eq!(lists.top(Window::Hour, Measure::Units, None, 5), vec![(2, 2)]);
        assert_eq!(lists.top(Window::Day, Measure::Units, None, 5), vec![(2, 5), (3, 4), (1, 1)]);
        assert_eq!(lists.top(Window::Day, Measure::GmvFen, None, 1), vec![(2, 500)]);
        lists.apply(&[], t0 + 25 * 60 * MINUTE_MS);
        assert!(lists.top(Window::Day, Measure::Units, None, 5).is_empty());
        assert_eq!(lists.top(Window::CampaignToDate, Measure::Units, None, 1), vec![(2, 5)]);
    }

    fn order(id: i64, buyer_user_id: i64, address: &str) -> xingqu_store::orders::OrderRow {
        xingqu_store::orders::OrderRow {
            id,
            checkout_id: id,
            buyer_user_id,
            merchant_id: 1,
            trade_type: "normal".into(),
            flash_sale_id: None,
            status: "paid".into(),
            goods_list_fen: 100,
            discount_fen: 0,
            shipping_fen: 0,
            total_fen: 100,
            paid_fen: 100,
            refunded_fen: 0,
            address: address.into(),
            dispatch_promise: "none".into(),
            dispatch_deadline_ms: None,
            carrier: None,
            tracking_number: None,
            created_at_ms: 0,
            expires_at_ms: 0,
            paid_at_ms: Some(0),
            shipped_at_ms: None,
            delivered_at_ms: None,
            completed_at_ms: None,
            closed_at_ms: None,
            settled_at_ms: None,
            commission_fen: 0,
        }
    }

    #[test]
    fn brushing_rules_keep_suspects_out_and_their_refunds_too() {
        let mut hot = HotState::default();
        let t = 100 * HOUR_MS;
        // One buyer, eleven orders of SKU 1 within the hour: the eleventh is too fast.
        for i in 0..11 {
            hot.feed(&order(i, 7, "addr-a"), None, &[(1, 1, 1, 100, t + i)], 1, t + i);
        }
        // Six buyers sending SKU 2 to one address: the sixth makes a cluster.
        for buyer in 0..6 {
            hot.feed(&order(100 + buyer, 50 + buyer, "same-address"), None, &[(2, 1, 1, 100, t)], 1, t);
        }
        assert_eq!(hot.lists.top(Window::Hour, Measure::Units, None, 5), vec![(1, 10), (2, 5)]);
        let rules: Vec<&str> = hot.suspects().map(|s| s.rule).collect();
        assert_eq!(rules, vec!["velocity", "address_cluster"]);
        // The refund of a suspected order does not subtract what was never added.
        hot.feed(&order(10, 7, "addr-a"), None, &[(1, 1, 1, 100, t)], -1, t + 20);
        assert_eq!(hot.lists.top(Window::Hour, Measure::Units, None, 1), vec![(1, 10)]);
        // An hour later the same buyer is no longer too fast.
        hot.feed(&order(11, 7, "addr-a"), None, &[(1, 1, 1, 100, t + HOUR_MS + 20)], 1, t + HOUR_MS + 20);
        assert_eq!(hot.suspects().count(), 2);
        // Four accounts paying from one device within the hour: the fourth is a cluster.
        for buyer in 0..4 {
            let address = format!("addr-{buyer}");
            hot.feed(&order(200 + buyer, 80 + buyer, &address), Some("phone-1"), &[(3, 1, 1, 100, t)], 1, t);
        }
        assert_eq!(hot.suspects().last().map(|s| (s.rule, s.buyer_user_id)), Some(("device_cluster", 83)));
        assert_eq!(hot.lists.top(Window::Day, Measure::Units, Some(1), 3), vec![(1, 11), (2, 5), (3, 3)]);
    }

    #[test]
    fn a_zone_list_ranks_its_own_skus_like_the_full_list() {
        let mut lists = HotLists::new();
        lists.apply(&[sale(1, 10, 5, 0), sale(2, 10, 3, 0), sale(3, 20, 4, 0), sale(4, 20, 4, 0)], 0);
        assert_eq!(lists.top_of(Window::Hour, Measure::Units, &[4, 3, 2, 9], None, 2), vec![(3, 4), (4, 4)]);
        assert_eq!(lists.top_of(Window::Hour, Measure::GmvFen, &[1, 2], Some(10), 5), vec![(1, 500), (2, 300)]);
        assert!(lists.top_of(Window::Hour, Measure::Units, &[9], None, 5).is_empty());
    }

    #[test]
    fn late_events_land_in_the_windows_that_cover_them() {
        let mut lists = HotLists::new();
        let now = 10_000 * MINUTE_MS;
        lists.apply(&[sale(1, 1, 2, now - 2 * 60 * MINUTE_MS), sale(2, 1, 1, now - 5 * MINUTE_MS)], now);
        assert_eq!(lists.top(Window::Hour, Measure::Units, None, 5), vec![(2, 1)]);
        assert_eq!(lists.top(Window::Day, Measure::Units, None, 5), vec![(1, 2), (2, 1)]);
        lists.apply(&[], now + 23 * 60 * MINUTE_MS);
        assert_eq!(lists.top(Window::Day, Measure::Units, None, 5), vec![(2, 1)], "sku 1 left the day");
    }

    #[test]
    fn batching_gives_the_same_lists_as_one_by_one() {
        let events: Vec<SaleEvent> = (0..500).map(|i| sale(i % 37, i % 5, 1 + i % 3, 0)).collect();
        let mut batched = HotLists::new();
        batched.apply(&events, 0);
        let mut single = HotLists::new();
        for event in &events {
            single.apply(std::slice::from_ref(event), 0);
        }
        for window in Window::ALL {
            assert_eq!(batched.top(window, Measure::Units, None, 37), single.top(window, Measure::Units, None, 37));
        }
    }
}

/// The stated brushing rules (刷单), applied to each paid order before it reaches the lists:
/// - *velocity*: one buyer paying for more than [`VELOCITY_MAX`] orders of a SKU within an hour;
/// - *address cluster*: more than [`CLUSTER_MAX`] distinct buyers sending a SKU to one address
///   within an hour;
/// - *device cluster*: more than [`DEVICE_CLUSTER_MAX`] distinct accounts paying for orders placed
///   from one device (the `X-Device-Id` the client sends) within an hour.
///
/// Merchant staff cannot buy at all (orders are for consumer and creator accounts), which covers
/// staff buying their own goods.
pub const VELOCITY_MAX: usize = 10;
pub const CLUSTER_MAX: usize = 5;
pub const DEVICE_CLUSTER_MAX: usize = 3;
const HOUR_MS: i64 = 3_600_000;
/// Buyer and address keys tracked by the brushing rules before a sweep.
const TRACKED_MAX: usize = 1_000_000;
/// Flagged order lines remembered (for their refunds) at most.
const FLAGGED_MAX: usize = 1_000_000;

/// A sale kept out of the lists, for an operator to review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspect {
    pub order_id: i64,
    pub buyer_user_id: i64,
    pub sku_id: i64,
    pub units: i64,
    pub rule: &'static str,
    pub at_ms: i64,
}

/// The hot lists with the brushing rules in front of them.
#[derive(Debug, Default)]
pub struct HotState {
    pub lists: HotLists,
    /// (buyer, sku) → times of their paid orders in the last hour.
    velocity: HashMap<(i64, i64), VecDeque<i64>>,
    /// (address, sku) → buyer → time of their last paid order.
    clusters: HashMap<(String, i64), HashMap<i64, i64>>,
    /// device → buyer → time of their last paid order.
    devices: HashMap<String, HashMap<i64, i64>>,
    /// Order lines (order, sku) kept out, so their refunds are kept out too.
    flagged: std::collections::HashSet<(i64, i64)>,
    review: VecDeque<Suspect>,
}

impl HotState {
    /// Decides whether a paid order's line looks like brushing; records it either way.
    fn judge(
        &mut self,
        order_id: i64,
        buyer_user_id: i64,
        (address, device): (&str, Option<&str>),
        sku_id: i64,
        at_ms: i64,
    ) -> Option<&'static str> {
        // Keys seen once never come back on their own: sweep everything older than the hour
        // whenever the maps grow large.
        if self.velocity.len() + self.clusters.len() + self.devices.len() > TRACKED_MAX {
            self.velocity.retain(|_, times| times.back().is_some_and(|&t| t > at_ms - HOUR_MS));
            self.clusters.retain(|_, buyers| buyers.values().any(|&t| t > at_ms - HOUR_MS));
            self.devices.retain(|_, buyers| buyers.values().any(|&t| t > at_ms - HOUR_MS));
        }
        let crowded_device = device.is_some_and(|device| {
            let buyers = self.devices.entry(device.to_owned()).or_default();
            buyers.retain(|_, t| *t > at_ms - HOUR_MS);
            buyers.insert(buyer_user_id, at_ms);
            buyers.len() > DEVICE_CLUSTER_MAX
        });
        let recent = self.velocity.entry((buyer_user_id, sku_id)).or_default();
        while recent.front().is_some_and(|&t| t <= at_ms - HOUR_MS) {
            recent.pop_front();
        }
        recent.push_back(at_ms);
        let too_fast = recent.len() > VELOCITY_MAX;
        let buyers = self.clusters.entry((address.to_owned(), sku_id)).or_default();
        buyers.retain(|_, t| *t > at_ms - HOUR_MS);
        buyers.insert(buyer_user_id, at_ms);
        let cluster = buyers.len() > CLUSTER_MAX;
        let rule = if too_fast {
            Some("velocity")
        } else if cluster {
            Some("address_cluster")
        } else if crowded_device {
            Some("device_cluster")
        } else {
            None
        };
        if rule.is_some() {
            if self.flagged.len() >= FLAGGED_MAX {
                self.flagged.clear();
            }
            self.flagged.insert((order_id, sku_id));
        }
        rule
    }

    /// Stored sale lines become events; suspected ones go to review instead of the lists.
    /// Returns the lines flagged now, for the caller to persist.
    fn feed(
        &mut self,
        order: &xingqu_store::orders::OrderRow,
        device: Option<&str>,
        lines: &[(i64, i64, i64, i64, i64)],
        sign: i64,
        now_ms: i64,
    ) -> Vec<Suspect> {
        let mut flagged = Vec::new();
        let mut events = Vec::with_capacity(lines.len());
        for &(sku_id, category_id, units, paid_fen, paid_at_ms) in lines {
            // A refund takes back from the window the sale counted in: it is dated at the sale.
            let at_ms = paid_at_ms;
            let suspected = if sign > 0 {
                match self.judge(order.id, order.buyer_user_id, (&order.address, device), sku_id, at_ms) {
                    Some(rule) => {
                        if self.review.len() == REVIEW_MAX {
                            self.review.pop_front();
                        }
                        let suspect = Suspect {
                            order_id: order.id,
                            buyer_user_id: order.buyer_user_id,
                            sku_id,
                            units,
                            rule,
                            at_ms,
                        };
                        flagged.push(suspect.clone());
                        self.review.push_back(suspect);
                        true
                    }
                    None => false,
                }
            } else {
                self.flagged.contains(&(order.id, sku_id))
            };
            events.push(SaleEvent {
                sku_id,
                category_id,
                units: sign * units,
                gmv_fen: sign * paid_fen,
                at_ms,
                suspected_brushing: suspected,
            });
        }
        self.lists.apply(&events, now_ms);
        flagged
    }

    /// Puts a flagged line read back from the store under review again (at start-up), so its
    /// refund stays out of the lists too.
    fn restore_flag(&mut self, line: &xingqu_store::analytics::FlaggedLine) {
        let rule = match line.rule.as_str() {
            "velocity" => "velocity",
            "device_cluster" => "device_cluster",
            _ => "address_cluster",
        };
        self.flagged.insert((line.order_id, line.sku_id));
        if self.review.len() == REVIEW_MAX {
            self.review.pop_front();
        }
        self.review.push_back(Suspect {
            order_id: line.order_id,
            buyer_user_id: line.buyer_user_id,
            sku_id: line.sku_id,
            units: line.units,
            rule,
            at_ms: line.paid_at_ms,
        });
    }

    /// Sales kept out of the lists, most recent last.
    pub fn suspects(&self) -> impl Iterator<Item = &Suspect> {
        self.review.iter()
    }
}

/// One entry of a hot list as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotEntry {
    pub sku_id: i64,
    pub product_id: i64,
    pub title: String,
    pub value: i64,
}

impl crate::App {
    /// Feeds the hot lists with what an order sold (`sign` 1) or gave back (`sign` -1), through
    /// the brushing rules.
    pub(crate) async fn record_sale(&self, order: &xingqu_store::orders::OrderRow, sign: i64) {
        // Only a sale is judged; a refund follows its sale's verdict.
        let device = if sign > 0 { self.store().checkout_device(order.checkout_id).await } else { Ok(None) };
        match (self.store().sold_lines(Some(order.id), i64::MIN).await, device) {
            (Ok(lines), Ok(device)) => {
                let now_ms = self.now_ms();
                let flagged = self.hot().feed(order, device.as_deref(), &lines, sign, now_ms);
                // Persisted after the payment committed: analytics (quality GMV) and a restarted
                // node read them. A crash in between loses the flag, never the sale.
                for suspect in flagged {
                    if let Err(error) =
                        self.store().flag_brushing(suspect.order_id, suspect.sku_id, suspect.rule, suspect.at_ms).await
                    {
                        tracing::warn!(order_id = suspect.order_id, sku_id = suspect.sku_id, %error, "brushing flag not stored");
                    }
                }
            }
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(order_id = order.id, %error, "hot lists missed an order; they catch up at the next start")
            }
        }
    }

    /// Units of one SKU an after-sale paid back (`refund_fen`): taken off the lists in the window
    /// the sale counted in, unless the sale was kept out as brushing. (Lines are read net of what
    /// they paid back, so a later cancel or a rebuild does not take them off twice.)
    pub(crate) async fn record_units_refunded(&self, order_id: i64, sku_id: i64, units: i64, refund_fen: i64) {
        let order = match self.store().order(order_id).await {
            Ok(Some(order)) => order,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(order_id, %error, "hot lists missed a refund; they catch up at the next start");
                return;
            }
        };
        match self.store().sold_lines(Some(order_id), i64::MIN).await {
            Ok(lines) => {
                let refunded: Vec<_> = lines
                    .into_iter()
                    .filter(|line| line.0 == sku_id)
                    .take(1)
                    .map(|(sku, category, _, _, paid_at_ms)| (sku, category, units, refund_fen, paid_at_ms))
                    .collect();
                let now_ms = self.now_ms();
                self.hot().feed(&order, None, &refunded, -1, now_ms);
            }
            Err(error) => {
                tracing::warn!(order_id, %error, "hot lists missed a refund; they catch up at the next start")
            }
        }
    }

    /// Sales kept out of the hot lists as suspected brushing, for operators.
    pub fn brushing_suspects(&self, actor: &xingqu_domain::account::Actor) -> crate::AppResult<Vec<Suspect>> {
        if !actor.is_operator() {
            return Err(crate::AppError::Forbidden("only operators review suspected brushing"));
        }
        Ok(self.hot().suspects().cloned().collect())
    }

    /// Rebuilds the hot lists at start-up from the orders paid in the last day, or since the
    /// start of the earliest campaign running now if that is earlier (campaign to date); lines the
    /// brushing rules flagged stay out and go back under review.
    pub async fn rebuild_hot_lists(&self) -> crate::AppResult<usize> {
        let now_ms = self.now_ms();
        let campaign_start_ms = self
            .store()
            .campaigns(now_ms, crate::campaigns::LIST_LIMIT)
            .await?
            .iter()
            .filter(|c| c.starts_at_ms <= now_ms && now_ms < c.ends_at_ms)
            .map(|c| c.starts_at_ms)
            .min();
        let since_ms = campaign_start_ms.map_or(now_ms - 24 * HOUR_MS, |start| start.min(now_ms - 24 * HOUR_MS));
        let lines = self.store().sold_lines(None, since_ms).await?;
        let flagged = self.store().flagged_lines(since_ms).await?;
        let mut events: Vec<SaleEvent> = lines
            .into_iter()
            .map(|(sku_id, category_id, units, paid_fen, paid_at_ms)| SaleEvent {
                sku_id,
                category_id,
                units,
                gmv_fen: paid_fen,
                at_ms: paid_at_ms,
                suspected_brushing: false,
            })
            .collect();
        // `sold_lines` counts flagged lines too: take each back out where it counted.
        events.extend(flagged.iter().map(|line| SaleEvent {
            sku_id: line.sku_id,
            category_id: line.category_id,
            units: -line.units,
            gmv_fen: -line.paid_fen,
            at_ms: line.paid_at_ms,
            suspected_brushing: false,
        }));
        let n = events.len() - flagged.len();
        let mut fresh = HotLists::new();
        fresh.apply(&events, now_ms);
        let mut hot = self.hot();
        hot.lists = fresh;
        // Idempotent: the review and the flagged set are what the store says.
        hot.review.clear();
        hot.flagged.clear();
        for line in &flagged {
            hot.restore_flag(line);
        }
        Ok(n)
    }

    /// A consumer's own hot list: the top sellers of the last day within the categories they buy
    /// in most (the last 90 days); the overall list for someone with no purchases yet.
    pub async fn hot_list_for(
        &self,
        actor: &xingqu_domain::account::Actor,
        limit: usize,
    ) -> crate::AppResult<Vec<HotEntry>> {
        let since_ms = self.now_ms() - 90 * 24 * HOUR_MS;
        let categories = self.store().buyer_categories(actor.user_id, since_ms, 5).await?;
        if categories.is_empty() {
            return self.hot_list(Window::Day, Measure::Units, None, limit).await;
        }
        let mut merged: Vec<(i64, i64)> = {
            let mut hot = self.hot();
            let now_ms = self.now_ms();
            hot.lists.apply(&[], now_ms);
            categories.iter().flat_map(|&c| hot.lists.top(Window::Day, Measure::Units, Some(c), limit)).collect()
        };
        merged.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        merged.truncate(limit);
        let mut entries = Vec::with_capacity(merged.len());
        for (sku_id, value) in merged {
            let Some(sku) = self.store().sku_for_order(sku_id).await? else { continue };
            entries.push(HotEntry { sku_id, product_id: sku.product_id, title: sku.title, value });
        }
        Ok(entries)
    }

    /// The top `limit` SKUs of `window` by `measure` as (sku, value), without their titles: what
    /// the analytics and the live stream compare.
    pub fn hot_top(
        &self,
        window: Window,
        measure: Measure,
        category_id: Option<i64>,
        zone_skus: Option<&[i64]>,
        limit: usize,
    ) -> Vec<(i64, i64)> {
        let now_ms = self.now_ms();
        let mut hot = self.hot();
        hot.lists.apply(&[], now_ms);
        match zone_skus {
            Some(skus) => hot.lists.top_of(window, measure, skus, category_id, limit),
            None => hot.lists.top(window, measure, category_id, limit),
        }
    }

    /// The SKUs a zone's hot list ranks: its approved entries.
    pub async fn zone_skus(&self, zone_id: i64) -> crate::AppResult<Vec<i64>> {
        self.store().zone(zone_id).await?.ok_or(crate::AppError::not_found("zone"))?;
        let entries = self.store().zone_entries(zone_id, Some("approved"), None, i64::MAX).await?;
        Ok(entries.into_iter().map(|e| e.sku_id).collect())
    }

    /// Titles for a ranking from [`crate::App::hot_top`].
    pub async fn hot_entries(&self, top: Vec<(i64, i64)>) -> crate::AppResult<Vec<HotEntry>> {
        let mut entries = Vec::with_capacity(top.len());
        for (sku_id, value) in top {
            let Some(sku) = self.store().sku_for_order(sku_id).await? else { continue };
            entries.push(HotEntry { sku_id, product_id: sku.product_id, title: sku.title, value });
        }
        Ok(entries)
    }

    /// A hot list: the top `limit` SKUs of `window` by `measure`, overall or in a category.
    pub async fn hot_list(
        &self,
        window: Window,
        measure: Measure,
        category_id: Option<i64>,
        limit: usize,
    ) -> crate::AppResult<Vec<HotEntry>> {
        self.hot_list_in(window, measure, category_id, None, limit).await
    }

    /// A hot list, optionally of one campaign zone's approved SKUs only.
    pub async fn hot_list_in(
        &self,
        window: Window,
        measure: Measure,
        category_id: Option<i64>,
        zone_id: Option<i64>,
        limit: usize,
    ) -> crate::AppResult<Vec<HotEntry>> {
        let zone_skus = match zone_id {
            Some(zone_id) => Some(self.zone_skus(zone_id).await?),
            None => None,
        };
        let top = self.hot_top(window, measure, category_id, zone_skus.as_deref(), limit);
        self.hot_entries(top).await
    }
}
