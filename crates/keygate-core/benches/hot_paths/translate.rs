//! `translate`: 50-event streams translated between the dialects, event by event, from parsed
//! events (`*/events`) and from the raw chunks through the parser as the relay does (`*/relay`).

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use keygate_core::providers::sse::{SseEvent, SseParser};
use keygate_core::providers::translate::{AnthropicToOpenAiStream, OpenAiToAnthropicStream};
use keygate_core::providers::StreamTranslator;

use crate::fixtures::{self, EVENTS};

pub fn bench(c: &mut Criterion) {
    let anthropic = fixtures::aligned(&fixtures::anthropic_frames());
    let openai = fixtures::aligned(&fixtures::openai_frames());
    let anthropic_events = events(&anthropic);
    let openai_events = events(&openai);
    assert_eq!(
        (anthropic_events.len(), openai_events.len()),
        (EVENTS, EVENTS)
    );

    let to_openai = || AnthropicToOpenAiStream::new("claude-3-5-sonnet", true);
    let to_anthropic = || OpenAiToAnthropicStream::new("gpt-4o-mini");
    let out = translate(to_openai(), &anthropic_events);
    assert!(out.ends_with("data: [DONE]\n\n") && out.contains("\"completion_tokens\":44"));
    let out = translate(to_anthropic(), &openai_events);
    assert!(out.contains("event: message_stop") && out.contains("\"output_tokens\":46"));

    let mut g = c.benchmark_group("translate");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.bench_function("anthropic_to_openai/events", |b| {
        b.iter(|| translate(to_openai(), black_box(&anthropic_events)).len())
    });
    g.bench_function("anthropic_to_openai/relay", |b| {
        b.iter(|| relay(to_openai(), black_box(&anthropic)))
    });
    g.bench_function("openai_to_anthropic/events", |b| {
        b.iter(|| translate(to_anthropic(), black_box(&openai_events)).len())
    });
    g.bench_function("openai_to_anthropic/relay", |b| {
        b.iter(|| relay(to_anthropic(), black_box(&openai)))
    });
    g.finish();
}

fn events(chunks: &[Bytes]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    for chunk in chunks {
        events.extend(parser.push(chunk).expect("within limits"));
    }
    events.extend(parser.finish());
    events
}

/// Every frame the caller receives, concatenated.
fn translate(mut translator: impl StreamTranslator, events: &[SseEvent]) -> String {
    let mut out = String::new();
    for event in events {
        for frame in translator.on_event(event) {
            out.push_str(&frame);
        }
    }
    for frame in translator.finish() {
        out.push_str(&frame);
    }
    out
}

/// As `relay_translated` does: parse each chunk, translate its events, one write per chunk.
fn relay(mut translator: impl StreamTranslator, chunks: &[Bytes]) -> usize {
    let mut parser = SseParser::new();
    let mut sent = 0;
    for chunk in chunks {
        let mut out = String::new();
        for event in parser.push(chunk).expect("within limits") {
            for frame in translator.on_event(&event) {
                out.push_str(&frame);
            }
        }
        sent += Bytes::from(out).len();
    }
    let mut out = String::new();
    for event in parser.finish() {
        for frame in translator.on_event(&event) {
            out.push_str(&frame);
        }
    }
    for frame in translator.finish() {
        out.push_str(&frame);
    }
    sent + out.len()
}
