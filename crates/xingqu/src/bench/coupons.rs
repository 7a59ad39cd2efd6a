//! `xingqu bench coupons`: a claim storm on one coupon — Xingqu over HTTP against PostgreSQL
//! doing the textbook thing (a unique (coupon, user) insert plus a guarded `UPDATE … WHERE
//! claimed < quantity`, one transaction per claim) in the same run.

use super::{H2Request, Server, load, load_h2, percentile};
use anyhow::{Context, bail};
use clap::Args;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use xingqu_app::clock::SystemClock;
use xingqu_app::{App, AppConfig};
use xingqu_domain::rng::SplitMix64;

#[derive(Args, Debug)]
pub struct CouponsArgs {
    /// Coupons to issue.
    #[arg(long, default_value_t = 10_000)]
    quantity: i64,
    /// Claim requests in all.
    #[arg(long, default_value_t = 100_000)]
    claims: usize,
    /// Distinct buyers the claims come from (so some buyers claim more than once).
    #[arg(long, default_value_t = 50_000)]
    users: usize,
    /// Concurrent HTTP clients (PostgreSQL: at most 64 connections).
    #[arg(long, default_value_t = 256)]
    clients: usize,
    /// http1 (one keep-alive connection per client) or http2 (the clients' requests multiplexed
    /// over `--connections` connections, as apps do).
    #[arg(long, default_value = "http2")]
    transport: String,
    /// HTTP/2 connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// The PostgreSQL the PostgreSQL peer runs on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    peer_postgres_url: String,
    /// Print one JSON object with the figures as the last line.
    #[arg(long)]
    json: bool,
}

const PER_USER_LIMIT: i64 = 1;
const PG_CONNECTIONS: usize = 64;

/// Who claims, in what order: every buyer at least once, the rest repeats, shuffled.
fn claimants(claims: usize, users: usize) -> Vec<usize> {
    let mut mix = SplitMix64::new(0xC0_u64 << 32 | 0x0B0);
    let mut list: Vec<usize> = (0..claims).map(|i| if i < users { i } else { mix.below(users) }).collect();
    for i in (1..list.len()).rev() {
        list.swap(i, mix.below(i + 1));
    }
    list
}

/// What one storm achieved, read back from storage afterwards.
struct Storm {
    claims_per_s: f64,
    issued: i64,
    over_limit_users: i64,
    p50_ms: f64,
    p99_ms: f64,
    elapsed_s: f64,
    errors: usize,
    /// `GET /healthz` answered per second by the same server and clients (0 for the peer).
    http_ceiling_rps: f64,
}

async fn run_xingqu(database_url: &str, args: &CouponsArgs, transport: &str, order: &[usize]) -> anyhow::Result<Storm> {
    let store = xingqu_store::connect(database_url).await?;
    store.migrate().await?;
    let app = App::new(store.clone(), Arc::new(SystemClock), AppConfig::default());
    let scenario = app
        .seed_coupon_scenario(args.users, args.quantity, PER_USER_LIMIT)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    store.close().await;

    let mut server = Server::start(database_url).await?;
    let path = format!("/v1/coupons/{}/claims", scenario.coupon_id);
    let requests: Vec<Vec<u8>> = order
        .iter()
        .map(|&user| {
            format!(
                "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {}\r\ncontent-length: 0\r\n\r\n",
                scenario.buyer_tokens[user]
            )
            .into_bytes()
        })
        .collect();
    let result = if transport == "http2" {
        let requests: Vec<H2Request> = order
            .iter()
            .map(|&user| {
                H2Request::post(
                    path.clone(),
                    vec![("authorization", format!("Bearer {}", scenario.buyer_tokens[user]))],
                )
            })
            .collect();
        load_h2(&server.address, args.connections, args.clients, Arc::new(requests)).await
    } else {
        load(&server.address, args.clients, Arc::new(requests)).await
    };
    // The HTTP ceiling on this machine: the same clients asking `GET /healthz`.
    let ceiling_requests = vec![b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".to_vec(); order.len()];
    let ceiling = load(&server.address, args.clients, Arc::new(ceiling_requests)).await;
    server.stop();
    let (ceiling_outcomes, ceiling_s) = ceiling?;
    let http_ceiling_rps = ceiling_outcomes.iter().filter(|o| o.1 == 200).count() as f64 / ceiling_s;
    let (outcomes, elapsed_s) = result?;
    let errors = outcomes.iter().filter(|o| o.1 == 0 || o.1 >= 500).count();
    let mut latencies: Vec<f64> = outcomes.iter().map(|o| o.2).collect();
    latencies.sort_by(f64::total_cmp);

    let store = xingqu_store::connect(database_url).await?;
    let claims = store.claim_state(scenario.coupon_id).await?;
    let coupon = store.coupon(scenario.coupon_id).await?.context("the coupon vanished")?;
    store.close().await;
    let mut per_user: HashMap<i64, i64> = HashMap::new();
    for claim in &claims {
        *per_user.entry(claim.user_id).or_default() += 1;
    }
    let issued = claims.len() as i64;
    if coupon.claimed != issued {
        bail!("the coupon counts {} claims but {issued} are stored", coupon.claimed);
    }
    let granted = outcomes.iter().filter(|o| o.1 == 201).count() as i64;
    if granted != issued {
        bail!("{granted} buyers were told they got a coupon but {issued} claims are stored");
    }
    Ok(Storm {
        claims_per_s: outcomes.len() as f64 / elapsed_s,
        issued,
        over_limit_users: per_user.values().filter(|&&n| n > PER_USER_LIMIT).count() as i64,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        elapsed_s,
        errors,
        http_ceiling_rps,
    })
}

/// The same storm on PostgreSQL: per claim one transaction that inserts the (coupon, user) row
/// (unique) and takes one from the coupon with a guarded update; either refusal rolls it back.
async fn run_postgres(url: &str, args: &CouponsArgs, order: &[usize]) -> Result<Storm, String> {
    let options = url
        .parse::<PgConnectOptions>()
        .map_err(|e| format!("bad PostgreSQL URL: {e}"))?
        .options([("synchronous_commit", "on")])
        .application_name("xingqu-bench-coupons-peer");
    let connections = args.clients.clamp(1, PG_CONNECTIONS);
    let pool = tokio::time::timeout(
        Duration::from_secs(10),
        PgPoolOptions::new()
            .max_connections(connections as u32)
            .min_connections(connections as u32)
            .connect_with(options),
    )
    .await
    .map_err(|_| "PostgreSQL did not answer within 10 s".to_owned())?
    .map_err(|e| format!("PostgreSQL did not answer: {e}"))?;
    let schema = format!("xingqu_bench_coupons_{}", std::process::id());
    let sql = |e: sqlx::Error| e.to_string();
    for statement in [
        format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        format!("CREATE SCHEMA {schema}"),
        format!(
            "CREATE TABLE {schema}.coupons (id BIGINT PRIMARY KEY, quantity BIGINT NOT NULL, claimed BIGINT NOT NULL)"
        ),
        format!(
            "CREATE TABLE {schema}.claims (coupon_id BIGINT NOT NULL, user_id BIGINT NOT NULL, claimed_at TIMESTAMPTZ NOT NULL DEFAULT now(), \
             PRIMARY KEY (coupon_id, user_id))"
        ),
        format!("INSERT INTO {schema}.coupons VALUES (1, {}, 0)", args.quantity),
    ] {
        sqlx::query(&statement).execute(&pool).await.map_err(sql)?;
    }
    let insert = Arc::new(format!(
        "INSERT INTO {schema}.claims (coupon_id, user_id) VALUES (1, $1) ON CONFLICT DO NOTHING RETURNING user_id"
    ));
    let take =
        Arc::new(format!("UPDATE {schema}.coupons SET claimed = claimed + 1 WHERE id = 1 AND claimed < quantity"));
    let order: Arc<Vec<usize>> = Arc::new(order.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (pool, insert, take, order, next) =
            (pool.clone(), insert.clone(), take.clone(), order.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&user) = order.get(i) else { break };
                let sent = Instant::now();
                let outcome: Result<(), sqlx::Error> = async {
                    let mut tx = pool.begin().await?;
                    let inserted = sqlx::query(insert.as_str()).bind(user as i64).fetch_optional(&mut *tx).await?;
                    if inserted.is_none() {
                        return tx.rollback().await;
                    }
                    if sqlx::query(take.as_str()).execute(&mut *tx).await?.rows_affected() == 0 {
                        return tx.rollback().await;
                    }
                    tx.commit().await
                }
                .await;
                errors += usize::from(outcome.is_err());
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mine, failed) = task.await.map_err(|e| e.to_string())?;
        latencies.extend(mine);
        errors += failed;
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let issued: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM {schema}.claims")).fetch_one(&pool).await.map_err(sql)?;
    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&pool).await;
    pool.close().await;
    Ok(Storm {
        claims_per_s: order.len() as f64 / elapsed_s,
        issued,
        over_limit_users: 0,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        elapsed_s,
        errors,
        http_ceiling_rps: 0.0,
    })
}

pub async fn run(args: CouponsArgs, database_url: &str) -> anyhow::Result<()> {
    if args.quantity < 1 || args.users < 1 || args.claims < args.users || args.clients < 1 || args.connections < 1 {
        bail!("--quantity, --users, --clients and --connections must be positive, and --claims at least --users");
    }
    if args.transport != "http1" && args.transport != "http2" {
        bail!("--transport is http1 or http2");
    }
    let order = claimants(args.claims, args.users);
    eprintln!(
        "coupon claim storm: {} coupons, {} claims from {} buyers, {} clients",
        args.quantity, args.claims, args.users, args.clients
    );
    let dir = tempfile::tempdir()?;
    let sqlite_url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let main = run_xingqu(&sqlite_url, &args, &args.transport, &order).await?;
    // The other transport too, on a fresh database, so both figures are on record.
    let other_transport = if args.transport == "http2" { "http1" } else { "http2" };
    let other_url = format!("sqlite://{}", dir.path().join("bench-other.db").display());
    let other = run_xingqu(&other_url, &args, other_transport, &order).await?;
    let mut on_postgres = None;
    if database_url.starts_with("postgres") {
        let (url, schema) = super::postgres_schema_url(database_url).await?;
        let run = run_xingqu(&url, &args, &args.transport, &order).await;
        super::drop_schema(database_url, &schema).await;
        on_postgres = Some(run?);
    }
    let pg = run_postgres(&args.peer_postgres_url, &args, &order).await;

    println!();
    println!("claims/s: every answer (issued, already claimed, exhausted) per second over the whole storm");
    println!(
        "{:<32} {:>10} {:>8} {:>10} {:>8} {:>8} {:>8} {:>10}",
        "", "claims/s", "issued", "over-limit", "p50 ms", "p99 ms", "errors", "xingqu is"
    );
    let row = |label: &str, s: &Storm| {
        println!(
            "{:<32} {:>10.0} {:>8} {:>10} {:>8.2} {:>8.2} {:>8} {:>10}   [{:.2} s]",
            label,
            s.claims_per_s,
            s.issued,
            s.over_limit_users,
            s.p50_ms,
            s.p99_ms,
            s.errors,
            format!("{:.2}x", main.claims_per_s / s.claims_per_s.max(f64::MIN_POSITIVE)),
            s.elapsed_s
        );
    };
    row(&format!("xingqu (sqlite, {})", args.transport), &main);
    row(&format!("xingqu (sqlite, {other_transport})"), &other);
    if let Some(run) = &on_postgres {
        row(&format!("xingqu (postgres, {})", args.transport), run);
    }
    match &pg {
        Ok(p) => row("postgres (1 txn/claim)", p),
        Err(reason) => println!("{:<32} skipped: {reason}", "postgres (1 txn/claim)"),
    }
    println!(
        "{:<32} {:>10.0}   xingqu's claims/s are {:.2} of it",
        "http ceiling (GET /healthz)",
        main.http_ceiling_rps,
        main.claims_per_s / main.http_ceiling_rps.max(f64::MIN_POSITIVE)
    );
    if args.json {
        let mut json = serde_json::json!({
            "xingqu_claims_per_s": main.claims_per_s,
            "postgres_claims_per_s": pg.as_ref().ok().map(|p| p.claims_per_s),
            "issued": main.issued,
            "over_limit_users": main.over_limit_users,
            "p50_ms": main.p50_ms,
            "p99_ms": main.p99_ms,
            "errors": main.errors,
            "http_ceiling_rps": main.http_ceiling_rps,
            "transport": args.transport,
            "connections": if args.transport == "http2" { args.connections } else { args.clients },
            format!("xingqu_{other_transport}_claims_per_s"): other.claims_per_s,
            "postgres_issued": pg.as_ref().ok().map(|p| p.issued),
            "quantity": args.quantity,
            "claims": args.claims,
            "users": args.users,
            "clients": args.clients,
        });
        if let Some(run) = &on_postgres {
            json["xingqu_postgres_claims_per_s"] = run.claims_per_s.into();
            json["xingqu_postgres_issued"] = run.issued.into();
            json["xingqu_postgres_over_limit_users"] = run.over_limit_users.into();
        }
        println!("{json}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_buyer_claims_at_least_once() {
        let order = claimants(1000, 400);
        assert_eq!(order.len(), 1000);
        let distinct: std::collections::HashSet<usize> = order.iter().copied().collect();
        assert_eq!(distinct.len(), 400);
    }
}
