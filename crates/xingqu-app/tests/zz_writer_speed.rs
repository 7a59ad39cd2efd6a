use std::sync::Arc;
use xingqu_app::clock::SystemClock;
use xingqu_app::orders::AddressInput;
use xingqu_app::{App, AppConfig};
use xingqu_domain::account::{Actor, Role};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_speed() {
    let db = xingqu_store::testing::TestDb::sqlite().await;
    let app = App::new(db.store.clone(), Arc::new(SystemClock), AppConfig::default());
    let s = app.seed_flash_scenario(10000, 10000, 2).await.expect("seed");
    let address = AddressInput { name: "a".into(), phone: "13800000000".into(), region_code: "222401".into(), detail: "d".into() };
    let started = std::time::Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = vec![];
    for _ in 0..256 {
        let (app, s, next, address) = (app.clone(), s.clone(), next.clone(), address.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= 10000 { break; }
                let actor = Actor { user_id: s.buyer_ids[i], role: Role::Consumer, merchant_id: None };
                app.flash_purchase(&actor, s.flash_sale_id, Some(&format!("k{i}")), 1, &address).await.expect("buy");
            }
        }));
    }
    for t in tasks { t.await.expect("join"); }
    let e = started.elapsed().as_secs_f64();
    println!("10000 orders in {e:.3}s = {:.0}/s", 10000.0 / e);
}
