//! Tier (b): the gateway in-process, on a real socket, against keygate-mock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use keygate_mock::MockServer;
use serde_json::{json, Value};

struct Setup {
    mock: MockServer,
    gateway: common::Gateway,
    client: reqwest::Client,
}

async fn setup(extra: &str) -> Setup {
    let mock = common::keyed_mock(5).await;
    let extra = extra.replace("{mock}", &mock.url());
    let gateway = common::spawn(&common::config_for_mock(&mock.url(), &extra)).await;
    Setup {
        mock,
        gateway,
        client: reqwest::Client::new(),
    }
}

impl Setup {
    fn post(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.gateway.url))
            .bearer_auth(common::ADMIN)
            .json(&body)
    }
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "user": format!("marker-{model}"),
           "messages": [{"role": "user", "content": "hello"}]})
}

#[tokio::test]
async fn openai_passthrough_reaches_the_upstream_with_its_key_and_model() {
    let s = setup("").await;
    let response = s
        .post("/v1/chat/completions", chat("gpt", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .len()
            > 1
    );
    let records = s.mock.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].credential.as_deref(), Some(common::UPSTREAM_KEY));
    assert_eq!(
        records[0].credential_header.as_deref(),
        Some("authorization")
    );
    assert_eq!(records[0].model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(records[0].path, "/v1/chat/completions");
}

#[tokio::test]
async fn azure_uses_deployment_url_api_key_header_and_version() {
    let s = setup("").await;
    let response = s
        .post("/v1/chat/completions", chat("azure", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let record = &s.mock.records()[0];
    assert_eq!(
        record.path,
        "/openai/deployments/my-deployment/chat/completions"
    );
    assert_eq!(record.credential_header.as_deref(), Some("api-key"));
    assert_eq!(record.api_version.as_deref(), Some("2024-10-21"));
}

const DRIBBLE: &str = r#"
  - name: dribble
    provider: openai_compatible
    api_base: "{mock}/v1"
    api_key: env:UPSTREAM_KEY
    model: "gpt:chunks=4,delay_ms=300"
  - name: dribble-claude
    provider: anthropic
    api_base: "{mock}"
    api_key: env:UPSTREAM_KEY
    model: "claude:chunks=4,delay_ms=300"
"#;

/// Reads a response body chunk by chunk, noting when each chunk arrived.
async fn timed_chunks(response: reqwest::Response) -> Vec<(Duration, String)> {
    let started = Instant::now();
    let mut stream = response.bytes_stream();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.next().await {
        chunks.push((
            started.elapsed(),
            String::from_utf8(chunk.unwrap().to_vec()).unwrap(),
        ));
    }
    chunks
}

#[tokio::test]
async fn stream_chunks_arrive_as_they_are_produced_in_both_directions() {
    let s = setup(DRIBBLE).await;
    for (path, body) in [
        ("/v1/chat/completions", chat("dribble", true)),
        ("/v1/chat/completions", chat("dribble-claude", true)),
        (
            "/v1/messages",
            json!({"model": "dribble", "stream": true, "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "dribble-claude", "stream": true, "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}]}),
        ),
    ] {
        let response = s.post(path, body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let chunks = timed_chunks(response).await;
        let first = chunks.first().unwrap().0;
        let last = chunks.last().unwrap().0;
        assert!(
            last >= Duration::from_millis(900),
            "{path}: stream ended too early: {last:?}"
        );
        assert!(
            last - first >= Duration::from_millis(600),
            "{path}: chunks were buffered: {chunks:?}"
        );
        let all: String = chunks.into_iter().map(|(_, c)| c).collect();
        if path == "/v1/chat/completions" {
            assert!(all.ends_with("data: [DONE]\n\n"), "{all}");
        } else {
            assert!(all.contains("event: message_stop"), "{all}");
        }
    }
}

#[tokio::test]
async fn openai_caller_reaches_anthropic_upstream_translated() {
    let s = setup("").await;
    let body: Value = s
        .post("/v1/chat/completions", chat("claude", false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["object"], "chat.completion", "{body}");
    assert_eq!(body["model"], "claude");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let record = &s.mock.records()[0];
    assert_eq!(record.path, "/v1/messages");
    assert_eq!(record.credential_header.as_deref(), Some("x-api-key"));
    assert_eq!(record.api_version.as_deref(), Some("2023-06-01"));
    assert_eq!(record.model.as_deref(), Some("claude-3-5-haiku-latest"));
}

#[tokio::test]
async fn anthropic_caller_reaches_openai_upstream_translated() {
    let s = setup("").await;
    let request = json!({"model": "gpt", "max_tokens": 20, "system": "be brief",
        "messages": [{"role": "user", "content": "hello"}]});
    let response = s.post("/v1/messages", request).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "message", "{body}");
    assert_eq!(body["content"][0]["type"], "text");
    assert_eq!(body["stop_reason"], "end_turn");
    assert!(body["usage"]["input_tokens"].as_u64().is_some());
    assert_eq!(s.mock.records()[0].path, "/v1/chat/completions");
}

#[tokio::test]
async fn upstream_429_keeps_its_status_in_both_dialects() {
    let s = setup("").await;
    for (path, model, dialect_check) in [
        ("/v1/chat/completions", "limited", "openai"),
        ("/v1/chat/completions", "limited-claude", "openai"),
        ("/v1/messages", "limited", "anthropic"),
        ("/v1/messages", "limited-claude", "anthropic"),
    ] {
        let body = json!({"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
        let response = s.post(path, body).send().await.unwrap();
        assert_eq!(response.status(), 429, "{path} {model}");
        assert!(response.headers().contains_key("retry-after"));
        let body: Value = response.json().await.unwrap();
        if dialect_check == "openai" {
            assert!(body["error"]["message"].is_string(), "{body}");
        } else {
            assert_eq!(body["type"], "error", "{body}");
            assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
        }
        let text = body.to_string();
        assert!(!text.contains(common::UPSTREAM_KEY));
    }
}

#[tokio::test]
async fn upstream_timeout_is_504_and_unreachable_is_502() {
    let s = setup(
        r#"
  - name: nowhere
    provider: openai_compatible
    api_base: http://127.0.0.1:9/v1
    api_key: env:UPSTREAM_KEY
"#,
    )
    .await;
    let started = Instant::now();
    let response = s
        .post("/v1/chat/completions", chat("slow", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(5));
    let response = s
        .post("/v1/chat/completions", chat("nowhere", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
}

#[tokio::test]
async fn embeddings_pass_through() {
    let s = setup("").await;
    let body = json!({"model": "gpt", "input": ["a", "b"]});
    let response: Value = s
        .post("/v1/embeddings", body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(response["data"].as_array().unwrap().len(), 2, "{response}");
    assert_eq!(s.mock.records()[0].path, "/v1/embeddings");
}

#[tokio::test]
async fn graceful_shutdown_lets_a_stream_finish() {
    let s = setup(DRIBBLE).await;
    let response = s
        .post("/v1/chat/completions", chat("dribble", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    s.gateway.shutdown.cancel();
    let chunks = timed_chunks(response).await;
    let all: String = chunks.into_iter().map(|(_, c)| c).collect();
    assert!(all.ends_with("data: [DONE]\n\n"), "{all}");
    s.gateway.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn reload_swaps_models_without_touching_requests_in_flight() {
    let s = setup(DRIBBLE).await;
    let in_flight = s
        .post("/v1/chat/completions", chat("dribble", true))
        .send()
        .await
        .unwrap();
    let yaml = common::config_for_mock(&s.mock.url(), &format!(
        "  - name: fresh\n    provider: openai_compatible\n    api_base: {}/v1\n    api_key: env:UPSTREAM_KEY\n",
        s.mock.url()
    ));
    let config = keygate_core::config::Config::parse(&yaml, "reload", &common::env()).unwrap();
    keygate_core::server::reload(&s.gateway.state, config, std::sync::Arc::new(common::env()))
        .await
        .unwrap();
    let response = s
        .post("/v1/chat/completions", chat("fresh", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = s
        .post("/v1/chat/completions", chat("dribble", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "dribble is gone after the reload");
    let all: String = timed_chunks(in_flight)
        .await
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    assert!(all.ends_with("data: [DONE]\n\n"), "{all}");
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_stream() {
    let s = setup(
        r#"
  - name: long
    provider: openai_compatible
    api_base: "{mock}/v1"
    api_key: env:UPSTREAM_KEY
    model: "gpt:chunks=100,delay_ms=100"
  - name: long-claude
    provider: anthropic
    api_base: "{mock}"
    api_key: env:UPSTREAM_KEY
    model: "claude:chunks=100,delay_ms=100"
"#,
    )
    .await;
    // Passthrough and both translated directions: ten seconds of stream each, abandoned early.
    for (path, model) in [
        ("/v1/chat/completions", "long"),
        ("/v1/chat/completions", "long-claude"),
        ("/v1/messages", "long"),
    ] {
        let mut body = chat(model, true);
        body["max_tokens"] = json!(50);
        let mut response = s.post(path, body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.chunk().await.unwrap().unwrap();
        assert_eq!(s.mock.open_streams(), 1, "{path} {model}");
        drop(response);
        let deadline = Instant::now() + Duration::from_secs(3);
        while s.mock.open_streams() > 0 {
            assert!(
                Instant::now() < deadline,
                "{path} {model}: the upstream stream outlived the client"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
