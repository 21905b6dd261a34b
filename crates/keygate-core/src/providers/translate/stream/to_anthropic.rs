//! Streaming translation, OpenAI chat completion chunks -> Anthropic Messages events.
//!
//! The translator opens a `text` block at the first content, a `tool_use` block per tool call
//! (closing the previous block), forwards argument fragments as `input_json_delta`s, and at
//! `[DONE]` (or `finish`) closes the open block and sends `message_delta` (stop reason and
//! usage from the upstream's usage chunk) and `message_stop`: the order the Anthropic SDKs'
//! stream accumulators require. Unreadable chunks are skipped. It does no I/O.

use serde_json::{json, Value};

use super::super::super::sse::{self, SseEvent};
use super::super::response::{
    anthropic_error_body, anthropic_usage_json, cache_writes, openai_usage, status_of_openai_error,
    stop_reason, Usage,
};
use super::super::{anthropic_id, as_count, str_at, unique_suffix};
use super::{block_delta, event};

/// The Anthropic content block currently open on the caller's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Text(u64),
    Tool(u64),
}

/// A tool call seen in the OpenAI stream and the Anthropic block it became.
#[derive(Debug)]
struct ToolSlot {
    openai_index: u64,
    id: String,
    block: u64,
}

/// OpenAI chat completion chunks -> Anthropic Messages stream.
#[derive(Debug)]
pub struct OpenAiToAnthropicStream {
    model: String,
    started: bool,
    done: bool,
    next_block: u64,
    open: Open,
    tools: Vec<ToolSlot>,
    finish_reason: Option<&'static str>,
    usage: Option<Usage>,
    cache_writes: u64,
}

impl OpenAiToAnthropicStream {
    /// A translator for a caller that asked for `model`.
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            started: false,
            done: false,
            next_block: 0,
            open: Open::None,
            tools: Vec::new(),
            finish_reason: None,
            usage: None,
            cache_writes: 0,
        }
    }

    /// Frames for one upstream chunk; `[DONE]` closes the message.
    pub fn on_event(&mut self, ev: &SseEvent) -> Vec<String> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        if ev.data.trim() == "[DONE]" {
            return self.close();
        }
        let Ok(chunk) = serde_json::from_str::<Value>(&ev.data) else {
            return self.fail("the upstream sent a chunk that is not JSON");
        };
        if !chunk.is_object() {
            return out;
        }
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            let status = status_of_openai_error(error);
            let message = str_at(error, "message").or(error.as_str());
            let message = message.unwrap_or("The upstream stream failed.");
            let body = anthropic_error_body(status, message).to_string();
            out.push(sse::encode_event("error", &body));
            self.done = true;
            return out;
        }
        self.start(str_at(&chunk, "id"), &mut out);
        if let Some(usage) = openai_usage(&chunk) {
            self.usage = Some(usage);
            self.cache_writes = cache_writes(&chunk);
        }
        let choices = chunk.get("choices").and_then(Value::as_array);
        let Some(choice) = choices.and_then(|c| {
            c.iter()
                .find(|c| as_count(c.get("index")).unwrap_or(0) == 0)
        }) else {
            return out;
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        let text = str_at(delta, "content").filter(|t| !t.is_empty());
        if let Some(text) = text.or_else(|| str_at(delta, "refusal").filter(|t| !t.is_empty())) {
            self.text(text, &mut out);
        }
        let calls = delta.get("tool_calls").and_then(Value::as_array);
        for (position, call) in calls.into_iter().flatten().enumerate() {
            self.tool_call(call, position as u64, &mut out);
        }
        if let Some(reason) = str_at(choice, "finish_reason") {
            self.finish_reason = Some(stop_reason(reason));
        }
        out
    }

    /// Closing events if the upstream ended without `[DONE]` after its `finish_reason`: the
    /// open block's stop, `message_delta` and `message_stop`. Without a `finish_reason` the
    /// answer may be truncated, so the stream ends with an `error` event instead.
    pub fn finish(&mut self) -> Vec<String> {
        if self.finish_reason.is_some() {
            self.close()
        } else {
            self.fail("the upstream stream ended before the message was complete")
        }
    }

    /// Ends the caller's stream with an `error` event.
    fn fail(&mut self, reason: &str) -> Vec<String> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        let message = format!("The upstream stream failed: {reason}.");
        let mut out = Vec::new();
        event(&mut out, "error", anthropic_error_body(502, &message));
        out
    }

    /// Usage reported by the upstream (its usage chunk), if any.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn start(&mut self, upstream_id: Option<&str>, out: &mut Vec<String>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({
            "id": anthropic_id(upstream_id), "type": "message", "role": "assistant",
            "content": [], "model": self.model, "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        });
        event(
            out,
            "message_start",
            json!({"type": "message_start", "message": message}),
        );
        event(out, "ping", json!({"type": "ping"}));
    }

    fn open_block(&mut self, block: Value, out: &mut Vec<String>) -> u64 {
        self.close_block(out);
        let index = self.next_block;
        self.next_block += 1;
        let start = json!({"type": "content_block_start", "index": index, "content_block": block});
        event(out, "content_block_start", start);
        index
    }

    fn close_block(&mut self, out: &mut Vec<String>) {
        if let Open::Text(index) | Open::Tool(index) = self.open {
            event(
                out,
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            );
        }
        self.open = Open::None;
    }

    fn text(&mut self, text: &str, out: &mut Vec<String>) {
        let index = match self.open {
            Open::Text(index) => index,
            _ => {
                let index = self.open_block(json!({"type": "text", "text": ""}), out);
                self.open = Open::Text(index);
                index
            }
        };
        let delta = json!({"type": "text_delta", "text": text});
        block_delta(out, index, delta);
    }

    /// One `tool_calls` delta entry: a new index (or a new id at a known index) opens a
    /// `tool_use` block; argument fragments go to that call's block.
    fn tool_call(&mut self, call: &Value, position: u64, out: &mut Vec<String>) {
        let index = as_count(call.get("index")).unwrap_or(position);
        let id = str_at(call, "id").filter(|id| !id.is_empty());
        let function = call.get("function").unwrap_or(&Value::Null);
        let known = self.tools.iter().find(|t| t.openai_index == index);
        let block = match known {
            Some(slot) if id.is_none_or(|id| id == slot.id) => slot.block,
            _ => {
                let id = id.map_or_else(|| format!("toolu_{}", unique_suffix()), str::to_owned);
                let name = str_at(function, "name").unwrap_or_default();
                let start = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
                let block = self.open_block(start, out);
                self.open = Open::Tool(block);
                self.tools.retain(|t| t.openai_index != index);
                self.tools.push(ToolSlot {
                    openai_index: index,
                    id,
                    block,
                });
                block
            }
        };
        if let Some(arguments) = str_at(function, "arguments").filter(|a| !a.is_empty()) {
            let delta = json!({"type": "input_json_delta", "partial_json": arguments});
            block_delta(out, block, delta);
        }
    }

    fn close(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        self.start(None, &mut out);
        self.close_block(&mut out);
        let reason = match self.finish_reason {
            Some("end_turn") | None if !self.tools.is_empty() => "tool_use",
            Some(reason) => reason,
            None => "end_turn",
        };
        let usage_json = match self.usage {
            Some(usage) => anthropic_usage_json(usage, self.cache_writes),
            None => json!({"output_tokens": 0}),
        };
        let delta = json!({"stop_reason": reason, "stop_sequence": null});
        event(
            &mut out,
            "message_delta",
            json!({"type": "message_delta", "delta": delta, "usage": usage_json}),
        );
        event(&mut out, "message_stop", json!({"type": "message_stop"}));
        self.done = true;
        out
    }
}
