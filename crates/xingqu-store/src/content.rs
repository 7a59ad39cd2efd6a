//! Content: creators' short videos with their linked products, the products a live session sells
//! at a live price, and the catalogue the interest feed is built from.

use crate::{Store, StoreError, Tx};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A video as a creator publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVideo {
    pub creator_user_id: i64,
    pub title: String,
    /// Topic tags as a JSON array of strings.
    pub tags: String,
    pub duration_s: i64,
    pub product_ids: Vec<i64>,
    pub now_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoRow {
    pub id: i64,
    pub creator_user_id: i64,
    pub title: String,
    pub tags: String,
    pub duration_s: i64,
    pub status: String,
    pub created_at_ms: i64,
    pub product_ids: Vec<i64>,
}

const VIDEO_COLUMNS: &str = "v.id, v.creator_user_id, v.title, v.tags, v.duration_s, v.status, v.created_at_ms, \
    (SELECT COALESCE(string_agg(CAST(vp.product_id AS TEXT), ','), '') FROM video_products vp WHERE vp.video_id = v.id) \
    AS product_ids";

impl VideoRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let ids: String = row.try_get("product_ids")?;
        let mut product_ids: Vec<i64> = ids.split(',').filter_map(|id| id.parse().ok()).collect();
        product_ids.sort_unstable();
        Ok(Self {
            id: row.try_get("id")?,
            creator_user_id: row.try_get("creator_user_id")?,
            title: row.try_get("title")?,
            tags: row.try_get("tags")?,
            duration_s: row.try_get("duration_s")?,
            status: row.try_get("status")?,
            created_at_ms: row.try_get("created_at_ms")?,
            product_ids,
        })
    }
}

/// A product a live session sells, at its live price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveProductRow {
    pub sku_id: i64,
    pub product_id: i64,
    pub title: String,
    pub list_price_fen: i64,
    pub live_price_fen: i64,
}

/// One item of the feed's catalogue: a published video, a live session on air, or a listed
/// product, with what ranking and re-ranking need to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogItem {
    /// `video`, `live_session` or `product`.
    pub item_type: &'static str,
    pub id: i64,
    /// The creator (videos, live sessions) or the shop (products).
    pub author_id: i64,
    pub title: String,
    pub created_at_ms: i64,
    /// A farm specialty (農特產): a product that is one, or content that links one.
    pub farm_specialty: bool,
}

/// Tags as stored: a JSON array of strings.
pub fn encode_tags(tags: &[String]) -> String {
    serde_json::Value::from(tags.to_vec()).to_string()
}

pub fn decode_tags(stored: &str) -> Vec<String> {
    serde_json::from_str(stored).unwrap_or_default()
}

impl Tx {
    pub async fn insert_video(&mut self, video: &NewVideo) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO videos (creator_user_id, title, tags, duration_s, status, created_at_ms) \
             VALUES ($1, $2, $3, $4, 'published', $5) RETURNING id",
        )
        .bind(video.creator_user_id)
        .bind(&video.title)
        .bind(&video.tags)
        .bind(video.duration_s)
        .bind(video.now_ms)
        .fetch_one(self.conn())
        .await?;
        let id: i64 = row.try_get("id")?;
        for product_id in &video.product_ids {
            sqlx::query("INSERT INTO video_products (video_id, product_id) VALUES ($1, $2)")
                .bind(id)
                .bind(product_id)
                .execute(self.conn())
                .await?;
        }
        Ok(id)
    }

    /// Removes a published video; false if it was not published.
    pub async fn remove_video(&mut self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE videos SET status = 'removed' WHERE id = $1 AND status = 'published'")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces what a live session sells: `(sku, live price)` pairs.
    pub async fn set_live_products(&mut self, live_session_id: i64, products: &[(i64, i64)]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM live_session_products WHERE live_session_id = $1")
            .bind(live_session_id)
            .execute(self.conn())
            .await?;
        for &(sku_id, live_price_fen) in products {
            sqlx::query(
                "INSERT INTO live_session_products (live_session_id, sku_id, live_price_fen) VALUES ($1, $2, $3)",
            )
            .bind(live_session_id)
            .bind(sku_id)
            .bind(live_price_fen)
            .execute(self.conn())
            .await?;
        }
        Ok(())
    }
}

impl Store {
    pub async fn video(&self, id: i64) -> Result<Option<VideoRow>, StoreError> {
        let sql = format!("SELECT {VIDEO_COLUMNS} FROM videos v WHERE v.id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.reader()).await?;
        Ok(row.as_ref().map(VideoRow::from_row).transpose()?)
    }

    /// A creator's published videos, newest first, before `before_id` if given.
    pub async fn videos_of_creator(
        &self,
        creator_user_id: i64,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<VideoRow>, StoreError> {
        let sql = format!(
            "SELECT {VIDEO_COLUMNS} FROM videos v WHERE v.creator_user_id = $1 AND v.status = 'published' \
             AND v.id < $2 ORDER BY v.id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(creator_user_id)
            .bind(before_id.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?;
        Ok(rows.iter().map(VideoRow::from_row).collect::<Result<_, _>>()?)
    }

    /// What a live session sells, by SKU.
    pub async fn live_products(&self, live_session_id: i64) -> Result<Vec<LiveProductRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT lp.sku_id, s.product_id, p.title, s.price_fen, lp.live_price_fen FROM live_session_products lp \
             JOIN skus s ON s.id = lp.sku_id JOIN products p ON p.id = s.product_id \
             WHERE lp.live_session_id = $1 ORDER BY lp.sku_id",
        )
        .bind(live_session_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LiveProductRow {
                    sku_id: r.try_get("sku_id")?,
                    product_id: r.try_get("product_id")?,
                    title: r.try_get("title")?,
                    list_price_fen: r.try_get("price_fen")?,
                    live_price_fen: r.try_get("live_price_fen")?,
                })
            })
            .collect()
    }

    /// Viewers who joined a live session.
    pub async fn live_viewers(&self, live_session_id: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(DISTINCT user_id) AS n FROM live_events WHERE live_session_id = $1 AND kind = 'join'",
        )
        .bind(live_session_id)
        .fetch_one(self.reader())
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Everything the feed may show: published videos, live sessions on air, listed products.
    pub async fn feed_catalog(&self) -> Result<Vec<CatalogItem>, StoreError> {
        let mut items = Vec::new();
        let videos = sqlx::query(
            "SELECT v.id, v.creator_user_id, v.title, v.created_at_ms, \
             (SELECT COUNT(*) FROM video_products vp JOIN products p ON p.id = vp.product_id \
              WHERE vp.video_id = v.id AND p.farm_specialty = 1) AS farm \
             FROM videos v WHERE v.status = 'published'",
        )
        .fetch_all(self.reader())
        .await?;
        for r in videos {
            items.push(CatalogItem {
                item_type: "video",
                id: r.try_get("id")?,
                author_id: r.try_get("creator_user_id")?,
                title: r.try_get("title")?,
                created_at_ms: r.try_get("created_at_ms")?,
                farm_specialty: r.try_get::<i64, _>("farm")? > 0,
            });
        }
        let live = sqlx::query(
            "SELECT l.id, l.creator_user_id, l.title, l.started_at_ms, \
             (SELECT COUNT(*) FROM live_session_products lp JOIN skus s ON s.id = lp.sku_id \
              JOIN products p ON p.id = s.product_id WHERE lp.live_session_id = l.id AND p.farm_specialty = 1) AS farm \
             FROM live_sessions l WHERE l.status = 'live'",
        )
        .fetch_all(self.reader())
        .await?;
        for r in live {
            items.push(CatalogItem {
                item_type: "live_session",
                id: r.try_get("id")?,
                author_id: r.try_get("creator_user_id")?,
                title: r.try_get("title")?,
                created_at_ms: r.try_get("started_at_ms")?,
                farm_specialty: r.try_get::<i64, _>("farm")? > 0,
            });
        }
        let products = sqlx::query(
            "SELECT id, merchant_id, title, created_at_ms, farm_specialty FROM products WHERE status = 'listed'",
        )
        .fetch_all(self.reader())
        .await?;
        for r in products {
            items.push(CatalogItem {
                item_type: "product",
                id: r.try_get("id")?,
                author_id: r.try_get("merchant_id")?,
                title: r.try_get("title")?,
                created_at_ms: r.try_get("created_at_ms")?,
                farm_specialty: r.try_get::<i64, _>("farm_specialty")? == 1,
            });
        }
        Ok(items)
    }

    /// A creator's public figures: followers, published videos, the live session on air.
    pub async fn creator_figures(&self, creator_user_id: i64) -> Result<(i64, i64, Option<i64>), StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM follows WHERE creator_user_id = $1) AS followers, \
             (SELECT COUNT(*) FROM videos WHERE creator_user_id = $1 AND status = 'published') AS videos, \
             (SELECT MAX(id) FROM live_sessions WHERE creator_user_id = $1 AND status = 'live') AS live",
        )
        .bind(creator_user_id)
        .fetch_one(self.reader())
        .await?;
        Ok((row.try_get("followers")?, row.try_get("videos")?, row.try_get("live")?))
    }

    /// Every follow: (follower, creator).
    pub async fn all_follows(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT follower_user_id, creator_user_id FROM follows").fetch_all(self.reader()).await?;
        rows.iter().map(|r| Ok((r.try_get("follower_user_id")?, r.try_get("creator_user_id")?))).collect()
    }
}
