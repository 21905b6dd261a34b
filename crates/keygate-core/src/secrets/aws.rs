//! AWS Secrets Manager (`type: aws_secrets_manager`): `GetSecretValue` over the JSON protocol,
//! signed with SigV4 by hand (no AWS SDK).
//!
//! - The query's name is the `SecretId` (a name or an ARN); the whole `SecretString` is the
//!   value. With a field (`aws-sm:prod/llm#openai`), the `SecretString` must be a JSON object and
//!   the field a string; a missing field is *not found* (the chain moves on), a secret that is
//!   not a JSON object or a field that is not a string is an error.
//! - `ResourceNotFoundException` is *not found*; every other AWS error is a [`SourceError`]
//!   naming the HTTP status, the AWS error type and AWS's message (which never holds secret
//!   values). Binary secrets (`SecretBinary`) are an error. An empty value is *not found*.
//! - Region: `region`, else `AWS_REGION`, else `AWS_DEFAULT_REGION`. Endpoint: `endpoint`, else
//!   `AWS_ENDPOINT_URL_SECRETS_MANAGER`, else `AWS_ENDPOINT_URL`, else
//!   `https://secretsmanager.{region}.amazonaws.com`. Credentials: see [`credentials`].
//! - Each request has a 10 s timeout. Nothing is cached here; the resolver's cache does that.

mod credentials;
mod sigv4;
#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime};

use keygate_plugin_api::{BoxFuture, Lookup, SecretQuery, SecretSource, SecretValue, SourceError};
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use reqwest::Url;
use serde::Deserialize;

use self::credentials::CredentialSource;
use super::SourceContext;
use crate::config::AwsSourceConfig;

/// The SigV4 service name.
const SERVICE: &str = "secretsmanager";
/// `X-Amz-Target` of the one operation used.
const TARGET: &str = "secretsmanager.GetSecretValue";
/// The AWS JSON 1.1 protocol's content type.
const JSON_1_1: &str = "application/x-amz-json-1.1";
/// How long one `GetSecretValue` may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The `aws_secrets_manager` secret source.
#[derive(Debug)]
pub struct AwsSecretsManager {
    client: reqwest::Client,
    url: Url,
    /// `Host` as signed: the endpoint's host, with its port when not the scheme's default.
    host: String,
    region: String,
    credentials: CredentialSource,
    ttl: Option<Duration>,
}

impl AwsSecretsManager {
    /// Builds the source from its config. No network I/O, no file I/O.
    pub fn new(config: &AwsSourceConfig, ctx: &SourceContext<'_>) -> Result<Self, String> {
        let env = ctx.env.as_ref();
        let var = |name: &str| env.var(name).filter(|v| !v.trim().is_empty());
        let region = config
            .region
            .clone()
            .filter(|r| !r.trim().is_empty())
            .or_else(|| var("AWS_REGION"))
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .ok_or("no region: set `region`, AWS_REGION or AWS_DEFAULT_REGION")?
            .trim()
            .to_owned();
        if !region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!("region {region:?} is not an AWS region name"));
        }
        let endpoint = config
            .endpoint
            .clone()
            .filter(|e| !e.trim().is_empty())
            .or_else(|| var("AWS_ENDPOINT_URL_SECRETS_MANAGER"))
            .or_else(|| var("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| format!("https://{SERVICE}.{region}.amazonaws.com"));
        let url = Url::parse(endpoint.trim())
            .map_err(|err| format!("endpoint is not a valid URL: {err}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("endpoint must be an http:// or https:// URL".to_owned());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("endpoint must not contain a user name or password".to_owned());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("endpoint must not have a query or fragment".to_owned());
        }
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => return Err("endpoint has no host".to_owned()),
        };
        Ok(Self {
            client: ctx.client.clone(),
            url,
            host,
            region,
            credentials: CredentialSource::from_env(config.profile.as_deref(), env)?,
            ttl: config.ttl,
        })
    }

    async fn get_secret_value(&self, query: SecretQuery<'_>) -> Result<Lookup, SourceError> {
        let name = query.name;
        let credentials = self.credentials.get().await?;
        let body = serde_json::json!({ "SecretId": name }).to_string();
        let amz_date = sigv4::amz_date(SystemTime::now());
        let signed = sigv4::sign(
            &sigv4::Request {
                method: "POST",
                path: self.url.path(),
                query: "",
                headers: &[
                    ("host", self.host.as_str()),
                    ("content-type", JSON_1_1),
                    ("x-amz-target", TARGET),
                ],
                payload: body.as_bytes(),
            },
            &sigv4::Scope {
                region: &self.region,
                service: SERVICE,
                amz_date: &amz_date,
            },
            &credentials,
        );
        let mut request = self
            .client
            .post(self.url.clone())
            .timeout(REQUEST_TIMEOUT)
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, JSON_1_1)
            .header("x-amz-target", TARGET)
            .header("x-amz-date", signed.amz_date)
            .header(AUTHORIZATION, sensitive(&signed.authorization)?);
        if let Some(token) = signed.security_token {
            request = request.header("x-amz-security-token", sensitive(&token)?);
        }
        let failed = |what: String| SourceError::new(format!("GetSecretValue {name}: {what}"));
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|err| failed(transport_error(&self.host, err)))?;
        let status = response.status();
        let error_type_header = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .bytes()
            .await
            .map_err(|err| failed(transport_error(&self.host, err)))?;
        if status.is_success() {
            return parse_secret(name, query.field, &bytes);
        }
        let error = serde_json::from_slice::<AwsError>(&bytes).unwrap_or_default();
        let kind = error
            .kind
            .or(error_type_header)
            .or_else(|| xml_error_code(&bytes))
            .map(|t| short_error_type(&t).to_owned())
            .unwrap_or_else(|| "unknown error".to_owned());
        if kind == "ResourceNotFoundException" {
            return Ok(Lookup::NotFound);
        }
        let message = error.message.map(|m| clean(&m)).unwrap_or_default();
        Err(failed(format!(
            "HTTP {} {kind}: {message}",
            status.as_u16()
        )))
    }
}

impl SecretSource for AwsSecretsManager {
    fn kind(&self) -> &str {
        "aws_secrets_manager"
    }

    fn describe(&self) -> String {
        format!(
            "aws_secrets_manager region={} endpoint={} {}",
            self.region,
            self.url.as_str().trim_end_matches('/'),
            self.credentials.describe()
        )
    }

    fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    fn fetch<'a>(&'a self, query: SecretQuery<'a>) -> BoxFuture<'a, Result<Lookup, SourceError>> {
        Box::pin(self.get_secret_value(query))
    }
}

/// The parts of a `GetSecretValue` answer that are read.
#[derive(Deserialize)]
struct SecretOutput {
    #[serde(rename = "SecretString")]
    secret_string: Option<String>,
    #[serde(rename = "SecretBinary")]
    secret_binary: Option<serde::de::IgnoredAny>,
}

/// An AWS JSON-protocol error body.
#[derive(Deserialize, Default)]
struct AwsError {
    #[serde(rename = "__type")]
    kind: Option<String>,
    #[serde(alias = "Message")]
    message: Option<String>,
}

/// Picks the value (or one JSON field of it) out of a successful answer. Errors never quote it.
fn parse_secret(name: &str, field: Option<&str>, body: &[u8]) -> Result<Lookup, SourceError> {
    let failed = |what: String| Err(SourceError::new(format!("GetSecretValue {name}: {what}")));
    let Ok(output) = serde_json::from_slice::<SecretOutput>(body) else {
        return failed("malformed response (not a GetSecretValue answer)".to_owned());
    };
    let secret = match (output.secret_string, output.secret_binary) {
        (Some(secret), _) => secret,
        (None, Some(_)) => return failed("binary secrets (SecretBinary) are not supported".into()),
        (None, None) => return failed("the response has no SecretString".to_owned()),
    };
    let value = match field {
        None => secret,
        Some(field) => {
            let Ok(object) =
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&secret)
            else {
                return failed(format!(
                    "the secret is not a JSON object, so has no field {field}"
                ));
            };
            match object.get(field) {
                None | Some(serde_json::Value::Null) => return Ok(Lookup::NotFound),
                Some(serde_json::Value::String(value)) => value.clone(),
                Some(_) => return failed(format!("field {field} is not a string")),
            }
        }
    };
    Ok(if value.is_empty() {
        Lookup::NotFound
    } else {
        Lookup::Found(SecretValue::new(value))
    })
}

/// `com.amazonaws.secretsmanager#ResourceNotFoundException` or the `x-amzn-ErrorType` form
/// `ResourceNotFoundException:http://...` to `ResourceNotFoundException`.
fn short_error_type(kind: &str) -> &str {
    let kind = kind.rsplit('#').next().unwrap_or(kind);
    kind.split(':').next().unwrap_or(kind).trim()
}

/// `<Code>X</Code>` of an XML error body (emulators answer some failures, such as a bad
/// signature, in the query protocol's XML).
fn xml_error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text.get(start..)?.find("</Code>")?;
    Some(clean(text.get(start..start + len)?))
}

/// A server-supplied message made safe for one log line: control characters dropped, at most
/// 300 characters.
fn clean(message: &str) -> String {
    let mut text: String = message.chars().filter(|c| !c.is_control()).collect();
    if let Some((cut, _)) = text.char_indices().nth(300) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// A header value hidden from `Debug` output (and HTTP/2 header compression).
fn sensitive(value: &str) -> Result<HeaderValue, SourceError> {
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| SourceError::new("credentials contain characters not allowed in headers"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Why a request got no answer, without the URL: the error's causes, or "timed out".
fn transport_error(host: &str, err: reqwest::Error) -> String {
    if err.is_timeout() {
        return format!(
            "request to {host} timed out after {}s",
            REQUEST_TIMEOUT.as_secs()
        );
    }
    let err = err.without_url();
    let mut causes = vec![err.to_string()];
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    format!("connection to {host} failed: {}", causes.join(": "))
}
