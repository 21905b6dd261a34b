//! Tests of the stream translators, fed realistic upstream byte streams through `SseParser`
//! split at every awkward boundary (down to one byte at a time). The output is checked by
//! accumulators as strict as the official SDKs': the OpenAI chunk accumulator and an Anthropic
//! accumulator that rejects any event outside a properly started block.

use serde_json::{json, Value};

use super::super::sse::{SseEvent, SseParser};
use super::*;

/// Feeds `input` in pieces of `size` bytes through the parser and `on_event`, then finishes.
fn drive<T>(
    input: &[u8],
    size: usize,
    translator: &mut T,
    on_event: fn(&mut T, &SseEvent) -> Vec<String>,
    finish: fn(&mut T) -> Vec<String>,
) -> String {
    let mut parser = SseParser::new();
    let mut out = String::new();
    for piece in input.chunks(size.max(1)) {
        for event in parser.push(piece).unwrap() {
            out.extend(on_event(translator, &event));
        }
    }
    for event in parser.finish() {
        out.extend(on_event(translator, &event));
    }
    out.extend(finish(translator));
    out
}

fn a2o(input: &[u8], size: usize, include_usage: bool) -> (String, Option<Usage>) {
    let mut t = AnthropicToOpenAiStream::new("client-model", include_usage);
    let out = drive(
        input,
        size,
        &mut t,
        AnthropicToOpenAiStream::on_event,
        AnthropicToOpenAiStream::finish,
    );
    (out, t.usage())
}

fn o2a(input: &[u8], size: usize) -> (String, Option<Usage>) {
    let mut t = OpenAiToAnthropicStream::new("client-model");
    let out = drive(
        input,
        size,
        &mut t,
        OpenAiToAnthropicStream::on_event,
        OpenAiToAnthropicStream::finish,
    );
    (out, t.usage())
}

fn events_of(frames: &str) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut events = parser.push(frames.as_bytes()).unwrap();
    assert!(
        parser.finish().is_empty(),
        "frames must end with a blank line"
    );
    events.extend(parser.finish());
    events
}

/// Accumulates OpenAI chunks like the OpenAI SDK: content, tool calls by index, finish reason,
/// usage. Checks the shared id/model/object, that `[DONE]` comes once and last.
fn openai_accumulate(frames: &str) -> Value {
    let events = events_of(frames);
    let (last, chunks) = events.split_last().expect("no frames");
    assert_eq!(last.data, "[DONE]");
    let mut content = String::new();
    let mut calls: Vec<Value> = Vec::new();
    let mut finish = Value::Null;
    let mut usage = Value::Null;
    let mut id = None;
    for event in chunks {
        assert_eq!(event.event, None);
        let chunk: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "client-model");
        let this_id = chunk["id"].as_str().unwrap().to_owned();
        assert!(this_id.starts_with("chatcmpl-"));
        assert_eq!(id.get_or_insert(this_id.clone()), &this_id);
        if !chunk["usage"].is_null() {
            assert_eq!(chunk["choices"], json!([]));
            usage = chunk["usage"].clone();
            continue;
        }
        let choice = &chunk["choices"][0];
        assert!(finish.is_null(), "a chunk after the finish chunk: {chunk}");
        finish = choice["finish_reason"].clone();
        let delta = &choice["delta"];
        content.push_str(delta["content"].as_str().unwrap_or(""));
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap() as usize;
            if index == calls.len() {
                assert!(call["id"].is_string() && call["function"]["name"].is_string());
                calls.push(
                    json!({"id": call["id"], "name": call["function"]["name"], "arguments": ""}),
                );
            }
            let slot = calls.get_mut(index).expect("tool call index skipped");
            let args = format!(
                "{}{}",
                slot["arguments"].as_str().unwrap(),
                call["function"]["arguments"].as_str().unwrap_or("")
            );
            slot["arguments"] = json!(args);
        }
    }
    json!({"content": content, "tool_calls": calls, "finish_reason": finish, "usage": usage})
}

/// Accumulates Anthropic events like the official SDKs, but stricter: every delta and stop
/// must address the one open block, blocks start at consecutive indices, `message_stop` last.
fn anthropic_accumulate(frames: &str) -> Value {
    let events = events_of(frames);
    let mut message = Value::Null;
    let mut open: Option<usize> = None;
    let mut stopped = false;
    let mut json_bufs: Vec<String> = Vec::new();
    for event in events {
        assert!(!stopped, "event after message_stop: {event:?}");
        let data: Value = serde_json::from_str(&event.data).unwrap();
        let kind = data["type"].as_str().unwrap();
        assert_eq!(
            event.event.as_deref(),
            Some(kind),
            "event name and type differ"
        );
        if message.is_null() {
            assert!(
                kind == "message_start" || kind == "error",
                "{kind} before message_start"
            );
        }
        match kind {
            "message_start" => {
                assert!(message.is_null());
                message = data["message"].clone();
                assert_eq!(message["content"], json!([]));
                assert_eq!(message["type"], "message");
                assert!(message["usage"]["input_tokens"].is_u64());
            }
            "ping" => {}
            "content_block_start" => {
                assert_eq!(open, None, "a block started while another is open");
                let index = data["index"].as_u64().unwrap() as usize;
                let content = message["content"].as_array_mut().unwrap();
                assert_eq!(index, content.len());
                content.push(data["content_block"].clone());
                json_bufs.push(String::new());
                open = Some(index);
            }
            "content_block_delta" => {
                let index = data["index"].as_u64().unwrap() as usize;
                assert_eq!(open, Some(index), "delta outside its block");
                let block = &mut message["content"][index];
                match data["delta"]["type"].as_str().unwrap() {
                    "text_delta" => {
                        assert_eq!(block["type"], "text");
                        let text = format!(
                            "{}{}",
                            block["text"].as_str().unwrap(),
                            data["delta"]["text"].as_str().unwrap()
                        );
                        block["text"] = json!(text);
                    }
                    "input_json_delta" => {
                        assert_eq!(block["type"], "tool_use");
                        json_bufs[index].push_str(data["delta"]["partial_json"].as_str().unwrap());
                    }
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                let index = data["index"].as_u64().unwrap() as usize;
                assert_eq!(open, Some(index), "stop of a block that is not open");
                if !json_bufs[index].is_empty() {
                    message["content"][index]["input"] =
                        serde_json::from_str(&json_bufs[index]).unwrap();
                }
                open = None;
            }
            "message_delta" => {
                assert_eq!(open, None, "message_delta with an open block");
                message["stop_reason"] = data["delta"]["stop_reason"].clone();
                message["stop_sequence"] = data["delta"]["stop_sequence"].clone();
                assert!(data["usage"]["output_tokens"].is_u64());
                for (key, value) in data["usage"].as_object().unwrap() {
                    message["usage"][key] = value.clone();
                }
            }
            "message_stop" => {
                assert!(
                    !message["stop_reason"].is_null(),
                    "message_stop without message_delta"
                );
                stopped = true;
            }
            "error" => return json!({"error": data["error"]}),
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(stopped, "stream ended without message_stop");
    message
}

const ANTHROPIC_TOOLS: &str = concat!(
    "event: message_start\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XYZ\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":1000,\"output_tokens\":2}}}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: ping\n",
    "data: {\"type\": \"ping\"}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Checking h\u{e9}re \u{1f600}\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_A\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Par\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"is\\\"}\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_B\",\"name\":\"get_time\",\"input\":{}}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"tz\\\":\\\"CET\\\"}\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
    "event: message_delta\n",
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n",
    "event: message_stop\n",
    "data: {\"type\":\"message_stop\"}\n\n",
);

#[test]
fn anthropic_to_openai_text_and_two_tools_at_every_split() {
    let (whole, usage) = a2o(ANTHROPIC_TOOLS.as_bytes(), usize::MAX, true);
    for size in (1..=64).chain([97, 301, 1000]) {
        assert_eq!(
            without_created(&a2o(ANTHROPIC_TOOLS.as_bytes(), size, true).0),
            without_created(&whole),
            "size {size}"
        );
    }
    let crlf = ANTHROPIC_TOOLS.replace('\n', "\r\n");
    assert_eq!(
        without_created(&a2o(crlf.as_bytes(), 7, true).0),
        without_created(&whole)
    );
    assert_eq!(
        usage,
        Some(Usage {
            input_tokens: 1472,
            output_tokens: 89,
            cached_input_tokens: 1000
        })
    );
    let acc = openai_accumulate(&whole);
    assert_eq!(acc["content"], "Checking h\u{e9}re \u{1f600}");
    assert_eq!(acc["finish_reason"], "tool_calls");
    assert_eq!(acc["tool_calls"][0]["id"], "toolu_A");
    assert_eq!(acc["tool_calls"][0]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(acc["tool_calls"][0]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    assert_eq!(acc["tool_calls"][1]["id"], "toolu_B");
    assert_eq!(acc["tool_calls"][1]["arguments"], "{\"tz\":\"CET\"}");
    assert_eq!(
        acc["usage"],
        json!({"prompt_tokens": 1472, "completion_tokens": 89, "total_tokens": 1561,
            "prompt_tokens_details": {"cached_tokens": 1000}})
    );
    let events = events_of(&whole);
    let first: Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!(first["id"], "chatcmpl-01XYZ");
    assert_eq!(
        first["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert!(first.as_object().unwrap().contains_key("usage"));
    let first_tool: Value = serde_json::from_str(&events[2].data).unwrap();
    assert_eq!(
        first_tool["choices"][0]["delta"]["tool_calls"],
        json!([{"index": 0, "id": "toolu_A", "type": "function", "function": {"name": "get_weather", "arguments": ""}}])
    );
    assert_eq!(whole.matches("[DONE]").count(), 1);
}

#[test]
fn anthropic_to_openai_without_usage_and_ping_only() {
    let (out, _) = a2o(ANTHROPIC_TOOLS.as_bytes(), 5, false);
    let acc = openai_accumulate(&out);
    assert_eq!(acc["usage"], Value::Null);
    assert!(!out.contains("\"usage\""));
    let mut t = AnthropicToOpenAiStream::new("m", false);
    assert!(t
        .on_event(&SseEvent {
            event: Some("ping".into()),
            data: "{\"type\":\"ping\"}".into()
        })
        .is_empty());
}

#[test]
fn anthropic_to_openai_upstream_cut_before_stop_reason_is_an_error() {
    // Cut before `message_delta` (no stop_reason yet): the answer may be truncated.
    let cut = ANTHROPIC_TOOLS.find("event: message_delta").unwrap();
    let (out, _) = a2o(&ANTHROPIC_TOOLS.as_bytes()[..cut], 3, true);
    assert_ends_with_openai_error(&out);
    // Cut after the stop_reason, before `message_stop`: complete, closed normally.
    let stop_at = ANTHROPIC_TOOLS.find("event: message_stop").unwrap();
    let (out, _) = a2o(&ANTHROPIC_TOOLS.as_bytes()[..stop_at], 3, true);
    let acc = openai_accumulate(&out);
    assert_eq!(acc["finish_reason"], "tool_calls");
    assert_eq!(acc["usage"]["prompt_tokens"], 1472);
    // Nothing at all from the upstream: an error, not an empty success.
    let (out, usage) = a2o(b"", 1, true);
    assert_ends_with_openai_error(&out);
    assert_eq!(usage, None);
    // finish() twice, or events after the end, add nothing.
    let mut t = AnthropicToOpenAiStream::new("m", false);
    assert_eq!(t.finish().len(), 1);
    assert!(t.finish().is_empty());
    let late = SseEvent { event: None, data: "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}".into() };
    assert!(t.on_event(&late).is_empty());
}

/// The frames with every `"created":<unix seconds>` blanked: runs that straddle a second differ
/// only there.
fn without_created(frames: &str) -> String {
    let mut out = String::with_capacity(frames.len());
    let mut rest = frames;
    while let Some(at) = rest.find("\"created\":") {
        let (head, tail) = rest.split_at(at + "\"created\":".len());
        out.push_str(head);
        rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

/// The last frame is an OpenAI error object and no `[DONE]` follows it.
fn assert_ends_with_openai_error(frames: &str) {
    let events = events_of(frames);
    let last = events.last().expect("no frames");
    let error: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(error["error"]["code"], Value::Null, "{frames}");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("The upstream stream failed"));
    assert!(events.iter().all(|e| e.data != "[DONE]"), "{frames}");
}

/// The last event is an Anthropic `error` event.
fn assert_ends_with_anthropic_error(frames: &str) {
    let events = events_of(frames);
    let last = events.last().expect("no frames");
    assert_eq!(last.event.as_deref(), Some("error"), "{frames}");
    let error: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(error["type"], "error");
    assert!(events
        .iter()
        .all(|e| e.event.as_deref() != Some("message_stop")));
}

#[test]
fn anthropic_to_openai_error_event() {
    let input = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
        "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n",
    );
    let (out, _) = a2o(input.as_bytes(), 4, true);
    let events = events_of(&out);
    assert_eq!(events.len(), 2);
    let error: Value = serde_json::from_str(&events[1].data).unwrap();
    assert_eq!(
        error,
        json!({"error": {"message": "Overloaded", "type": "server_error", "param": null, "code": null}})
    );
    assert!(!out.contains("[DONE]"));
    let rate = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow\"}}\n\n";
    let (out, _) = a2o(rate.as_bytes(), 1, false);
    assert!(out.contains("\"type\":\"rate_limit_exceeded\""), "{out}");
}

#[test]
fn anthropic_to_openai_stop_sequence_and_max_tokens() {
    for (stop, finish) in [
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
    ] {
        let input = format!(
            "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_1\"}}}}\n\nevent: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"{stop}\",\"stop_sequence\":\"END\"}},\"usage\":{{\"output_tokens\":4}}}}\n\nevent: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
        );
        let (out, usage) = a2o(input.as_bytes(), 2, false);
        assert_eq!(openai_accumulate(&out)["finish_reason"], finish);
        assert_eq!(
            usage,
            Some(Usage {
                input_tokens: 0,
                output_tokens: 4,
                cached_input_tokens: 0
            })
        );
    }
}

fn openai_chunk(delta: Value, finish: Value) -> String {
    let chunk = json!({"id": "chatcmpl-Q1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
        "system_fingerprint": "fp", "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}], "usage": null});
    format!("data: {chunk}\n\n")
}

fn openai_tools_stream() -> String {
    let mut s = String::from(": OPENROUTER PROCESSING\n\n");
    s += &openai_chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        Value::Null,
    );
    s += &openai_chunk(json!({"content": "Let me "}), Value::Null);
    s += &openai_chunk(json!({"content": "check."}), Value::Null);
    s += &openai_chunk(
        json!({"tool_calls": [{"index": 0, "id": "call_A", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
        Value::Null,
    );
    s += &openai_chunk(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"ci"}}]}),
        Value::Null,
    );
    s += &openai_chunk(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": "ty\": \"Paris\"}"}}]}),
        Value::Null,
    );
    s += &openai_chunk(
        json!({"tool_calls": [{"index": 1, "id": "call_B", "type": "function", "function": {"name": "get_time", "arguments": ""}}]}),
        Value::Null,
    );
    s += &openai_chunk(
        json!({"tool_calls": [{"index": 1, "function": {"arguments": "{\"tz\":\"CET\"}"}}]}),
        Value::Null,
    );
    s += &openai_chunk(json!({}), json!("tool_calls"));
    s += "data: {\"id\":\"chatcmpl-Q1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":1200,\"completion_tokens\":40,\"total_tokens\":1240,\"prompt_tokens_details\":{\"cached_tokens\":1024,\"audio_tokens\":0}}}\n\n";
    s += "data: [DONE]\n\n";
    s
}

#[test]
fn openai_to_anthropic_text_and_two_tools_at_every_split() {
    let input = openai_tools_stream();
    let (whole, usage) = o2a(input.as_bytes(), usize::MAX);
    for size in (1..=64).chain([97, 301, 1000]) {
        assert_eq!(o2a(input.as_bytes(), size).0, whole, "size {size}");
    }
    assert_eq!(
        usage,
        Some(Usage {
            input_tokens: 1200,
            output_tokens: 40,
            cached_input_tokens: 1024
        })
    );
    let message = anthropic_accumulate(&whole);
    assert_eq!(message["id"], "msg_Q1");
    assert_eq!(message["model"], "client-model");
    assert_eq!(
        message["content"],
        json!([
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "call_A", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_B", "name": "get_time", "input": {"tz": "CET"}},
        ])
    );
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["stop_sequence"], Value::Null);
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 176, "output_tokens": 40, "cache_read_input_tokens": 1024,
            "cache_creation_input_tokens": 0})
    );
    let events = events_of(&whole);
    let names: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(
        &names[..3],
        ["message_start", "ping", "content_block_start"]
    );
    assert_eq!(&names[names.len() - 2..], ["message_delta", "message_stop"]);
}

#[test]
fn openai_to_anthropic_without_done_after_finish_reason_closes_in_finish() {
    let input = openai_tools_stream();
    let cut = input.find("data: {\"id\":\"chatcmpl-Q1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[]").unwrap();
    let (out, usage) = o2a(&input.as_bytes()[..cut], 9);
    assert_eq!(usage, None);
    let message = anthropic_accumulate(&out);
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 0, "output_tokens": 0})
    );
    // Cut in the middle of the text (no finish_reason yet): an error event, not `end_turn`.
    let mid = input.find("check.").unwrap();
    assert_ends_with_anthropic_error(&o2a(&input.as_bytes()[..mid], 5).0);
    // Nothing at all: an error too.
    assert_ends_with_anthropic_error(&o2a(b"", 1).0);
    let mut t = OpenAiToAnthropicStream::new("m");
    assert!(!t.finish().is_empty());
    assert!(t.finish().is_empty());
    assert!(t
        .on_event(&SseEvent {
            event: None,
            data: "[DONE]".into()
        })
        .is_empty());
}

#[test]
fn openai_to_anthropic_finish_reasons_and_tool_without_text() {
    for (finish, stop) in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
    ] {
        let input = openai_chunk(json!({"content": "x"}), json!(finish)) + "data: [DONE]\n\n";
        assert_eq!(
            anthropic_accumulate(&o2a(input.as_bytes(), 3).0)["stop_reason"],
            stop
        );
    }
    // A tool call straight away, with arguments in the first chunk and "stop" as the reason.
    let input = openai_chunk(
        json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}),
        Value::Null,
    ) + &openai_chunk(json!({}), json!("stop"))
        + "data: [DONE]\n\n";
    let message = anthropic_accumulate(&o2a(input.as_bytes(), 1).0);
    assert_eq!(
        message["content"],
        json!([{"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}}])
    );
    assert_eq!(message["stop_reason"], "tool_use");
}

#[test]
fn openai_to_anthropic_same_index_new_id_is_a_new_tool() {
    // Some OpenAI-compatible servers send every complete tool call at index 0.
    let input = openai_chunk(
        json!({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}]}),
        Value::Null,
    ) + &openai_chunk(
        json!({"tool_calls": [{"index": 0, "id": "c2", "function": {"name": "g", "arguments": "{\"b\":2}"}}]}),
        Value::Null,
    ) + &openai_chunk(json!({}), json!("tool_calls"));
    let message = anthropic_accumulate(&o2a(input.as_bytes(), 2).0);
    assert_eq!(
        message["content"],
        json!([
            {"type": "tool_use", "id": "c1", "name": "f", "input": {}},
            {"type": "tool_use", "id": "c2", "name": "g", "input": {"b": 2}},
        ])
    );
}

#[test]
fn openai_to_anthropic_error_chunk() {
    let input = openai_chunk(json!({"content": "partial"}), Value::Null)
        + "data: {\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}\n\n"
        + &openai_chunk(json!({"content": "ignored"}), Value::Null);
    let (out, _) = o2a(input.as_bytes(), 6);
    let events = events_of(&out);
    let last = events.last().unwrap();
    assert_eq!(last.event.as_deref(), Some("error"));
    let data: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(
        data,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached"}})
    );
    assert!(!out.contains("ignored") && !out.contains("message_stop"));
}

#[test]
fn openai_to_anthropic_skips_garbage_and_other_choices() {
    let input = String::from("data: 42\n\nevent: weird\ndata: {}\n\n")
        + &openai_chunk(json!({"content": "a"}), Value::Null)
        + "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"other choice\"}}]}\n\n"
        + "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":null,\"tool_calls\":\"bad\"}}]}\n\n"
        + "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"hmm\",\"content\":\"b\"}}]}\n\n"
        + "data: [DONE]\n\n";
    let message = anthropic_accumulate(&o2a(input.as_bytes(), 4).0);
    assert_eq!(message["content"], json!([{"type": "text", "text": "ab"}]));
    // A chunk that is not JSON breaks the stream: error event, nothing after it.
    let broken = openai_chunk(json!({"content": "a"}), Value::Null) + "data: not json\n\n" + &input;
    assert_ends_with_anthropic_error(&o2a(broken.as_bytes(), 4).0);
}

#[test]
fn anthropic_to_openai_skips_garbage() {
    let input = concat!(
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":5,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"ok\"}}\n\n",
        "event: something_new\ndata: {\"type\":\"something_new\"}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let input = input.replace(
        "event: message_stop",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\nevent: message_stop",
    );
    let acc = openai_accumulate(&a2o(input.as_bytes(), 3, false).0);
    assert_eq!(acc["content"], "ok");
    assert_eq!(acc["tool_calls"], json!([]));
    // An event that is not JSON breaks the stream: error frame, no [DONE].
    let broken = format!("data: not json\n\n{input}");
    assert_ends_with_openai_error(&a2o(broken.as_bytes(), 3, false).0);
}

/// Writes the translators' outputs for the fixtures to `$KEYGATE_SDK_FIXTURES` (when set), for
/// a manual check with the official Python SDKs' accumulators.
#[test]
fn dump_fixtures_for_sdk_check() {
    let Ok(dir) = std::env::var("KEYGATE_SDK_FIXTURES") else {
        return;
    };
    let dir = std::path::Path::new(&dir);
    std::fs::write(
        dir.join("o2a_tools.sse"),
        o2a(openai_tools_stream().as_bytes(), 3).0,
    )
    .unwrap();
    std::fs::write(dir.join("o2a_empty.sse"), o2a(b"", 1).0).unwrap();
    std::fs::write(
        dir.join("a2o_tools.sse"),
        a2o(ANTHROPIC_TOOLS.as_bytes(), 3, true).0,
    )
    .unwrap();
    std::fs::write(
        dir.join("a2o_plain.sse"),
        a2o(ANTHROPIC_TOOLS.as_bytes(), 3, false).0,
    )
    .unwrap();
}
