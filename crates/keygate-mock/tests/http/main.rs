//! HTTP tests of the mock: a [`MockServer`] started in-process, driven with reqwest.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod anthropic;
mod control;
mod directives;
mod embeddings;
mod openai;

use keygate_mock::{MockConfig, MockServer};
use serde_json::Value;

/// A mock with the default configuration.
pub async fn start() -> MockServer {
    start_with(MockConfig::default()).await
}

/// A mock with `config`.
pub async fn start_with(config: MockConfig) -> MockServer {
    MockServer::start("127.0.0.1:0", config).await.unwrap()
}

/// A client without connection reuse surprises.
pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// `POST path` with `body` and one credential header (`"authorization"` gets `Bearer `).
pub async fn post(
    mock: &MockServer,
    path: &str,
    header: &str,
    key: &str,
    body: Value,
) -> reqwest::Response {
    let value = if header == "authorization" {
        format!("Bearer {key}")
    } else {
        key.to_owned()
    };
    let mut request = client()
        .post(format!("{}{path}", mock.url()))
        .header(header, value);
    if path == "/v1/messages" {
        request = request.header("anthropic-version", "2023-06-01");
    }
    request.json(&body).send().await.unwrap()
}

/// `POST /v1/chat/completions` with a bearer key.
pub async fn chat(mock: &MockServer, body: Value) -> reqwest::Response {
    post(
        mock,
        "/v1/chat/completions",
        "authorization",
        "sk-test",
        body,
    )
    .await
}

/// `POST /v1/messages` with an `x-api-key`.
pub async fn messages(mock: &MockServer, body: Value) -> reqwest::Response {
    post(mock, "/v1/messages", "x-api-key", "sk-ant-test", body).await
}

/// One server-sent event: its `event:` name (if any) and its `data:`.
#[derive(Debug)]
pub struct Event {
    pub name: Option<String>,
    pub data: String,
}

impl Event {
    /// The data as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {}", self.data))
    }
}

/// Splits an event-stream body into events.
pub fn events(body: &str) -> Vec<Event> {
    assert!(
        body.ends_with("\n\n"),
        "stream must end with a blank line: {body:?}"
    );
    body.split("\n\n")
        .filter(|frame| !frame.is_empty())
        .map(|frame| {
            let mut event = Event {
                name: None,
                data: String::new(),
            };
            for line in frame.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event.name = Some(name.to_owned());
                } else if let Some(data) = line.strip_prefix("data: ") {
                    event.data = data.to_owned();
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            event
        })
        .collect()
}

/// A response's body as JSON, after checking its status.
pub async fn json(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    response.json().await.unwrap()
}

/// A user message with `text`.
pub fn user(text: &str) -> Value {
    serde_json::json!([{"role": "user", "content": text}])
}
