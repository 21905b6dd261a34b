//! Routing resilience, tier (b): the gateway in process against keygate-mock. A model group
//! is several `models:` entries of one name; a deployment whose upstream model carries a mock
//! directive (`dep-a:error=503`) always fails that way, and the mock's records tell which
//! deployment got each request. A failing deployment is given an overwhelming weight when a
//! test needs it tried first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod config_errors;
mod cooldown;
mod fallbacks;
mod retries;
mod streams;

use keygate_mock::MockServer;
use serde_json::{json, Value};

/// A failing deployment's weight: tried first in all but one request in a million.
pub const FIRST: &str = "1000000";

pub struct Setup {
    pub mock: MockServer,
    pub gateway: common::Gateway,
    pub client: reqwest::Client,
}

/// A gateway with `router` (YAML flow mapping, may be empty) and `models` (entries, `{mock}`
/// standing for the mock's URL), against a fresh mock.
pub async fn setup(router: &str, models: &str) -> Setup {
    let mock = common::keyed_mock(3).await;
    let router = if router.is_empty() {
        String::new()
    } else {
        format!("router: {router}\n")
    };
    let yaml = format!(
        "admin_key: ${{ADMIN}}\n{router}models:\n{}",
        models.replace("{mock}", &mock.url())
    );
    let gateway = common::spawn(&yaml).await;
    Setup {
        mock,
        gateway,
        client: reqwest::Client::new(),
    }
}

/// One `models:` entry on the mock's OpenAI dialect: `name` served by upstream model `model`.
pub fn openai(name: &str, model: &str, extra: &str) -> String {
    format!(
        "  - {{ name: {name}, provider: openai_compatible, api_base: \"{{mock}}/v1\", \
         api_key: \"env:UPSTREAM_KEY\", model: \"{model}\"{extra} }}\n"
    )
}

/// One `models:` entry on the mock's Anthropic dialect.
pub fn anthropic(name: &str, model: &str, extra: &str) -> String {
    format!(
        "  - {{ name: {name}, provider: anthropic, api_base: \"{{mock}}\", \
         api_key: \"env:UPSTREAM_KEY\", model: \"{model}\"{extra} }}\n"
    )
}

/// A chat request body for `model`.
pub fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "max_tokens": 20,
           "messages": [{"role": "user", "content": "hello"}]})
}

impl Setup {
    /// A virtual key made with `POST /key/generate {fields}`: the whole answer.
    pub async fn generate(&self, fields: Value) -> Value {
        self.client
            .post(format!("{}/key/generate", self.gateway.url))
            .bearer_auth(common::ADMIN)
            .json(&fields)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Posts a chat completion with the admin key.
    pub async fn chat(&self, model: &str, stream: bool) -> reqwest::Response {
        self.chat_as(common::ADMIN, model, stream).await
    }

    /// Posts a chat completion with `key`.
    pub async fn chat_as(&self, key: &str, model: &str, stream: bool) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/chat/completions", self.gateway.url))
            .bearer_auth(key)
            .json(&chat(model, stream))
            .send()
            .await
            .unwrap()
    }

    /// Requests the mock received for upstream model `model` (directives included).
    pub fn hits(&self, model: &str) -> usize {
        self.mock
            .records()
            .iter()
            .filter(|r| r.model.as_deref() == Some(model))
            .count()
    }

    /// The gateway's `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.gateway.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// A routing header of a response, as text.
pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

/// `(x-keygate-deployment, x-keygate-attempted-retries, x-keygate-attempted-fallbacks)`.
pub fn routed(response: &reqwest::Response) -> (String, String, String) {
    let get = |name| header(response, name).unwrap_or("-").to_owned();
    (
        get("x-keygate-deployment"),
        get("x-keygate-attempted-retries"),
        get("x-keygate-attempted-fallbacks"),
    )
}

#[tokio::test]
async fn a_single_entry_model_sends_no_routing_headers() {
    let s = setup("", &openai("solo", "dep-solo", "")).await;
    let response = s.chat("solo", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(routed(&response), ("-".into(), "-".into(), "-".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_is_split_by_weight() {
    let models = openai("w", "dep-a", ", weight: 3") + &openai("w", "dep-b", "");
    let s = setup("", &models).await;
    let total = 200;
    let responses = futures_util::future::join_all((0..total).map(|_| s.chat("w", false))).await;
    for response in &responses {
        assert_eq!(response.status(), 200);
        let (deployment, retries, fallbacks) = routed(response);
        assert!(deployment == "w#0" || deployment == "w#1", "{deployment}");
        assert_eq!((retries.as_str(), fallbacks.as_str()), ("0", "0"));
    }
    let (a, b) = (s.hits("dep-a"), s.hits("dep-b"));
    assert_eq!(a + b, total);
    // Expected 150 of 200 (standard deviation ~6): far outside this range is a broken split.
    assert!((120..=180).contains(&a), "dep-a got {a}, dep-b {b}");
    // Listed once, however many deployments.
    let models: Value = s
        .client
        .get(format!("{}/v1/models", s.gateway.url))
        .bearer_auth(common::ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"].as_array().unwrap().len(), 1, "{models}");
    assert_eq!(models["data"][0]["id"], "w");
}
