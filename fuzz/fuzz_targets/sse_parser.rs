//! `SseParser` on arbitrary bytes, pushed in arbitrary chunk splits.
//!
//! Invariants: no panic; how the stream is split into chunks does not change the events; a
//! finished parser starts afresh; events re-encoded with keygate's own encoders parse back to
//! the same events; a small event limit is an error, never a panic.

#![no_main]

use keygate_core::providers::sse::{encode_data, encode_event, SseEvent, SseParser};
use libfuzzer_sys::fuzz_target;

/// The whole stream in one push, then `finish`; `None` if the parser refused it.
fn parse_whole(parser: &mut SseParser, bytes: &[u8]) -> Option<Vec<SseEvent>> {
    let mut events = parser.push(bytes).ok()?;
    events.extend(parser.finish());
    Some(events)
}

/// The stream in chunks of 1 to 16 bytes, sizes taken from the stream's own bytes, with an
/// empty push between chunks.
fn parse_chunked(parser: &mut SseParser, bytes: &[u8]) -> Option<Vec<SseEvent>> {
    let mut events = Vec::new();
    let mut rest = bytes;
    let mut turn = 0;
    while !rest.is_empty() {
        let size = 1 + usize::from(bytes[turn % bytes.len()] % 16);
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        events.extend(parser.push(chunk).ok()?);
        events.extend(parser.push(&[]).ok()?);
        rest = tail;
        turn += 1;
    }
    events.extend(parser.finish());
    Some(events)
}

fn check_event(event: &SseEvent) {
    assert!(!event.data.contains('\r'), "{event:?}");
    if let Some(name) = &event.event {
        assert!(!name.is_empty(), "{event:?}");
        assert!(!name.contains(['\r', '\n']), "{event:?}");
    }
}

fuzz_target!(|input: &[u8]| {
    let stream = input;
    let mut parser = SseParser::new();
    let whole = parse_whole(&mut parser, stream);
    // The default limit (16 MiB) is far above any input libFuzzer generates.
    let Some(whole) = whole else {
        panic!("the default limit refused a {}-byte stream", stream.len());
    };
    whole.iter().for_each(check_event);

    // The parser is ready for a new stream after `finish`.
    assert_eq!(parse_whole(&mut parser, stream).as_ref(), Some(&whole));

    // Chunk boundaries (inside `\r\n`, inside UTF-8, inside a BOM) change nothing.
    let chunked = parse_chunked(&mut SseParser::new(), stream);
    assert_eq!(chunked.as_ref(), Some(&whole));

    // What keygate encodes, it parses back as the same events.
    let encoded: String = whole
        .iter()
        .map(|event| match &event.event {
            Some(name) => encode_event(name, &event.data),
            None => encode_data(&event.data),
        })
        .collect();
    let reparsed = parse_whole(&mut SseParser::new(), encoded.as_bytes());
    assert_eq!(reparsed.as_ref(), Some(&whole), "{encoded:?}");

    // A tiny limit: errors, not panics, and the parser keeps going.
    let mut small = SseParser::with_limit(stream.len() % 64);
    for chunk in stream.chunks(5) {
        if let Ok(events) = small.push(chunk) {
            events.iter().for_each(check_event);
        }
    }
    small.finish().iter().for_each(check_event);
});
