//! An example keygate backend plugin. `echo` answers a chat with the last user message
//! (`options.prefix` before it, default `echo: `), streams it word by word, embeds text as a
//! small deterministic vector and lists its model. `echo-reverse` answers reversed.
//!
//! No network: the point is the plugin contract (definition, factory, compatibility range,
//! post-build hook), not an upstream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::stream;
use keygate_plugin_api::bytes::Bytes;
use keygate_plugin_api::http::StatusCode;
use keygate_plugin_api::serde_json::{json, Value};
use keygate_plugin_api::{
    Backend, BackendContext, BackendError, BackendPluginDefinition, BackendRequest,
    BackendResponse, BoxFuture, PluginCompatibility, Wire,
};

/// The `echo` backend, registered from this crate by linking it.
pub fn definition() -> BackendPluginDefinition {
    BackendPluginDefinition::new(
        "echo",
        "keygate-plugin-echo",
        PluginCompatibility::from("0.1.0"),
        |ctx| build(ctx, false),
    )
    .with_post_build_hook(|ctx| {
        eprintln!(
            "keygate-plugin-echo: post-build hook: backend {} serves {:?} on keygate {}",
            ctx.backend_name, ctx.models, ctx.core_version
        );
        Ok(())
    })
}

keygate_plugin_api::register_backend!(definition);

/// The `echo-reverse` backend, for the builder.
pub fn reverse_definition() -> BackendPluginDefinition {
    BackendPluginDefinition::new(
        "echo-reverse",
        "keygate-plugin-echo",
        PluginCompatibility::from("0.1.0"),
        |ctx| build(ctx, true),
    )
}

fn build(ctx: BackendContext<'_>, reverse: bool) -> Result<Arc<dyn Backend>, String> {
    let prefix = match ctx.config.options.get("prefix") {
        None => "echo: ".to_owned(),
        Some(Value::String(prefix)) => prefix.clone(),
        Some(_) => return Err("options.prefix must be a string".to_owned()),
    };
    Ok(Arc::new(Echo {
        model: ctx.config.upstream_model.clone(),
        prefix,
        reverse,
        next_id: AtomicU64::new(1),
    }))
}

struct Echo {
    model: String,
    prefix: String,
    reverse: bool,
    next_id: AtomicU64,
}

impl Echo {
    /// The answer to `body` (OpenAI chat completions), and whether usage was asked for.
    fn answer(&self, body: &[u8]) -> Result<(String, u64, bool), BackendError> {
        let request: Value = keygate_plugin_api::serde_json::from_slice(body)
            .map_err(|_| BackendError::InvalidRequest("the body is not JSON".into()))?;
        let messages = request["messages"].as_array().cloned().unwrap_or_default();
        let last = messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .map(|m| text_of(&m["content"]))
            .unwrap_or_default();
        let text = if self.reverse {
            last.chars().rev().collect()
        } else {
            last
        };
        let prompt_tokens = messages
            .iter()
            .map(|m| text_of(&m["content"]).split_whitespace().count() as u64)
            .sum();
        let wants_usage = request["stream_options"]["include_usage"] == true;
        Ok((format!("{}{text}", self.prefix), prompt_tokens, wants_usage))
    }

    fn id(&self) -> String {
        format!(
            "chatcmpl-echo-{}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

fn sse(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

impl Backend for Echo {
    fn wire(&self) -> Wire {
        Wire::OpenAi
    }

    fn chat<'a>(
        &'a self,
        request: BackendRequest<'a>,
    ) -> BoxFuture<'a, Result<BackendResponse, BackendError>> {
        Box::pin(async move {
            let (text, prompt, _) = self.answer(&request.body)?;
            let completion = text.split_whitespace().count() as u64;
            let body = json!({
                "id": self.id(),
                "object": "chat.completion",
                "created": 0,
                "model": self.model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop"
                }],
                "usage": usage(prompt, completion),
            });
            Ok(BackendResponse::full(StatusCode::OK, body.to_string()))
        })
    }

    fn chat_stream<'a>(
        &'a self,
        request: BackendRequest<'a>,
    ) -> BoxFuture<'a, Result<BackendResponse, BackendError>> {
        Box::pin(async move {
            let (text, prompt, wants_usage) = self.answer(&request.body)?;
            let id = self.id();
            let chunk = |delta: Value, finish: Value| {
                sse(&json!({
                    "id": id, "object": "chat.completion.chunk", "created": 0, "model": self.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
                }))
            };
            let mut chunks = vec![chunk(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            )];
            let words: Vec<&str> = text.split_inclusive(' ').collect();
            for word in &words {
                chunks.push(chunk(json!({"content": word}), Value::Null));
            }
            chunks.push(chunk(json!({}), json!("stop")));
            if wants_usage {
                chunks.push(sse(&json!({
                    "id": id, "object": "chat.completion.chunk", "created": 0, "model": self.model,
                    "choices": [], "usage": usage(prompt, words.len() as u64)
                })));
            }
            chunks.push(Bytes::from_static(b"data: [DONE]\n\n"));
            let body = stream::iter(chunks.into_iter().map(Ok));
            let mut response = BackendResponse::stream(StatusCode::OK, Box::pin(body));
            response.headers.insert(
                "content-type",
                keygate_plugin_api::http::HeaderValue::from_static("text/event-stream"),
            );
            Ok(response)
        })
    }

    fn embeddings<'a>(
        &'a self,
        request: BackendRequest<'a>,
    ) -> BoxFuture<'a, Result<BackendResponse, BackendError>> {
        Box::pin(async move {
            let request: Value = keygate_plugin_api::serde_json::from_slice(&request.body)
                .map_err(|_| BackendError::InvalidRequest("the body is not JSON".into()))?;
            let inputs: Vec<String> = match &request["input"] {
                Value::String(one) => vec![one.clone()],
                Value::Array(many) => many.iter().map(text_of).collect(),
                _ => {
                    return Err(BackendError::InvalidRequest(
                        "input must be a string or an array".into(),
                    ))
                }
            };
            let data: Vec<Value> = inputs
                .iter()
                .enumerate()
                .map(|(index, text)| {
                    let mut vector = [0f64; 8];
                    for (i, byte) in text.bytes().enumerate() {
                        vector[i % 8] += f64::from(byte) / 255.0;
                    }
                    json!({"object": "embedding", "index": index, "embedding": vector})
                })
                .collect();
            let tokens: u64 = inputs
                .iter()
                .map(|t| t.split_whitespace().count() as u64)
                .sum();
            let body = json!({
                "object": "list", "data": data, "model": self.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
            });
            Ok(BackendResponse::full(StatusCode::OK, body.to_string()))
        })
    }

    fn models<'a>(
        &'a self,
        _request: BackendRequest<'a>,
    ) -> BoxFuture<'a, Result<BackendResponse, BackendError>> {
        Box::pin(async move {
            let body = json!({"object": "list", "data": [
                {"id": self.model, "object": "model", "created": 0, "owned_by": "keygate-plugin-echo"}
            ]});
            Ok(BackendResponse::full(StatusCode::OK, body.to_string()))
        })
    }
}
