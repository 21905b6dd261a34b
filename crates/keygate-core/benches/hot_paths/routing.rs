//! `routing`: the first look at a request body (`model`, `stream`, `max_tokens`) and the model's
//! group in the live state, and the start of its attempts (one deployment, no fallbacks: no
//! state read or written), as the inference handler does before anything is sent upstream.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use keygate_core::http::body;
use keygate_core::providers::Attempts;
use serde_json::json;

use crate::fixtures::{Gateway, MODEL};

pub fn bench(c: &mut Criterion, gw: &Gateway) {
    // bench/run's request.
    let small = format!(r#"{{"model":"{MODEL}","messages":[{{"role":"user","content":"hi"}}]}}"#);
    let chat = chat_body();
    assert!((3_500..5_000).contains(&chat.len()), "{} bytes", chat.len());
    let peeked = body::peek(chat.as_bytes()).expect("valid body");
    assert_eq!(peeked.model.as_deref(), Some(MODEL));
    assert_eq!((peeked.stream, peeked.max_tokens), (Some(true), Some(512)));

    let mut g = c.benchmark_group("routing");
    for (name, bytes) in [("small", small.as_bytes()), ("chat_4k", chat.as_bytes())] {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("peek/{name}"), |b| {
            b.iter(|| {
                let peek = body::peek(black_box(bytes)).expect("valid body");
                (peek.stream, peek.max_tokens, peek.model.map(|m| m.len()))
            })
        });
        g.bench_function(format!("peek_and_route/{name}"), |b| {
            b.iter(|| {
                let peek = body::peek(black_box(bytes)).expect("valid body");
                let model = body::required_model(&peek).expect("model");
                let group = gw.live.routing.group(model).expect("configured");
                (group.primary().clone(), peek.stream, peek.max_tokens)
            })
        });
    }
    g.throughput(Throughput::Elements(1));
    g.bench_function("group_lookup_and_attempts", |b| {
        b.iter(|| {
            let group = gw.live.routing.group(black_box(MODEL)).expect("configured");
            let attempts = Attempts::start(&gw.live.routing, group, true);
            attempts.current().route.timeout
        })
    });
    g.finish();
}

/// A ~4 KB chat request as an SDK sends it: a system prompt, six turns and a tool, with `model`
/// and `stream` after `messages` (the peek must skip over them).
fn chat_body() -> String {
    let turn = "Summarise the attached incident report in three bullet points and name the \
                service that failed first, the time it recovered and the follow-up owner. ";
    let messages: Vec<_> = std::iter::once(json!({"role": "system", "content": turn.repeat(4)}))
        .chain((0..6).map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            json!({"role": role, "content": turn.repeat(3)})
        }))
        .collect();
    json!({
        "messages": messages,
        "tools": [{"type": "function", "function": {"name": "lookup_incident",
            "description": "Find an incident by id",
            "parameters": {"type": "object", "properties": {"id": {"type": "string"}},
                "required": ["id"]}}}],
        "model": MODEL,
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": 512,
        "temperature": 0.2,
    })
    .to_string()
}
