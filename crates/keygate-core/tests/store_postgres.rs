//! The store on a real PostgreSQL, at `KEYGATE_TEST_POSTGRES_URL`. Without it the test fails
//! loudly, unless `KEYGATE_TEST_SKIP_SERVICES=1` says to skip service-backed tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keygate_core::store::Store;

fn postgres_url() -> Option<String> {
    match std::env::var("KEYGATE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("KEYGATE_TEST_SKIP_SERVICES").as_deref() == Ok("1") => {
            eprintln!("skipped: KEYGATE_TEST_SKIP_SERVICES=1 and no KEYGATE_TEST_POSTGRES_URL");
            None
        }
        _ => panic!(
            "KEYGATE_TEST_POSTGRES_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test); \
             set KEYGATE_TEST_SKIP_SERVICES=1 to skip tests that need PostgreSQL"
        ),
    }
}

#[tokio::test]
async fn postgres_store_migrates_idempotently_and_answers() {
    let Some(url) = postgres_url() else { return };
    let (a, b) = tokio::join!(Store::connect(&url), Store::connect(&url));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.kind(), "postgres");
    a.ping().await.unwrap();
    let applied = a.applied_migrations().await.unwrap();
    assert_eq!(applied, b.applied_migrations().await.unwrap());
    assert_eq!(applied.first(), Some(&1));
    a.close().await;
    b.close().await;
}
