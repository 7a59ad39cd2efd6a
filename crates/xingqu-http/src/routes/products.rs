//! Products, SKUs, the review life cycle, the catalog listing and price history.

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Auth, Id, MaybeAuth};
use crate::routes::IdPage;
use crate::time_format::rfc3339;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use xingqu_app::catalog::Decision;
use xingqu_app::products::{ListingInput, ProductDetail, ProductInput, SkuInput};
use xingqu_domain::catalog::page_limit;
use xingqu_store::products::{PriceChangeRow, ProductRow, SkuRow, StatusChangeRow};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_products, create_product))
        .routes(routes!(get_product, update_product))
        .routes(routes!(submit_product))
        .routes(routes!(review_product))
        .routes(routes!(delist_product))
        .routes(routes!(ban_product))
        .routes(routes!(status_log))
        .routes(routes!(add_sku))
        .routes(routes!(get_sku, update_sku))
        .routes(routes!(price_history))
}

/// Distinguishes an absent field (keep) from an explicit `null` (clear).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkuRequest {
    /// Spec attributes, e.g. {"规格": "5kg"}; at most 10.
    #[serde(default)]
    spec: BTreeMap<String, String>,
    /// Unit price in 分 (1 to 100,000,000).
    #[schema(example = 5990)]
    price_fen: i64,
    #[serde(default)]
    stock: i64,
    weight_g: i64,
}

impl From<&SkuRequest> for SkuInput {
    fn from(s: &SkuRequest) -> Self {
        SkuInput {
            spec: Some(s.spec.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            price_fen: Some(s.price_fen),
            stock: Some(s.stock),
            weight_g: Some(s.weight_g),
            reason: None,
            per_user_limit: None,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSkuRequest {
    spec: Option<BTreeMap<String, String>>,
    price_fen: Option<i64>,
    stock: Option<i64>,
    weight_g: Option<i64>,
    /// Why the price changes; kept in the price history.
    reason: Option<String>,
    /// Units one buyer may hold across live orders; 0 for no limit.
    per_user_limit: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProductRequest {
    /// A leaf category the shop serves.
    category_id: i64,
    brand_id: Option<i64>,
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    image_urls: Vec<String>,
    #[serde(default)]
    farm_specialty: bool,
    #[serde(default)]
    geographic_indication: bool,
    #[serde(default)]
    intangible_heritage: bool,
    /// GB/T 2260 code; the shop's region when absent.
    origin_region_code: Option<String>,
    /// Up to 50 SKUs created with the product.
    #[serde(default)]
    skus: Vec<SkuRequest>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProductRequest {
    category_id: Option<i64>,
    /// `null` removes the brand; absent keeps it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    brand_id: Option<Option<i64>>,
    title: Option<String>,
    description: Option<String>,
    image_urls: Option<Vec<String>>,
    farm_specialty: Option<bool>,
    geographic_indication: Option<bool>,
    intangible_heritage: Option<bool>,
    origin_region_code: Option<String>,
    /// When given, the edit applies only if the product is still at this version (else 409).
    expected_version: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// approve or reject.
    decision: String,
    /// Required when rejecting.
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    #[serde(default)]
    reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct SkuResponse {
    id: i64,
    product_id: i64,
    spec: BTreeMap<String, String>,
    price_fen: i64,
    stock: i64,
    weight_g: i64,
}

impl From<SkuRow> for SkuResponse {
    fn from(s: SkuRow) -> Self {
        Self {
            id: s.id,
            product_id: s.product_id,
            spec: s.spec.into_iter().collect(),
            price_fen: s.price_fen,
            stock: s.stock,
            weight_g: s.weight_g,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ProductResponse {
    id: i64,
    merchant_id: i64,
    category_id: i64,
    brand_id: Option<i64>,
    title: String,
    description: String,
    image_urls: Vec<String>,
    /// farm_specialty, geographic_indication, intangible_heritage, domestic_brand (from the brand).
    tags: Vec<&'static str>,
    origin_region_code: String,
    /// draft, pending_review, listed, delisted or banned.
    status: String,
    /// Why the product last changed status (a rejection or ban reason).
    status_reason: String,
    /// Bumped on every change buyers can see; orders record it.
    version: i64,
    /// The lowest SKU price, in 分.
    min_price_fen: i64,
    /// Quality changes once unsealed: no seven-day no-reason return for buyers who confirm it at
    /// checkout (`confirm_unsealed_no_return`).
    unsealed_no_return: bool,
    created_at: String,
    updated_at: String,
    /// Present on single-product responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    skus: Option<Vec<SkuResponse>>,
}

impl From<ProductRow> for ProductResponse {
    fn from(p: ProductRow) -> Self {
        let tags = [
            (p.tags.farm_specialty, "farm_specialty"),
            (p.tags.geographic_indication, "geographic_indication"),
            (p.tags.intangible_heritage, "intangible_heritage"),
            (p.domestic_brand, "domestic_brand"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        Self {
            id: p.id,
            merchant_id: p.merchant_id,
            category_id: p.category_id,
            brand_id: p.brand_id,
            title: p.title,
            description: p.description,
            image_urls: p.image_urls,
            tags,
            origin_region_code: p.origin_region_code,
            status: p.status,
            status_reason: p.status_reason,
            version: p.version,
            min_price_fen: p.min_price_fen,
            unsealed_no_return: p.unsealed_no_return,
            created_at: rfc3339(p.created_at_ms),
            updated_at: rfc3339(p.updated_at_ms),
            skus: None,
        }
    }
}

impl From<ProductDetail> for ProductResponse {
    fn from(detail: ProductDetail) -> Self {
        let mut response = ProductResponse::from(detail.product);
        response.skus = Some(detail.skus.into_iter().map(Into::into).collect());
        response
    }
}

#[derive(Serialize, ToSchema)]
pub struct ProductList {
    items: Vec<ProductResponse>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductListQuery {
    /// A category and everything below it.
    category_id: Option<i64>,
    /// farm_specialty, geographic_indication, intangible_heritage or domestic_brand.
    tag: Option<String>,
    /// A GB/T 2260 region: province (22), prefecture (2224 or 222400) or county (222401).
    region: Option<String>,
    merchant_id: Option<i64>,
    /// Lowest SKU price at least this, in 分.
    min_price_fen: Option<i64>,
    /// Lowest SKU price at most this, in 分.
    max_price_fen: Option<i64>,
    /// Words in the title.
    q: Option<String>,
    /// draft, pending_review, listed, delisted, banned or any: operators, or staff with their merchant_id.
    status: Option<String>,
    /// newest (default), price_asc or price_desc.
    sort: Option<String>,
    /// From `next_cursor` of the previous page (same sort).
    cursor: Option<String>,
    /// 1 to 100 (default 20).
    limit: Option<i64>,
}

/// The catalog: listed products of approved shops, filtered, sorted, one page at a time.
#[utoipa::path(get, path = "/v1/products", tag = "products", params(ProductListQuery),
    responses((status = 200, body = ProductList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_products(
    State(state): State<AppState>,
    auth: MaybeAuth,
    ApiQuery(q): ApiQuery<ProductListQuery>,
) -> ApiResult<Json<ProductList>> {
    let input = ListingInput {
        category_id: q.category_id,
        tag: q.tag,
        region: q.region,
        merchant_id: q.merchant_id,
        min_price_fen: q.min_price_fen,
        max_price_fen: q.max_price_fen,
        q: q.q,
        status: q.status,
        sort: q.sort,
        cursor: q.cursor,
        limit: q.limit,
    };
    let page = state.app.list_products(&auth.actor(), &input).await?;
    Ok(Json(ProductList { items: page.items.into_iter().map(Into::into).collect(), next_cursor: page.next_cursor }))
}

/// Creates a draft product in the caller's shop (merchant staff), optionally with SKUs.
#[utoipa::path(post, path = "/v1/products", tag = "products", security(("bearer" = [])), request_body = CreateProductRequest,
    responses((status = 201, body = ProductResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_product(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateProductRequest>,
) -> ApiResult<(StatusCode, Json<ProductResponse>)> {
    let input = ProductInput {
        category_id: Some(body.category_id),
        brand_id: Some(body.brand_id),
        title: Some(body.title),
        description: Some(body.description),
        image_urls: Some(body.image_urls),
        farm_specialty: Some(body.farm_specialty),
        geographic_indication: Some(body.geographic_indication),
        intangible_heritage: Some(body.intangible_heritage),
        origin_region_code: body.origin_region_code,
    };
    let skus: Vec<SkuInput> = body.skus.iter().map(Into::into).collect();
    let detail = state.app.create_product(&auth.user.actor(), &input, &skus).await?;
    Ok((StatusCode::CREATED, Json(detail.into())))
}

/// One product with its SKUs (unlisted products only for their shop's staff and operators).
#[utoipa::path(get, path = "/v1/products/{id}", tag = "products", params(("id" = i64, Path)),
    responses((status = 200, body = ProductResponse), (status = 404, body = ErrorBody)))]
async fn get_product(State(state): State<AppState>, auth: MaybeAuth, Id(id): Id) -> ApiResult<Json<ProductResponse>> {
    Ok(Json(state.app.product_detail(&auth.actor(), id).await?.into()))
}

/// Edits a product's content; a listed product goes back to review.
#[utoipa::path(patch, path = "/v1/products/{id}", tag = "products", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = UpdateProductRequest,
    responses((status = 200, body = ProductResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_product(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<UpdateProductRequest>,
) -> ApiResult<Json<ProductResponse>> {
    let input = ProductInput {
        category_id: body.category_id,
        brand_id: body.brand_id,
        title: body.title,
        description: body.description,
        image_urls: body.image_urls,
        farm_specialty: body.farm_specialty,
        geographic_indication: body.geographic_indication,
        intangible_heritage: body.intangible_heritage,
        origin_region_code: body.origin_region_code,
    };
    Ok(Json(state.app.update_product(&auth.user.actor(), id, &input, body.expected_version).await?.into()))
}

/// Submits a draft or delisted product for review (its shop's staff).
#[utoipa::path(post, path = "/v1/products/{id}/submit", tag = "products", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = ProductResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn submit_product(State(state): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<ProductResponse>> {
    Ok(Json(state.app.submit_product(&auth.user.actor(), id).await?.into()))
}

/// Approves (lists) or rejects a product under review (operators only).
#[utoipa::path(post, path = "/v1/products/{id}/review", tag = "products", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = ReviewRequest,
    responses((status = 200, body = ProductResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn review_product(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<ReviewRequest>,
) -> ApiResult<Json<ProductResponse>> {
    let decision = Decision::parse(&body.decision)?;
    Ok(Json(state.app.review_product(&auth.user.actor(), id, decision, &body.reason).await?.into()))
}

/// Takes a listed product off sale (its shop's staff or an operator).
#[utoipa::path(post, path = "/v1/products/{id}/delist", tag = "products", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = ReasonRequest,
    responses((status = 200, body = ProductResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delist_product(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<ReasonRequest>,
) -> ApiResult<Json<ProductResponse>> {
    Ok(Json(state.app.delist_product(&auth.user.actor(), id, Some(&body.reason)).await?.into()))
}

/// Bans a product for good, with a reason (operators only).
#[utoipa::path(post, path = "/v1/products/{id}/ban", tag = "products", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = ReasonRequest,
    responses((status = 200, body = ProductResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn ban_product(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<ReasonRequest>,
) -> ApiResult<Json<ProductResponse>> {
    Ok(Json(state.app.ban_product(&auth.user.actor(), id, &body.reason).await?.into()))
}

#[derive(Serialize, ToSchema)]
pub struct StatusChangeResponse {
    from_status: String,
    to_status: String,
    actor_user_id: Option<i64>,
    reason: String,
    at: String,
}

impl From<StatusChangeRow> for StatusChangeResponse {
    fn from(c: StatusChangeRow) -> Self {
        Self {
            from_status: c.from_status,
            to_status: c.to_status,
            actor_user_id: c.actor_user_id,
            reason: c.reason,
            at: rfc3339(c.at_ms),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct StatusLog {
    pub(crate) items: Vec<StatusChangeResponse>,
}

/// Who moved the product between states, when and why (its shop's staff and operators).
#[utoipa::path(get, path = "/v1/products/{id}/status-log", tag = "products", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = StatusLog), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn status_log(State(state): State<AppState>, auth: Auth, Id(id): Id) -> ApiResult<Json<StatusLog>> {
    let items = state.app.product_status_log(&auth.user.actor(), id).await?.into_iter().map(Into::into).collect();
    Ok(Json(StatusLog { items }))
}

/// Adds a SKU to a product (its shop's staff); its first price opens the price history.
#[utoipa::path(post, path = "/v1/products/{id}/skus", tag = "products", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = SkuRequest,
    responses((status = 201, body = SkuResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_sku(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<SkuRequest>,
) -> ApiResult<(StatusCode, Json<SkuResponse>)> {
    let sku = state.app.add_sku(&auth.user.actor(), id, &(&body).into()).await?;
    Ok((StatusCode::CREATED, Json(sku.into())))
}

/// One SKU (of a product the caller may see).
#[utoipa::path(get, path = "/v1/skus/{id}", tag = "products", params(("id" = i64, Path)),
    responses((status = 200, body = SkuResponse), (status = 404, body = ErrorBody)))]
async fn get_sku(State(state): State<AppState>, auth: MaybeAuth, Id(id): Id) -> ApiResult<Json<SkuResponse>> {
    let sku = state.app.sku(&auth.actor(), id).await?;
    Ok(Json(sku.into()))
}

/// Changes a SKU's price, stock, weight or spec; a price change is appended to the price history.
#[utoipa::path(patch, path = "/v1/skus/{id}", tag = "products", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = UpdateSkuRequest,
    responses((status = 200, body = SkuResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_sku(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<UpdateSkuRequest>,
) -> ApiResult<Json<SkuResponse>> {
    let input = SkuInput {
        spec: body.spec.map(|s| s.into_iter().collect()),
        price_fen: body.price_fen,
        stock: body.stock,
        weight_g: body.weight_g,
        reason: body.reason,
        per_user_limit: body.per_user_limit,
    };
    Ok(Json(state.app.update_sku(&auth.user.actor(), id, &input).await?.into()))
}

#[derive(Serialize, ToSchema)]
pub struct PriceChangeResponse {
    id: i64,
    sku_id: i64,
    product_id: i64,
    /// Absent for the SKU's first price.
    old_price_fen: Option<i64>,
    new_price_fen: i64,
    changed_at: String,
    actor_user_id: Option<i64>,
    reason: String,
}

impl From<PriceChangeRow> for PriceChangeResponse {
    fn from(c: PriceChangeRow) -> Self {
        Self {
            id: c.id,
            sku_id: c.sku_id,
            product_id: c.product_id,
            old_price_fen: c.old_price_fen,
            new_price_fen: c.new_price_fen,
            changed_at: rfc3339(c.changed_at_ms),
            actor_user_id: c.actor_user_id,
            reason: c.reason,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PriceHistory {
    items: Vec<PriceChangeResponse>,
    next_after_id: Option<i64>,
}

/// Every price the SKU has had, oldest first.
#[utoipa::path(get, path = "/v1/skus/{id}/price-history", tag = "products", params(("id" = i64, Path), IdPage),
    responses((status = 200, body = PriceHistory), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn price_history(
    State(state): State<AppState>,
    auth: MaybeAuth,
    Id(id): Id,
    ApiQuery(page): ApiQuery<IdPage>,
) -> ApiResult<Json<PriceHistory>> {
    let limit = page_limit(page.limit)?;
    let rows = state.app.price_history(&auth.actor(), id, page.after_id, limit).await?;
    let items: Vec<PriceChangeResponse> = rows.into_iter().map(Into::into).collect();
    let next_after_id = if items.len() == limit as usize { items.last().map(|c| c.id) } else { None };
    Ok(Json(PriceHistory { items, next_after_id }))
}
