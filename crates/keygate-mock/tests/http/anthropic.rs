//! The Anthropic dialect: Messages (plain, streamed, tool use) and its error envelopes.

use serde_json::{json, Value};

use crate::{client, events, json, messages, start, user};

fn weather_tool() -> Value {
    json!([{"name": "get_weather", "description": "Weather", "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "number"}, "x": {"type": "object"}}
    }}])
}

#[tokio::test]
async fn message_has_anthropic_shape() {
    let mock = start().await;
    let body = json!({"model": "claude-3-5-haiku-latest", "max_tokens": 64,
                      "system": "be brief", "messages": user("hello claude")});
    let response = messages(&mock, body).await;
    assert!(response.headers()["request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_mock"));
    let reply = json(response, 200).await;
    let record = mock.records().pop().unwrap();
    assert_eq!(record.api_version.as_deref(), Some("2023-06-01"));
    assert_eq!(record.credential_header.as_deref(), Some("x-api-key"));
    assert_eq!(
        reply,
        json!({
            "id": format!("msg_mock{}", record.seq),
            "type": "message",
            "role": "assistant",
            "model": "claude-3-5-haiku-latest",
            "content": [{"type": "text", "text": "Hello from the keygate mock"}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": 5, "output_tokens": 5}
        })
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn stream_has_the_exact_event_sequence() {
    let mock = start().await;
    let body = json!({"model": "claude:chunks=3", "max_tokens": 64,
                      "messages": user("hi"), "stream": true});
    let response = messages(&mock, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = events(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|e| e.name.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[2].data, r#"{"type": "ping"}"#);
    for event in &events {
        assert_eq!(event.json()["type"], event.name.as_deref().unwrap());
    }
    let start = events[0].json();
    assert_eq!(start["message"]["model"], "claude");
    assert_eq!(start["message"]["content"], json!([]));
    assert_eq!(start["message"]["stop_reason"], Value::Null);
    assert_eq!(start["message"]["usage"]["output_tokens"], 1);
    assert_eq!(
        events[1].json()["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = events[3..6]
        .iter()
        .map(|e| {
            let delta = e.json()["delta"].clone();
            assert_eq!(delta["type"], "text_delta");
            delta["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "Hello from the");
    assert_eq!(
        events[7].json(),
        json!({"type": "message_delta",
               "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": 3}})
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn tool_use_plain_and_streamed() {
    let mock = start().await;
    let body = json!({"model": "claude", "max_tokens": 64, "messages": user("weather?"),
                      "tools": weather_tool()});
    let reply = json(messages(&mock, body.clone()).await, 200).await;
    assert_eq!(reply["stop_reason"], "tool_use");
    let block = &reply["content"][0];
    assert_eq!(block["type"], "tool_use");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_mock"));
    assert_eq!(block["name"], "get_weather");
    let input = json!({"city": "mock", "days": 1, "x": null});
    assert_eq!(block["input"], input);

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let events = events(&messages(&mock, streamed).await.text().await.unwrap());
    let start = events[1].json();
    assert_eq!(start["content_block"]["type"], "tool_use");
    assert_eq!(start["content_block"]["name"], "get_weather");
    assert_eq!(start["content_block"]["input"], json!({}));
    let partial: Vec<String> = events
        .iter()
        .filter(|e| e.name.as_deref() == Some("content_block_delta"))
        .map(|e| {
            let delta = e.json()["delta"].clone();
            assert_eq!(delta["type"], "input_json_delta");
            delta["partial_json"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(partial.len() >= 2);
    assert_eq!(
        serde_json::from_str::<Value>(&partial.concat()).unwrap(),
        input
    );
    let delta = events
        .iter()
        .find(|e| e.name.as_deref() == Some("message_delta"));
    assert_eq!(delta.unwrap().json()["delta"]["stop_reason"], "tool_use");

    let mut answered = body;
    answered["messages"] = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [block]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block["id"], "content": "sunny"}]}
    ]);
    let reply = json(messages(&mock, answered).await, 200).await;
    assert_eq!(reply["stop_reason"], "end_turn");
    mock.shutdown().await;
}

#[tokio::test]
async fn errors_use_anthropic_envelopes() {
    let mock = start().await;
    let response = messages(&mock, json!({"model": "claude", "messages": user("x")})).await;
    assert!(response.headers().contains_key("request-id"));
    let reply = json(response, 400).await;
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["error"]["type"], "invalid_request_error");
    assert!(reply["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_tokens"));

    let response = client()
        .post(format!("{}/v1/messages", mock.url()))
        .header("x-api-key", "k")
        .body("[1, 2")
        .send()
        .await
        .unwrap();
    let reply = json(response, 400).await;
    assert_eq!(reply["error"]["type"], "invalid_request_error");

    let response = client()
        .post(format!("{}/v1/messages", mock.url()))
        .json(&json!({"model": "claude", "max_tokens": 1, "messages": user("x")}))
        .send()
        .await
        .unwrap();
    let reply = json(response, 401).await;
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["error"]["type"], "authentication_error");
    mock.shutdown().await;
}
