//! Categories, brands and merchants.

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Auth, Id, MaybeAuth};
use crate::routes::IdPage;
use crate::time_format::rfc3339;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use xingqu_app::catalog::{Decision, MerchantInput};
use xingqu_domain::catalog::{CategoryFlags, page_limit};
use xingqu_store::catalog::{BrandRow, CategoryRow, MerchantRow};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_categories, create_category))
        .routes(routes!(get_category))
        .routes(routes!(list_brands, create_brand))
        .routes(routes!(get_brand))
        .routes(routes!(list_merchants, apply_merchant))
        .routes(routes!(get_merchant, update_merchant))
        .routes(routes!(decide_qualification))
        .routes(routes!(set_fulfilment))
}

#[derive(Serialize, Deserialize, ToSchema, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct CategoryFlagsBody {
    /// Fresh or perishable goods.
    #[serde(default)]
    fresh: bool,
    #[serde(default)]
    cosmetics: bool,
    #[serde(default)]
    digital: bool,
    /// Made to the buyer's order.
    #[serde(default)]
    custom_made: bool,
    /// Newspapers and periodicals.
    #[serde(default)]
    periodical: bool,
}

impl From<CategoryFlagsBody> for CategoryFlags {
    fn from(f: CategoryFlagsBody) -> Self {
        CategoryFlags {
            fresh: f.fresh,
            cosmetics: f.cosmetics,
            digital: f.digital,
            custom_made: f.custom_made,
            periodical: f.periodical,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CategoryResponse {
    id: i64,
    parent_id: Option<i64>,
    slug: String,
    name: String,
    /// Rule flags after-sale rules read.
    flags: CategoryFlagsBody,
}

impl From<CategoryRow> for CategoryResponse {
    fn from(c: CategoryRow) -> Self {
        let f = c.flags;
        Self {
            id: c.id,
            parent_id: c.parent_id,
            slug: c.slug,
            name: c.name,
            flags: CategoryFlagsBody {
                fresh: f.fresh,
                cosmetics: f.cosmetics,
                digital: f.digital,
                custom_made: f.custom_made,
                periodical: f.periodical,
            },
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCategoryRequest {
    parent_id: Option<i64>,
    #[schema(example = "fresh-produce")]
    slug: String,
    name: String,
    #[serde(default)]
    flags: CategoryFlagsBody,
}

#[derive(Serialize, ToSchema)]
pub struct CategoryList {
    items: Vec<CategoryResponse>,
}

/// The whole category tree, parents before children.
#[utoipa::path(get, path = "/v1/categories", tag = "catalog", responses((status = 200, body = CategoryList)))]
async fn list_categories(State(state): State<AppState>) -> ApiResult<Json<CategoryList>> {
    let items = state.app.categories().await?.into_iter().map(Into::into).collect();
    Ok(Json(CategoryList { items }))
}

/// Adds a category (operators only).
#[utoipa::path(post, path = "/v1/categories", tag = "catalog", security(("bearer" = [])), request_body = CreateCategoryRequest,
    responses((status = 201, body = CategoryResponse), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_category(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateCategoryRequest>,
) -> ApiResult<(StatusCode, Json<CategoryResponse>)> {
    let row = state
        .app
        .create_category(&auth.user.actor(), body.parent_id, &body.slug, &body.name, body.flags.into())
        .await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// One category.
#[utoipa::path(get, path = "/v1/categories/{id}", tag = "catalog", params(("id" = i64, Path)),
    responses((status = 200, body = CategoryResponse), (status = 404, body = ErrorBody)))]
async fn get_category(State(state): State<AppState>, Id(id): Id) -> ApiResult<Json<CategoryResponse>> {
    Ok(Json(state.app.category(id).await?.into()))
}

#[derive(Serialize, ToSchema)]
pub struct BrandResponse {
    id: i64,
    name: String,
    /// A Chinese domestic brand (国货), certified by an operator.
    domestic_brand: bool,
}

impl From<BrandRow> for BrandResponse {
    fn from(b: BrandRow) -> Self {
        Self { id: b.id, name: b.name, domestic_brand: b.domestic_brand }
    }
}

#[derive(Serialize, ToSchema)]
pub struct BrandList {
    items: Vec<BrandResponse>,
    /// Pass as `after_id` for the next page; absent on the last page.
    next_after_id: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBrandRequest {
    name: String,
    /// Only operators may set this.
    #[serde(default)]
    domestic_brand: bool,
}

/// Brands, by id.
#[utoipa::path(get, path = "/v1/brands", tag = "catalog", params(IdPage),
    responses((status = 200, body = BrandList), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_brands(State(state): State<AppState>, ApiQuery(page): ApiQuery<IdPage>) -> ApiResult<Json<BrandList>> {
    let limit = page_limit(page.limit)?;
    let items: Vec<BrandResponse> = state.app.brands(page.after_id, limit).await?.into_iter().map(Into::into).collect();
    let next_after_id = if items.len() == limit as usize { items.last().map(|b| b.id) } else { None };
    Ok(Json(BrandList { items, next_after_id }))
}

/// Adds a brand (merchant staff and operators; only operators certify domestic brands).
#[utoipa::path(post, path = "/v1/brands", tag = "catalog", security(("bearer" = [])), request_body = CreateBrandRequest,
    responses((status = 201, body = BrandResponse), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_brand(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateBrandRequest>,
) -> ApiResult<(StatusCode, Json<BrandResponse>)> {
    let row = state.app.create_brand(&auth.user.actor(), &body.name, body.domestic_brand).await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// One brand.
#[utoipa::path(get, path = "/v1/brands/{id}", tag = "catalog", params(("id" = i64, Path)),
    responses((status = 200, body = BrandResponse), (status = 404, body = ErrorBody)))]
async fn get_brand(State(state): State<AppState>, Id(id): Id) -> ApiResult<Json<BrandResponse>> {
    Ok(Json(state.app.brand(id).await?.into()))
}

#[derive(Serialize, ToSchema)]
pub struct MerchantResponse {
    id: i64,
    shop_name: String,
    /// GB/T 2260 code of the shop's region.
    region_code: String,
    /// pending, approved or rejected.
    qualification: String,
    /// Why a qualification was rejected.
    qualification_reason: String,
    category_ids: Vec<i64>,
    created_at: String,
    updated_at: String,
}

impl From<MerchantRow> for MerchantResponse {
    fn from(m: MerchantRow) -> Self {
        Self {
            id: m.id,
            shop_name: m.shop_name,
            region_code: m.region_code,
            qualification: m.qualification,
            qualification_reason: m.qualification_reason,
            category_ids: m.category_ids,
            created_at: rfc3339(m.created_at_ms),
            updated_at: rfc3339(m.updated_at_ms),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MerchantList {
    items: Vec<MerchantResponse>,
    next_after_id: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MerchantListQuery {
    /// pending, approved (default) or rejected; other than approved needs an operator.
    qualification: Option<String>,
    after_id: Option<i64>,
    limit: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MerchantRequest {
    shop_name: String,
    #[schema(example = "222401")]
    region_code: String,
    /// Categories the shop sells in (1 to 20).
    category_ids: Vec<i64>,
}

impl MerchantRequest {
    fn input(&self) -> MerchantInput<'_> {
        MerchantInput { shop_name: &self.shop_name, region_code: &self.region_code, category_ids: &self.category_ids }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// approve or reject.
    decision: String,
    /// Required when rejecting.
    #[serde(default)]
    reason: String,
}

/// Shops: approved ones for everyone; operators may list pending or rejected ones.
#[utoipa::path(get, path = "/v1/merchants", tag = "catalog", params(MerchantListQuery),
    responses((status = 200, body = MerchantList), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_merchants(
    State(state): State<AppState>,
    auth: MaybeAuth,
    ApiQuery(query): ApiQuery<MerchantListQuery>,
) -> ApiResult<Json<MerchantList>> {
    let limit = page_limit(query.limit)?;
    let rows = state.app.merchants(&auth.actor(), query.qualification.as_deref(), query.after_id, limit).await?;
    let items: Vec<MerchantResponse> = rows.into_iter().map(Into::into).collect();
    let next_after_id = if items.len() == limit as usize { items.last().map(|m| m.id) } else { None };
    Ok(Json(MerchantList { items, next_after_id }))
}

/// A consumer applies to open a shop; they become its staff, and it awaits qualification review.
#[utoipa::path(post, path = "/v1/merchants", tag = "catalog", security(("bearer" = [])), request_body = MerchantRequest,
    responses((status = 201, body = MerchantResponse), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn apply_merchant(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<MerchantRequest>,
) -> ApiResult<(StatusCode, Json<MerchantResponse>)> {
    let row = state.app.apply_merchant(&auth.user.actor(), &body.input()).await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// One shop (a shop not yet approved is visible only to its staff and operators).
#[utoipa::path(get, path = "/v1/merchants/{id}", tag = "catalog", params(("id" = i64, Path)),
    responses((status = 200, body = MerchantResponse), (status = 404, body = ErrorBody)))]
async fn get_merchant(State(state): State<AppState>, auth: MaybeAuth, Id(id): Id) -> ApiResult<Json<MerchantResponse>> {
    Ok(Json(state.app.visible_merchant(&auth.actor(), id).await?.into()))
}

/// Changes a shop's profile (its staff or an operator). A rejected shop re-applies this way.
#[utoipa::path(patch, path = "/v1/merchants/{id}", tag = "catalog", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = MerchantRequest,
    responses((status = 200, body = MerchantResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_merchant(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<MerchantRequest>,
) -> ApiResult<Json<MerchantResponse>> {
    Ok(Json(state.app.update_merchant(&auth.user.actor(), id, &body.input()).await?.into()))
}

/// Approves or rejects a pending qualification (operators only).
#[utoipa::path(post, path = "/v1/merchants/{id}/qualification", tag = "catalog", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = DecisionRequest,
    responses((status = 200, body = MerchantResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn decide_qualification(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<DecisionRequest>,
) -> ApiResult<Json<MerchantResponse>> {
    let decision = Decision::parse(&body.decision)?;
    Ok(Json(state.app.decide_qualification(&auth.user.actor(), id, decision, &body.reason).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FulfilmentRequest {
    /// Shipping charged per order, in 分.
    shipping_fee_fen: i64,
    /// Free shipping when the goods paid reach this; absent: never free.
    free_shipping_over_fen: Option<i64>,
    /// none, within_48h, within_24h or same_day.
    dispatch_promise: String,
}

#[derive(Serialize, ToSchema)]
pub struct FulfilmentResponse {
    merchant: MerchantResponse,
    shipping_fee_fen: i64,
    free_shipping_over_fen: Option<i64>,
    dispatch_promise: String,
}

/// Sets a shop's shipping terms and dispatch promise (its staff or an operator).
#[utoipa::path(put, path = "/v1/merchants/{id}/fulfilment", tag = "catalog", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = FulfilmentRequest,
    responses((status = 200, body = FulfilmentResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_fulfilment(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id,
    ApiJson(body): ApiJson<FulfilmentRequest>,
) -> ApiResult<Json<FulfilmentResponse>> {
    let merchant = state
        .app
        .set_fulfilment(
            &auth.user.actor(),
            id,
            body.shipping_fee_fen,
            body.free_shipping_over_fen,
            &body.dispatch_promise,
        )
        .await?;
    let promise = xingqu_domain::order::DispatchPromise::parse(&body.dispatch_promise)?;
    Ok(Json(FulfilmentResponse {
        merchant: merchant.into(),
        shipping_fee_fen: body.shipping_fee_fen,
        free_shipping_over_fen: body.free_shipping_over_fen,
        dispatch_promise: promise.as_str().to_owned(),
    }))
}
