//! Live sessions and the viewer events recorded in them, lucky bags, their entries and winners.

use crate::{Store, StoreError, Tx};
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSessionRow {
    pub id: i64,
    pub creator_user_id: i64,
    pub title: String,
    pub status: String,
    /// When it went live; while `scheduled`, when it is due to.
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    /// Set when it was announced ahead of time.
    pub scheduled_for_ms: Option<i64>,
}

const SESSION_COLUMNS: &str = "id, creator_user_id, title, status, started_at_ms, ended_at_ms, scheduled_for_ms";

impl LiveSessionRow {
    /// When it went on air: never for a session still scheduled or called off before it started.
    pub fn went_live_at_ms(&self) -> Option<i64> {
        let called_off = self.status == "ended" && self.scheduled_for_ms == Some(self.started_at_ms);
        (self.status == "live" || (self.status == "ended" && !called_off)).then_some(self.started_at_ms)
    }

    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            creator_user_id: row.try_get("creator_user_id")?,
            title: row.try_get("title")?,
            status: row.try_get("status")?,
            started_at_ms: row.try_get("started_at_ms")?,
            ended_at_ms: row.try_get("ended_at_ms")?,
            scheduled_for_ms: row.try_get("scheduled_for_ms")?,
        })
    }
}

/// A lucky bag as the app opens it (validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLuckyBag {
    pub live_session_id: i64,
    pub creator_user_id: i64,
    pub prize: &'static str,
    pub sku_id: Option<i64>,
    pub coupon_id: Option<i64>,
    pub funder: &'static str,
    pub winners: i64,
    pub watch_s_min: i64,
    pub comment_keyword: Option<String>,
    pub must_follow: bool,
    pub deadline_ms: i64,
    pub seed_sha256: String,
    pub seed_hex: String,
    pub now_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LuckyBagRow {
    pub id: i64,
    pub live_session_id: i64,
    pub creator_user_id: i64,
    pub prize: String,
    pub sku_id: Option<i64>,
    pub coupon_id: Option<i64>,
    pub funder: String,
    pub winners: i64,
    pub watch_s_min: i64,
    pub comment_keyword: Option<String>,
    pub must_follow: bool,
    pub deadline_ms: i64,
    pub seed_sha256: String,
    /// Secret until the draw: callers must not show it while `status` is `open`.
    pub seed_hex: String,
    pub status: String,
    pub drawn_at_ms: Option<i64>,
    pub created_at_ms: i64,
}

const BAG_COLUMNS: &str = "id, live_session_id, creator_user_id, prize, sku_id, coupon_id, funder, winners, watch_s_min, \
     comment_keyword, must_follow, deadline_ms, seed_sha256, seed_hex, status, drawn_at_ms, created_at_ms";

impl LuckyBagRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            live_session_id: row.try_get("live_session_id")?,
            creator_user_id: row.try_get("creator_user_id")?,
            prize: row.try_get("prize")?,
            sku_id: row.try_get("sku_id")?,
            coupon_id: row.try_get("coupon_id")?,
            funder: row.try_get("funder")?,
            winners: row.try_get("winners")?,
            watch_s_min: row.try_get("watch_s_min")?,
            comment_keyword: row.try_get("comment_keyword")?,
            must_follow: row.try_get::<i64, _>("must_follow")? != 0,
            deadline_ms: row.try_get("deadline_ms")?,
            seed_sha256: row.try_get("seed_sha256")?,
            seed_hex: row.try_get("seed_hex")?,
            status: row.try_get("status")?,
            drawn_at_ms: row.try_get("drawn_at_ms")?,
            created_at_ms: row.try_get("created_at_ms")?,
        })
    }
}

/// What one entrant did in the bag's live session up to the deadline.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntrantActivity {
    pub user_id: i64,
    /// When they first joined the session, if they did.
    pub joined_session_at_ms: Option<i64>,
    pub watched_ms: i64,
    pub comments: Vec<String>,
    pub follows: bool,
    /// Where their prize goes (bags of goods).
    pub address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinnerRow {
    pub user_id: i64,
    pub rank: i64,
    pub order_id: Option<i64>,
    pub claim_id: Option<i64>,
}

impl Tx {
    /// A live session on air from `now_ms`, or announced for `scheduled_for_ms`.
    pub async fn insert_live_session(
        &mut self,
        creator_user_id: i64,
        title: &str,
        now_ms: i64,
        scheduled_for_ms: Option<i64>,
    ) -> Result<LiveSessionRow, StoreError> {
        let sql = format!(
            "INSERT INTO live_sessions (creator_user_id, title, status, started_at_ms, scheduled_for_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {SESSION_COLUMNS}"
        );
        let status = if scheduled_for_ms.is_some() { "scheduled" } else { "live" };
        let row = sqlx::query(&sql)
            .bind(creator_user_id)
            .bind(title)
            .bind(status)
            .bind(scheduled_for_ms.unwrap_or(now_ms))
            .bind(scheduled_for_ms)
            .fetch_one(self.conn())
            .await?;
        Ok(LiveSessionRow::from_row(&row)?)
    }

    /// A scheduled session goes on air; false if it was not scheduled.
    pub async fn go_live(&mut self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE live_sessions SET status = 'live', started_at_ms = $1 WHERE id = $2 AND status = 'scheduled'",
        )
        .bind(now_ms)
        .bind(id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends a live session, or calls off a scheduled one; false if it had ended already.
    pub async fn end_live_session(&mut self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE live_sessions SET status = 'ended', ended_at_ms = $1 WHERE id = $2 AND status IN ('live', 'scheduled')",
        )
        .bind(now_ms)
        .bind(id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn insert_live_event(
        &mut self,
        live_session_id: i64,
        user_id: i64,
        kind: &str,
        watch_ms: i64,
        comment: Option<&str>,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO live_events (live_session_id, user_id, kind, watch_ms, comment, at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(live_session_id)
        .bind(user_id)
        .bind(kind)
        .bind(watch_ms)
        .bind(comment)
        .bind(at_ms)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    pub async fn insert_lucky_bag(&mut self, bag: &NewLuckyBag) -> Result<LuckyBagRow, StoreError> {
        let sql = format!(
            "INSERT INTO lucky_bags (live_session_id, creator_user_id, prize, sku_id, coupon_id, funder, winners, watch_s_min, \
             comment_keyword, must_follow, deadline_ms, seed_sha256, seed_hex, status, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'open', $14) RETURNING {BAG_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(bag.live_session_id)
            .bind(bag.creator_user_id)
            .bind(bag.prize)
            .bind(bag.sku_id)
            .bind(bag.coupon_id)
            .bind(bag.funder)
            .bind(bag.winners)
            .bind(bag.watch_s_min)
            .bind(bag.comment_keyword.clone())
            .bind(crate::flag(bag.must_follow))
            .bind(bag.deadline_ms)
            .bind(&bag.seed_sha256)
            .bind(&bag.seed_hex)
            .bind(bag.now_ms)
            .fetch_one(self.conn())
            .await?;
        Ok(LuckyBagRow::from_row(&row)?)
    }

    /// Enters a user in a bag; false if they had entered already.
    pub async fn join_lucky_bag(
        &mut self,
        lucky_bag_id: i64,
        user_id: i64,
        address: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO lucky_bag_entries (lucky_bag_id, user_id, address, joined_at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (lucky_bag_id, user_id) DO NOTHING",
        )
        .bind(lucky_bag_id)
        .bind(user_id)
        .bind(address)
        .bind(now_ms)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Claims a bag's draw for this transaction: false if it was drawn already (a timer that
    /// fired twice, or another node).
    pub async fn mark_bag_drawn(&mut self, lucky_bag_id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE lucky_bags SET status = 'drawn', drawn_at_ms = $1 WHERE id = $2 AND status = 'open'")
                .bind(now_ms)
                .bind(lucky_bag_id)
                .execute(self.conn())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn lucky_bag(&mut self, id: i64) -> Result<Option<LuckyBagRow>, StoreError> {
        let sql = format!("SELECT {BAG_COLUMNS} FROM lucky_bags WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.conn()).await?;
        Ok(row.as_ref().map(LuckyBagRow::from_row).transpose()?)
    }

    /// Every entrant of a bag with what they did in its live session before `until_ms`.
    pub async fn bag_activity(&mut self, bag: &LuckyBagRow, until_ms: i64) -> Result<Vec<EntrantActivity>, StoreError> {
        bag_activity(self.conn(), bag, until_ms).await
    }

    pub async fn insert_winner(&mut self, lucky_bag_id: i64, winner: &WinnerRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO lucky_bag_winners (lucky_bag_id, user_id, rank, order_id, claim_id) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(lucky_bag_id)
        .bind(winner.user_id)
        .bind(winner.rank)
        .bind(winner.order_id)
        .bind(winner.claim_id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// The number of claims a user holds of a coupon (for the next claim's `seq`).
    pub async fn claims_held(&mut self, coupon_id: i64, user_id: i64) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM coupon_claims WHERE coupon_id = $1 AND user_id = $2")
            .bind(coupon_id)
            .bind(user_id)
            .fetch_one(self.conn())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Gives back `count` of a coupon's quantity taken for prizes that found no winner.
    pub async fn untake_claims(&mut self, coupon_id: i64, count: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE coupons SET claimed = claimed - $1 WHERE id = $2")
            .bind(count)
            .bind(coupon_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}

/// What [`Tx::bag_activity`] and [`Store::bag_activity`] read, on either connection.
async fn bag_activity(
    conn: &mut sqlx::AnyConnection,
    bag: &LuckyBagRow,
    until_ms: i64,
) -> Result<Vec<EntrantActivity>, StoreError> {
    let mut by_user: std::collections::BTreeMap<i64, EntrantActivity> = std::collections::BTreeMap::new();
    let entrants = sqlx::query(
        "SELECT e.user_id, e.address, CASE WHEN f.follower_user_id IS NULL THEN 0 ELSE 1 END AS follows \
         FROM lucky_bag_entries e LEFT JOIN follows f ON f.follower_user_id = e.user_id AND f.creator_user_id = $2 \
         WHERE e.lucky_bag_id = $1",
    )
    .bind(bag.id)
    .bind(bag.creator_user_id)
    .fetch_all(&mut *conn)
    .await?;
    for row in &entrants {
        let user_id: i64 = row.try_get("user_id")?;
        let follows: i64 = row.try_get("follows")?;
        let address: Option<String> = row.try_get("address")?;
        by_user
            .insert(user_id, EntrantActivity { user_id, address, follows: follows != 0, ..EntrantActivity::default() });
    }
    let events = sqlx::query(
        "SELECT user_id, kind, watch_ms, comment, at_ms FROM live_events \
         WHERE live_session_id = $1 AND at_ms <= $2 ORDER BY id",
    )
    .bind(bag.live_session_id)
    .bind(until_ms)
    .fetch_all(&mut *conn)
    .await?;
    for row in &events {
        let user_id: i64 = row.try_get("user_id")?;
        let Some(activity) = by_user.get_mut(&user_id) else { continue };
        let kind: String = row.try_get("kind")?;
        let at_ms: i64 = row.try_get("at_ms")?;
        match kind.as_str() {
            "join" => {
                activity.joined_session_at_ms.get_or_insert(at_ms);
            }
            "watch" => activity.watched_ms += row.try_get::<i64, _>("watch_ms")?,
            _ => activity.comments.extend(row.try_get::<Option<String>, _>("comment")?),
        }
    }
    Ok(by_user.into_values().collect())
}

impl Store {
    /// [`Tx::bag_activity`] on a reader (for the proof, which must not take SQLite's writer).
    pub async fn bag_activity(&self, bag: &LuckyBagRow, until_ms: i64) -> Result<Vec<EntrantActivity>, StoreError> {
        let mut conn = self.reader().acquire().await?;
        bag_activity(&mut conn, bag, until_ms).await
    }

    pub async fn live_session(&self, id: i64) -> Result<Option<LiveSessionRow>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM live_sessions WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.reader()).await?;
        Ok(row.as_ref().map(LiveSessionRow::from_row).transpose()?)
    }

    pub async fn lucky_bag(&self, id: i64) -> Result<Option<LuckyBagRow>, StoreError> {
        let sql = format!("SELECT {BAG_COLUMNS} FROM lucky_bags WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(self.reader()).await?;
        Ok(row.as_ref().map(LuckyBagRow::from_row).transpose()?)
    }

    /// Open bags whose deadline has passed, oldest deadline first.
    pub async fn due_lucky_bags(&self, now_ms: i64, limit: u32) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM lucky_bags WHERE status = 'open' AND deadline_ms <= $1 ORDER BY deadline_ms LIMIT $2",
        )
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        Ok(rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?)
    }

    pub async fn lucky_bag_entrants(&self, lucky_bag_id: i64) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM lucky_bag_entries WHERE lucky_bag_id = $1")
            .bind(lucky_bag_id)
            .fetch_one(self.reader())
            .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn lucky_bag_winners(&self, lucky_bag_id: i64) -> Result<Vec<WinnerRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, rank, order_id, claim_id FROM lucky_bag_winners WHERE lucky_bag_id = $1 ORDER BY rank",
        )
        .bind(lucky_bag_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WinnerRow {
                    user_id: r.try_get("user_id")?,
                    rank: r.try_get("rank")?,
                    order_id: r.try_get("order_id")?,
                    claim_id: r.try_get("claim_id")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}
