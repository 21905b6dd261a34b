//! `auth`: a cached virtual key verified (hash + cache hit, then the whole request check), and
//! `headers`: the caller's key and the bring-your-own-key header read from a request's headers.

use std::hint::black_box;

use criterion::Criterion;
use futures_util::FutureExt;
use keygate_core::auth::{self, Caller};
use keygate_core::keys::{meter, token};

use crate::fixtures::{sdk_headers, Gateway, MODEL};

pub fn bench(c: &mut Criterion, gw: &Gateway) {
    // Background refreshes of the cached key (after 20 s) are spawned on this runtime.
    let _runtime = gw.rt.enter();
    let token_id = token::hash_key(&gw.key);
    let bearer = format!("Bearer {}", gw.key);
    let headers = sdk_headers(&[("authorization", &bearer)]);

    // A warm key never waits: each future below must finish on its first poll.
    let mut g = c.benchmark_group("auth");
    g.bench_function("hash_key", |b| {
        b.iter(|| token::hash_key(black_box(&gw.key)))
    });
    g.bench_function("cache_hit", |b| {
        b.iter(|| {
            gw.state
                .keys()
                .get(gw.state.store(), black_box(&token_id))
                .now_or_never()
                .expect("cached: no store access")
                .expect("store")
                .expect("key found")
        })
    });
    g.bench_function("virtual_key", |b| {
        b.iter(|| {
            meter::authenticate(&gw.state, black_box(&gw.key))
                .now_or_never()
                .expect("cached: no store access")
                .expect("key usable")
        })
    });
    g.bench_function("request_headers", |b| {
        b.iter(|| {
            let caller = auth::authenticate(black_box(&headers), &gw.live, &gw.state)
                .now_or_never()
                .expect("cached: no store access")
                .expect("authenticated");
            assert!(matches!(caller, Caller::Virtual(_)));
            caller
        })
    });
    g.finish();

    let route = gw.live.routing.group(MODEL).expect("bench model").primary();
    let byok = sdk_headers(&[
        ("authorization", &bearer),
        (
            "x-gpt-4o-mini-authorization",
            "Bearer sk-proj-Xr7vQ2mN8pL4kJ6hG3fD1sA9zW5yT0uE",
        ),
    ]);
    let x_api_key = sdk_headers(&[("x-api-key", &gw.key)]);
    assert_eq!(auth::presented_key(&headers), Some(gw.key.as_str()));
    assert_eq!(auth::presented_key(&x_api_key), Some(gw.key.as_str()));

    let mut g = c.benchmark_group("headers");
    g.bench_function("presented_key/bearer", |b| {
        b.iter(|| auth::presented_key(black_box(&headers)).map(str::len))
    });
    g.bench_function("presented_key/x_api_key", |b| {
        b.iter(|| auth::presented_key(black_box(&x_api_key)).map(str::len))
    });
    g.bench_function("byok/present", |b| {
        b.iter(|| {
            auth::byok_key(black_box(&byok), route)
                .expect("allowed")
                .expect("present")
        })
    });
    g.bench_function("byok/absent", |b| {
        b.iter(|| {
            let none = auth::byok_key(black_box(&headers), route).expect("allowed");
            assert!(none.is_none());
        })
    });
    g.finish();
}
