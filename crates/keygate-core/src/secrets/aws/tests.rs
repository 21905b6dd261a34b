//! The source against `FakeSecretsManager`, a local stand-in for the `GetSecretValue` JSON API
//! that re-computes each request's SigV4 signature from what it received.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};

use super::credentials::Credentials;
use super::*;

const SECRET_KEY: &str = "fake/secret+access-key";
const SESSION_TOKEN: &str = "fake-session-token";

/// A fake of Secrets Manager's `GetSecretValue`, clearly not AWS.
struct FakeSecretsManager {
    session_token: Option<&'static str>,
    requests: AtomicUsize,
}

fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({ "__type": kind, "message": message }).to_string();
    (status, body).into_response()
}

async fn fake_secrets_manager(
    State(fake): State<Arc<FakeSecretsManager>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.requests.fetch_add(1, Ordering::SeqCst);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("x-amz-target"), "secretsmanager.GetSecretValue");
    assert_eq!(header("content-type"), "application/x-amz-json-1.1");
    if header("x-amz-security-token") != fake.session_token.unwrap_or_default() {
        let message = "The security token included in the request is invalid.";
        return aws_error(
            StatusCode::BAD_REQUEST,
            "UnrecognizedClientException",
            message,
        );
    }

    // Re-sign what arrived; a mismatch is what AWS would call InvalidSignatureException.
    let (host, date) = (header("host"), header("x-amz-date"));
    let signed = sigv4::sign(
        &sigv4::Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &[
                ("host", &host),
                ("content-type", &header("content-type")),
                ("x-amz-target", &header("x-amz-target")),
            ],
            payload: &body,
        },
        &sigv4::Scope {
            region: "eu-west-1",
            service: "secretsmanager",
            amz_date: &date,
        },
        &Credentials {
            access_key_id: "AKIDFAKE".to_owned(),
            secret_access_key: SecretString::from(SECRET_KEY),
            session_token: fake.session_token.map(SecretString::from),
        },
    );
    let authorization = header("authorization");
    assert!(authorization.starts_with(&format!(
        "AWS4-HMAC-SHA256 Credential=AKIDFAKE/{}/eu-west-1/secretsmanager/aws4_request, ",
        &date[..8]
    )));
    if authorization != signed.authorization {
        let message =
            "The request signature we calculated does not match the signature you provided.";
        return aws_error(
            StatusCode::BAD_REQUEST,
            "InvalidSignatureException",
            message,
        );
    }

    let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let object = request.as_object().unwrap();
    assert_eq!(object.len(), 1, "only SecretId is sent");
    let secret = |value: serde_json::Value| value.to_string().into_response();
    match object["SecretId"].as_str().unwrap() {
        "plain" | "arn:aws:secretsmanager:eu-west-1:1:secret:plain-AbCdEf" => {
            secret(serde_json::json!({ "Name": "plain", "SecretString": "sk-plain-value" }))
        }
        "json" => secret(serde_json::json!({
            "SecretString": r#"{"api_key": "sk-json-value", "port": 5, "empty": ""}"#
        })),
        "binary" => secret(serde_json::json!({ "SecretBinary": "AAEC" })),
        "denied" => aws_error(
            StatusCode::BAD_REQUEST,
            "AccessDeniedException",
            "User: arn:aws:iam::1:user/k is not authorized to perform: GetSecretValue",
        ),
        "busy" => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("x-amzn-ErrorType", "ServiceUnavailable:http://internal/")],
            "",
        )
            .into_response(),
        _ => aws_error(
            StatusCode::BAD_REQUEST,
            "com.amazonaws.secretsmanager#ResourceNotFoundException",
            "Secrets Manager can't find the specified secret.",
        ),
    }
}

/// Serves a fake on 127.0.0.1 and returns its endpoint.
async fn serve(fake: Arc<FakeSecretsManager>) -> String {
    let app = axum::Router::new()
        .route("/", axum::routing::post(fake_secrets_manager))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

fn env(pairs: &[(&str, &str)]) -> Arc<dyn crate::config::Env + Send + Sync> {
    Arc::new(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>(),
    )
}

fn config(endpoint: Option<&str>) -> AwsSourceConfig {
    AwsSourceConfig {
        region: None,
        endpoint: endpoint.map(str::to_owned),
        profile: None,
        ttl: None,
    }
}

fn build(endpoint: &str, token: Option<&str>) -> AwsSecretsManager {
    build_with_key(endpoint, SECRET_KEY, token)
}

fn build_with_key(endpoint: &str, secret_key: &str, token: Option<&str>) -> AwsSecretsManager {
    let client = reqwest::Client::new();
    let mut vars = vec![
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDFAKE"),
        ("AWS_SECRET_ACCESS_KEY", secret_key),
    ];
    vars.extend(token.map(|t| ("AWS_SESSION_TOKEN", t)));
    let ctx = SourceContext {
        client: &client,
        env: env(&vars),
    };
    AwsSecretsManager::new(&config(Some(endpoint)), &ctx).unwrap()
}

async fn fetch(source: &AwsSecretsManager, name: &str, field: Option<&str>) -> Lookup {
    source.fetch(SecretQuery { name, field }).await.unwrap()
}

fn found(lookup: Lookup) -> String {
    match lookup {
        Lookup::Found(value) => value.value.expose_secret().to_owned(),
        Lookup::NotFound => panic!("not found"),
    }
}

/// Checks an error names no credential nor secret value.
fn assert_clean(err: &SourceError) {
    let text = format!("{err} {err:?}");
    for secret in [SECRET_KEY, SESSION_TOKEN, "sk-plain-value", "sk-json-value"] {
        assert!(!text.contains(secret), "{text}");
    }
}

#[tokio::test]
async fn fetches_signed_requests_with_and_without_session_token() {
    for token in [None, Some(SESSION_TOKEN)] {
        let fake = Arc::new(FakeSecretsManager {
            session_token: token,
            requests: AtomicUsize::new(0),
        });
        let source = build(&serve(fake.clone()).await, token);
        assert_eq!(found(fetch(&source, "plain", None).await), "sk-plain-value");
        let arn = "arn:aws:secretsmanager:eu-west-1:1:secret:plain-AbCdEf";
        assert_eq!(found(fetch(&source, arn, None).await), "sk-plain-value");
        assert_eq!(fake.requests.load(Ordering::SeqCst), 2);
    }
}

#[tokio::test]
async fn fields_of_json_secrets() {
    let fake = Arc::new(FakeSecretsManager {
        session_token: None,
        requests: AtomicUsize::new(0),
    });
    let source = build(&serve(fake).await, None);
    assert_eq!(
        found(fetch(&source, "json", Some("api_key")).await),
        "sk-json-value"
    );
    assert!(matches!(
        fetch(&source, "json", Some("nope")).await,
        Lookup::NotFound
    ));
    assert!(matches!(
        fetch(&source, "json", Some("empty")).await,
        Lookup::NotFound
    ));
    let query = |name, field| SecretQuery { name, field };
    let err = source.fetch(query("json", Some("port"))).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "GetSecretValue json: field port is not a string"
    );
    let err = source.fetch(query("plain", Some("k"))).await.unwrap_err();
    assert!(err.to_string().contains("not a JSON object"), "{err}");
    assert_clean(&err);
}

#[tokio::test]
async fn not_found_denied_binary_and_unavailable() {
    let fake = Arc::new(FakeSecretsManager {
        session_token: None,
        requests: AtomicUsize::new(0),
    });
    let source = build(&serve(fake).await, None);
    assert!(matches!(
        fetch(&source, "missing", None).await,
        Lookup::NotFound
    ));
    let query = |name| SecretQuery { name, field: None };

    let err = source.fetch(query("denied")).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "GetSecretValue denied: HTTP 400 AccessDeniedException: User: arn:aws:iam::1:user/k \
         is not authorized to perform: GetSecretValue"
    );
    let err = source.fetch(query("binary")).await.unwrap_err();
    assert!(err.to_string().contains("SecretBinary"), "{err}");
    let err = source.fetch(query("busy")).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "GetSecretValue busy: HTTP 503 ServiceUnavailable: "
    );
    assert_clean(&err);
}

#[tokio::test]
async fn a_wrong_key_is_a_signature_error_and_no_server_a_connection_error() {
    let fake = Arc::new(FakeSecretsManager {
        session_token: Some(SESSION_TOKEN),
        requests: AtomicUsize::new(0),
    });
    let endpoint = serve(fake).await;
    let query = SecretQuery {
        name: "plain",
        field: None,
    };
    let err = build(&endpoint, None).fetch(query).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("HTTP 400 UnrecognizedClientException"),
        "{err}"
    );
    let wrong_key = "wrong/secret+access-key";
    let source = build_with_key(&endpoint, wrong_key, Some(SESSION_TOKEN));
    let err = source.fetch(query).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("HTTP 400 InvalidSignatureException"),
        "{err}"
    );
    assert!(!err.to_string().contains(wrong_key));
    assert_clean(&err);

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let source = build(&closed, Some(SESSION_TOKEN));
    let err = source
        .fetch(SecretQuery {
            name: "plain",
            field: None,
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("connection to 127.0.0.1:"),
        "{err}"
    );
    assert_clean(&err);
}

#[test]
fn build_needs_a_region_and_a_clean_endpoint() {
    let client = reqwest::Client::new();
    let ctx = |pairs: &[(&str, &str)]| SourceContext {
        client: &client,
        env: env(pairs),
    };
    let keys = [
        ("AWS_ACCESS_KEY_ID", "AKID"),
        ("AWS_SECRET_ACCESS_KEY", "s"),
    ];
    let err = AwsSecretsManager::new(&config(None), &ctx(&keys)).unwrap_err();
    assert!(err.contains("no region"), "{err}");

    let with_region = [keys[0], keys[1], ("AWS_DEFAULT_REGION", "ap-south-1")];
    let source = AwsSecretsManager::new(&config(None), &ctx(&with_region)).unwrap();
    assert_eq!(source.kind(), "aws_secrets_manager");
    assert_eq!(
        source.describe(),
        "aws_secrets_manager region=ap-south-1 \
         endpoint=https://secretsmanager.ap-south-1.amazonaws.com credentials=env"
    );
    assert_eq!(source.host, "secretsmanager.ap-south-1.amazonaws.com");

    let moto = [keys[0], keys[1], ("AWS_REGION", "us-east-1")];
    let source = AwsSecretsManager::new(&config(Some("http://127.0.0.1:5000")), &ctx(&moto));
    assert_eq!(source.unwrap().host, "127.0.0.1:5000");
    let bad = AwsSecretsManager::new(&config(Some("http://u:pw@host")), &ctx(&moto));
    assert!(!bad.unwrap_err().contains("pw"));
    let env_endpoint = [
        keys[0],
        keys[1],
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", "http://localhost:4566"),
    ];
    let source = AwsSecretsManager::new(&config(None), &ctx(&env_endpoint)).unwrap();
    assert!(source
        .describe()
        .contains("endpoint=http://localhost:4566 "));
}

#[test]
fn error_types_and_messages() {
    assert_eq!(
        short_error_type("com.amazonaws.secretsmanager#ResourceNotFoundException"),
        "ResourceNotFoundException"
    );
    assert_eq!(short_error_type("Throttling:http://x/doc"), "Throttling");
    let xml = b"<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code></Error></ErrorResponse>";
    assert_eq!(
        xml_error_code(xml).as_deref(),
        Some("SignatureDoesNotMatch")
    );
    assert_eq!(xml_error_code(b"{}"), None);
    assert_eq!(clean("a\nb"), "ab");
    assert_eq!(clean(&"x".repeat(400)).chars().count(), 301);
}
