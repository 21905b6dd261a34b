//! The source against [`fake::FakeAzureKeyVault`]: token issuance and caching, secret reads,
//! name mapping, and errors that never carry a secret.

mod fake;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use self::fake::{fake_azure_serve, CLIENT_ID, CLIENT_SECRET, OPENAI_VALUE, TENANT};
use super::token::{form_encode, refresh_margin};
use super::*;

fn config(url: &str, client_secret: Option<&str>) -> AzureSourceConfig {
    AzureSourceConfig {
        vault_url: format!("{url}/"),
        tenant_id: Some(TENANT.to_owned()),
        client_id: None,
        client_secret: client_secret.map(str::to_owned),
        authority: Some(url.to_owned()),
        ttl: None,
    }
}

fn build(config: &AzureSourceConfig, vars: &[(&str, &str)]) -> Result<AzureKeyVault, String> {
    let client = reqwest::Client::new();
    let env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    AzureKeyVault::new(
        config,
        &SourceContext {
            client: &client,
            env: Arc::new(env),
        },
    )
}

fn fake_source(url: &str) -> AzureKeyVault {
    let vars = [
        ("AZURE_CLIENT_ID", CLIENT_ID),
        ("AZURE_CLIENT_SECRET", CLIENT_SECRET),
    ];
    build(&config(url, None), &vars).unwrap()
}

async fn fetch(source: &AzureKeyVault, name: &str) -> Result<Lookup, SourceError> {
    source.fetch(SecretQuery { name, field: None }).await
}

fn found(lookup: Lookup) -> SecretValue {
    match lookup {
        Lookup::Found(value) => value,
        Lookup::NotFound => panic!("not found"),
    }
}

/// No client secret, access token or secret value in an error's text or Debug.
fn assert_clean(text: &str) {
    for secret in [
        CLIENT_SECRET,
        "fake-access-token",
        OPENAI_VALUE,
        "sk-expir",
        "sk-disabled",
    ] {
        assert!(!text.contains(secret), "{text}");
    }
}

#[tokio::test]
async fn reads_secrets_with_one_cached_token_and_maps_underscores() {
    let (fake, url) = fake_azure_serve().await;
    let source = fake_source(&url);
    for _ in 0..3 {
        let value = found(fetch(&source, "OPENAI_API_KEY").await.unwrap());
        assert_eq!(value.value.expose_secret(), OPENAI_VALUE);
        assert_eq!(value.expires_at, None);
    }
    let expiring = found(fetch(&source, "expiring").await.unwrap());
    assert_eq!(
        expiring.expires_at,
        Some(UNIX_EPOCH + Duration::from_secs(4_102_444_800))
    );
    assert_eq!(fake.token_requests.load(Ordering::SeqCst), 1);
    assert_eq!(fake.vault_requests.load(Ordering::SeqCst), 4);
    assert_clean(&format!("{source:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lookups_share_one_token_request() {
    let (fake, url) = fake_azure_serve().await;
    let source = fake_source(&url);
    let lookups = (0..8).map(|_| fetch(&source, "OPENAI_API_KEY"));
    for lookup in futures_util::future::join_all(lookups).await {
        found(lookup.unwrap());
    }
    assert_eq!(fake.token_requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_expiring_token_is_fetched_again() {
    let (fake, url) = fake_azure_serve().await;
    // "0" as a string: the token is already due for refresh when it arrives.
    *fake.expires_in.lock().unwrap() = serde_json::json!("0");
    let source = fake_source(&url);
    found(fetch(&source, "OPENAI_API_KEY").await.unwrap());
    found(fetch(&source, "OPENAI_API_KEY").await.unwrap());
    assert_eq!(fake.token_requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_revoked_token_is_dropped_and_replaced() {
    let (fake, url) = fake_azure_serve().await;
    let source = fake_source(&url);
    found(fetch(&source, "OPENAI_API_KEY").await.unwrap());
    // The vault stops accepting the cached token: one 401, a new token, the same lookup again.
    fake.valid_tokens.lock().unwrap().clear();
    found(fetch(&source, "OPENAI_API_KEY").await.unwrap());
    assert_eq!(fake.token_requests.load(Ordering::SeqCst), 2);
    assert_eq!(fake.vault_requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_401_with_a_fresh_token_is_an_error_and_the_token_is_dropped() {
    let (fake, url) = fake_azure_serve().await;
    let source = fake_source(&url);
    fake.reject_all.store(true, Ordering::SeqCst);
    let err = fetch(&source, "OPENAI_API_KEY").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "GET secret OPENAI-API-KEY: HTTP 401 Unauthorized"
    );
    assert_clean(&format!("{err} {err:?}"));
    // The token was fresh, so no second try; but it is dropped: the next lookup gets another.
    assert_eq!(fake.token_requests.load(Ordering::SeqCst), 1);
    assert_eq!(fake.vault_requests.load(Ordering::SeqCst), 1);
    fake.reject_all.store(false, Ordering::SeqCst);
    found(fetch(&source, "OPENAI_API_KEY").await.unwrap());
    assert_eq!(fake.token_requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn not_found_disabled_expired_and_invalid_names_pass_on() {
    let (fake, url) = fake_azure_serve().await;
    let source = fake_source(&url);
    for name in [
        "missing",
        "disabled",
        "disabled-403",
        "expired",
        "MISSING_ONE",
    ] {
        assert!(
            matches!(fetch(&source, name).await.unwrap(), Lookup::NotFound),
            "{name}"
        );
    }
    assert_eq!(fake.vault_requests.load(Ordering::SeqCst), 5);
    for name in ["a.b", "a/b", "with space", "", &"x".repeat(128)] {
        assert!(
            matches!(fetch(&source, name).await.unwrap(), Lookup::NotFound),
            "{name}"
        );
    }
    assert_eq!(
        fake.vault_requests.load(Ordering::SeqCst),
        5,
        "no request for invalid names"
    );
}

#[tokio::test]
async fn forbidden_fields_and_bad_client_secrets_are_clean_errors() {
    let (_fake, url) = fake_azure_serve().await;
    let source = fake_source(&url);
    let err = fetch(&source, "forbidden").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "GET secret forbidden: HTTP 403 Forbidden/ForbiddenByPolicy"
    );
    assert_clean(&format!("{err} {err:?}"));

    let query = SecretQuery {
        name: "OPENAI_API_KEY",
        field: Some("key"),
    };
    let err = source.fetch(query).await.unwrap_err();
    assert!(err.to_string().contains("have no fields"), "{err}");

    let wrong = "wrong-client-secret";
    let vars = [("AZURE_CLIENT_ID", CLIENT_ID), ("WRONG", wrong)];
    let source = build(&config(&url, Some("env:WRONG")), &vars).unwrap();
    let err = fetch(&source, "OPENAI_API_KEY").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "token request failed: HTTP 401 invalid_client: AADSTS7000215: Invalid client secret \
         provided."
    );
    assert!(!format!("{err:?} {source:?}").contains(wrong));
}

#[tokio::test]
async fn client_secret_from_a_file_and_unreachable_authority() {
    let (_fake, url) = fake_azure_serve().await;
    let path = std::env::temp_dir().join(format!("keygate-azure-secret-{}", std::process::id()));
    std::fs::write(&path, format!("{CLIENT_SECRET}\n")).unwrap();
    let reference = format!("file:{}", path.display());
    let source = build(
        &config(&url, Some(&reference)),
        &[("AZURE_CLIENT_ID", CLIENT_ID)],
    );
    found(fetch(&source.unwrap(), "OPENAI_API_KEY").await.unwrap());
    std::fs::remove_file(&path).unwrap();

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = fetch(&fake_source(&closed), "OPENAI_API_KEY")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("token request failed: connection to 127.0.0.1"),
        "{err}"
    );
    assert_clean(&err.to_string());
}

#[test]
fn build_settings_and_description() {
    let base = config("https://kv1.vault.azure.net", Some(CLIENT_SECRET));
    let err = build(&base, &[]).unwrap_err();
    assert_eq!(err, "no client_id: set `client_id` or AZURE_CLIENT_ID");
    let vars = [("AZURE_CLIENT_ID", CLIENT_ID)];
    let source = build(&base, &vars).unwrap();
    assert_eq!(source.kind(), "azure_key_vault");
    assert_eq!(
        source.describe(),
        "azure_key_vault https://kv1.vault.azure.net tenant=fake-tenant"
    );
    assert_clean(&format!("{source:?}"));

    let unset = build(&config("https://kv1.vault.azure.net", None), &vars).unwrap_err();
    assert_eq!(
        unset,
        "client_secret: environment variable AZURE_CLIENT_SECRET is unset"
    );
    let unsupported = build(&config("https://kv", Some("secret:X")), &vars).unwrap_err();
    assert!(
        unsupported.contains("secret:X is not supported"),
        "{unsupported}"
    );
    let with_password = build(&config("https://u:pw@kv", Some("s")), &vars).unwrap_err();
    assert!(!with_password.contains("pw"), "{with_password}");
    let mut no_tenant = config("https://kv", Some("s"));
    no_tenant.tenant_id = None;
    assert!(build(&no_tenant, &vars)
        .unwrap_err()
        .contains("AZURE_TENANT_ID"));
}

#[test]
fn names_scopes_margins_and_forms() {
    assert_eq!(
        vault_name("OPENAI_API_KEY").as_deref(),
        Some("OPENAI-API-KEY")
    );
    assert_eq!(vault_name("a-b-9").as_deref(), Some("a-b-9"));
    assert_eq!(vault_name("a.b"), None);
    assert_eq!(
        vault_scope("https://x.vault.azure.net"),
        "https://vault.azure.net/.default"
    );
    assert_eq!(
        vault_scope("https://x.vault.azure.cn"),
        "https://vault.azure.cn/.default"
    );
    assert_eq!(
        vault_scope("http://127.0.0.1:1"),
        "https://vault.azure.net/.default"
    );
    assert_eq!(
        refresh_margin(Duration::from_secs(3600)),
        Duration::from_secs(300)
    );
    assert_eq!(
        refresh_margin(Duration::from_secs(600)),
        Duration::from_secs(60)
    );
    assert_eq!(
        form_encode(&[
            ("scope", "https://vault.azure.net/.default"),
            ("k", "a b~+&=")
        ]),
        "scope=https%3A%2F%2Fvault.azure.net%2F.default&k=a%20b~%2B%26%3D"
    );
}
