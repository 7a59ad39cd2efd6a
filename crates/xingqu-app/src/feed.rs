//! The interest feed: for each viewer (signed in, or an anonymous device) a page of videos, live
//! sessions and products from several candidate sources — followed creators, items similar to
//! what they engaged with (item-to-item co-occurrence learned from the interaction log),
//! trending, buy-again and exploration of new items — ranked by predicted value and re-ranked by
//! `xingqu_feed::rerank` (creator grades, operator traffic support against its target share,
//! at most two items per author, nothing twice in a session, blocked items never). Every item
//! says which sources and boosts put it there.
//!
//! Viewers' histories are loaded from the log once, then kept by the events as they are ingested,
//! so a fresh action changes the next page. The model (catalogue, neighbours, trending, predicted
//! value) is rebuilt from the store by the timers every [`RETRAIN_MS`].

use crate::{App, AppError, AppResult};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use xingqu_feed::rerank::{Candidate, Exposure, Reason, Rules, TrafficSupport, rerank};
use xingqu_store::content::CatalogItem;
use xingqu_store::events::EventRow;

/// How often the model is rebuilt from the store (in the background: serving goes on with the
/// model it has).
pub const RETRAIN_MS: i64 = 5 * 60_000;
/// A viewer's recent items the similarity source starts from.
const RECENT_MAX: usize = 50;
/// Neighbours kept per item.
const NEIGHBOURS: usize = 20;
/// The items EASE models (the most engaged with); the long tail comes from co-occurrence
/// neighbours. Inverting an m×m matrix is m³: 3,000 items take seconds on one core.
const EASE_ITEMS: usize = 3_000;
/// EASE's regularisation and the recency weighting of a history, as `xingqu eval` measures them.
const EASE_LAMBDA: f64 = 300.0;
const RECENCY_HALF_LIFE: f32 = 10.0;
const RECENCY_FLOOR: f32 = 0.6;
/// Items of one user counted for co-occurrence (the most recent).
const COOCCUR_PER_USER: usize = 50;
/// Sessions remembered (for no repeats within a session); the oldest are forgotten first.
const SESSIONS_MAX: usize = 100_000;
const SESSION_IDLE_MS: i64 = 30 * 60_000;
const PAGE_MAX: usize = 50;
/// New items (created this recently) are explored even with no interactions yet.
const FRESH_MS: i64 = 7 * 86_400_000;
/// Events read per page while loading.
const LOAD_PAGE: u32 = 10_000;
/// Pages of other nodes' events one tail reads at most (the next run goes on).
const TAIL_PAGES_MAX: usize = 10;
/// The operator's default programme: farm specialties get this share of exposure.
pub const FARM_TARGET_SHARE: f64 = 0.15;

/// Who the feed is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Viewer {
    User(i64),
    Device(String),
}

/// What the feed shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemType {
    Video,
    LiveSession,
    Product,
}

impl ItemType {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemType::Video => "video",
            ItemType::LiveSession => "live_session",
            ItemType::Product => "product",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "video" => Some(ItemType::Video),
            "live_session" => Some(ItemType::LiveSession),
            "product" => Some(ItemType::Product),
            _ => None,
        }
    }
}

type Key = (ItemType, i64);

/// How much an action says about interest, and what it is worth to the platform.
pub fn action_weight(kind: &str, watch_ms: i64) -> f32 {
    match kind {
        "view" => 1.0 + (watch_ms as f32 / 30_000.0).min(2.0),
        "like" | "comment" | "product_click" => 2.0,
        "share" | "add_to_cart" => 3.0,
        "purchase" => 5.0,
        _ => 0.0,
    }
}

/// One page item as the viewer gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedItem {
    pub item_type: ItemType,
    pub id: i64,
    pub title: String,
    /// The creator (content) or the shop (products).
    pub author_id: i64,
    pub score: f32,
    /// The sources and boosts that put it here: `followed_creator`, `similar`, `trending`,
    /// `buy_again`, `exploration`, `creator_grade`, `traffic_support:{programme}`.
    pub reasons: Vec<String>,
}

/// A page and the cursor of the next.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedPage {
    pub items: Vec<FeedItem>,
    pub next_cursor: String,
}

#[derive(Debug, Clone)]
struct Item {
    key: Key,
    author_id: i64,
    /// Dense author number for re-ranking (creators and shops apart).
    author: u32,
    title: String,
    created_at_ms: i64,
    farm: bool,
}

/// What is learned from the catalogue and the log; rebuilt as a whole and swapped in.
#[derive(Debug, Default)]
struct Model {
    items: Vec<Item>,
    index: HashMap<Key, u32>,
    /// A creator's content, newest first.
    creator_items: HashMap<i64, Vec<u32>>,
    neighbours: Vec<Vec<(u32, f32)>>,
    /// The interest model `xingqu eval` measures, over the most engaged-with items.
    ease: Option<xingqu_feed::models::Ease>,
    /// Most interacted with lately, best first, with a 0..1 score.
    trending: Vec<(u32, f32)>,
    /// Predicted value per unit of relevance: 1 + 2 × like rate + 5 × purchase rate.
    value: Vec<f32>,
    /// New items with little or no interaction yet, newest first.
    fresh: Vec<u32>,
    /// The newest items of all: what a page falls back on when the log knows too little.
    newest: Vec<u32>,
    built_at_ms: i64,
    /// Which build this is: a session's cached candidates are item numbers of one build.
    generation: u64,
}

#[derive(Debug, Default, Clone)]
struct ViewerState {
    /// Bumped by every change: a session's candidates are reused while it stays the same.
    version: u64,
    recent: VecDeque<(Key, f32)>,
    purchased: Vec<i64>,
    follows: HashSet<i64>,
}

#[derive(Debug, Default)]
struct Viewers {
    loaded: bool,
    /// Events up to this id are in the states; an ingest applies only newer ones.
    through_event_id: i64,
    /// Id ranges (first → last) above `through_event_id` this node appended and learned itself:
    /// reading the log for other nodes' events skips them.
    own: std::collections::BTreeMap<i64, i64>,
    states: HashMap<Viewer, ViewerState>,
    /// The interaction log, compact, in arrival order: what the model is retrained from, so a
    /// rebuild never reads the whole log back from the store.
    log: Log,
    /// Viewers numbered as they first appear in the log.
    numbers: HashMap<Viewer, u32>,
}

/// Entries per chunk of the log (about 10 MB).
const LOG_CHUNK: usize = 1 << 18;

/// The interaction log in fixed-size chunks. Appending never moves what is logged (one `Vec` of
/// ten million entries copies itself whole when it grows, under the lock pages wait on), and a
/// retrain takes the full chunks as shared references instead of copying them under the lock.
#[derive(Debug, Default)]
struct Log {
    full: Vec<Arc<Vec<Logged>>>,
    open: Vec<Logged>,
}

impl Log {
    fn push(&mut self, entry: Logged) {
        if self.open.capacity() == 0 {
            self.open.reserve_exact(LOG_CHUNK);
        }
        self.open.push(entry);
        if self.open.len() == LOG_CHUNK {
            self.full.push(Arc::new(std::mem::take(&mut self.open)));
        }
    }

    /// The log as it is now: the full chunks shared, the open one copied (at most one chunk).
    fn snapshot(&self) -> Vec<Arc<Vec<Logged>>> {
        let mut chunks = self.full.clone();
        chunks.push(Arc::new(self.open.clone()));
        chunks
    }
}

impl FromIterator<Logged> for Log {
    fn from_iter<I: IntoIterator<Item = Logged>>(entries: I) -> Self {
        let mut log = Log::default();
        for entry in entries {
            log.push(entry);
        }
        log
    }
}

/// One logged interaction with an item the feed can show.
#[derive(Debug, Clone, Copy)]
struct Logged {
    viewer: u32,
    key: Key,
    kind: ActionKind,
    weight: f32,
    at_ms: i64,
}

impl Viewers {
    /// Moves `through_event_id` over this node's own ranges that now follow it directly.
    fn skip_own(&mut self) {
        while let Some((&first, &last)) = self.own.first_key_value() {
            if first > self.through_event_id + 1 {
                break;
            }
            self.through_event_id = self.through_event_id.max(last);
            self.own.pop_first();
        }
    }

    fn is_own(&self, id: i64) -> bool {
        self.own.range(..=id).next_back().is_some_and(|(_, &last)| id <= last)
    }

    /// Records an event about `item_type` in the states and the log.
    #[allow(clippy::too_many_arguments)]
    fn learn(&mut self, viewer: Viewer, kind: &str, item_type: &str, item_id: i64, watch_ms: i64, at_ms: i64) {
        if let Some(parsed) = ItemType::parse(item_type) {
            let next = self.numbers.len() as u32;
            let number = *self.numbers.entry(viewer.clone()).or_insert(next);
            self.log.push(Logged {
                viewer: number,
                key: (parsed, item_id),
                kind: ActionKind::of(kind),
                weight: action_weight(kind, watch_ms),
                at_ms,
            });
        }
        self.states.entry(viewer).or_default().apply_parts(kind, item_type, item_id, watch_ms);
    }
}

#[derive(Debug)]
struct Session {
    /// Whose session it is: a cursor is worth nothing to anyone else.
    viewer: Viewer,
    seen: Vec<Key>,
    page: u32,
    touched_ms: i64,
    /// The candidates of its first page, reused by the next pages while neither the viewer nor
    /// the model changed.
    pool: Option<Arc<Pool>>,
}

/// Scored candidates with their sources, for one viewer state and one model.
#[derive(Debug)]
struct Pool {
    version: u64,
    generation: u64,
    zones_generation: u64,
    scored: Vec<Scored>,
}

/// A candidate: its relevance (before predicted value) and the sources that put it there (bit
/// `i` is [`SOURCES`]`[i]`).
#[derive(Debug, Clone, Copy)]
struct Scored {
    item: u32,
    relevance: f32,
    sources: u8,
}

const SOURCES: [&str; 6] = ["followed_creator", "similar", "buy_again", "trending", "exploration", "campaign_zone"];
const FOLLOWED: u8 = 1;
const SIMILAR: u8 = 2;
const BUY_AGAIN: u8 = 4;
const TRENDING: u8 = 8;
const EXPLORATION: u8 = 16;
const CAMPAIGN_ZONE: u8 = 32;
/// Campaign zones a page samples candidates from, and how many products of each.
const ZONE_PICKS: usize = 3;
/// How long the feed trusts its copy of the running campaigns' zones (campaigns start and end
/// by the clock; edits say so at once through [`FeedService::zones_changed`]).
const ZONES_TTL_MS: i64 = 30_000;
/// Traffic-support programmes: the farm-specialty one, then one per zone with a target (bits).
const PROGRAMMES_MAX: usize = 32;

/// The running campaigns' zones as the feed uses them: traffic-support programmes (with their
/// targets) and a candidate source.
#[derive(Debug, Default)]
struct Zones {
    /// Programmes after the farm-specialty one: (zone name, target share), bit `i + 1`.
    programmes: Vec<(String, f64)>,
    /// Per product, the programme bits of the zones it is in.
    bits: HashMap<i64, u32>,
    /// Per zone, its products (the candidate source).
    products: Vec<Vec<i64>>,
    loaded_at_ms: i64,
    generation: u64,
}

/// The feed's memory, shared by every request of the process.
#[derive(Debug, Default)]
pub struct FeedService {
    model: RwLock<Arc<Model>>,
    viewers: tokio::sync::RwLock<Viewers>,
    sessions: Mutex<HashMap<u64, Session>>,
    exposure: Mutex<Exposure>,
    /// Items taken down since the model was built (removed, banned, delisted, ended).
    /// With the order each was placed in: a rebuild forgets only those placed before it read
    /// the catalogue (the new model no longer has them), never one placed while it ran.
    blocked: Mutex<HashMap<Key, u64>>,
    blocks_placed: std::sync::atomic::AtomicU64,
    rebuilding: tokio::sync::Mutex<()>,
    generations: std::sync::atomic::AtomicU64,
    zones: RwLock<Arc<Zones>>,
    /// Set when an operator or merchant changed zones: the next page reloads them.
    zones_stale: std::sync::atomic::AtomicBool,
}

impl ViewerState {
    fn apply_parts(&mut self, kind: &str, item_type: &str, item_id: i64, watch_ms: i64) {
        // Follows come from the follow graph (the API and its table), not from client events:
        // an event cannot be taken back, an unfollow can.
        if item_type == "creator" {
            return;
        }
        let Some(item_type) = ItemType::parse(item_type) else { return };
        self.remember((item_type, item_id), kind == "purchase", action_weight(kind, watch_ms));
    }

    /// An action on `key` of interest `weight` (impressions teach nothing about interest).
    fn remember(&mut self, key: Key, purchase: bool, weight: f32) {
        if weight <= 0.0 {
            return;
        }
        self.version += 1;
        if purchase && key.0 == ItemType::Product && !self.purchased.contains(&key.1) {
            self.purchased.push(key.1);
            if self.purchased.len() > RECENT_MAX {
                self.purchased.remove(0);
            }
        }
        self.recent.retain(|(k, _)| *k != key);
        self.recent.push_back((key, weight));
        while self.recent.len() > RECENT_MAX {
            self.recent.pop_front();
        }
    }

    /// Content the viewer already watched (among what they did lately), as model items: it is
    /// not offered again.
    fn watched(&self, model: &Model) -> HashSet<u32> {
        self.recent
            .iter()
            .filter(|(key, _)| key.0 != ItemType::Product)
            .filter_map(|(key, _)| model.index.get(key).copied())
            .collect()
    }
}

fn viewer_of(event: &EventRow) -> Option<Viewer> {
    match (&event.user_id, &event.device_id) {
        (Some(user_id), _) => Some(Viewer::User(*user_id)),
        (None, Some(device)) => Some(Viewer::Device(device.clone())),
        _ => None,
    }
}

/// What an action counts towards in an item's predicted value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    Shown,
    Liked,
    Bought,
    Other,
}

impl ActionKind {
    pub fn of(kind: &str) -> Self {
        match kind {
            "impression" | "view" => ActionKind::Shown,
            "like" => ActionKind::Liked,
            "purchase" => ActionKind::Bought,
            _ => ActionKind::Other,
        }
    }
}

/// One interaction as the model learns from it: compact, so ten million fit in memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Action {
    /// The viewer's number in any dense numbering.
    pub viewer: u32,
    /// The item's position in the catalogue the model is built from.
    pub item: u32,
    pub kind: ActionKind,
    /// What it says about interest ([`action_weight`]; 0 for an impression).
    pub weight: f32,
    /// How long ago it happened, in days (trending halves with each).
    pub age_days: f32,
}

/// Item-to-item neighbours for items `range`: co-occurrence within viewers' latest items,
/// counted over at most `SAMPLE_VIEWERS` viewers of each item and scaled up, scored by cosine.
fn neighbours_of(
    range: std::ops::Range<usize>,
    latest: &[Vec<u32>],
    offsets: &[usize],
    holders: &[u32],
) -> Vec<Vec<(u32, f32)>> {
    const SAMPLE_VIEWERS: usize = 64;
    let n = offsets.len() - 1;
    let mut scratch = vec![0f32; n];
    let mut touched: Vec<u32> = Vec::new();
    let mut out = Vec::with_capacity(range.len());
    for i in range {
        let viewers = &holders[offsets[i]..offsets[i + 1]];
        let held = viewers.len() as f32;
        let sample = &viewers[..viewers.len().min(SAMPLE_VIEWERS)];
        let scale = held / sample.len().max(1) as f32;
        for &v in sample {
            for &j in &latest[v as usize] {
                if j as usize != i {
                    if scratch[j as usize] == 0.0 {
                        touched.push(j);
                    }
                    scratch[j as usize] += 1.0;
                }
            }
        }
        let mut list: Vec<(u32, f32)> = touched
            .iter()
            .map(|&j| {
                let held_j = (offsets[j as usize + 1] - offsets[j as usize]) as f32;
                (j, scratch[j as usize] * scale / (held * held_j).sqrt())
            })
            .collect();
        for &j in &touched {
            scratch[j as usize] = 0.0;
        }
        touched.clear();
        if list.len() > NEIGHBOURS {
            list.select_nth_unstable_by(NEIGHBOURS, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            list.truncate(NEIGHBOURS);
        }
        list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.push(list);
    }
    out
}

impl Model {
    /// The model of `catalog` (item `i` is `catalog[i]`) learned from `actions` (in the order
    /// they happened) of `n_viewers` viewers.
    pub fn build(catalog: Vec<CatalogItem>, actions: &[Action], n_viewers: usize, now_ms: i64) -> Model {
        let mut model = Model { built_at_ms: now_ms, ..Model::default() };
        let mut authors: HashMap<(bool, i64), u32> = HashMap::new();
        for c in catalog {
            let item_type = ItemType::parse(c.item_type).unwrap_or(ItemType::Product);
            let creator = item_type != ItemType::Product;
            let next = authors.len() as u32;
            let author = *authors.entry((creator, c.author_id)).or_insert(next);
            let at = model.items.len() as u32;
            model.index.insert((item_type, c.id), at);
            if creator {
                model.creator_items.entry(c.author_id).or_default().push(at);
            }
            model.items.push(Item {
                key: (item_type, c.id),
                author_id: c.author_id,
                author,
                title: c.title,
                created_at_ms: c.created_at_ms,
                farm: c.farm_specialty,
            });
        }
        let n = model.items.len();
        for list in model.creator_items.values_mut() {
            list.sort_by_key(|&i| std::cmp::Reverse(model.items[i as usize].created_at_ms));
        }

        // Per item what was done with it; per viewer their latest items.
        let (mut engaged, mut liked, mut bought, mut shown) =
            (vec![0f32; n], vec![0f32; n], vec![0f32; n], vec![0f32; n]);
        let mut latest: Vec<Vec<u32>> = vec![Vec::new(); n_viewers];
        for a in actions {
            let (i, v) = (a.item as usize, a.viewer as usize);
            if i >= n || v >= n_viewers {
                continue;
            }
            match a.kind {
                ActionKind::Shown => shown[i] += 1.0,
                ActionKind::Liked => liked[i] += 1.0,
                ActionKind::Bought => bought[i] += 1.0,
                ActionKind::Other => {}
            }
            if a.weight <= 0.0 {
                continue;
            }
            engaged[i] += a.weight * 0.5f32.powf(a.age_days.max(0.0));
            let list = &mut latest[v];
            if let Some(at) = list.iter().position(|&x| x == a.item) {
                list.remove(at);
            }
            list.push(a.item);
            if list.len() > COOCCUR_PER_USER {
                list.remove(0);
            }
        }
        model.value = (0..n)
            .map(|i| {
                let base = shown[i].max(liked[i] + bought[i]).max(1.0);
                1.0 + 2.0 * (liked[i] / base).min(1.0) + 5.0 * (bought[i] / base).min(1.0)
            })
            .collect();

        // Which viewers hold each item among their latest (compressed rows), then neighbours,
        // computed on two threads.
        let mut offsets = vec![0usize; n + 1];
        for list in &latest {
            for &i in list {
                offsets[i as usize + 1] += 1;
            }
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let mut holders = vec![0u32; offsets[n]];
        let mut fill = offsets.clone();
        for (v, list) in latest.iter().enumerate() {
            for &i in list {
                holders[fill[i as usize]] = v as u32;
                fill[i as usize] += 1;
            }
        }
        // EASE over the viewers' latest items, learned while the neighbours are counted.
        let histories: Vec<Vec<u32>> = latest
            .iter()
            .map(|list| {
                let mut history = list.clone();
                history.sort_unstable();
                history
            })
            .collect();
        let half = n / 2;
        let (neighbours, ease) = std::thread::scope(|scope| {
            let ease = scope.spawn(|| {
                use xingqu_feed::models::Recommender;
                let mut ease = xingqu_feed::models::Ease::new(EASE_LAMBDA, EASE_ITEMS);
                match ease.fit(&histories, n) {
                    Ok(()) => Some(ease),
                    Err(error) => {
                        tracing::warn!(%error, "EASE could not be fitted; the feed serves neighbours only");
                        None
                    }
                }
            });
            let first = scope.spawn(|| neighbours_of(0..half, &latest, &offsets, &holders));
            let mut second = neighbours_of(half..n, &latest, &offsets, &holders);
            let mut all = first.join().unwrap_or_else(|_| vec![Vec::new(); half]);
            all.append(&mut second);
            (all, ease.join().ok().flatten())
        });
        model.neighbours = neighbours;
        model.ease = ease;

        let mut trending: Vec<(u32, f32)> =
            engaged.iter().enumerate().filter(|(_, w)| **w > 0.0).map(|(i, w)| (i as u32, *w)).collect();
        if trending.len() > 200 {
            trending.select_nth_unstable_by(200, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            trending.truncate(200);
        }
        trending.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let top = trending.first().map_or(1.0, |t| t.1);
        model.trending = trending.into_iter().map(|(i, w)| (i, w / top)).collect();
        let mut fresh: Vec<u32> = (0..n as u32)
            .filter(|&i| {
                let held = offsets[i as usize + 1] - offsets[i as usize];
                now_ms - model.items[i as usize].created_at_ms < FRESH_MS && held < 5
            })
            .collect();
        fresh.sort_by_key(|&i| std::cmp::Reverse(model.items[i as usize].created_at_ms));
        fresh.truncate(500);
        model.fresh = fresh;
        let mut newest: Vec<u32> = (0..n as u32).collect();
        if newest.len() > 500 {
            newest.select_nth_unstable_by_key(500, |&i| std::cmp::Reverse(model.items[i as usize].created_at_ms));
            newest.truncate(500);
        }
        newest.sort_by_key(|&i| std::cmp::Reverse(model.items[i as usize].created_at_ms));
        model.newest = newest;
        model
    }
}

/// A session's cursor: `{session}.{page}` in hex and decimal.
fn parse_cursor(raw: &str) -> Option<(u64, u32)> {
    let (session, page) = raw.split_once('.')?;
    Some((u64::from_str_radix(session, 16).ok()?, page.parse().ok()?))
}

impl FeedService {
    fn model(&self) -> Arc<Model> {
        self.model.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn zones(&self) -> Arc<Zones> {
        self.zones.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A zone, its rule or target, or an approved entry changed: the next page reloads them.
    pub(crate) fn zones_changed(&self) {
        self.zones_stale.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// An item taken down: never shown again, even before the next rebuild.
    pub(crate) fn block(&self, item_type: &str, id: i64) {
        if let Some(item_type) = ItemType::parse(item_type) {
            let order = self.blocks_placed.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            self.blocked.lock().unwrap_or_else(|p| p.into_inner()).insert((item_type, id), order);
        }
    }

    /// A batch just stored with ids from `first_id` on, in order: the viewers' next pages see it.
    pub async fn observe_new(&self, events: &[xingqu_store::events::NewEvent], first_id: i64) {
        let mut viewers = self.viewers.write().await;
        if !viewers.loaded {
            return;
        }
        let through = viewers.through_event_id;
        let last_id = first_id + events.len() as i64 - 1;
        if last_id > through {
            viewers.own.insert(first_id.max(through + 1), last_id);
        }
        for (offset, event) in events.iter().enumerate() {
            if first_id + offset as i64 <= through {
                continue;
            }
            let viewer = match (&event.user_id, &event.device_id) {
                (Some(user_id), _) => Viewer::User(*user_id),
                (None, Some(device)) => Viewer::Device(device.clone()),
                _ => continue,
            };
            viewers.learn(viewer, event.kind, event.item_type, event.item_id, event.watch_ms, event.occurred_at_ms);
        }
    }

    /// A follow or unfollow just stored: the follower's next page shows it.
    pub(crate) async fn follow(&self, user_id: i64, creator_user_id: i64, following: bool) {
        let mut viewers = self.viewers.write().await;
        if !viewers.loaded {
            return;
        }
        let state = viewers.states.entry(Viewer::User(user_id)).or_default();
        state.version += 1;
        if following {
            state.follows.insert(creator_user_id);
        } else {
            state.follows.remove(&creator_user_id);
        }
    }

    /// New content (a video published, a live session on air): the model is rebuilt in the
    /// background, so followers see it within moments rather than at the next scheduled rebuild.
    pub(crate) fn rebuild_soon(&self, app: &App) {
        let app = app.clone();
        tokio::spawn(async move {
            if let Err(error) = app.rebuild_feed().await {
                tracing::warn!(%error, "the feed could not add new content; the next rebuild will");
            }
        });
    }

    /// Installs a model and viewers' histories learned from `actions` on `catalog` by
    /// `viewers` (an action's `viewer` is a position in it), with their `follows`: for
    /// benchmarks and imports that do not come through the store. Events ingested afterwards
    /// are added as usual.
    pub async fn install(
        &self,
        catalog: Vec<CatalogItem>,
        actions: &[Action],
        viewers: &[Viewer],
        follows: &[(u32, i64)],
        now_ms: i64,
    ) {
        let keys: Vec<Key> =
            catalog.iter().map(|c| (ItemType::parse(c.item_type).unwrap_or(ItemType::Product), c.id)).collect();
        let model = Model::build(catalog, actions, viewers.len(), now_ms);
        let mut states: Vec<ViewerState> = (0..viewers.len()).map(|_| ViewerState::default()).collect();
        for a in actions {
            if let (Some(state), Some(key)) = (states.get_mut(a.viewer as usize), keys.get(a.item as usize)) {
                state.remember(*key, a.kind == ActionKind::Bought, a.weight);
            }
        }
        for &(viewer, creator) in follows {
            if let Some(state) = states.get_mut(viewer as usize) {
                state.follows.insert(creator);
            }
        }
        let mut loaded = self.viewers.write().await;
        loaded.log = actions
            .iter()
            .filter_map(|a| {
                Some(Logged {
                    viewer: a.viewer,
                    key: *keys.get(a.item as usize)?,
                    kind: a.kind,
                    weight: a.weight,
                    at_ms: now_ms - (a.age_days * 86_400_000.0) as i64,
                })
            })
            .collect();
        loaded.numbers = viewers.iter().cloned().enumerate().map(|(i, v)| (v, i as u32)).collect();
        loaded.states = viewers.iter().cloned().zip(states).collect();
        loaded.through_event_id = 0;
        loaded.loaded = true;
        drop(loaded);
        self.swap_in(model);
    }

    fn swap_in(&self, mut model: Model) {
        model.generation = self.generations.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        *self.model.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(model);
    }

    /// The delivered share of each traffic-support programme so far: (name, target, delivered).
    pub fn exposure(&self) -> (u64, Vec<(String, f64, f64)>) {
        let zones = self.zones();
        let exposure = self.exposure.lock().unwrap_or_else(|p| p.into_inner());
        let programmes = rules(&HashMap::new(), &zones)
            .supports
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), s.target_share, exposure.share(i)))
            .collect();
        (exposure.total, programmes)
    }
}

/// Re-ranking rules: the farm-specialty programme and one per running campaign zone with a
/// traffic target, two items per author at most, creator grades (the governance work fills them
/// in; until then every grade is 1).
fn rules(grade_multiplier: &HashMap<u32, f32>, zones: &Zones) -> Rules {
    let mut supports =
        vec![TrafficSupport { name: "farm_specialties".to_owned(), bit: 0, target_share: FARM_TARGET_SHARE }];
    supports.extend(zones.programmes.iter().enumerate().map(|(i, (name, target_share))| TrafficSupport {
        name: format!("zone:{name}"),
        bit: i as u32 + 1,
        target_share: *target_share,
    }));
    Rules { supports, max_per_author: 2, grade_multiplier: grade_multiplier.clone() }
}

/// The log as the model learns it from `catalog` (items it no longer shows are left out), and
/// how many viewers it numbers.
fn actions_from_log(catalog: &[CatalogItem], log: &[Arc<Vec<Logged>>], now_ms: i64) -> Vec<Action> {
    let index: HashMap<Key, u32> = catalog
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some(((ItemType::parse(c.item_type)?, c.id), i as u32)))
        .collect();
    log.iter()
        .flat_map(|chunk| chunk.iter())
        .filter_map(|l| {
            Some(Action {
                viewer: l.viewer,
                item: *index.get(&l.key)?,
                kind: l.kind,
                weight: l.weight,
                age_days: (now_ms - l.at_ms) as f32 / 86_400_000.0,
            })
        })
        .collect()
}

impl App {
    /// Rebuilds the feed's model from the store (and, the first time, the viewers' histories).
    pub async fn rebuild_feed(&self) -> AppResult<()> {
        let feed = self.feed();
        let _one_at_a_time = feed.rebuilding.lock().await;
        if !feed.viewers.read().await.loaded {
            // The first time, the log is read from the store under the write lock (ingests wait
            // for it, then apply only what is newer) into a fresh copy that replaces the empty
            // one only when complete: a failed load leaves nothing half-counted.
            let mut viewers = feed.viewers.write().await;
            if !viewers.loaded {
                let mut loaded = Viewers::default();
                let mut after_id = 0;
                loop {
                    let page = self.store().events_after(after_id, LOAD_PAGE).await?;
                    let Some(last) = page.last() else { break };
                    after_id = last.id;
                    for event in page {
                        if let Some(viewer) = viewer_of(&event) {
                            let EventRow { kind, item_type, item_id, watch_ms, occurred_at_ms, .. } = event;
                            loaded.learn(viewer, &kind, &item_type, item_id, watch_ms, occurred_at_ms);
                        }
                    }
                }
                // The follow graph is the store's table (follows made through the API).
                for (follower, creator) in self.store().all_follows().await? {
                    loaded.states.entry(Viewer::User(follower)).or_default().follows.insert(creator);
                }
                loaded.through_event_id = after_id;
                loaded.loaded = true;
                *viewers = loaded;
            }
        }
        let blocks_before = feed.blocks_placed.load(std::sync::atomic::Ordering::SeqCst);
        let catalog = self.store().feed_catalog().await?;
        let now_ms = self.now_ms();
        // Under the lock the log's full chunks are only shared (the open one is copied); the
        // actions and the model are worked out off the async workers, so pages and ingests go on.
        let (log, n_viewers) = {
            let viewers = feed.viewers.read().await;
            (viewers.log.snapshot(), viewers.numbers.len())
        };
        let model = tokio::task::spawn_blocking(move || {
            let actions = actions_from_log(&catalog, &log, now_ms);
            Model::build(catalog, &actions, n_viewers, now_ms)
        })
        .await
        .map_err(|e| AppError::internal(format!("learning the feed's model failed: {e}")))?;
        feed.swap_in(model);
        feed.blocked.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, order| *order > blocks_before);
        Ok(())
    }

    /// Learns what other nodes appended to the log since this node last looked (each node learns
    /// its own appends as it makes them): the timers call this every second. Returns the events
    /// learned. The store is read outside the lock; what this node learned meanwhile is skipped.
    pub async fn tail_feed(&self) -> AppResult<usize> {
        let feed = self.feed();
        let mut learned = 0;
        for _ in 0..TAIL_PAGES_MAX {
            let after_id = {
                let mut viewers = feed.viewers.write().await;
                if !viewers.loaded {
                    return Ok(learned);
                }
                viewers.skip_own();
                viewers.through_event_id
            };
            let page = self.store().events_after(after_id, LOAD_PAGE).await?;
            let Some(last_id) = page.last().map(|e| e.id) else { break };
            let full = page.len() == LOAD_PAGE as usize;
            let mut viewers = feed.viewers.write().await;
            for event in page {
                if event.id <= viewers.through_event_id || viewers.is_own(event.id) {
                    continue;
                }
                if let Some(viewer) = viewer_of(&event) {
                    let EventRow { kind, item_type, item_id, watch_ms, occurred_at_ms, .. } = event;
                    viewers.learn(viewer, &kind, &item_type, item_id, watch_ms, occurred_at_ms);
                    learned += 1;
                }
            }
            viewers.through_event_id = viewers.through_event_id.max(last_id);
            let through = viewers.through_event_id;
            viewers.own.retain(|_, last| *last > through);
            if !full {
                break;
            }
        }
        Ok(learned)
    }

    /// Starts a rebuild in the background when the model is older than [`RETRAIN_MS`] and none
    /// is running (the timers call this, and must not wait for it).
    pub async fn retrain_feed_if_due(&self) -> AppResult<bool> {
        let feed = self.feed();
        let loaded = feed.viewers.read().await.loaded;
        if (loaded && self.now_ms() - feed.model().built_at_ms < RETRAIN_MS) || feed.rebuilding.try_lock().is_err() {
            return Ok(false);
        }
        let app = self.clone();
        tokio::spawn(async move {
            if let Err(error) = app.rebuild_feed().await {
                tracing::warn!(%error, "rebuilding the feed failed; the timers will try again");
            }
        });
        Ok(true)
    }

    /// Reloads the running campaigns' zones when they changed or the copy is old. A new set of
    /// programmes starts its exposure accounting afresh (shares of the old ones no longer apply).
    async fn refresh_zones(&self, now_ms: i64) -> Arc<Zones> {
        let feed = self.feed();
        let current = feed.zones();
        // Read first: pages mostly find nothing changed, and a read does not contend like a swap.
        let stale = feed.zones_stale.load(std::sync::atomic::Ordering::SeqCst)
            && feed.zones_stale.swap(false, std::sync::atomic::Ordering::SeqCst);
        if !stale && current.generation > 0 && now_ms - current.loaded_at_ms < ZONES_TTL_MS {
            return current;
        }
        let live = match self.store().live_zones(now_ms).await {
            Ok(live) => live,
            Err(error) => {
                // A page is still served, with the zones last read; the next page tries again.
                tracing::warn!(%error, "the feed could not read the campaign zones; it keeps the last ones");
                feed.zones_stale.store(true, std::sync::atomic::Ordering::SeqCst);
                return current;
            }
        };
        let mut zones = Zones { loaded_at_ms: now_ms, generation: current.generation + 1, ..Zones::default() };
        for zone in live {
            let bit = if zone.traffic_target_bp > 0 && zones.programmes.len() + 1 < PROGRAMMES_MAX {
                zones.programmes.push((zone.name.clone(), zone.traffic_target_bp as f64 / 10_000.0));
                1u32 << zones.programmes.len()
            } else {
                0
            };
            for &product_id in &zone.product_ids {
                *zones.bits.entry(product_id).or_default() |= bit;
            }
            zones.products.push(zone.product_ids);
        }
        if zones.programmes != current.programmes {
            *feed.exposure.lock().unwrap_or_else(|p| p.into_inner()) = Exposure::default();
        }
        let zones = Arc::new(zones);
        *feed.zones.write().unwrap_or_else(|p| p.into_inner()) = zones.clone();
        zones
    }

    /// A page of the feed for `viewer`. `cursor` continues a session (no item twice in it).
    pub async fn feed_page(&self, viewer: &Viewer, cursor: Option<&str>, limit: usize) -> AppResult<FeedPage> {
        if !(1..=PAGE_MAX).contains(&limit) {
            return Err(AppError::invalid("limit", "out_of_range", format!("1 to {PAGE_MAX}")));
        }
        let cursor = match cursor {
            Some(raw) => Some(
                parse_cursor(raw).ok_or_else(|| AppError::invalid("cursor", "invalid_cursor", "not a feed cursor"))?,
            ),
            None => None,
        };
        if !self.feed().viewers.read().await.loaded {
            self.rebuild_feed().await?;
        }
        let now_ms = self.now_ms();
        let zones = self.refresh_zones(now_ms).await;
        let feed = self.feed();
        let (session_id, page, seen, cached) = {
            let mut sessions = feed.sessions.lock().unwrap_or_else(|p| p.into_inner());
            match cursor.and_then(|(id, page)| Some((id, page, sessions.get_mut(&id)?))) {
                Some((id, page, session)) if session.page == page && session.viewer == *viewer => {
                    session.touched_ms = now_ms;
                    (id, page, session.seen.clone(), session.pool.clone())
                }
                // No cursor, or one that expired, was replayed or is someone else's: a new
                // session, under an id nobody can guess.
                _ => (rand::random::<u64>(), 0, Vec::new(), None),
            }
        };
        let model = feed.model();
        let blocked = feed.blocked.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // The viewer's state is copied out (a few dozen entries) so ingests, which take the lock
        // to write, never wait for a page's scoring, nor pages for each other's.
        let state = feed.viewers.read().await.states.get(viewer).cloned().unwrap_or_default();
        let state = &state;
        let pool = match cached.filter(|p| {
            p.version == state.version && p.generation == model.generation && p.zones_generation == zones.generation
        }) {
            Some(pool) => pool,
            None => Arc::new(Pool {
                version: state.version,
                generation: model.generation,
                zones_generation: zones.generation,
                scored: candidates_for(&model, &zones, state, session_id),
            }),
        };
        let mut seen_index: Vec<u32> = seen.iter().filter_map(|k| model.index.get(k).copied()).collect();
        seen_index.sort_unstable();
        let watched = state.watched(&model);
        let candidates: Vec<Candidate> = pool
            .scored
            .iter()
            .map(|c| {
                let item = &model.items[c.item as usize];
                Candidate {
                    item: c.item,
                    score: c.relevance * model.value[c.item as usize],
                    author: item.author,
                    support_bits: u32::from(item.farm)
                        | if item.key.0 == ItemType::Product {
                            zones.bits.get(&item.key.1).copied().unwrap_or(0)
                        } else {
                            0
                        },
                    blocked: watched.contains(&c.item) || (!blocked.is_empty() && blocked.contains_key(&item.key)),
                }
            })
            .collect();
        let rules = rules(&HashMap::new(), &zones);
        let ranked = {
            let mut exposure = feed.exposure.lock().unwrap_or_else(|p| p.into_inner());
            rerank(&candidates, &rules, &seen_index, limit, &mut exposure)
        };
        let items: Vec<FeedItem> = ranked
            .into_iter()
            .map(|r| {
                let item = &model.items[r.item as usize];
                let bits = pool.scored.iter().find(|c| c.item == r.item).map_or(0, |c| c.sources);
                let mut reasons: Vec<String> = SOURCES
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| bits & (1 << i) != 0)
                    .map(|(_, name)| (*name).to_owned())
                    .collect();
                for reason in r.reasons {
                    match reason {
                        Reason::Model => {}
                        Reason::CreatorGrade(multiplier) => reasons.push(format!("creator_grade:{multiplier}")),
                        Reason::TrafficSupport(name) => reasons.push(format!("traffic_support:{name}")),
                    }
                }
                FeedItem {
                    item_type: item.key.0,
                    id: item.key.1,
                    title: item.title.clone(),
                    author_id: item.author_id,
                    score: r.score,
                    reasons,
                }
            })
            .collect();
        let mut sessions = feed.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let page = page.saturating_add(1);
        let mut seen = seen;
        seen.extend(items.iter().map(|i| (i.item_type, i.id)));
        let session = Session { viewer: viewer.clone(), seen, page, touched_ms: now_ms, pool: Some(pool) };
        sessions.insert(session_id, session);
        if sessions.len() > SESSIONS_MAX {
            // Idle sessions go first; if that is not enough, the least recently used half.
            sessions.retain(|_, s| now_ms - s.touched_ms < SESSION_IDLE_MS);
            if sessions.len() > SESSIONS_MAX {
                let mut touched: Vec<i64> = sessions.values().map(|s| s.touched_ms).collect();
                let middle = touched.len() / 2;
                let median = *touched.select_nth_unstable(middle).1;
                sessions.retain(|_, s| s.touched_ms > median);
            }
        }
        Ok(FeedPage { items, next_cursor: format!("{session_id:x}.{page}") })
    }
}

/// Candidates a pool holds at least when the sources find fewer.
const COLD_START_POOL: usize = 100;

/// Every candidate source for a viewer, scored (relevance, before predicted value) with the
/// sources that put each item there.
fn candidates_for(model: &Model, zones: &Zones, state: &ViewerState, session_id: u64) -> Vec<Scored> {
    let mut scored: Vec<Scored> = Vec::with_capacity(512);
    let mut at: HashMap<u32, usize> = HashMap::with_capacity(512);
    let mut add = |i: u32, relevance: f32, source: u8| match at.get(&i) {
        Some(&k) => {
            scored[k].relevance += relevance;
            scored[k].sources |= source;
        }
        None => {
            at.insert(i, scored.len());
            scored.push(Scored { item: i, relevance, sources: source });
        }
    };
    // Followed creators: their newest content, live sessions first.
    for creator in &state.follows {
        for (rank, &i) in model.creator_items.get(creator).into_iter().flatten().take(10).enumerate() {
            let live = model.items[i as usize].key.0 == ItemType::LiveSession;
            add(i, if live { 1.2 } else { 1.0 / (1.0 + rank as f32 * 0.2) }, FOLLOWED);
        }
    }
    // Similar to what the viewer engaged with, most recent weighing most: EASE over the
    // items it models, co-occurrence neighbours for the rest.
    let recent = state.recent.len();
    if let Some(ease) = &model.ease {
        let (mut history, mut weights) = (Vec::new(), Vec::new());
        for (age, (key, _)) in state.recent.iter().rev().enumerate() {
            if let Some(&i) = model.index.get(key) {
                history.push(i);
                weights.push(RECENCY_FLOOR + (1.0 - RECENCY_FLOOR) * 0.5f32.powf(age as f32 / RECENCY_HALF_LIFE));
            }
        }
        let top = ease.top(&history, &weights, 100);
        let best = top.first().map_or(1.0, |t| t.1);
        for (j, score) in top {
            add(j, score / best, SIMILAR);
        }
    }
    for (age, (key, weight)) in state.recent.iter().rev().enumerate().take(20) {
        let Some(&i) = model.index.get(key) else { continue };
        let recency = 1.0 / (1.0 + age as f32 * 0.1);
        for &(j, similarity) in &model.neighbours[i as usize] {
            add(j, similarity * weight.min(5.0) / 5.0 * recency, SIMILAR);
        }
    }
    for product_id in &state.purchased {
        if let Some(&i) = model.index.get(&(ItemType::Product, *product_id)) {
            add(i, 0.4, BUY_AGAIN);
        }
    }
    // Trending carries more weight for a viewer we know little about (cold start).
    let trending_weight = if recent < 5 { 0.8 } else { 0.3 };
    for &(i, score) in model.trending.iter().take(100) {
        add(i, score * trending_weight, TRENDING);
    }
    // Campaign zones: a few products of each running zone, different ones per session.
    let mut rng = xingqu_domain::rng::SplitMix64::new(session_id ^ 0x5a5a_5a5a);
    for products in &zones.products {
        for _ in 0..ZONE_PICKS.min(products.len()) {
            let product_id = products[(rng.next_u64() % products.len() as u64) as usize];
            if let Some(&i) = model.index.get(&(ItemType::Product, product_id)) {
                add(i, 0.3, CAMPAIGN_ZONE);
            }
        }
    }
    // Exploration: a few new items, different ones per session.
    if !model.fresh.is_empty() {
        let mut rng = xingqu_domain::rng::SplitMix64::new(session_id);
        for _ in 0..3.min(model.fresh.len()) {
            let pick = model.fresh[(rng.next_u64() % model.fresh.len() as u64) as usize];
            add(pick, 0.25, EXPLORATION);
        }
    }
    // Cold start (a new viewer, a young log): new items fill the pool so a page is never short.
    for &i in model.fresh.iter().chain(&model.newest) {
        if scored.len() >= COLD_START_POOL {
            break;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = at.entry(i) {
            slot.insert(scored.len());
            scored.push(Scored { item: i, relevance: 0.05, sources: EXPLORATION });
        }
    }
    scored
}
