//! Campaign analytics: the overview as JSON and its tables as CSV, for operators (any shop or
//! all) and shop staff (their own shop). See `xingqu_app::analytics` for what each figure means.

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiQuery, Auth};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use xingqu_app::analytics::{AnalyticsWindow, MerchantScore, Overview};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(overview)).routes(routes!(overview_csv)).routes(routes!(scores))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OverviewQuery {
    /// Start of the window (unix ms, inclusive); default a day before `to_ms`.
    from_ms: Option<i64>,
    /// End of the window (unix ms, exclusive); default now. At most 400 days after `from_ms`.
    to_ms: Option<i64>,
    /// Operators: one shop's figures. Staff: their own shop (another shop's id is 403).
    merchant_id: Option<i64>,
    /// The campaign whose zones to show; default the earliest-ending one not over yet.
    campaign_id: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CsvQuery {
    /// totals, gmv_series, regions, shipping_points, farm_specialty or zones.
    section: Option<String>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    merchant_id: Option<i64>,
    campaign_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct GmvResponse {
    /// Orders paid in the window.
    orders: i64,
    /// Goods value paid (shipping excluded) on orders paid in the window.
    gmv_fen: i64,
    /// `gmv_fen - refunds_fen - banned_fen - sanctioned_fen - brushing_fen`.
    quality_gmv_fen: i64,
    /// Paid back (refunds, compensation, cancellations after payment) on lines otherwise counted.
    refunds_fen: i64,
    /// Lines of products banned now.
    banned_fen: i64,
    /// Lines of shops whose qualification is not approved now.
    sanctioned_fen: i64,
    /// Lines flagged as suspected brushing.
    brushing_fen: i64,
}

#[derive(Serialize, ToSchema)]
pub struct SeriesPointResponse {
    start_ms: i64,
    gmv_fen: i64,
    quality_gmv_fen: i64,
}

#[derive(Serialize, ToSchema)]
pub struct SeriesResponse {
    /// 3,600,000 (hourly) for windows up to three days, else 86,400,000 (daily).
    bucket_ms: i64,
    points: Vec<SeriesPointResponse>,
}

#[derive(Serialize, ToSchema)]
pub struct DomesticBrandsResponse {
    /// SKUs of the 24-hour hot list's top 100 by units (a shop's: its own among them).
    ranked_skus: i64,
    /// Of those, SKUs of domestic brands (国货).
    domestic_skus: i64,
    /// domestic / ranked in basis points, rounded down; null when nothing is ranked.
    share_bps: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct FarmSalesResponse {
    orders: i64,
    units: i64,
    gmv_fen: i64,
}

#[derive(Serialize, ToSchema)]
pub struct FarmSpecialtyResponse {
    current: FarmSalesResponse,
    /// The same window 365 days earlier.
    year_earlier: FarmSalesResponse,
    /// current.gmv_fen / year_earlier.gmv_fen; null when the earlier window sold none.
    gmv_ratio: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct RegionResponse {
    /// The products' origin region (GB/T 2260 code).
    region_code: String,
    orders: i64,
    gmv_fen: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ShippingPointResponse {
    /// The shop's region: where its parcels leave from.
    region_code: String,
    /// Orders shipped in the window.
    shipped_orders: i64,
    per_day: f64,
    /// Orders shipped in the 28 days before the window.
    baseline_orders: i64,
    baseline_per_day: f64,
    /// per_day / baseline_per_day; null without a baseline.
    ratio: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct AssuredPurchaseResponse {
    /// Distinct buyers of order lines that carried 安心购 services.
    buyers_served: i64,
}

/// One campaign zone's figures in the window.
#[derive(Serialize, ToSchema)]
pub struct ZoneResponse {
    zone_id: i64,
    name: String,
    traffic_target_bp: i64,
    /// Approved entries (in scope).
    entries: i64,
    orders: i64,
    units: i64,
    gmv_fen: i64,
    quality_gmv_fen: i64,
    /// Likes on the zone's products and the videos linking them.
    likes: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ZonesResponse {
    /// null when there is no campaign.
    campaign_id: Option<i64>,
    items: Vec<ZoneResponse>,
}

#[derive(Serialize, ToSchema)]
pub struct OverviewResponse {
    from_ms: i64,
    to_ms: i64,
    /// The shop the figures are limited to; null: the whole platform.
    merchant_id: Option<i64>,
    gmv: GmvResponse,
    series: SeriesResponse,
    domestic_brands: DomesticBrandsResponse,
    farm_specialty: FarmSpecialtyResponse,
    /// Top 20 origin regions by GMV.
    regions: Vec<RegionResponse>,
    /// Top 20 shipping points by orders shipped.
    shipping_points: Vec<ShippingPointResponse>,
    assured_purchase: AssuredPurchaseResponse,
    zones: ZonesResponse,
}

impl From<Overview> for OverviewResponse {
    fn from(o: Overview) -> Self {
        let farm = |f: xingqu_store::analytics::FarmSales| FarmSalesResponse {
            orders: f.orders,
            units: f.units,
            gmv_fen: f.gmv_fen,
        };
        Self {
            from_ms: o.window.from_ms(),
            to_ms: o.window.to_ms(),
            merchant_id: o.merchant_id,
            gmv: GmvResponse {
                orders: o.totals.orders,
                gmv_fen: o.totals.gmv_fen,
                quality_gmv_fen: o.totals.quality_gmv_fen,
                refunds_fen: o.totals.refunds_fen,
                banned_fen: o.totals.banned_fen,
                sanctioned_fen: o.totals.sanctioned_fen,
                brushing_fen: o.totals.brushing_fen,
            },
            series: SeriesResponse {
                bucket_ms: o.bucket_ms,
                points: o
                    .series
                    .iter()
                    .map(|p| SeriesPointResponse {
                        start_ms: p.start_ms,
                        gmv_fen: p.gmv_fen,
                        quality_gmv_fen: p.quality_gmv_fen,
                    })
                    .collect(),
            },
            domestic_brands: DomesticBrandsResponse {
                ranked_skus: o.domestic_brands.ranked_skus,
                domestic_skus: o.domestic_brands.domestic_skus,
                share_bps: o.domestic_brands.share_bps,
            },
            farm_specialty: FarmSpecialtyResponse {
                current: farm(o.farm_specialty.current),
                year_earlier: farm(o.farm_specialty.year_earlier),
                gmv_ratio: o.farm_specialty.gmv_ratio,
            },
            regions: o
                .regions
                .into_iter()
                .map(|r| RegionResponse { region_code: r.key, orders: r.orders, gmv_fen: r.gmv_fen })
                .collect(),
            shipping_points: o
                .shipping_points
                .into_iter()
                .map(|p| ShippingPointResponse {
                    region_code: p.region_code,
                    shipped_orders: p.shipped_orders,
                    per_day: p.per_day,
                    baseline_orders: p.baseline_orders,
                    baseline_per_day: p.baseline_per_day,
                    ratio: p.ratio,
                })
                .collect(),
            assured_purchase: AssuredPurchaseResponse { buyers_served: o.assured_buyers },
            zones: ZonesResponse {
                campaign_id: o.campaign_id,
                items: o
                    .zones
                    .into_iter()
                    .map(|z| ZoneResponse {
                        zone_id: z.zone_id,
                        name: z.name,
                        traffic_target_bp: z.traffic_target_bp,
                        entries: z.entries,
                        orders: z.orders,
                        units: z.units,
                        gmv_fen: z.gmv_fen,
                        quality_gmv_fen: z.quality_gmv_fen,
                        likes: z.likes,
                    })
                    .collect(),
            },
        }
    }
}

/// A bad window is the query's fault: 400 with the window's code.
fn window(state: &AppState, from_ms: Option<i64>, to_ms: Option<i64>) -> ApiResult<AnalyticsWindow> {
    AnalyticsWindow::parse(from_ms, to_ms, state.app.now_ms()).map_err(|invalid| {
        ApiError::new(StatusCode::BAD_REQUEST, invalid.code, invalid.message).with_field(invalid.field)
    })
}

fn merchant(merchant_id: Option<i64>) -> ApiResult<Option<i64>> {
    match merchant_id {
        Some(id) if id <= 0 => {
            Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", "ids are positive integers")
                .with_field("merchant_id"))
        }
        other => Ok(other),
    }
}

async fn load(
    state: &AppState,
    auth: &Auth,
    (from_ms, to_ms): (Option<i64>, Option<i64>),
    merchant_id: Option<i64>,
    campaign_id: Option<i64>,
) -> ApiResult<Overview> {
    let window = window(state, from_ms, to_ms)?;
    let merchant_id = merchant(merchant_id)?;
    Ok(state.app.analytics_overview(&auth.user.actor(), merchant_id, campaign_id, window).await?)
}

/// The analytics overview of a window: GMV and quality GMV (totals and an hourly or daily series),
/// the domestic-brand share of the hot list, farm-specialty sales year on year, orders by origin
/// region, dispatch volume per shipping point against its 28-day baseline, and people served by
/// 安心购. Operators see every shop (or one with `merchant_id`); shop staff their own shop only.
#[utoipa::path(get, path = "/v1/analytics/overview", tag = "analytics", security(("bearer" = [])), params(OverviewQuery),
    responses((status = 200, body = OverviewResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn overview(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<OverviewQuery>,
) -> ApiResult<Json<OverviewResponse>> {
    let overview = load(&state, &auth, (q.from_ms, q.to_ms), q.merchant_id, q.campaign_id).await?;
    Ok(Json(overview.into()))
}

/// One table of the overview as CSV with a header row (`section`: totals, gmv_series, regions,
/// shipping_points, farm_specialty, zones). Same window, scope and errors as the JSON overview.
#[utoipa::path(get, path = "/v1/analytics/overview.csv", tag = "analytics", security(("bearer" = [])), params(CsvQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn overview_csv(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<CsvQuery>,
) -> ApiResult<Response> {
    let section = q.section.as_deref().unwrap_or("");
    if !SECTIONS.contains(&section) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unknown_section",
            format!("section must be one of {}", SECTIONS.join(", ")),
        )
        .with_field("section"));
    }
    let overview = load(&state, &auth, (q.from_ms, q.to_ms), q.merchant_id, q.campaign_id).await?;
    let body = csv(section, &overview);
    let (from_ms, to_ms) = (overview.window.from_ms(), overview.window.to_ms());
    let disposition = format!("attachment; filename=\"xingqu-{section}-{from_ms}-{to_ms}.csv\"");
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, disposition)],
        body,
    )
        .into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScoresQuery {
    /// Start of the window (unix ms, inclusive); default a day before `to_ms`.
    from_ms: Option<i64>,
    /// End of the window (unix ms, exclusive); default now. At most 400 days after `from_ms`.
    to_ms: Option<i64>,
    /// Operators: one shop. Staff: their own shop (another shop's id is 403).
    merchant_id: Option<i64>,
}

/// One shop's experience score: sub-scores in basis points (0–10,000; null: nothing to judge)
/// and the counts they come from.
#[derive(Serialize, ToSchema)]
pub struct MerchantScoreResponse {
    /// 1 for the best shop in the list.
    rank: i64,
    merchant_id: i64,
    shop_name: String,
    /// Orders paid in the window.
    orders: i64,
    /// `(4 × product + 3 × logistics + 3 × service) / 10` over the sub-scores present.
    overall_bp: Option<i64>,
    /// `10000 × (lines − quality_lines) / lines`.
    product_bp: Option<i64>,
    /// `10000 × on_time_orders / due_orders`.
    logistics_bp: Option<i64>,
    /// `10000 × answered_in_time / after_sales`.
    service_bp: Option<i64>,
    lines: i64,
    /// Lines with an accepted exchange, re-ship, repair, fresh-damage, allergy or counterfeit claim.
    quality_lines: i64,
    /// Orders shipped, or past their dispatch deadline unshipped.
    due_orders: i64,
    on_time_orders: i64,
    /// After-sales the shop had to answer (answered, or approved by the timer).
    after_sales: i64,
    answered_in_time: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ScoresResponse {
    from_ms: i64,
    to_ms: i64,
    /// The shop the list is limited to; null: every shop with orders paid in the window.
    merchant_id: Option<i64>,
    /// Best first.
    items: Vec<MerchantScoreResponse>,
}

fn score_item(rank: i64, s: MerchantScore) -> MerchantScoreResponse {
    let c = s.counts;
    MerchantScoreResponse {
        rank,
        merchant_id: c.merchant_id,
        shop_name: c.shop_name,
        orders: c.orders,
        overall_bp: s.overall_bp,
        product_bp: s.product_bp,
        logistics_bp: s.logistics_bp,
        service_bp: s.service_bp,
        lines: c.lines,
        quality_lines: c.quality_lines,
        due_orders: c.due_orders,
        on_time_orders: c.on_time_orders,
        after_sales: c.after_sales,
        answered_in_time: c.answered_in_time,
    }
}

/// Merchant experience scores (商家体验分) over the orders paid in a window: product, logistics
/// and service sub-scores and their weighted mean (see `xingqu_app::analytics` for the
/// definitions). Operators see every shop ranked (or one with `merchant_id`); shop staff their
/// own shop only; others 403. Creators are not scored.
#[utoipa::path(get, path = "/v1/analytics/scores", tag = "analytics", security(("bearer" = [])), params(ScoresQuery),
    responses((status = 200, body = ScoresResponse), (status = 400, body = ErrorBody, description = "invalid_window, window_too_long, invalid_id"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn scores(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<ScoresQuery>,
) -> ApiResult<Json<ScoresResponse>> {
    let window = window(&state, q.from_ms, q.to_ms)?;
    let requested = merchant(q.merchant_id)?;
    let actor = auth.user.actor();
    let merchant_id = xingqu_app::analytics::scope_for(&actor, requested)?;
    let scores = state.app.merchant_scores(&actor, requested, window).await?;
    let items = (1..).zip(scores).map(|(rank, s)| score_item(rank, s)).collect();
    Ok(Json(ScoresResponse { from_ms: window.from_ms(), to_ms: window.to_ms(), merchant_id, items }))
}

const SECTIONS: [&str; 6] = ["totals", "gmv_series", "regions", "shipping_points", "farm_specialty", "zones"];

/// Region codes and numbers need no quoting; a field with a comma, quote or newline would.
fn field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn ratio(value: Option<f64>) -> String {
    value.map(|r| r.to_string()).unwrap_or_default()
}

fn csv(section: &str, o: &Overview) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = match section {
        "totals" => {
            let t = &o.totals;
            writeln!(
                out,
                "orders,gmv_fen,quality_gmv_fen,refunds_fen,banned_fen,sanctioned_fen,brushing_fen,assured_buyers"
            )
            .and_then(|()| {
                writeln!(
                    out,
                    "{},{},{},{},{},{},{},{}",
                    t.orders,
                    t.gmv_fen,
                    t.quality_gmv_fen,
                    t.refunds_fen,
                    t.banned_fen,
                    t.sanctioned_fen,
                    t.brushing_fen,
                    o.assured_buyers
                )
            })
        }
        "gmv_series" => writeln!(out, "start_ms,gmv_fen,quality_gmv_fen").and_then(|()| {
            o.series.iter().try_for_each(|p| writeln!(out, "{},{},{}", p.start_ms, p.gmv_fen, p.quality_gmv_fen))
        }),
        "regions" => writeln!(out, "region_code,orders,gmv_fen").and_then(|()| {
            o.regions.iter().try_for_each(|r| writeln!(out, "{},{},{}", field(&r.key), r.orders, r.gmv_fen))
        }),
        "shipping_points" => writeln!(out, "region_code,shipped_orders,per_day,baseline_orders,baseline_per_day,ratio")
            .and_then(|()| {
                o.shipping_points.iter().try_for_each(|p| {
                    writeln!(
                        out,
                        "{},{},{},{},{},{}",
                        field(&p.region_code),
                        p.shipped_orders,
                        p.per_day,
                        p.baseline_orders,
                        p.baseline_per_day,
                        ratio(p.ratio)
                    )
                })
            }),
        "zones" => writeln!(out, "zone_id,name,traffic_target_bp,entries,orders,units,gmv_fen,quality_gmv_fen,likes")
            .and_then(|()| {
                o.zones.iter().try_for_each(|z| {
                    writeln!(
                        out,
                        "{},{},{},{},{},{},{},{},{}",
                        z.zone_id,
                        field(&z.name),
                        z.traffic_target_bp,
                        z.entries,
                        z.orders,
                        z.units,
                        z.gmv_fen,
                        z.quality_gmv_fen,
                        z.likes
                    )
                })
            }),
        _ => {
            let f = &o.farm_specialty;
            writeln!(out, "window,orders,units,gmv_fen,gmv_ratio")
                .and_then(|()| {
                    writeln!(
                        out,
                        "current,{},{},{},{}",
                        f.current.orders,
                        f.current.units,
                        f.current.gmv_fen,
                        ratio(f.gmv_ratio)
                    )
                })
                .and_then(|()| {
                    writeln!(
                        out,
                        "year_earlier,{},{},{},",
                        f.year_earlier.orders, f.year_earlier.units, f.year_earlier.gmv_fen
                    )
                })
        }
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_they_must_be() {
        for (raw, expected) in [
            ("222401", "222401"),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("two\nlines", "\"two\nlines\""),
        ] {
            assert_eq!(field(raw), expected, "{raw}");
        }
        assert_eq!(ratio(None), "");
        assert_eq!(ratio(Some(2.5)), "2.5");
    }
}
