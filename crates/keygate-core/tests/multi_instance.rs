//! Two keygate instances on one PostgreSQL database: a key changed through one (deleted,
//! blocked, regenerated, its lease revoked) is refused by the other within a second, even though
//! the other had it cached (LISTEN/NOTIFY, not the cache TTL). An instance skips its own
//! announcements when they come back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use keygate_mock::{MockConfig, MockServer};
use serde_json::{json, Value};

use keygate_core::keys::{invalidate, token};
use keygate_core::store::Store;

use common::{config_for_mock, postgres_url, spawn_on, Gateway, ADMIN};

struct Pair {
    a: Gateway,
    b: Gateway,
    client: reqwest::Client,
    _mock: MockServer,
}

impl Pair {
    async fn start(url: &str) -> Self {
        let mock = MockServer::start("127.0.0.1:0", MockConfig::default())
            .await
            .unwrap();
        let yaml = config_for_mock(&mock.url(), "");
        let (a, b) = tokio::join!(spawn_on(&yaml, url), spawn_on(&yaml, url));
        Self {
            a,
            b,
            client: reqwest::Client::new(),
            _mock: mock,
        }
    }

    async fn admin(&self, on: &Gateway, path: &str, body: Value) -> Value {
        let response = self
            .client
            .post(format!("{}{path}", on.url))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.json().await.unwrap()
    }

    async fn chat(&self, on: &Gateway, key: &str) -> u16 {
        self.client
            .post(format!("{}/v1/chat/completions", on.url))
            .bearer_auth(key)
            .json(&json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// A new key, used once on each instance so both have it cached.
    async fn cached_key(&self) -> String {
        let key = self.admin(&self.a, "/key/generate", json!({})).await["key"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(self.chat(&self.a, &key).await, 200);
        assert_eq!(self.chat(&self.b, &key).await, 200);
        key
    }

    /// How long until `b` refuses `key` with 401 (panics after 3 s).
    async fn refused_on_b_after(&self, key: &str) -> Duration {
        let started = Instant::now();
        loop {
            let status = self.chat(&self.b, key).await;
            if status == 401 {
                return started.elapsed();
            }
            assert_eq!(status, 200);
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "b still accepts the key"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn a_key_changed_on_one_instance_is_refused_by_the_other_within_a_second() {
    let Some(url) = postgres_url() else { return };
    let pair = Pair::start(&url).await;

    let deleted = pair.cached_key().await;
    pair.admin(&pair.a, "/key/delete", json!({"keys": [deleted]}))
        .await;
    let took = pair.refused_on_b_after(&deleted).await;
    assert!(took < Duration::from_secs(1), "delete seen after {took:?}");

    let blocked = pair.cached_key().await;
    pair.admin(
        &pair.a,
        "/key/update",
        json!({"key": blocked, "blocked": true}),
    )
    .await;
    let took = pair.refused_on_b_after(&blocked).await;
    assert!(took < Duration::from_secs(1), "block seen after {took:?}");

    let old = pair.cached_key().await;
    let new = pair
        .admin(&pair.a, "/key/regenerate", json!({"key": old}))
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let took = pair.refused_on_b_after(&old).await;
    assert!(
        took < Duration::from_secs(1),
        "regenerate seen after {took:?}"
    );
    assert_eq!(pair.chat(&pair.b, &new).await, 200);
}

#[tokio::test]
async fn an_instance_skips_its_own_announcements_when_they_come_back() {
    let Some(url) = postgres_url() else { return };
    let pair = Pair::start(&url).await;
    let key = pair.cached_key().await;
    let token_id = token::token_id(&key);
    let (a, b) = (&pair.a.state, &pair.b.state);
    assert!(a.keys().holds(&token_id) && b.keys().holds(&token_id));

    // A change announced by `a` (a has dropped the key already, and may have read it again
    // since): b drops the key; a, reading its own announcement, keeps what it holds.
    invalidate::announce(a.store(), a.instance(), std::slice::from_ref(&token_id)).await;
    let started = Instant::now();
    while b.keys().holds(&token_id) {
        assert!(started.elapsed() < Duration::from_secs(3), "b kept the key");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Both listeners got it at the same time; give a's a moment to act on it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        a.keys().holds(&token_id),
        "a dropped the key on its own announcement"
    );

    // From an instance that names none (an older one): both drop it.
    let Store::Postgres(pool) = a.store() else {
        panic!("a PostgreSQL store")
    };
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(invalidate::CHANNEL)
        .bind(&token_id)
        .execute(pool)
        .await
        .unwrap();
    let started = Instant::now();
    while a.keys().holds(&token_id) {
        assert!(started.elapsed() < Duration::from_secs(3), "a kept the key");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
