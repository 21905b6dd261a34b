//! Budgets and rpm/tpm limits across instances: two gateways on one PostgreSQL database (and,
//! with `redis_url`, one Redis) under a concurrent load admit together no more than one key's
//! limits. The same load with `limits.scope: instance` shows what the test would catch: each
//! instance admits the whole budget. When Redis stops answering, keys with limits are refused
//! with 503 `limiter_unavailable` and keys without are served; when it is back, everything is.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use keygate_core::store::{KeyRecord, Leadership, Store};
use keygate_mock::{MockConfig, MockServer};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

use common::{postgres_url, redis_url, spawn_on, unique, Gateway, ADMIN};

/// USD per token of the `priced` model.
const PER_TOKEN: f64 = 0.001;

struct Pair {
    a: Gateway,
    b: Gateway,
    client: reqwest::Client,
    _mock: MockServer,
}

fn yaml(mock: &str, scope: &str, redis: Option<&str>) -> String {
    let redis = redis.map_or(String::new(), |url| format!("redis_url: {url}\n"));
    format!(
        r#"
admin_key: ${{ADMIN}}
{redis}limits: {{ scope: {scope} }}
models:
  - name: priced
    provider: openai_compatible
    api_base: {mock}/v1
    api_key: env:UPSTREAM_KEY
    model: gpt-4o-mini
    price: {{ input_per_mtok: 1000, output_per_mtok: 1000 }}
"#
    )
}

impl Pair {
    async fn start(db: &str, scope: &str, redis: Option<&str>) -> Self {
        let mock = MockServer::start("127.0.0.1:0", MockConfig::default())
            .await
            .unwrap();
        let yaml = yaml(&mock.url(), scope, redis);
        let (a, b) = tokio::join!(spawn_on(&yaml, db), spawn_on(&yaml, db));
        Self {
            a,
            b,
            client: reqwest::Client::new(),
            _mock: mock,
        }
    }

    async fn key(&self, limits: Value) -> String {
        let response = self
            .client
            .post(format!("{}/key/generate", self.a.url))
            .bearer_auth(ADMIN)
            .json(&limits)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["key"].as_str().unwrap().to_owned()
    }

    /// One chat call on `on`: its status and, when served, its cost in USD.
    async fn chat(&self, on: &Gateway, key: &str) -> (u16, f64, Value) {
        let response = self
            .client
            .post(format!("{}/v1/chat/completions", on.url))
            .bearer_auth(key)
            .json(&json!({"model": "priced", "max_tokens": 8,
                          "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let tokens = body["usage"]["total_tokens"].as_f64().unwrap_or(0.0);
        (status, tokens * PER_TOKEN, body)
    }

    /// `n` calls, 8 at a time on each instance; the statuses and the cost served.
    async fn load(&self, key: &str, n: usize) -> (Vec<u16>, f64) {
        let calls = (0..n).map(|i| {
            let on = if i % 2 == 0 { &self.a } else { &self.b };
            self.chat(on, key)
        });
        let mut statuses = Vec::new();
        let mut cost = 0.0;
        let calls: Vec<_> = calls.collect();
        let mut calls = calls.into_iter();
        loop {
            let wave: Vec<_> = calls.by_ref().take(16).collect();
            if wave.is_empty() {
                break;
            }
            for (status, c, _) in join_all(wave).await {
                statuses.push(status);
                cost += c;
            }
        }
        (statuses, cost)
    }
}

async fn budget_holds(db: &str, redis: Option<&str>) {
    let pair = Pair::start(db, "auto", redis).await;
    let key = pair.key(json!({"max_budget": 0.5})).await;
    let (statuses, served) = pair.load(&key, 200).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 400).count();
    eprintln!("budget 0.5: {ok} served for ${served:.3}, {refused} refused");
    assert_eq!(ok + refused, statuses.len(), "{statuses:?}");
    assert!(refused > 0, "the load must go past the budget");
    assert!(
        served <= 0.5 + 1e-9,
        "two instances served ${served} on a $0.5 budget"
    );
}

async fn rpm_holds(db: &str, redis: Option<&str>) {
    let pair = Pair::start(db, "auto", redis).await;
    // A minute boundary inside the load would legitimately admit twice: try again then.
    for _ in 0..3 {
        let key = pair.key(json!({"rpm_limit": 10})).await;
        let minute = now_minute();
        let (statuses, _) = pair.load(&key, 60).await;
        if now_minute() != minute {
            continue;
        }
        let ok = statuses.iter().filter(|s| **s == 200).count();
        let limited = statuses.iter().filter(|s| **s == 429).count();
        assert_eq!(ok, 10, "{statuses:?}");
        assert_eq!(limited, 50);
        return;
    }
    panic!("three loads in a row crossed a minute boundary");
}

async fn tpm_holds(db: &str, redis: Option<&str>) {
    let pair = Pair::start(db, "auto", redis).await;
    for _ in 0..3 {
        let key = pair.key(json!({"tpm_limit": 30})).await;
        let minute = now_minute();
        // One at a time: tokens count once a request has settled.
        let mut tokens = 0.0;
        let mut refused_on = None;
        for i in 0..20 {
            let on = if i % 2 == 0 { &pair.a } else { &pair.b };
            let (status, cost, body) = pair.chat(on, &key).await;
            if status == 429 {
                assert!(body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("tpm_limit"));
                refused_on = Some(i);
                break;
            }
            assert_eq!(status, 200);
            tokens += cost / PER_TOKEN;
            // The settlement reaches the shared counters in the background.
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        if now_minute() != minute {
            continue;
        }
        assert!(refused_on.is_some(), "never refused after {tokens} tokens");
        assert!(tokens >= 30.0, "refused at {tokens} tokens");
        return;
    }
    panic!("three runs in a row crossed a minute boundary");
}

fn now_minute() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_budget_holds_across_instances() {
    let Some(db) = postgres_url() else { return };
    budget_holds(&db, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_rpm_holds_across_instances() {
    let Some(db) = postgres_url() else { return };
    rpm_holds(&db, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_tpm_holds_across_instances() {
    let Some(db) = postgres_url() else { return };
    tpm_holds(&db, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_budget_holds_across_instances() {
    let (Some(db), Some(redis)) = (postgres_url(), redis_url()) else {
        return;
    };
    budget_holds(&db, Some(&redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_rpm_holds_across_instances() {
    let (Some(db), Some(redis)) = (postgres_url(), redis_url()) else {
        return;
    };
    rpm_holds(&db, Some(&redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_tpm_holds_across_instances() {
    let (Some(db), Some(redis)) = (postgres_url(), redis_url()) else {
        return;
    };
    tpm_holds(&db, Some(&redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_instance_limits_let_two_instances_spend_twice_the_budget() {
    let Some(db) = postgres_url() else { return };
    let pair = Pair::start(&db, "instance", None).await;
    let key = pair.key(json!({"max_budget": 0.5})).await;
    let (_, served) = pair.load(&key, 200).await;
    eprintln!("scope instance, budget 0.5: served ${served:.3}");
    assert!(
        served > 0.5,
        "expected over-admission with per-instance limits"
    );
}

/// A TCP forwarder to `target` that can be cut (connections closed, new ones refused).
struct Cuttable {
    addr: String,
    open: Arc<AtomicBool>,
    _task: tokio::task::JoinHandle<()>,
}

impl Cuttable {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let open = Arc::new(AtomicBool::new(true));
        let flag = open.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !flag.load(Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    let cut = async {
                        while flag.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = copy => {}
                        () = cut => {}
                    }
                });
            }
        });
        Self {
            addr,
            open,
            _task: task,
        }
    }

    fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_refuses_keys_with_limits_and_serves_the_rest_then_recovers() {
    let (Some(db), Some(redis)) = (postgres_url(), redis_url()) else {
        return;
    };
    let target = redis
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = Cuttable::start(target).await;
    let via_proxy = format!("redis://{}", proxy.addr);
    let pair = Pair::start(&db, "auto", Some(&via_proxy)).await;
    let limited = pair
        .key(json!({"max_budget": 5.0, "rpm_limit": 1000}))
        .await;
    let free = pair.key(json!({})).await;
    assert_eq!(pair.chat(&pair.a, &limited).await.0, 200);

    proxy.set_open(false);
    // The forwarder notices within 20 ms and closes the open connections.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let (status, _, body) = pair.chat(&pair.a, &limited).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "limiter_unavailable", "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "refusal took {:?}",
        started.elapsed()
    );
    assert!(!body.to_string().contains(&limited));
    assert_eq!(pair.chat(&pair.b, &free).await.0, 200);

    proxy.set_open(true);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, body) = pair.chat(&pair.a, &limited).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "not recovered after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn one_instance_leads_the_cluster_work_and_another_takes_over() {
    let Some(db) = postgres_url() else { return };
    let store = Store::connect(&db).await.unwrap();
    let mut first = Leadership::default();
    let mut second = Leadership::default();
    // Another test binary may lead right now; wait for whichever leader to be one of ours.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (mut leader, mut other) = loop {
        if first.check(&store).await {
            break (first, second);
        }
        if second.check(&store).await {
            break (second, first);
        }
        assert!(std::time::Instant::now() < deadline, "nobody leads");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(leader.check(&store).await);
    assert!(!other.check(&store).await, "two leaders at once");
    drop(leader);
    // The lock goes with the leader's connection.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !other.check(&store).await {
        assert!(std::time::Instant::now() < deadline, "no takeover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn reservations_of_a_silent_instance_are_charged_once() {
    let Some(db) = postgres_url() else { return };
    let store = Store::connect(&db).await.unwrap();
    let pair_key = store_key(&store, 1.0).await;
    let dead = format!("dead-{}", unique());
    store.heartbeat(&dead, 0).await.unwrap();
    assert!(store
        .reserve_budget(&dead, &pair_key.token_id, 300_000)
        .await
        .unwrap());
    assert!(store
        .reserve_budget(&dead, &pair_key.token_id, 300_000)
        .await
        .unwrap());
    // 0.6 reserved: 0.5 more does not fit.
    assert!(!store
        .reserve_budget("other", &pair_key.token_id, 500_000)
        .await
        .unwrap());
    let silent = store.silent_instances(1).await.unwrap();
    assert!(silent.contains(&dead));
    assert_eq!(store.reap_instance(&dead).await.unwrap(), (1, 600_000));
    assert_eq!(store.reap_instance(&dead).await.unwrap(), (0, 0));
    let budget = store.budget(&pair_key.token_id).await.unwrap().unwrap();
    assert_eq!(budget.reserved_micros, 0);
    assert!((budget.spend_micros - 600_000.0).abs() < 1.0);
    // A late release from the reaped instance gives back nothing.
    store
        .release_reservations(&dead, &[(pair_key.token_id.clone(), 300_000)], &[])
        .await
        .unwrap();
    let budget = store.budget(&pair_key.token_id).await.unwrap().unwrap();
    assert_eq!(budget.reserved_micros, 0);
}

async fn store_key(store: &Store, max_budget: f64) -> KeyRecord {
    let record = KeyRecord {
        max_budget: Some(max_budget),
        ..KeyRecord::new(format!("shared-limits-{}", unique()), "sk-...test", 1)
    };
    store.insert_key(&record).await.unwrap();
    record
}
