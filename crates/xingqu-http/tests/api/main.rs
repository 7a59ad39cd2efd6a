//! API tests: each spawns the real server on port 0 over a fresh database (SQLite always,
//! PostgreSQL when `XINGQU_TEST_POSTGRES_URL` is set) with a fake clock, and talks HTTP to it.

mod helpers;

mod accounts;
mod after_sales;
mod analytics;
mod bad_input;
mod campaigns;
mod catalog;
mod coupons;
mod demo;
mod events;
mod feed;
mod lucky_bags;
mod orders;
mod products;
mod scores;
mod system;

/// Generates `sqlite::case` and `postgres::case` for each case `async fn case(app: &TestApp)`.
#[macro_export]
macro_rules! api_tests {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let app = $crate::helpers::TestApp::spawn(xingqu_store::Backend::Sqlite).await.expect("sqlite");
                    super::$case(&app).await;
                    app.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(app) = $crate::helpers::TestApp::spawn(xingqu_store::Backend::Postgres).await else { return };
                    super::$case(&app).await;
                    app.finish().await;
                }
            )*
        }
    };
}
