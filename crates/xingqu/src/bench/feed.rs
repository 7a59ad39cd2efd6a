//! `xingqu bench feed`: the interest feed at scale. A synthetic marketplace (users with a few
//! interests each, items whose popularity is Zipf-skewed within their topic, creators and shops
//! as authors, one in ten items a farm specialty) is learned in memory; then the server answers
//! feeds over HTTP to `clients` keep-alive connections offering `rate` pages per second in all
//! (open loop: latency counts from when each request was due, so a slow server cannot hide by
//! sending fewer), while events are appended durably in batches and reach the viewers' feeds.

use super::percentile;
use anyhow::Context;
use clap::Args;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xingqu_app::App;
use xingqu_app::clock::SystemClock;
use xingqu_app::feed::{Action, ActionKind, Viewer};
use xingqu_domain::rng::SplitMix64;
use xingqu_store::content::CatalogItem;
use xingqu_store::events::NewEvent;

#[derive(Args, Debug)]
pub struct FeedArgs {
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    #[arg(long, default_value_t = 200_000)]
    items: usize,
    #[arg(long, default_value_t = 10_000_000)]
    interactions: usize,
    /// Keep-alive connections asking for feeds.
    #[arg(long, default_value_t = 1_000)]
    clients: usize,
    /// Feed pages per second offered by all clients together.
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    /// Seconds of serving (and ingesting).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Events per durable batch.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Events per second appended while pages are served (then, alone, as fast as they go). The
    /// default is the ingest target, so the page latencies are measured under it.
    #[arg(long, default_value_t = 100_000)]
    ingest_rate: u64,
    /// Print one JSON object with the figures as the last line.
    #[arg(long)]
    json: bool,
}

const TOPICS: usize = 1_000;
const KINDS: [(&str, f32); 6] = [
    ("view", 0.55),
    ("like", 0.15),
    ("product_click", 0.12),
    ("share", 0.05),
    ("add_to_cart", 0.08),
    ("purchase", 0.05),
];

/// The synthetic marketplace: who likes what, and the items.
struct World {
    catalog: Vec<CatalogItem>,
    /// Items of each topic, most popular first.
    by_topic: Vec<Vec<u32>>,
    /// Each user's interests.
    interests: Vec<[u16; 3]>,
    /// Zipf CDF over an item's rank within its topic.
    rank_cdf: Vec<f64>,
}

impl World {
    fn new(users: usize, items: usize, now_ms: i64) -> World {
        let mut rng = SplitMix64::new(0xFEED_2026);
        let mut catalog = Vec::with_capacity(items);
        let mut by_topic = vec![Vec::new(); TOPICS];
        for i in 0..items {
            // Three in four items are products, most of the rest videos, a few live sessions.
            let share = i % 100;
            let (item_type, author_id) = match share {
                0..75 => ("product", 1 + (i % 10_000) as i64),
                75..98 => ("video", 100_000 + (i % 5_000) as i64),
                _ => ("live_session", 100_000 + (i % 5_000) as i64),
            };
            catalog.push(CatalogItem {
                item_type,
                id: i as i64 + 1,
                author_id,
                title: format!("{item_type} {i}"),
                created_at_ms: now_ms - (rng.below(60) as i64) * 86_400_000,
                farm_specialty: rng.below(10) == 0,
            });
            by_topic[rng.below(TOPICS)].push(i as u32);
        }
        let interests = (0..users)
            .map(|_| [rng.below(TOPICS) as u16, rng.below(TOPICS) as u16, rng.below(TOPICS) as u16])
            .collect();
        let per_topic = by_topic.iter().map(Vec::len).max().unwrap_or(1);
        let mut rank_cdf = Vec::with_capacity(per_topic);
        let mut total = 0.0;
        for rank in 1..=per_topic {
            total += 1.0 / (rank as f64).powf(1.05);
            rank_cdf.push(total);
        }
        for value in &mut rank_cdf {
            *value /= total;
        }
        World { catalog, by_topic, interests, rank_cdf }
    }

    /// One interaction of `user`: an item of one of their interests, and what they did.
    fn action(&self, rng: &mut SplitMix64, user: usize) -> (u32, &'static str) {
        let topic = &self.by_topic[self.interests[user][rng.below(3)] as usize];
        let uniform = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let rank = self.rank_cdf[..topic.len().max(1)]
            .partition_point(|&c| c < uniform * self.rank_cdf[topic.len().max(1) - 1]);
        let item = topic.get(rank.min(topic.len().saturating_sub(1))).copied().unwrap_or(0);
        let mut pick = (rng.next_u64() >> 11) as f32 / (1u64 << 53) as f32;
        for (kind, share) in KINDS {
            if pick < share {
                return (item, kind);
            }
            pick -= share;
        }
        (item, "view")
    }
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .map_or(0.0, |kb: f64| kb / 1024.0)
}

pub async fn run(args: FeedArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.users > 0 && args.items > 0 && args.clients > 0 && args.rate > 0, "sizes must be positive");
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let started = Instant::now();
    let world = World::new(args.users, args.items, now_ms);
    let mut rng = SplitMix64::new(7);
    let mut actions = Vec::with_capacity(args.interactions);
    for _ in 0..args.interactions {
        let user = rng.below(args.users);
        let (item, kind) = world.action(&mut rng, user);
        actions.push(Action {
            viewer: user as u32,
            item,
            kind: ActionKind::of(kind),
            weight: xingqu_app::feed::action_weight(kind, 20_000),
            age_days: rng.below(30) as f32,
        });
    }
    let viewers: Vec<Viewer> = (0..args.users).map(|u| Viewer::Device(format!("d{u}"))).collect();
    // Each user follows three creators.
    let follows: Vec<(u32, i64)> = (0..args.users as u32)
        .flat_map(|u| (0..3).map(move |k| (u, 100_000 + ((u as i64 * 7 + k * 131) % 5_000))))
        .collect();
    let generated_s = started.elapsed().as_secs_f64();
    eprintln!(
        "feed: {} users, {} items, {} interactions generated in {generated_s:.1} s",
        args.users, args.items, args.interactions
    );

    let dir = tempfile::tempdir()?;
    let store = xingqu_store::connect(&format!("sqlite://{}", dir.path().join("feed.db").display())).await?;
    store.migrate().await?;
    let app = App::new(store.clone(), Arc::new(SystemClock), xingqu_app::AppConfig::default());
    let training = Instant::now();
    app.feed().install(world.catalog.clone(), &actions, &viewers, &follows, now_ms).await;
    let train_s = training.elapsed().as_secs_f64();
    drop(actions);
    eprintln!("feed: model learned in {train_s:.1} s, resident {:.0} MB", rss_mb());

    // What one page costs to compute, in-process and one at a time (no HTTP, no queueing).
    let mut compute_ms = Vec::with_capacity(5_000);
    let mut rng = SplitMix64::new(3);
    for _ in 0..5_000 {
        let viewer = Viewer::Device(format!("d{}", rng.below(args.users)));
        let began = Instant::now();
        app.feed_page(&viewer, None, 10).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        compute_ms.push(began.elapsed().as_secs_f64() * 1000.0);
    }
    compute_ms.sort_by(f64::total_cmp);
    let (compute_p50, compute_p99) = (percentile(&compute_ms, 0.50), percentile(&compute_ms, 0.99));
    eprintln!("feed: a first page computes in {compute_p50:.3} ms (p50), {compute_p99:.3} ms (p99)");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let router = xingqu_http::router(app.clone(), xingqu_http::HttpConfig::default())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(xingqu_http::serve(listener, router, async {
        let _ = stopped.await;
    }));

    // While pages are served, events arrive at `ingest_rate`, appended durably in batches and
    // handed to the feed; afterwards, alone, as fast as they go.
    let run_for = Duration::from_secs(args.seconds);
    let paced = (args.users, args.batch, Some(args.ingest_rate), run_for, now_ms);
    let ingesting = tokio::spawn(ingest(app.clone(), world.catalog.clone(), paced));
    let (latencies_ms, served, errors, serve_s) = serve_load(&address, &args, run_for).await?;
    let (paced_events, paced_s) = ingesting.await??;
    let _ = stop.send(());
    let _ = server.await;
    let alone = (args.users, args.batch, None, run_for, now_ms);
    let (events, ingest_s) = ingest(app.clone(), world.catalog.clone(), alone).await?;
    let mut sorted = latencies_ms;
    sorted.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&sorted, 0.50), percentile(&sorted, 0.99));
    let feeds_per_s = served as f64 / serve_s;
    let events_per_s = events as f64 / ingest_s;
    let (impressions, programmes) = app.feed().exposure();
    let rss = rss_mb();
    println!();
    println!(
        "feed: {} users, {} items, {} interactions; model learned in {train_s:.1} s; resident {rss:.0} MB",
        args.users, args.items, args.interactions
    );
    println!(
        "pages: {served} served to {} connections offering {} pages/s: {feeds_per_s:.0} pages/s, p50 {p50:.2} ms, \
         p99 {p99:.2} ms, {errors} errors",
        args.clients, args.rate
    );
    println!(
        "events: {paced_events} appended durably while serving ({:.0} events/s, {} offered); alone, in batches of {}: \
         {events_per_s:.0} events/s",
        paced_events as f64 / paced_s,
        args.ingest_rate,
        args.batch
    );
    for (name, target, delivered) in &programmes {
        println!("traffic support {name}: target {target:.2}, delivered {delivered:.3} of {impressions} impressions");
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "feed_p50_ms": p50,
                "feed_p99_ms": p99,
                "feeds_per_s": feeds_per_s,
                "offered_feeds_per_s": args.rate,
                "clients": args.clients,
                "events_per_s": events_per_s,
                "events_per_s_while_serving": paced_events as f64 / paced_s,
                "rss_mb": rss,
                "train_s": train_s,
                "page_compute_p50_ms": compute_p50,
                "page_compute_p99_ms": compute_p99,
                "users": args.users,
                "items": args.items,
                "interactions": args.interactions,
                "errors": errors,
            })
        );
    }
    Ok(())
}

/// Appends synthetic events durably in batches and hands each batch to the feed, for `run_for`,
/// at `rate` events per second (`None`: as fast as they go). Returns the events appended and the
/// seconds it took.
async fn ingest(
    app: App,
    catalog: Vec<CatalogItem>,
    (users, batch, rate, run_for, now_ms): (usize, usize, Option<u64>, Duration, i64),
) -> anyhow::Result<(u64, f64)> {
    let batch = batch.max(1);
    let mut rng = SplitMix64::new(11);
    let began = tokio::time::Instant::now();
    let mut appended = 0u64;
    while began.elapsed() < run_for {
        if let Some(rate) = rate.filter(|&r| r > 0) {
            tokio::time::sleep_until(began + Duration::from_secs_f64(appended as f64 / rate as f64)).await;
        }
        let events: Vec<NewEvent> = (0..batch)
            .map(|_| {
                let item = &catalog[rng.below(catalog.len())];
                NewEvent {
                    user_id: None,
                    device_id: Some(format!("d{}", rng.below(users))),
                    kind: if item.item_type == "product" { "product_click" } else { "view" },
                    item_type: item.item_type,
                    item_id: item.id,
                    watch_ms: 15_000,
                    occurred_at_ms: now_ms,
                }
            })
            .collect();
        let (first_id, _) = app.store().append_events(&events, now_ms).await.context("append events")?;
        app.feed().observe_new(&events, first_id).await;
        appended += events.len() as u64;
    }
    Ok((appended, began.elapsed().as_secs_f64()))
}

/// The feed load on its own thread and runtime (so it does not share the server's worker
/// threads): `clients` connections, each asking for a page when it is due and following its
/// session's cursor for five pages before starting another. Returns the latencies (from when
/// each request was due), pages served, errors and seconds.
async fn serve_load(address: &str, args: &FeedArgs, run_for: Duration) -> anyhow::Result<(Vec<f64>, u64, u64, f64)> {
    let (address, clients, rate, users) = (address.to_owned(), args.clients, args.rate, args.users);
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(anyhow::Error::from).and_then(
                |runtime| {
                    runtime.block_on(async move {
                        let period = Duration::from_secs_f64(clients as f64 / rate as f64);
                        let mut connections = Vec::with_capacity(clients);
                        for _ in 0..clients {
                            connections.push(super::Connection::open(&address).await?);
                        }
                        let began = tokio::time::Instant::now();
                        let mut tasks = Vec::with_capacity(clients);
                        for (c, mut connection) in connections.into_iter().enumerate() {
                            tasks.push(tokio::spawn(async move {
                                let mut rng = SplitMix64::new(c as u64 + 1);
                                let (mut latencies, mut errors) = (Vec::new(), 0u64);
                                let offset = period.mul_f64(c as f64 / clients as f64);
                                let (mut due, mut cursor, mut pages) = (began + offset, String::new(), 0);
                                let mut device = rng.below(users);
                                while due - began < run_for {
                                    tokio::time::sleep_until(due).await;
                                    if pages % 5 == 0 {
                                        device = rng.below(users);
                                        cursor.clear();
                                    }
                                    let query = if cursor.is_empty() {
                                        format!("/v1/feed?limit=10&device_id=d{device}")
                                    } else {
                                        format!("/v1/feed?limit=10&device_id=d{device}&cursor={cursor}")
                                    };
                                    let request = format!("GET {query} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
                                    match connection.round_trip(request.as_bytes()).await {
                                        Ok((200, body)) => {
                                            latencies.push(due.elapsed().as_secs_f64() * 1000.0);
                                            cursor = serde_json::from_slice::<serde_json::Value>(&body)
                                                .ok()
                                                .and_then(|v| v["next_cursor"].as_str().map(str::to_owned))
                                                .unwrap_or_default();
                                        }
                                        _ => errors += 1,
                                    }
                                    pages += 1;
                                    due += period;
                                }
                                (latencies, errors)
                            }));
                        }
                        let (mut all, mut errors) = (Vec::new(), 0);
                        for task in tasks {
                            let (latencies, e) = task.await?;
                            all.extend(latencies);
                            errors += e;
                        }
                        let served = all.len() as u64;
                        anyhow::Ok((all, served, errors, began.elapsed().as_secs_f64()))
                    })
                },
            );
        let _ = sender.send(result);
    });
    receiver.await.map_err(|_| anyhow::anyhow!("the load thread stopped"))?
}
