//! Crash test: the real server binary sells a flash sale, is killed with SIGKILL midway, and
//! restarts. Every order acknowledged with a 2xx must exist, stock + sold must equal the pool, the
//! ledger must check, and the sale must finish exactly at the pool after the restart.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use xingqu_app::clock::SystemClock;
use xingqu_app::{App, AppConfig};
use xingqu_store::Backend;
use xingqu_store::testing::TestDb;

const POOL_UNITS: i64 = 400;
const BUYERS: usize = 300;

struct Server {
    child: std::process::Child,
    url: String,
}

async fn start(database_url: &str) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_xingqu"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database-url", database_url])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the server binary");
    let url = format!("http://127.0.0.1:{port}");
    let mut healthy = false;
    for _ in 0..400 {
        if reqwest::get(format!("{url}/healthz")).await.is_ok_and(|r| r.status().is_success()) {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if !healthy {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server did not become healthy");
    }
    Server { child, url }
}

/// Buyer `i` buys with key `k{i}-{n}`; returns the order id on a 2xx, None otherwise.
async fn buy(
    client: &reqwest::Client,
    url: &str,
    sale: i64,
    token: &str,
    key: &str,
) -> Result<Option<i64>, reqwest::Error> {
    let body =
        r#"{"quantity":1,"address":{"name":"金顺姬","phone":"13800000000","region_code":"222401","detail":"延吉市"}}"#;
    let response = client
        .post(format!("{url}/v1/flash-sales/{sale}/orders"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    if !response.status().is_success() {
        return Ok(None);
    }
    let value: serde_json::Value = response.json().await?;
    Ok(value["order_id"].as_i64())
}

async fn crash_and_recover(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = App::new(db.store.clone(), Arc::new(SystemClock), AppConfig::default());
    let scenario = app.seed_flash_scenario(BUYERS, POOL_UNITS, 2).await.expect("scenario");
    let sale = scenario.flash_sale_id;
    let tokens = Arc::new(scenario.buyer_tokens.clone());
    // The server process must own the database's flash-sale journal: this one lets it go.
    db.store.close().await;

    let mut server = start(&db.url).await;
    // key -> order id, for every 2xx answer.
    let acknowledged: Arc<Mutex<BTreeMap<String, i64>>> = Arc::default();
    let client = reqwest::Client::new();
    let mut clients = Vec::new();
    for worker in 0..24 {
        let (client, url, tokens, acknowledged) =
            (client.clone(), server.url.clone(), tokens.clone(), acknowledged.clone());
        clients.push(tokio::spawn(async move {
            for i in (worker..BUYERS).step_by(24) {
                for n in 0..2 {
                    let key = format!("k{i}-{n}");
                    match buy(&client, &url, sale, &tokens[i], &key).await {
                        Ok(Some(order_id)) => {
                            acknowledged.lock().expect("lock").insert(key, order_id);
                        }
                        Ok(None) => {}
                        Err(_) => return,
                    }
                }
            }
        }));
    }
    // Kill it mid-sale.
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if acknowledged.lock().expect("lock").len() >= 100 {
            break;
        }
    }
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reap");
    for client in clients {
        let _ = client.await;
    }
    let before_restart = acknowledged.lock().expect("lock").clone();
    assert!(!before_restart.is_empty());

    // Restart on the same database: everything acknowledged is there.
    let mut server = start(&db.url).await;
    let store = xingqu_store::connect(&db.url).await.expect("open");
    for order_id in before_restart.values() {
        assert!(store.order(*order_id).await.expect("read").is_some(), "acknowledged order {order_id} was lost");
    }
    let check = |store: xingqu_store::Store| async move {
        let flash = store.flash_sale(sale).await.expect("read").expect("sale");
        let (holdings, keys) = store.flash_state(sale).await.expect("state");
        let held: i64 = holdings.iter().map(|h| h.1).sum();
        assert_eq!(flash.remaining_units + held, POOL_UNITS, "stock + sold = initial");
        assert_eq!(keys.len() as i64, held, "one order per unit held");
        let report = store.check_ledger().await.expect("ledger");
        assert!(report.violations.is_empty(), "{:?}", report.violations);
        (flash.remaining_units, keys)
    };
    check(store.clone()).await;

    // Buyers retry every key (answers they lost included) and finish the sale.
    let mut answers: BTreeMap<String, i64> = BTreeMap::new();
    for i in 0..BUYERS {
        for n in 0..2 {
            let key = format!("k{i}-{n}");
            if let Ok(Some(order_id)) = buy(&client, &server.url, sale, &tokens[i], &key).await {
                answers.insert(key, order_id);
            }
        }
    }
    for (key, order_id) in &before_restart {
        assert_eq!(answers.get(key), Some(order_id), "a retry of {key} returns the acknowledged order");
    }
    // A graceful stop applies whatever the server's journal still holds to the tables read here.
    let _ = std::process::Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status();
    server.child.wait().expect("reap");
    let (remaining, keys) = check(store.clone()).await;
    assert_eq!(remaining, 0, "the pool sells out exactly");
    let distinct: BTreeSet<i64> = answers.values().copied().collect();
    assert_eq!(distinct.len() as i64, POOL_UNITS);
    assert_eq!(keys.len() as i64, POOL_UNITS);
    let ledger = std::process::Command::new(env!("CARGO_BIN_EXE_xingqu"))
        .args(["check", "ledger", "--database-url", &db.url])
        .output()
        .expect("run xingqu check ledger");
    assert!(ledger.status.success(), "{}", String::from_utf8_lossy(&ledger.stdout));
    store.close().await;
    app.store().close().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_sigkill_mid_sale() {
    crash_and_recover(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_sigkill_mid_sale() {
    crash_and_recover(Backend::Postgres).await;
}
