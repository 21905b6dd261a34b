//! Non-stream response translation (both directions), usage extraction, stop/finish reasons
//! and error envelopes.
//!
//! Responses are translated as far as they go: a malformed upstream body yields a well-formed
//! response with whatever could be read (empty content, zero usage), never an error or a panic.
//! Thinking blocks are dropped (OpenAI's chat format has no place for them). It does not decide
//! HTTP statuses or retries: error helpers only shape bodies.

use serde_json::{json, Map, Value};

use super::{anthropic_id, as_count, now_unix, openai_id, str_at};

/// Token usage of one response. `input_tokens` counts every prompt token, cached or not (for
/// Anthropic: `input_tokens + cache_read_input_tokens + cache_creation_input_tokens`);
/// `cached_input_tokens` is the part of it read from the prompt cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// All prompt tokens, cached ones included.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from the cache (a subset of `input_tokens`).
    pub cached_input_tokens: u64,
}

/// Usage of an OpenAI `chat.completion` (or of a chunk carrying `usage`).
pub fn openai_usage(resp: &Value) -> Option<Usage> {
    openai_usage_object(resp.get("usage")?)
}

/// An OpenAI `usage` object read as [`Usage`].
pub fn openai_usage_object(usage: &Value) -> Option<Usage> {
    let usage = Some(usage).filter(|u| u.is_object())?;
    openai_usage_from(
        as_count(usage.get("prompt_tokens")),
        as_count(usage.get("completion_tokens")),
        as_count(usage.pointer("/prompt_tokens_details/cached_tokens")),
    )
}

/// [`Usage`] from OpenAI's counts (`prompt_tokens`, `completion_tokens`,
/// `prompt_tokens_details.cached_tokens`); none when neither of the first two is given.
pub fn openai_usage_from(
    prompt: Option<u64>,
    completion: Option<u64>,
    cached: Option<u64>,
) -> Option<Usage> {
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    let input = prompt.unwrap_or(0);
    Some(Usage {
        input_tokens: input,
        output_tokens: completion.unwrap_or(0),
        cached_input_tokens: cached.unwrap_or(0).min(input),
    })
}

/// Usage of an Anthropic message (or of any object with an Anthropic `usage` member).
pub fn anthropic_usage(resp: &Value) -> Option<Usage> {
    anthropic_usage_object(resp.get("usage")?)
}

/// An Anthropic `usage` object read as [`Usage`].
pub fn anthropic_usage_object(usage: &Value) -> Option<Usage> {
    let usage = Some(usage).filter(|u| u.is_object())?;
    anthropic_usage_from(
        as_count(usage.get("input_tokens")),
        as_count(usage.get("output_tokens")),
        as_count(usage.get("cache_read_input_tokens")),
        as_count(usage.get("cache_creation_input_tokens")),
    )
}

/// [`Usage`] from Anthropic's counts (`input_tokens`, `output_tokens`,
/// `cache_read_input_tokens`, `cache_creation_input_tokens`): all prompt tokens are the three
/// input counts together; none when neither of the first two is given.
pub fn anthropic_usage_from(
    input: Option<u64>,
    output: Option<u64>,
    cache_read: Option<u64>,
    cache_creation: Option<u64>,
) -> Option<Usage> {
    if input.is_none() && output.is_none() {
        return None;
    }
    let read = cache_read.unwrap_or(0);
    Some(Usage {
        input_tokens: input
            .unwrap_or(0)
            .saturating_add(read)
            .saturating_add(cache_creation.unwrap_or(0)),
        output_tokens: output.unwrap_or(0),
        cached_input_tokens: read,
    })
}

/// Prompt tokens written to the cache: Anthropic's `cache_creation_input_tokens`, or OpenAI's
/// `prompt_tokens_details.cache_write_tokens` (both are part of [`Usage::input_tokens`]).
pub(super) fn cache_writes(resp: &Value) -> u64 {
    let usage = resp.get("usage");
    as_count(usage.and_then(|u| u.get("cache_creation_input_tokens")))
        .or_else(|| {
            as_count(usage.and_then(|u| u.pointer("/prompt_tokens_details/cache_write_tokens")))
        })
        .unwrap_or(0)
}

/// `usage` in OpenAI's shape; `cache_write_tokens` only when there were cache writes.
pub(super) fn openai_usage_json(usage: Usage, cache_writes: u64) -> Value {
    let mut details = json!({"cached_tokens": usage.cached_input_tokens});
    if let (true, Some(obj)) = (cache_writes > 0, details.as_object_mut()) {
        obj.insert("cache_write_tokens".into(), json!(cache_writes));
    }
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens.saturating_add(usage.output_tokens),
        "prompt_tokens_details": details,
    })
}

/// `usage` in Anthropic's shape: `input_tokens` excludes cache reads and cache writes.
pub(super) fn anthropic_usage_json(usage: Usage, cache_writes: u64) -> Value {
    let uncached = usage.input_tokens.saturating_sub(usage.cached_input_tokens);
    let cache_writes = cache_writes.min(uncached);
    json!({
        "input_tokens": uncached - cache_writes,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": cache_writes,
        "cache_read_input_tokens": usage.cached_input_tokens,
    })
}

/// Anthropic `stop_reason` -> OpenAI `finish_reason`.
pub(super) fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything new.
        _ => "stop",
    }
}

/// OpenAI `finish_reason` -> Anthropic `stop_reason` (as LiteLLM maps it; `content_filter` is
/// surfaced as `refusal` so that a filtered answer does not read as a normal end of turn).
pub(super) fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic Messages response -> OpenAI `chat.completion`. `model` is the caller's name.
pub fn anthropic_to_openai_response(resp: &Value, model: &str) -> Value {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in resp
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match str_at(block, "type") {
            Some("text") => text.push_str(str_at(block, "text").unwrap_or_default()),
            Some("tool_use") => calls.push(json!({
                "id": str_at(block, "id").unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": str_at(block, "name").unwrap_or_default(),
                    "arguments": block.get("input").filter(|i| !i.is_null())
                        .map_or_else(|| "{}".to_owned(), Value::to_string),
                },
            })),
            _ => {}
        }
    }
    let finish = match str_at(resp, "stop_reason") {
        Some(reason) => finish_reason(reason),
        None if !calls.is_empty() => "tool_calls",
        None => "stop",
    };
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        json!(text)
    };
    message.insert("content".into(), content);
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    message.insert("refusal".into(), Value::Null);
    json!({
        "id": openai_id(str_at(resp, "id")),
        "object": "chat.completion",
        "created": now_unix(),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": openai_usage_json(anthropic_usage(resp).unwrap_or_default(), cache_writes(resp)),
    })
}

/// OpenAI `chat.completion` -> Anthropic message. `model` is the caller's name. Only the first
/// choice is translated. Tool call arguments that are not a JSON object become `{}`.
pub fn openai_to_anthropic_response(resp: &Value, model: &str) -> Value {
    let choice = resp.get("choices").and_then(|c| c.get(0));
    let message = choice.and_then(|c| c.get("message"));
    let mut blocks = Vec::new();
    let mut text = match message.and_then(|m| m.get("content")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| str_at(p, "text")).collect(),
        _ => String::new(),
    };
    let refusal = message
        .and_then(|m| str_at(m, "refusal"))
        .filter(|r| !r.is_empty());
    if let (true, Some(refusal)) = (text.is_empty(), refusal) {
        text = refusal.to_owned();
    }
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    let calls = message
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array);
    for call in calls.into_iter().flatten() {
        let function = call.get("function");
        let input = match function.and_then(|f| f.get("arguments")) {
            Some(Value::String(s)) => serde_json::from_str::<Value>(s).ok(),
            Some(other) => Some(other.clone()),
            None => None,
        };
        let id = str_at(call, "id").map_or_else(
            || format!("toolu_{}", super::unique_suffix()),
            str::to_owned,
        );
        blocks.push(json!({
            "type": "tool_use",
            "id": id,
            "name": function.and_then(|f| str_at(f, "name")).unwrap_or_default(),
            "input": input.filter(Value::is_object).unwrap_or_else(|| json!({})),
        }));
    }
    let has_tools = blocks.iter().any(|b| str_at(b, "type") == Some("tool_use"));
    let stop = match choice
        .and_then(|c| str_at(c, "finish_reason"))
        .map(stop_reason)
    {
        // Some OpenAI-compatible servers say "stop" after tool calls: the caller must run them.
        Some("end_turn") | None if has_tools => "tool_use",
        None if refusal.is_some()
            && message
                .and_then(|m| m.get("content"))
                .is_none_or(Value::is_null) =>
        {
            "refusal"
        }
        Some(reason) => reason,
        None => "end_turn",
    };
    json!({
        "id": anthropic_id(str_at(resp, "id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": anthropic_usage_json(openai_usage(resp).unwrap_or_default(), cache_writes(resp)),
    })
}

/// Anthropic's error `type` for an HTTP status.
pub fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// OpenAI's error `type` for an HTTP status. OpenAI itself sends `invalid_request_error` for
/// every 4xx it answers (401 included, with `code: "invalid_api_key"`), `server_error` for 5xx,
/// and for 429 the limit's unit (`requests`, `tokens`) with `code: "rate_limit_exceeded"`;
/// keygate uses `rate_limit_exceeded` as the type there, a name that needs no context.
pub fn openai_error_type(status: u16) -> &'static str {
    match status {
        429 => "rate_limit_exceeded",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

/// The HTTP status an Anthropic error `type` stands for (for errors sent inside a stream).
pub(super) fn status_of_anthropic_type(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

/// The HTTP status an OpenAI error `type`/`code` stands for (for errors sent inside a stream).
pub(super) fn status_of_openai_error(error: &Value) -> u16 {
    let kind = str_at(error, "type").unwrap_or_default();
    let code = str_at(error, "code").unwrap_or_default();
    match (kind, code) {
        (_, "rate_limit_exceeded") | ("requests" | "tokens" | "rate_limit_exceeded", _) => 429,
        ("insufficient_quota", _) | (_, "insufficient_quota") => 429,
        ("invalid_request_error", _) => 400,
        _ => 500,
    }
}

/// Longest message kept from an upstream error body, in characters.
const MAX_MESSAGE_CHARS: usize = 1000;

/// The human-readable message of an upstream error body: `error.message` of either envelope,
/// a string `error`, `message` or `detail`, a JSON string, or (non-JSON) the text itself.
/// `None` for an empty body or JSON without a message.
pub fn error_message(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let message = match serde_json::from_str::<Value>(text) {
        Ok(value) => message_of(&value, 0)?,
        Err(_) => text.to_owned(),
    };
    let message = message.trim();
    if message.is_empty() {
        return None;
    }
    Some(match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", message.get(..cut).unwrap_or(message)),
        None => message.to_owned(),
    })
}

fn message_of(value: &Value, depth: u8) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) if depth == 0 => items.first().and_then(|v| message_of(v, 1)),
        Value::Object(obj) => {
            let error = obj.get("error");
            error
                .and_then(|e| str_at(e, "message"))
                .or_else(|| error.and_then(Value::as_str))
                .or_else(|| obj.get("message").and_then(Value::as_str))
                .or_else(|| obj.get("detail").and_then(Value::as_str))
                .filter(|m| !m.trim().is_empty())
                .map(str::to_owned)
        }
        _ => None,
    }
}

/// An Anthropic error body: `{"type":"error","error":{"type":..,"message":..}}`.
pub fn anthropic_error_body(status: u16, message: &str) -> Value {
    json!({"type": "error", "error": {"type": anthropic_error_type(status), "message": message}})
}

/// An OpenAI error body: `{"error":{"message","type","param":null,"code"}}`.
pub fn openai_error_body(status: u16, message: &str, code: Option<&str>) -> Value {
    json!({"error": {
        "message": message,
        "type": openai_error_type(status),
        "param": null,
        "code": code,
    }})
}
