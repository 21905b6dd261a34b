//! Azure Key Vault (`type: azure_key_vault`): a client-credentials token from Entra ID (see
//! [`token`]) and `GET {vault_url}/secrets/{name}?api-version=7.4`.
//!
//! - Names: Key Vault allows only `0-9 a-z A-Z -` (1–127 characters), so `_` is read as `-`
//!   (`secret:OPENAI_API_KEY` reads `OPENAI-API-KEY`). A name with any other character
//!   (`.`, `/`, spaces; so no `name/version` either) is *not found* without a request.
//! - Fields: Key Vault secrets are one string, so a query with a field (`#FIELD`) is an error.
//! - The current version is read. A disabled secret (`enabled: false`, or the 403
//!   `SecretDisabled`), one past its `exp` or before its `nbf`, an empty one, and a 404 are
//!   *not found*; `exp` becomes the value's `expires_at`.
//! - 401/403 and other failures are [`SourceError`]s naming the HTTP status and Azure's error
//!   code. On a 401 the cached token is dropped; if it came from the cache, the lookup is tried
//!   once more with a new token.
//! - Credentials: `tenant_id`/`client_id` from the config or `AZURE_TENANT_ID`/`AZURE_CLIENT_ID`;
//!   `client_secret` is a reference (`env:NAME`, `file:PATH`, or the secret itself), default
//!   `env:AZURE_CLIENT_SECRET`. Authority: `authority`, else `AZURE_AUTHORITY_HOST`, else
//!   `https://login.microsoftonline.com`. The token scope follows the vault's cloud
//!   (`vault.azure.net`, `.cn`, `.usgovcloudapi.net`).
//! - Each request has a 10 s timeout.

#[cfg(test)]
mod tests;
mod token;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keygate_plugin_api::{BoxFuture, Lookup, SecretQuery, SecretSource, SecretValue, SourceError};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use self::token::{ClientSecret, TokenProvider};
use super::{CredentialRef, SourceContext};
use crate::config::{AzureSourceConfig, Env};

/// The Key Vault REST API version used.
const API_VERSION: &str = "7.4";
/// How long one token or secret request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The `azure_key_vault` secret source.
#[derive(Debug)]
pub struct AzureKeyVault {
    client: reqwest::Client,
    /// `vault_url` without a trailing `/`.
    vault_url: String,
    tenant_id: String,
    tokens: TokenProvider,
    ttl: Option<Duration>,
}

impl AzureKeyVault {
    /// Builds the source from its config. No network I/O.
    pub fn new(config: &AzureSourceConfig, ctx: &SourceContext<'_>) -> Result<Self, String> {
        let env = ctx.env.as_ref();
        let setting = |value: &Option<String>, var: &str, what: &str| {
            value
                .clone()
                .filter(|v| !v.trim().is_empty())
                .or_else(|| env.var(var).filter(|v| !v.trim().is_empty()))
                .map(|v| v.trim().to_owned())
                .ok_or(format!("no {what}: set `{what}` or {var}"))
        };
        let vault_url = http_url(&config.vault_url, "vault_url")?;
        let tenant_id = setting(&config.tenant_id, "AZURE_TENANT_ID", "tenant_id")?;
        if !tenant_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(format!(
                "tenant_id {tenant_id:?} is not a tenant id or domain"
            ));
        }
        let client_id = setting(&config.client_id, "AZURE_CLIENT_ID", "client_id")?;
        let authority = match setting(&config.authority, "AZURE_AUTHORITY_HOST", "authority") {
            Ok(authority) => http_url(&authority, "authority")?,
            Err(_) => "https://login.microsoftonline.com".to_owned(),
        };
        let secret = client_secret(config.client_secret.as_deref(), env)?;
        let tokens = TokenProvider::new(
            ctx.client.clone(),
            format!("{authority}/{tenant_id}/oauth2/v2.0/token"),
            client_id,
            vault_scope(&vault_url),
            secret,
        );
        Ok(Self {
            client: ctx.client.clone(),
            vault_url,
            tenant_id,
            tokens,
            ttl: config.ttl,
        })
    }

    async fn get_secret(&self, query: SecretQuery<'_>) -> Result<Lookup, SourceError> {
        if let Some(field) = query.field {
            return Err(SourceError::new(format!(
                "azure_key_vault secrets have no fields (asked for {}#{field})",
                query.name
            )));
        }
        let Some(name) = vault_name(query.name) else {
            return Ok(Lookup::NotFound);
        };
        let (token, fresh) = self.tokens.token().await?;
        let (mut status, mut body) = self.request(&name, &token).await?;
        if status == reqwest::StatusCode::UNAUTHORIZED {
            self.tokens.invalidate(&token).await;
            if !fresh {
                let (token, _) = self.tokens.token().await?;
                (status, body) = self.request(&name, &token).await?;
                if status == reqwest::StatusCode::UNAUTHORIZED {
                    self.tokens.invalidate(&token).await;
                }
            }
        }
        interpret(&name, status, &body)
    }

    async fn request(
        &self,
        name: &str,
        token: &SecretString,
    ) -> Result<(reqwest::StatusCode, bytes::Bytes), SourceError> {
        let failed = |err| SourceError::new(format!("GET secret {name}: {}", transport_error(err)));
        let mut authorization =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                .map_err(|_| SourceError::new("the access token is not a valid header value"))?;
        authorization.set_sensitive(true);
        let response = self
            .client
            .get(format!("{}/secrets/{name}", self.vault_url))
            .query(&[("api-version", API_VERSION)])
            .timeout(REQUEST_TIMEOUT)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .send()
            .await
            .map_err(failed)?;
        let status = response.status();
        Ok((status, response.bytes().await.map_err(failed)?))
    }
}

impl SecretSource for AzureKeyVault {
    fn kind(&self) -> &str {
        "azure_key_vault"
    }

    fn describe(&self) -> String {
        format!(
            "azure_key_vault {} tenant={}",
            self.vault_url, self.tenant_id
        )
    }

    fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    fn fetch<'a>(&'a self, query: SecretQuery<'a>) -> BoxFuture<'a, Result<Lookup, SourceError>> {
        Box::pin(self.get_secret(query))
    }
}

/// A `SecretBundle`, as far as it is read.
#[derive(Deserialize)]
struct Bundle {
    value: Option<String>,
    #[serde(default)]
    attributes: Attributes,
}

/// Secret attributes; times are Unix seconds.
#[derive(Deserialize, Default)]
struct Attributes {
    enabled: Option<bool>,
    exp: Option<u64>,
    nbf: Option<u64>,
}

/// `{"error": {"code", "message", "innererror": {"code"}}}`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Deserialize, Default)]
struct ErrorDetail {
    code: Option<String>,
    innererror: Option<Box<ErrorDetail>>,
}

/// Turns the vault's answer into a lookup. Errors never quote the value.
fn interpret(name: &str, status: reqwest::StatusCode, body: &[u8]) -> Result<Lookup, SourceError> {
    let failed = |what: String| Err(SourceError::new(format!("GET secret {name}: {what}")));
    if status.is_success() {
        let Ok(bundle) = serde_json::from_slice::<Bundle>(body) else {
            return failed("malformed response (not a secret bundle)".to_owned());
        };
        let Some(value) = bundle.value else {
            return failed("the response has no value".to_owned());
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let attributes = bundle.attributes;
        if value.is_empty()
            || attributes.enabled == Some(false)
            || attributes.exp.is_some_and(|exp| exp <= now)
            || attributes.nbf.is_some_and(|nbf| nbf > now)
        {
            return Ok(Lookup::NotFound);
        }
        let mut found = SecretValue::new(value);
        found.expires_at = attributes
            .exp
            .map(|exp| UNIX_EPOCH + Duration::from_secs(exp));
        return Ok(Lookup::Found(found));
    }
    let error = serde_json::from_slice::<ErrorBody>(body)
        .unwrap_or_default()
        .error;
    let inner = error.innererror.and_then(|inner| inner.code);
    if status == reqwest::StatusCode::NOT_FOUND || inner.as_deref() == Some("SecretDisabled") {
        return Ok(Lookup::NotFound);
    }
    let mut code = error.code.map(|c| clean(&c)).unwrap_or_default();
    if let Some(inner) = inner {
        code = format!("{code}/{}", clean(&inner));
    }
    failed(
        format!("HTTP {} {code}", status.as_u16())
            .trim_end()
            .to_owned(),
    )
}

/// The Key Vault name for a query name: `_` as `-`; `None` when not a valid name.
fn vault_name(name: &str) -> Option<String> {
    let name = name.replace('_', "-");
    let valid = (1..=127).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    valid.then_some(name)
}

/// The token scope of the vault's cloud.
fn vault_scope(vault_url: &str) -> String {
    let host = Url::parse(vault_url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_default();
    let resource = [
        "vault.azure.cn",
        "vault.usgovcloudapi.net",
        "vault.microsoftazure.de",
    ]
    .into_iter()
    .find(|suffix| host.ends_with(&format!(".{suffix}")))
    .unwrap_or("vault.azure.net");
    format!("https://{resource}/.default")
}

/// An `http(s)://` URL without credentials, query or trailing `/`. Errors never echo it.
fn http_url(text: &str, what: &str) -> Result<String, String> {
    let url = Url::parse(text.trim()).map_err(|err| format!("{what} is not a valid URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{what} must be an http:// or https:// URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{what} must not contain a user name or password"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{what} must not have a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The client secret reference: `env:NAME` (read now), `file:PATH` (read per token), a literal.
fn client_secret(reference: Option<&str>, env: &dyn Env) -> Result<ClientSecret, String> {
    let reference = reference.unwrap_or("env:AZURE_CLIENT_SECRET");
    match reference.parse::<CredentialRef>() {
        Err(err) => Err(format!("client_secret: {err}")),
        Ok(CredentialRef::Env(name)) => env
            .var(&name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| ClientSecret::Value(SecretString::from(v.trim().to_owned())))
            .ok_or(format!(
                "client_secret: environment variable {name} is unset"
            )),
        Ok(CredentialRef::File(path)) => Ok(ClientSecret::File(path)),
        Ok(CredentialRef::Literal(secret)) => Ok(ClientSecret::Value(secret)),
        Ok(other) => Err(format!(
            "client_secret: {} is not supported here; use env:NAME, file:PATH or the secret",
            other.describe()
        )),
    }
}

/// A server-supplied text made safe for one log line: no control characters, at most 200.
fn clean(text: &str) -> String {
    let mut text: String = text.chars().filter(|c| !c.is_control()).collect();
    if let Some((cut, _)) = text.char_indices().nth(200) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Why a request got no answer: the host and the error's causes, never the full URL.
fn transport_error(err: reqwest::Error) -> String {
    let host = err
        .url()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_default();
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
