//! Traffic capture: the HTTP client backends use records each upstream exchange (request,
//! response, timing) for a [`CaptureSink`] when keygate samples the request for capture.
//!
//! What is recorded never holds a credential: headers that carry one (`authorization`,
//! `proxy-authorization`, `api-key`, `x-api-key`, `x-*-authorization`, `cookie`, `set-cookie`)
//! are replaced by `[REDACTED]`, and the credential of the call, wherever else it appears (URL,
//! other headers, bodies), is replaced too. keygate's sink also replaces every configured secret
//! value it knows before writing.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_core::Stream;
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::Body as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::backend::{BackendError, BackendResponse, BodyStream, ResponseBody};
use crate::pool::{self, PooledBody, SendError};

/// What replaces a credential in a capture.
pub const REDACTED: &str = "[REDACTED]";
/// Most body bytes kept per request or response; the rest is counted, not kept.
pub const MAX_CAPTURED_BODY: usize = 1024 * 1024;
/// Secret values shorter than this are not searched for in bodies (they would match by chance).
pub const MIN_SCRUBBED_LEN: usize = 6;

/// Who a captured exchange was for. Travels with the request; holds the call's credential only
/// to scrub it, and never prints it.
#[derive(Clone)]
pub struct CaptureContext {
    /// The backend (`provider`) serving the call.
    pub backend: String,
    /// The model as clients name it.
    pub model: String,
    /// Which credential was used, by name (`secret:OPENAI_API_KEY`, `byok`): never the key.
    pub key_name: Option<String>,
    secrets: Vec<SecretString>,
}

impl CaptureContext {
    /// A context for one call.
    pub fn new(
        backend: impl Into<String>,
        model: impl Into<String>,
        key_name: Option<String>,
    ) -> Self {
        Self {
            backend: backend.into(),
            model: model.into(),
            key_name,
            secrets: Vec::new(),
        }
    }

    /// Adds a value to be replaced wherever it appears in this exchange's record.
    pub fn redact(mut self, secret: &SecretString) -> Self {
        self.secrets.push(secret.clone());
        self
    }

    fn scrub(&self, text: String) -> String {
        self.secrets
            .iter()
            .fold(text, |text, secret| scrub(&text, secret.expose_secret()))
    }
}

impl std::fmt::Debug for CaptureContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureContext")
            .field("backend", &self.backend)
            .field("model", &self.model)
            .field("key_name", &self.key_name)
            .finish_non_exhaustive()
    }
}

/// One captured exchange: a JSON line in keygate's capture files.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureRecord {
    /// Unique within the process.
    pub id: String,
    /// When the request was sent, in milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// From sending to the end of the response body (or the failure).
    pub duration_ms: u64,
    /// The backend.
    pub backend: String,
    /// The model as clients name it.
    pub model: String,
    /// The credential's name, never its value.
    pub key_name: Option<String>,
    /// What was sent.
    pub request: CapturedMessage,
    /// What came back, if anything did.
    pub response: Option<CapturedMessage>,
    /// Whether the whole response body was seen (false: a failure, or a stream the caller left).
    pub complete: bool,
    /// Why the exchange failed or stopped early.
    pub error: Option<String>,
}

/// A request or response as captured.
#[derive(Debug, Clone, Serialize)]
pub struct CapturedMessage {
    /// Request: the method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Request: the URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Response: the status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Headers, credentials redacted; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The body as text (invalid UTF-8 replaced), at most [`MAX_CAPTURED_BODY`] bytes.
    pub body: String,
    /// The body's full length, when more was seen than kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_truncated_from: Option<u64>,
}

/// Where captured exchanges go. Called from request tasks: must not block for long (queue the
/// record and write it elsewhere).
pub trait CaptureSink: Send + Sync + 'static {
    /// Takes one finished exchange.
    fn record(&self, record: CaptureRecord);
}

/// Whether a header carries a credential.
pub fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "api-key" | "x-api-key" | "cookie" | "set-cookie"
    ) || (name.starts_with("x-") && name.ends_with("-authorization"))
}

/// `text` with every occurrence of `secret` (and of its JSON-escaped form) replaced by
/// [`REDACTED`]. Secrets shorter than [`MIN_SCRUBBED_LEN`] are left alone.
pub fn scrub(text: &str, secret: &str) -> String {
    if secret.len() < MIN_SCRUBBED_LEN {
        return text.to_owned();
    }
    let mut out = text.replace(secret, REDACTED);
    let escaped = serde_json::to_string(secret).unwrap_or_default();
    let escaped = escaped.trim_matches('"');
    if escaped != secret && escaped.len() >= MIN_SCRUBBED_LEN {
        out = out.replace(escaped, REDACTED);
    }
    out
}

/// A transport error described by its kind and innermost cause (never a URL or a header).
pub fn describe_transport_error(err: &(dyn std::error::Error + 'static)) -> String {
    let connect = err
        .downcast_ref::<hyper_util::client::legacy::Error>()
        .is_some_and(hyper_util::client::legacy::Error::is_connect);
    let kind = if connect {
        "connection failed"
    } else if err.is::<hyper::Error>() {
        "bad response"
    } else {
        "transport error"
    };
    describe(kind, err)
}

/// `kind: ` and the innermost cause of `err`.
fn describe(kind: &str, err: &(dyn std::error::Error + 'static)) -> String {
    let mut source = err.source();
    let mut detail = None;
    while let Some(inner) = source {
        detail = Some(inner.to_string());
        source = inner.source();
    }
    match detail {
        Some(detail) => format!("{kind}: {detail}"),
        None => format!("{kind}: {err}"),
    }
}

fn send_error(err: SendError) -> BackendError {
    BackendError::Unavailable(match err {
        SendError::BadUri => "transport error: the upstream URL has no scheme or host".to_owned(),
        SendError::Connect(err) => describe("connection failed", &*err),
        SendError::Io(err) => describe("transport error", &err),
        SendError::Wire(err) => format!("bad response: {err}"),
    })
}

/// The HTTP client backends use: HTTP/1.1 over TLS with the Mozilla roots, or plain HTTP;
/// TCP_NODELAY; 10 s connect timeout; idle connections kept 90 s, per thread, and driven by the
/// task of the request that uses them (see [`crate::pool`]); with capture. Cheap to clone.
#[derive(Clone)]
pub struct CaptureClient {
    sink: Option<Arc<dyn CaptureSink>>,
}

impl CaptureClient {
    /// A client; exchanges are captured into `sink` when a call carries a context.
    pub fn new(sink: Option<Arc<dyn CaptureSink>>) -> Self {
        Self { sink }
    }

    /// Whether exchanges can be captured at all (a sink is configured).
    pub fn captures(&self) -> bool {
        self.sink.is_some()
    }

    /// Sends `request` (its URI absolute: `https://host/path`) and reads the whole response;
    /// captured (when `capture` is given) once the body is in, or when the call fails.
    pub async fn send(
        &self,
        request: http::Request<Bytes>,
        capture: Option<&CaptureContext>,
    ) -> Result<BackendResponse, BackendError> {
        let (parts, incoming, pending) = self.start(request, capture).await?;
        match incoming.collect().await {
            Ok(body) => {
                let body = body.to_bytes();
                if let Some(mut pending) = pending {
                    pending.seen(&body);
                    pending.finish(true, None);
                }
                Ok(BackendResponse {
                    status: parts.status,
                    headers: parts.headers,
                    body: ResponseBody::Full(body),
                })
            }
            Err(err) => Err(fail(pending, send_error(err))),
        }
    }

    /// Sends `request` and returns as soon as the response headers arrive; the body streams.
    /// Captured once the body has been read to its end, or has failed, or has been dropped
    /// unfinished (the caller left): then it is marked incomplete with what was seen.
    pub async fn send_streaming(
        &self,
        request: http::Request<Bytes>,
        capture: Option<&CaptureContext>,
    ) -> Result<BackendResponse, BackendError> {
        let (parts, incoming, pending) = self.start(request, capture).await?;
        let body: BodyStream = Box::pin(Capturing { incoming, pending });
        Ok(BackendResponse {
            status: parts.status,
            headers: parts.headers,
            body: ResponseBody::Stream(body),
        })
    }

    /// Sends `request` and waits for the response head, which the capture (if any) records;
    /// a call with no answer is captured with its error.
    async fn start(
        &self,
        request: http::Request<Bytes>,
        capture: Option<&CaptureContext>,
    ) -> Result<(http::response::Parts, PooledBody, Option<Pending>), BackendError> {
        let mut pending = self.begin(&request, capture);
        let (parts, incoming) = match pool::send(request).await {
            Ok(response) => response,
            Err(err) => return Err(fail(pending, send_error(err))),
        };
        if let Some(pending) = &mut pending {
            pending.response(parts.status, &parts.headers);
        }
        Ok((parts, incoming, pending))
    }

    fn begin(
        &self,
        request: &http::Request<Bytes>,
        capture: Option<&CaptureContext>,
    ) -> Option<Pending> {
        let (sink, context) = (self.sink.as_ref()?, capture?);
        let mut message = CapturedMessage {
            method: Some(request.method().to_string()),
            url: Some(context.scrub(request.uri().to_string())),
            status: None,
            headers: headers_of(request.headers(), context),
            body: String::new(),
            body_truncated_from: None,
        };
        keep_body(&mut message, request.body(), context);
        Some(Pending {
            sink: sink.clone(),
            context: context.clone(),
            started: Instant::now(),
            started_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0),
            request: message,
            response: None,
            body: Vec::new(),
            seen: 0,
        })
    }
}

fn fail(pending: Option<Pending>, error: BackendError) -> BackendError {
    if let Some(pending) = pending {
        pending.finish(false, Some(error.to_string()));
    }
    error
}

fn headers_of(headers: &HeaderMap, context: &CaptureContext) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let text = if is_credential_header(name.as_str()) {
            REDACTED.to_owned()
        } else {
            context.scrub(String::from_utf8_lossy(value.as_bytes()).into_owned())
        };
        out.entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&text);
            })
            .or_insert(text);
    }
    out
}

fn keep_body(message: &mut CapturedMessage, body: &[u8], context: &CaptureContext) {
    let kept = &body[..body.len().min(MAX_CAPTURED_BODY)];
    message.body = context.scrub(String::from_utf8_lossy(kept).into_owned());
    if kept.len() < body.len() {
        message.body_truncated_from = Some(body.len() as u64);
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// An exchange being captured.
struct Pending {
    sink: Arc<dyn CaptureSink>,
    context: CaptureContext,
    started: Instant,
    started_unix_ms: u64,
    request: CapturedMessage,
    response: Option<CapturedMessage>,
    /// Response body bytes kept so far.
    body: Vec<u8>,
    /// Response body bytes seen so far.
    seen: u64,
}

impl Pending {
    fn response(&mut self, status: http::StatusCode, headers: &HeaderMap) {
        self.response = Some(CapturedMessage {
            method: None,
            url: None,
            status: Some(status.as_u16()),
            headers: headers_of(headers, &self.context),
            body: String::new(),
            body_truncated_from: None,
        });
    }

    fn seen(&mut self, chunk: &[u8]) {
        self.seen += chunk.len() as u64;
        let room = MAX_CAPTURED_BODY.saturating_sub(self.body.len());
        self.body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    fn finish(mut self, complete: bool, error: Option<String>) {
        if let Some(response) = &mut self.response {
            response.body = self
                .context
                .scrub(String::from_utf8_lossy(&self.body).into_owned());
            if self.seen > self.body.len() as u64 {
                response.body_truncated_from = Some(self.seen);
            }
        }
        let record = CaptureRecord {
            id: format!(
                "{:x}-{:x}",
                self.started_unix_ms,
                NEXT_ID.fetch_add(1, Ordering::Relaxed)
            ),
            started_unix_ms: self.started_unix_ms,
            duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            backend: self.context.backend.clone(),
            model: self.context.model.clone(),
            key_name: self.context.key_name.clone(),
            request: self.request,
            response: self.response,
            complete,
            error: error.map(|e| self.context.scrub(e)),
        };
        self.sink.record(record);
    }
}

/// A response body on its way to the caller, captured as it passes.
struct Capturing {
    incoming: PooledBody,
    pending: Option<Pending>,
}

impl Stream for Capturing {
    type Item = Result<Bytes, BackendError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            return match Pin::new(&mut this.incoming).poll_frame(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(chunk) => {
                        if let Some(pending) = &mut this.pending {
                            pending.seen(&chunk);
                        }
                        Poll::Ready(Some(Ok(chunk)))
                    }
                    // Trailers: nothing to relay.
                    Err(_) => continue,
                },
                Poll::Ready(Some(Err(err))) => {
                    let error = send_error(err);
                    if let Some(pending) = this.pending.take() {
                        pending.finish(false, Some(error.to_string()));
                    }
                    Poll::Ready(Some(Err(error)))
                }
                Poll::Ready(None) => {
                    if let Some(pending) = this.pending.take() {
                        pending.finish(true, None);
                    }
                    Poll::Ready(None)
                }
            };
        }
    }
}

impl Drop for Capturing {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.finish(
                false,
                Some("the stream was dropped before its end (the caller went away)".to_owned()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_headers_are_recognised() {
        for name in [
            "Authorization",
            "api-key",
            "X-Api-Key",
            "x-gpt-4o-authorization",
            "Proxy-Authorization",
            "cookie",
        ] {
            assert!(is_credential_header(name), "{name}");
        }
        for name in [
            "content-type",
            "x-request-id",
            "anthropic-version",
            "x-authorization-hint",
        ] {
            assert!(!is_credential_header(name), "{name}");
        }
    }

    #[test]
    fn scrub_replaces_raw_and_escaped_forms() {
        assert_eq!(
            scrub("a sk-123456 b sk-123456", "sk-123456"),
            "a [REDACTED] b [REDACTED]"
        );
        assert_eq!(
            scrub(r#"{"k":"ab\"cdefg"}"#, "ab\"cdefg"),
            r#"{"k":"[REDACTED]"}"#
        );
        assert_eq!(scrub("short x", "x"), "short x");
    }
}
