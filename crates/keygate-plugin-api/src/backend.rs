//! Backends: what serves a configured model. keygate authenticates the caller, meters the key,
//! resolves the upstream credential and translates between dialects; a backend only sends one
//! request in its own dialect and hands back the response.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use http::{HeaderMap, StatusCode};
use secrecy::SecretString;
use serde_json::Value;

use crate::capture::CaptureContext;
use crate::BoxFuture;

/// The API a backend speaks: the shape of the bodies it takes and returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI: chat completions (SSE chunks ending with `data: [DONE]`), embeddings, models.
    OpenAi,
    /// Anthropic: messages (SSE events `message_start` .. `message_stop`), models.
    Anthropic,
}

/// A backend's answer to one call. A non-2xx status is an answer too (keygate maps it to the
/// caller's dialect and cools a refused key down); [`BackendError`] is for calls that got no
/// answer at all.
pub struct BackendResponse {
    /// The upstream's status.
    pub status: StatusCode,
    /// The upstream's headers (`retry-after` is read on 429).
    pub headers: HeaderMap,
    /// The body: whole, or a stream for `chat_stream`.
    pub body: ResponseBody,
}

/// A stream of body chunks.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, BackendError>> + Send>>;

/// A response body.
pub enum ResponseBody {
    /// Read whole already.
    Full(Bytes),
    /// Arriving; dropping it cancels the upstream request.
    Stream(BodyStream),
}

impl BackendResponse {
    /// A whole JSON (or other) body with `status`.
    pub fn full(status: StatusCode, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            body: ResponseBody::Full(body.into()),
        }
    }

    /// A streamed body with `status`.
    pub fn stream(status: StatusCode, body: BodyStream) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            body: ResponseBody::Stream(body),
        }
    }

    /// The body as one buffer, read up to `limit` bytes (the rest is dropped).
    pub async fn into_bytes(self, limit: usize) -> Result<Bytes, BackendError> {
        match self.body {
            ResponseBody::Full(bytes) => Ok(bytes.slice(..bytes.len().min(limit))),
            ResponseBody::Stream(mut stream) => {
                let mut out = BytesMut::new();
                while let Some(chunk) =
                    std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await
                {
                    let chunk = chunk?;
                    let room = limit.saturating_sub(out.len());
                    out.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if out.len() >= limit {
                        break;
                    }
                }
                Ok(out.freeze())
            }
        }
    }

    /// The body as a stream (a whole body is one chunk).
    pub fn into_stream(self) -> BodyStream {
        match self.body {
            ResponseBody::Stream(stream) => stream,
            ResponseBody::Full(bytes) => Box::pin(Once(Some(bytes))),
        }
    }
}

impl fmt::Debug for BackendResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendResponse")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

struct Once(Option<Bytes>);

impl Stream for Once {
    type Item = Result<Bytes, BackendError>;
    fn poll_next(
        self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.get_mut().0.take().map(Ok))
    }
}

/// A call that got no answer. Messages reach logs and callers: never put a credential in one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// No answer in time.
    #[error("the upstream did not answer in time")]
    Timeout,
    /// Unreachable, connection reset, broken body.
    #[error("{0}")]
    Unavailable(String),
    /// The backend does not offer this operation (e.g. embeddings on a chat-only backend).
    #[error("{0} is not supported by this backend")]
    Unsupported(&'static str),
    /// The request cannot be sent as given (the caller reads it as a 400).
    #[error("{0}")]
    InvalidRequest(String),
}

/// One call to a backend.
pub struct BackendRequest<'a> {
    /// The JSON body in the backend's [`Wire`] dialect; `model` already set to the upstream id.
    pub body: Bytes,
    /// The upstream credential for this call (the caller's own, or a configured one), if any.
    pub credential: Option<&'a SecretString>,
    /// Caller headers meant for the upstream (`anthropic-version`, `anthropic-beta`).
    pub forward: &'a HeaderMap,
    /// Set when this exchange is to be captured: pass it to the [`crate::CaptureClient`].
    pub capture: Option<&'a CaptureContext>,
}

/// What serves a model. keygate calls it with bodies in [`Backend::wire`]'s dialect, bounds each
/// call by the model's timeout (for a stream: until the response starts) and cancels it by
/// dropping the future or the body stream.
pub trait Backend: Send + Sync + 'static {
    /// The dialect of the bodies this backend takes and returns.
    fn wire(&self) -> Wire;

    /// A chat call (OpenAI: chat completions; Anthropic: messages), body read whole.
    fn chat<'a>(
        &'a self,
        request: BackendRequest<'a>,
    ) -> BoxFuture<'a, Result<BackendResponse, BackendError>>;

    /// A streamed chat call: the response's body is the SSE stream in the backend's dialect,
    /// returned as soon as the upstream's headers arrive.
    fn chat_stream<'a>(
        &'a self,
        request: BackendRequest<'a>,
    ) -> BoxFuture<'a, Result<BackendResponse, BackendError>>;

    /// An embeddings call (OpenAI dialect).
    fn embeddings<'a>(
        &'a self,
        request: BackendRequest<'a>,
    ) -> BoxFuture<'a, Result<BackendResponse, BackendError>> {
        let _ = request;
        Box::pin(async { Err(BackendError::Unsupported("embeddings")) })
    }

    /// The upstream's model list, in the backend's dialect (`body` is empty).
    fn models<'a>(
        &'a self,
        request: BackendRequest<'a>,
    ) -> BoxFuture<'a, Result<BackendResponse, BackendError>> {
        let _ = request;
        Box::pin(async { Err(BackendError::Unsupported("listing models")) })
    }
}

/// A model entry of keygate's config, as a backend factory sees it. Credentials are not here:
/// keygate resolves them and passes one with each call.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    /// What clients call the model.
    pub name: String,
    /// The `provider` the entry names (this backend's `backend_name`).
    pub provider: String,
    /// The upstream's model id (`model`, defaulting to `name`).
    pub upstream_model: String,
    /// `api_base` as configured, trailing `/` removed.
    pub api_base: Option<String>,
    /// `api_version` as configured.
    pub api_version: Option<String>,
    /// Extra headers for every upstream call.
    pub headers: BTreeMap<String, String>,
    /// The model's timeout.
    pub timeout: Duration,
    /// The entry's free-form `options` map, for the plugin's own settings (`null` when absent).
    pub options: Value,
}

/// keygate's OpenAI <-> Anthropic translation, offered to backends that need it (a backend for
/// an Anthropic-like API can reuse it instead of writing its own).
pub trait Translation: Send + Sync + 'static {
    /// An OpenAI chat completions request as an Anthropic messages request for `model`.
    fn openai_to_anthropic_request(&self, body: &Value, model: &str) -> Result<Value, String>;
    /// An Anthropic messages request as an OpenAI chat completions request for `model`.
    fn anthropic_to_openai_request(&self, body: &Value, model: &str) -> Result<Value, String>;
    /// An Anthropic message as an OpenAI chat completion reporting `model`.
    fn anthropic_to_openai_response(&self, body: &Value, model: &str) -> Value;
    /// An OpenAI chat completion as an Anthropic message reporting `model`.
    fn openai_to_anthropic_response(&self, body: &Value, model: &str) -> Value;
}
