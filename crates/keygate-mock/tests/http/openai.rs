//! The OpenAI dialect: chat completions (plain, streamed, tool calls), errors, Azure URLs.

use serde_json::{json, Value};

use crate::{chat, client, events, json, post, start, user};

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "days": {"type": "integer"}, "metric": {"type": "boolean"}
        }}
    }}])
}

#[tokio::test]
async fn chat_has_openai_shape() {
    let mock = start().await;
    let body = json!({"model": "gpt-4o-mini", "messages": user("hello there, mock")});
    let reply = json(chat(&mock, body).await, 200).await;
    let seq = mock.records()[0].seq;
    assert_eq!(reply["id"], format!("chatcmpl-mock{seq}"));
    assert_eq!(reply["object"], "chat.completion");
    assert!(reply["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(reply["model"], "gpt-4o-mini");
    assert_eq!(reply["system_fingerprint"], Value::Null);
    let choice = &reply["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["logprobs"], Value::Null);
    assert_eq!(
        choice["message"],
        json!({"role": "assistant", "content": "Hello from the keygate mock", "refusal": null})
    );
    assert_eq!(
        reply["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9})
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn stream_matches_non_stream_and_ends_with_done() {
    let mock = start().await;
    let body = json!({"model": "mock:chunks=7", "messages": user("hi"), "stream": true});
    let response = chat(&mock, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = events(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| e.json())
        .collect();
    assert_eq!(chunks.len(), 1 + 7 + 1);
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "mock");
        assert_eq!(chunk["id"], chunks[0]["id"]);
        assert!(
            chunk.get("usage").is_none(),
            "no usage without include_usage"
        );
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": "", "refusal": null})
    );
    let text: String = chunks[1..8]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    let last = &chunks[8]["choices"][0];
    assert_eq!(last["delta"], json!({}));
    assert_eq!(last["finish_reason"], "stop");
    assert!(chunks[..8]
        .iter()
        .all(|c| c["choices"][0]["finish_reason"].is_null()));

    let body = json!({"model": "mock:chunks=7", "messages": user("hi")});
    let plain = json(chat(&mock, body).await, 200).await;
    assert_eq!(plain["choices"][0]["message"]["content"], text.as_str());
    mock.shutdown().await;
}

#[tokio::test]
async fn stream_usage_chunk_only_when_asked() {
    let mock = start().await;
    let body = json!({"model": "mock", "messages": user("12345678"), "stream": true,
                      "stream_options": {"include_usage": true}});
    let events = events(&chat(&mock, body).await.text().await.unwrap());
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| e.json())
        .collect();
    let (usage, rest) = chunks.split_last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7})
    );
    assert!(rest
        .iter()
        .all(|c| c["usage"].is_null() && c.get("usage").is_some()));
    mock.shutdown().await;
}

#[tokio::test]
async fn tool_call_plain_and_streamed() {
    let mock = start().await;
    let body = json!({"model": "gpt-4o", "messages": user("weather?"), "tools": weather_tool()});
    let reply = json(chat(&mock, body.clone()).await, 200).await;
    let choice = &reply["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let message = &choice["message"];
    assert_eq!(message["content"], Value::Null);
    let call = &message["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_mock"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "mock", "days": 1, "metric": true}));

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let events = events(&chat(&mock, streamed).await.text().await.unwrap());
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let deltas: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| e.json()["choices"][0].clone())
        .collect();
    let first = &deltas[0]["delta"];
    assert_eq!(first["role"], "assistant");
    assert_eq!(first["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(first["tool_calls"][0]["function"]["arguments"], "");
    let fragments: Vec<&str> = deltas[1..deltas.len() - 1]
        .iter()
        .map(|d| {
            d["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert!(fragments.len() >= 2);
    let streamed_args: Value = serde_json::from_str(&fragments.concat()).unwrap();
    assert_eq!(streamed_args, args);
    assert_eq!(deltas.last().unwrap()["finish_reason"], "tool_calls");

    let mut answered = body;
    answered["messages"] = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}
    ]);
    let reply = json(chat(&mock, answered).await, 200).await;
    assert_eq!(reply["choices"][0]["finish_reason"], "stop");
    mock.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_openai_envelopes() {
    let mock = start().await;
    let reply = json(chat(&mock, json!({"model": "gpt-4o"})).await, 400).await;
    assert_eq!(reply["error"]["type"], "invalid_request_error");
    assert_eq!(reply["error"]["param"], Value::Null);
    let response = client()
        .post(format!("{}/v1/chat/completions", mock.url()))
        .bearer_auth("sk-test")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let reply = json(response, 400).await;
    assert_eq!(reply["error"]["type"], "invalid_request_error");
    let response = client()
        .get(format!("{}/v1/nope", mock.url()))
        .send()
        .await
        .unwrap();
    let reply = json(response, 404).await;
    assert_eq!(reply["error"]["type"], "invalid_request_error");
    mock.shutdown().await;
}

#[tokio::test]
async fn azure_deployment_urls() {
    let mock = start().await;
    let path = "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21";
    let body = json!({"messages": user("azure hi")});
    let reply = json(
        post(&mock, path, "api-key", "az-key", body.clone()).await,
        200,
    )
    .await;
    assert_eq!(reply["model"], "my-gpt");
    let record = mock.records().pop().unwrap();
    assert_eq!(record.path, "/openai/deployments/my-gpt/chat/completions");
    assert_eq!(record.model.as_deref(), Some("my-gpt"));
    assert_eq!(record.api_version.as_deref(), Some("2024-10-21"));
    assert_eq!(record.credential.as_deref(), Some("az-key"));
    assert_eq!(record.credential_header.as_deref(), Some("api-key"));
    assert_eq!(record.marker.as_deref(), Some("azure hi"));

    let path = "/openai/deployments/my-gpt/chat/completions";
    let reply = json(post(&mock, path, "api-key", "az-key", body).await, 404).await;
    assert_eq!(
        reply,
        json!({"error": {"code": "404", "message": "Resource not found"}})
    );

    let path = "/openai/deployments/my-embed/embeddings?api-version=2024-10-21";
    let body = json!({"input": ["a", "b"]});
    let reply = json(post(&mock, path, "api-key", "az-key", body).await, 200).await;
    assert_eq!(reply["model"], "my-embed");
    assert_eq!(reply["data"].as_array().unwrap().len(), 2);
    mock.shutdown().await;
}
