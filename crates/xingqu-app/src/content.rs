//! Content: creators publish short videos that link products they sell, and put products on
//! their live sessions at a live price. What is published feeds the interest feed at once.

use crate::{App, AppError, AppResult};
use xingqu_domain::account::{Actor, Role};
use xingqu_domain::catalog::ProductStatus;
use xingqu_domain::text;
use xingqu_store::content::{LiveProductRow, NewVideo, VideoRow};

const TAGS_MAX: usize = 10;
const TAG_CHARS_MAX: usize = 20;
const LINKED_PRODUCTS_MAX: usize = 10;
const LIVE_PRODUCTS_MAX: usize = 100;
const DURATION_S_MAX: i64 = 3_600;

/// A video as a creator submits it.
#[derive(Debug, Clone, Default)]
pub struct VideoInput {
    pub title: String,
    pub tags: Vec<String>,
    pub duration_s: i64,
    pub product_ids: Vec<i64>,
}

/// A creator as viewers see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatorProfile {
    pub user_id: i64,
    pub display_name: String,
    pub followers: i64,
    pub videos: i64,
    /// The live session on air, if any.
    pub live_session_id: Option<i64>,
    /// Whether the signed-in viewer follows them.
    pub followed: bool,
}

/// A live session with what it sells and how many have joined.
#[derive(Debug, Clone)]
pub struct LiveSessionView {
    pub session: xingqu_store::lucky_bags::LiveSessionRow,
    pub products: Vec<LiveProductRow>,
    pub viewers: i64,
}

fn tags(raw: &[String]) -> AppResult<String> {
    if raw.len() > TAGS_MAX {
        return Err(AppError::invalid("tags", "too_many", format!("at most {TAGS_MAX} tags")));
    }
    let mut tags = Vec::with_capacity(raw.len());
    for tag in raw {
        let tag = text::bounded("tags", tag, TAG_CHARS_MAX)?;
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    Ok(xingqu_store::content::encode_tags(&tags))
}

impl App {
    /// A creator publishes a video linking listed products.
    pub async fn publish_video(&self, actor: &Actor, input: &VideoInput) -> AppResult<VideoRow> {
        if actor.role != Role::Creator {
            return Err(AppError::Forbidden("only creators publish videos"));
        }
        let title = text::bounded("title", &input.title, 60)?;
        let tags = tags(&input.tags)?;
        if !(1..=DURATION_S_MAX).contains(&input.duration_s) {
            return Err(AppError::invalid("duration_s", "out_of_range", format!("1 to {DURATION_S_MAX} seconds")));
        }
        let mut product_ids = input.product_ids.clone();
        product_ids.sort_unstable();
        product_ids.dedup();
        if product_ids.len() > LINKED_PRODUCTS_MAX {
            return Err(AppError::invalid(
                "product_ids",
                "too_many",
                format!("at most {LINKED_PRODUCTS_MAX} products"),
            ));
        }
        for &product_id in &product_ids {
            let listed =
                self.store().product(product_id).await?.is_some_and(|p| p.status == ProductStatus::Listed.as_str());
            if !listed {
                return Err(AppError::invalid(
                    "product_ids",
                    "unknown_product",
                    format!("no listed product {product_id}"),
                ));
            }
        }
        let video = NewVideo {
            creator_user_id: actor.user_id,
            title,
            tags,
            duration_s: input.duration_s,
            product_ids,
            now_ms: self.now_ms(),
        };
        let mut tx = self.store().begin().await?;
        let id = tx.insert_video(&video).await?;
        tx.commit().await?;
        let row = self.store().video(id).await?.ok_or_else(|| AppError::internal("video vanished"))?;
        self.feed().rebuild_soon(self);
        Ok(row)
    }

    /// A published video: anyone. A removed one: its creator and operators.
    pub async fn video(&self, actor: Option<&Actor>, id: i64) -> AppResult<VideoRow> {
        let row = self.store().video(id).await?.ok_or(AppError::not_found("video"))?;
        let own = actor.is_some_and(|a| a.user_id == row.creator_user_id || a.is_operator());
        if row.status != "published" && !own {
            return Err(AppError::not_found("video"));
        }
        Ok(row)
    }

    /// Its creator or an operator takes a video down; the feed stops showing it at once.
    pub async fn remove_video(&self, actor: &Actor, id: i64) -> AppResult<VideoRow> {
        let row = self.video(Some(actor), id).await?;
        if row.creator_user_id != actor.user_id && !actor.is_operator() {
            return Err(AppError::Forbidden("only its creator or an operator removes a video"));
        }
        let mut tx = self.store().begin().await?;
        if !tx.remove_video(id).await? {
            return Err(AppError::conflict("video_removed", "the video was already removed"));
        }
        tx.commit().await?;
        self.feed().block("video", id);
        self.video(Some(actor), id).await
    }

    /// A creator's profile: anyone; `followed` for the signed-in viewer.
    pub async fn creator_profile(&self, actor: Option<&Actor>, creator_user_id: i64) -> AppResult<CreatorProfile> {
        let user = self
            .store()
            .user(creator_user_id)
            .await?
            .filter(|u| u.role == Role::Creator.as_str())
            .ok_or(AppError::not_found("creator"))?;
        let (followers, videos, live_session_id) = self.store().creator_figures(creator_user_id).await?;
        let followed = match actor {
            Some(actor) => self.store().follows(actor.user_id, creator_user_id).await?,
            None => false,
        };
        Ok(CreatorProfile {
            user_id: user.id,
            display_name: user.display_name,
            followers,
            videos,
            live_session_id,
            followed,
        })
    }

    /// A creator's published videos, newest first.
    pub async fn creator_videos(
        &self,
        creator_user_id: i64,
        before_id: Option<i64>,
        limit: u32,
    ) -> AppResult<Vec<VideoRow>> {
        Ok(self.store().videos_of_creator(creator_user_id, before_id, limit.clamp(1, 100)).await?)
    }

    /// The creator sets what their live session sells: `(sku, live price)`, each at most the
    /// list price, each SKU of a listed product.
    pub async fn set_live_products(
        &self,
        actor: &Actor,
        live_session_id: i64,
        products: &[(i64, i64)],
    ) -> AppResult<LiveSessionView> {
        let session = self.live_session(live_session_id).await?;
        if session.creator_user_id != actor.user_id {
            return Err(AppError::Forbidden("only the creator sets what their live session sells"));
        }
        if session.status == "ended" {
            return Err(AppError::conflict("live_session_ended", "the live session has ended"));
        }
        if products.len() > LIVE_PRODUCTS_MAX {
            return Err(AppError::invalid("products", "too_many", format!("at most {LIVE_PRODUCTS_MAX} products")));
        }
        let mut seen = std::collections::BTreeSet::new();
        for &(sku_id, live_price_fen) in products {
            if !seen.insert(sku_id) {
                return Err(AppError::invalid("products", "duplicate_sku", format!("SKU {sku_id} is listed twice")));
            }
            let sku = self
                .store()
                .sku_for_order(sku_id)
                .await?
                .filter(|s| s.product_status == ProductStatus::Listed.as_str())
                .ok_or_else(|| AppError::invalid("products", "unknown_sku", format!("no SKU {sku_id} on sale")))?;
            if !(1..=sku.price_fen).contains(&live_price_fen) {
                return Err(AppError::invalid(
                    "live_price_fen",
                    "out_of_range",
                    format!("SKU {sku_id}: 1 to its list price of {} 分", sku.price_fen),
                ));
            }
        }
        let mut tx = self.store().begin().await?;
        tx.set_live_products(live_session_id, products).await?;
        tx.commit().await?;
        self.live_session_view(live_session_id).await
    }

    /// A live session with its products (at their live price) and its viewers so far.
    pub async fn live_session_view(&self, id: i64) -> AppResult<LiveSessionView> {
        let session = self.live_session(id).await?;
        let products = self.store().live_products(id).await?;
        let viewers = self.store().live_viewers(id).await?;
        Ok(LiveSessionView { session, products, viewers })
    }
}
