//! One attempt on one deployment: the body built in that deployment's wire (translated when the
//! caller's dialect differs), sent with its keys; and the relay of a successful answer back in
//! the caller's dialect. Deployments of one model may speak different wires, so the body is
//! built anew for each deployment tried.

use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use secrecy::SecretString;
use serde_json::Value;

use super::Endpoint;
use crate::error::{Dialect, GatewayError};
use crate::http::body;
use crate::json_scan;
use crate::keys::meter::Meter;
use crate::providers::{self, translate, Call, ModelRoute, Op, UsageTap, Wire};
use keygate_plugin_api::BackendResponse;

/// A request read, authenticated and admitted: what every attempt starts from.
pub(super) struct Prepared<'a> {
    /// The caller's headers.
    pub headers: &'a HeaderMap,
    pub endpoint: Endpoint,
    /// The model as the caller named it.
    pub model: &'a str,
    pub bytes: &'a Bytes,
    pub stream: bool,
    /// Whether the body has a `stream_options` member.
    pub stream_options: bool,
}

/// A successful upstream answer, and what its relay needs to know.
pub(super) struct Sent {
    response: BackendResponse,
    /// The caller's body as a tree, when it was translated (the relay translates back).
    tree: Option<Value>,
    /// The usage chunk was asked for only to meter the stream: keep it from the caller.
    strip_usage_chunk: bool,
}

/// Builds the body for `route` and sends it; `metered` streams ask the upstream for usage.
pub(super) async fn send(
    request: &Prepared<'_>,
    route: &ModelRoute,
    byok: Option<&SecretString>,
    metered: bool,
) -> Result<Sent, GatewayError> {
    let Prepared {
        headers,
        endpoint,
        model,
        bytes,
        stream,
        stream_options,
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
        let wants_usage = metered && stream && wire == Wire::OpenAi;
        let body = if wants_usage && stream_options {
            // The caller's own `stream_options`, to complete: in a tree.
            let mut tree = body::parse_tree(bytes)?;
            tree["model"] = Value::String(route.upstream_model.clone());
            strip_usage_chunk = ask_for_usage(&mut tree);
            Bytes::from(tree.to_string())
        } else {
            // The bytes as they are, with the upstream's model name and the usage option
            // written in: no tree parsed and written out again (a cost that grows with the
            // prompt), and the prompt copied once at most.
            let renamed = (route.upstream_model != model)
                .then(|| with_model(bytes, &route.upstream_model))
                .transpose()?;
            if wants_usage {
                strip_usage_chunk = true;
                let body = renamed.unwrap_or_else(|| {
                    let mut body = Vec::with_capacity(bytes.len() + USAGE_OPTION.len() + 1);
                    body.extend_from_slice(bytes);
                    body
                });
                Bytes::from(with_usage_option(body)?)
            } else {
                renamed.map_or_else(|| bytes.clone(), Bytes::from)
            }
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
    let response = providers::send_with_keys(call, byok).await?;
    Ok(Sent {
        response,
        tree,
        strip_usage_chunk,
    })
}

/// `body`, a JSON object, with the value of its top-level `model` member replaced by `model`
/// (the caller's name of the model, whose member [`body::peek`] found).
fn with_model(body: &[u8], model: &str) -> Result<Vec<u8>, GatewayError> {
    let at = json_scan::top_member(body, "model")
        .map_err(|_| GatewayError::InvalidJson("the request body is not valid JSON".to_owned()))?
        .ok_or_else(body::missing_model)?;
    let name = Value::String(model.to_owned()).to_string();
    // Room for the usage option too, which a metered stream adds next in place.
    let mut out = Vec::with_capacity(body.len() + name.len() + USAGE_OPTION.len() + 1);
    out.extend_from_slice(&body[..at.start]);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&body[at.end..]);
    Ok(out)
}

/// The member [`with_usage_option`] adds, with the brace that closes the body.
const USAGE_OPTION: &[u8] = br#""stream_options":{"include_usage":true}}"#;

/// `body`, a JSON object with no `stream_options` member, with
/// `"stream_options":{"include_usage":true}` added as its last member.
fn with_usage_option(mut body: Vec<u8>) -> Result<Vec<u8>, GatewayError> {
    let not_an_object =
        || GatewayError::InvalidRequest("The request body must be a JSON object.".into());
    let end = body
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .filter(|&end| body[end] == b'}')
        .ok_or_else(not_an_object)?;
    let inner = body[..end].trim_ascii_end().len();
    body.truncate(inner);
    if !body.ends_with(b"{") {
        body.push(b',');
    }
    body.extend_from_slice(USAGE_OPTION);
    Ok(body)
}

/// Sets `stream_options.include_usage`; true when the caller had not asked for it.
fn ask_for_usage(tree: &mut Value) -> bool {
    let asked = tree
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if asked {
        return false;
    }
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
    true
}

/// Relays `route`'s successful answer to the caller, settling `meter` from its usage.
pub(super) async fn relay(
    sent: Sent,
    request: &Prepared<'_>,
    route: &ModelRoute,
    meter: Option<Meter>,
) -> Result<Response, GatewayError> {
    let Sent {
        response,
        tree,
        strip_usage_chunk,
    } = sent;
    let caller = request.endpoint.dialect();
    let wire = route.wire;
    let model = route.name.as_str();
    match (tree, request.stream) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usage_option_is_added_to_the_bytes_as_they_are() {
        for (body, want) in [
            (
                r#"{"model":"m","stream":true}"#,
                r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#,
            ),
            (
                "{\"model\":\"m\" }\n",
                r#"{"model":"m","stream_options":{"include_usage":true}}"#,
            ),
            ("{ }", r#"{"stream_options":{"include_usage":true}}"#),
        ] {
            let got = with_usage_option(body.as_bytes().to_vec()).unwrap();
            assert_eq!(std::str::from_utf8(&got).unwrap(), want);
            let parsed: Value = serde_json::from_slice(&got).unwrap();
            assert_eq!(parsed["stream_options"]["include_usage"], true);
        }
        assert!(with_usage_option(b"[1]".to_vec()).is_err());
    }

    #[test]
    fn the_model_is_renamed_in_the_bytes_as_they_are() {
        for (body, want) in [
            (
                r#"{"model":"alias","messages":[{"content":"model"}],"stream":true}"#,
                r#"{"model":"up\"stream","messages":[{"content":"model"}],"stream":true}"#,
            ),
            (
                "{ \"messages\": [], \"mod\\u0065l\" : \"alias\" }",
                "{ \"messages\": [], \"mod\\u0065l\" : \"up\\\"stream\" }",
            ),
        ] {
            let got = with_model(body.as_bytes(), "up\"stream").unwrap();
            assert_eq!(std::str::from_utf8(&got).unwrap(), want);
            let parsed: Value = serde_json::from_slice(&got).unwrap();
            assert_eq!(parsed["model"], "up\"stream");
        }
        assert!(matches!(
            with_model(b"{\"model\":\"\xff\"}", "m"),
            Err(GatewayError::InvalidJson(_))
        ));
    }

    #[test]
    fn a_stream_options_member_of_any_value_is_seen() {
        for (body, present) in [
            (r#"{"model":"m"}"#, false),
            (r#"{"model":"m","stream_options":null}"#, true),
            (
                r#"{"model":"m","stream_options":{"include_usage":false}}"#,
                true,
            ),
        ] {
            assert_eq!(
                body::peek(body.as_bytes()).unwrap().stream_options,
                present,
                "{body}"
            );
        }
    }
}
