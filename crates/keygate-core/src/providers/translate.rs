//! Translation between the OpenAI Chat Completions and the Anthropic Messages dialects:
//! requests, non-stream responses, streams (event by event), usage and error envelopes.
//!
//! Everything here is pure: `serde_json::Value` in, `Value` (or SSE frames) out, no I/O, no
//! clock other than `created` timestamps and generated ids. Every function tolerates arbitrary
//! JSON: a request that cannot be expressed in the other dialect is a [`TranslateError`] whose
//! message is meant for the caller; a malformed upstream response or event is translated as far
//! as it goes (missing parts skipped), never a panic.
//!
//! It does not choose routes, send requests, validate values the upstream validates itself
//! (model names, numeric ranges, JSON schemas) nor count tokens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fuzz;
#[cfg(test)]
mod tests_sse;
#[cfg(test)]
mod tests_stream;

pub use request::{anthropic_to_openai_request, openai_to_anthropic_request};
pub use response::{
    anthropic_error_body, anthropic_error_type, anthropic_to_openai_response, anthropic_usage,
    anthropic_usage_from, anthropic_usage_object, error_message, openai_error_body,
    openai_error_type, openai_to_anthropic_response, openai_usage, openai_usage_from,
    openai_usage_object, Usage,
};
pub use stream::{AnthropicToOpenAiStream, OpenAiToAnthropicStream};

/// A request that cannot be expressed in the other dialect. The message is what the caller
/// reads (as a 400 `invalid_request_error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The body is valid JSON but not an object.
    #[error("the request body must be a JSON object")]
    NotAnObject,
    /// `messages` is missing, not an array, or empty.
    #[error("messages must be a non-empty array")]
    NoMessages,
    /// A field has the wrong type or an unusable value.
    #[error("{field} must be {expected}")]
    InvalidField {
        /// Where, e.g. `messages[2].content`.
        field: String,
        /// What was expected, e.g. `a string`.
        expected: &'static str,
    },
    /// A message role the other dialect has no equivalent for.
    #[error("unsupported message role `{0}`")]
    UnsupportedRole(String),
    /// An OpenAI content part type that cannot be translated.
    #[error("unsupported content part type `{0}`")]
    UnsupportedContentPart(String),
    /// An Anthropic content block type that cannot be translated.
    #[error("unsupported content block type `{0}`")]
    UnsupportedContentBlock(String),
    /// A tool type other than plain functions (e.g. Anthropic server tools).
    #[error("unsupported tool type `{0}`")]
    UnsupportedTool(String),
    /// A parameter whose value the upstream's API cannot honour.
    #[error("{param} is not supported for this model: {reason}")]
    UnsupportedParameter {
        /// The parameter, e.g. `n`.
        param: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// An assistant tool call whose `arguments` is not a JSON object.
    #[error(
        "the arguments of tool call `{call}` must be a JSON object encoded as a string: {reason}"
    )]
    InvalidToolArguments {
        /// The tool call's id (or name).
        call: String,
        /// What is wrong.
        reason: String,
    },
    /// An image reference that cannot be translated.
    #[error("invalid image at {field}: {reason}")]
    InvalidImage {
        /// Where.
        field: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A process-unique hexadecimal suffix for ids the upstream did not provide.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:x}{:04x}", nanos, count & 0xffff)
}

/// The OpenAI completion id for an Anthropic message id: `msg_X` becomes `chatcmpl-X`.
fn openai_id(upstream: Option<&str>) -> String {
    match upstream.filter(|id| !id.is_empty()) {
        Some(id) => format!("chatcmpl-{}", id.strip_prefix("msg_").unwrap_or(id)),
        None => format!("chatcmpl-{}", unique_suffix()),
    }
}

/// The Anthropic message id for an OpenAI completion id: `chatcmpl-X` becomes `msg_X`.
fn anthropic_id(upstream: Option<&str>) -> String {
    match upstream.filter(|id| !id.is_empty()) {
        Some(id) => format!("msg_{}", id.strip_prefix("chatcmpl-").unwrap_or(id)),
        None => format!("msg_{}", unique_suffix()),
    }
}

/// A non-negative integer from a JSON number (integral floats accepted), else `None`.
fn as_count(value: Option<&Value>) -> Option<u64> {
    let value = value?;
    value.as_u64().or_else(|| whole_count(value.as_f64()?))
}

/// A count written as a float (`3.0`): whole, non-negative and within `u64`, else `None`.
pub(super) fn whole_count(f: f64) -> Option<u64> {
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 1.8e19).then_some(f as u64)
}

/// The string at `key` of `value`, if it is one.
fn str_at<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}
