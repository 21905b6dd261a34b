//! Watching a passed-through stream for the usage it reports, so a virtual key is charged what
//! the upstream says: OpenAI's final usage chunk (asked for with `stream_options.include_usage`;
//! removed again when the caller did not ask for it), Anthropic's `message_start` and
//! `message_delta` usage. The bytes a caller receives are otherwise the upstream's own.
//!
//! Most events report no usage (OpenAI's say `"usage":null`): a chunk's whole events up to the
//! first one that may report usage pass without being parsed, found by a byte search.

use std::sync::LazyLock;

use bytes::Bytes;
use memchr::memmem;
use serde_json::{Map, Value};

use super::relay::answer_usage;
use super::sse::{self, SseEvent, SseParser};
use super::translate::{self, Usage};
use crate::json_scan;
use crate::keys::meter::Meter;
use keygate_plugin_api::Wire;

/// A stream's usage watcher and the meter it settles.
pub struct UsageTap {
    wire: Wire,
    parser: SseParser,
    strip_usage_chunk: bool,
    openai: Option<Usage>,
    anthropic: Map<String, Value>,
    meter: Option<Meter>,
}

impl UsageTap {
    /// A tap for a stream in `wire`'s dialect; `strip_usage_chunk` removes OpenAI's usage-only
    /// chunk (keygate asked for it, the caller did not).
    pub fn new(wire: Wire, meter: Meter, strip_usage_chunk: bool) -> Self {
        Self {
            wire,
            parser: SseParser::new(),
            strip_usage_chunk,
            openai: None,
            anthropic: Map::new(),
            meter: Some(meter),
        }
    }

    /// Looks at one upstream chunk; returns what the caller gets, in two parts (either may be
    /// empty; they are not joined, which would copy them): the events passed as they are, then
    /// the rest as observed.
    pub fn observe(&mut self, mut bytes: Bytes) -> [Bytes; 2] {
        let skip = if self.parser.is_idle() {
            usage_free_prefix(&bytes)
        } else {
            0
        };
        if skip > 0 {
            self.parser.passed_over();
        }
        let passed = bytes.split_to(skip);
        let rest = if bytes.is_empty() {
            bytes
        } else {
            self.observe_parsed(bytes)
        };
        [passed, rest]
    }

    /// [`Self::observe`] with every event of the chunk parsed.
    fn observe_parsed(&mut self, bytes: Bytes) -> Bytes {
        let whole_before = self.parser.is_idle();
        let Ok(events) = self.parser.push(&bytes) else {
            return bytes;
        };
        let mut strip = Vec::new();
        for event in &events {
            strip.push(self.look(event));
        }
        // Events wholly inside this chunk and none to remove: the upstream's own bytes. Else
        // the chunk's complete events are re-encoded (an event cut across chunks then goes out
        // whole with the chunk that completes it).
        if !self.strip_usage_chunk
            || (whole_before && self.parser.is_idle() && !strip.contains(&true))
        {
            return bytes;
        }
        let mut out = String::new();
        for (event, strip) in events.iter().zip(strip) {
            if !strip {
                out.push_str(&encode(event));
            }
        }
        Bytes::from(out)
    }

    /// Settles the meter: the stream ended (`status` 200) or broke.
    pub fn finish(&mut self, status: u16) {
        for event in self.parser.finish() {
            self.look(&event);
        }
        if let Some(meter) = self.meter.take() {
            meter.finish(self.usage(), status);
        }
    }

    fn usage(&self) -> Option<Usage> {
        match self.wire {
            Wire::OpenAi => self.openai,
            Wire::Anthropic if self.anthropic.is_empty() => None,
            Wire::Anthropic => {
                translate::anthropic_usage(&serde_json::json!({ "usage": self.anthropic }))
            }
        }
    }

    /// Records usage in `event`; true when it is a usage-only chunk to strip.
    fn look(&mut self, event: &SseEvent) -> bool {
        // OpenAI puts `"usage":null` in every chunk once usage is asked for: skip those cheaply.
        if !event.data.contains("\"usage\"") || event.data.contains("\"usage\":null") {
            return false;
        }
        match self.wire {
            Wire::OpenAi => self.look_openai(event.data.as_bytes()),
            Wire::Anthropic => {
                self.look_anthropic(&event.data);
                false
            }
        }
    }

    /// An OpenAI chunk, read off its bytes as a passed-through answer is (no tree); true when
    /// it is the usage-only chunk to strip.
    fn look_openai(&mut self, data: &[u8]) -> bool {
        let Ok(usage) = answer_usage(data, Wire::OpenAi) else {
            return false;
        };
        if usage.is_some() {
            self.openai = usage;
        }
        let no_choices = json_scan::top_member(data, "choices")
            .ok()
            .flatten()
            .is_some_and(|at| is_empty_array(&data[at]));
        self.strip_usage_chunk && no_choices
    }

    /// An Anthropic event: the counts of `message.usage` (`message_start`) or `usage`
    /// (`message_delta`), each kept as last reported.
    fn look_anthropic(&mut self, data: &str) {
        let Ok(value) = serde_json::from_str::<Value>(data) else {
            return;
        };
        let usage = value
            .pointer("/message/usage")
            .or_else(|| value.get("usage"))
            .and_then(Value::as_object);
        for (k, v) in usage.into_iter().flatten() {
            if v.is_u64() {
                self.anthropic.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The length of the longest prefix of `bytes` made of whole events (each ended by a blank
/// line, `\n\n`) of which none can report usage: none holds `"usage"` other than as
/// `"usage":null`. An event cut by the chunk's end is not in it. `bytes` must start at an event
/// boundary.
fn usage_free_prefix(bytes: &[u8]) -> usize {
    static USAGE: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(USAGE_KEY));
    static BLANK_LINE: LazyLock<memmem::FinderRev<'static>> =
        LazyLock::new(|| memmem::FinderRev::new(b"\n\n"));
    let usage = USAGE
        .find_iter(bytes)
        .find(|&at| !bytes[at + USAGE_KEY.len()..].starts_with(b":null"));
    let end = usage.unwrap_or(bytes.len());
    BLANK_LINE.rfind(&bytes[..end]).map_or(0, |at| at + 2)
}

const USAGE_KEY: &[u8] = b"\"usage\"";

/// Whether `value`, a JSON value, is `[]`.
fn is_empty_array(value: &[u8]) -> bool {
    value
        .strip_prefix(b"[")
        .and_then(|inner| inner.strip_suffix(b"]"))
        .is_some_and(|inner| inner.iter().all(|b| b" \t\r\n".contains(b)))
}

fn encode(event: &SseEvent) -> String {
    match &event.event {
        Some(name) => sse::encode_event(name, &event.data),
        None => sse::encode_data(&event.data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_ends_before_the_first_event_that_may_report_usage() {
        let quiet = "data: {\"a\":1,\"usage\":null}\n\n";
        let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n";
        let both = format!("{quiet}{quiet}{usage}{quiet}");
        assert_eq!(usage_free_prefix(both.as_bytes()), 2 * quiet.len());
        assert_eq!(usage_free_prefix(quiet.as_bytes()), quiet.len());
        assert_eq!(usage_free_prefix(usage.as_bytes()), 0);
        // An event cut by the chunk's end stays out; `\r\n` line ends are left to the parser.
        assert_eq!(
            usage_free_prefix(format!("{quiet}data: {{").as_bytes()),
            quiet.len()
        );
        assert_eq!(usage_free_prefix(b"data: x\r\n\r\n"), 0);
        // `"usage": null` with a space is not recognised as quiet: parsed, to be safe.
        assert_eq!(usage_free_prefix(b"data: {\"usage\": null}\n\n"), 0);
    }
}
