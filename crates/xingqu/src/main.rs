//! The `xingqu` binary: `serve`, `migrate` and `admin`, with one typed configuration parsed here.

mod bench;
mod eval;

/// jemalloc rather than glibc's malloc: a flash sale's orders are built on the request threads and
/// freed on the writer's, and glibc's arenas took a lock for every such free (30-33k orders/s
/// with glibc, 42-45k with jemalloc, same machine and code).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
/// Its options are built in: see `.cargo/config.toml`.
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::EnvFilter;
use xingqu_app::clock::SystemClock;
use xingqu_app::{App, AppConfig};
use xingqu_http::HttpConfig;

#[derive(Parser, Debug)]
#[command(name = "xingqu", version, about = "Xingqu: an interest e-commerce platform")]
struct Cli {
    /// Database: sqlite://PATH (embedded, the default) or postgres://USER@HOST/DB.
    #[arg(long, global = true, env = "XINGQU_DATABASE_URL", default_value = "sqlite://xingqu.db")]
    database_url: String,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "XINGQU_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the HTTP API (applies migrations first).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "XINGQU_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Seed the demo marketplace (once per database; a no-op when already seeded).
        #[arg(long)]
        demo: bool,
        /// Requests running longer than this are answered with 503.
        #[arg(long, env = "XINGQU_REQUEST_TIMEOUT_S", default_value_t = 30)]
        request_timeout_s: u64,
        /// Request bodies larger than this are refused with 413.
        #[arg(long, env = "XINGQU_BODY_LIMIT_BYTES", default_value_t = 1024 * 1024)]
        body_limit_bytes: usize,
        /// Lifetime of a sign-in token.
        #[arg(long, env = "XINGQU_SESSION_TTL_S", default_value_t = 7 * 24 * 3600)]
        session_ttl_s: i64,
        #[command(flatten)]
        orders: OrderOptions,
    },
    /// Verify stored data.
    Check {
        #[command(subcommand)]
        command: CheckCommand,
    },
    /// Offline evaluation of the recommender against baselines on an interaction log.
    Eval(eval::EvalArgs),
    /// Benchmarks that compare Xingqu with real peers on this machine.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(clap::Args, Debug, Clone)]
struct OrderOptions {
    /// How long an unpaid order holds its stock.
    #[arg(long, env = "XINGQU_ORDER_EXPIRY_S", default_value_t = 15 * 60)]
    order_expiry_s: i64,
    /// Days after delivery before receipt is confirmed automatically.
    #[arg(long, env = "XINGQU_AUTO_COMPLETE_DAYS", default_value_t = 7)]
    auto_complete_days: i64,
    /// Days after delivery in which returns are possible; settlement waits for them.
    #[arg(long, env = "XINGQU_RETURN_WINDOW_DAYS", default_value_t = 7)]
    return_window_days: i64,
    /// Secret the simulated payment gateway signs callbacks with.
    #[arg(
        long,
        env = "XINGQU_PAYMENT_SECRET",
        default_value = "xingqu-simulated-gateway-secret",
        hide_env_values = true
    )]
    payment_secret: String,
    /// This node's number (0-255) when several processes share one database.
    #[arg(long, env = "XINGQU_NODE_ID", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=255))]
    node_id: u16,
    /// What a missed dispatch promise pays the buyer, in basis points of each line's payment.
    #[arg(long, env = "XINGQU_DISPATCH_COMPENSATION_BPS", default_value_t = 500, value_parser = clap::value_parser!(i64).range(0..=10_000))]
    dispatch_compensation_bps: i64,
    /// A confirmed counterfeit pays back the price and this many times it on top (假一赔N).
    #[arg(long, env = "XINGQU_COUNTERFEIT_MULTIPLE", default_value_t = 3, value_parser = clap::value_parser!(i64).range(0..=10))]
    counterfeit_multiple: i64,
    /// Days after sign-off in which an opened cosmetic may be returned after a reaction.
    #[arg(long, env = "XINGQU_ALLERGY_RETURN_DAYS", default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=365))]
    allergy_return_days: i64,
    /// Express refunds go to buyers who lost at most this many after-sale disputes in 90 days.
    #[arg(long, env = "XINGQU_EXPRESS_REFUND_MAX_LOST", default_value_t = 2, value_parser = clap::value_parser!(i64).range(0..=100))]
    express_refund_max_lost: i64,
    /// Hours a merchant has to answer an after-sale request before it is approved by itself.
    #[arg(long, env = "XINGQU_AFTER_SALE_ANSWER_HOURS", default_value_t = 48, value_parser = clap::value_parser!(i64).range(1..=365))]
    after_sale_answer_hours: i64,
    /// Days a buyer has to ship a return before the request closes.
    #[arg(long, env = "XINGQU_RETURN_SHIP_DAYS", default_value_t = 7, value_parser = clap::value_parser!(i64).range(1..=365))]
    return_ship_days: i64,
    /// Days a merchant has to refund a received return before it is refunded by itself.
    #[arg(long, env = "XINGQU_RETURN_REFUND_DAYS", default_value_t = 7, value_parser = clap::value_parser!(i64).range(1..=365))]
    return_refund_days: i64,
    /// Days a buyer has to dispute a rejected request before it closes.
    #[arg(long, env = "XINGQU_DISPUTE_DAYS", default_value_t = 7, value_parser = clap::value_parser!(i64).range(1..=365))]
    dispute_days: i64,
    /// Days after a return ships before it counts as received if the merchant never confirms it.
    #[arg(long, env = "XINGQU_RETURN_RECEIVE_DAYS", default_value_t = 10, value_parser = clap::value_parser!(i64).range(1..=365))]
    return_receive_days: i64,
}

#[derive(Subcommand, Debug)]
enum CheckCommand {
    /// Verify the ledger: balanced transactions, payments equal to their lines, refunds within payments.
    Ledger,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Create an operator account (bootstraps the first operator).
    CreateOperator {
        #[arg(long)]
        email: String,
        /// The password; read from XINGQU_OPERATOR_PASSWORD when not given.
        #[arg(long, env = "XINGQU_OPERATOR_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, default_value = "operator")]
        display_name: String,
    },
}

fn main() -> anyhow::Result<()> {
    runtime()?.block_on(run())
}

/// The runtime requests are served on: a worker per core, and one more. The flash-sale writer
/// and the journal's applier are threads of their own that block in `fdatasync` and SQLite;
/// during a sale they hold a core part of the time, and a worker descheduled meanwhile left the
/// requests queued on it waiting. Measured on 2 cores (`bench flash-sale`, 5 paired runs): 3
/// workers answered more orders per second than 2 in every pair, with less CPU per answer.
/// `TOKIO_WORKER_THREADS` still decides when it is set.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        builder.worker_threads(cores + 1);
    }
    builder.enable_all().build()
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Benchmarks serve in-process too: a log line per request would measure the terminal.
    let default_filter = if matches!(cli.command, Command::Bench { .. }) { "warn" } else { "info,sqlx=warn" };
    init_logging(cli.log_json, default_filter);
    match cli.command {
        Command::Serve { listen, demo, request_timeout_s, body_limit_bytes, session_ttl_s, orders } => {
            let config = AppConfig {
                session_ttl_s,
                order_expiry_s: orders.order_expiry_s,
                auto_complete_s: orders.auto_complete_days * 86_400,
                return_window_s: orders.return_window_days * 86_400,
                payment_secret: orders.payment_secret.into_bytes(),
                node_id: orders.node_id,
                dispatch_compensation_bps: orders.dispatch_compensation_bps,
                counterfeit_multiple: orders.counterfeit_multiple,
                allergy_return_days: orders.allergy_return_days,
                express_refund_max_lost: orders.express_refund_max_lost,
                after_sale_deadlines: xingqu_domain::after_sale::status::Deadlines {
                    merchant_answer_ms: orders.after_sale_answer_hours * 3_600_000,
                    buyer_dispute_ms: orders.dispute_days * 86_400_000,
                    buyer_ship_ms: orders.return_ship_days * 86_400_000,
                    merchant_receive_ms: orders.return_receive_days * 86_400_000,
                    merchant_refund_ms: orders.return_refund_days * 86_400_000,
                },
            };
            let app = open_app(&cli.database_url, config).await?;
            if demo {
                let report = app.seed_demo().await.context("seed the demo marketplace")?;
                print_demo_banner(&report, listen);
            }
            app.resume_ids().await.map_err(|e| anyhow::anyhow!("resume order ids: {e}"))?;
            let warmed = app.warm_sessions().await.map_err(|e| anyhow::anyhow!("warm the session cache: {e}"))?;
            tracing::info!(sessions = warmed, "session cache warmed");
            match app.preheat_flash_sales().await {
                Ok(preheated) => tracing::info!(flash_sales = preheated, "flash sales preheated"),
                // They load on their first purchase instead.
                Err(error) => tracing::warn!(%error, "preheating the flash sales failed"),
            }
            let sold = app.rebuild_hot_lists().await.map_err(|e| anyhow::anyhow!("rebuild the hot lists: {e}"))?;
            tracing::info!(order_lines = sold, "hot lists rebuilt");
            let (end_streams, streams_end) = tokio::sync::watch::channel(false);
            let http =
                HttpConfig { body_limit_bytes, request_timeout: Duration::from_secs(request_timeout_s), streams_end };
            let router = xingqu_http::router(app.clone(), http).context("build the router")?;
            let listener =
                tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listen on {listen}"))?;
            tracing::info!(address = %listener.local_addr()?, "serving");
            let timers = tokio::spawn(run_timers(app.clone()));
            let shutdown = async move {
                shutdown_signal().await;
                // Live streams end now, or the graceful shutdown would wait for them.
                let _ = end_streams.send(true);
            };
            xingqu_http::serve(listener, router, shutdown).await.context("serve")?;
            timers.abort();
            app.store().close().await;
            tracing::info!("stopped");
        }
        Command::Check { command: CheckCommand::Ledger } => {
            let app = open_app(&cli.database_url, AppConfig::default()).await?;
            let report = app.store().check_ledger().await.context("check the ledger")?;
            println!(
                "ledger: {} transactions, {} entries, {} paid orders",
                report.transactions, report.entries, report.paid_orders
            );
            for (account, balance_fen) in &report.balances {
                println!("  {account:<32} {balance_fen:>16} 分");
            }
            if report.violations.is_empty() {
                println!("ok: every transaction balances, payments equal their lines, refunds stay within payments");
            } else {
                for violation in &report.violations {
                    println!("VIOLATION: {violation}");
                }
                anyhow::bail!("{} ledger violations", report.violations.len());
            }
        }
        Command::Eval(args) => eval::run(args)?,
        Command::Bench { command } => bench::run(command, &cli.database_url).await?,
        Command::Migrate => {
            open_app(&cli.database_url, AppConfig::default()).await?;
            println!("migrations applied to {}", redact(&cli.database_url));
        }
        Command::Admin { command: AdminCommand::CreateOperator { email, password, display_name } } => {
            let app = open_app(&cli.database_url, AppConfig::default()).await?;
            let user =
                app.create_operator(&email, &password, &display_name).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("operator {} created (id {})", user.email, user.id);
        }
    }
    Ok(())
}

async fn open_app(database_url: &str, config: AppConfig) -> anyhow::Result<App> {
    let store = xingqu_store::connect(database_url).await.with_context(|| format!("open {}", redact(database_url)))?;
    store.migrate().await.context("apply migrations")?;
    Ok(App::new(store, Arc::new(SystemClock), config))
}

/// The durable timers: every second, whatever is due (reservations, confirmations, settlements).
/// The timers are rows in the store, so they survive restarts, and each change is guarded by the
/// order's status, so several nodes may run this at once.
async fn run_timers(app: App) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match app.run_due_timers().await {
            Ok(report) if report != Default::default() => {
                tracing::info!(
                    expired = report.expired,
                    completed = report.completed,
                    settled = report.settled,
                    "timers ran"
                )
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "timers failed"),
        }
        if let Err(error) = app.preheat_flash_sales().await {
            tracing::error!(%error, "preheating flash sales failed");
        }
    }
}

/// Hides a password in a database URL before it reaches a log or the terminal.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn init_logging(json: bool, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn print_demo_banner(report: &xingqu_app::demo::SeedReport, listen: SocketAddr) {
    let action = if report.seeded { "seeded" } else { "already present" };
    println!();
    println!(
        "Xingqu demo marketplace ({action}): {} shops, {} products, {} SKUs",
        report.merchants, report.products, report.skus
    );
    println!("  API:       http://{listen}/v1/products?tag=farm_specialty");
    println!("  Flash:     http://{listen}/v1/flash-sales/1   (buy: POST /v1/flash-sales/1/orders)");
    println!("  OpenAPI:   http://{listen}/openapi.json");
    println!("  Metrics:   http://{listen}/metrics");
    println!("  Demo accounts (POST /v1/auth/login with e-mail and password):");
    for (role, email, password) in &report.accounts {
        println!("    {:<15} {email:<26} {password}", role.as_str());
    }
    println!();
}

/// Resolves on SIGTERM or Ctrl-C, starting a graceful shutdown.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://xingqu.db"), "sqlite://xingqu.db");
    }
}
