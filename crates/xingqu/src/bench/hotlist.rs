//! `xingqu bench hot-list`: sale events replayed into the hot lists at a fixed rate (lag from
//! event to visibility) and as fast as they go (the highest rate sustained); in the same run, the
//! peer: Redis `ZINCRBY` with pipelining plus `ZREVRANGE` reads on the same events.

use super::peers::RedisServer;
use super::percentile;
use anyhow::anyhow;
use clap::Args;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use xingqu_app::hotlist::{HotLists, Measure, SaleEvent, Window};
use xingqu_domain::rng::SplitMix64;

#[derive(Args, Debug)]
pub struct HotListArgs {
    /// Events per second replayed for the lag measurement.
    #[arg(long, default_value_t = 50_000)]
    rate: u64,
    /// Seconds of replay at that rate.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Print one JSON object with the figures as the last line.
    #[arg(long)]
    json: bool,
}

const SKUS: usize = 100_000;
const CATEGORIES: i64 = 200;

/// Sale events with Zipf-skewed SKU popularity (s = 1.1): a few hits, a long tail; 3% refunds and
/// 1% flagged as suspected brushing.
struct Events {
    cdf: Vec<f64>,
    rng: SplitMix64,
}

impl Events {
    fn new() -> Self {
        let mut cdf = Vec::with_capacity(SKUS);
        let mut total = 0.0;
        for rank in 1..=SKUS {
            total += 1.0 / (rank as f64).powf(1.1);
            cdf.push(total);
        }
        for value in &mut cdf {
            *value /= total;
        }
        Self { cdf, rng: SplitMix64::new(0x5EED_0407) }
    }

    fn next(&mut self, at_ms: i64) -> SaleEvent {
        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let sku = self.cdf.partition_point(|&c| c < u) as i64 + 1;
        let roll = self.rng.next_u64() % 100;
        let units = 1 + (self.rng.next_u64() % 3) as i64;
        let units = if roll < 3 { -units } else { units };
        SaleEvent {
            sku_id: sku,
            category_id: sku % CATEGORIES,
            units,
            gmv_fen: units * (990 + sku % 10_000),
            at_ms,
            suspected_brushing: roll == 99,
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Replays `rate` events per second for `seconds`, a millisecond's worth at a time; the
/// projection applies whatever has arrived, and each event's lag is the time from its creation
/// to the end of the apply that made it visible. A reader takes the top lists every 10 ms.
fn lag_run(rate: u64, seconds: u64) -> (f64, f64, u64) {
    let lists = Arc::new(Mutex::new(HotLists::new()));
    let (sender, receiver) = std::sync::mpsc::channel::<(Instant, Vec<SaleEvent>)>();
    let projection = {
        let lists = lists.clone();
        std::thread::spawn(move || {
            let mut lags_ms: Vec<f64> = Vec::new();
            while let Ok(first) = receiver.recv() {
                let mut batches = vec![first];
                while let Ok(more) = receiver.try_recv() {
                    batches.push(more);
                }
                let events: Vec<SaleEvent> = batches.iter().flat_map(|(_, e)| e.iter().copied()).collect();
                lists.lock().unwrap_or_else(|p| p.into_inner()).apply(&events, now_ms());
                let visible = Instant::now();
                for (created, batch) in &batches {
                    let lag = visible.duration_since(*created).as_secs_f64() * 1000.0;
                    lags_ms.extend(std::iter::repeat_n(lag, batch.len()));
                }
            }
            lags_ms
        })
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (lists, stop) = (lists.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let lists = lists.lock().unwrap_or_else(|p| p.into_inner());
                reads += lists.top(Window::Hour, Measure::Units, None, 10).len() as u64;
                reads += lists.top(Window::Day, Measure::GmvFen, Some(7), 10).len() as u64;
                drop(lists);
                std::thread::sleep(Duration::from_millis(10));
            }
            reads
        })
    };
    let mut events = Events::new();
    let started = Instant::now();
    let per_ms = rate as f64 / 1000.0;
    let mut sent = 0u64;
    let total = rate * seconds;
    while sent < total {
        let due = ((started.elapsed().as_secs_f64() * 1000.0) * per_ms) as u64;
        let due = due.min(total);
        if due > sent {
            let at = now_ms();
            let batch: Vec<SaleEvent> = (sent..due).map(|_| events.next(at)).collect();
            sent = due;
            if sender.send((Instant::now(), batch)).is_err() {
                break;
            }
        } else {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    drop(sender);
    let mut lags = projection.join().unwrap_or_default();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = reader.join();
    lags.sort_by(f64::total_cmp);
    (percentile(&lags, 0.50), percentile(&lags, 0.99), sent)
}

/// The highest rate: pre-generated events applied in batches of 1,000 as fast as they go.
fn max_rate(events: &[SaleEvent]) -> f64 {
    let mut lists = HotLists::new();
    let at = now_ms();
    let started = Instant::now();
    for batch in events.chunks(1000) {
        lists.apply(batch, at);
        let _ = lists.top(Window::Hour, Measure::Units, None, 10);
    }
    events.len() as f64 / started.elapsed().as_secs_f64()
}

/// The same events into Redis: per event, `ZINCRBY` on the same twelve lists (three windows,
/// two measures, overall and per category), pipelined a thousand events at a time, plus a
/// `ZREVRANGE` of the top ten after each batch. Redis keeps no windows here (no expiry work), so
/// it does less than the projection does.
async fn redis_max_rate(events: &[SaleEvent]) -> Result<f64, String> {
    let server = RedisServer::start_with(false).await?;
    let result = async {
        let client = server.client()?;
        let mut connection = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
        let started = Instant::now();
        for batch in events.chunks(1000) {
            let mut pipe = redis::pipe();
            for event in batch.iter().filter(|e| !e.suspected_brushing) {
                for window in ["hour", "day", "campaign"] {
                    for (measure, value) in [("units", event.units), ("gmv", event.gmv_fen)] {
                        pipe.cmd("ZINCRBY")
                            .arg(format!("hot:{window}:{measure}"))
                            .arg(value)
                            .arg(event.sku_id)
                            .ignore();
                        pipe.cmd("ZINCRBY")
                            .arg(format!("hot:{window}:{measure}:{}", event.category_id))
                            .arg(value)
                            .arg(event.sku_id)
                            .ignore();
                    }
                }
            }
            pipe.cmd("ZREVRANGE").arg("hot:hour:units").arg(0).arg(9).ignore();
            pipe.query_async::<()>(&mut connection).await.map_err(|e| e.to_string())?;
        }
        Ok(events.len() as f64 / started.elapsed().as_secs_f64())
    }
    .await;
    server.stop().await;
    result
}

pub async fn run(args: HotListArgs) -> anyhow::Result<()> {
    if args.rate == 0 || args.seconds == 0 {
        return Err(anyhow!("--rate and --seconds must be positive"));
    }
    eprintln!(
        "hot list: {} events/s for {} s over {SKUS} SKUs in {CATEGORIES} categories (Zipf 1.1)",
        args.rate, args.seconds
    );
    let (rate, seconds) = (args.rate, args.seconds);
    let (lag_p50_ms, lag_p99_ms, replayed) = tokio::task::spawn_blocking(move || lag_run(rate, seconds)).await?;
    let mut generator = Events::new();
    let at = now_ms();
    let events: Vec<SaleEvent> = (0..2_000_000).map(|_| generator.next(at)).collect();
    let events = Arc::new(events);
    let for_max = events.clone();
    let max_events_per_s = tokio::task::spawn_blocking(move || max_rate(&for_max)).await?;
    let redis = redis_max_rate(&events[..400_000]).await;
    println!();
    println!(
        "lag from event to visibility at {} events/s: p50 {lag_p50_ms:.2} ms, p99 {lag_p99_ms:.2} ms ({replayed} events)",
        args.rate
    );
    println!("highest rate sustained: xingqu {max_events_per_s:.0} events/s");
    match &redis {
        Ok(r) => println!(
            "                        redis  {r:.0} events/s (ZINCRBY pipelined, 12 lists) — xingqu is {:.2}x",
            max_events_per_s / r
        ),
        Err(reason) => println!("                        redis  skipped: {reason}"),
    }
    if args.json {
        let json = serde_json::json!({
            "lag_p50_ms": lag_p50_ms,
            "lag_p99_ms": lag_p99_ms,
            "max_events_per_s": max_events_per_s,
            "redis_max_events_per_s": redis.as_ref().ok(),
            "rate": args.rate,
            "seconds": args.seconds,
            "events_replayed": replayed,
        });
        println!("{json}");
    }
    Ok(())
}
