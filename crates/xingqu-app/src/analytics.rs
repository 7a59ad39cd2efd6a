//! Campaign analytics for operators and merchants: GMV and quality GMV (totals and a series), the
//! domestic-brand share of the hot list, farm-specialty sales year on year, orders by origin
//! region, dispatch volume per shipping point against its baseline, and people served by 安心购.
//!
//! **Quality GMV** (有质量的GMV) over a window `[from_ms, to_ms)`: the goods value buyers paid
//! (`order_lines.paid_fen`, shipping excluded) on lines of orders paid in the window, minus
//! 1. what those lines paid back: the whole line when the order was cancelled or expired after
//!    payment, else its refunds and compensation (`refunded_fen + compensation_fen`);
//! 2. lines of products banned now;
//! 3. lines of sanctioned sellers: shops whose qualification is not `approved` now;
//! 4. lines the hot-list brushing rules flagged (`brushing_flags`).
//!
//! A line excluded by 2–4 is excluded whole (its refunds are not subtracted twice); the first of
//! brushing, banned, sanctioned names the reason. So `gmv − refunds − banned − sanctioned −
//! brushing = quality_gmv` exactly. Price-protection and insurance payouts are not deducted: they
//! pay for a promise kept, not for a harmful sale.
//!
//! Zone figures: for a campaign (the one asked for, else the earliest-ending one not over), each
//! zone's approved entries, orders, units, GMV and quality GMV of their SKUs, and likes on their
//! products and the videos linking them, in the same window and scope.
//!
//! **Merchant experience score** (商家体验分), per shop over the orders paid in a window, each
//! sub-score in basis points (0–10,000, rounded down; null when there is nothing to judge):
//! - **product** = 10,000 × (lines − quality lines) / lines: a *quality line* has an accepted
//!   after-sale (approved by the shop, its timer or arbitration, or done) of a kind that says the
//!   goods were wrong — exchange, re-ship, repair, fresh damage, allergy return, counterfeit.
//!   Return-and-refund is left out: the store does not record whether a return was a seven-day
//!   no-reason one, so it cannot be told from a defect return.
//! - **logistics** = 10,000 × orders shipped by their dispatch deadline / orders due: an order is
//!   due once it shipped, or once its deadline passed unshipped (still `paid`: it counts as late).
//!   The deadline is the promised one (当日发 / 24小时发 / 48 h), or [`DEFAULT_DISPATCH_MS`] after
//!   payment when the shop promised nothing.
//! - **service** = 10,000 × after-sales answered by the shop's staff within the answer deadline
//!   (48 h from the request by default) / after-sales the shop had to answer: kinds the merchant
//!   answers (not price protection, not counterfeit claims), counted once they left `requested`
//!   by the shop's answer or its timer (a buyer's withdrawal before the answer is not counted).
//! - **overall** = (4 × product + 3 × logistics + 3 × service) / 10 over the sub-scores present
//!   (weights renormalised when one is null), rounded down.
//!
//! Creators are not scored: GMV through a creator's content is not attributed to orders (an
//! order does not record the video or live session it came from), so a creator score would be a
//! guess.

use crate::hotlist::{Measure, Window};
use crate::{App, AppError, AppResult};
use xingqu_domain::Invalid;
use xingqu_domain::account::{Actor, Role};
use xingqu_store::analytics::{FarmSales, GmvTotals, KeyedCount, ScoreCounts, ZoneFigures};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// The longest window one request may ask for.
pub const WINDOW_DAYS_MAX: i64 = 400;
/// Windows longer than this are bucketed by day, shorter ones by hour.
const HOURLY_SPAN_MAX_MS: i64 = 3 * DAY_MS;
/// The year-on-year comparison looks back this far (a fixed 365 days, so both windows have the
/// same length and weekday mix within a day).
const YEAR_MS: i64 = 365 * DAY_MS;
/// A shipping point's baseline: its average daily volume over this many days before the window.
pub const BASELINE_DAYS: i64 = 28;
/// The hot list the domestic-brand share is taken over: its top this many SKUs (24 h, units).
pub const HOT_LIST_TOP: usize = 100;
/// Rows of the regional and shipping-point tables.
pub const ROWS_MAX: i64 = 20;

/// An order whose shop promised no dispatch time is due this long after payment (the platform's
/// standard, the longest promise a shop can make).
pub const DEFAULT_DISPATCH_MS: i64 = 48 * HOUR_MS;
/// Weights of the overall score: product, logistics, service.
pub const SCORE_WEIGHTS: [i64; 3] = [4, 3, 3];

/// A shop's experience score over a window (see the module documentation), with its inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantScore {
    pub counts: ScoreCounts,
    pub product_bp: Option<i64>,
    pub logistics_bp: Option<i64>,
    pub service_bp: Option<i64>,
    pub overall_bp: Option<i64>,
}

/// `part / whole` in basis points, rounded down; `None` without a whole.
fn ratio_bp(part: i64, whole: i64) -> Option<i64> {
    (whole > 0).then(|| part.clamp(0, whole) * 10_000 / whole)
}

impl MerchantScore {
    pub fn from_counts(counts: ScoreCounts) -> Self {
        let product_bp = ratio_bp(counts.lines - counts.quality_lines, counts.lines);
        let logistics_bp = ratio_bp(counts.on_time_orders, counts.due_orders);
        let service_bp = ratio_bp(counts.answered_in_time, counts.after_sales);
        let (sum, weights) = [product_bp, logistics_bp, service_bp]
            .iter()
            .zip(SCORE_WEIGHTS)
            .filter_map(|(score, weight)| score.map(|s| (s * weight, weight)))
            .fold((0, 0), |(sum, weights), (s, w)| (sum + s, weights + w));
        let overall_bp = (weights > 0).then(|| sum / weights);
        Self { counts, product_bp, logistics_bp, service_bp, overall_bp }
    }
}

/// A valid analytics window: `from_ms < to_ms`, at most [`WINDOW_DAYS_MAX`] days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnalyticsWindow {
    from_ms: i64,
    to_ms: i64,
}

impl AnalyticsWindow {
    /// The window asked for; an end left out is now, a start left out is a day before the end.
    pub fn parse(from_ms: Option<i64>, to_ms: Option<i64>, now_ms: i64) -> Result<Self, Invalid> {
        let to_ms = to_ms.unwrap_or(now_ms);
        let from_ms = from_ms.unwrap_or(to_ms.saturating_sub(DAY_MS));
        if from_ms < 0 || to_ms < 0 {
            return Err(Invalid::new("from_ms", "invalid_window", "times are unix milliseconds, not negative"));
        }
        if from_ms >= to_ms {
            return Err(Invalid::new("from_ms", "invalid_window", "from_ms must be before to_ms"));
        }
        if to_ms - from_ms > WINDOW_DAYS_MAX * DAY_MS {
            return Err(Invalid::new(
                "to_ms",
                "window_too_long",
                format!("a window spans at most {WINDOW_DAYS_MAX} days"),
            ));
        }
        Ok(Self { from_ms, to_ms })
    }

    pub fn from_ms(&self) -> i64 {
        self.from_ms
    }

    pub fn to_ms(&self) -> i64 {
        self.to_ms
    }

    pub fn span_ms(&self) -> i64 {
        self.to_ms - self.from_ms
    }

    /// Hourly buckets, or daily ones when the window is longer than three days.
    pub fn bucket_ms(&self) -> i64 {
        if self.span_ms() > HOURLY_SPAN_MAX_MS { DAY_MS } else { HOUR_MS }
    }
}

/// One bucket of the GMV series, starting at `start_ms` (buckets are aligned to the window's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesPoint {
    pub start_ms: i64,
    pub gmv_fen: i64,
    pub quality_gmv_fen: i64,
}

/// Domestic brands (国货) among the top SKUs of the 24-hour hot list by units (now, whatever the
/// window), the shop's own SKUs among them for a merchant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomesticShare {
    pub ranked_skus: i64,
    pub domestic_skus: i64,
    /// `domestic * 10_000 / ranked`, rounded down; `None` with nothing ranked.
    pub share_bps: Option<i64>,
}

/// Farm-specialty sales in the window against the same window 365 days earlier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FarmYearOnYear {
    pub current: FarmSales,
    pub year_earlier: FarmSales,
    /// `current.gmv_fen / year_earlier.gmv_fen`; `None` when the earlier window sold none.
    pub gmv_ratio: Option<f64>,
}

/// Dispatch volume of one shipping point (a shop's region) against its own baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct ShippingPoint {
    pub region_code: String,
    /// Orders shipped in the window.
    pub shipped_orders: i64,
    pub per_day: f64,
    /// Orders shipped in the [`BASELINE_DAYS`] before the window.
    pub baseline_orders: i64,
    pub baseline_per_day: f64,
    /// `per_day / baseline_per_day`; `None` without a baseline.
    pub ratio: Option<f64>,
}

/// Everything the overview shows, for one window and scope.
#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    pub window: AnalyticsWindow,
    /// The shop the figures are limited to; `None`: the whole platform.
    pub merchant_id: Option<i64>,
    pub totals: GmvTotals,
    pub bucket_ms: i64,
    pub series: Vec<SeriesPoint>,
    pub domestic_brands: DomesticShare,
    pub farm_specialty: FarmYearOnYear,
    pub regions: Vec<KeyedCount>,
    pub shipping_points: Vec<ShippingPoint>,
    /// Distinct buyers of lines that carried 安心购 services.
    pub assured_buyers: i64,
    /// The campaign whose zones are shown (none when there is no campaign), and its zones.
    pub campaign_id: Option<i64>,
    pub zones: Vec<ZoneFigures>,
}

/// Whose figures `actor` may see: operators any shop's or all; a shop's staff their own only.
pub fn scope_for(actor: &Actor, requested_merchant_id: Option<i64>) -> AppResult<Option<i64>> {
    match actor.role {
        Role::Operator => Ok(requested_merchant_id),
        Role::MerchantStaff => {
            let own = actor.merchant_id.ok_or(AppError::Forbidden("analytics are for operators and shop staff"))?;
            match requested_merchant_id {
                Some(other) if other != own => Err(AppError::Forbidden("staff see their own shop's analytics only")),
                _ => Ok(Some(own)),
            }
        }
        _ => Err(AppError::Forbidden("analytics are for operators and shop staff")),
    }
}

fn per_day(orders: i64, span_ms: i64) -> f64 {
    // Counts and spans are far below 2^53: exact as f64.
    orders as f64 * DAY_MS as f64 / span_ms as f64
}

impl App {
    /// The analytics overview of `window` for `actor` (see [`scope_for`]).
    pub async fn analytics_overview(
        &self,
        actor: &Actor,
        requested_merchant_id: Option<i64>,
        requested_campaign_id: Option<i64>,
        window: AnalyticsWindow,
    ) -> AppResult<Overview> {
        let merchant_id = scope_for(actor, requested_merchant_id)?;
        if let Some(id) = merchant_id
            && self.store().merchant(id).await?.is_none()
        {
            return Err(AppError::not_found("merchant"));
        }
        let (from_ms, to_ms) = (window.from_ms, window.to_ms);
        let store = self.store();
        let totals = store.gmv_totals(merchant_id, from_ms, to_ms).await?;
        let bucket_ms = window.bucket_ms();
        let series = self.gmv_series(merchant_id, window).await?;
        let domestic_brands = self.domestic_share(merchant_id).await?;
        let current = store.farm_sales(merchant_id, from_ms, to_ms).await?;
        let year_earlier = store.farm_sales(merchant_id, from_ms - YEAR_MS, to_ms - YEAR_MS).await?;
        let gmv_ratio = (year_earlier.gmv_fen > 0).then(|| current.gmv_fen as f64 / year_earlier.gmv_fen as f64);
        let regions = store.orders_by_origin_region(merchant_id, from_ms, to_ms, ROWS_MAX).await?;
        let shipping_points = self.shipping_points(merchant_id, window).await?;
        let assured_buyers = store.assured_buyers(merchant_id, from_ms, to_ms).await?;
        let campaign_id = match requested_campaign_id {
            Some(id) => Some(store.campaign(id).await?.ok_or(AppError::not_found("campaign"))?.id),
            None => store.campaigns(self.now_ms(), 1).await?.first().map(|c| c.id),
        };
        let zones = match campaign_id {
            Some(id) => store.zone_figures(id, merchant_id, from_ms, to_ms).await?,
            None => Vec::new(),
        };
        Ok(Overview {
            window,
            merchant_id,
            totals,
            bucket_ms,
            series,
            domestic_brands,
            farm_specialty: FarmYearOnYear { current, year_earlier, gmv_ratio },
            regions,
            shipping_points,
            assured_buyers,
            campaign_id,
            zones,
        })
    }

    /// Experience scores of the shops with orders paid in `window`, best first (overall, then
    /// orders, then shop id); operators see every shop (or one), staff their own only.
    pub async fn merchant_scores(
        &self,
        actor: &Actor,
        requested_merchant_id: Option<i64>,
        window: AnalyticsWindow,
    ) -> AppResult<Vec<MerchantScore>> {
        let merchant_id = scope_for(actor, requested_merchant_id)?;
        if let Some(id) = merchant_id
            && self.store().merchant(id).await?.is_none()
        {
            return Err(AppError::not_found("merchant"));
        }
        let answer_ms = self.config().after_sale_deadlines.merchant_answer_ms;
        let counts = self
            .store()
            .score_counts(merchant_id, (window.from_ms, window.to_ms), DEFAULT_DISPATCH_MS, answer_ms, self.now_ms())
            .await?;
        let mut scores: Vec<MerchantScore> = counts.into_iter().map(MerchantScore::from_counts).collect();
        scores.sort_by(|a, b| {
            b.overall_bp
                .cmp(&a.overall_bp)
                .then(b.counts.orders.cmp(&a.counts.orders))
                .then(a.counts.merchant_id.cmp(&b.counts.merchant_id))
        });
        Ok(scores)
    }

    /// Every bucket of the window, empty ones included, so charts need no gap handling.
    async fn gmv_series(&self, merchant_id: Option<i64>, window: AnalyticsWindow) -> AppResult<Vec<SeriesPoint>> {
        let bucket_ms = window.bucket_ms();
        let stored = self.store().gmv_series(merchant_id, window.from_ms, window.to_ms, bucket_ms).await?;
        let buckets = (window.span_ms() + bucket_ms - 1) / bucket_ms;
        let mut series: Vec<SeriesPoint> = (0..buckets)
            .map(|i| SeriesPoint { start_ms: window.from_ms + i * bucket_ms, gmv_fen: 0, quality_gmv_fen: 0 })
            .collect();
        for bucket in stored {
            if let Some(point) = usize::try_from(bucket.bucket).ok().and_then(|i| series.get_mut(i)) {
                point.gmv_fen = bucket.gmv_fen;
                point.quality_gmv_fen = bucket.quality_gmv_fen;
            }
        }
        Ok(series)
    }

    async fn domestic_share(&self, merchant_id: Option<i64>) -> AppResult<DomesticShare> {
        let top = self.hot_top(Window::Day, Measure::Units, None, None, HOT_LIST_TOP);
        let sku_ids: Vec<i64> = top.iter().map(|&(sku, _)| sku).collect();
        let origins = self.store().sku_brand_origins(&sku_ids).await?;
        let in_scope = origins.iter().filter(|&&(_, shop, _)| merchant_id.is_none_or(|m| m == shop));
        let (ranked_skus, domestic_skus) = in_scope
            .fold((0, 0), |(ranked, domestic), &(_, _, is_domestic)| (ranked + 1, domestic + i64::from(is_domestic)));
        let share_bps = (ranked_skus > 0).then(|| domestic_skus * 10_000 / ranked_skus);
        Ok(DomesticShare { ranked_skus, domestic_skus, share_bps })
    }

    async fn shipping_points(
        &self,
        merchant_id: Option<i64>,
        window: AnalyticsWindow,
    ) -> AppResult<Vec<ShippingPoint>> {
        let store = self.store();
        let shipped = store.shipped_by_point(merchant_id, window.from_ms, window.to_ms, ROWS_MAX).await?;
        let points: Vec<String> = shipped.iter().map(|p| p.key.clone()).collect();
        let baseline_from_ms = window.from_ms - BASELINE_DAYS * DAY_MS;
        let baseline = store.shipped_at_points(merchant_id, baseline_from_ms, window.from_ms, &points).await?;
        Ok(shipped
            .into_iter()
            .map(|point| {
                let baseline_orders = baseline.iter().find(|b| b.key == point.key).map_or(0, |b| b.orders);
                let per_day = per_day(point.orders, window.span_ms());
                let baseline_per_day = per_day_of(baseline_orders, BASELINE_DAYS);
                ShippingPoint {
                    region_code: point.key,
                    shipped_orders: point.orders,
                    per_day,
                    baseline_orders,
                    baseline_per_day,
                    ratio: (baseline_orders > 0).then(|| per_day / baseline_per_day),
                }
            })
            .collect())
    }
}

fn per_day_of(orders: i64, days: i64) -> f64 {
    orders as f64 / days as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(from: Option<i64>, to: Option<i64>, expected: Result<(i64, i64), &str>) {
        let got = AnalyticsWindow::parse(from, to, 10 * DAY_MS).map(|w| (w.from_ms(), w.to_ms())).map_err(|e| e.code);
        assert_eq!(got, expected, "{from:?}..{to:?}");
    }

    #[test]
    fn windows_are_checked() {
        check(None, None, Ok((9 * DAY_MS, 10 * DAY_MS)));
        check(Some(0), Some(DAY_MS), Ok((0, DAY_MS)));
        check(Some(DAY_MS), Some(DAY_MS), Err("invalid_window"));
        check(Some(2 * DAY_MS), Some(DAY_MS), Err("invalid_window"));
        check(Some(-1), Some(DAY_MS), Err("invalid_window"));
        check(Some(0), Some(400 * DAY_MS), Ok((0, 400 * DAY_MS)));
        check(Some(0), Some(400 * DAY_MS + 1), Err("window_too_long"));
        check(Some(i64::MIN), Some(i64::MAX), Err("invalid_window"));
    }

    #[test]
    fn buckets_are_hourly_up_to_three_days() {
        let window = |days| AnalyticsWindow::parse(Some(0), Some(days * DAY_MS), 0).expect("window");
        assert_eq!(window(3).bucket_ms(), HOUR_MS);
        assert_eq!(window(4).bucket_ms(), DAY_MS);
    }

    #[test]
    fn scores_are_basis_points_with_weights_over_what_is_present() {
        let counts = ScoreCounts {
            lines: 5,
            quality_lines: 2,
            due_orders: 5,
            on_time_orders: 3,
            after_sales: 3,
            answered_in_time: 2,
            ..ScoreCounts::default()
        };
        let score = MerchantScore::from_counts(counts.clone());
        assert_eq!(
            (score.product_bp, score.logistics_bp, score.service_bp, score.overall_bp),
            (Some(6_000), Some(6_000), Some(6_666), Some(6_199))
        );
        let score = MerchantScore::from_counts(ScoreCounts { after_sales: 0, answered_in_time: 0, ..counts });
        assert_eq!((score.service_bp, score.overall_bp), (None, Some(6_000)));
        let nothing = MerchantScore::from_counts(ScoreCounts::default());
        assert_eq!(nothing.overall_bp, None);
    }

    #[test]
    fn only_operators_and_staff_see_analytics() {
        let actor = |role, merchant_id| Actor { user_id: 1, role, merchant_id };
        assert_eq!(scope_for(&actor(Role::Operator, None), None).ok(), Some(None));
        assert_eq!(scope_for(&actor(Role::Operator, None), Some(4)).ok(), Some(Some(4)));
        assert_eq!(scope_for(&actor(Role::MerchantStaff, Some(4)), None).ok(), Some(Some(4)));
        assert_eq!(scope_for(&actor(Role::MerchantStaff, Some(4)), Some(4)).ok(), Some(Some(4)));
        assert!(scope_for(&actor(Role::MerchantStaff, Some(4)), Some(5)).is_err());
        assert!(scope_for(&actor(Role::Consumer, None), None).is_err());
        assert!(scope_for(&actor(Role::Creator, None), None).is_err());
    }
}
