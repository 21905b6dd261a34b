//! The engine's Vault routes in process, on SQLite and on the PostgreSQL at
//! `KEYGATE_TEST_POSTGRES_URL`: role, creds, renew, lookup, revoke, and the key following its
//! lease on the inference path.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use keygate_mock::{MockConfig, MockServer};
use serde_json::{json, Value};

async fn exercise(database_url: &str) {
    let mock = MockServer::start("127.0.0.1:0", MockConfig::default())
        .await
        .unwrap();
    let yaml = common::config_for_mock(&mock.url(), "");
    let gateway = common::spawn_on(&yaml, database_url).await;
    let http = reqwest::Client::new();
    let vault = |method: &str, path: &str, body: Option<Value>| {
        let mut request = http
            .request(
                method.parse().unwrap(),
                format!("{}/v1/{path}", gateway.url),
            )
            .header("x-vault-token", common::ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let role = format!("r{}", common::unique().replace('-', ""));
    let w = vault(
        "PUT",
        &format!("keygate/roles/{role}"),
        Some(json!({"models": "gpt", "ttl": "60", "max_ttl": "120"})),
    )
    .await
    .unwrap();
    assert_eq!(w.status(), 204);
    let creds: Value = vault("GET", &format!("keygate/creds/{role}"), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (lease_id, key) = (
        creds["lease_id"].as_str().unwrap().to_owned(),
        creds["data"]["key"].as_str().unwrap().to_owned(),
    );
    assert_eq!(creds["lease_duration"], 60);
    let chat = || {
        http.post(format!("{}/v1/chat/completions", gateway.url))
            .bearer_auth(&key)
            .json(&json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    assert_eq!(chat().await.unwrap().status(), 200);
    let renewed: Value = vault(
        "PUT",
        "sys/leases/renew",
        Some(json!({"lease_id": lease_id, "increment": 90})),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(renewed["lease_duration"], 90);
    let stored = gateway
        .state
        .store()
        .get_key(&keygate_core::keys::token::hash_key(&key))
        .await
        .unwrap()
        .unwrap();
    let expires_in = stored.expires.unwrap() / 1000 - common_now();
    assert!(
        (85..=91).contains(&expires_in),
        "the key's expiry did not follow: {expires_in}"
    );
    let looked: Value = vault(
        "PUT",
        "sys/leases/lookup",
        Some(json!({"lease_id": lease_id})),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(looked["data"]["id"], lease_id.as_str());
    let denied = http
        .put(format!("{}/v1/sys/leases/revoke/{lease_id}", gateway.url))
        .header("x-vault-token", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    let revoked = vault(
        "PUT",
        &format!("sys/leases/revoke/{lease_id}"),
        Some(json!({"sync": false})),
    )
    .await
    .unwrap();
    // `sync: false`, as `bao lease revoke` sends: Vault's 202.
    assert_eq!(revoked.status(), 202);
    assert_eq!(chat().await.unwrap().status(), 401);
}

fn common_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn engine_routes_on_sqlite() {
    exercise(&format!(
        "sqlite://{}/engine.db",
        common::temp_dir().display()
    ))
    .await;
}

#[tokio::test]
async fn engine_routes_on_postgres() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    exercise(&url).await;
}
