//! Entra ID (Azure AD) client-credentials tokens for Key Vault, cached until shortly before
//! they expire.
//!
//! `POST {authority}/{tenant}/oauth2/v2.0/token` with a form of `grant_type=client_credentials`,
//! `client_id`, `client_secret` and `scope`. One request at a time: the cache's lock is held
//! while a token is fetched, so concurrent lookups wait for it rather than each asking. Not
//! supported: certificates, managed identity, workload identity federation.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use keygate_plugin_api::SourceError;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use super::{clean, transport_error, REQUEST_TIMEOUT};

/// Refresh this long before expiry at most (less for short-lived tokens, see [`refresh_margin`]).
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Where the client secret is read.
#[derive(Debug)]
pub enum ClientSecret {
    /// Known at build (`env:NAME`, a literal, or `AZURE_CLIENT_SECRET`).
    Value(SecretString),
    /// `file:PATH`, read at every token request so a rotated file is picked up.
    File(PathBuf),
}

/// A cached access token.
#[derive(Debug)]
struct Cached {
    token: SecretString,
    refresh_at: Instant,
}

/// Fetches and caches the access token.
#[derive(Debug)]
pub struct TokenProvider {
    client: reqwest::Client,
    /// `{authority}/{tenant}/oauth2/v2.0/token`.
    pub token_url: String,
    client_id: String,
    scope: String,
    secret: ClientSecret,
    cache: Mutex<Option<Cached>>,
}

impl TokenProvider {
    /// A provider; nothing is fetched until the first [`TokenProvider::token`].
    pub fn new(
        client: reqwest::Client,
        token_url: String,
        client_id: String,
        scope: String,
        secret: ClientSecret,
    ) -> Self {
        Self {
            client,
            token_url,
            client_id,
            scope,
            secret,
            cache: Mutex::new(None),
        }
    }

    /// A valid token, and whether it was fetched just now (rather than served from the cache).
    pub async fn token(&self) -> Result<(SecretString, bool), SourceError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref() {
            if Instant::now() < cached.refresh_at {
                return Ok((cached.token.clone(), false));
            }
        }
        *cache = None;
        let (token, lifetime) = self.request().await?;
        *cache = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(refresh_margin(lifetime)),
        });
        Ok((token, true))
    }

    /// Forgets `token` (the vault refused it), unless it has already been replaced.
    pub async fn invalidate(&self, token: &SecretString) {
        let mut cache = self.cache.lock().await;
        if cache
            .as_ref()
            .is_some_and(|c| c.token.expose_secret() == token.expose_secret())
        {
            *cache = None;
        }
    }

    async fn client_secret(&self) -> Result<SecretString, SourceError> {
        match &self.secret {
            ClientSecret::Value(secret) => Ok(secret.clone()),
            ClientSecret::File(path) => {
                let text = tokio::fs::read_to_string(path).await.map_err(|err| {
                    SourceError::new(format!(
                        "cannot read the client secret file {}: {}",
                        path.display(),
                        err.kind()
                    ))
                })?;
                Ok(SecretString::from(text.trim_end_matches(['\r', '\n'])))
            }
        }
    }

    async fn request(&self) -> Result<(SecretString, Duration), SourceError> {
        let secret = self.client_secret().await?;
        let form = form_encode(&[
            ("grant_type", "client_credentials"),
            ("client_id", &self.client_id),
            ("client_secret", secret.expose_secret()),
            ("scope", &self.scope),
        ]);
        let failed = |what: String| SourceError::new(format!("token request failed: {what}"));
        let response = self
            .client
            .post(&self.token_url)
            .timeout(REQUEST_TIMEOUT)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .send()
            .await
            .map_err(|err| failed(transport_error(err)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|err| failed(transport_error(err)))?;
        let json = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
        let text = |key: &str| json.get(key).and_then(|v| v.as_str());
        if !status.is_success() {
            let code = text("error").unwrap_or("no error code");
            // AADSTS descriptions end with trace and correlation ids on later lines.
            let description = text("error_description")
                .and_then(|d| d.lines().next())
                .map(|d| clean(d).replace(secret.expose_secret(), "*****"))
                .unwrap_or_default();
            return Err(failed(format!(
                "HTTP {} {code}: {description}",
                status.as_u16()
            )));
        }
        let token = text("access_token")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| failed("the response has no access_token".to_owned()))?;
        if text("token_type").is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
            return Err(failed("the token is not a Bearer token".to_owned()));
        }
        let lifetime = match json.get("expires_in") {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| failed("the response has no valid expires_in".to_owned()))?;
        Ok((
            SecretString::from(token.to_owned()),
            Duration::from_secs(lifetime),
        ))
    }
}

/// Five minutes, or a tenth of the lifetime when that is shorter.
pub fn refresh_margin(lifetime: Duration) -> Duration {
    MAX_REFRESH_MARGIN.min(lifetime / 10)
}

/// `application/x-www-form-urlencoded`: every byte but `A-Z a-z 0-9 - . _ ~` as `%XX`.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(byte).to_string()
                }
                _ => format!("%{byte:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}
