//! `FakeAzureKeyVault`: a small stand-in, written for these tests, for the Entra ID token
//! endpoint and the Key Vault `GET secret` API (no Azure emulator exists). It is a fake: it
//! checks what keygate sends, not what Azure would accept.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

pub const TENANT: &str = "fake-tenant";
pub const CLIENT_ID: &str = "fake-client-id";
pub const CLIENT_SECRET: &str = "fake~client/secret+value";
pub const OPENAI_VALUE: &str = "sk-fake-openai-value";

/// A fake Entra ID + Key Vault, clearly not Azure.
#[derive(Default)]
pub struct FakeAzureKeyVault {
    pub token_requests: AtomicUsize,
    pub vault_requests: AtomicUsize,
    /// What `expires_in` says (number or string).
    pub expires_in: Mutex<serde_json::Value>,
    /// Tokens the vault accepts.
    pub valid_tokens: Mutex<HashSet<String>>,
    /// When set, the vault refuses every token.
    pub reject_all: AtomicBool,
}

fn fake_azure_form(body: &[u8]) -> HashMap<String, String> {
    let decode = |text: &str| {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' => {
                    out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                byte => {
                    out.push(byte);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).unwrap()
    };
    std::str::from_utf8(body)
        .unwrap()
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (decode(k), decode(v))
        })
        .collect()
}

async fn fake_azure_token(
    State(fake): State<Arc<FakeAzureKeyVault>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = fake.token_requests.fetch_add(1, Ordering::SeqCst) + 1;
    assert_eq!(tenant, TENANT);
    assert_eq!(
        headers["content-type"].to_str().unwrap(),
        "application/x-www-form-urlencoded"
    );
    let form = fake_azure_form(&body);
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], CLIENT_ID);
    assert_eq!(form["scope"], "https://vault.azure.net/.default");
    if form["client_secret"] != CLIENT_SECRET {
        let error = serde_json::json!({
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1",
        });
        return (StatusCode::UNAUTHORIZED, error.to_string()).into_response();
    }
    let token = format!("fake-access-token-{n}");
    fake.valid_tokens.lock().unwrap().insert(token.clone());
    let expires_in = fake.expires_in.lock().unwrap().clone();
    serde_json::json!({ "token_type": "Bearer", "expires_in": expires_in, "access_token": token })
        .to_string()
        .into_response()
}

fn fake_azure_error(status: StatusCode, code: &str, inner: Option<&str>) -> Response {
    let mut error = serde_json::json!({ "code": code, "message": "fake message" });
    if let Some(inner) = inner {
        error["innererror"] = serde_json::json!({ "code": inner });
    }
    (status, serde_json::json!({ "error": error }).to_string()).into_response()
}

async fn fake_azure_secret(
    State(fake): State<Arc<FakeAzureKeyVault>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    fake.vault_requests.fetch_add(1, Ordering::SeqCst);
    assert_eq!(query.get("api-version").map(String::as_str), Some("7.4"));
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if fake.reject_all.load(Ordering::SeqCst) || !fake.valid_tokens.lock().unwrap().contains(bearer)
    {
        return fake_azure_error(StatusCode::UNAUTHORIZED, "Unauthorized", None);
    }
    let bundle = |value: &str, attributes: serde_json::Value| {
        serde_json::json!({ "value": value, "id": name, "attributes": attributes })
            .to_string()
            .into_response()
    };
    match name.as_str() {
        "OPENAI-API-KEY" => bundle(OPENAI_VALUE, serde_json::json!({ "enabled": true })),
        "expiring" => bundle(
            "sk-expiring",
            serde_json::json!({ "exp": 4_102_444_800_u64 }),
        ),
        "expired" => bundle("sk-expired", serde_json::json!({ "exp": 1_000 })),
        "disabled" => bundle("sk-disabled", serde_json::json!({ "enabled": false })),
        "disabled-403" => {
            fake_azure_error(StatusCode::FORBIDDEN, "Forbidden", Some("SecretDisabled"))
        }
        "forbidden" => fake_azure_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            Some("ForbiddenByPolicy"),
        ),
        _ => fake_azure_error(StatusCode::NOT_FOUND, "SecretNotFound", None),
    }
}

/// Serves the fake (token endpoint and vault on one address); returns it and its URL.
pub async fn fake_azure_serve() -> (Arc<FakeAzureKeyVault>, String) {
    let fake = Arc::new(FakeAzureKeyVault::default());
    *fake.expires_in.lock().unwrap() = serde_json::json!(3599);
    let app = axum::Router::new()
        .route(
            "/{tenant}/oauth2/v2.0/token",
            axum::routing::post(fake_azure_token),
        )
        .route("/secrets/{name}", axum::routing::get(fake_azure_secret))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (fake, url)
}
