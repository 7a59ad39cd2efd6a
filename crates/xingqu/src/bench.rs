//! `xingqu bench …`: measurements against real peers on this machine, in the same run.

pub mod coupons;
pub mod feed;
pub mod hotlist;
pub mod peers;
pub mod price_protection;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use peers::{Attempt, PeerResult};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use xingqu_app::clock::SystemClock;
use xingqu_app::{App, AppConfig};
use xingqu_domain::rng::SplitMix64;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// One hot SKU, thousands of buyers at once: Xingqu over HTTP against PostgreSQL and Redis.
    FlashSale(FlashSaleArgs),
    /// A claim storm on one coupon: Xingqu over HTTP against PostgreSQL.
    Coupons(coupons::CouponsArgs),
    /// Real-time hot lists fed by sale events: lag to visibility, highest rate, against Redis.
    HotList(hotlist::HotListArgs),
    /// A price cut over millions of orders in automatic price protection: the sweep against a
    /// hand-written set-based INSERT … SELECT in the same database.
    PriceProtection(price_protection::PriceProtectionArgs),
    /// The interest feed at scale: pages over HTTP while events are appended and learned from.
    Feed(feed::FeedArgs),
}

#[derive(Args, Debug)]
pub struct FlashSaleArgs {
    /// Units in the flash-sale pool.
    #[arg(long, default_value_t = 10_000)]
    stock: i64,
    /// Purchase attempts, of which a tenth are retries reusing an earlier idempotency key.
    #[arg(long, default_value_t = 30_000)]
    attempts: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 256)]
    clients: usize,
    /// Rounds of the whole comparison. Each round runs every system once, one after another
    /// (Xingqu's ceiling then its sale on the same server, Redis, PostgreSQL); the table gives
    /// each figure's median over the rounds, and stock and duplicates the worst round's. Five by
    /// default: on a shared two-core machine one round's ratios swing by a fifth either way, and
    /// the median of five wanders less than the median of three (its spread shrinks as the root of
    /// the rounds' count), for about 25 s more.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The PostgreSQL the PostgreSQL peer runs on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    peer_postgres_url: String,
    /// Print one JSON object with the figures as the last line.
    #[arg(long)]
    json: bool,
}

pub async fn run(command: BenchCommand, database_url: &str) -> anyhow::Result<()> {
    match command {
        BenchCommand::FlashSale(args) => flash_sale(args, database_url).await,
        BenchCommand::HotList(args) => hotlist::run(args).await,
        BenchCommand::Coupons(args) => coupons::run(args, database_url).await,
        BenchCommand::PriceProtection(args) => price_protection::run(args, database_url).await,
        BenchCommand::Feed(args) => feed::run(args).await,
    }
}

/// The attempts: buyers with two fresh keys each, shuffled, and a tenth of retries each placed
/// after the attempt whose key it reuses. `user_id` indexes the buyer list.
fn attempts(total: usize) -> (Vec<Attempt>, usize) {
    let retries = total / 10;
    let fresh = total - retries;
    let n_buyers = fresh.div_ceil(2);
    let mut mix = SplitMix64::new(0x5EED_F1A5);
    let mut list: Vec<Attempt> =
        (0..fresh).map(|i| Attempt { user_id: (i % n_buyers) as i64, idempotency_key: format!("flash-{i}") }).collect();
    for i in (1..list.len()).rev() {
        list.swap(i, mix.below(i + 1));
    }
    for _ in 0..retries {
        let original = mix.below(list.len());
        let position = original + 1 + mix.below(list.len() - original);
        let retry = list[original].clone();
        list.insert(position, retry);
    }
    (list, n_buyers)
}

/// What the Xingqu server achieved.
#[derive(Clone)]
struct ServerRun {
    backend: &'static str,
    /// New orders per second while stock lasted: units sold over the sell-out time.
    orders_per_s: f64,
    /// All answers (orders, replays, refusals) per second over the whole run.
    attempts_per_s: f64,
    units_sold: i64,
    duplicate_orders: i64,
    p50_ms: f64,
    p99_ms: f64,
    sell_out_s: f64,
    /// The mean of the ceiling measured just before the sale and just after it.
    http_ceiling_rps: f64,
    http_ceiling_rps_before_after: (f64, f64),
    /// The server's CPU time per answer (all its threads; Linux only): a figure the machine's
    /// noise moves far less than a rate, for comparing builds.
    cpu_us_per_attempt: Option<f64>,
    cpu_us_per_ceiling_request: Option<f64>,
    errors: usize,
}

/// The nearest-rank percentile `p` (a fraction, 0.99 for p99) of ascending values; 0 for none.
pub(crate) fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    if sorted_ms.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted_ms.len() as f64).ceil() as usize).clamp(1, sorted_ms.len());
    sorted_ms[rank - 1]
}

/// One request outcome: attempt index, status, latency (ms), order id, answered at (s since start).
type Outcome = (usize, u16, f64, Option<i64>, f64);

/// A minimal HTTP/1.1 keep-alive client: writes prepared request bytes, reads one response. The
/// load generator shares the machine's two cores with the server, so the less it spends per
/// request the more the measurement is of the server (for the flash sale and the ceiling alike).
pub(crate) struct Connection {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    pub(crate) async fn open(address: &str) -> std::io::Result<Connection> {
        let stream = tokio::net::TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(Connection { stream, buffer: Vec::with_capacity(4096) })
    }

    /// Sends `request` and returns the status and body of the response.
    pub(crate) async fn round_trip(&mut self, request: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        self.stream.write_all(request).await?;
        self.buffer.clear();
        let mut chunk = [0u8; 4096];
        let header_end = loop {
            if let Some(at) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(invalid("connection closed"));
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&self.buffer[..header_end]).map_err(|_| invalid("header"))?;
        let status = head.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| invalid("status"))?;
        let length = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        while self.buffer.len() < header_end + length {
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(invalid("connection closed"));
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
        Ok((status, self.buffer[header_end..header_end + length].to_vec()))
    }
}

/// Sends the prepared `requests` from `clients` connections, each taking the next request, on the
/// client thread ([`on_client_thread`]).
async fn load(address: &str, clients: usize, requests: Arc<Vec<Vec<u8>>>) -> anyhow::Result<(Vec<Outcome>, f64)> {
    let address = address.to_owned();
    on_client_thread(move || async move { load_here(&address, clients, requests).await }).await?
}

/// Runs a load generator on its own OS thread with a single-threaded runtime. Every system in a
/// comparison is driven this way — Xingqu's sale and its ceiling, Redis, PostgreSQL — so each gets
/// the same client: one thread, which does not compete with the system under test for both cores
/// with a thread pool of its own.
pub(crate) async fn on_client_thread<F, Fut, T>(make: F) -> anyhow::Result<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("xingqu-bench-client".to_owned()).spawn(move || {
        let result = tokio::runtime::Builder::new_current_thread().enable_all().build().map(|rt| rt.block_on(make()));
        let _ = sender.send(result);
    })?;
    Ok(receiver.await.map_err(|_| anyhow::anyhow!("the client thread stopped"))??)
}

/// The one field the load generator reads from an answer; parsed into a struct rather than a
/// `Value` so the client spends less of the machine the server shares with it.
#[derive(serde::Deserialize)]
struct OrderAnswer {
    order_id: Option<i64>,
}

async fn load_here(address: &str, clients: usize, requests: Arc<Vec<Vec<u8>>>) -> anyhow::Result<(Vec<Outcome>, f64)> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(Connection::open(address).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut connection in connections {
        let (next, requests) = (next.clone(), requests.clone());
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = requests.get(i) else { break };
                let sent = Instant::now();
                let (status, body) = match connection.round_trip(request).await {
                    Ok((status, body)) if status < 300 => (status, Some(body)),
                    Ok((status, _)) => (status, None),
                    Err(_) => (0, None),
                };
                answers.push((i, status, sent.elapsed().as_secs_f64() * 1000.0, body, started.elapsed().as_secs_f64()));
            }
            answers
        }));
    }
    let mut answers = Vec::with_capacity(requests.len());
    for task in tasks {
        answers.extend(task.await?);
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    // Bodies are read once the clock has stopped: the client shares the machine with the server,
    // and its own parsing is no part of what is measured.
    let order_id = |body: &[u8]| serde_json::from_slice::<OrderAnswer>(body).ok().and_then(|answer| answer.order_id);
    let outcomes = answers
        .into_iter()
        .map(|(i, status, latency_ms, body, at_s)| (i, status, latency_ms, body.as_deref().and_then(order_id), at_s))
        .collect();
    Ok((outcomes, elapsed_s))
}

/// One request for the HTTP/2 client: method, path and headers.
#[derive(Clone)]
pub(crate) struct H2Request {
    method: http::Method,
    path: String,
    headers: Vec<(&'static str, String)>,
}

impl H2Request {
    pub(crate) fn post(path: String, headers: Vec<(&'static str, String)>) -> Self {
        Self { method: http::Method::POST, path, headers }
    }
}

/// Like [`load`], over HTTP/2 with prior knowledge: `connections` connections carrying
/// `clients` concurrent streams between them, as an app multiplexes its requests.
async fn load_h2(
    address: &str,
    connections: usize,
    clients: usize,
    requests: Arc<Vec<H2Request>>,
) -> anyhow::Result<(Vec<Outcome>, f64)> {
    let address = address.to_owned();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(load_h2_here(&address, connections, clients, requests)));
        let _ = sender.send(result);
    });
    receiver.await.map_err(|_| anyhow::anyhow!("the load thread stopped"))?
}

async fn load_h2_here(
    address: &str,
    connections: usize,
    clients: usize,
    requests: Arc<Vec<H2Request>>,
) -> anyhow::Result<(Vec<Outcome>, f64)> {
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        let tcp = tokio::net::TcpStream::connect(address).await?;
        tcp.set_nodelay(true)?;
        let (send, connection) = h2::client::handshake(tcp).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        senders.push(send);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let authority = format!("http://{address}");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (send, next, requests, authority) =
            (senders[client % senders.len()].clone(), next.clone(), requests.clone(), authority.clone());
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(spec) = requests.get(i) else { break };
                let sent = Instant::now();
                let status = h2_round_trip(send.clone(), &authority, spec).await.unwrap_or(0);
                outcomes.push((
                    i,
                    status,
                    sent.elapsed().as_secs_f64() * 1000.0,
                    None,
                    started.elapsed().as_secs_f64(),
                ));
            }
            outcomes
        }));
    }
    let mut all = Vec::with_capacity(requests.len());
    for task in tasks {
        all.extend(task.await?);
    }
    Ok((all, started.elapsed().as_secs_f64()))
}

/// Sends one request on an HTTP/2 connection and reads the whole response; returns the status.
async fn h2_round_trip(
    send: h2::client::SendRequest<bytes::Bytes>,
    authority: &str,
    spec: &H2Request,
) -> anyhow::Result<u16> {
    let mut send = send.ready().await?;
    let mut request = http::Request::builder().method(spec.method.clone()).uri(format!("{authority}{}", spec.path));
    for (name, value) in &spec.headers {
        request = request.header(*name, value);
    }
    let (response, _) = send.send_request(request.body(())?, true)?;
    let response = response.await?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    Ok(status)
}

struct Server {
    child: std::process::Child,
    url: String,
    address: String,
}

impl Server {
    async fn start(database_url: &str) -> anyhow::Result<Server> {
        let port = peers::free_port().map_err(anyhow::Error::msg)?;
        let child = std::process::Command::new(std::env::current_exe()?)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database-url", database_url])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("start the server")?;
        let address = format!("127.0.0.1:{port}");
        let url = format!("http://{address}");
        let mut server = Server { child, url, address };
        for _ in 0..200 {
            if reqwest::get(format!("{}/healthz", server.url)).await.is_ok_and(|r| r.status().is_success()) {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("the server exited: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.stop();
        bail!("the server did not become healthy")
    }

    /// CPU time the server's threads have used so far, from `/proc` (None off Linux).
    fn cpu_ns(&self) -> Option<u64> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id())).ok()?;
        let mut total_ns = 0;
        for task in tasks.flatten() {
            // schedstat: time on the CPU (ns), time waiting to run, time slices.
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total_ns += stat.split_whitespace().next().and_then(|ns| ns.parse::<u64>().ok()).unwrap_or(0);
        }
        Some(total_ns)
    }

    /// Waits until the server is quiet — under a tenth of a core over 50 ms, or 5 s at most — so
    /// that what it does after starting (warming caches) or after a sale (the journal's applier
    /// writing the sale's orders into the tables) is not measured with what comes next.
    async fn quiet(&self) {
        const WINDOW: Duration = Duration::from_millis(50);
        let deadline = Instant::now() + Duration::from_secs(5);
        let Some(mut last_ns) = self.cpu_ns() else { return };
        while Instant::now() < deadline {
            tokio::time::sleep(WINDOW).await;
            let Some(now_ns) = self.cpu_ns() else { return };
            if now_ns.saturating_sub(last_ns) < WINDOW.as_nanos() as u64 / 10 {
                return;
            }
            last_ns = now_ns;
        }
    }

    /// Graceful stop (SIGTERM), then wait.
    fn stop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

async fn run_xingqu(
    backend: &'static str,
    database_url: &str,
    args: &FlashSaleArgs,
    attempts: &[Attempt],
    n_buyers: usize,
) -> anyhow::Result<ServerRun> {
    let store = xingqu_store::connect(database_url).await?;
    store.migrate().await?;
    let app = App::new(store.clone(), Arc::new(SystemClock), AppConfig::default());
    let scenario = app.seed_flash_scenario(n_buyers, args.stock, 2).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    store.close().await;

    let mut server = Server::start(database_url).await?;
    let path = format!("/v1/flash-sales/{}/orders", scenario.flash_sale_id);
    let body = r#"{"quantity":1,"address":{"name":"金顺姬","phone":"13800000000","region_code":"222401","detail":"延吉市光明街 1 号"}}"#;
    let plan: Vec<(String, String)> = attempts
        .iter()
        .map(|a| (scenario.buyer_tokens[a.user_id as usize].clone(), a.idempotency_key.clone()))
        .collect();
    let requests: Vec<Vec<u8>> = plan
        .iter()
        .map(|(token, key)| {
            format!(
                "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\nidempotency-key: {key}\r\n\
                 content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        })
        .collect();
    let ceiling_requests = Arc::new(vec![b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".to_vec(); attempts.len()]);
    // The ceiling is measured just before the sale and again just after it, each time on the quiet
    // server (after the sale, once the journal's applier has written the sale's orders into the
    // tables), and the two are averaged: this machine's speed drifts within seconds, and the
    // mean of the two brackets the sale in time.
    server.quiet().await;
    let cpu_at_start = server.cpu_ns();
    let ceiling_before = load(&server.address, args.clients, ceiling_requests.clone()).await;
    let cpu_after_ceiling = server.cpu_ns();
    let result = load(&server.address, args.clients, Arc::new(requests)).await;
    server.quiet().await;
    let cpu_after_sale = server.cpu_ns();
    let ceiling_after = load(&server.address, args.clients, ceiling_requests).await;
    let cpu_after_second_ceiling = server.cpu_ns();
    server.stop();
    let cpu_us_per =
        |from: Option<u64>, to: Option<u64>, n: usize| Some((to? - from?) as f64 / 1000.0 / n.max(1) as f64);
    let (outcomes, elapsed_s) = result?;
    let ceiling_rps = |run: anyhow::Result<(Vec<Outcome>, f64)>| -> anyhow::Result<(f64, usize)> {
        let (outcomes, elapsed_s) = run?;
        Ok((outcomes.iter().filter(|o| o.1 == 200).count() as f64 / elapsed_s, outcomes.len()))
    };
    let (before_rps, ceiling_n) = ceiling_rps(ceiling_before)?;
    let (after_rps, _) = ceiling_rps(ceiling_after)?;
    let cpu_us_per_ceiling_request = cpu_us_per(cpu_at_start, cpu_after_ceiling, ceiling_n)
        .zip(cpu_us_per(cpu_after_sale, cpu_after_second_ceiling, ceiling_n))
        .map(|(before, after)| (before + after) / 2.0);

    let mut latencies: Vec<f64> = outcomes.iter().map(|o| o.2).collect();
    latencies.sort_by(f64::total_cmp);
    let errors = outcomes.iter().filter(|o| o.1 == 0 || o.1 >= 500).count();
    // The last new order: the latest answer carrying an order id no earlier answer carried.
    let mut by_time: Vec<&Outcome> = outcomes.iter().filter(|o| o.3.is_some()).collect();
    by_time.sort_by(|a, b| a.4.total_cmp(&b.4));
    let mut seen = HashSet::new();
    let new_orders_at_s: Vec<f64> =
        by_time.iter().filter(|o| o.3.is_some_and(|id| seen.insert(id))).map(|o| o.4).collect();
    let sell_out_s = new_orders_at_s.last().copied().unwrap_or(0.0);
    if !new_orders_at_s.is_empty() {
        let at_ms = |p: f64| percentile(&new_orders_at_s, p) * 1000.0;
        eprintln!(
            "xingqu ({backend}): new orders answered by ms since the first request: first {:.1}, 25% {:.1}, 50% {:.1}, 75% {:.1}, last {:.1}",
            new_orders_at_s[0] * 1000.0,
            at_ms(0.25),
            at_ms(0.5),
            at_ms(0.75),
            sell_out_s * 1000.0
        );
    }
    let mut ids_per_key: HashMap<&str, HashSet<i64>> = HashMap::new();
    for (i, _, _, order_id, _) in &outcomes {
        if let Some(order_id) = order_id {
            ids_per_key.entry(plan[*i].1.as_str()).or_default().insert(*order_id);
        }
    }
    let duplicate_in_answers: i64 = ids_per_key.values().map(|ids| ids.len() as i64 - 1).sum();

    let store = xingqu_store::connect(database_url).await?;
    let sale = store.flash_sale(scenario.flash_sale_id).await?.context("the flash sale vanished")?;
    let (holdings, keys) = store.flash_state(scenario.flash_sale_id).await?;
    store.close().await;
    let units_sold = sale.pool_units - sale.remaining_units;
    let units_held: i64 = holdings.iter().map(|h| h.1).sum();
    if units_held != units_sold {
        bail!("{backend}: buyers hold {units_held} units but the pool sold {units_sold}");
    }
    let distinct_keys: HashSet<(i64, &str)> = keys.iter().map(|k| (k.0, k.1.as_str())).collect();
    let duplicate_orders = duplicate_in_answers + (keys.len() - distinct_keys.len()) as i64;
    Ok(ServerRun {
        backend,
        orders_per_s: if sell_out_s > 0.0 { units_sold as f64 / sell_out_s } else { 0.0 },
        attempts_per_s: outcomes.len() as f64 / elapsed_s,
        units_sold,
        duplicate_orders,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        sell_out_s,
        http_ceiling_rps: (before_rps + after_rps) / 2.0,
        http_ceiling_rps_before_after: (before_rps, after_rps),
        cpu_us_per_attempt: cpu_us_per(cpu_after_ceiling, cpu_after_sale, outcomes.len()),
        cpu_us_per_ceiling_request,
        errors,
    })
}

/// A fresh PostgreSQL schema for the Xingqu server run on PostgreSQL.
async fn postgres_schema_url(base_url: &str) -> anyhow::Result<(String, String)> {
    sqlx::any::install_default_drivers();
    let schema = format!("xq_bench_{}", std::process::id());
    let admin = sqlx::AnyPool::connect(base_url).await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&admin).await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await?;
    admin.close().await;
    let separator = if base_url.contains('?') { '&' } else { '?' };
    Ok((format!("{base_url}{separator}options=-c%20search_path%3D{schema}"), schema))
}

async fn drop_schema(base_url: &str, schema: &str) {
    if let Ok(admin) = sqlx::AnyPool::connect(base_url).await {
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&admin).await;
        admin.close().await;
    }
}

/// One round of the comparison: every system once, in turn.
struct Round {
    /// Xingqu on SQLite, then on PostgreSQL when a PostgreSQL database URL was given.
    servers: Vec<ServerRun>,
    postgres: Result<PeerResult, String>,
    /// Before Xingqu's sale and after it.
    redis: Vec<Result<PeerResult, String>>,
}

/// The median of `values` (the mean of the middle two for an even count); 0 for none.
fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The median of the figures that are there (None if none is).
fn median_of_some(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let present: Vec<f64> = values.into_iter().flatten().collect();
    (!present.is_empty()).then(|| median(present))
}

/// One Xingqu run standing for several rounds: each rate and latency is the rounds' median, while
/// units sold is the worst round's (one that missed the stock, if any), duplicates the most any
/// round had, and errors the sum: correctness must hold in every round, not in the middle one.
fn summarize_runs(runs: &[ServerRun], stock: i64) -> ServerRun {
    let mid = |figure: fn(&ServerRun) -> f64| median(runs.iter().map(figure));
    let worst_units_sold = runs.iter().map(|r| r.units_sold).find(|&sold| sold != stock).unwrap_or(stock);
    ServerRun {
        backend: runs[0].backend,
        orders_per_s: mid(|r| r.orders_per_s),
        attempts_per_s: mid(|r| r.attempts_per_s),
        units_sold: worst_units_sold,
        duplicate_orders: runs.iter().map(|r| r.duplicate_orders).max().unwrap_or(0),
        p50_ms: mid(|r| r.p50_ms),
        p99_ms: mid(|r| r.p99_ms),
        sell_out_s: mid(|r| r.sell_out_s),
        http_ceiling_rps: mid(|r| r.http_ceiling_rps),
        http_ceiling_rps_before_after: (
            mid(|r| r.http_ceiling_rps_before_after.0),
            mid(|r| r.http_ceiling_rps_before_after.1),
        ),
        cpu_us_per_attempt: median_of_some(runs.iter().map(|r| r.cpu_us_per_attempt)),
        cpu_us_per_ceiling_request: median_of_some(runs.iter().map(|r| r.cpu_us_per_ceiling_request)),
        errors: runs.iter().map(|r| r.errors).sum(),
    }
}

/// A peer over several rounds, like [`summarize_runs`]; skipped if it answered in no round.
fn summarize_peer<'a>(
    results: impl IntoIterator<Item = &'a Result<PeerResult, String>>,
    stock: i64,
) -> Result<PeerResult, String> {
    let mut done = Vec::new();
    let mut skipped = None;
    for result in results {
        match result {
            Ok(peer) => done.push(peer.clone()),
            Err(reason) => skipped = skipped.or(Some(reason.clone())),
        }
    }
    let Some(first) = done.first() else {
        return Err(skipped.unwrap_or_else(|| "no round ran".to_owned()));
    };
    let mid = |figure: fn(&PeerResult) -> f64| median(done.iter().map(figure));
    Ok(PeerResult {
        name: first.name,
        orders_per_s: mid(|p| p.orders_per_s),
        sell_out_s: mid(|p| p.sell_out_s),
        attempts_per_s: mid(|p| p.attempts_per_s),
        units_sold: done.iter().map(|p| p.units_sold).find(|&sold| sold != stock).unwrap_or(first.units_sold),
        duplicate_orders: done.iter().map(|p| p.duplicate_orders).max().unwrap_or(0),
        p50_ms: mid(|p| p.p50_ms),
        p99_ms: mid(|p| p.p99_ms),
        elapsed_s: mid(|p| p.elapsed_s),
    })
}

/// One round: Redis, Xingqu (the ceiling, the sale and the ceiling again, on one server), Redis
/// again, then PostgreSQL. Redis runs on both sides of Xingqu, as the ceiling does, because the
/// two are closest and this machine's speed drifts within seconds: each is measured around the
/// same moment as Xingqu's sale, not only before or after it.
async fn run_round(
    args: &FlashSaleArgs,
    database_url: &str,
    attempts: &Arc<Vec<Attempt>>,
    n_buyers: usize,
) -> anyhow::Result<Round> {
    let mut servers = Vec::new();
    let dir = tempfile::tempdir()?;
    let sqlite_url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let (stock, clients) = (args.stock, args.clients);
    let redis_run = || {
        let of_redis = attempts.clone();
        async move {
            on_client_thread(move || async move { peers::redis_peer(stock, &of_redis, clients).await })
                .await
                .unwrap_or_else(|e| Err(e.to_string()))
        }
    };
    let redis_before = redis_run().await;
    servers.push(run_xingqu("sqlite", &sqlite_url, args, attempts, n_buyers).await?);
    let redis = vec![redis_before, redis_run().await];
    if database_url.starts_with("postgres") {
        let (url, schema) = postgres_schema_url(database_url).await?;
        let run = run_xingqu("postgres", &url, args, attempts, n_buyers).await;
        drop_schema(database_url, &schema).await;
        servers.push(run?);
    }
    let (url, of_postgres) = (args.peer_postgres_url.clone(), attempts.clone());
    let postgres =
        on_client_thread(move || async move { peers::postgres_peer(&url, stock, &of_postgres, clients).await })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
    Ok(Round { servers, postgres, redis })
}

async fn flash_sale(args: FlashSaleArgs, database_url: &str) -> anyhow::Result<()> {
    if args.stock < 1 || args.attempts < 10 || args.clients < 1 || args.rounds < 1 {
        bail!("--stock, --attempts (at least 10), --clients and --rounds must be positive");
    }
    let (attempts, n_buyers) = attempts(args.attempts);
    let attempts = Arc::new(attempts);
    eprintln!(
        "flash sale: {} units, {} attempts ({} retries), {} clients, {} buyers, {} rounds",
        args.stock,
        attempts.len(),
        args.attempts / 10,
        args.clients,
        n_buyers,
        args.rounds
    );
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        let r = run_round(&args, database_url, &attempts, n_buyers).await?;
        let rate = |p: &Result<PeerResult, String>| {
            p.as_ref().map_or("skipped".to_owned(), |p| format!("{:.0}", p.orders_per_s))
        };
        let x = &r.servers[0];
        let (ceiling_before, ceiling_after) = x.http_ceiling_rps_before_after;
        eprintln!(
            "round {round}: xingqu {:.0} orders/s (p99 {:.1} ms, sold {}, dups {}), ceiling {:.0}/s ({:.0} before, {:.0} after; {:.2}), redis {} (before and after), postgres {}",
            x.orders_per_s,
            x.p99_ms,
            x.units_sold,
            x.duplicate_orders,
            x.http_ceiling_rps,
            ceiling_before,
            ceiling_after,
            x.orders_per_s / x.http_ceiling_rps.max(f64::MIN_POSITIVE),
            r.redis.iter().map(rate).collect::<Vec<_>>().join(" and "),
            rate(&r.postgres)
        );
        rounds.push(r);
    }
    let runs: Vec<ServerRun> = (0..rounds[0].servers.len())
        .map(|i| {
            let of_backend: Vec<ServerRun> = rounds.iter().map(|r| r.servers[i].clone()).collect();
            summarize_runs(&of_backend, args.stock)
        })
        .collect();
    let pg = summarize_peer(rounds.iter().map(|r| &r.postgres), args.stock);
    let redis = summarize_peer(rounds.iter().flat_map(|r| &r.redis), args.stock);

    let main = &runs[0];
    println!();
    if args.rounds > 1 {
        println!(
            "medians over {} rounds (sold and dups: the worst round); each round's figures are above",
            args.rounds
        );
    }
    println!("orders/s: new orders per second while stock lasted (units sold / time to the last new order)");
    println!("attempts/s: every answer (orders, replays, sold-out) per second over the whole run");
    println!(
        "{:<28} {:>10} {:>11} {:>9} {:>8} {:>8} {:>7} {:>5} {:>10}",
        "", "orders/s", "attempts/s", "sell-out", "p50 ms", "p99 ms", "sold", "dups", "xingqu is"
    );
    for run in &runs {
        println!(
            "{:<28} {:>10.0} {:>11.0} {:>8.2}s {:>8.2} {:>8.2} {:>7} {:>5} {:>10}",
            format!("xingqu ({})", run.backend),
            run.orders_per_s,
            run.attempts_per_s,
            run.sell_out_s,
            run.p50_ms,
            run.p99_ms,
            run.units_sold,
            run.duplicate_orders,
            format!("{:.2}x", main.orders_per_s / run.orders_per_s.max(f64::MIN_POSITIVE))
        );
    }
    for (label, peer) in [("postgres (1 txn/purchase)", &pg), ("redis (lua, fsync always)", &redis)] {
        match peer {
            Ok(p) => println!(
                "{:<28} {:>10.0} {:>11.0} {:>8.2}s {:>8.2} {:>8.2} {:>7} {:>5} {:>10}   [{} run: {:.2} s]",
                label,
                p.orders_per_s,
                p.attempts_per_s,
                p.sell_out_s,
                p.p50_ms,
                p.p99_ms,
                p.units_sold,
                p.duplicate_orders,
                format!("{:.2}x", main.orders_per_s / p.orders_per_s.max(f64::MIN_POSITIVE)),
                p.name,
                p.elapsed_s
            ),
            Err(reason) => println!("{label:<28} skipped: {reason}"),
        }
    }
    println!(
        "{:<28} {:>10} {:>11.0}   xingqu's orders/s are {:.2} of it",
        "http ceiling (GET /healthz)",
        "",
        main.http_ceiling_rps,
        main.orders_per_s / main.http_ceiling_rps
    );
    if let (Some(sale_us), Some(ceiling_us)) = (main.cpu_us_per_attempt, main.cpu_us_per_ceiling_request) {
        println!(
            "server CPU per answer: {sale_us:.1} µs in the sale (orders, replays, sold-out answers, the applier), {ceiling_us:.1} µs per GET /healthz"
        );
    }
    println!("{} transport or server errors", main.errors);
    if args.json {
        let peer = |p: &Result<PeerResult, String>| p.as_ref().ok().map(|p| p.orders_per_s);
        let mut json = serde_json::json!({
            "xingqu_orders_per_s": main.orders_per_s,
            "postgres_orders_per_s": peer(&pg),
            "redis_orders_per_s": peer(&redis),
            "http_ceiling_rps": main.http_ceiling_rps,
            "units_sold": main.units_sold,
            "duplicate_orders": main.duplicate_orders,
            "p50_ms": main.p50_ms,
            "p99_ms": main.p99_ms,
            "sell_out_s": main.sell_out_s,
            "xingqu_attempts_per_s": main.attempts_per_s,
            "postgres_attempts_per_s": pg.as_ref().ok().map(|p| p.attempts_per_s),
            "redis_attempts_per_s": redis.as_ref().ok().map(|p| p.attempts_per_s),
            "errors": main.errors,
            "xingqu_cpu_us_per_attempt": main.cpu_us_per_attempt,
            "xingqu_cpu_us_per_ceiling_request": main.cpu_us_per_ceiling_request,
            "stock": args.stock,
            "attempts": attempts.len(),
            "clients": args.clients,
            "rounds": args.rounds,
        });
        if let Some(run) = runs.get(1) {
            json["xingqu_postgres_orders_per_s"] = run.orders_per_s.into();
            json["xingqu_postgres_units_sold"] = run.units_sold.into();
            json["xingqu_postgres_duplicate_orders"] = run.duplicate_orders.into();
            json["xingqu_postgres_p99_ms"] = run.p99_ms.into();
        }
        println!("{json}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_have_a_tenth_of_retries_after_their_originals() {
        let (list, n_buyers) = attempts(1000);
        assert_eq!((list.len(), n_buyers), (1000, 450));
        let mut first_seen = HashMap::new();
        for (i, a) in list.iter().enumerate() {
            first_seen.entry(a.idempotency_key.clone()).or_insert(i);
        }
        assert_eq!(first_seen.len(), 900);
        assert!(list.iter().all(|a| (a.user_id as usize) < n_buyers));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
    }

    fn run(orders_per_s: f64, units_sold: i64, duplicate_orders: i64) -> ServerRun {
        ServerRun {
            backend: "sqlite",
            orders_per_s,
            attempts_per_s: orders_per_s,
            units_sold,
            duplicate_orders,
            p50_ms: 1.0,
            p99_ms: orders_per_s / 1000.0,
            sell_out_s: 1.0,
            http_ceiling_rps: 2.0 * orders_per_s,
            http_ceiling_rps_before_after: (orders_per_s, 3.0 * orders_per_s),
            cpu_us_per_attempt: Some(orders_per_s),
            cpu_us_per_ceiling_request: None,
            errors: 1,
        }
    }

    #[test]
    fn rounds_report_medians_but_the_worst_correctness() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median([]), 0.0);
        let all_right = summarize_runs(&[run(30.0, 100, 0), run(10.0, 100, 0), run(20.0, 100, 0)], 100);
        assert_eq!((all_right.orders_per_s, all_right.p99_ms, all_right.http_ceiling_rps), (20.0, 0.02, 40.0));
        assert_eq!((all_right.units_sold, all_right.duplicate_orders, all_right.errors), (100, 0, 3));
        assert_eq!((all_right.cpu_us_per_attempt, all_right.cpu_us_per_ceiling_request), (Some(20.0), None));
        assert_eq!(all_right.http_ceiling_rps_before_after, (20.0, 60.0));
        // One bad round in three is not outvoted.
        let one_wrong = summarize_runs(&[run(30.0, 100, 0), run(10.0, 101, 2), run(20.0, 100, 0)], 100);
        assert_eq!((one_wrong.units_sold, one_wrong.duplicate_orders), (101, 2));
        let peer = |orders_per_s: f64, units_sold: i64| {
            Ok(PeerResult {
                name: "redis",
                orders_per_s,
                sell_out_s: 1.0,
                attempts_per_s: orders_per_s,
                units_sold,
                duplicate_orders: 0,
                p50_ms: 1.0,
                p99_ms: 2.0,
                elapsed_s: 1.0,
            })
        };
        let peers = [peer(5.0, 100), Err("gone".to_owned()), peer(7.0, 99)];
        let summary = summarize_peer(&peers, 100).map_err(|e| e.to_string());
        assert_eq!(summary.as_ref().map(|p| (p.orders_per_s, p.units_sold)), Ok((6.0, 99)));
        assert_eq!(summarize_peer(&[Err("not installed".to_owned())], 100).err(), Some("not installed".to_owned()));
    }
}
