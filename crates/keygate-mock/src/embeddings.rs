//! `POST /v1/embeddings` and Azure's `POST /openai/deployments/{d}/embeddings`: deterministic
//! vectors from a hash of each input, as floats or as base64 of little-endian `f32`s.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use base64::Engine as _;
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::directives;
use crate::errors::{error, Dialect};
use crate::server::{admit, json_response, preempt};
use crate::state::MockState;

/// Vector length when the request gives no `dimensions`.
const DEFAULT_DIMENSIONS: usize = 8;
/// Largest `dimensions` accepted.
const MAX_DIMENSIONS: u64 = 16_384;

/// `POST /v1/embeddings`.
pub(crate) async fn openai(
    State(state): State<MockState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = (&method, &uri, &headers, &body[..]);
    embed(&state, Dialect::OpenAi, request, None).await
}

/// `POST /openai/deployments/{deployment}/embeddings?api-version=V`.
pub(crate) async fn azure(
    State(state): State<MockState>,
    Path(deployment): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = (&method, &uri, &headers, &body[..]);
    embed(&state, Dialect::Azure, request, Some(&deployment)).await
}

/// One input to embed.
#[derive(Debug)]
enum Item<'a> {
    Text(&'a str),
    Tokens(&'a [Value]),
}

#[derive(Serialize)]
struct List<'a> {
    object: &'static str,
    data: Vec<Embedding>,
    model: &'a str,
    usage: Usage,
}

#[derive(Serialize)]
struct Embedding {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u64,
    total_tokens: u64,
}

type Request<'a> = (&'a Method, &'a Uri, &'a HeaderMap, &'a [u8]);

async fn embed(
    state: &MockState,
    dialect: Dialect,
    (method, uri, headers, body): Request<'_>,
    deployment: Option<&str>,
) -> Response {
    let (seq, body) = match admit(state, dialect, method, uri, headers, Some(body), deployment) {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let bad = |message: &str| error(dialect, StatusCode::BAD_REQUEST, message, seq);
    let body_model = body.get("model").and_then(Value::as_str);
    let Some((model, directives)) = directives::resolve(deployment, body_model) else {
        return bad("You must provide a model parameter.");
    };
    let Some(items) = body.get("input").and_then(items) else {
        return bad("'input' must be a string, an array of strings or of token arrays.");
    };
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => DEFAULT_DIMENSIONS,
        Some(n) => match n.as_u64().filter(|n| (1..=MAX_DIMENSIONS).contains(n)) {
            Some(n) => n as usize,
            None => return bad("'dimensions' must be a positive integer."),
        },
    };
    let base64 = match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => return bad("'encoding_format' must be 'float' or 'base64'."),
    };
    if let Some(response) = preempt(state, dialect, &directives, seq, false).await {
        return response;
    }
    let prompt_tokens = items.iter().map(tokens).sum::<u64>().max(1);
    let data = items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let floats = vector(item, dimensions);
            let embedding = if base64 {
                Vector::Base64(encode(&floats))
            } else {
                Vector::Float(floats)
            };
            Embedding {
                object: "embedding",
                index,
                embedding,
            }
        })
        .collect();
    let list = List {
        object: "list",
        data,
        model,
        usage: Usage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    };
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&list).unwrap_or_default(),
    )
}

/// The inputs: a string, strings, one token array or token arrays; `None` if malformed or empty.
fn items(input: &Value) -> Option<Vec<Item<'_>>> {
    match input {
        Value::String(text) => Some(vec![Item::Text(text)]),
        Value::Array(list) if list.is_empty() => None,
        Value::Array(list) if list.iter().all(Value::is_number) => Some(vec![Item::Tokens(list)]),
        Value::Array(list) => list
            .iter()
            .map(|entry| match entry {
                Value::String(text) => Some(Item::Text(text)),
                Value::Array(tokens) if tokens.iter().all(Value::is_number) => {
                    Some(Item::Tokens(tokens))
                }
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// Rough token count of one input.
fn tokens(item: &Item<'_>) -> u64 {
    match item {
        Item::Text(text) => (text.len() as u64 / 4).max(1),
        Item::Tokens(tokens) => tokens.len() as u64,
    }
}

/// The deterministic vector of an input: values in [-1, 1).
fn vector(item: &Item<'_>, dimensions: usize) -> Vec<f32> {
    let mut hash = Fnv::default();
    match item {
        Item::Text(text) => hash.write(text.as_bytes()),
        Item::Tokens(tokens) => {
            for token in *tokens {
                let bits = token.as_i64().unwrap_or_default();
                hash.write(&bits.to_le_bytes());
            }
        }
    }
    let mut state = hash.0;
    (0..dimensions)
        .map(|_| {
            let bits = splitmix64(&mut state) >> 40;
            (bits as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Base64 of the little-endian bytes of `floats`, as the OpenAI SDKs decode it.
fn encode(floats: &[f32]) -> String {
    let bytes: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vectors_are_deterministic_and_bounded() {
        let a = vector(&Item::Text("hello"), 64);
        assert_eq!(a, vector(&Item::Text("hello"), 64));
        assert_ne!(a, vector(&Item::Text("hellp"), 64));
        assert!(a.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn input_shapes() {
        assert_eq!(items(&json!("x")).unwrap().len(), 1);
        assert_eq!(items(&json!(["x", "y"])).unwrap().len(), 2);
        assert_eq!(items(&json!([1, 2, 3])).unwrap().len(), 1);
        assert_eq!(items(&json!([[1, 2], [3]])).unwrap().len(), 2);
        assert!(items(&json!([])).is_none());
        assert!(items(&json!([{"a": 1}])).is_none());
        assert!(items(&json!(3)).is_none());
    }

    #[test]
    fn base64_is_little_endian_f32() {
        assert_eq!(encode(&[1.0]), "AACAPw==");
    }
}
