//! Replays of the two public Vault LiteLLM plugins against keygate over a real socket: the
//! exact requests their Go clients build (method, path and query, headers, JSON bodies as
//! `encoding/json` writes them: struct fields in declaration order, map keys sorted), and the
//! decoding their Go code does of each answer (a Go `string` field takes a JSON string or
//! `null`, anything else fails the whole decode; unknown fields are ignored).
//!
//! - clique-it-tech/vault-plugin-secrets-litellm `internal/litellm/client.go`: `ping`
//!   (`GET /key/list?page=1&size=1`), `createKey` (`keyRequest` with `duration: "%ds"`),
//!   `deleteKey` (`{"keys":[key]}`, 404 = already gone).
//! - benemon/vault-plugin-secrets-litellm `client.go`: `checkAdminKey` (`GET /key/list?size=1`),
//!   `generateKey` (a sorted map), `extendKey` (`/key/update` with `duration`),
//!   `findKeyByAlias` (`return_full_object=true&key_alias=`), `regenerateKey`
//!   (`/key/{token}/regenerate` with `{}`), `checkKey` (`/key/info?key=`, 404 = gone),
//!   `deleteKeyByAlias` (`{"key_aliases":[alias]}`, 404 = gone).

use http::StatusCode;
use keygate_core::keys::token;
use serde::Deserialize;

use crate::{common, on_both, Api};

on_both!(clique_it_tech_plugin, benemon_plugin);

/// clique `keyResponse`.
#[derive(Debug, Deserialize)]
struct KeyResponse {
    key: Option<String>,
    #[allow(dead_code)]
    key_name: Option<String>,
    token_id: Option<String>,
}

/// benemon `generatedKey`.
#[derive(Debug, Deserialize)]
struct GeneratedKey {
    key: Option<String>,
    token_id: Option<String>,
    key_alias: Option<String>,
    expires: Option<String>,
}

/// benemon `findKeyByAlias`'s answer.
#[derive(Debug, Deserialize)]
struct KeyList {
    keys: Option<Vec<ListedKey>>,
}

#[derive(Debug, Deserialize)]
struct ListedKey {
    token: Option<String>,
}

/// benemon `errorMessage`: the message of LiteLLM's envelope or FastAPI's `detail`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: Option<ErrorMessage>,
}

#[derive(Debug, Deserialize)]
struct ErrorMessage {
    message: Option<String>,
}

/// Go's `net/http` client: what it adds on its own, then what the plugin sets.
async fn send(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (StatusCode, String) {
    let client = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client
        .request(method, format!("{base}{path}"))
        .header("user-agent", "Go-http-client/1.1")
        .header("accept-encoding", "gzip");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    (status, response.text().await.unwrap())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn clique_it_tech_plugin(api: Api) {
    let (url, shutdown) = api.serve().await;
    let bearer = format!("Bearer {}", common::ADMIN);
    let get_headers = [
        ("authorization", bearer.as_str()),
        ("accept", "application/json"),
    ];
    let post_headers = [
        ("authorization", bearer.as_str()),
        ("accept", "application/json"),
        ("content-type", "application/json"),
    ];

    // ping
    let (status, _) = send(&url, "GET", "/key/list?page=1&size=1", &get_headers, None).await;
    assert!(status.is_success(), "{status}");

    // creds/<role>: keyRequest, 48h lifetime, a role with every optional field set...
    let alias = format!(
        "vault-gpt-{}",
        now_ms() * 1_000_000 + i64::from(std::process::id() % 1000)
    );
    let body = format!(
        r#"{{"key_alias":"{alias}","models":["gpt-4o","gpt-4o-mini"],"duration":"172800s","max_budget":2.5,"tpm_limit":1000,"rpm_limit":10,"team_id":"platform","metadata":{{"issued_by":"vault","role":"gpt"}}}}"#
    );
    let before = now_ms();
    let (status, text) = send(&url, "POST", "/key/generate", &post_headers, Some(&body)).await;
    assert!(status.is_success(), "{status} {text}");
    let issued: KeyResponse = serde_json::from_str(&text).unwrap();
    let key = issued.key.unwrap();
    assert!(!key.is_empty());
    assert_eq!(
        issued.token_id.as_deref(),
        Some(token::hash_key(&key).as_str())
    );
    let stored = api
        .state
        .store()
        .get_key(&token::hash_key(&key))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.models, ["gpt-4o", "gpt-4o-mini"]);
    assert_eq!(
        (stored.max_budget, stored.tpm_limit, stored.rpm_limit),
        (Some(2.5), Some(1000), Some(10))
    );
    assert_eq!(
        stored.metadata,
        serde_json::json!({"issued_by": "vault", "role": "gpt"})
    );
    let lifetime = stored.expires.unwrap() - before;
    assert!(
        (172_800_000..172_800_000 + 60_000).contains(&lifetime),
        "{lifetime}"
    );

    // ...and a role with none (nil Models marshals as null, zero values are omitted).
    let bare_alias = format!("{alias}-bare");
    let body = format!(
        r#"{{"key_alias":"{bare_alias}","models":null,"duration":"172800s","metadata":{{"issued_by":"vault","role":"bare"}}}}"#
    );
    let (status, text) = send(&url, "POST", "/key/generate", &post_headers, Some(&body)).await;
    assert!(status.is_success(), "{status} {text}");
    let bare: KeyResponse = serde_json::from_str(&text).unwrap();
    let bare_key = bare.key.unwrap();

    // revoke: delete by plaintext; a second revoke finds it gone (404, treated as success).
    for k in [&key, &bare_key] {
        let body = format!(r#"{{"keys":["{k}"]}}"#);
        let (status, text) = send(&url, "POST", "/key/delete", &post_headers, Some(&body)).await;
        assert!(status.is_success(), "{status} {text}");
        let (status, _) = send(&url, "POST", "/key/delete", &post_headers, Some(&body)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    assert!(api
        .state
        .store()
        .get_key(&token::hash_key(&key))
        .await
        .unwrap()
        .is_none());

    // A wrong master key fails the ping with a non-2xx status.
    let wrong = [
        ("authorization", "Bearer sk-wrong"),
        ("accept", "application/json"),
    ];
    let (status, _) = send(&url, "GET", "/key/list?page=1&size=1", &wrong, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    shutdown.cancel();
}

async fn benemon_plugin(api: Api) {
    let (url, shutdown) = api.serve().await;
    let bearer = format!("Bearer {}", common::ADMIN);
    let get_headers = [("authorization", bearer.as_str())];
    let post_headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];

    // checkAdminKey, and the message errorMessage pulls out of a refusal.
    let (status, _) = send(&url, "GET", "/key/list?size=1", &get_headers, None).await;
    assert!(status.is_success());
    let (status, text) = send(
        &url,
        "GET",
        "/key/list?size=1",
        &[("authorization", "Bearer nope")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let refusal: ErrorBody = serde_json::from_str(&text).unwrap();
    assert!(!refusal.error.unwrap().message.unwrap().is_empty());

    // creds/<name>: the role's key_request merged with Vault's fields, marshalled sorted.
    let suffix = &token::hash_key(&common::unique())[..12];
    let alias = format!("vault-analyst-{suffix}");
    let body = format!(
        r#"{{"duration":"3600s","key_alias":"{alias}","max_budget":10,"metadata":{{"team":"data","vault_mount_path":"litellm/","vault_request_id":"5f0c1b2e-8d4a-4e0b-9b8e-1c2d3e4f5a6b","vault_role":"analyst"}},"models":["gpt"],"tpm_limit":5000,"user_id":"alice"}}"#
    );
    let (status, text) = send(&url, "POST", "/key/generate", &post_headers, Some(&body)).await;
    assert!(status.is_success(), "{status} {text}");
    let generated: GeneratedKey = serde_json::from_str(&text).unwrap();
    let token_id = generated.token_id.unwrap();
    assert_eq!(token_id, token::hash_key(&generated.key.unwrap()));
    assert_eq!(generated.key_alias.as_deref(), Some(alias.as_str()));
    let expires = generated.expires.unwrap();
    assert!(expires.ends_with('Z'), "{expires}");

    // renew: extendKey re-bases the expiry to now + ttl.
    let body = format!(r#"{{"duration":"7200s","key":"{token_id}"}}"#);
    let before = now_ms();
    let (status, text) = send(&url, "POST", "/key/update", &post_headers, Some(&body)).await;
    assert!(status.is_success(), "{status} {text}");
    let stored = api.state.store().get_key(&token_id).await.unwrap().unwrap();
    let ttl = stored.expires.unwrap() - before;
    assert!((7_200_000..7_200_000 + 60_000).contains(&ttl), "{ttl}");
    assert_eq!(stored.user_id.as_deref(), Some("alice"));

    // static role bind: findKeyByAlias, then regenerateKey with an empty object.
    let find = format!("/key/list?return_full_object=true&key_alias={alias}");
    let (status, text) = send(&url, "GET", &find, &get_headers, None).await;
    assert!(status.is_success(), "{status} {text}");
    let found: KeyList = serde_json::from_str(&text).unwrap();
    assert_eq!(
        found.keys.unwrap()[0].token.as_deref(),
        Some(token_id.as_str())
    );
    let path = format!("/key/{token_id}/regenerate");
    let (status, text) = send(&url, "POST", &path, &post_headers, Some("{}")).await;
    assert!(status.is_success(), "{status} {text}");
    let rotated: GeneratedKey = serde_json::from_str(&text).unwrap();
    let new_id = rotated.token_id.unwrap();
    assert_ne!(new_id, token_id);
    assert_eq!(rotated.key_alias.as_deref(), Some(alias.as_str()));
    assert_eq!(token::hash_key(&rotated.key.unwrap()), new_id);

    // checkKey: the old hash is gone (404), the new one answers.
    let (status, _) = send(
        &url,
        "GET",
        &format!("/key/info?key={token_id}"),
        &get_headers,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(
        &url,
        "GET",
        &format!("/key/info?key={new_id}"),
        &get_headers,
        None,
    )
    .await;
    assert!(status.is_success());

    // revoke: deleteKeyByAlias; a second revoke is 404, which the plugin treats as gone.
    let body = format!(r#"{{"key_aliases":["{alias}"]}}"#);
    let (status, text) = send(&url, "POST", "/key/delete", &post_headers, Some(&body)).await;
    assert!(status.is_success(), "{status} {text}");
    let (status, _) = send(&url, "POST", "/key/delete", &post_headers, Some(&body)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, text) = send(&url, "GET", &find, &get_headers, None).await;
    let found: KeyList = serde_json::from_str(&text).unwrap();
    assert!(found.keys.unwrap().is_empty());
    shutdown.cancel();
}
