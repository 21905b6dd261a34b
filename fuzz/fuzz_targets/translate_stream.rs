//! The stream translators (Anthropic events -> OpenAI chunks and back) fed the events that
//! `SseParser` finds in arbitrary bytes, then finished.
//!
//! Invariants: no panic; every frame is one well-formed SSE event; OpenAI-side frames are
//! unnamed JSON objects (chunks or an error) or `[DONE]`; Anthropic-side frames are JSON objects
//! whose `type` is the event name, starting with `message_start` (or an `error`); nothing
//! follows `[DONE]`, `message_stop` or an error, and a finished stream ends with one of them.

#![no_main]

use keygate_core::providers::sse::{SseEvent, SseParser};
use keygate_core::providers::translate::{AnthropicToOpenAiStream, OpenAiToAnthropicStream};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The single event a frame encodes.
fn reparse(frame: &str) -> SseEvent {
    let mut parser = SseParser::new();
    let mut events = parser.push(frame.as_bytes()).unwrap_or_default();
    assert!(parser.finish().is_empty(), "unterminated frame {frame:?}");
    assert_eq!(events.len(), 1, "{frame:?}");
    events.remove(0)
}

/// The OpenAI side: what a caller of `/v1/chat/completions` reads.
#[derive(Default)]
struct OpenAiSide {
    ended: bool,
}

impl OpenAiSide {
    fn take(&mut self, frames: Vec<String>) {
        for frame in frames {
            assert!(!self.ended, "a frame after the end: {frame:?}");
            let event = reparse(&frame);
            assert_eq!(event.event, None, "{frame:?}");
            if event.data == "[DONE]" {
                self.ended = true;
                continue;
            }
            let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            if data.get("error").is_some() {
                self.ended = true;
            } else {
                let object = data.get("object").and_then(Value::as_str);
                assert_eq!(object, Some("chat.completion.chunk"), "{frame:?}");
            }
        }
    }
}

/// The Anthropic side: what a caller of `/v1/messages` reads.
#[derive(Default)]
struct AnthropicSide {
    started: bool,
    ended: bool,
}

impl AnthropicSide {
    fn take(&mut self, frames: Vec<String>) {
        for frame in frames {
            assert!(!self.ended, "a frame after the end: {frame:?}");
            let event = reparse(&frame);
            let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            let kind = data.get("type").and_then(Value::as_str);
            assert!(kind.is_some(), "{frame:?}");
            assert_eq!(event.event.as_deref(), kind, "{frame:?}");
            match kind {
                Some("error") | Some("message_stop") => self.ended = true,
                Some("message_start") => {
                    assert!(!self.started, "a second message_start");
                    self.started = true;
                }
                _ => assert!(self.started, "{frame:?} before message_start"),
            }
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let include_usage = input.first().is_some_and(|b| b & 1 == 1);
    let mut parser = SseParser::new();
    let mut events = parser.push(input).unwrap_or_default();
    events.extend(parser.finish());

    let mut to_openai = AnthropicToOpenAiStream::new("m", include_usage);
    let mut to_anthropic = OpenAiToAnthropicStream::new("m");
    let (mut openai, mut anthropic) = (OpenAiSide::default(), AnthropicSide::default());
    for event in &events {
        openai.take(to_openai.on_event(event));
        anthropic.take(to_anthropic.on_event(event));
    }
    openai.take(to_openai.finish());
    anthropic.take(to_anthropic.finish());
    assert!(
        openai.ended && anthropic.ended,
        "a finished stream must end"
    );

    // Closed translators stay closed.
    for event in events.iter().take(3) {
        assert!(to_openai.on_event(event).is_empty());
        assert!(to_anthropic.on_event(event).is_empty());
    }
    assert!(to_openai.finish().is_empty() && to_anthropic.finish().is_empty());
    let _ = (to_openai.usage(), to_anthropic.usage());
});
