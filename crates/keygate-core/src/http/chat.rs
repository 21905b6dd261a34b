//! The request path of the inference routes (`/v1/chat/completions`, `/v1/messages`,
//! `/v1/embeddings`: see [`super::INFERENCE`]): authenticate, read, admit, route, send, relay —
//! translating when the caller's dialect differs from the upstream's, and moving to another
//! deployment or a fallback model when an upstream fails before answering (see
//! [`crate::providers::routing`]).

mod upstream;

use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue};
use secrecy::SecretString;

use super::body;
use crate::auth::{self, Caller};
use crate::error::{Dialect, GatewayError};
use crate::keys::meter::{self, Ask, Meter};
use crate::providers::{Attempts, ModelRoute};
use crate::state::AppState;
use crate::telemetry;
use upstream::Prepared;

/// Which deployment served (`{name}#{n}`), on answers of models with several deployments or
/// fallbacks.
const DEPLOYMENT: HeaderName = HeaderName::from_static("x-keygate-deployment");
/// Retries made within model groups before the answer (sent on errors too).
const RETRIES: HeaderName = HeaderName::from_static("x-keygate-attempted-retries");
/// Fallback models moved to before the answer (sent on errors too).
const FALLBACKS: HeaderName = HeaderName::from_static("x-keygate-attempted-fallbacks");

/// The inference endpoints sharing this path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/messages`.
    Messages,
    /// `/v1/embeddings`.
    Embeddings,
}

impl Endpoint {
    fn dialect(self) -> Dialect {
        match self {
            Self::Messages => Dialect::Anthropic,
            Self::Chat | Self::Embeddings => Dialect::OpenAi,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Chat => "chat_completions",
            Self::Messages => "messages",
            Self::Embeddings => "embeddings",
        }
    }
}

/// Runs one inference request, received at `started`, and records its metrics.
pub(super) async fn serve_inference(
    state: &AppState,
    request: Request,
    endpoint: Endpoint,
    started: Instant,
) -> Response {
    let caller = endpoint.dialect();
    let mut labels = Labels::default();
    let (parts, body) = request.into_parts();
    let response = match infer(state, &parts.headers, body, endpoint, &mut labels).await {
        Ok(response) => response,
        Err(error) => error.in_dialect(caller).into_response(),
    };
    let status = response.status().as_u16();
    match &labels.route {
        Some(route) => route.metrics.record_request(
            endpoint.label(),
            &route.name,
            &route.provider,
            status,
            started.elapsed(),
        ),
        None => telemetry::record_request(endpoint.label(), "", "", status, started.elapsed()),
    }
    response
}

/// What metrics need to know, learned while serving: the model, once routed.
#[derive(Default)]
pub(super) struct Labels {
    pub route: Option<std::sync::Arc<ModelRoute>>,
}

async fn infer(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    endpoint: Endpoint,
    labels: &mut Labels,
) -> Result<Response, GatewayError> {
    let live = state.live();
    let who = match auth::authenticate(headers, &live, state).await {
        Ok(who) => who,
        Err(error) => {
            // Read what the client sent (up to the body limit) before refusing, so its
            // keep-alive connection stays usable instead of being closed under it.
            body::drain(body, live.limits.max_body_bytes).await;
            return Err(error);
        }
    };
    let bytes = body::read_json(headers, body, live.limits.max_body_bytes).await?;
    let peek = body::peek(&bytes)?;
    let model = body::required_model(&peek)?;
    let group = live
        .routing
        .group(model)
        .ok_or_else(|| GatewayError::UnknownModel(model.to_owned()))?;
    let route = group.primary();
    labels.route = Some(route.clone());
    let stream = endpoint != Endpoint::Embeddings && peek.stream.unwrap_or(false);
    let byok = auth::byok_key(headers, route)?;
    // The key's scope is checked against the model the caller asked for. The other
    // deployments and the fallback models that may end up serving it are the operator's
    // routing choice: they are allowed whatever the key's scope (and charged at their price).
    let meter = match &who {
        Caller::Admin => None,
        Caller::Virtual(key) => {
            let ask = Ask {
                body_bytes: bytes.len(),
                max_output: peek.max_completion_tokens.or(peek.max_tokens),
                embeddings: endpoint == Endpoint::Embeddings,
            };
            Some(meter::admit(state, key, route, group.reserve_price(), &ask).await?)
        }
    };
    let mut meter = MeterSlot(meter);
    let request = Prepared {
        headers,
        endpoint,
        model,
        bytes: &bytes,
        stream,
        stream_options: peek.stream_options,
    };
    // A caller's own key belongs to the model it named: no fallback to other models then.
    let mut attempts = Attempts::start(&live.routing, group, byok.is_none());
    let byok = byok.as_ref().map(|key| &key.0);
    let result = serve_routed(&request, &mut attempts, byok, &mut meter, labels).await;
    let Err(error) = result else {
        return result;
    };
    if let Some(meter) = meter.0.take() {
        meter.finish(None, error.status_code().as_u16());
    }
    if !attempts.is_routed() {
        return Err(error);
    }
    // What was tried is worth knowing on a failure too.
    let mut response = error.in_dialect(endpoint.dialect()).into_response();
    attempted(response.headers_mut(), &attempts);
    Ok(response)
}

/// The `x-keygate-attempted-*` headers.
fn attempted(headers: &mut HeaderMap, attempts: &Attempts<'_>) {
    headers.insert(RETRIES, HeaderValue::from(attempts.retries()));
    headers.insert(FALLBACKS, HeaderValue::from(attempts.fallbacks()));
}

/// A meter not yet handed to a relay; settled as failed if the request ends in an error.
struct MeterSlot(Option<Meter>);

/// Sends to the deployment `attempts` picks, and to the next ones while the failures are
/// retryable, then relays the first successful answer. Nothing reaches the caller before an
/// upstream has answered with a success, so a retry is never seen; once relaying has started,
/// a failure ends the response and is not retried.
async fn serve_routed(
    request: &Prepared<'_>,
    attempts: &mut Attempts<'_>,
    byok: Option<&SecretString>,
    meter: &mut MeterSlot,
    labels: &mut Labels,
) -> Result<Response, GatewayError> {
    loop {
        let deployment = attempts.current();
        let route = &deployment.route;
        if attempts.is_routed() {
            labels.route = Some(route.clone());
        }
        let sent = match upstream::send(request, route, byok, meter.0.is_some()).await {
            Ok(sent) => sent,
            Err(error) => {
                attempts.retry(error).await?;
                continue;
            }
        };
        attempts.succeeded();
        let mut meter = meter.0.take();
        if attempts.is_routed() {
            if let Some(meter) = &mut meter {
                meter.set_price(route.effective_price);
            }
        }
        let mut response = upstream::relay(sent, request, route, meter).await?;
        if attempts.is_routed() {
            let headers = response.headers_mut();
            headers.insert(DEPLOYMENT, deployment.id.clone());
            attempted(headers, attempts);
        }
        return Ok(response);
    }
}
