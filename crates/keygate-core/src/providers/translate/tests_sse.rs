//! Tests of the SSE parser and encoders (`super::super::sse`), kept here beside the
//! translators' tests.

use super::super::sse::{encode_data, encode_event, SseError, SseEvent, SseParser, DONE};

fn ev(event: Option<&str>, data: &str) -> SseEvent {
    SseEvent {
        event: event.map(str::to_owned),
        data: data.to_owned(),
    }
}

/// Parses `input` pushed in pieces of `size` bytes, then finishes.
fn parse_in_pieces(input: &[u8], size: usize) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    for piece in input.chunks(size.max(1)) {
        events.extend(parser.push(piece).unwrap());
    }
    events.extend(parser.finish());
    events
}

/// Parses `input` at every chunk size from 1 to 17 and checks they all agree.
fn parse_all_ways(input: &[u8]) -> Vec<SseEvent> {
    let whole = parse_in_pieces(input, input.len());
    for size in 1..=17 {
        assert_eq!(parse_in_pieces(input, size), whole, "chunk size {size}");
    }
    whole
}

#[test]
fn basic_named_and_unnamed_events() {
    let input = b"event: message_start\ndata: {\"a\":1}\n\ndata: plain\n\n";
    assert_eq!(
        parse_all_ways(input),
        vec![ev(Some("message_start"), "{\"a\":1}"), ev(None, "plain")]
    );
}

#[test]
fn line_endings_lf_crlf_and_cr() {
    let expected = vec![ev(Some("e"), "one"), ev(None, "two")];
    assert_eq!(
        parse_all_ways(b"event: e\ndata: one\n\ndata: two\n\n"),
        expected
    );
    assert_eq!(
        parse_all_ways(b"event: e\r\ndata: one\r\n\r\ndata: two\r\n\r\n"),
        expected
    );
    assert_eq!(
        parse_all_ways(b"event: e\rdata: one\r\rdata: two\r\r"),
        expected
    );
    assert_eq!(
        parse_all_ways(b"event: e\r\ndata: one\r\rdata: two\n\r\n"),
        expected
    );
}

#[test]
fn cr_at_chunk_end_followed_by_lf_is_one_line_end() {
    let mut parser = SseParser::new();
    assert_eq!(parser.push(b"data: x\r").unwrap(), vec![]);
    // The \n completes the \r\n, it is not a blank line.
    assert_eq!(parser.push(b"\n").unwrap(), vec![]);
    assert_eq!(parser.push(b"\r\n").unwrap(), vec![ev(None, "x")]);
}

#[test]
fn multi_line_data_comments_and_ignored_fields() {
    let input = b": keep-alive\nid: 7\nretry: 100\nfoo: bar\ndata: a\ndata\ndata:b\ndata:  c\n\n";
    assert_eq!(parse_all_ways(input), vec![ev(None, "a\n\nb\n c")]);
}

#[test]
fn field_without_space_and_empty_data() {
    assert_eq!(
        parse_all_ways(b"event:ping\ndata:\n\n"),
        vec![ev(Some("ping"), "")]
    );
    // An event with no data line is not dispatched, and its name does not leak.
    assert_eq!(
        parse_all_ways(b"event: lost\n\ndata: x\n\n"),
        vec![ev(None, "x")]
    );
    assert_eq!(parse_all_ways(b"event:\ndata: x\n\n"), vec![ev(None, "x")]);
}

#[test]
fn no_trailing_blank_line_is_flushed_by_finish() {
    assert_eq!(parse_all_ways(b"data: last"), vec![ev(None, "last")]);
    assert_eq!(parse_all_ways(b"data: last\n"), vec![ev(None, "last")]);
    assert_eq!(
        parse_all_ways(b"event: e\ndata: last\r"),
        vec![ev(Some("e"), "last")]
    );
    let mut parser = SseParser::new();
    assert_eq!(parser.finish(), vec![]);
}

#[test]
fn utf8_split_anywhere_and_bom() {
    let input = "\u{feff}data: héllo ✓ 𝄞\n\ndata: 日本\n\n".as_bytes();
    assert_eq!(
        parse_all_ways(input),
        vec![ev(None, "héllo ✓ 𝄞"), ev(None, "日本")]
    );
    // Invalid UTF-8 is replaced, not a panic.
    assert_eq!(
        parse_all_ways(b"data: \xff\n\n"),
        vec![ev(None, "\u{fffd}")]
    );
}

#[test]
fn limit_exceeded_is_an_error_not_growth() {
    let mut parser = SseParser::with_limit(16);
    assert_eq!(parser.push(b"data: 0123456789\n").unwrap(), vec![]);
    let err = parser.push(b"data: more\n").unwrap_err();
    assert_eq!(err, SseError::EventTooLarge { limit: 16 });
    assert_eq!(
        err.to_string(),
        "an upstream server-sent event exceeded the limit of 16 bytes"
    );
    // A long line without a terminator is caught too, one byte at a time.
    let mut parser = SseParser::with_limit(8);
    let mut failed = false;
    for byte in b"data: abcdefghijkl" {
        if parser.push(&[*byte]).is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed);
    // Events up to the limit pass, and the limit applies per event.
    let mut parser = SseParser::with_limit(12);
    for _ in 0..100 {
        assert_eq!(
            parser.push(b"data: 12345\n\n").unwrap(),
            vec![ev(None, "12345")]
        );
    }
}

#[test]
fn default_parser_has_a_16_mib_limit() {
    let mut parser = SseParser::default();
    let big = vec![b'x'; 1 << 20];
    assert!(parser.push(b"data: ").is_ok());
    for _ in 0..15 {
        assert!(parser.push(&big).is_ok());
    }
    assert!(parser.push(&big).is_err());
}

#[test]
fn encoders() {
    assert_eq!(encode_data("{\"a\":1}"), "data: {\"a\":1}\n\n");
    assert_eq!(encode_event("ping", "{}"), "event: ping\ndata: {}\n\n");
    assert_eq!(encode_data("a\nb\r\nc"), "data: a\ndata: b\ndata: c\n\n");
    assert_eq!(encode_event("x\ny", ""), "event: xy\ndata: \n\n");
    assert_eq!(DONE, "data: [DONE]\n\n");
    // What we encode, we parse back.
    let frames = [
        encode_event("e", "l1\nl2"),
        encode_data("z"),
        DONE.to_owned(),
    ]
    .concat();
    assert_eq!(
        parse_all_ways(frames.as_bytes()),
        vec![ev(Some("e"), "l1\nl2"), ev(None, "z"), ev(None, "[DONE]")]
    );
}
