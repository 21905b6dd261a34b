//! Sending one request upstream: URL, auth header of the provider, timeout, and turning an
//! upstream error response into a [`GatewayError`] in the caller's dialect.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use secrecy::{ExposeSecret, SecretString};

use super::route::{ModelRoute, Op, ProviderKind, Wire};
use super::translate;
use crate::error::{Dialect, GatewayError};

/// Largest upstream error body read to build an error message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// One upstream call.
pub struct UpstreamRequest<'a> {
    /// The model being served.
    pub route: &'a ModelRoute,
    /// Which endpoint.
    pub op: Op,
    /// The JSON body, already in the upstream's dialect.
    pub body: Bytes,
    /// The upstream key, if any.
    pub key: Option<&'a SecretString>,
    /// Whether the response is a stream (the timeout then covers only the response headers).
    pub stream: bool,
    /// Caller headers to forward (`anthropic-version`, `anthropic-beta`), already filtered.
    pub forward: &'a HeaderMap,
}

fn secret_header(value: &str) -> Result<HeaderValue, GatewayError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        GatewayError::Internal(
            "the upstream key contains characters not allowed in a header".into(),
        )
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// Sends the request and waits for the response headers. A non-2xx status is returned as a
/// response, not an error: see [`upstream_error`].
pub async fn send(
    client: &reqwest::Client,
    req: UpstreamRequest<'_>,
) -> Result<reqwest::Response, GatewayError> {
    let route = req.route;
    let url = route
        .url(req.op)
        .ok_or_else(|| GatewayError::UnsupportedOperation {
            model: route.name.clone(),
            operation: match req.op {
                Op::Chat => "chat completions",
                Op::Embeddings => "embeddings",
                Op::Messages => "the Anthropic messages API",
            },
        })?;
    let mut headers = route.headers.clone();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in req.forward {
        headers.insert(name.clone(), value.clone());
    }
    if let Some(key) = req.key {
        let key = key.expose_secret();
        match route.provider {
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
                headers.insert(
                    header::AUTHORIZATION,
                    secret_header(&format!("Bearer {key}"))?,
                );
            }
            ProviderKind::AzureOpenAi => {
                headers.insert("api-key", secret_header(key)?);
            }
            ProviderKind::Anthropic => {
                headers.insert("x-api-key", secret_header(key)?);
            }
        }
    }
    if route.provider == ProviderKind::Anthropic && !headers.contains_key("anthropic-version") {
        if let Ok(version) = HeaderValue::from_str(&route.anthropic_version) {
            headers.insert("anthropic-version", version);
        }
    }
    let mut builder = client.post(url.clone()).headers(headers).body(req.body);
    if !req.stream {
        builder = builder.timeout(route.timeout);
    }
    let sent = tokio::time::timeout(route.timeout, builder.send()).await;
    match sent {
        Err(_) => Err(GatewayError::UpstreamTimeout(route.name.clone())),
        Ok(Err(err)) if err.is_timeout() => Err(GatewayError::UpstreamTimeout(route.name.clone())),
        Ok(Err(err)) => Err(GatewayError::UpstreamUnavailable {
            model: route.name.clone(),
            reason: describe_reqwest_error(&err),
        }),
        Ok(Ok(response)) => Ok(response),
    }
}

/// A reqwest error without its URL (which may carry credentials in some configs).
pub(crate) fn describe_reqwest_error(err: &reqwest::Error) -> String {
    let kind = if err.is_connect() {
        "connection failed"
    } else if err.is_body() || err.is_decode() {
        "bad response body"
    } else if err.is_request() {
        "request failed"
    } else {
        "transport error"
    };
    let mut source = std::error::Error::source(err);
    let mut detail = None;
    while let Some(inner) = source {
        detail = Some(inner.to_string());
        source = inner.source();
    }
    match detail {
        Some(detail) => format!("{kind}: {detail}"),
        None => kind.to_owned(),
    }
}

/// Reads an upstream error response and maps it to the caller's dialect, keeping the status.
/// The key that was sent is scrubbed from whatever the upstream echoed back.
pub async fn upstream_error(
    response: reqwest::Response,
    route: &ModelRoute,
    caller: Dialect,
    key: Option<&SecretString>,
) -> GatewayError {
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok());
    let body = read_bounded(response, MAX_ERROR_BODY).await;
    let body = scrub(&body, key);
    let message = translate::error_message(&body)
        .unwrap_or_else(|| format!("upstream returned HTTP {}", status.as_u16()));
    let same_dialect = matches!(
        (caller, route.provider.wire()),
        (Dialect::OpenAi, Wire::OpenAi) | (Dialect::Anthropic, Wire::Anthropic)
    );
    let is_json = serde_json::from_slice::<serde_json::Value>(&body)
        .map(|v| v.is_object())
        .unwrap_or(false);
    GatewayError::Upstream {
        status,
        message,
        passthrough: (same_dialect && is_json).then(|| Bytes::from(body)),
        retry_after,
    }
}

async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    body
}

/// Replaces every occurrence of the key in `body` with `*****`.
fn scrub(body: &[u8], key: Option<&SecretString>) -> Vec<u8> {
    let Some(key) = key
        .map(|k| k.expose_secret().as_bytes())
        .filter(|k| !k.is_empty())
    else {
        return body.to_vec();
    };
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i..].starts_with(key) {
            out.extend_from_slice(b"*****");
            i += key.len();
        } else {
            out.push(body[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_every_occurrence() {
        let key = SecretString::from("sk-secret");
        let got = scrub(b"bad key sk-secret, again sk-secret!", Some(&key));
        assert_eq!(got, b"bad key *****, again *****!");
        assert_eq!(scrub(b"nothing", None), b"nothing");
    }
}
