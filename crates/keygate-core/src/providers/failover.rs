//! Choosing the upstream key for one call: the caller's own key when it brought one, else the
//! model's configured keys in turn. A configured key refused with 401 or 429 is cooled down and
//! the call is made again with the next key, before anything has reached the client.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, StatusCode};
use secrecy::SecretString;

use keygate_plugin_api::BackendResponse;

use super::route::{ModelRoute, Op};
use super::upstream::{send, upstream_error, UpstreamRequest};
use crate::error::{Dialect, GatewayError};

/// How long a key refused with 401 is skipped.
const UNAUTHORIZED_COOLDOWN: Duration = Duration::from_secs(300);
/// How long a rate-limited key is skipped when the upstream gives no `retry-after`.
const RATE_LIMIT_COOLDOWN: Duration = Duration::from_secs(30);
/// Longest cooldown taken from a `retry-after` header.
const MAX_COOLDOWN: Duration = Duration::from_secs(600);

/// What to send, apart from the key.
pub struct Call<'a> {
    /// The model being served.
    pub route: &'a ModelRoute,
    /// Which endpoint.
    pub op: Op,
    /// The body in the upstream's dialect.
    pub body: Bytes,
    /// Whether the response is a stream.
    pub stream: bool,
    /// Caller headers to forward.
    pub forward: &'a HeaderMap,
    /// The caller's dialect, for errors.
    pub caller: Dialect,
}

/// Sends `call` and returns a successful upstream response, or the error to answer with.
pub async fn send_with_keys(
    call: Call<'_>,
    byok: Option<&SecretString>,
) -> Result<BackendResponse, GatewayError> {
    let route = call.route;
    if let Some(key) = byok {
        return send_once(&call, Some(key), Some("byok")).await;
    }
    let keys = route.keys_in_turn();
    if keys.is_empty() {
        return send_once(&call, None, None).await;
    }
    let last = keys.len() - 1;
    let mut unresolved = None;
    for (turn, key) in keys.iter().enumerate() {
        let resolved = match key.handle.get().await {
            Ok(resolved) => resolved,
            Err(err) => {
                unresolved.get_or_insert(err.to_string());
                continue;
            }
        };
        let name = key.handle.describe();
        let response = send(request(&call, Some(&resolved.value), Some(name))).await?;
        let status = response.status;
        route
            .metrics
            .record_upstream(&route.name, &route.provider, status.as_u16());
        if status.is_success() {
            return Ok(response);
        }
        let refused = status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS;
        if refused {
            key.cool_down(cooldown(&response));
            if turn < last {
                tracing::warn!(model = %route.name, key = %key.handle.describe(), status = status.as_u16(), "upstream refused the key; retrying with the next one");
                continue;
            }
        }
        return Err(upstream_error(response, route, call.caller, Some(&resolved.value)).await);
    }
    Err(GatewayError::NoCredential {
        model: route.name.clone(),
        reason: unresolved.unwrap_or_else(|| "no key resolved".to_owned()),
    })
}

async fn send_once(
    call: &Call<'_>,
    key: Option<&SecretString>,
    key_name: Option<&str>,
) -> Result<BackendResponse, GatewayError> {
    let route = call.route;
    let response = send(request(call, key, key_name)).await?;
    route
        .metrics
        .record_upstream(&route.name, &route.provider, response.status.as_u16());
    if response.status.is_success() {
        Ok(response)
    } else {
        Err(upstream_error(response, route, call.caller, key).await)
    }
}

fn request<'a>(
    call: &Call<'a>,
    key: Option<&'a SecretString>,
    key_name: Option<&'a str>,
) -> UpstreamRequest<'a> {
    UpstreamRequest {
        route: call.route,
        op: call.op,
        body: call.body.clone(),
        key,
        key_name,
        stream: call.stream,
        forward: call.forward,
    }
}

/// The cooldown for a refused key: `retry-after` seconds when given (capped), else a default.
fn cooldown(response: &BackendResponse) -> Duration {
    if response.status == StatusCode::UNAUTHORIZED {
        return UNAUTHORIZED_COOLDOWN;
    }
    response
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs).min(MAX_COOLDOWN))
        .unwrap_or(RATE_LIMIT_COOLDOWN)
}
