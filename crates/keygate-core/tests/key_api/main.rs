//! LiteLLM's key management API, tier (a) through `tower::ServiceExt::oneshot` and tier (b)
//! over a socket (the Vault plugin replays). Every scenario runs twice: on a fresh SQLite file
//! and on the PostgreSQL at `KEYGATE_TEST_POSTGRES_URL` (which fails loudly when unset unless
//! `KEYGATE_TEST_SKIP_SERVICES=1`). The PostgreSQL database is shared, so every alias and team
//! a scenario creates is unique to the run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod generate;
mod info_list;
mod regenerate;
mod update_delete;
mod vault_plugins;

use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use keygate_core::config::Config;
use keygate_core::state::{build_http_client, AppState, LiveState};
use keygate_core::store::Store;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const CONFIG: &str = r#"
admin_key: ${ADMIN}
models:
  - name: gpt
    provider: openai_compatible
    api_base: http://127.0.0.1:9/v1
    api_key: env:UPSTREAM_KEY
"#;

/// Which database a scenario runs on.
#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The app on one database.
pub struct Api {
    pub state: AppState,
}

impl Api {
    /// `None` when PostgreSQL is skipped (`KEYGATE_TEST_SKIP_SERVICES=1`).
    pub async fn new(db: Db) -> Option<Self> {
        let url = match db {
            Db::Sqlite => format!("sqlite://{}/keygate.db", common::temp_dir().display()),
            Db::Postgres => common::postgres_url()?,
        };
        let env = common::env();
        let config = Config::parse(CONFIG, "test", &env).unwrap();
        let client = build_http_client().unwrap();
        let ctx = keygate_core::secrets::SourceContext {
            client: &client,
            env: std::sync::Arc::new(env),
        };
        let live = LiveState::build(config, &ctx).unwrap();
        let store = Store::connect(&url).await.unwrap();
        Some(Self {
            state: AppState::new(live, client, store, None),
        })
    }

    /// Sends a request with `key` as the bearer token (none when `None`).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(Body::from(body.unwrap_or("").to_owned()))
            .unwrap();
        let app = keygate_core::http::router(self.state.clone());
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body)
    }

    /// `POST path` with the admin key.
    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let text = body.to_string();
        self.call("POST", path, Some(&text), Some(common::ADMIN))
            .await
    }

    /// `GET path` with the admin key.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, None, Some(common::ADMIN)).await
    }

    /// Generates a key, asserting success.
    pub async fn generate(&self, body: &Value) -> Value {
        let (status, out) = self.post("/key/generate", body).await;
        assert_eq!(status, StatusCode::OK, "{out}");
        out
    }

    /// Serves the app on a free loopback port; stop it with the returned token.
    pub async fn serve(&self) -> (String, CancellationToken) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(keygate_core::server::serve(
            listener,
            self.state.clone(),
            shutdown.clone(),
            Duration::from_secs(5),
        ));
        (url, shutdown)
    }
}

/// Asserts LiteLLM's error envelope with this status and returns the message.
pub fn litellm_error(status: StatusCode, body: &Value, expected: StatusCode) -> String {
    assert_eq!(status, expected, "{body}");
    let error = &body["error"];
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(1),
        "only `error`: {body}"
    );
    let code = expected.as_u16().to_string();
    assert_eq!(error["code"], code.as_str(), "{body}");
    assert!(
        error["type"].is_string() && error["param"].is_string(),
        "{body}"
    );
    error["message"].as_str().unwrap().to_owned()
}

/// Asserts FastAPI's 422 and returns the `detail` items.
pub fn validation_error(status: StatusCode, body: &Value) -> Vec<Value> {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    body["detail"].as_array().unwrap().clone()
}

/// A name unique to this run (for the shared PostgreSQL database).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", common::unique())
}

/// Runs `scenario(api)` on SQLite and on PostgreSQL, as `scenario::sqlite` and
/// `scenario::postgres`.
#[macro_export]
macro_rules! on_both {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn sqlite() {
                let api = $crate::Api::new($crate::Db::Sqlite).await.unwrap();
                super::$scenario(api).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(api) = $crate::Api::new($crate::Db::Postgres).await {
                    super::$scenario(api).await;
                }
            }
        }
    )*};
}
