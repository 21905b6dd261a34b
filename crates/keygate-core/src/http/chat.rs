//! `POST /v1/chat/completions` (OpenAI dialect) and the request path shared with
//! `/v1/messages`: authenticate, read, route, send, relay — translating when the caller's
//! dialect differs from the upstream's.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::body;
use crate::auth::{self, Caller};
use crate::error::{Dialect, GatewayError};
use crate::keys::meter::{self, Ask, Meter};
use crate::providers::{self, translate, Call, ModelRoute, Op, UsageTap, Wire};
use crate::state::AppState;
use crate::telemetry;

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    serve_inference(&state, &headers, body, Endpoint::Chat).await
}

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

/// Runs one inference request and records its metrics.
pub(super) async fn serve_inference(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    endpoint: Endpoint,
) -> Response {
    let started = Instant::now();
    let caller = endpoint.dialect();
    let mut labels = Labels::default();
    let response = match infer(state, headers, body, endpoint, &mut labels).await {
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
    let route = live
        .models
        .get(model)
        .ok_or_else(|| GatewayError::UnknownModel(model.to_owned()))?;
    labels.route = Some(route.clone());
    let stream = endpoint != Endpoint::Embeddings && peek.stream.unwrap_or(false);
    let byok = auth::byok_key(headers, route)?;
    let meter = match &who {
        Caller::Admin => None,
        Caller::Virtual(key) => {
            let ask = Ask {
                body_bytes: bytes.len(),
                max_output: peek.max_completion_tokens.or(peek.max_tokens),
                embeddings: endpoint == Endpoint::Embeddings,
            };
            Some(meter::admit(state, key, route, &ask).await?)
        }
    };
    let mut meter = MeterSlot(meter);
    let request = Prepared {
        route,
        endpoint,
        model,
        bytes: &bytes,
        stream,
    };
    let result = send_and_relay(headers, &request, byok, &mut meter).await;
    if let Err(error) = &result {
        if let Some(meter) = meter.0.take() {
            meter.finish(None, error.status_code().as_u16());
        }
    }
    result
}

/// A meter not yet handed to a relay; settled as failed if the request ends in an error.
struct MeterSlot(Option<Meter>);

/// A request read, authenticated and routed.
struct Prepared<'a> {
    route: &'a ModelRoute,
    endpoint: Endpoint,
    /// The model as the caller named it.
    model: &'a str,
    bytes: &'a Bytes,
    stream: bool,
}

/// Sends the request upstream (translating when the dialects differ) and relays the answer.
async fn send_and_relay(
    headers: &HeaderMap,
    request: &Prepared<'_>,
    byok: Option<auth::ByokKey>,
    meter: &mut MeterSlot,
) -> Result<Response, GatewayError> {
    let Prepared {
        route,
        endpoint,
        model,
        bytes,
        stream,
    } = *request;
    let caller = endpoint.dialect();
    let wire = route.wire;
    let forward = forwarded_headers(headers, caller, wire);
    let same_dialect = matches!(
        (caller, wire),
        (Dialect::OpenAi, Wire::OpenAi) | (Dialect::Anthropic, Wire::Anthropic)
    );
    if endpoint == Endpoint::Embeddings && wire != Wire::OpenAi {
        return Err(GatewayError::UnsupportedOperation {
            model: route.name.clone(),
            operation: "embeddings",
        });
    }
    // A metered OpenAI stream needs the upstream's usage chunk; the caller gets it only if it
    // asked for it.
    let mut strip_usage_chunk = false;
    let (op, upstream_body, tree) = if same_dialect {
        let wants_usage = meter.0.is_some() && stream && wire == Wire::OpenAi;
        let body = if route.upstream_model == model && !wants_usage {
            bytes.clone()
        } else {
            let mut tree = body::parse_tree(bytes)?;
            tree["model"] = Value::String(route.upstream_model.clone());
            if wants_usage {
                let asked = tree
                    .pointer("/stream_options/include_usage")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if !asked {
                    strip_usage_chunk = true;
                    match tree
                        .get_mut("stream_options")
                        .and_then(Value::as_object_mut)
                    {
                        Some(options) => {
                            options.insert("include_usage".into(), Value::Bool(true));
                        }
                        None => {
                            tree["stream_options"] = serde_json::json!({"include_usage": true});
                        }
                    }
                }
            }
            Bytes::from(tree.to_string())
        };
        let op = match endpoint {
            Endpoint::Chat | Endpoint::Messages => Op::Chat,
            Endpoint::Embeddings => Op::Embeddings,
        };
        (op, body, None)
    } else {
        let tree = body::parse_tree(bytes)?;
        let translated = match caller {
            Dialect::OpenAi => {
                translate::openai_to_anthropic_request(&tree, &route.upstream_model)?
            }
            Dialect::Anthropic => {
                translate::anthropic_to_openai_request(&tree, &route.upstream_model)?
            }
        };
        (Op::Chat, Bytes::from(translated.to_string()), Some(tree))
    };
    let call = Call {
        route,
        op,
        body: upstream_body,
        stream,
        forward: &forward,
        caller,
    };
    let byok = byok.as_ref().map(|key| &key.0);
    let response = providers::send_with_keys(call, byok).await?;
    let model = route.name.as_str();
    let meter = meter.0.take();
    match (tree, stream) {
        (None, true) => {
            let tap = meter.map(|meter| UsageTap::new(wire, meter, strip_usage_chunk));
            Ok(providers::relay_sse(response, caller, tap))
        }
        (None, false) => providers::relay_json(response, model, None, wire, meter).await,
        (Some(tree), true) => Ok(match caller {
            Dialect::OpenAi => {
                let include_usage = tree
                    .pointer("/stream_options/include_usage")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let translator = translate::AnthropicToOpenAiStream::new(model, include_usage);
                providers::relay_translated(response, translator, caller, meter)
            }
            Dialect::Anthropic => {
                let translator = translate::OpenAiToAnthropicStream::new(model);
                providers::relay_translated(response, translator, caller, meter)
            }
        }),
        (Some(_), false) => {
            let map = |value: &Value| match caller {
                Dialect::OpenAi => translate::anthropic_to_openai_response(value, model),
                Dialect::Anthropic => translate::openai_to_anthropic_response(value, model),
            };
            providers::relay_json(response, model, Some(&map), wire, meter).await
        }
    }
}

/// Caller headers that the upstream should see: Anthropic's version and beta flags, when an
/// Anthropic caller talks to an Anthropic upstream.
fn forwarded_headers(headers: &HeaderMap, caller: Dialect, wire: Wire) -> HeaderMap {
    let mut forward = HeaderMap::new();
    if caller == Dialect::Anthropic && wire == Wire::Anthropic {
        for name in ["anthropic-version", "anthropic-beta"] {
            if let Some(value) = headers.get(name) {
                forward.insert(name, value.clone());
            }
        }
    }
    forward
}
