//! Upstream credentials end to end, in process against keygate-mock: X-{Model}-Authorization
//! keys reach exactly their own request's upstream call, the byok policies, and failover
//! between configured keys when one is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use futures_util::future::join_all;
use keygate_mock::{MockConfig, MockServer};
use serde_json::{json, Value};

async fn mock(require_key: Option<&str>) -> MockServer {
    let config = MockConfig {
        chunks: 3,
        require_key: require_key.map(str::to_owned),
        ..MockConfig::default()
    };
    MockServer::start("127.0.0.1:0", config).await.unwrap()
}

fn models(mock: &str) -> String {
    format!(
        r#"
  - name: open
    provider: openai_compatible
    api_base: {mock}/v1
    api_key: env:UPSTREAM_KEY
    byok: allow
  - name: claude-byok
    provider: anthropic
    api_base: {mock}
    api_key: env:UPSTREAM_KEY
    byok: allow
  - name: strict
    provider: openai_compatible
    api_base: {mock}/v1
    api_key: env:UPSTREAM_KEY
    byok: require
  - name: rotating
    provider: openai_compatible
    api_base: {mock}/v1
    api_key: [env:REVOKED_KEY, env:UPSTREAM_KEY]
"#
    )
}

fn env_yaml(mock: &MockServer) -> String {
    common::config_for_mock(&mock.url(), &models(&mock.url()))
}

fn body(model: &str, marker: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "user": marker,
           "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_upstream_call_carries_exactly_its_own_requests_key() {
    let mock = mock(None).await;
    let gateway = common::spawn(&env_yaml(&mock)).await;
    let client = reqwest::Client::new();
    let requests = (0..400).map(|i| {
        let client = client.clone();
        let url = gateway.url.clone();
        async move {
            let marker = format!("req-{i}");
            let (model, path) = if i % 4 == 3 {
                ("claude-byok", "/v1/messages")
            } else {
                ("open", "/v1/chat/completions")
            };
            let mut payload = body(model, &marker, i % 3 == 0);
            if path == "/v1/messages" {
                payload["max_tokens"] = json!(16);
                payload["metadata"] = json!({"user_id": marker});
            }
            let mut request = client
                .post(format!("{url}{path}"))
                .bearer_auth(common::ADMIN)
                .json(&payload);
            let expected = if i % 2 == 0 {
                let key = format!("sk-caller-{i}");
                let header = format!("X-{model}-Authorization");
                request = request.header(header, format!("Bearer {key}"));
                key
            } else {
                common::UPSTREAM_KEY.to_owned()
            };
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            let _ = response.bytes().await.unwrap();
            (marker, expected)
        }
    });
    let expected: HashMap<String, String> = join_all(requests).await.into_iter().collect();
    let records = mock.records();
    assert_eq!(records.len(), expected.len());
    for record in records {
        let marker = record.marker.clone().unwrap();
        assert_eq!(
            record.credential.as_deref(),
            Some(expected[&marker].as_str()),
            "request {marker}"
        );
    }
}

#[tokio::test]
async fn byok_policies_and_empty_headers() {
    let mock = mock(None).await;
    let gateway = common::spawn(&env_yaml(&mock)).await;
    let client = reqwest::Client::new();
    let send = |model: &str, header: Option<(&str, &str)>, path: &str| {
        let mut payload = body(model, "m", false);
        payload["max_tokens"] = json!(8);
        let mut request = client
            .post(format!("{}{path}", gateway.url))
            .bearer_auth(common::ADMIN)
            .json(&payload);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        request.send()
    };
    // deny (the default for `gpt`): 400 naming the header, in the caller's dialect.
    let denied = send(
        "gpt",
        Some(("x-gpt-authorization", "sk-nope")),
        "/v1/chat/completions",
    )
    .await
    .unwrap();
    assert_eq!(denied.status(), 400);
    let text = denied.text().await.unwrap();
    assert!(
        text.contains("x-gpt-authorization") && !text.contains("sk-nope"),
        "{text}"
    );
    let denied = send(
        "claude",
        Some(("x-claude-authorization", "sk-nope")),
        "/v1/messages",
    )
    .await
    .unwrap();
    assert_eq!(denied.status(), 400);
    let error: Value = denied.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    // An empty header is ignored, even under deny: the configured key is used.
    let ok = send(
        "gpt",
        Some(("x-gpt-authorization", "")),
        "/v1/chat/completions",
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    // require: 401 without it, 200 with it.
    let required = send("strict", None, "/v1/chat/completions").await.unwrap();
    assert_eq!(required.status(), 401);
    let required = send(
        "strict",
        Some(("x-strict-authorization", " ")),
        "/v1/chat/completions",
    )
    .await
    .unwrap();
    assert_eq!(required.status(), 401);
    let ok = send(
        "strict",
        Some(("X-Strict-Authorization", "sk-mine")),
        "/v1/chat/completions",
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    let last = mock.records().pop().unwrap();
    assert_eq!(last.credential.as_deref(), Some("sk-mine"));
    // The header never replaces keygate authentication.
    let anonymous = client
        .post(format!("{}/v1/chat/completions", gateway.url))
        .header("x-open-authorization", "sk-mine")
        .json(&body("open", "m", false))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn a_refused_key_is_cooled_down_and_the_next_one_serves() {
    let mock = mock(Some(common::UPSTREAM_KEY)).await;
    let mut yaml = env_yaml(&mock);
    yaml = yaml.replace(
        "admin_key: ${ADMIN}",
        "admin_key: ${ADMIN}\nsecrets: { sources: [ { type: env } ] }",
    );
    let gateway = common::spawn_with_env(&yaml, &[("REVOKED_KEY", "sk-revoked")]).await;
    let client = reqwest::Client::new();
    for i in 0..6 {
        let response = client
            .post(format!("{}/v1/chat/completions", gateway.url))
            .bearer_auth(common::ADMIN)
            .json(&body("rotating", &format!("r{i}"), i % 2 == 0))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "request {i}");
    }
    let revoked = mock
        .records()
        .iter()
        .filter(|r| r.credential.as_deref() == Some("sk-revoked"))
        .count();
    assert_eq!(revoked, 1, "the refused key was tried again");
}
