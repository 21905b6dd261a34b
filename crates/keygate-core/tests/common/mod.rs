//! Shared helpers for keygate-core's integration tests: a state built from YAML on a fresh
//! SQLite file, and a gateway served on a free loopback port.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keygate_core::config::Config;
use keygate_core::server;
use keygate_core::state::{build_http_client, AppState, LiveState};
use keygate_core::store::Store;
use tokio_util::sync::CancellationToken;

pub const ADMIN: &str = "test-admin-key";
pub const UPSTREAM_KEY: &str = "upstream-key-for-tests";

/// A fresh temporary directory for this test.
pub fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "keygate-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The environment config interpolation and references see in tests.
pub fn env() -> HashMap<String, String> {
    HashMap::from([
        ("ADMIN".to_owned(), ADMIN.to_owned()),
        ("UPSTREAM_KEY".to_owned(), UPSTREAM_KEY.to_owned()),
    ])
}

/// Builds the full app state from YAML text.
pub async fn state(yaml: &str) -> AppState {
    state_with_env(yaml, &[]).await
}

/// Builds the full app state from YAML text, with extra variables in the environment.
pub async fn state_with_env(yaml: &str, extra: &[(&str, &str)]) -> AppState {
    let url = format!("sqlite://{}/keygate.db", temp_dir().display());
    state_on(yaml, extra, &url).await
}

/// Builds the full app state from YAML text on the store at `database_url`.
pub async fn state_on(yaml: &str, extra: &[(&str, &str)], database_url: &str) -> AppState {
    let mut env = env();
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let config = Config::parse(yaml, "test", &env).unwrap();
    let client = build_http_client().unwrap();
    let ctx = keygate_core::secrets::SourceContext {
        client: &client,
        env: std::sync::Arc::new(env),
    };
    let metrics = keygate_core::telemetry::install_recorder();
    let live = LiveState::build(config, &ctx).unwrap();
    let store = Store::connect(database_url).await.unwrap();
    AppState::new(live, client, store, metrics)
}

/// A gateway serving on a free port.
pub struct Gateway {
    pub url: String,
    pub state: AppState,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub async fn spawn(yaml: &str) -> Gateway {
    spawn_with_env(yaml, &[]).await
}

/// A gateway serving on a free port, with extra variables in its environment.
pub async fn spawn_with_env(yaml: &str, extra: &[(&str, &str)]) -> Gateway {
    serve_state(state_with_env(yaml, extra).await).await
}

/// A gateway serving on a free port, on the store at `database_url`.
pub async fn spawn_on(yaml: &str, database_url: &str) -> Gateway {
    serve_state(state_on(yaml, &[], database_url).await).await
}

async fn serve_state(state: AppState) -> Gateway {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server::serve(
        listener,
        state.clone(),
        shutdown.clone(),
        Duration::from_secs(5),
    ));
    Gateway {
        url,
        state,
        shutdown,
        task,
    }
}

/// A mock upstream that answers `chunks` pieces and requires [`UPSTREAM_KEY`].
pub async fn keyed_mock(chunks: usize) -> keygate_mock::MockServer {
    keygate_mock::MockServer::start(
        "127.0.0.1:0",
        keygate_mock::MockConfig {
            chunks,
            require_key: Some(UPSTREAM_KEY.to_owned()),
            ..keygate_mock::MockConfig::default()
        },
    )
    .await
    .unwrap()
}

/// A YAML config with the usual models routed to the mock at `mock_url`.
pub fn config_for_mock(mock_url: &str, extra: &str) -> String {
    format!(
        r#"
admin_key: ${{ADMIN}}
limits: {{ max_body_bytes: 4096 }}
models:
  - name: gpt
    provider: openai_compatible
    api_base: {mock_url}/v1
    api_key: env:UPSTREAM_KEY
    model: gpt-4o-mini
  - name: claude
    provider: anthropic
    api_base: {mock_url}
    api_key: env:UPSTREAM_KEY
    model: claude-3-5-haiku-latest
  - name: azure
    provider: azure_openai
    api_base: {mock_url}
    api_key: env:UPSTREAM_KEY
    model: my-deployment
    api_version: 2024-10-21
  - name: slow
    provider: openai_compatible
    api_base: {mock_url}/v1
    api_key: env:UPSTREAM_KEY
    model: "gpt:timeout"
    timeout: 300ms
  - name: limited
    provider: openai_compatible
    api_base: {mock_url}/v1
    api_key: env:UPSTREAM_KEY
    model: "gpt:error=429"
  - name: limited-claude
    provider: anthropic
    api_base: {mock_url}
    api_key: env:UPSTREAM_KEY
    model: "claude:error=429"
{extra}
"#
    )
}

/// A string unique to this process and call, for names in shared databases.
pub fn unique() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `KEYGATE_TEST_POSTGRES_URL`; without it the test fails loudly, unless
/// `KEYGATE_TEST_SKIP_SERVICES=1` says to skip tests that need PostgreSQL (then `None`).
pub fn postgres_url() -> Option<String> {
    match std::env::var("KEYGATE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("KEYGATE_TEST_SKIP_SERVICES").as_deref() == Ok("1") => {
            eprintln!("skipped: KEYGATE_TEST_SKIP_SERVICES=1 and no KEYGATE_TEST_POSTGRES_URL");
            None
        }
        _ => panic!(
            "KEYGATE_TEST_POSTGRES_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test); \
             set KEYGATE_TEST_SKIP_SERVICES=1 to skip tests that need PostgreSQL"
        ),
    }
}

/// `KEYGATE_TEST_REDIS_URL`, like [`postgres_url`].
pub fn redis_url() -> Option<String> {
    match std::env::var("KEYGATE_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("KEYGATE_TEST_SKIP_SERVICES").as_deref() == Ok("1") => {
            eprintln!("skipped: KEYGATE_TEST_SKIP_SERVICES=1 and no KEYGATE_TEST_REDIS_URL");
            None
        }
        _ => panic!(
            "KEYGATE_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379); \
             set KEYGATE_TEST_SKIP_SERVICES=1 to skip tests that need Redis"
        ),
    }
}
