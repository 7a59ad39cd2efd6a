//! Live sessions and lucky bags (超级福袋): a creator goes live, viewers' joins, watch time and
//! comments are recorded, and a lucky bag draws K winners among the eligible entrants at its
//! deadline — verifiably (the seed's SHA-256 is published when the bag opens, the seed and the
//! participants after the draw) and exactly once (a durable timer; the draw is one transaction
//! guarded by the bag's status, so a timer that fires twice or a crash mid-draw never yields a
//! second set of winners). Winners of goods get a 0-yuan `lucky_bag` order that ships normally;
//! winners of a coupon get it in their wallet.

use crate::{App, AppError, AppResult};
use rand::RngCore;
use xingqu_domain::account::{Actor, Role};
use xingqu_domain::catalog::{ProductStatus, Qualification};
use xingqu_domain::ledger::{Account, Posting, PostingKind};
use xingqu_domain::order::{DispatchPromise, OrderStatus};
use xingqu_domain::promo::lucky_bag::{self, Conditions, ViewerActivity};
use xingqu_domain::text;
use xingqu_store::StoreError;
use xingqu_store::coupons::{CouponRow, NewClaim};
use xingqu_store::lucky_bags::{EntrantActivity, LiveSessionRow, LuckyBagRow, NewLuckyBag, WinnerRow};
use xingqu_store::orders::{NewCheckout, NewLine, NewOrder, OrderChanges, SkuForOrder};
use xingqu_store::products::Change;

/// Winners per bag at most.
pub const WINNERS_MAX: i64 = 1_000;
/// How long a bag may stay open at most.
const DEADLINE_MS_MAX: i64 = 24 * 3_600_000;
/// Watch time one heartbeat may report at most.
const WATCH_MS_PER_EVENT_MAX: i64 = 300_000;
const COMMENT_CHARS_MAX: usize = 200;
const DAY_MS: i64 = 86_400_000;

/// A lucky bag as its creator opens it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LuckyBagInput {
    pub live_session_id: i64,
    /// `sku` (one unit per winner) or `coupon` (one claim per winner).
    pub prize: String,
    pub sku_id: Option<i64>,
    pub coupon_id: Option<i64>,
    pub winners: i64,
    pub watch_s_min: i64,
    pub comment_keyword: Option<String>,
    pub must_follow: bool,
    pub deadline_ms: i64,
}

/// Everything needed to check a draw: the seed (after the draw), its commitment, the eligible
/// participants in the order the draw sorts them, and the winners in draw order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawProof {
    pub bag: LuckyBagRow,
    pub seed_hex: Option<String>,
    pub participants: Vec<i64>,
    pub winners: Vec<WinnerRow>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn seed_from_hex(raw: &str) -> Option<[u8; 32]> {
    let mut seed = [0u8; 32];
    if raw.len() != 64 {
        return None;
    }
    for (i, byte) in seed.iter_mut().enumerate() {
        *byte = u8::from_str_radix(raw.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(seed)
}

/// The entrants who met the bag's conditions by the deadline. Watch time counts only from the
/// viewer's first join and never beyond the time since then, so heartbeats cannot inflate it.
pub(crate) fn eligible_entrants(bag: &LuckyBagRow, activity: &[EntrantActivity]) -> Vec<i64> {
    let conditions = Conditions {
        watch_s_min: bag.watch_s_min,
        comment_keyword: bag.comment_keyword.clone(),
        must_follow: bag.must_follow,
    };
    activity
        .iter()
        .filter(|entrant| entrant.user_id != bag.creator_user_id)
        .filter(|entrant| {
            let present_ms = entrant.joined_session_at_ms.map_or(0, |joined| (bag.deadline_ms - joined).max(0));
            let viewer = ViewerActivity {
                watched_s: entrant.watched_ms.min(present_ms) / 1000,
                comments: entrant.comments.clone(),
                follows: entrant.follows,
            };
            lucky_bag::eligible(&conditions, &viewer)
        })
        .map(|entrant| entrant.user_id)
        .collect()
}

/// Viewers act, and bags open, only while a session is on air.
fn ensure_on_air(session: &LiveSessionRow) -> AppResult<()> {
    match session.status.as_str() {
        "live" => Ok(()),
        "scheduled" => Err(AppError::conflict("live_session_not_started", "the live session has not started yet")),
        _ => Err(AppError::conflict("live_session_ended", "the live session has ended")),
    }
}

impl App {
    /// A creator goes live now, or announces a session for `scheduled_for_ms` (within 30 days).
    pub async fn start_live_session(
        &self,
        actor: &Actor,
        title: &str,
        scheduled_for_ms: Option<i64>,
    ) -> AppResult<LiveSessionRow> {
        if actor.role != Role::Creator {
            return Err(AppError::Forbidden("only creators go live"));
        }
        let title = text::bounded("title", title, 60)?;
        let now_ms = self.now_ms();
        if let Some(at_ms) = scheduled_for_ms
            && !(now_ms < at_ms && at_ms <= now_ms + 30 * 86_400_000)
        {
            return Err(AppError::invalid("scheduled_for", "out_of_range", "in the future, within 30 days"));
        }
        let mut tx = self.store().begin().await?;
        let session = tx.insert_live_session(actor.user_id, &title, now_ms, scheduled_for_ms).await?;
        tx.commit().await?;
        if session.status == "live" {
            self.feed().rebuild_soon(self);
        }
        Ok(session)
    }

    /// A scheduled session goes on air (its creator).
    pub async fn go_live(&self, actor: &Actor, id: i64) -> AppResult<LiveSessionRow> {
        let session = self.live_session(id).await?;
        if session.creator_user_id != actor.user_id {
            return Err(AppError::Forbidden("only the creator starts their live session"));
        }
        let mut tx = self.store().begin().await?;
        if !tx.go_live(id, self.now_ms()).await? {
            return Err(AppError::conflict("not_scheduled", "the live session is not waiting to start"));
        }
        tx.commit().await?;
        self.feed().rebuild_soon(self);
        self.live_session(id).await
    }

    pub async fn end_live_session(&self, actor: &Actor, id: i64) -> AppResult<LiveSessionRow> {
        let session = self.live_session(id).await?;
        if session.creator_user_id != actor.user_id && !actor.is_operator() {
            return Err(AppError::Forbidden("only the creator ends their live session"));
        }
        let mut tx = self.store().begin().await?;
        if !tx.end_live_session(id, self.now_ms()).await? {
            return Err(AppError::conflict("live_session_ended", "the live session has ended"));
        }
        tx.commit().await?;
        self.feed().block("live_session", id);
        self.live_session(id).await
    }

    pub async fn live_session(&self, id: i64) -> AppResult<LiveSessionRow> {
        self.store().live_session(id).await?.ok_or(AppError::not_found("live_session"))
    }

    /// Records what a viewer does in a live session: `join`, `watch` (a heartbeat with the
    /// milliseconds watched since the last) or `comment`.
    pub async fn record_live_event(
        &self,
        actor: &Actor,
        live_session_id: i64,
        kind: &str,
        watch_ms: Option<i64>,
        comment: Option<&str>,
    ) -> AppResult<()> {
        let session = self.live_session(live_session_id).await?;
        ensure_on_air(&session)?;
        let (watch_ms, comment) = match kind {
            "join" => (0, None),
            "watch" => {
                let watch_ms = watch_ms.ok_or_else(|| {
                    AppError::invalid("watch_ms", "missing_field", "a watch heartbeat says how long was watched")
                })?;
                if !(1..=WATCH_MS_PER_EVENT_MAX).contains(&watch_ms) {
                    return Err(AppError::invalid(
                        "watch_ms",
                        "out_of_range",
                        format!("must be between 1 and {WATCH_MS_PER_EVENT_MAX}"),
                    ));
                }
                (watch_ms, None)
            }
            "comment" => (0, Some(text::bounded("comment", comment.unwrap_or_default(), COMMENT_CHARS_MAX)?)),
            _ => return Err(AppError::invalid("kind", "unknown_kind", "must be join, watch or comment")),
        };
        let mut tx = self.store().begin().await?;
        tx.insert_live_event(live_session_id, actor.user_id, kind, watch_ms, comment.as_deref(), self.now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Opens a lucky bag in a live session: its creator (funding the prizes) or the staff of the
    /// shop whose SKU is the prize (the shop funds them). The K prizes are set aside at once —
    /// units taken from stock, or claims from the coupon's quantity — and the seed's SHA-256 is
    /// published.
    pub async fn create_lucky_bag(&self, actor: &Actor, input: LuckyBagInput) -> AppResult<LuckyBagRow> {
        let session = self.live_session(input.live_session_id).await?;
        ensure_on_air(&session)?;
        if !(1..=WINNERS_MAX).contains(&input.winners) {
            return Err(AppError::invalid("winners", "out_of_range", format!("must be between 1 and {WINNERS_MAX}")));
        }
        if !(0..=DAY_MS / 1000).contains(&input.watch_s_min) {
            return Err(AppError::invalid("watch_s_min", "out_of_range", "must be between 0 and 86400"));
        }
        let now_ms = self.now_ms();
        if input.deadline_ms <= now_ms || input.deadline_ms - now_ms > DEADLINE_MS_MAX {
            return Err(AppError::invalid("deadline", "out_of_range", "must be in the next 24 hours"));
        }
        let comment_keyword =
            input.comment_keyword.as_deref().map(|k| text::bounded("comment_keyword", k, 20)).transpose()?;
        let is_creator = session.creator_user_id == actor.user_id;
        let (funder, sku_id, coupon_id) = match input.prize.as_str() {
            "sku" => {
                let sku_id = input
                    .sku_id
                    .ok_or_else(|| AppError::invalid("sku_id", "missing_field", "a bag of goods names its SKU"))?;
                let sku = self
                    .store()
                    .sku_for_order(sku_id)
                    .await?
                    .ok_or_else(|| AppError::invalid("sku_id", "unknown_sku", format!("no SKU {sku_id}")))?;
                if sku.product_status != ProductStatus::Listed.as_str()
                    || sku.merchant_qualification != Qualification::Approved.as_str()
                {
                    return Err(AppError::invalid("sku_id", "not_for_sale", "the SKU is not for sale"));
                }
                let funder = if is_creator {
                    "creator"
                } else if actor.role == Role::MerchantStaff && actor.manages_merchant(sku.merchant_id) {
                    "merchant"
                } else {
                    return Err(AppError::Forbidden("only the live session's creator or the SKU's shop opens a bag"));
                };
                (funder, Some(sku_id), None)
            }
            "coupon" => {
                let coupon_id = input.coupon_id.ok_or_else(|| {
                    AppError::invalid("coupon_id", "missing_field", "a bag of coupons names its coupon")
                })?;
                let coupon = self.coupon(coupon_id).await?;
                let issued_by_actor = coupon.creator_user_id == Some(actor.user_id)
                    || coupon
                        .merchant_id
                        .is_some_and(|m| actor.role == Role::MerchantStaff && actor.manages_merchant(m));
                if !issued_by_actor || !(is_creator || actor.role == Role::MerchantStaff) {
                    return Err(AppError::Forbidden("a bag of coupons holds the opener's own coupons"));
                }
                (if is_creator { "creator" } else { "merchant" }, None, Some(coupon_id))
            }
            _ => return Err(AppError::invalid("prize", "unknown_prize", "must be sku or coupon")),
        };
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let mut tx = self.store().begin().await?;
        if let Some(sku_id) = sku_id
            && !tx.reserve_stock(sku_id, input.winners).await?
        {
            return Err(AppError::conflict("out_of_stock", format!("fewer than {} units left", input.winners)));
        }
        if let Some(coupon_id) = coupon_id
            && !tx.take_claims(coupon_id, input.winners).await?
        {
            return Err(AppError::conflict("coupon_exhausted", format!("fewer than {} coupons left", input.winners)));
        }
        let bag = tx
            .insert_lucky_bag(&NewLuckyBag {
                live_session_id: session.id,
                creator_user_id: session.creator_user_id,
                prize: if sku_id.is_some() { "sku" } else { "coupon" },
                sku_id,
                coupon_id,
                funder,
                winners: input.winners,
                watch_s_min: input.watch_s_min,
                comment_keyword,
                must_follow: input.must_follow,
                deadline_ms: input.deadline_ms,
                seed_sha256: lucky_bag::commitment(&seed),
                seed_hex: hex(&seed),
                now_ms,
            })
            .await?;
        tx.commit().await?;
        if let Some(coupon_id) = coupon_id {
            // The claim gate's count of what is left is stale now.
            self.claims().forget(coupon_id);
        }
        Ok(bag)
    }

    pub async fn lucky_bag(&self, id: i64) -> AppResult<LuckyBagRow> {
        self.store().lucky_bag(id).await?.ok_or(AppError::not_found("lucky_bag"))
    }

    /// Enters a viewer in a bag before its deadline. Bags of goods need the address the prize
    /// would go to. Entering twice changes nothing. Conditions are checked at the draw, on what
    /// the viewer did by the deadline.
    pub async fn join_lucky_bag(
        &self,
        actor: &Actor,
        id: i64,
        address: Option<&crate::orders::AddressInput>,
    ) -> AppResult<bool> {
        if actor.role != Role::Consumer && actor.role != Role::Creator {
            return Err(AppError::Forbidden("only buyer accounts enter lucky bags"));
        }
        let bag = self.lucky_bag(id).await?;
        if bag.creator_user_id == actor.user_id {
            return Err(AppError::Forbidden("creators do not enter their own lucky bags"));
        }
        if bag.status != "open" || self.now_ms() >= bag.deadline_ms {
            return Err(AppError::conflict("lucky_bag_closed", "the lucky bag's deadline has passed"));
        }
        let address = match (bag.prize.as_str(), address) {
            ("sku", Some(address)) => Some(crate::orders::parse_address(address)?),
            ("sku", None) => {
                return Err(AppError::invalid("address", "missing_field", "give the address the prize would go to"));
            }
            _ => None,
        };
        let mut tx = self.store().begin().await?;
        let joined = tx.join_lucky_bag(id, actor.user_id, address.as_deref(), self.now_ms()).await?;
        tx.commit().await?;
        Ok(joined)
    }

    /// Draws every bag whose deadline has passed (the timers call this). Returns how many were drawn.
    pub(crate) async fn draw_due_lucky_bags(&self, now_ms: i64, limit: u32) -> AppResult<usize> {
        let mut drawn = 0;
        for id in self.store().due_lucky_bags(now_ms, limit).await? {
            match self.draw_lucky_bag(id, now_ms).await {
                Ok(done) => drawn += usize::from(done),
                Err(error) => {
                    tracing::warn!(lucky_bag_id = id, %error, "drawing a lucky bag failed; retrying next run")
                }
            }
        }
        Ok(drawn)
    }

    /// Draws one bag in one transaction: marks it drawn (false if it was already), picks the
    /// winners from the eligible entrants, gives each their prize, returns unneeded prizes.
    async fn draw_lucky_bag(&self, id: i64, now_ms: i64) -> AppResult<bool> {
        let mut tx = self.store().begin().await?;
        let Some(bag) = tx.lucky_bag(id).await? else { return Ok(false) };
        if !tx.mark_bag_drawn(id, now_ms).await? {
            return Ok(false);
        }
        let seed = seed_from_hex(&bag.seed_hex).ok_or_else(|| AppError::internal("a lucky bag's seed is corrupt"))?;
        let activity = tx.bag_activity(&bag, bag.deadline_ms).await?;
        let eligible = eligible_entrants(&bag, &activity);
        let winners = lucky_bag::draw(&seed, &eligible, usize::try_from(bag.winners).unwrap_or(0));
        let unawarded = bag.winners - i64::try_from(winners.len()).unwrap_or(0);
        // What every prize is made of, read once for all winners.
        let sku = match bag.sku_id {
            Some(sku_id) => Some(
                self.store().sku_for_order(sku_id).await?.ok_or_else(|| AppError::internal("prize SKU vanished"))?,
            ),
            None => None,
        };
        let coupon = match bag.coupon_id {
            Some(coupon_id) => Some(self.coupon(coupon_id).await?),
            None => None,
        };
        for (index, &user_id) in winners.iter().enumerate() {
            let rank = i64::try_from(index).unwrap_or(i64::MAX) + 1;
            let mut winner = WinnerRow { user_id, rank, order_id: None, claim_id: None };
            if let Some(sku) = &sku {
                let address = activity.iter().find(|a| a.user_id == user_id).and_then(|a| a.address.clone());
                winner.order_id = Some(self.prize_order(&mut tx, &bag, sku, user_id, address, now_ms).await?);
            }
            if let Some(coupon) = &coupon {
                winner.claim_id = Some(self.prize_claim(&mut tx, coupon, user_id, now_ms).await?);
            }
            tx.insert_winner(id, &winner).await?;
        }
        if unawarded > 0 {
            if let Some(sku_id) = bag.sku_id {
                tx.return_stock(sku_id, unawarded).await?;
            }
            if let Some(coupon_id) = bag.coupon_id {
                tx.untake_claims(coupon_id, unawarded).await?;
            }
        }
        tx.commit().await?;
        if let Some(coupon_id) = bag.coupon_id {
            self.claims().forget(coupon_id);
        }
        Ok(true)
    }

    /// A winner's 0-yuan order for one unit, paid at once; the funder covers the list price.
    async fn prize_order(
        &self,
        tx: &mut xingqu_store::Tx,
        bag: &LuckyBagRow,
        sku: &SkuForOrder,
        user_id: i64,
        address: Option<String>,
        now_ms: i64,
    ) -> AppResult<i64> {
        let sku_id = sku.sku_id;
        let address = address.ok_or_else(|| AppError::internal("a prize winner has no address"))?;
        let (checkout_id, order_id, line_id) =
            (self.ids().next(now_ms), self.ids().next(now_ms), self.ids().next(now_ms));
        let promise = DispatchPromise::parse(&sku.dispatch_promise).unwrap_or(DispatchPromise::None);
        let price_fen = sku.price_fen;
        tx.insert_checkouts(&[NewCheckout {
            id: checkout_id,
            buyer_user_id: user_id,
            idempotency_key: format!("lucky-bag:{}", bag.id),
            request_sha256: String::new(),
            total_fen: 0,
            created_at_ms: now_ms,
        }])
        .await?;
        tx.insert_orders(&[NewOrder {
            id: order_id,
            checkout_id,
            buyer_user_id: user_id,
            merchant_id: sku.merchant_id,
            trade_type: "lucky_bag",
            flash_sale_id: None,
            goods_list_fen: price_fen,
            discount_fen: price_fen,
            shipping_fen: 0,
            total_fen: 0,
            address,
            dispatch_promise: promise.as_str(),
            created_at_ms: now_ms,
            expires_at_ms: now_ms,
        }])
        .await?;
        tx.insert_lines(&[NewLine {
            id: line_id,
            order_id,
            sku_id,
            product_id: sku.product_id,
            product_version: sku.product_version,
            title: sku.title.clone(),
            spec: sku.spec.clone(),
            unit_price_fen: price_fen,
            quantity: 1,
            list_total_fen: price_fen,
            discount_fen: price_fen,
            paid_fen: 0,
            discounts: xingqu_store::orders::encode_discounts(&[(
                "item_price",
                bag.funder.as_str(),
                "lucky_bag",
                price_fen,
            )]),
            commission_bps: 0,
            dispatch_promise: promise.as_str(),
            flash_sale_id: None,
            // A prize costs the winner nothing: nothing to protect.
            merchant_net_fen: 0,
            protect_window_days: 0,
            protect_from: "placement".to_owned(),
            services: "[]".to_owned(),
            insurance_premium_fen: 0,
            insurance_cap_fen: 0,
            unsealed_no_return_confirmed: false,
        }])
        .await?;
        let changes = OrderChanges {
            paid_fen: Some(0),
            paid_at_ms: Some(now_ms),
            dispatch_deadline_ms: promise.deadline_ms(now_ms),
            ..OrderChanges::default()
        };
        let change = Change { actor_user_id: None, reason: "lucky bag prize", now_ms };
        tx.transition_order(order_id, OrderStatus::Created.as_str(), OrderStatus::Paid.as_str(), &changes, change)
            .await?;
        // A creator pays the shop the list price of the prize; a shop giving its own goods away
        // moves no money.
        if bag.funder == "creator" {
            let posting = Posting::new(
                PostingKind::Payment,
                vec![
                    (Account::CreatorCommission(bag.creator_user_id), price_fen),
                    (Account::MerchantReceivable(sku.merchant_id), -price_fen),
                ],
            )
            .map_err(|e| AppError::internal(e.to_string()))?;
            tx.post(&posting, &format!("lucky-bag:{}:order:{order_id}", bag.id), Some(order_id), now_ms).await?;
        }
        Ok(order_id)
    }

    /// A winner's coupon, straight into their wallet (the quantity was set aside at opening).
    async fn prize_claim(
        &self,
        tx: &mut xingqu_store::Tx,
        coupon: &CouponRow,
        user_id: i64,
        now_ms: i64,
    ) -> AppResult<i64> {
        let coupon_id = coupon.id;
        let (valid_from_ms, valid_until_ms) = crate::coupons::claims::validity(coupon, now_ms);
        let claim_id = self.ids().next(now_ms);
        let seq = tx.claims_held(coupon_id, user_id).await? + 1;
        let claim = NewClaim {
            id: claim_id,
            coupon_id,
            user_id,
            seq,
            idempotency_key: None,
            off_fen: None,
            claimed_at_ms: now_ms,
            valid_from_ms,
            valid_until_ms,
        };
        match tx.insert_claim_group(&[claim], &[]).await {
            Err(StoreError::Conflict { .. }) => Err(AppError::internal("a prize claim collided")),
            other => Ok(other.map(|()| claim_id)?),
        }
    }

    /// The draw's proof: before the draw only the commitment; after it the seed, the eligible
    /// participants (sorted, as the draw sorts them) and the winners in draw order.
    pub async fn lucky_bag_proof(&self, id: i64) -> AppResult<DrawProof> {
        let bag = self.lucky_bag(id).await?;
        if bag.status != "drawn" {
            return Ok(DrawProof { bag, seed_hex: None, participants: Vec::new(), winners: Vec::new() });
        }
        let activity = self.store().bag_activity(&bag, bag.deadline_ms).await?;
        let mut participants = eligible_entrants(&bag, &activity);
        participants.sort_unstable();
        participants.dedup();
        let winners = self.store().lucky_bag_winners(id).await?;
        Ok(DrawProof { seed_hex: Some(bag.seed_hex.clone()), bag, participants, winners })
    }
}
