//! Tier (a): handlers through `tower::ServiceExt::oneshot`, no socket and no upstream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

const CONFIG: &str = r#"
admin_key: ${ADMIN}
limits: { max_body_bytes: 1024 }
models:
  - name: gpt
    provider: openai_compatible
    api_base: http://127.0.0.1:9/v1
    api_key: env:UPSTREAM_KEY
  - name: claude
    provider: anthropic
    api_base: http://127.0.0.1:9
    api_key: env:UPSTREAM_KEY
  - name: broken-key
    provider: openai
    api_key: env:NOT_SET_ANYWHERE
"#;

async fn call(request: Request<Body>) -> (StatusCode, http::HeaderMap, Value) {
    let app = keygate_core::http::router(common::state(CONFIG).await);
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

fn post(path: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .header("authorization", format!("Bearer {}", common::ADMIN))
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn assert_openai_error(body: &Value, kind: &str) {
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(error["type"], kind, "{body}");
    assert!(
        error.get("param").is_some() && error.get("code").is_some(),
        "{body}"
    );
}

fn assert_anthropic_error(body: &Value, kind: &str) {
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn missing_or_wrong_key_is_401_in_each_dialect() {
    let request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"model":"gpt"}"#))
        .unwrap();
    let (status, _, body) = call(request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_openai_error(&body, "invalid_request_error");
    assert_eq!(body["error"]["code"], "invalid_api_key");

    let request = Request::post("/v1/messages")
        .header("x-api-key", "wrong")
        .body(Body::from(r#"{"model":"claude"}"#))
        .unwrap();
    let (status, _, body) = call(request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_anthropic_error(&body, "authentication_error");
}

#[tokio::test]
async fn bad_bodies_get_clear_4xx() {
    let cases = [
        ("{not json", StatusCode::BAD_REQUEST),
        ("[1,2]", StatusCode::BAD_REQUEST),
        ("", StatusCode::BAD_REQUEST),
        (r#"{"messages":[]}"#, StatusCode::BAD_REQUEST),
        (r#"{"model":42}"#, StatusCode::BAD_REQUEST),
        (r#"{"model":"nope","messages":[]}"#, StatusCode::NOT_FOUND),
    ];
    for (body, expected) in cases {
        let (status, _, json) = call(post("/v1/chat/completions", body)).await;
        assert_eq!(status, expected, "{body}");
        assert_openai_error(&json, "invalid_request_error");
        let (status, _, json) = call(post("/v1/messages", body)).await;
        assert_eq!(status, expected, "{body}");
        let kind = if expected == StatusCode::NOT_FOUND {
            "not_found_error"
        } else {
            "invalid_request_error"
        };
        assert_anthropic_error(&json, kind);
    }
}

#[tokio::test]
async fn unknown_model_names_the_param_and_code() {
    let (_, _, body) = call(post("/v1/chat/completions", r#"{"model":"nope"}"#)).await;
    assert_eq!(body["error"]["code"], "model_not_found");
    assert_eq!(body["error"]["param"], "model");
}

#[tokio::test]
async fn oversized_body_is_413() {
    let big = format!(
        r#"{{"model":"gpt","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(2000)
    );
    let (status, _, body) = call(post("/v1/chat/completions", &big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_openai_error(&body, "invalid_request_error");
    let (status, _, body) = call(post("/v1/messages", &big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_anthropic_error(&body, "request_too_large");
    // Without Content-Length (chunked), the limit still holds.
    let chunks: Vec<Result<_, std::io::Error>> = vec![Ok(big.clone().into_bytes())];
    let request = Request::post("/v1/embeddings")
        .header("authorization", format!("Bearer {}", common::ADMIN))
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    let (status, _, _) = call(request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let request = Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {}", common::ADMIN))
        .header("content-type", "text/plain")
        .body(Body::from(r#"{"model":"gpt"}"#))
        .unwrap();
    let (status, _, body) = call(request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_openai_error(&body, "invalid_request_error");
}

#[tokio::test]
async fn embeddings_on_anthropic_is_400() {
    let (status, _, body) = call(post("/v1/embeddings", r#"{"model":"claude","input":"x"}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("embeddings"));
}

#[tokio::test]
async fn unresolvable_upstream_key_is_503_naming_the_reference() {
    let (status, _, body) = call(post("/v1/chat/completions", r#"{"model":"broken-key"}"#)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("env:NOT_SET_ANYWHERE"), "{message}");
}

#[tokio::test]
async fn unknown_route_is_404_and_wrong_method_is_405() {
    let (status, _, body) = call(post("/v1/nothing", "{}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_openai_error(&body, "invalid_request_error");
    let request = Request::get("/v1/chat/completions")
        .body(Body::empty())
        .unwrap();
    let (status, _, _) = call(request).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn models_list_in_both_shapes() {
    let request = Request::get("/v1/models")
        .header("authorization", format!("Bearer {}", common::ADMIN))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = call(request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt", "claude", "broken-key"]);
    assert_eq!(body["data"][0]["object"], "model");

    let request = Request::get("/v1/models")
        .header("x-api-key", common::ADMIN)
        .header("anthropic-version", "2023-06-01")
        .body(Body::empty())
        .unwrap();
    let (_, _, body) = call(request).await;
    assert_eq!(body["data"][1]["type"], "model");
    assert_eq!(body["first_id"], "gpt");
    assert_eq!(body["has_more"], false);
}

#[tokio::test]
async fn health_and_metrics_answer() {
    for path in ["/health/live", "/health/ready"] {
        let (status, _, body) = call(Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body["status"], "ok");
    }
    let app = keygate_core::http::router(common::state(CONFIG).await);
    let _ = app
        .clone()
        .oneshot(post("/v1/chat/completions", r#"{"model":"nope"}"#))
        .await
        .unwrap();
    let response = app
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains("keygate_requests_total"), "{text}");
}
