//! Micro-benchmarks of the work keygate does on every request, without sockets:
//!
//! - `auth`: verifying a virtual key that is cached (SHA-256 of the presented key + cache hit),
//!   over a real SQLite store in a temp dir;
//! - `headers`: the caller's key from `Authorization: Bearer` / `x-api-key`, and the
//!   `X-{Model}-Authorization` bring-your-own-key header;
//! - `routing`: peeking the body for `model`/`stream`/`max_tokens` and finding the model in the
//!   live state;
//! - `sse`: the event-stream parser over a 50-event OpenAI stream, whole frames or cut at
//!   arbitrary points, and the usage tap a metered pass-through stream goes through;
//! - `translate`: OpenAI <-> Anthropic stream translation of 50-event streams.
//!
//! Run: `cargo bench -p keygate-core --bench hot_paths -- --quick` (see bench/README.md).

// Setup that cannot go on fails loudly: this is a benchmark, not the server.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod auth;
mod fixtures;
mod routing;
mod sse;
mod translate;

use criterion::Criterion;

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let gateway = fixtures::Gateway::start();
    auth::bench(&mut c, &gateway);
    routing::bench(&mut c, &gateway);
    sse::bench(&mut c, &gateway);
    translate::bench(&mut c);
    drop(gateway);
    c.final_summary();
}
