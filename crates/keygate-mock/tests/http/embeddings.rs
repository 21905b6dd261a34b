//! Embeddings: float vectors, the base64 encoding the OpenAI SDKs use, token inputs.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::{json, post, start};

async fn embed(mock: &keygate_mock::MockServer, body: Value) -> Value {
    json(
        post(mock, "/v1/embeddings", "authorization", "sk-e", body).await,
        200,
    )
    .await
}

fn floats(embedding: &Value) -> Vec<f32> {
    embedding
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

#[tokio::test]
async fn float_vectors_are_deterministic() {
    let mock = start().await;
    let body = json!({"model": "text-embedding-3-small", "input": ["alpha", "beta"]});
    let reply = embed(&mock, body.clone()).await;
    assert_eq!(reply["object"], "list");
    assert_eq!(reply["model"], "text-embedding-3-small");
    assert_eq!(
        reply["usage"],
        json!({"prompt_tokens": 2, "total_tokens": 2})
    );
    let data = reply["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
        let vector = floats(&item["embedding"]);
        assert_eq!(vector.len(), 8);
        assert!(vector.iter().all(|v| (-1.0..=1.0).contains(v)));
    }
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    assert_eq!(embed(&mock, body).await["data"], reply["data"]);
    mock.shutdown().await;
}

#[tokio::test]
async fn base64_round_trips() {
    let mock = start().await;
    let body = json!({"model": "e", "input": "round trip", "dimensions": 16});
    let plain = embed(&mock, body.clone()).await;
    let expected = floats(&plain["data"][0]["embedding"]);
    assert_eq!(expected.len(), 16);

    let mut encoded = body;
    encoded["encoding_format"] = json!("base64");
    let reply = embed(&mock, encoded).await;
    let text = reply["data"][0]["embedding"].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(decoded, expected);
    mock.shutdown().await;
}

#[tokio::test]
async fn token_inputs_and_bad_inputs() {
    let mock = start().await;
    let reply = embed(&mock, json!({"model": "e", "input": [[1, 2, 3], [4]]})).await;
    assert_eq!(reply["data"].as_array().unwrap().len(), 2);
    assert_eq!(reply["usage"]["prompt_tokens"], 4);
    let reply = embed(&mock, json!({"model": "e", "input": [1, 2, 3]})).await;
    assert_eq!(reply["data"].as_array().unwrap().len(), 1);

    for body in [
        json!({"model": "e"}),
        json!({"model": "e", "input": []}),
        json!({"input": "x"}),
        json!({"model": "e", "input": "x", "encoding_format": "hex"}),
        json!({"model": "e", "input": "x", "dimensions": 0}),
    ] {
        let response = post(&mock, "/v1/embeddings", "authorization", "k", body).await;
        let reply = json(response, 400).await;
        assert_eq!(reply["error"]["type"], "invalid_request_error");
    }
    mock.shutdown().await;
}

#[tokio::test]
async fn directives_apply_to_embeddings() {
    let mock = start().await;
    let body = json!({"model": "text-embedding-3-small:error=429", "input": "x"});
    let response = post(&mock, "/v1/embeddings", "authorization", "k", body).await;
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(
        json(response, 429).await["error"]["code"],
        "rate_limit_exceeded"
    );
    let body = json!({"model": "e:garbage", "input": "x"});
    let response = post(&mock, "/v1/embeddings", "authorization", "k", body).await;
    assert_eq!(response.status(), 200);
    assert!(response.json::<Value>().await.is_err());
    mock.shutdown().await;
}
