//! Campaigns as operators run them: zones with eligibility rules, theme days, the official live
//! room's schedule and subsidy pools; merchants enter SKUs into zones at a campaign price, which
//! rules and an operator's review decide. Pricing a cart asks here for campaign prices and
//! subsidies (the item-price lane), and orders spend and give back pool money.

use crate::{App, AppError, AppResult};
use std::collections::BTreeMap;
use xingqu_domain::account::{Actor, Role};
use xingqu_domain::campaign::{
    CampaignWindow, EntryStatus, ProductFacts, REFERENCE_WINDOW_DAYS, RawZoneRule, SubsidyRate, TRAFFIC_TARGET_BP_MAX,
    ZoneRule, check_campaign_price, line_subsidy_fen,
};
use xingqu_domain::catalog::{ListingTag, ProductStatus};
use xingqu_domain::checkout::{CampaignOffer, PricedLine, SubsidyOffer};
use xingqu_domain::ledger::Account;
use xingqu_domain::text;
use xingqu_store::StoreError;
use xingqu_store::campaigns::{
    CampaignRow, LiveSlotRow, NewSubsidyPool, NewZoneEntry, OrderSubsidy, SubsidyPoolRow, ThemeDayRow, ZoneEntryRow,
    ZoneRow, decode_rule, encode_rule,
};

const NAME_CHARS_MAX: usize = 60;
const REASON_CHARS_MAX: usize = 200;
pub const LIST_LIMIT: i64 = 200;
const DAY_MS: i64 = 86_400_000;

/// A campaign with everything it is made of.
#[derive(Debug, Clone)]
pub struct CampaignView {
    pub campaign: CampaignRow,
    pub zones: Vec<ZoneRow>,
    pub theme_days: Vec<ThemeDayRow>,
    pub live_slots: Vec<LiveSlotRow>,
    pub subsidy_pools: Vec<SubsidyPoolRow>,
}

/// A subsidy pool as an operator opens it.
#[derive(Debug, Clone, Default)]
pub struct PoolInput {
    pub name: String,
    pub zone_id: Option<i64>,
    pub budget_fen: i64,
    pub per_unit_fen: Option<i64>,
    pub percent_bp: Option<i64>,
    pub cap_per_unit_fen: Option<i64>,
}

/// Adds what the platform's subsidies cover of an order to the other funders' ledger entries.
pub(crate) fn with_subsidies(funded: Vec<(Account, i64)>, subsidies: &[OrderSubsidy]) -> Vec<(Account, i64)> {
    let mut by_account: BTreeMap<Account, i64> = funded.into_iter().collect();
    for subsidy in subsidies {
        *by_account.entry(Account::PlatformSubsidyBudget).or_default() += subsidy.amount_fen;
    }
    by_account.into_iter().filter(|&(_, fen)| fen != 0).collect()
}

fn operator_only(actor: &Actor) -> AppResult<()> {
    if actor.is_operator() { Ok(()) } else { Err(AppError::Forbidden("only operators run campaigns")) }
}

fn traffic_target(bp: i64) -> AppResult<i64> {
    if (0..=TRAFFIC_TARGET_BP_MAX).contains(&bp) {
        Ok(bp)
    } else {
        Err(AppError::invalid(
            "traffic_target_bp",
            "out_of_range",
            format!("a zone's traffic target is 0 to {TRAFFIC_TARGET_BP_MAX} basis points of exposure"),
        ))
    }
}

fn conflict_on_duplicate<T>(result: Result<T, StoreError>, code: &'static str, message: &str) -> AppResult<T> {
    match result {
        Err(StoreError::Conflict { .. }) => Err(AppError::conflict(code, message)),
        other => Ok(other?),
    }
}

impl App {
    pub async fn create_campaign(
        &self,
        actor: &Actor,
        name: &str,
        starts_at_ms: i64,
        ends_at_ms: i64,
    ) -> AppResult<CampaignView> {
        operator_only(actor)?;
        let name = text::bounded("name", name, NAME_CHARS_MAX)?;
        let window = CampaignWindow::parse(starts_at_ms, ends_at_ms)?;
        let now_ms = self.now_ms();
        if window.ends_at_ms <= now_ms {
            return Err(AppError::invalid("ends_at", "in_the_past", "the campaign would be over already"));
        }
        let mut tx = self.store().begin().await?;
        let row = tx.insert_campaign(&name, window.starts_at_ms, window.ends_at_ms, actor.user_id, now_ms).await?;
        tx.commit().await?;
        self.campaign_view(row.id).await
    }

    pub async fn campaigns(&self) -> AppResult<Vec<CampaignRow>> {
        Ok(self.store().campaigns(self.now_ms(), LIST_LIMIT).await?)
    }

    pub async fn campaign_view(&self, campaign_id: i64) -> AppResult<CampaignView> {
        let campaign = self.store().campaign(campaign_id).await?.ok_or(AppError::not_found("campaign"))?;
        Ok(CampaignView {
            zones: self.store().zones(campaign_id).await?,
            theme_days: self.store().theme_days(campaign_id).await?,
            live_slots: self.store().live_slots(campaign_id).await?,
            subsidy_pools: self.store().subsidy_pools(campaign_id).await?,
            campaign,
        })
    }

    async fn editable_campaign(&self, actor: &Actor, campaign_id: i64) -> AppResult<(CampaignRow, CampaignWindow)> {
        operator_only(actor)?;
        let campaign = self.store().campaign(campaign_id).await?.ok_or(AppError::not_found("campaign"))?;
        if campaign.ends_at_ms <= self.now_ms() {
            return Err(AppError::conflict("campaign_over", "the campaign is over"));
        }
        let window = CampaignWindow::parse(campaign.starts_at_ms, campaign.ends_at_ms)?;
        Ok((campaign, window))
    }

    pub async fn add_zone(
        &self,
        actor: &Actor,
        campaign_id: i64,
        name: &str,
        rule: &RawZoneRule,
        traffic_target_bp: i64,
    ) -> AppResult<ZoneRow> {
        self.editable_campaign(actor, campaign_id).await?;
        let name = text::bounded("name", name, NAME_CHARS_MAX)?;
        let rule = ZoneRule::parse(rule)?;
        let traffic_target_bp = traffic_target(traffic_target_bp)?;
        let mut tx = self.store().begin().await?;
        let zone = conflict_on_duplicate(
            tx.insert_zone(campaign_id, &name, &encode_rule(&rule), traffic_target_bp, self.now_ms()).await,
            "zone_exists",
            "the campaign has a zone of that name",
        )?;
        tx.commit().await?;
        self.feed().zones_changed();
        Ok(zone)
    }

    /// Changes a zone's rule and traffic target. Entries approved under the old rule stay: the
    /// merchant was told yes.
    pub async fn edit_zone(
        &self,
        actor: &Actor,
        zone_id: i64,
        rule: &RawZoneRule,
        traffic_target_bp: i64,
    ) -> AppResult<ZoneRow> {
        let zone = self.store().zone(zone_id).await?.ok_or(AppError::not_found("zone"))?;
        self.editable_campaign(actor, zone.campaign_id).await?;
        let rule = ZoneRule::parse(rule)?;
        let traffic_target_bp = traffic_target(traffic_target_bp)?;
        let mut tx = self.store().begin().await?;
        tx.update_zone(zone_id, &encode_rule(&rule), traffic_target_bp).await?;
        tx.commit().await?;
        self.feed().zones_changed();
        self.store().zone(zone_id).await?.ok_or(AppError::not_found("zone"))
    }

    pub async fn add_theme_day(
        &self,
        actor: &Actor,
        campaign_id: i64,
        day_starts_at_ms: i64,
        title: &str,
        zone_id: Option<i64>,
    ) -> AppResult<CampaignView> {
        let (_, window) = self.editable_campaign(actor, campaign_id).await?;
        let day = window.theme_day(day_starts_at_ms)?;
        let title = text::bounded("title", title, NAME_CHARS_MAX)?;
        if let Some(zone_id) = zone_id {
            self.zone_of(campaign_id, zone_id).await?;
        }
        let mut tx = self.store().begin().await?;
        conflict_on_duplicate(
            tx.insert_theme_day(campaign_id, day, &title, zone_id).await,
            "theme_day_exists",
            "the campaign already has a theme for that day",
        )?;
        tx.commit().await?;
        self.campaign_view(campaign_id).await
    }

    /// Puts a live session on the official live room's schedule. The session must not be over.
    pub async fn add_live_slot(
        &self,
        actor: &Actor,
        campaign_id: i64,
        live_session_id: i64,
        title: &str,
        starts_at_ms: i64,
        ends_at_ms: i64,
    ) -> AppResult<CampaignView> {
        let (_, window) = self.editable_campaign(actor, campaign_id).await?;
        let (starts_at_ms, ends_at_ms) = window.slot(starts_at_ms, ends_at_ms)?;
        let title = text::bounded("title", title, NAME_CHARS_MAX)?;
        let session = self.store().live_session(live_session_id).await?.ok_or(AppError::not_found("live_session"))?;
        if session.status == "ended" {
            return Err(AppError::conflict("live_session_ended", "that live session is over"));
        }
        let mut tx = self.store().begin().await?;
        conflict_on_duplicate(
            tx.insert_live_slot(campaign_id, live_session_id, &title, starts_at_ms, ends_at_ms).await,
            "slot_exists",
            "that session is already on the schedule",
        )?;
        tx.commit().await?;
        self.campaign_view(campaign_id).await
    }

    pub async fn add_subsidy_pool(
        &self,
        actor: &Actor,
        campaign_id: i64,
        input: &PoolInput,
    ) -> AppResult<SubsidyPoolRow> {
        self.editable_campaign(actor, campaign_id).await?;
        let name = text::bounded("name", &input.name, NAME_CHARS_MAX)?;
        if input.budget_fen <= 0 || input.budget_fen > xingqu_domain::money::PRICE_FEN_MAX * 1_000 {
            return Err(AppError::invalid("budget_fen", "out_of_range", "a budget is positive and at most 10^10 分"));
        }
        SubsidyRate::parse(input.per_unit_fen, input.percent_bp, input.cap_per_unit_fen)?;
        if let Some(zone_id) = input.zone_id {
            self.zone_of(campaign_id, zone_id).await?;
        }
        let mut tx = self.store().begin().await?;
        let pool = tx
            .insert_subsidy_pool(&NewSubsidyPool {
                campaign_id,
                zone_id: input.zone_id,
                name,
                budget_fen: input.budget_fen,
                per_unit_fen: input.per_unit_fen,
                percent_bp: input.percent_bp,
                cap_per_unit_fen: input.cap_per_unit_fen,
                now_ms: self.now_ms(),
            })
            .await?;
        tx.commit().await?;
        Ok(pool)
    }

    async fn zone_of(&self, campaign_id: i64, zone_id: i64) -> AppResult<ZoneRow> {
        let zone = self.store().zone(zone_id).await?.filter(|z| z.campaign_id == campaign_id);
        zone.ok_or_else(|| AppError::invalid("zone_id", "unknown_zone", format!("the campaign has no zone {zone_id}")))
    }

    /// A merchant enters one of their SKUs into a zone at a campaign price. The zone's rule and
    /// the price history decide at once (a refusal stores nothing); an operator reviews the rest.
    pub async fn apply_to_zone(
        &self,
        actor: &Actor,
        zone_id: i64,
        sku_id: i64,
        campaign_price_fen: i64,
    ) -> AppResult<ZoneEntryRow> {
        let merchant_id = match (actor.role, actor.merchant_id) {
            (Role::MerchantStaff, Some(id)) => id,
            _ => return Err(AppError::Forbidden("only merchant staff enter their products into zones")),
        };
        let zone = self.store().zone(zone_id).await?.ok_or(AppError::not_found("zone"))?;
        let campaign = self.store().campaign(zone.campaign_id).await?.ok_or(AppError::not_found("campaign"))?;
        let now_ms = self.now_ms();
        if campaign.ends_at_ms <= now_ms {
            return Err(AppError::conflict("campaign_over", "the campaign is over"));
        }
        // Another shop's SKU is answered as unknown: its existence is not this merchant's business.
        let unknown = || AppError::invalid("sku_id", "unknown_sku", format!("your shop has no SKU {sku_id}"));
        let sku =
            self.store().sku_for_order(sku_id).await?.filter(|s| s.merchant_id == merchant_id).ok_or_else(unknown)?;
        let product = self.store().product(sku.product_id).await?.ok_or_else(unknown)?;
        if product.status != ProductStatus::Listed.as_str() {
            return Err(AppError::conflict("not_listed", "only listed products enter a zone"));
        }
        let tags = ListingTag::of(product.tags, product.domestic_brand);
        let facts = ProductFacts {
            merchant_id,
            category_id: product.category_id,
            origin_region_code: &product.origin_region_code,
            tags: &tags,
            price_fen: sku.price_fen,
        };
        let rule = ZoneRule::parse(&decode_rule(&zone.rule))?;
        if let Err(criterion) = rule.admits(&facts) {
            return Err(AppError::invalid(
                "sku_id",
                "not_eligible",
                format!("the zone's rule does not admit this product ({criterion})"),
            ));
        }
        // The reference is the lowest list price of the 30 days before the campaign starts, or
        // before now once it runs: a price raised just before and then "cut" is no discount.
        let since_ms = campaign.starts_at_ms.min(now_ms) - REFERENCE_WINDOW_DAYS * DAY_MS;
        let reference_price_fen = self.store().lowest_price_since(sku_id, since_ms).await?.unwrap_or(sku.price_fen);
        let campaign_price_fen = check_campaign_price(campaign_price_fen, reference_price_fen)?;
        let mut tx = self.store().begin().await?;
        let id = conflict_on_duplicate(
            tx.insert_zone_entry(&NewZoneEntry {
                zone_id,
                sku_id,
                product_id: sku.product_id,
                merchant_id,
                campaign_price_fen,
                reference_price_fen,
                applied_by_user_id: actor.user_id,
                now_ms,
            })
            .await,
            "already_entered",
            "the SKU is already entered in this zone",
        )?;
        tx.commit().await?;
        self.store().zone_entry(id).await?.ok_or(AppError::not_found("zone_entry"))
    }

    /// An operator approves or rejects a pending entry.
    pub async fn review_zone_entry(
        &self,
        actor: &Actor,
        entry_id: i64,
        approve: bool,
        reason: &str,
    ) -> AppResult<ZoneEntryRow> {
        operator_only(actor)?;
        let reason = text::bounded_or_empty("reason", reason, REASON_CHARS_MAX)?;
        if !approve && reason.is_empty() {
            return Err(AppError::invalid("reason", "required", "say why the entry is rejected"));
        }
        let entry = self.store().zone_entry(entry_id).await?.ok_or(AppError::not_found("zone_entry"))?;
        let status = EntryStatus::from_name(&entry.status)
            .ok_or_else(|| AppError::internal(format!("zone entry {entry_id} has status {}", entry.status)))?;
        let next = status
            .review(approve)
            .ok_or_else(|| AppError::conflict("invalid_transition", format!("the entry is {}", entry.status)))?;
        self.move_entry(actor, &entry, status, next, &reason).await
    }

    /// The merchant takes an entry back; an approved one stops pricing carts at once.
    pub async fn withdraw_zone_entry(&self, actor: &Actor, entry_id: i64) -> AppResult<ZoneEntryRow> {
        let entry = self
            .store()
            .zone_entry(entry_id)
            .await?
            .filter(|e| actor.role == Role::MerchantStaff && actor.merchant_id == Some(e.merchant_id))
            .ok_or(AppError::not_found("zone_entry"))?;
        let status = EntryStatus::from_name(&entry.status)
            .ok_or_else(|| AppError::internal(format!("zone entry {entry_id} has status {}", entry.status)))?;
        let next = status
            .withdraw()
            .ok_or_else(|| AppError::conflict("invalid_transition", format!("the entry is {}", entry.status)))?;
        self.move_entry(actor, &entry, status, next, "withdrawn by the merchant").await
    }

    async fn move_entry(
        &self,
        actor: &Actor,
        entry: &ZoneEntryRow,
        from: EntryStatus,
        to: EntryStatus,
        reason: &str,
    ) -> AppResult<ZoneEntryRow> {
        let mut tx = self.store().begin().await?;
        if !tx.move_zone_entry(entry.id, from.as_str(), to.as_str(), actor.user_id, reason, self.now_ms()).await? {
            return Err(AppError::conflict("invalid_transition", "the entry changed meanwhile; read it again"));
        }
        tx.commit().await?;
        if from == EntryStatus::Approved || to == EntryStatus::Approved {
            self.feed().zones_changed();
        }
        self.store().zone_entry(entry.id).await?.ok_or(AppError::not_found("zone_entry"))
    }

    /// A zone's entries: operators see all, merchant staff their own shop's.
    pub async fn zone_entries(
        &self,
        actor: &Actor,
        zone_id: i64,
        status: Option<&str>,
    ) -> AppResult<Vec<ZoneEntryRow>> {
        self.store().zone(zone_id).await?.ok_or(AppError::not_found("zone"))?;
        let status = status
            .map(|s| {
                EntryStatus::from_name(s).map(EntryStatus::as_str).ok_or_else(|| {
                    AppError::invalid("status", "unknown_status", "one of pending, approved, rejected, withdrawn")
                })
            })
            .transpose()?;
        let merchant_id = match actor.role {
            Role::Operator => None,
            Role::MerchantStaff => Some(actor.merchant_id.ok_or(AppError::Forbidden("staff without a shop"))?),
            _ => return Err(AppError::Forbidden("zone entries are for operators and the shops that entered them")),
        };
        Ok(self.store().zone_entries(zone_id, status, merchant_id, LIST_LIMIT).await?)
    }

    /// Prices the item-price lane of a cart from running campaigns: the lowest approved campaign
    /// price of each line's SKU (unless a flash sale prices it), and the largest subsidy a pool
    /// with money left can cover for the whole line.
    pub(crate) async fn apply_campaigns(&self, priced: &mut [PricedLine]) -> AppResult<()> {
        let sku_ids: Vec<i64> = priced.iter().map(|l| l.sku_id).collect();
        let offers = self.store().campaign_offers(&sku_ids, self.now_ms()).await?;
        if offers.is_empty() {
            return Ok(());
        }
        let mut pools_by_zone: BTreeMap<i64, Vec<SubsidyPoolRow>> = BTreeMap::new();
        // What each pool has left as this cart's lines take from it: two lines never count on
        // the same money.
        let mut left_fen: BTreeMap<i64, i64> = BTreeMap::new();
        for line in priced.iter_mut() {
            // Offers come cheapest first for each SKU.
            let Some(offer) = offers.iter().find(|o| o.sku_id == line.sku_id) else { continue };
            if offer.campaign_price_fen < line.unit_price_fen {
                line.campaign = Some(CampaignOffer { entry_id: offer.entry_id, price_fen: offer.campaign_price_fen });
            }
            let pools = match pools_by_zone.entry(offer.zone_id) {
                std::collections::btree_map::Entry::Occupied(known) => known.into_mut(),
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(self.store().pools_for_zone(offer.campaign_id, offer.zone_id).await?)
                }
            };
            let unit_fen = line.sale_unit_fen();
            let units = line.quantity.units();
            line.subsidy = pools
                .iter()
                .filter_map(|pool| {
                    let rate = SubsidyRate::parse(pool.per_unit_fen, pool.percent_bp, pool.cap_per_unit_fen).ok()?;
                    let left = *left_fen.entry(pool.id).or_insert(pool.budget_fen - pool.spent_fen);
                    let amount_fen = line_subsidy_fen(rate, unit_fen, units, left)?;
                    Some(SubsidyOffer { pool_id: pool.id, amount_fen })
                })
                .max_by_key(|s| (s.amount_fen, std::cmp::Reverse(s.pool_id)));
            if let Some(subsidy) = line.subsidy
                && let Some(left) = left_fen.get_mut(&subsidy.pool_id)
            {
                *left -= subsidy.amount_fen;
            }
        }
        Ok(())
    }

    /// Spends the subsidies of a checkout's lines from their pools and records them; a pool
    /// spent meanwhile refuses the order (nothing is kept: the caller's transaction rolls back).
    pub(crate) async fn spend_subsidies(&self, tx: &mut xingqu_store::Tx, subsidies: &[OrderSubsidy]) -> AppResult<()> {
        // Pools are taken in id order so two checkouts never wait on each other in a cycle.
        let mut by_pool: BTreeMap<i64, i64> = BTreeMap::new();
        for subsidy in subsidies {
            *by_pool.entry(subsidy.pool_id).or_default() += subsidy.amount_fen;
        }
        for (&pool_id, &amount_fen) in &by_pool {
            if !tx.spend_subsidy(pool_id, amount_fen).await? {
                return Err(AppError::conflict(
                    "subsidy_spent",
                    format!("subsidy pool {pool_id} ran out meanwhile; quote again"),
                ));
            }
        }
        tx.insert_order_subsidies(subsidies).await?;
        Ok(())
    }
}
