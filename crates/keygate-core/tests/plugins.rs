//! The built-in backends through the plugin contract (model listing against keygate-mock), and
//! the capture client's record of a call that got no answer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::HeaderMap;
use keygate_core::config::Config;
use keygate_core::plugins::Plugins;
use keygate_mock::{MockConfig, MockServer};
use keygate_plugin_api::{
    BackendError, BackendRequest, CaptureClient, CaptureContext, CaptureRecord, CaptureSink,
    SecretString,
};
use serde_json::Value;

#[derive(Default)]
struct Memory(Mutex<Vec<CaptureRecord>>);

impl CaptureSink for Memory {
    fn record(&self, record: CaptureRecord) {
        self.0.lock().unwrap().push(record);
    }
}

fn model(yaml: &str) -> keygate_core::config::ModelConfig {
    let config = Config::parse(yaml, "test", &HashMap::<String, String>::new()).unwrap();
    config.models.into_iter().next().unwrap()
}

#[tokio::test]
async fn builtin_backends_list_the_upstreams_models() {
    let mock = MockServer::start("127.0.0.1:0", MockConfig::default())
        .await
        .unwrap();
    let plugins = Plugins::builtin();
    let client = CaptureClient::new(None);
    let key = SecretString::from("sk-mock");
    let forward = HeaderMap::new();
    for yaml in [
        format!(
            "models:\n  - {{ name: a, provider: openai_compatible, api_base: '{}/v1' }}\n",
            mock.url()
        ),
        format!(
            "models:\n  - {{ name: b, provider: anthropic, api_base: '{}' }}\n",
            mock.url()
        ),
    ] {
        let backend = plugins.build_backend(&model(&yaml), &client).unwrap();
        let response = backend
            .models(BackendRequest {
                body: Bytes::new(),
                credential: Some(&key),
                forward: &forward,
                capture: None,
            })
            .await
            .unwrap();
        assert_eq!(response.status, 200, "{yaml}");
        let body: Value =
            serde_json::from_slice(&response.into_bytes(1 << 20).await.unwrap()).unwrap();
        assert!(
            body["data"].as_array().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
    }
    mock.shutdown().await;
}

#[tokio::test]
async fn a_call_without_an_answer_is_captured_with_its_error_and_without_the_key() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let sink = Arc::new(Memory::default());
    let client = CaptureClient::new(Some(sink.clone()));
    let key = SecretString::from("sk-never-in-a-capture-123");
    let backend = Plugins::builtin()
        .build_backend(
            &model(&format!(
                "models:\n  - {{ name: c, provider: openai_compatible, api_base: 'http://127.0.0.1:{port}/v1' }}\n"
            )),
            &client,
        )
        .unwrap();
    let context =
        CaptureContext::new("openai_compatible", "c", Some("secret:K".into())).redact(&key);
    let forward = HeaderMap::new();
    let err = backend
        .chat(BackendRequest {
            body: Bytes::from_static(b"{\"model\":\"c\",\"note\":\"sk-never-in-a-capture-123\"}"),
            credential: Some(&key),
            forward: &forward,
            capture: Some(&context),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackendError::Unavailable(ref m) if m.starts_with("connection failed")),
        "{err}"
    );
    let records = sink.0.lock().unwrap();
    let record = &records[0];
    assert!(!record.complete && record.response.is_none());
    assert!(record
        .error
        .as_deref()
        .unwrap()
        .starts_with("connection failed"));
    assert_eq!(record.request.headers["authorization"], "[REDACTED]");
    let text = serde_json::to_string(record).unwrap();
    assert!(!text.contains("sk-never-in-a-capture-123"), "{text}");
    assert!(text.contains("\"note\\\":\\\"[REDACTED]\\\""), "{text}");
}
