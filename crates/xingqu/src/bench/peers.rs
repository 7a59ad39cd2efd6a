//! Benchmark peers for `xingqu bench flash-sale`: the same flash sale run on PostgreSQL (one guarded transaction per purchase) and on Redis (a Lua script, AOF with fsync always).

use std::collections::HashSet;
use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

/// The one hot SKU every attempt buys.
const SKU: i64 = 1;
/// How long a peer's storage gets to answer at all before the peer is reported as skipped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one purchase may wait for its connection or its answer before the run is failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Most connections the PostgreSQL peer opens, whatever `clients` is.
const MAX_PG_CONNECTIONS: usize = 64;

/// One purchase attempt: a buyer and the idempotency key of the request.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub user_id: i64,
    pub idempotency_key: String,
}

/// What a peer achieved.
#[derive(Debug, Clone)]
pub struct PeerResult {
    pub name: &'static str,
    /// New orders per second while stock lasted: units sold over [`PeerResult::sell_out_s`].
    pub orders_per_s: f64,
    /// Seconds from the start until the last new order was answered.
    pub sell_out_s: f64,
    /// All attempts (orders, replays, sold-out answers) per second over the whole run.
    pub attempts_per_s: f64,
    /// Units actually taken from stock, read back from the peer's storage after the run.
    pub units_sold: i64,
    /// Orders stored beyond one per idempotency key (must be 0), read back from storage.
    pub duplicate_orders: i64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub elapsed_s: f64,
}

/// One answered attempt: its index in the attempt list, its latency, and the order id (None = sold out).
#[derive(Debug, Clone, Copy)]
struct Sample {
    index: usize,
    latency: Duration,
    /// When the answer arrived, since the start of the run.
    done: Duration,
    order: Option<i64>,
}

/// The answered attempts of one run, in attempt order, and its wall time.
#[derive(Debug)]
struct Run {
    samples: Vec<Sample>,
    elapsed: Duration,
}

/// A peer's way of making one purchase; each concurrent client task owns one.
trait Buyer: Send + 'static {
    /// Buys one unit for `attempt`: `Some(order id)` (new or replayed) or `None` when sold out.
    fn buy(&mut self, attempt: &Attempt) -> impl Future<Output = Result<Option<i64>, String>> + Send;
}

/// Runs all attempts over one task per buyer, each task taking the next attempt from a shared index.
/// The first failed attempt stops every task and fails the run.
async fn drive<B: Buyer>(attempts: &[Attempt], buyers: Vec<B>) -> Result<Run, String> {
    let shared: Arc<[Attempt]> = attempts.into();
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(buyers.len());
    for mut buyer in buyers {
        let (shared, next, failed) = (Arc::clone(&shared), Arc::clone(&next), Arc::clone(&failed));
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while !failed.load(Ordering::Relaxed) {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(attempt) = shared.get(index) else { break };
                let began = Instant::now();
                match buyer.buy(attempt).await {
                    Ok(order) => {
                        samples.push(Sample { index, latency: began.elapsed(), done: started.elapsed(), order })
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        return Err(format!("attempt {index} failed: {e}"));
                    }
                }
            }
            Ok(samples)
        }));
    }
    let mut samples = Vec::with_capacity(attempts.len());
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok(done)) => samples.extend(done),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(format!("client task died: {e}"));
            }
        }
    }
    let elapsed = started.elapsed();
    match first_error {
        Some(e) => Err(e),
        None => {
            samples.sort_unstable_by_key(|s| s.index);
            Ok(Run { samples, elapsed })
        }
    }
}

/// The nearest-rank percentile `p` (0..=100) of ascending `sorted` values; 0 when there are none.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    super::percentile(sorted, p / 100.0)
}

/// Turns a run and what was read back from storage into the peer's figures.
fn summarize(name: &'static str, run: &Run, units_sold: i64, duplicate_orders: i64) -> PeerResult {
    let mut latencies: Vec<f64> = run.samples.iter().map(|s| s.latency.as_secs_f64() * 1000.0).collect();
    latencies.sort_by(f64::total_cmp);
    let elapsed_s = run.elapsed.as_secs_f64();
    // The last new order: the latest answer carrying an order id no earlier answer carried.
    let mut by_time: Vec<&Sample> = run.samples.iter().filter(|s| s.order.is_some()).collect();
    by_time.sort_by_key(|s| s.done);
    let mut seen = HashSet::new();
    let sell_out_s = by_time
        .iter()
        .filter(|s| s.order.is_some_and(|id| seen.insert(id)))
        .map(|s| s.done.as_secs_f64())
        .fold(0.0, f64::max);
    PeerResult {
        name,
        orders_per_s: if sell_out_s > 0.0 { units_sold as f64 / sell_out_s } else { 0.0 },
        sell_out_s,
        attempts_per_s: if elapsed_s > 0.0 { run.samples.len() as f64 / elapsed_s } else { 0.0 },
        units_sold,
        duplicate_orders,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        elapsed_s,
    }
}

/// A name no other run on this machine uses at the same time (pid, clock, counter).
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}_{}_{}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

/// The purchase statements, qualified with the run's schema.
#[derive(Debug)]
struct PgSql {
    find: String,
    take: String,
    insert: String,
}

impl PgSql {
    fn new(schema: &str) -> Self {
        Self {
            find: format!("SELECT id FROM {schema}.orders WHERE idempotency_key = $1"),
            take: format!("UPDATE {schema}.stock SET qty = qty - 1 WHERE sku = $1 AND qty >= 1"),
            insert: format!(
                "INSERT INTO {schema}.orders (user_id, sku, idempotency_key) VALUES ($1, $2, $3) RETURNING id"
            ),
        }
    }
}

/// A client task of the PostgreSQL peer: it shares the pool with the others.
struct PgBuyer {
    pool: PgPool,
    sql: Arc<PgSql>,
}

impl Buyer for PgBuyer {
    async fn buy(&mut self, attempt: &Attempt) -> Result<Option<i64>, String> {
        pg_purchase(&self.pool, &self.sql, attempt).await.map_err(|e| e.to_string())
    }
}

/// One purchase as one transaction: replay the key's order if it exists, else take a unit and store the order.
async fn pg_purchase(pool: &PgPool, sql: &PgSql, attempt: &Attempt) -> Result<Option<i64>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let existing: Option<i64> =
        sqlx::query_scalar(&sql.find).bind(&attempt.idempotency_key).fetch_optional(&mut *tx).await?;
    if let Some(id) = existing {
        tx.commit().await?;
        return Ok(Some(id));
    }
    let taken = sqlx::query(&sql.take).bind(SKU).execute(&mut *tx).await?.rows_affected();
    if taken == 0 {
        tx.commit().await?;
        return Ok(None);
    }
    let inserted: Result<i64, sqlx::Error> = sqlx::query_scalar(&sql.insert)
        .bind(attempt.user_id)
        .bind(SKU)
        .bind(&attempt.idempotency_key)
        .fetch_one(&mut *tx)
        .await;
    match inserted {
        Ok(id) => {
            tx.commit().await?;
            Ok(Some(id))
        }
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            // A concurrent retry of the same key won: give the unit back and answer with its order.
            tx.rollback().await?;
            let id: i64 = sqlx::query_scalar(&sql.find).bind(&attempt.idempotency_key).fetch_one(&mut *conn).await?;
            Ok(Some(id))
        }
        Err(e) => Err(e),
    }
}

/// PostgreSQL peer. Creates its own tables in a fresh schema (drop it afterwards): `stock(sku BIGINT PRIMARY KEY, qty BIGINT)` and `orders(id BIGSERIAL, user_id BIGINT, sku BIGINT, idempotency_key TEXT UNIQUE)`. Each purchase is one transaction with `synchronous_commit = on`: first look for the key (return the existing order if found), else `UPDATE stock SET qty = qty - 1 WHERE sku = $1 AND qty >= 1`, and if a row was updated, `INSERT INTO orders ... ` (a unique violation on the key means a concurrent retry won: roll back and return that order). Use a connection pool sized sensibly for `clients` concurrent tasks (e.g. min(clients, 64)). Returns Err(reason) if PostgreSQL does not answer (the caller reports the peer as skipped).
pub async fn postgres_peer(url: &str, stock: i64, attempts: &[Attempt], clients: usize) -> Result<PeerResult, String> {
    postgres_run(url, stock, attempts, clients).await.map(|(result, _)| result)
}

/// [`postgres_peer`], also handing back every answered attempt.
async fn postgres_run(
    url: &str,
    stock: i64,
    attempts: &[Attempt],
    clients: usize,
) -> Result<(PeerResult, Vec<Sample>), String> {
    let clients = clients.max(1);
    let options = url
        .parse::<PgConnectOptions>()
        .map_err(|e| format!("bad PostgreSQL URL: {e}"))?
        .options([("synchronous_commit", "on")])
        .application_name("xingqu-bench-peer")
        .disable_statement_logging();
    // One plain connection first: the pool retries a refused connection until its timeout, this fails at once.
    let probe = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
        .await
        .map_err(|_| format!("PostgreSQL did not answer within {} s", CONNECT_TIMEOUT.as_secs()))?
        .map_err(|e| format!("PostgreSQL did not answer: {e}"))?;
    let _ = probe.close().await;
    let connections = clients.min(MAX_PG_CONNECTIONS);
    let pool = tokio::time::timeout(
        CONNECT_TIMEOUT,
        PgPoolOptions::new()
            .max_connections(u32::try_from(connections).unwrap_or(1))
            .acquire_timeout(REQUEST_TIMEOUT)
            .test_before_acquire(false)
            .connect_with(options),
    )
    .await
    .map_err(|_| format!("PostgreSQL did not answer within {} s", CONNECT_TIMEOUT.as_secs()))?
    .map_err(|e| format!("PostgreSQL did not answer: {e}"))?;

    let schema = format!("xingqu_bench_peer_{}", unique_suffix());
    let outcome = pg_bench(&pool, &schema, stock, attempts, clients, connections).await;
    let dropped = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&pool).await;
    pool.close().await;
    let outcome = outcome?;
    dropped.map_err(|e| format!("could not drop schema {schema}: {e}"))?;
    Ok(outcome)
}

/// Creates the schema, opens every pooled connection, runs the sale and reads the figures back.
async fn pg_bench(
    pool: &PgPool,
    schema: &str,
    stock: i64,
    attempts: &[Attempt],
    clients: usize,
    connections: usize,
) -> Result<(PeerResult, Vec<Sample>), String> {
    let setup = |e: sqlx::Error| format!("PostgreSQL setup failed: {e}");
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(pool).await.map_err(setup)?;
    sqlx::query(&format!("CREATE TABLE {schema}.stock (sku BIGINT PRIMARY KEY, qty BIGINT)"))
        .execute(pool)
        .await
        .map_err(setup)?;
    sqlx::query(&format!(
        "CREATE TABLE {schema}.orders (id BIGSERIAL, user_id BIGINT, sku BIGINT, idempotency_key TEXT UNIQUE)"
    ))
    .execute(pool)
    .await
    .map_err(setup)?;
    sqlx::query(&format!("INSERT INTO {schema}.stock (sku, qty) VALUES ($1, $2)"))
        .bind(SKU)
        .bind(stock)
        .execute(pool)
        .await
        .map_err(setup)?;

    // Open every connection before the clock starts, so the run does not pay for connecting.
    let mut warm = Vec::with_capacity(connections);
    for _ in 0..connections {
        warm.push(pool.acquire().await.map_err(setup)?);
    }
    drop(warm);

    let sql = Arc::new(PgSql::new(schema));
    let buyers = (0..clients).map(|_| PgBuyer { pool: pool.clone(), sql: Arc::clone(&sql) }).collect();
    let run = drive(attempts, buyers).await?;

    let readback = |e: sqlx::Error| format!("PostgreSQL read-back failed: {e}");
    let remaining: i64 = sqlx::query_scalar(&format!("SELECT qty FROM {schema}.stock WHERE sku = $1"))
        .bind(SKU)
        .fetch_one(pool)
        .await
        .map_err(readback)?;
    let duplicates: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) - count(DISTINCT idempotency_key) FROM {schema}.orders"))
            .fetch_one(pool)
            .await
            .map_err(readback)?;
    Ok((summarize("postgres", &run, stock - remaining, duplicates), run.samples))
}

// ---------------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------------

const STOCK_KEY: &str = "flash:stock";
const SEQ_KEY: &str = "flash:order_seq";
/// Hash: order id -> user id.
const ORDERS_KEY: &str = "flash:orders";
/// Hash: order id -> idempotency key, to count orders per key after the run.
const ORDER_KEYS_KEY: &str = "flash:order_keys";
/// Prefix of the string keys: idempotency key -> order id.
const IDEM_PREFIX: &str = "flash:idem:";

/// KEYS: stock, order-id counter, orders, order keys, this attempt's idempotency key. ARGV: user id, raw key.
/// Returns the order id (existing or new), or 0 when sold out.
const PURCHASE_LUA: &str = r"
local existing = redis.call('GET', KEYS[5])
if existing then return tonumber(existing) end
local left = tonumber(redis.call('GET', KEYS[1]) or '0')
if left <= 0 then return 0 end
redis.call('DECR', KEYS[1])
local id = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[3], id, ARGV[1])
redis.call('HSET', KEYS[4], id, ARGV[2])
redis.call('SET', KEYS[5], id)
return id
";

/// A `redis-server` this peer started; killed, and its directory removed, when dropped.
pub(crate) struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl RedisServer {
    /// Starts `redis-server` with AOF and `appendfsync always` on a free loopback port and
    /// waits until it answers PING.
    async fn start() -> Result<Self, String> {
        Self::start_with(true).await
    }

    /// Starts `redis-server` (durable: AOF with fsync always; otherwise in memory only).
    pub(crate) async fn start_with(durable: bool) -> Result<Self, String> {
        let mut last_error = String::new();
        // A port found free can be taken before the server binds it: try a few.
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("xingqu-redis-peer-")
                .tempdir()
                .map_err(|e| format!("cannot create a temp dir for redis-server: {e}"))?;
            let port = free_port()?;
            let child = spawn_redis_server(dir.path(), port, durable)?;
            let mut server = Self { child: Some(child), port, dir };
            match server.wait_ready().await {
                Ok(()) => return Ok(server),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    pub(crate) fn client(&self) -> Result<redis::Client, String> {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).map_err(|e| e.to_string())
    }

    /// Polls until the server answers PING and is the process we started (not a stranger on the port).
    async fn wait_ready(&mut self) -> Result<(), String> {
        let client = self.client()?;
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        loop {
            let pid = match self.child.as_mut() {
                Some(child) => match child.try_wait() {
                    Ok(None) => child.id(),
                    Ok(Some(status)) => return Err(format!("redis-server exited ({status}): {}", self.log_tail())),
                    Err(e) => return Err(format!("cannot watch redis-server: {e}")),
                },
                None => return Err("redis-server is gone".to_string()),
            };
            if let Ok(Ok(info)) = tokio::time::timeout(Duration::from_secs(1), ping_and_info(&client)).await {
                if info.lines().any(|line| line.trim() == format!("process_id:{pid}")) {
                    return Ok(());
                }
                return Err(format!("port {} is served by another redis-server", self.port));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "redis-server did not answer PING within {} s: {}",
                    CONNECT_TIMEOUT.as_secs(),
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The end of the server's log, for error messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// SHUTDOWN NOSAVE, then waits briefly for the process to go; `Drop` kills it if it has not.
    pub(crate) async fn stop(mut self) {
        if let Ok(client) = self.client() {
            let connected = tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection());
            if let Ok(Ok(mut con)) = connected.await {
                // The server closes the connection instead of answering.
                let mut shutdown = redis::cmd("SHUTDOWN");
                shutdown.arg("NOSAVE");
                let _ = tokio::time::timeout(Duration::from_secs(5), shutdown.query_async::<()>(&mut con)).await;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Some(child) = self.child.as_mut() {
            match child.try_wait() {
                Ok(None) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
                Ok(Some(_)) => {
                    self.child = None;
                }
                _ => break,
            }
        }
    }
}

/// A loopback port nothing is listening on right now.
pub(crate) fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("no free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| format!("no free port: {e}"))
}

fn spawn_redis_server(dir: &Path, port: u16, durable: bool) -> Result<Child, String> {
    let persistence: &[&str] = if durable {
        &["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
    } else {
        &["--appendonly", "no", "--save", ""]
    };
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--daemonize", "no"])
        .args(persistence)
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "redis-server is not installed (not on PATH)".to_string(),
            _ => format!("cannot start redis-server: {e}"),
        })
}

async fn ping_and_info(client: &redis::Client) -> redis::RedisResult<String> {
    let mut con = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING").query_async::<String>(&mut con).await?;
    redis::cmd("INFO").arg("server").query_async(&mut con).await
}

/// A connection with the peer's timeouts.
async fn redis_connection(client: &redis::Client) -> Result<MultiplexedConnection, String> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_response_timeout(REQUEST_TIMEOUT);
    client.get_multiplexed_async_connection_with_config(&config).await.map_err(|e| format!("Redis connection: {e}"))
}

/// A client task of the Redis peer, with its own connection.
struct RedisBuyer {
    con: MultiplexedConnection,
    sha: Arc<str>,
}

impl Buyer for RedisBuyer {
    async fn buy(&mut self, attempt: &Attempt) -> Result<Option<i64>, String> {
        let id: i64 = redis::cmd("EVALSHA")
            .arg(&*self.sha)
            .arg(5)
            .arg(STOCK_KEY)
            .arg(SEQ_KEY)
            .arg(ORDERS_KEY)
            .arg(ORDER_KEYS_KEY)
            .arg(format!("{IDEM_PREFIX}{}", attempt.idempotency_key))
            .arg(attempt.user_id)
            .arg(&attempt.idempotency_key)
            .query_async(&mut self.con)
            .await
            .map_err(|e| e.to_string())?;
        Ok((id > 0).then_some(id))
    }
}

/// Redis peer. Starts its own `redis-server` on a free loopback port with `--appendonly yes --appendfsync always --save ""` and a temp dir, waits until it answers PING, loads one Lua script (EVALSHA) that: returns the stored order id if the idempotency key exists; else if stock > 0, DECR stock, INCR an order-id counter, records the order (e.g. HSET orders <id> <user>, SET key -> id), returns the id; else returns 0 (sold out). `clients` concurrent tasks each with its own multiplexed or dedicated connection. After the run, read back units sold (initial - remaining) and count orders vs distinct keys, then SHUTDOWN NOSAVE / kill the server and remove the temp dir (also on error). Returns Err(reason) if `redis-server` is not installed or does not start.
pub async fn redis_peer(stock: i64, attempts: &[Attempt], clients: usize) -> Result<PeerResult, String> {
    redis_run(stock, attempts, clients).await.map(|(result, _)| result)
}

/// [`redis_peer`], also handing back every answered attempt.
async fn redis_run(stock: i64, attempts: &[Attempt], clients: usize) -> Result<(PeerResult, Vec<Sample>), String> {
    let server = RedisServer::start().await?;
    let outcome = match server.client() {
        Ok(client) => redis_bench(&client, stock, attempts, clients.max(1)).await,
        Err(e) => Err(e),
    };
    server.stop().await;
    outcome
}

/// Loads the stock and the script, opens one connection per client, runs the sale and reads the figures back.
async fn redis_bench(
    client: &redis::Client,
    stock: i64,
    attempts: &[Attempt],
    clients: usize,
) -> Result<(PeerResult, Vec<Sample>), String> {
    let mut con = redis_connection(client).await?;
    redis::cmd("SET").arg(STOCK_KEY).arg(stock).query_async::<()>(&mut con).await.map_err(|e| e.to_string())?;
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(PURCHASE_LUA)
        .query_async(&mut con)
        .await
        .map_err(|e| format!("SCRIPT LOAD: {e}"))?;
    let sha: Arc<str> = sha.into();

    let mut buyers = Vec::with_capacity(clients);
    for _ in 0..clients {
        buyers.push(RedisBuyer { con: redis_connection(client).await?, sha: Arc::clone(&sha) });
    }
    let run = drive(attempts, buyers).await?;

    let readback = |e: redis::RedisError| format!("Redis read-back failed: {e}");
    let remaining: i64 = redis::cmd("GET").arg(STOCK_KEY).query_async(&mut con).await.map_err(readback)?;
    let orders: i64 = redis::cmd("HLEN").arg(ORDERS_KEY).query_async(&mut con).await.map_err(readback)?;
    let keys: Vec<String> = redis::cmd("HVALS").arg(ORDER_KEYS_KEY).query_async(&mut con).await.map_err(readback)?;
    let distinct = keys.iter().collect::<HashSet<_>>().len();
    let duplicates = orders - i64::try_from(distinct).unwrap_or(i64::MAX);
    Ok((summarize("redis", &run, stock - remaining, duplicates), run.samples))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// `count` attempts where every tenth one retries an earlier attempt's key (same buyer, same key).
    fn scenario(count: usize) -> Vec<Attempt> {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut attempts: Vec<Attempt> = Vec::with_capacity(count);
        for i in 0..count {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if i % 10 == 9 {
                let earlier = attempts[(seed % i as u64) as usize].clone();
                attempts.push(earlier);
            } else {
                attempts.push(Attempt { user_id: (i % 37) as i64, idempotency_key: format!("key-{i}") });
            }
        }
        attempts
    }

    /// What any correct peer must show for `scenario`-like runs, from both its storage and its answers.
    fn check(result: &PeerResult, samples: &[Sample], attempts: &[Attempt], stock: i64) {
        assert_eq!(result.units_sold, stock, "{result:?}");
        assert_eq!(result.duplicate_orders, 0, "{result:?}");
        assert_eq!(samples.len(), attempts.len(), "every attempt answered once");
        let mut by_key: HashMap<&str, i64> = HashMap::new();
        for sample in samples {
            if let Some(id) = sample.order {
                let key = attempts[sample.index].idempotency_key.as_str();
                let first = *by_key.entry(key).or_insert(id);
                assert_eq!(first, id, "key {key} answered with two orders");
            }
        }
        let distinct_orders: HashSet<i64> = by_key.values().copied().collect();
        assert_eq!(distinct_orders.len() as i64, stock, "one order per unit sold");
        assert!(result.orders_per_s > 0.0 && result.p50_ms <= result.p99_ms, "{result:?}");
    }

    /// Stock 1, one client: buy, retry (same order back), then a second buyer finds it sold out.
    fn retry_sequence() -> Vec<Attempt> {
        let a = Attempt { user_id: 1, idempotency_key: "a".to_string() };
        let b = Attempt { user_id: 2, idempotency_key: "b".to_string() };
        vec![a.clone(), a, b]
    }

    fn check_retry_sequence(result: &PeerResult, samples: &[Sample]) {
        let mut orders: Vec<(usize, Option<i64>)> = samples.iter().map(|s| (s.index, s.order)).collect();
        orders.sort_unstable();
        let first = orders[0].1.expect("first attempt buys");
        assert_eq!(orders, vec![(0, Some(first)), (1, Some(first)), (2, None)]);
        assert_eq!(result.units_sold, 1);
        assert_eq!(result.duplicate_orders, 0);
    }

    fn postgres_url() -> Option<String> {
        let url = std::env::var("XINGQU_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty());
        if url.is_none() {
            eprintln!("XINGQU_TEST_POSTGRES_URL unset: skipping the PostgreSQL peer test");
        }
        url
    }

    fn redis_installed() -> bool {
        let found = std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("redis-server").is_file()));
        if !found {
            eprintln!("redis-server not on PATH: skipping the Redis peer test");
        }
        found
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&values, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), 2.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn scenario_has_ten_percent_retries() {
        let attempts = scenario(200);
        let keys: HashSet<&str> = attempts.iter().map(|a| a.idempotency_key.as_str()).collect();
        assert_eq!(keys.len(), 180);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_peer_sells_exactly_the_stock() {
        let Some(url) = postgres_url() else { return };
        let attempts = scenario(200);
        let (result, samples) = postgres_run(&url, 50, &attempts, 16).await.expect("postgres peer");
        check(&result, &samples, &attempts, 50);
        let result = postgres_peer(&url, 50, &attempts, 16).await.expect("postgres peer");
        assert_eq!((result.units_sold, result.duplicate_orders), (50, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_peer_replays_a_retried_key() {
        let Some(url) = postgres_url() else { return };
        let (result, samples) = postgres_run(&url, 1, &retry_sequence(), 1).await.expect("postgres peer");
        check_retry_sequence(&result, &samples);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_peer_reports_a_silent_server() {
        // Nothing listens on a port that was just free.
        let port = free_port().expect("port");
        let url = format!("postgres://postgres@127.0.0.1:{port}/test");
        let err = postgres_peer(&url, 1, &retry_sequence(), 1).await.expect_err("no server");
        assert!(err.contains("PostgreSQL"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_peer_sells_exactly_the_stock() {
        if !redis_installed() {
            return;
        }
        let attempts = scenario(200);
        let (result, samples) = redis_run(50, &attempts, 16).await.expect("redis peer");
        check(&result, &samples, &attempts, 50);
        let result = redis_peer(50, &attempts, 16).await.expect("redis peer");
        assert_eq!((result.units_sold, result.duplicate_orders), (50, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_peer_replays_a_retried_key() {
        if !redis_installed() {
            return;
        }
        let (result, samples) = redis_run(1, &retry_sequence(), 1).await.expect("redis peer");
        check_retry_sequence(&result, &samples);
    }
}
