//! A deterministic sweep of malformed input: realistic requests, responses and stream events
//! mutated at random (values replaced by other types, keys removed, arrays emptied), plus
//! wholly random JSON and bytes, fed to every public function. The only assertion is the
//! contract: no panic, and stream output that stays well-formed SSE.

use serde_json::{json, Map, Value};

use super::super::sse::{SseEvent, SseParser};
use super::*;

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const KEYS: &[&str] = &[
    "role",
    "content",
    "type",
    "text",
    "tool_calls",
    "function",
    "arguments",
    "name",
    "id",
    "messages",
    "choices",
    "delta",
    "usage",
    "index",
    "input",
    "source",
    "image_url",
    "url",
    "tool_call_id",
    "tool_use_id",
    "system",
    "tools",
    "tool_choice",
    "max_tokens",
    "stop",
    "message",
    "content_block",
    "partial_json",
    "stop_reason",
    "finish_reason",
    "error",
    "prompt_tokens",
    "input_tokens",
    "cache_read_input_tokens",
    "prompt_tokens_details",
];

const STRINGS: &[&str] = &[
    "",
    "user",
    "assistant",
    "tool",
    "system",
    "developer",
    "text",
    "image_url",
    "image",
    "tool_use",
    "tool_result",
    "function",
    "base64",
    "url",
    "file",
    "document",
    "thinking",
    "data:image/png;base64,AA",
    "data:,",
    "data:x;base64",
    "https://x/y.png",
    "{",
    "{}",
    "[]",
    "{\"a\":1}",
    "message_start",
    "content_block_start",
    "content_block_delta",
    "text_delta",
    "input_json_delta",
    "message_delta",
    "message_stop",
    "error",
    "ping",
    "[DONE]",
    "auto",
    "any",
    "none",
    "required",
    "end_turn",
    "tool_calls",
    "\u{0}",
    "é😀",
    "msg_",
    "chatcmpl-",
];

fn random_value(rng: &mut Rng, depth: u32) -> Value {
    let leaf = depth == 0 || rng.below(3) == 0;
    match rng.below(if leaf { 6 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(*rng.pick(&[0_i64, 1, -1, 7, i64::MAX, i64::MIN])),
        3 => json!(*rng.pick(&[0.5_f64, -2.5, 1e300, 3.0])),
        4 | 5 => json!(rng.pick(STRINGS)),
        6 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let mut obj = Map::new();
            for _ in 0..rng.below(5) {
                obj.insert(rng.pick(KEYS).to_string(), random_value(rng, depth - 1));
            }
            Value::Object(obj)
        }
    }
}

/// Replaces, removes or retypes one random node of `value`.
fn mutate(rng: &mut Rng, value: &mut Value) {
    let descend = rng.below(4) != 0;
    match value {
        Value::Object(obj) if descend && !obj.is_empty() => {
            let key = obj.keys().nth(rng.below(obj.len())).cloned().unwrap();
            match rng.below(5) {
                0 => {
                    obj.remove(&key);
                }
                _ => mutate(rng, obj.get_mut(&key).unwrap()),
            }
        }
        Value::Array(items) if descend && !items.is_empty() => match rng.below(6) {
            0 => items.clear(),
            1 => items.push(random_value(rng, 2)),
            _ => {
                let i = rng.below(items.len());
                mutate(rng, &mut items[i]);
            }
        },
        _ => *value = random_value(rng, 3),
    }
}

fn seeds() -> Vec<Value> {
    vec![
        json!({"model": "m", "max_tokens": 5, "temperature": 0.2, "stop": ["x"], "user": "u",
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}}, "parallel_tool_calls": false,
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": [{"type": "text", "text": "t"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "c", "content": "r"}]}),
        json!({"model": "m", "max_tokens": 5, "system": [{"type": "text", "text": "s"}],
            "stop_sequences": ["x"], "stream": true, "metadata": {"user_id": "u"},
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "t"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}]},
                {"role": "assistant", "content": [{"type": "text", "text": "a"},
                    {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                    "content": [{"type": "text", "text": "r"}]}]}]}),
        json!({"id": "msg_1", "type": "message", "content": [{"type": "text", "text": "x"},
            {"type": "tool_use", "id": "t", "name": "f", "input": {}}], "stop_reason": "tool_use",
            "usage": {"input_tokens": 1, "output_tokens": 2, "cache_read_input_tokens": 3}}),
        json!({"id": "chatcmpl-1", "choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": "x", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 1}}}),
        json!({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 3}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"a"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "o"}}),
        json!({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"content": "x", "tool_calls": [
            {"index": 0, "id": "c", "function": {"name": "f", "arguments": "{\"a"}}]}, "finish_reason": null}]}),
        json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}),
        json!({"error": {"message": "m", "type": "requests"}}),
    ]
}

/// Every public function on one value; stream output must parse back as complete SSE frames.
fn exercise(
    value: &Value,
    name: Option<&str>,
    a2o: &mut AnthropicToOpenAiStream,
    o2a: &mut OpenAiToAnthropicStream,
) {
    let _ = openai_to_anthropic_request(value, "u");
    let _ = anthropic_to_openai_request(value, "u");
    let _ = anthropic_to_openai_response(value, "m");
    let _ = openai_to_anthropic_response(value, "m");
    let _ = openai_usage(value);
    let _ = anthropic_usage(value);
    let bytes = serde_json::to_vec(value).unwrap();
    let _ = error_message(&bytes);
    let _ = error_message(&bytes[..bytes.len() / 2]);
    let event = SseEvent {
        event: name.map(str::to_owned),
        data: value.to_string(),
    };
    for frame in a2o.on_event(&event).into_iter().chain(o2a.on_event(&event)) {
        let mut parser = SseParser::new();
        assert_eq!(parser.push(frame.as_bytes()).unwrap().len(), 1, "{frame}");
        assert!(parser.finish().is_empty());
    }
}

#[test]
fn mutated_and_random_input_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let seeds = seeds();
    let mut a2o = AnthropicToOpenAiStream::new("m", true);
    let mut o2a = OpenAiToAnthropicStream::new("m");
    for round in 0..3000 {
        let mut value = if round % 5 == 0 {
            random_value(&mut rng, 4)
        } else {
            rng.pick(&seeds).clone()
        };
        for _ in 0..=rng.below(3) {
            mutate(&mut rng, &mut value);
        }
        let name = rng
            .pick(&[None, Some("message_start"), Some("error"), Some("x")])
            .to_owned();
        exercise(&value, name, &mut a2o, &mut o2a);
        if round % 40 == 39 {
            // Close and start again, so state machines are exercised from the start too.
            let _ = (a2o.finish(), o2a.finish(), a2o.usage(), o2a.usage());
            a2o = AnthropicToOpenAiStream::new("m", round % 80 == 39);
            o2a = OpenAiToAnthropicStream::new("m");
        }
    }
}

#[test]
fn random_bytes_never_panic_the_parser_or_error_message() {
    let mut rng = Rng(42);
    let alphabet = b"data: event:\r\n{}[]\":,x\xff\xfe\xc3\xa9";
    for _ in 0..500 {
        let bytes: Vec<u8> = (0..rng.below(200)).map(|_| *rng.pick(alphabet)).collect();
        let _ = error_message(&bytes);
        let mut parser = SseParser::with_limit(64);
        let mut a2o = AnthropicToOpenAiStream::new("m", true);
        let mut o2a = OpenAiToAnthropicStream::new("m");
        for piece in bytes.chunks(1 + rng.below(7)) {
            if let Ok(events) = parser.push(piece) {
                for event in &events {
                    let _ = (a2o.on_event(event), o2a.on_event(event));
                }
            }
        }
        for event in parser.finish() {
            let _ = (a2o.on_event(&event), o2a.on_event(&event));
        }
        let closing = a2o.finish();
        assert!(
            closing.is_empty()
                || closing
                    .last()
                    .is_some_and(|f| f == "data: [DONE]\n\n" || f.contains("\"error\""))
        );
        let _ = o2a.finish();
    }
}
