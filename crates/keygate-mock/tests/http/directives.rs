//! Model directives: `error`, `timeout`, `chunks` / `delay_ms`, `stall_after`, `cut_after`,
//! `garbage`.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::{chat, json, messages, start, user};

fn chat_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "messages": user("d"), "stream": stream})
}

fn messages_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 16, "messages": user("d"), "stream": stream})
}

/// Reads a streamed body until it ends, fails or is idle for `idle`: (text, how it stopped).
async fn read(response: reqwest::Response, idle: Duration) -> (String, &'static str) {
    let mut body = response.bytes_stream();
    let mut text = String::new();
    loop {
        match tokio::time::timeout(idle, body.next()).await {
            Err(_) => return (text, "idle"),
            Ok(None) => return (text, "end"),
            Ok(Some(Err(_))) => return (text, "error"),
            Ok(Some(Ok(bytes))) => text.push_str(std::str::from_utf8(&bytes).unwrap()),
        }
    }
}

#[tokio::test]
async fn error_statuses_in_both_dialects() {
    let mock = start().await;
    let response = chat(&mock, chat_body("gpt-4o:error=429", false)).await;
    assert_eq!(response.headers()["retry-after"], "1");
    let reply = json(response, 429).await;
    assert_eq!(reply["error"]["type"], "requests");
    assert_eq!(reply["error"]["code"], "rate_limit_exceeded");
    let reply = json(chat(&mock, chat_body("gpt-4o:error=500", true)).await, 500).await;
    assert_eq!(reply["error"]["type"], "server_error");

    let response = messages(&mock, messages_body("claude:error=429", false)).await;
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(
        json(response, 429).await["error"]["type"],
        "rate_limit_error"
    );
    let reply = json(
        messages(&mock, messages_body("claude:error=529", true)).await,
        529,
    )
    .await;
    assert_eq!(reply["error"]["type"], "overloaded_error");

    let record = mock.records().remove(0);
    assert_eq!(record.model.as_deref(), Some("gpt-4o:error=429"));
    mock.shutdown().await;
}

#[tokio::test]
async fn timeout_hangs_until_the_client_gives_up() {
    let mock = start().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = client
        .post(format!("{}/v1/chat/completions", mock.url()))
        .bearer_auth("k")
        .json(&chat_body("mock:timeout", false))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    let started = Instant::now();
    mock.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown must not wait an hour"
    );
}

#[tokio::test]
async fn chunks_and_delay_shape_the_stream() {
    let mock = start().await;
    let started = Instant::now();
    let response = chat(&mock, chat_body("mock:chunks=3,delay_ms=60", true)).await;
    let (text, how) = read(response, Duration::from_secs(5)).await;
    assert_eq!(how, "end");
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(text.matches("\"content\":\"").count(), 1 + 3);
    assert!(text.ends_with("data: [DONE]\n\n"));
    mock.shutdown().await;
}

#[tokio::test]
async fn cut_after_drops_the_connection() {
    let mock = start().await;
    let response = chat(&mock, chat_body("mock:cut_after=2", true)).await;
    assert_eq!(response.status(), 200);
    let (text, how) = read(response, Duration::from_secs(5)).await;
    assert_eq!(how, "error");
    assert!(text.contains("\"content\":\"Hello\"") && text.contains("\"content\":\" from\""));
    assert!(!text.contains(" the") && !text.contains("[DONE]"));

    let response = messages(&mock, messages_body("claude:cut_after=1", true)).await;
    let (text, how) = read(response, Duration::from_secs(5)).await;
    assert_eq!(how, "error");
    assert!(text.contains("text_delta") && !text.contains("message_stop"));

    let response = chat(&mock, chat_body("mock:cut_after=1", true)).await;
    assert!(response.text().await.is_err());
    mock.shutdown().await;
}

#[tokio::test]
async fn stall_after_hangs_mid_stream() {
    let mock = start().await;
    let response = messages(&mock, messages_body("claude:stall_after=2", true)).await;
    let (text, how) = read(response, Duration::from_millis(300)).await;
    assert_eq!(how, "idle");
    assert_eq!(text.matches("text_delta").count(), 2);
    assert!(!text.contains("message_stop"));
    let started = Instant::now();
    mock.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn garbage_is_not_json() {
    let mock = start().await;
    let response = chat(&mock, chat_body("mock:garbage", false)).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err());

    let response = chat(&mock, chat_body("mock:garbage", true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let data = text.trim().strip_prefix("data: ").unwrap();
    assert!(serde_json::from_str::<Value>(data).is_err());

    let response = messages(&mock, messages_body("claude:garbage", false)).await;
    assert!(serde_json::from_str::<Value>(&response.text().await.unwrap()).is_err());
    mock.shutdown().await;
}
