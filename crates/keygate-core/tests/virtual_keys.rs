//! Virtual keys on the inference path, in process against keygate-mock: expiry, block, delete,
//! model scope, rate and concurrency limits, and budgets exact under concurrency, with spend
//! settled from the upstream's usage and written to the store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use keygate_core::keys::token;
use keygate_core::store::KeyRecord;
use keygate_mock::{MockConfig, MockServer};
use serde_json::{json, Value};

/// $1 per thousand tokens, so the mock's small usage costs something.
const MODELS: &str = r#"
  - name: priced
    provider: openai_compatible
    api_base: "{mock}/v1"
    api_key: env:UPSTREAM_KEY
    model: gpt-4o-mini
    price: { input_per_mtok: 1000, output_per_mtok: 1000 }
  - name: priced-claude
    provider: anthropic
    api_base: "{mock}"
    api_key: env:UPSTREAM_KEY
    model: claude-3-5-haiku-latest
    price: { input_per_mtok: 1000, output_per_mtok: 1000 }
  - name: slowpoke
    provider: openai_compatible
    api_base: "{mock}/v1"
    api_key: env:UPSTREAM_KEY
    model: "gpt-4o-mini:chunks=5,delay_ms=200"
"#;

struct Setup {
    mock: MockServer,
    gateway: common::Gateway,
    client: reqwest::Client,
}

/// Which store a test runs on.
#[derive(Clone, Copy)]
enum Db {
    Sqlite,
    Postgres,
}

/// The gateway on `db`; `None` when PostgreSQL is skipped (`KEYGATE_TEST_SKIP_SERVICES=1`).
async fn setup(db: Db) -> Option<Setup> {
    let url = match db {
        Db::Sqlite => format!("sqlite://{}/keygate.db", common::temp_dir().display()),
        Db::Postgres => common::postgres_url()?,
    };
    let mock = MockServer::start("127.0.0.1:0", MockConfig::default())
        .await
        .unwrap();
    let models = MODELS.replace("{mock}", &mock.url());
    let gateway = common::spawn_on(&common::config_for_mock(&mock.url(), &models), &url).await;
    Some(Setup {
        mock,
        gateway,
        client: reqwest::Client::new(),
    })
}

/// Runs a test body once on SQLite and once on PostgreSQL.
macro_rules! on_both_stores {
    ($(#[$attr:meta])* $name:ident, $body:ident) => {
        mod $name {
            use super::*;

            $(#[$attr])*
            async fn sqlite() {
                if let Some(s) = setup(Db::Sqlite).await {
                    $body(s).await;
                }
            }

            $(#[$attr])*
            async fn postgres() {
                if let Some(s) = setup(Db::Postgres).await {
                    $body(s).await;
                }
            }
        }
    };
}

on_both_stores!(
    #[tokio::test]
    scope_expiry_block_and_delete,
    scope_expiry_block_and_delete_on
);
on_both_stores!(
    #[tokio::test]
    rate_limits,
    rpm_and_parallel_limits_answer_429_with_retry_after
);
on_both_stores!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    budget_under_concurrency,
    five_hundred_concurrent_requests_never_overspend
);
on_both_stores!(
    #[tokio::test]
    stream_usage,
    streams_are_charged_from_usage_and_the_usage_chunk_is_only_sent_when_asked_for
);

fn record(token_id: String) -> KeyRecord {
    KeyRecord::new(token_id, "sk-...test", 0)
}

impl Setup {
    /// Stores a key shaped by `edit` and returns its plaintext.
    async fn key(&self, edit: impl FnOnce(&mut KeyRecord)) -> (String, String) {
        let plaintext = token::new_key();
        let mut key = record(token::hash_key(&plaintext));
        edit(&mut key);
        self.gateway.state.store().insert_key(&key).await.unwrap();
        (plaintext, key.token_id)
    }

    async fn chat(&self, key: &str, model: &str, stream: bool) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/chat/completions", self.gateway.url))
            .bearer_auth(key)
            .json(&json!({"model": model, "stream": stream, "max_tokens": 20,
                          "messages": [{"role": "user", "content": "hello"}]}))
            .send()
            .await
            .unwrap()
    }
}

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn scope_expiry_block_and_delete_on(s: Setup) {
    let (key, token_id) = s.key(|k| k.models = vec!["priced".into()]).await;
    assert_eq!(s.chat(&key, "priced", false).await.status(), 200);
    let (status, body) = error_of(s.chat(&key, "priced-claude", false).await).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("priced-claude"));
    // /v1/models lists only what the key may call.
    let models: Value = s
        .client
        .get(format!("{}/v1/models", s.gateway.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["priced"]);
    // Deleted: refused on its very next request.
    let store = s.gateway.state.store();
    store
        .delete_keys(std::slice::from_ref(&token_id))
        .await
        .unwrap();
    s.gateway.state.keys().invalidate(&token_id);
    assert_eq!(s.chat(&key, "priced", false).await.status(), 401);
    // Expired and blocked.
    let (expired, _) = s.key(|k| k.expires = Some(1)).await;
    let (status, body) = error_of(s.chat(&expired, "priced", false).await).await;
    assert_eq!(status, 401);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Expired"));
    let (blocked, _) = s.key(|k| k.blocked = true).await;
    assert_eq!(s.chat(&blocked, "priced", false).await.status(), 401);
    // Unknown keys, and a key's hash presented as if it were the key.
    assert_eq!(s.chat("sk-unknown", "priced", false).await.status(), 401);
    let (_, hash) = s.key(|_| {}).await;
    assert_eq!(s.chat(&hash, "priced", false).await.status(), 401);
    // The upstream never saw a virtual key.
    assert!(s
        .mock
        .records()
        .iter()
        .all(|r| r.credential.as_deref() == Some(common::UPSTREAM_KEY)));
}

async fn rpm_and_parallel_limits_answer_429_with_retry_after(s: Setup) {
    let (key, _) = s.key(|k| k.rpm_limit = Some(3)).await;
    for _ in 0..3 {
        assert_eq!(s.chat(&key, "priced", false).await.status(), 200);
    }
    let refused = s.chat(&key, "priced", false).await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let (key, _) = s.key(|k| k.max_parallel_requests = Some(1)).await;
    let first = s.chat(&key, "slowpoke", true).await;
    assert_eq!(first.status(), 200);
    assert_eq!(s.chat(&key, "slowpoke", false).await.status(), 429);
    let _ = first.bytes().await.unwrap();
    assert_eq!(s.chat(&key, "priced", false).await.status(), 200);
}

async fn five_hundred_concurrent_requests_never_overspend(s: Setup) {
    let budget = 2.0;
    let (key, token_id) = s.key(|k| k.max_budget = Some(budget)).await;
    let key = Arc::new(key);
    let s = Arc::new(s);
    let tasks = (0..500).map(|i| {
        let (s, key) = (s.clone(), key.clone());
        async move {
            let model = if i % 3 == 0 {
                "priced-claude"
            } else {
                "priced"
            };
            let response = s.chat(&key, model, i % 2 == 0).await;
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        }
    });
    // In waves of 64 at once, so the budget is used up while requests keep coming.
    let statuses: Vec<u16> = futures_util::stream::iter(tasks)
        .buffer_unordered(64)
        .collect()
        .await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 400).count();
    assert_eq!(ok + refused, 500, "{statuses:?}");
    assert!(ok > 0 && refused > 0, "ok={ok} refused={refused}");
    // Then one at a time until the budget refuses: it is used up to within one reservation.
    // With cluster-wide limits reservations are given back by the spend writer a moment after
    // a response: a refusal is final only once it holds after that moment.
    let mut served = ok;
    let mut refusals = 0;
    while refusals < 2 {
        let response = s.chat(&key, "priced", false).await;
        match response.status().as_u16() {
            200 => {
                served += 1;
                refusals = 0;
            }
            400 => {
                refusals += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let ok = served;
    // Spend reaches the store (batched), with one log row per settled request.
    s.gateway.state.spend_writer().shutdown().await;
    let spent = s
        .gateway
        .state
        .store()
        .get_key(&token_id)
        .await
        .unwrap()
        .unwrap()
        .spend;
    // One reservation: ~150 body bytes + 20 output tokens at $0.001 each.
    let one_reservation = 0.5;
    assert!(
        spent <= budget + one_reservation,
        "spent {spent} of {budget}"
    );
    assert!(
        spent >= budget - one_reservation,
        "spent only {spent} of {budget}"
    );
    if !s.gateway.state.limiter().is_shared() {
        // Counted in this process: its ledger agrees with the store.
        let ledger = s.gateway.state.ledgers().of(&record(token_id.clone()));
        let counted = ledger.spent_usd();
        assert!(
            (counted - spent).abs() < 1e-6,
            "stored {spent} vs ledger {counted}"
        );
    }
    let log = s
        .gateway
        .state
        .store()
        .spend_log(&token_id, 1000)
        .await
        .unwrap();
    assert_eq!(log.iter().filter(|e| e.status == 200).count(), ok);
}

async fn streams_are_charged_from_usage_and_the_usage_chunk_is_only_sent_when_asked_for(s: Setup) {
    let (key, token_id) = s.key(|k| k.max_budget = Some(100.0)).await;
    let text = s.chat(&key, "priced", true).await.text().await.unwrap();
    assert!(
        !text.contains("\"choices\":[]"),
        "unrequested usage chunk sent:\n{text}"
    );
    assert!(text.trim_end().ends_with("data: [DONE]"));
    let asked = s
        .client
        .post(format!("{}/v1/chat/completions", s.gateway.url))
        .bearer_auth(&key)
        .json(
            &json!({"model": "priced", "stream": true, "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "hello"}]}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(asked.contains("\"choices\":[]"), "{asked}");
    let _ = s
        .chat(&key, "priced-claude", true)
        .await
        .text()
        .await
        .unwrap();
    s.gateway.state.spend_writer().shutdown().await;
    let log = s
        .gateway
        .state
        .store()
        .spend_log(&token_id, 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 3);
    for entry in &log {
        assert!(
            entry.prompt_tokens > 0 && entry.completion_tokens > 0,
            "{entry:?}"
        );
        let expected = (entry.prompt_tokens + entry.completion_tokens) as f64 / 1000.0;
        assert!((entry.cost - expected).abs() < 1e-6, "{entry:?}");
    }
}

on_both_stores!(
    #[tokio::test]
    budget_reset,
    budget_duration_resets_spend_on_schedule
);

async fn budget_duration_resets_spend_on_schedule(s: Setup) {
    // Spent out, but the period ended: the next request starts a new period.
    let (key, token_id) = s
        .key(|k| {
            k.max_budget = Some(0.5);
            k.spend = 0.5;
            k.budget_duration = Some("1d".into());
            k.budget_reset_at = Some(1);
        })
        .await;
    assert_eq!(s.chat(&key, "priced", false).await.status(), 200);
    let stored = s
        .gateway
        .state
        .store()
        .get_key(&token_id)
        .await
        .unwrap()
        .unwrap();
    let next = stored.budget_reset_at.unwrap();
    let day_from_now = keygate_core::keys::duration::parse("1d")
        .unwrap()
        .after(now_ms());
    assert!((day_from_now - next).abs() < 60_000, "next reset {next}");
    // Not yet due: spent out stays spent out.
    let (key, _) = s
        .key(|k| {
            k.max_budget = Some(0.5);
            k.spend = 0.5;
            k.budget_duration = Some("1d".into());
            k.budget_reset_at = Some(now_ms() + 3_600_000);
        })
        .await;
    let (status, body) = error_of(s.chat(&key, "priced", false).await).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "budget_exceeded");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
