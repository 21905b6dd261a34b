//! The `aws_secrets_manager` source against moto, a local AWS emulator, through the public
//! `build_chain`. Needs `KEYGATE_TEST_MOTO_URL` naming a running moto server
//! (`moto_server -H 127.0.0.1 -p 5055` then `KEYGATE_TEST_MOTO_URL=http://127.0.0.1:5055`;
//! `scripts/test` starts one); without it the test fails loudly, unless
//! `KEYGATE_TEST_SKIP_SERVICES=1` says to skip service-backed tests. With moto's IAM checks on
//! (`INITIAL_NO_AUTH_ACTION_COUNT`), `KEYGATE_TEST_MOTO_ACCESS_KEY_ID` and
//! `KEYGATE_TEST_MOTO_SECRET_ACCESS_KEY` name an IAM user's key, and moto verifies each
//! signature (the two `CreateSecret` calls must still fall in the unauthenticated allowance).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use keygate_core::config::{AwsSourceConfig, SourceConfig};
use keygate_core::secrets::{build_chain, ExposeSecret, Lookup, SecretQuery, SourceContext};

/// Creates a secret with moto's `CreateSecret` (moto does not check this request's signature).
async fn create_secret(client: &reqwest::Client, endpoint: &str, name: &str, value: &str) {
    let body = serde_json::json!({ "Name": name, "SecretString": value }).to_string();
    let response = client
        .post(format!("{endpoint}/"))
        .header("x-amz-target", "secretsmanager.CreateSecret")
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/secretsmanager/aws4_request, \
             SignedHeaders=host, Signature=00",
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert!(
        status.is_success(),
        "CreateSecret: {status} {:?}",
        response.text().await
    );
}

fn found(lookup: Lookup) -> String {
    match lookup {
        Lookup::Found(value) => value.value.expose_secret().to_owned(),
        Lookup::NotFound => panic!("not found"),
    }
}

#[tokio::test]
async fn fetches_secrets_from_moto() {
    let Ok(endpoint) = std::env::var("KEYGATE_TEST_MOTO_URL") else {
        assert_eq!(
            std::env::var("KEYGATE_TEST_SKIP_SERVICES").as_deref(),
            Ok("1"),
            "KEYGATE_TEST_MOTO_URL is not set: start `moto_server -H 127.0.0.1 -p PORT` and set it \
             to http://127.0.0.1:PORT (scripts/test does), or set KEYGATE_TEST_SKIP_SERVICES=1"
        );
        eprintln!("skipped: KEYGATE_TEST_SKIP_SERVICES=1 and no KEYGATE_TEST_MOTO_URL");
        return;
    };
    let endpoint = endpoint.trim_end_matches('/').to_owned();
    let client = reqwest::Client::new();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("keygate/test-{nanos}");
    create_secret(&client, &endpoint, &name, "sk-moto-plain").await;
    let json_name = format!("{name}-json");
    let json = r#"{"api_key": "sk-moto-json", "org": "org-1"}"#;
    create_secret(&client, &endpoint, &json_name, json).await;

    let mut env: HashMap<String, String> = HashMap::from([
        ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID".to_owned(), "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "testing".to_owned()),
        ("AWS_SESSION_TOKEN".to_owned(), "testing-session".to_owned()),
    ]);
    if let (Ok(id), Ok(secret)) = (
        std::env::var("KEYGATE_TEST_MOTO_ACCESS_KEY_ID"),
        std::env::var("KEYGATE_TEST_MOTO_SECRET_ACCESS_KEY"),
    ) {
        env.insert("AWS_ACCESS_KEY_ID".to_owned(), id);
        env.insert("AWS_SECRET_ACCESS_KEY".to_owned(), secret);
        env.remove("AWS_SESSION_TOKEN");
    }
    let ctx = SourceContext {
        client: &client,
        env: Arc::new(env),
    };
    let config = SourceConfig::AwsSecretsManager(AwsSourceConfig {
        region: None,
        endpoint: Some(endpoint.clone()),
        profile: None,
        ttl: None,
    });
    let chain = build_chain(&[config], &ctx).unwrap();
    let source = &chain[0];
    assert_eq!(source.kind(), "aws_secrets_manager");
    eprintln!("against {}", source.describe());

    let query = |name, field| SecretQuery { name, field };
    assert_eq!(
        found(source.fetch(query(&name, None)).await.unwrap()),
        "sk-moto-plain"
    );
    let api_key = source.fetch(query(&json_name, Some("api_key"))).await;
    assert_eq!(found(api_key.unwrap()), "sk-moto-json");
    let whole = found(source.fetch(query(&json_name, None)).await.unwrap());
    assert_eq!(whole, json);
    let missing_field = source.fetch(query(&json_name, Some("nope"))).await.unwrap();
    assert!(matches!(missing_field, Lookup::NotFound));
    let missing = source.fetch(query("keygate/never-created", None)).await;
    assert!(matches!(missing.unwrap(), Lookup::NotFound));
}
