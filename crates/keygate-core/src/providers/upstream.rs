//! Sending one request to a model's backend, bounded by the model's timeout (until the response
//! headers, then between two body chunks: see [`super::idle`]), with capture when the request
//! is sampled; and turning an upstream error response into a [`GatewayError`] in
//! the caller's dialect.

use bytes::Bytes;
use http::{header, HeaderMap};
use keygate_plugin_api::{BackendError, BackendRequest, BackendResponse, CaptureContext, Wire};
use secrecy::{ExposeSecret, SecretString};

use super::route::{ModelRoute, Op};
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
    /// The key's name for captures (`secret:NAME`, `byok`), never its value.
    pub key_name: Option<&'a str>,
    /// Whether the response is a stream (the timeout then covers the response headers, then
    /// each wait for the next chunk).
    pub stream: bool,
    /// Caller headers to forward (`anthropic-version`, `anthropic-beta`), already filtered.
    pub forward: &'a HeaderMap,
}

/// Sends the request and waits for the response (a stream: its headers). A non-2xx status is
/// returned as a response, not an error: see [`upstream_error`].
pub async fn send(req: UpstreamRequest<'_>) -> Result<BackendResponse, GatewayError> {
    let route = req.route;
    let capture = sampled(route).then(|| {
        let context = CaptureContext::new(
            route.provider.as_str(),
            route.name.as_str(),
            req.key_name.map(str::to_owned),
        );
        match req.key {
            Some(key) => context.redact(key),
            None => context,
        }
    });
    let request = BackendRequest {
        body: req.body,
        credential: req.key,
        forward: req.forward,
        capture: capture.as_ref(),
    };
    let backend = &route.backend;
    let call = match (req.op, req.stream) {
        (Op::Chat, false) => backend.chat(request),
        (Op::Chat, true) => backend.chat_stream(request),
        (Op::Embeddings, _) => backend.embeddings(request),
    };
    match tokio::time::timeout(route.timeout, call).await {
        Ok(Ok(response)) => Ok(super::idle::bound(response, route.timeout)),
        Ok(Err(err)) => Err(backend_error(route, err)),
        Err(_elapsed) => Err(GatewayError::UpstreamTimeout(route.name.clone())),
    }
}

/// Whether this request's upstream exchange is captured.
fn sampled(route: &ModelRoute) -> bool {
    let rate = route.capture_sample;
    rate >= 1.0 || (rate > 0.0 && rand::random::<f64>() < rate)
}

/// A backend's failure as the caller sees it.
pub fn backend_error(route: &ModelRoute, err: BackendError) -> GatewayError {
    match err {
        BackendError::Timeout => GatewayError::UpstreamTimeout(route.name.clone()),
        BackendError::Unavailable(reason) => GatewayError::UpstreamUnavailable {
            model: route.name.clone(),
            reason,
        },
        BackendError::Unsupported(operation) => GatewayError::UnsupportedOperation {
            model: route.name.clone(),
            operation,
        },
        BackendError::InvalidRequest(message) => GatewayError::InvalidRequest(message),
    }
}

/// Reads an upstream error response and maps it to the caller's dialect, keeping the status.
/// The key that was sent is scrubbed from whatever the upstream echoed back.
pub async fn upstream_error(
    response: BackendResponse,
    route: &ModelRoute,
    caller: Dialect,
    key: Option<&SecretString>,
) -> GatewayError {
    let status = response.status;
    let retry_after = response.headers.get(header::RETRY_AFTER).cloned();
    let body = response
        .into_bytes(MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    let body = scrub(&body, key);
    let message = translate::error_message(&body)
        .unwrap_or_else(|| format!("upstream returned HTTP {}", status.as_u16()));
    let same_dialect = matches!(
        (caller, route.wire),
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
