//! Streaming translation, both directions, one upstream SSE event at a time: Anthropic events
//! -> OpenAI `chat.completion.chunk`s here, OpenAI chunks -> Anthropic events in
//! [`to_anthropic`].
//!
//! Each translator is a small state machine fed parsed [`SseEvent`]s; it returns fully encoded
//! SSE frames for the caller and keeps usage for accounting. Unknown event types and missing
//! fields are skipped; an event that is not JSON, or an upstream that ends before saying why the
//! message stopped, ends the caller's stream with an error frame, never with a clean finish that
//! would pass a truncated answer off as complete. Thinking deltas are dropped. It does no I/O.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::super::sse::{self, SseEvent};
use super::response::{
    anthropic_usage, finish_reason, openai_error_body, openai_usage_json, status_of_anthropic_type,
    Usage,
};
use super::{as_count, now_unix, openai_id, str_at};

mod to_anthropic;

pub use to_anthropic::OpenAiToAnthropicStream;

/// Anthropic Messages stream -> OpenAI chat completion chunks.
#[derive(Debug)]
pub struct AnthropicToOpenAiStream {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    started: bool,
    finish_sent: bool,
    done: bool,
    /// Anthropic content block index -> OpenAI tool call index.
    tools: BTreeMap<u64, u64>,
    finish_reason: Option<&'static str>,
    /// Anthropic usage fields as last reported (`message_delta` overrides `message_start`).
    usage: Map<String, Value>,
}

impl AnthropicToOpenAiStream {
    /// A translator for a caller that asked for `model`; `include_usage` mirrors the caller's
    /// `stream_options.include_usage` (a final chunk with empty `choices` and `usage`).
    pub fn new(model: &str, include_usage: bool) -> Self {
        Self {
            id: openai_id(None),
            created: now_unix(),
            model: model.to_owned(),
            include_usage,
            started: false,
            finish_sent: false,
            done: false,
            tools: BTreeMap::new(),
            finish_reason: None,
            usage: Map::new(),
        }
    }

    /// Frames for one upstream event (none for pings, stops and unreadable events).
    pub fn on_event(&mut self, ev: &SseEvent) -> Vec<String> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        let Ok(data) = serde_json::from_str::<Value>(&ev.data) else {
            return self.fail("the upstream sent an event that is not JSON");
        };
        let kind = str_at(&data, "type")
            .or(ev.event.as_deref())
            .unwrap_or_default();
        match kind {
            "message_start" => {
                if let Some(message) = data.get("message") {
                    if let Some(id) = str_at(message, "id").filter(|id| !id.is_empty()) {
                        self.id = openai_id(Some(id));
                    }
                    self.merge_usage(message.get("usage"));
                }
                self.start(&mut out);
            }
            "content_block_start" => {
                self.start(&mut out);
                let block = data.get("content_block").unwrap_or(&Value::Null);
                match str_at(block, "type") {
                    Some("tool_use") => {
                        let tool = self.tools.len() as u64;
                        self.tools
                            .insert(as_count(data.get("index")).unwrap_or(tool), tool);
                        let call = json!({
                            "index": tool,
                            "id": str_at(block, "id").unwrap_or_default(),
                            "type": "function",
                            "function": {
                                "name": str_at(block, "name").unwrap_or_default(),
                                "arguments": "",
                            },
                        });
                        out.push(self.chunk(json!({"tool_calls": [call]}), None));
                    }
                    Some("text") => self.text(str_at(block, "text"), &mut out),
                    _ => {}
                }
            }
            "content_block_delta" => {
                self.start(&mut out);
                let delta = data.get("delta").unwrap_or(&Value::Null);
                match str_at(delta, "type") {
                    Some("text_delta") => self.text(str_at(delta, "text"), &mut out),
                    Some("input_json_delta") => {
                        let partial = str_at(delta, "partial_json").filter(|p| !p.is_empty());
                        let tool = as_count(data.get("index")).and_then(|i| self.tools.get(&i));
                        if let (Some(partial), Some(&tool)) = (partial, tool) {
                            let call = json!({"index": tool, "function": {"arguments": partial}});
                            out.push(self.chunk(json!({"tool_calls": [call]}), None));
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                self.start(&mut out);
                self.merge_usage(data.get("usage"));
                if let Some(reason) = data.get("delta").and_then(|d| str_at(d, "stop_reason")) {
                    self.finish_reason = Some(finish_reason(reason));
                    self.send_finish(&mut out);
                }
            }
            "message_stop" => out.extend(self.close()),
            "error" => {
                let error = data.get("error").unwrap_or(&Value::Null);
                let status = status_of_anthropic_type(str_at(error, "type").unwrap_or_default());
                let message = str_at(error, "message").unwrap_or("The upstream stream failed.");
                out.push(sse::encode_data(
                    &openai_error_body(status, message, None).to_string(),
                ));
                self.done = true;
            }
            _ => {}
        }
        out
    }

    /// Closing frames when the upstream stream has ended: the usage chunk if asked for, then
    /// `[DONE]`, each at most once; an error frame instead if the upstream never sent its
    /// `stop_reason`. Nothing after an upstream error, whose error frame already ended the stream.
    pub fn finish(&mut self) -> Vec<String> {
        if self.finish_sent {
            self.close()
        } else {
            self.fail("the upstream stream ended before the message was complete")
        }
    }

    /// Ends the caller's stream with an error frame.
    fn fail(&mut self, reason: &str) -> Vec<String> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        let message = format!("The upstream stream failed: {reason}.");
        vec![sse::encode_data(
            &openai_error_body(502, &message, None).to_string(),
        )]
    }

    /// Usage reported so far by the upstream, if any.
    pub fn usage(&self) -> Option<Usage> {
        anthropic_usage(&json!({"usage": self.usage}))
    }

    fn merge_usage(&mut self, usage: Option<&Value>) {
        for (key, value) in usage.and_then(Value::as_object).into_iter().flatten() {
            if as_count(Some(value)).is_some() {
                self.usage.insert(key.clone(), value.clone());
            }
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        let mut chunk = Map::new();
        chunk.insert("id".into(), json!(self.id));
        chunk.insert("object".into(), json!("chat.completion.chunk"));
        chunk.insert("created".into(), json!(self.created));
        chunk.insert("model".into(), json!(self.model));
        let choice = json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish});
        chunk.insert("choices".into(), json!([choice]));
        if self.include_usage {
            chunk.insert("usage".into(), Value::Null);
        }
        sse::encode_data(&Value::Object(chunk).to_string())
    }

    fn start(&mut self, out: &mut Vec<String>) {
        if !self.started {
            self.started = true;
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
    }

    fn text(&mut self, text: Option<&str>, out: &mut Vec<String>) {
        if let Some(text) = text.filter(|t| !t.is_empty()) {
            out.push(self.chunk(json!({"content": text}), None));
        }
    }

    fn send_finish(&mut self, out: &mut Vec<String>) {
        if !self.finish_sent {
            self.finish_sent = true;
            let reason = self.finish_reason.unwrap_or("stop");
            out.push(self.chunk(json!({}), Some(reason)));
        }
    }

    fn close(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        self.start(&mut out);
        self.send_finish(&mut out);
        if self.include_usage {
            let writes = as_count(self.usage.get("cache_creation_input_tokens")).unwrap_or(0);
            let usage = openai_usage_json(self.usage().unwrap_or_default(), writes);
            let chunk = json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": [], "usage": usage,
            });
            out.push(sse::encode_data(&chunk.to_string()));
        }
        out.push(sse::DONE.to_owned());
        self.done = true;
        out
    }
}

pub(super) fn event(out: &mut Vec<String>, name: &str, data: Value) {
    out.push(sse::encode_event(name, &data.to_string()));
}

pub(super) fn block_delta(out: &mut Vec<String>, index: u64, delta: Value) {
    let data = json!({"type": "content_block_delta", "index": index, "delta": delta});
    event(out, "content_block_delta", data);
}
