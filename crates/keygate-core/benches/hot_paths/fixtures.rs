//! What the groups measure against: a gateway state over SQLite in a temp dir holding one
//! virtual key, request headers and bodies, and 50-event OpenAI and Anthropic streams shaped
//! like the providers' own.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use keygate_core::config::Config;
use keygate_core::keys::token;
use keygate_core::secrets::SourceContext;
use keygate_core::state::{self, AppState, LiveState};
use keygate_core::store::{KeyRecord, Store};
use serde_json::{json, Value};
use tokio::runtime::Runtime;

/// Events in each stream.
pub const EVENTS: usize = 50;
/// The model requests name (one of [`MODELS`] configured models, with `byok: allow`).
pub const MODEL: &str = "gpt-4o-mini";
/// Models in the live state.
pub const MODELS: usize = 20;

/// A gateway state as `keygate serve` builds it, with a virtual key in its store.
pub struct Gateway {
    pub rt: Runtime,
    pub state: AppState,
    pub live: Arc<LiveState>,
    /// The virtual key as a caller presents it.
    pub key: String,
    /// The stored record of [`Gateway::key`].
    pub record: Arc<KeyRecord>,
    dir: PathBuf,
}

impl Gateway {
    pub fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = std::env::temp_dir().join(format!("keygate-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let env = Arc::new(HashMap::<String, String>::new());
        let config = Config::parse(&config_yaml(), "bench", env.as_ref()).expect("bench config");
        let client = state::build_http_client().expect("http client");
        let ctx = SourceContext {
            client: &client,
            env,
        };
        let live = LiveState::build(config, &ctx).expect("live state");
        let key = "sk-8f2c51d0e4b7a9c36d15e0f2b8a4c7d9e1f3a5b7c9d0e2f4".to_owned();
        let url = format!("sqlite://{}/keygate.db", dir.display());
        let (state, record) = rt.block_on(async {
            let store = Store::connect(&url).await.expect("SQLite store");
            store
                .insert_key(&key_record(&key))
                .await
                .expect("insert key");
            let state = AppState::new(live, client, store, None);
            let record = keygate_core::keys::meter::authenticate(&state, &key)
                .await
                .expect("the bench key authenticates");
            (state, record)
        });
        let live = state.live();
        Self {
            rt,
            state,
            live,
            key,
            record,
            dir,
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.rt.block_on(async {
            self.state.shutdown().await;
            self.state.store().close().await;
        });
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config_yaml() -> String {
    let mut yaml = String::from("admin_key: sk-admin-bench-0000\nmodels:\n");
    let others = (0..MODELS - 1).map(|i| format!("model-{i:02}"));
    for name in std::iter::once(MODEL.to_owned()).chain(others) {
        yaml.push_str(&format!(
            "  - name: {name}\n    provider: openai\n    byok: allow\n    \
             price: {{ input_per_mtok: 0.15, output_per_mtok: 0.60 }}\n"
        ));
    }
    yaml
}

fn key_record(key: &str) -> KeyRecord {
    KeyRecord {
        key_alias: Some("bench".into()),
        models: vec![MODEL.into()],
        max_budget: Some(1_000_000.0),
        ..KeyRecord::new(token::hash_key(key), token::key_name(key), 0)
    }
}

/// The headers an OpenAI SDK sends, plus `extra`.
pub fn sdk_headers(extra: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let common = [
        ("host", "127.0.0.1:4000"),
        ("accept-encoding", "gzip, deflate"),
        ("connection", "keep-alive"),
        ("accept", "application/json"),
        ("content-type", "application/json"),
        ("user-agent", "OpenAI/Python 1.54.4"),
        ("x-stainless-lang", "python"),
        ("x-stainless-package-version", "1.54.4"),
        ("x-stainless-os", "Linux"),
        ("x-stainless-arch", "x64"),
        ("x-stainless-runtime", "CPython"),
        ("x-stainless-retry-count", "0"),
        ("content-length", "1873"),
    ];
    for (name, value) in common.iter().chain(extra) {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    headers
}

/// A word of the streamed answer.
fn piece(i: usize) -> String {
    const WORDS: [&str; 12] = [
        "The", "gateway", "checks", "the", "key,", "routes", "the", "request", "and", "relays",
        "each", "chunk.",
    ];
    format!(" {}", WORDS[i % WORDS.len()])
}

fn openai_chunk(delta: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion.chunk",
        "created": 1_741_569_952,
        "model": "gpt-4o-mini-2024-07-18",
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        "usage": null,
    })
}

/// An OpenAI chat completion stream with usage asked for: the role chunk, 46 content chunks,
/// the finish chunk, the usage chunk and `[DONE]`; one frame per element.
pub fn openai_frames() -> Vec<String> {
    let frame = |value: &Value| format!("data: {value}\n\n");
    let mut frames = vec![frame(&openai_chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        None,
    ))];
    for i in 0..EVENTS - 4 {
        frames.push(frame(&openai_chunk(json!({"content": piece(i)}), None)));
    }
    frames.push(frame(&openai_chunk(json!({}), Some("stop"))));
    let mut usage = openai_chunk(json!({}), None);
    usage["choices"] = json!([]);
    usage["usage"] = json!({
        "prompt_tokens": 412, "completion_tokens": 46, "total_tokens": 458,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    });
    frames.push(frame(&usage));
    frames.push("data: [DONE]\n\n".to_owned());
    frames
}

/// An Anthropic Messages stream: `message_start`, `content_block_start`, `ping`, 44 text
/// deltas, `content_block_stop`, `message_delta`, `message_stop`.
pub fn anthropic_frames() -> Vec<String> {
    let frame = |name: &str, value: Value| format!("event: {name}\ndata: {value}\n\n");
    let mut frames = vec![
        frame(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
                "model": "claude-3-5-sonnet-20241022", "content": [], "stop_reason": null,
                "stop_sequence": null, "usage": {"input_tokens": 412, "output_tokens": 1,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
        ),
        frame(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
        ),
        "event: ping\ndata: {\"type\": \"ping\"}\n\n".to_owned(),
    ];
    for i in 0..EVENTS - 6 {
        frames.push(frame(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": piece(i)}}),
        ));
    }
    frames.push(frame(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    frames.push(frame(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn",
            "stop_sequence": null}, "usage": {"output_tokens": 44}}),
    ));
    frames.push(frame("message_stop", json!({"type": "message_stop"})));
    frames
}

/// One chunk per frame, as an upstream writes them.
pub fn aligned(frames: &[String]) -> Vec<Bytes> {
    frames
        .iter()
        .map(|f| Bytes::copy_from_slice(f.as_bytes()))
        .collect()
}

/// The stream cut at arbitrary points (1 to 256 bytes apart, a fixed pseudo-random sequence),
/// as TCP reads may deliver it: inside lines, inside `\n\n`, anywhere.
pub fn split(frames: &[String]) -> Vec<Bytes> {
    let whole = Bytes::from(frames.concat());
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunks = Vec::new();
    let mut at = 0;
    while at < whole.len() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = usize::try_from(seed % 256).expect("small") + 1;
        let end = (at + len).min(whole.len());
        chunks.push(whole.slice(at..end));
        at = end;
    }
    chunks
}

/// Total bytes of `chunks`.
pub fn total_len(chunks: &[Bytes]) -> u64 {
    chunks.iter().map(|c| c.len() as u64).sum()
}
