//! `sse`: relaying a 50-event OpenAI stream: the event-stream parser fed one frame per chunk or
//! the stream cut at arbitrary points, and the usage tap of a metered pass-through (admission,
//! every chunk observed, settlement), keeping or stripping the usage chunk.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput};
use keygate_core::keys::meter::{self, Ask};
use keygate_core::providers::sse::SseParser;
use keygate_core::providers::{UsageTap, Wire};

use crate::fixtures::{self, Gateway, EVENTS, MODEL};

pub fn bench(c: &mut Criterion, gw: &Gateway) {
    // The tap's settled spend is queued for the store's writer task on this runtime.
    let _runtime = gw.rt.enter();
    let frames = fixtures::openai_frames();
    let aligned = fixtures::aligned(&frames);
    let split = fixtures::split(&frames);
    assert_eq!(parse(&aligned), parse(&split));
    assert_eq!(parse(&aligned).0, EVENTS);

    let mut g = c.benchmark_group("sse");
    g.throughput(Throughput::Bytes(fixtures::total_len(&aligned)));
    g.bench_function("parse/aligned", |b| b.iter(|| parse(black_box(&aligned))));
    g.bench_function("parse/split", |b| b.iter(|| parse(black_box(&split))));

    let route = gw.live.routing.group(MODEL).expect("bench model").primary();
    let ask = Ask {
        body_bytes: 60,
        max_output: None,
        embeddings: false,
    };
    let new_tap = |strip| {
        let meter = gw
            .rt
            .block_on(meter::admit(
                &gw.state,
                &gw.record,
                route,
                route.effective_price,
                &ask,
            ))
            .expect("admitted");
        UsageTap::new(Wire::OpenAi, meter, strip)
    };
    let relay = |mut tap: UsageTap, chunks: &[Bytes]| {
        let sent: usize = chunks
            .iter()
            .map(|c| tap.observe(c.clone()).iter().map(Bytes::len).sum::<usize>())
            .sum();
        tap.finish(200);
        sent
    };
    let whole = fixtures::total_len(&aligned);
    assert_eq!(relay(new_tap(false), &aligned) as u64, whole);
    let stripped = relay(new_tap(true), &aligned) as u64;
    assert!(
        stripped < whole && stripped > whole / 2,
        "{stripped} of {whole}"
    );

    for (name, strip) in [("usage_tap/keep", false), ("usage_tap/strip", true)] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || new_tap(strip),
                |tap| relay(tap, black_box(&aligned)),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// Events parsed and data bytes seen.
fn parse(chunks: &[Bytes]) -> (usize, usize) {
    let mut parser = SseParser::new();
    let (mut events, mut data) = (0, 0);
    for chunk in chunks {
        for event in parser.push(chunk).expect("within limits") {
            events += 1;
            data += event.data.len();
        }
    }
    for event in parser.finish() {
        events += 1;
        data += event.data.len();
    }
    (events, data)
}
