//! `xingqu bench price-protection`: a price cut in automatic mode over a store of millions of
//! orders — the time until every protection payment is durably recorded (with its ledger
//! posting), a re-run that must pay nothing, and order placement's p99 during the sweep against
//! idle — and, in the same database, the peer: one hand-written set-based
//! `INSERT … SELECT … ON CONFLICT DO NOTHING`.

use super::{drop_schema, percentile, postgres_schema_url};
use anyhow::{Context, bail};
use clap::Args;
use sqlx::{AnyPool, ConnectOptions, Executor};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use xingqu_app::clock::SystemClock;
use xingqu_app::coupons::redeem::CouponChoice;
use xingqu_app::orders::{AddressInput, CartLineInput};
use xingqu_app::products::SkuInput;
use xingqu_app::scenario::ProtectionScenario;
use xingqu_app::{App, AppConfig};

#[derive(Args, Debug)]
pub struct PriceProtectionArgs {
    /// Orders in the store (one line each, over many SKUs).
    #[arg(long, default_value_t = 10_000_000)]
    orders: i64,
    /// Lines of the cut SKU the cut makes eligible (shipped, inside the window); a tenth as many
    /// again are not (cancelled, or placed before the window).
    #[arg(long, default_value_t = 500_000)]
    eligible: i64,
    /// SKUs the other orders spread over.
    #[arg(long, default_value_t = 200)]
    skus: usize,
    /// Print one JSON object with the figures as the last line.
    #[arg(long)]
    json: bool,
}

const BUYERS: usize = 1_000;
const LIST_PRICE_FEN: i64 = 10_000;
const CUT_PRICE_FEN: i64 = 9_000;
const DAY_MS: i64 = 86_400_000;
/// Orders placed while measuring placement latency: one every this long.
const ORDER_INTERVAL: Duration = Duration::from_millis(5);
const IDLE_ORDERS: usize = 400;

pub async fn run(args: PriceProtectionArgs, database_url: &str) -> anyhow::Result<()> {
    if args.orders < 1 || args.eligible < 1 || args.skus < 3 {
        bail!("--orders and --eligible must be positive, --skus at least 3");
    }
    if 2 * (args.eligible + args.eligible / 10) > args.orders {
        bail!("twice --eligible plus a fifth must fit in --orders (two SKUs are cut)");
    }
    // The bench fills a database of its own: a fresh schema on PostgreSQL, else a temporary
    // SQLite file (never the default `xingqu.db`).
    let dir = tempfile::tempdir()?;
    let (url, schema) = if database_url.starts_with("postgres") {
        let (url, schema) = postgres_schema_url(database_url).await?;
        (url, Some(schema))
    } else {
        // XINGQU_BENCH_KEEP=PATH keeps the filled SQLite file there, to look into afterwards.
        let path = std::env::var("XINGQU_BENCH_KEEP").map_or_else(|_| dir.path().join("bench.db"), Into::into);
        (format!("sqlite://{}", path.display()), None)
    };
    let result = measure(&args, &url).await;
    if let Some(schema) = schema {
        drop_schema(database_url, &schema).await;
    }
    let figures = result?;
    figures.print(&args, if database_url.starts_with("postgres") { "postgres" } else { "sqlite" });
    Ok(())
}

struct Figures {
    fill_s: f64,
    sweep_s: f64,
    peer_s: f64,
    refunds: i64,
    peer_refunds: i64,
    rerun_refunds: i64,
    rerun_s: f64,
    busy_refunds: i64,
    busy_sweep_s: f64,
    refunded_fen: i64,
    order_p99_idle_ms: f64,
    order_p99_sweep_ms: f64,
    order_p50_idle_ms: f64,
    order_p50_sweep_ms: f64,
    orders_during_sweep: usize,
}

impl Figures {
    fn print(&self, args: &PriceProtectionArgs, backend: &str) {
        println!();
        println!(
            "price protection on {backend}: {} orders, {} eligible lines (filled in {:.1} s)",
            args.orders, args.eligible, self.fill_s
        );
        println!(
            "xingqu sweep      {:>8.3} s  {:>8} payments ({} fen): records, payouts queued, ledger postings per batch",
            self.sweep_s, self.refunds, self.refunded_fen
        );
        println!(
            "peer INSERT…SELECT {:>7.3} s  {:>8} rows (one statement, no ledger)   xingqu/peer {:.2}",
            self.peer_s,
            self.peer_refunds,
            self.sweep_s / self.peer_s.max(f64::MIN_POSITIVE)
        );
        println!("re-run            {:>8.3} s  {:>8} payments", self.rerun_s, self.rerun_refunds);
        println!(
            "sweep under load  {:>8.3} s  {:>8} payments (a second SKU's cut while buyers order every {} ms)",
            self.busy_sweep_s,
            self.busy_refunds,
            ORDER_INTERVAL.as_millis()
        );
        println!(
            "order placement   idle p50 {:.2} ms p99 {:.2} ms | during that sweep ({} orders) p50 {:.2} ms p99 {:.2} ms",
            self.order_p50_idle_ms,
            self.order_p99_idle_ms,
            self.orders_during_sweep,
            self.order_p50_sweep_ms,
            self.order_p99_sweep_ms
        );
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "sweep_s": self.sweep_s,
                    "peer_s": self.peer_s,
                    "refunds": self.refunds,
                    "peer_refunds": self.peer_refunds,
                    "rerun_refunds": self.rerun_refunds,
                    "refunded_fen": self.refunded_fen,
                    "busy_sweep_s": self.busy_sweep_s,
                    "busy_refunds": self.busy_refunds,
                    "order_p99_idle_ms": self.order_p99_idle_ms,
                    "order_p99_sweep_ms": self.order_p99_sweep_ms,
                    "order_p50_idle_ms": self.order_p50_idle_ms,
                    "order_p50_sweep_ms": self.order_p50_sweep_ms,
                    "orders_during_sweep": self.orders_during_sweep,
                    "orders": args.orders,
                    "eligible": args.eligible,
                    "backend": backend,
                })
            );
        }
    }
}

async fn open_app(url: &str) -> anyhow::Result<App> {
    let store = xingqu_store::connect(url).await?;
    store.migrate().await?;
    let app = App::new(store, Arc::new(SystemClock), AppConfig::default());
    app.resume_ids().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(app)
}

/// One connection of our own for the bulk fill and the peer, set up as the store sets up its
/// own (durability, page cache, memory map), so the peer runs on equal terms.
async fn raw_pool(url: &str) -> anyhow::Result<AnyPool> {
    sqlx::any::install_default_drivers();
    // The fill's statements take seconds by design: no slow-statement warnings for them.
    let options = sqlx::any::AnyConnectOptions::from_str(url)?.disable_statement_logging();
    let pool = sqlx::pool::PoolOptions::<sqlx::Any>::new().max_connections(1).connect_with(options).await?;
    if url.starts_with("sqlite") {
        for pragma in [
            "PRAGMA synchronous = FULL",
            "PRAGMA foreign_keys = ON",
            "PRAGMA busy_timeout = 10000",
            "PRAGMA cache_size = -65536",
            "PRAGMA mmap_size = 268435456",
        ] {
            pool.execute(pragma).await?;
        }
    }
    Ok(pool)
}

async fn measure(args: &PriceProtectionArgs, url: &str) -> anyhow::Result<Figures> {
    let started = Instant::now();
    let app = open_app(url).await?;
    let scenario = app.seed_protection_scenario(BUYERS, args.skus).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let now_ms = app.now_ms();
    app.store().close().await;
    let pool = raw_pool(url).await?;
    fill(&pool, args, &scenario, now_ms).await.context("fill the store")?;
    let fill_s = started.elapsed().as_secs_f64();
    eprintln!("filled {} orders in {fill_s:.1} s", args.orders);

    // The peer first, on the same rows, into a table of its own, on a fresh connection (as the
    // sweep's is fresh to those rows).
    pool.close().await;
    let pool = raw_pool(url).await?;
    let peer = peer(&pool, &scenario, now_ms + 1).await.context("peer")?;
    pool.close().await;

    let app = open_app(url).await?;
    let idle = place_orders(&app, &scenario, None).await?;

    // The timed sweep: the first SKU's cut, on a quiet store (as the peer ran). The sweep takes
    // the store as busy for a moment after the last order: let that pass.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let quiet = scenario.sku_ids[0];
    let sweep_started = Instant::now();
    cut_price(&app, &scenario, quiet).await?;
    let refunds = app.run_protection_sweeps().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let sweep_s = sweep_started.elapsed().as_secs_f64();

    // Run again from the start: everything is paid, nothing may be paid twice.
    let drop_id = latest_drop(&app, quiet).await?;
    let mut tx = app.store().begin().await?;
    tx.restart_protection_sweep(drop_id).await?;
    tx.commit().await?;
    let rerun_started = Instant::now();
    let rerun_refunds = app.run_protection_sweeps().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let rerun_s = rerun_started.elapsed().as_secs_f64();

    // The second SKU's cut while buyers place orders: their latency against idle.
    let sweeping = Arc::new(AtomicBool::new(true));
    let load = {
        let (app, scenario, sweeping) = (app.clone(), scenario.clone(), sweeping.clone());
        tokio::spawn(async move { place_orders(&app, &scenario, Some(&sweeping)).await })
    };
    tokio::time::sleep(ORDER_INTERVAL * 20).await;
    let busy_started = Instant::now();
    cut_price(&app, &scenario, scenario.sku_ids[1]).await?;
    let busy_refunds = app.run_protection_sweeps().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let busy_sweep_s = busy_started.elapsed().as_secs_f64();
    sweeping.store(false, Ordering::Release);
    let during = load.await??;
    let refunded_fen = -app.store().account_balance("refunds").await?;
    app.store().close().await;

    Ok(Figures {
        fill_s,
        sweep_s,
        peer_s: peer.0,
        refunds,
        peer_refunds: peer.1,
        rerun_refunds,
        rerun_s,
        busy_refunds,
        busy_sweep_s,
        refunded_fen,
        order_p99_idle_ms: percentile(&idle, 0.99),
        order_p99_sweep_ms: percentile(&during, 0.99),
        order_p50_idle_ms: percentile(&idle, 0.50),
        order_p50_sweep_ms: percentile(&during, 0.50),
        orders_during_sweep: during.len(),
    })
}

async fn cut_price(app: &App, scenario: &ProtectionScenario, sku_id: i64) -> anyhow::Result<()> {
    let cut =
        SkuInput { price_fen: Some(CUT_PRICE_FEN), reason: Some("双11 降价".to_owned()), ..SkuInput::default() };
    app.update_sku(&scenario.staff, sku_id, &cut).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

async fn latest_drop(app: &App, sku_id: i64) -> anyhow::Result<i64> {
    let mut tx = app.store().begin().await?;
    let drop = tx.latest_price_change(sku_id).await?.context("the cut is in the price history")?;
    Ok(drop.id)
}

/// Writes the orders with set-based statements (a recursive counter), in slices of a million.
/// Order `i` has one line; every `step`-th order is on one of the two SKUs whose price is cut
/// (the first half on the first, the rest on the second): on each, `eligible` shipped a day ago,
/// and a tenth as many again cancelled or placed 40 days ago (outside the 30-day window). Lines
/// of the other SKUs are shipped and protected too (the sweep must pass them by). The fixture
/// writes no payment postings: the bench measures the sweep, not the ledger check.
async fn fill(pool: &AnyPool, args: &PriceProtectionArgs, s: &ProtectionScenario, now_ms: i64) -> anyhow::Result<()> {
    let target_lines = args.eligible + args.eligible / 10;
    let step = (args.orders / (2 * target_lines)).max(1);
    let (first_other, others) = (s.sku_ids[2], (s.sku_ids.len() - 2) as i64);
    let (quiet, busy) = (s.sku_ids[0], s.sku_ids[1]);
    let (first_buyer, buyers) = (s.buyer_ids[0], s.buyer_ids.len() as i64);
    let (placed_ms, old_ms) = (now_ms - DAY_MS, now_ms - 40 * DAY_MS);
    let address = r#"{"name":"李雷","phone":"13800000000","region_code":"440305","detail":"深圳市南山区"}"#;
    const SLICE: i64 = 1_000_000;
    let mut from = 1;
    while from <= args.orders {
        let to = (from + SLICE - 1).min(args.orders);
        let counter = format!("WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {to})");
        // Which kind of order i is: 0 other SKU, 1 eligible, 2 cancelled, 3 outside the window;
        // j: its rank among the cut SKUs' lines (1-based), t: which cut SKU (0 or 1).
        let kind = format!(
            "CASE WHEN i % {step} <> 0 OR i / {step} > 2 * {target_lines} THEN 0 \
             WHEN (i / {step} - 1) % {target_lines} < {eligible} THEN 1 WHEN i % 2 = 0 THEN 2 ELSE 3 END",
            eligible = args.eligible
        );
        let cut_sku = format!("CASE WHEN i / {step} <= {target_lines} THEN {quiet} ELSE {busy} END");
        let mut tx = pool.begin().await?;
        sqlx::raw_sql(&format!(
            "{counter} INSERT INTO checkouts (id, buyer_user_id, idempotency_key, request_sha256, total_fen, created_at_ms) \
             SELECT i, {first_buyer} + i % {buyers}, 'bench-' || CAST(i AS TEXT), 'bench', {LIST_PRICE_FEN}, {placed_ms} FROM n"
        )).execute(&mut *tx).await?;
        sqlx::raw_sql(&format!(
            "{counter} INSERT INTO orders (id, checkout_id, buyer_user_id, merchant_id, trade_type, status, goods_list_fen, \
             discount_fen, shipping_fen, total_fen, paid_fen, address, dispatch_promise, carrier, tracking_number, \
             created_at_ms, expires_at_ms, paid_at_ms, shipped_at_ms, closed_at_ms) \
             SELECT i, i, {first_buyer} + i % {buyers}, {merchant}, 'normal', \
             CASE WHEN k = 2 THEN 'cancelled' ELSE 'shipped' END, {LIST_PRICE_FEN}, 0, 0, {LIST_PRICE_FEN}, \
             {LIST_PRICE_FEN}, '{address}', 'none', 'bench', 'SF' || CAST(i AS TEXT), \
             CASE WHEN k = 3 THEN {old_ms} ELSE {placed_ms} END, {placed_ms}, {placed_ms}, \
             CASE WHEN k = 2 THEN NULL ELSE {placed_ms} END, CASE WHEN k = 2 THEN {placed_ms} ELSE NULL END \
             FROM (SELECT i, {kind} AS k FROM n) x",
            merchant = s.merchant_id
        )).execute(&mut *tx).await?;
        sqlx::raw_sql(&format!(
            "{counter} INSERT INTO order_lines (id, order_id, sku_id, product_id, product_version, title, spec, \
             unit_price_fen, quantity, list_total_fen, discount_fen, paid_fen, discounts, commission_bps, dispatch_promise, \
             merchant_net_fen, protect_window_days, protect_from, services) \
             SELECT {line_base} + i, i, CASE WHEN k = 0 THEN {first_other} + i % {others} ELSE {cut_sku} END, {product}, 1, \
             '国货电热水壶', '{{}}', {LIST_PRICE_FEN}, 1, {LIST_PRICE_FEN}, 0, {LIST_PRICE_FEN}, '[]', 500, 'none', \
             {LIST_PRICE_FEN}, 30, 'placement', '[]' FROM (SELECT i, {kind} AS k FROM n) x",
            line_base = args.orders,
            product = s.product_id
        )).execute(&mut *tx).await?;
        tx.commit().await?;
        from = to + 1;
    }
    pool.execute("ANALYZE").await?;
    Ok(())
}

/// The peer: the protection records as one hand-written set-based statement, in its own table
/// with the uniqueness it needs; timed from the statement to the commit.
async fn peer(pool: &AnyPool, s: &ProtectionScenario, drop_at_ms: i64) -> anyhow::Result<(f64, i64)> {
    let target = s.sku_ids[0];
    pool.execute(
        "CREATE TABLE peer_price_protections (line_id BIGINT NOT NULL, drop_id BIGINT NOT NULL, order_id BIGINT NOT NULL, \
         buyer_user_id BIGINT NOT NULL, amount_fen BIGINT NOT NULL, created_at_ms BIGINT NOT NULL, \
         PRIMARY KEY (line_id, drop_id))",
    )
    .await?;
    let started = Instant::now();
    let mut tx = pool.begin().await?;
    let inserted = sqlx::raw_sql(&format!(
        "INSERT INTO peer_price_protections (line_id, drop_id, order_id, buyer_user_id, amount_fen, created_at_ms) \
             SELECT l.id, 1, l.order_id, o.buyer_user_id, \
             l.merchant_net_fen - {CUT_PRICE_FEN} * (l.quantity - l.returned_units), {drop_at_ms} \
             FROM order_lines l JOIN orders o ON o.id = l.order_id \
             WHERE l.sku_id = {target} AND l.protect_window_days > 0 \
             AND o.status IN ('shipped', 'delivered', 'completed') AND o.created_at_ms <= {drop_at_ms} \
             AND {drop_at_ms} < o.created_at_ms + l.protect_window_days * {DAY_MS} \
             AND l.merchant_net_fen - {CUT_PRICE_FEN} * (l.quantity - l.returned_units) > 0 \
             ON CONFLICT (line_id, drop_id) DO NOTHING"
    ))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok((started.elapsed().as_secs_f64(), i64::try_from(inserted)?))
}

/// Places one-unit orders on the other SKUs, one every [`ORDER_INTERVAL`]: `IDLE_ORDERS` of them,
/// or while `until` holds. Returns each placement's latency in ms.
async fn place_orders(app: &App, s: &ProtectionScenario, until: Option<&AtomicBool>) -> anyhow::Result<Vec<f64>> {
    let address = AddressInput {
        name: "李雷".to_owned(),
        phone: "13800000000".to_owned(),
        region_code: "440305".to_owned(),
        detail: "深圳市南山区科技园".to_owned(),
    };
    let mut latencies = Vec::new();
    let mut ticker = tokio::time::interval(ORDER_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut index = 0usize;
    loop {
        match until {
            Some(flag) if !flag.load(Ordering::Acquire) => break,
            None if latencies.len() >= IDLE_ORDERS => break,
            _ => {}
        }
        ticker.tick().await;
        index += 1;
        let buyer = xingqu_domain::account::Actor {
            user_id: s.buyer_ids[index % s.buyer_ids.len()],
            role: xingqu_domain::account::Role::Consumer,
            merchant_id: None,
        };
        let sku_id = s.sku_ids[1 + index % (s.sku_ids.len() - 1)];
        let key = format!("load-{}-{index}", if until.is_some() { "sweep" } else { "idle" });
        let started = Instant::now();
        app.create_orders(
            &buyer,
            Some(&key),
            &[CartLineInput { sku_id, quantity: 1 }],
            &address,
            &CouponChoice::Chosen(Vec::new()),
            false,
            None,
        )
        .await
        .map_err(|e| anyhow::anyhow!("placing an order: {e}"))?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}
