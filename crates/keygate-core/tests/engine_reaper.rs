//! The lease reaper at scale: 100,000 leases expiring together are all revoked within seconds,
//! and inference keeps being served meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use keygate_core::store::Store;

/// Inserts `n` expired leases (and their keys) in one transaction, straight into SQLite.
async fn bulk_expired(store: &Store, n: usize) {
    let Store::Sqlite(pool) = store else {
        panic!("sqlite only")
    };
    let mut tx = pool.begin().await.unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut keys = sqlx::QueryBuilder::new(
            "INSERT INTO keygate_keys (token_id, key_name, created_at, updated_at, expires) ",
        );
        keys.push_values(chunk, |mut row, i| {
            row.push_bind(format!("tok-{i}"))
                .push_bind("sk-...bulk")
                .push_bind(0_i64)
                .push_bind(0_i64)
                .push_bind(1_000_i64);
        });
        keys.build().execute(&mut *tx).await.unwrap();
        let mut leases = sqlx::QueryBuilder::new(
            "INSERT INTO keygate_leases (lease_id, mount, role, token_id, issued_at, expires_at) ",
        );
        leases.push_values(chunk, |mut row, i| {
            row.push_bind(format!("keygate/creds/bulk/{i:08}"))
                .push_bind("keygate")
                .push_bind("bulk")
                .push_bind(format!("tok-{i}"))
                .push_bind(0_i64)
                .push_bind(1_i64);
        });
        leases.build().execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_expired_leases_are_revoked_within_seconds() {
    let mock = keygate_mock::MockServer::start("127.0.0.1:0", Default::default())
        .await
        .unwrap();
    let url = format!("sqlite://{}/reaper.db", common::temp_dir().display());
    {
        let store = Store::connect(&url).await.unwrap();
        bulk_expired(&store, 100_000).await;
        store.close().await;
    }
    let gateway = common::spawn_on(&common::config_for_mock(&mock.url(), ""), &url).await;
    let store = gateway.state.store().clone();
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut served = 0;
    loop {
        // Requests keep being answered while the reaper works.
        let response = client
            .post(format!("{}/v1/chat/completions", gateway.url))
            .bearer_auth(common::ADMIN)
            .json(&serde_json::json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        served += 1;
        if store
            .expired_leases(i64::MAX / 2, 1)
            .await
            .unwrap()
            .is_empty()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "100,000 expired leases not revoked in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    eprintln!("100,000 leases revoked in {took:?}; {served} requests served meanwhile");
    assert!(store.get_key("tok-99999").await.unwrap().is_none());
    assert!(served > 1);
}
