//! Relaying upstream responses to the caller: JSON bodies (optionally translated), SSE streams
//! passed through chunk by chunk as they arrive, and SSE streams translated event by event.
//!
//! A stream is never buffered whole. When the caller disconnects, axum drops the body stream,
//! which drops the upstream response and so cancels the upstream request. A transport error
//! mid-stream ends the stream with one error frame in the caller's dialect.

use std::convert::Infallible;
use std::pin::Pin;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{header, HeaderValue, StatusCode};
use serde_json::Value;

use keygate_plugin_api::{BackendError, BackendResponse, BodyStream, Wire};

use super::coalesce::Coalesce;
use super::sse::{self, SseEvent, SseParser};
use super::translate::{self, Usage};
use super::usage_tap::UsageTap;
use crate::error::{Dialect, GatewayError};
use crate::keys::meter::Meter;

mod usage;

pub use crate::json_scan::NotJson;
pub use usage::answer_usage;

type ByteStream = Pin<Box<Coalesce<BodyStream>>>;

/// Turns upstream SSE events of one dialect into client frames of the other.
pub trait StreamTranslator: Send + 'static {
    /// Frames (already SSE-encoded) for one upstream event.
    fn on_event(&mut self, event: &SseEvent) -> Vec<String>;
    /// Closing frames once the upstream stream has ended.
    fn finish(&mut self) -> Vec<String>;
    /// The usage the upstream reported so far.
    fn usage(&self) -> Option<Usage>;
}

impl StreamTranslator for translate::AnthropicToOpenAiStream {
    fn on_event(&mut self, event: &SseEvent) -> Vec<String> {
        translate::AnthropicToOpenAiStream::on_event(self, event)
    }
    fn finish(&mut self) -> Vec<String> {
        translate::AnthropicToOpenAiStream::finish(self)
    }
    fn usage(&self) -> Option<Usage> {
        translate::AnthropicToOpenAiStream::usage(self)
    }
}

impl StreamTranslator for translate::OpenAiToAnthropicStream {
    fn on_event(&mut self, event: &SseEvent) -> Vec<String> {
        translate::OpenAiToAnthropicStream::on_event(self, event)
    }
    fn finish(&mut self) -> Vec<String> {
        translate::OpenAiToAnthropicStream::finish(self)
    }
    fn usage(&self) -> Option<Usage> {
        translate::OpenAiToAnthropicStream::usage(self)
    }
}

/// A JSON response with `status`.
pub fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Reads a successful upstream JSON response and relays it, through `map` when given; the
/// meter, when given, is settled with the usage in the body (read in the upstream's `wire`).
pub async fn relay_json(
    response: BackendResponse,
    model: &str,
    map: Option<&(dyn Fn(&Value) -> Value + Sync)>,
    wire: Wire,
    meter: Option<Meter>,
) -> Result<Response, GatewayError> {
    let status = response.status;
    let body = response
        .into_bytes(usize::MAX)
        .await
        .map_err(|err| match err {
            BackendError::Timeout => GatewayError::UpstreamTimeout(model.to_owned()),
            err => GatewayError::UpstreamUnavailable {
                model: model.to_owned(),
                reason: err.to_string(),
            },
        })?;
    // Nothing is charged for an answer no client can parse; the caller gets a 502.
    let invalid = |meter: Option<Meter>| {
        if let Some(meter) = meter {
            meter.finish(None, 502);
        }
        GatewayError::UpstreamUnavailable {
            model: model.to_owned(),
            reason: "the upstream answered with invalid JSON".to_owned(),
        }
    };
    let Some(map) = map else {
        // Passed through as it is, but never a 200 that no client can parse: one pass checks
        // the whole body and finds its usage.
        let Ok(usage) = answer_usage(&body, wire) else {
            return Err(invalid(meter));
        };
        if let Some(meter) = meter {
            meter.finish(usage, status.as_u16());
        }
        return Ok(json_response(status, body));
    };
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return Err(invalid(meter));
    };
    if let Some(meter) = meter {
        let usage = match wire {
            Wire::OpenAi => translate::openai_usage(&value),
            Wire::Anthropic => translate::anthropic_usage(&value),
        };
        meter.finish(usage, status.as_u16());
    }
    Ok(json_response(status, Bytes::from(map(&value).to_string())))
}

fn sse_response(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The frame that ends a stream broken by a transport error.
fn error_frame(dialect: Dialect, reason: &str) -> Bytes {
    let message = format!("The upstream stream failed: {reason}");
    Bytes::from(match dialect {
        Dialect::OpenAi => {
            sse::encode_data(&translate::openai_error_body(502, &message, None).to_string())
        }
        Dialect::Anthropic => sse::encode_event(
            "error",
            &translate::anthropic_error_body(500, &message).to_string(),
        ),
    })
}

/// Passes an SSE stream through chunk by chunk; with a tap, usage is read on the way (and the
/// tap's meter settled at the end).
pub fn relay_sse(response: BackendResponse, dialect: Dialect, tap: Option<UsageTap>) -> Response {
    let upstream: ByteStream = Box::pin(Coalesce::new(response.into_stream()));
    let Some(tap) = tap else {
        let body = futures_util::stream::unfold(Some(upstream), move |state| async move {
            let mut upstream = state?;
            match upstream.next().await {
                Some(Ok(bytes)) => Some((Ok::<_, Infallible>(bytes), Some(upstream))),
                Some(Err(err)) => Some((Ok(error_frame(dialect, &err.to_string())), None)),
                None => None,
            }
        });
        return sse_response(Body::from_stream(body));
    };
    // The state holds the second part of an observed chunk until it is sent.
    let body = futures_util::stream::unfold(Some((upstream, tap, None)), move |state| async move {
        let (mut upstream, mut tap, held) = state?;
        if let Some(held) = held {
            return Some((Ok::<_, Infallible>(held), Some((upstream, tap, None))));
        }
        loop {
            match upstream.next().await {
                Some(Ok(bytes)) => {
                    let [first, second] = tap.observe(bytes);
                    let (out, held) = if first.is_empty() {
                        (second, None)
                    } else {
                        (first, (!second.is_empty()).then_some(second))
                    };
                    if !out.is_empty() {
                        return Some((Ok(out), Some((upstream, tap, held))));
                    }
                }
                Some(Err(err)) => {
                    tap.finish(502);
                    let frame = error_frame(dialect, &err.to_string());
                    return Some((Ok(frame), None));
                }
                None => {
                    tap.finish(200);
                    return None;
                }
            }
        }
    });
    sse_response(Body::from_stream(body))
}

struct Translating<T> {
    upstream: ByteStream,
    parser: SseParser,
    translator: T,
    dialect: Dialect,
    meter: Option<Meter>,
}

impl<T: StreamTranslator> Translating<T> {
    fn settle(&mut self, status: u16) {
        if let Some(meter) = self.meter.take() {
            meter.finish(self.translator.usage(), status);
        }
    }
}

/// Translates an SSE stream event by event; each upstream chunk yields at most one client chunk.
pub fn relay_translated<T: StreamTranslator>(
    response: BackendResponse,
    translator: T,
    dialect: Dialect,
    meter: Option<Meter>,
) -> Response {
    let state = Translating {
        upstream: Box::pin(Coalesce::new(response.into_stream())),
        parser: SseParser::new(),
        translator,
        dialect,
        meter,
    };
    let body = futures_util::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        loop {
            match state.upstream.next().await {
                Some(Ok(bytes)) => match state.parser.push(&bytes) {
                    Ok(events) => {
                        let mut out = String::new();
                        for event in &events {
                            for frame in state.translator.on_event(event) {
                                out.push_str(&frame);
                            }
                        }
                        if !out.is_empty() {
                            return Some((Ok::<_, Infallible>(Bytes::from(out)), Some(state)));
                        }
                    }
                    Err(err) => {
                        state.settle(502);
                        let frame = error_frame(state.dialect, &err.to_string());
                        return Some((Ok(frame), None));
                    }
                },
                Some(Err(err)) => {
                    state.settle(502);
                    let frame = error_frame(state.dialect, &err.to_string());
                    return Some((Ok(frame), None));
                }
                None => {
                    let mut out = String::new();
                    for event in state.parser.finish() {
                        for frame in state.translator.on_event(&event) {
                            out.push_str(&frame);
                        }
                    }
                    for frame in state.translator.finish() {
                        out.push_str(&frame);
                    }
                    state.settle(200);
                    return (!out.is_empty()).then(|| (Ok(Bytes::from(out)), None));
                }
            }
        }
    });
    sse_response(Body::from_stream(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn relayed(body: &'static str) -> Result<Response, GatewayError> {
        let response = BackendResponse::full(StatusCode::OK, body);
        relay_json(response, "m", None, Wire::OpenAi, None).await
    }

    #[tokio::test]
    async fn a_passed_through_body_must_be_json_of_any_shape() {
        let usage = r#"{"id":"x","usage":{"prompt_tokens":1,"completion_tokens":2}}"#;
        for body in [usage, "[1,2]", r#"{"usage":1,"usage":2}"#, "{}"] {
            let response = relayed(body).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{body}");
        }
        for body in ["{\"id\":", "not json", r#"{"a":1} trailing"#] {
            let err = relayed(body).await.unwrap_err();
            assert!(
                matches!(err, GatewayError::UpstreamUnavailable { .. }),
                "{body}: {err:?}"
            );
        }
    }
}
