//! Streamed chat completions: `chat.completion.chunk` frames, the optional usage chunk and
//! `data: [DONE]`.

use std::time::Duration;

use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use super::Usage;
use crate::directives::Directives;
use crate::reply::Reply;
use crate::reply::{fragments, piece};
use crate::sse::{self, Plan};
use crate::state::MockState;

/// The stream for `reply`; `include_usage` adds the usage chunk (and `usage: null` elsewhere).
pub(super) fn response(
    state: &MockState,
    reply: &Reply<'_>,
    include_usage: bool,
    directives: &Directives,
    delay: Duration,
) -> Response {
    let id = format!("chatcmpl-mock{}", reply.seq);
    let chunk = |delta: Value, finish_reason: Option<&str>| -> Bytes {
        let mut chunk = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": reply.created,
            "model": reply.model,
            "system_fingerprint": null,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        sse::data(&chunk)
    };

    let mut frames = Vec::with_capacity(reply.pieces + 5);
    let finish_reason = match &reply.tool {
        Some(tool) => {
            frames.push(chunk(
                json!({"role": "assistant", "content": null, "tool_calls": [{
                    "index": 0,
                    "id": format!("call_mock{}", reply.seq),
                    "type": "function",
                    "function": {"name": tool.name, "arguments": ""},
                }]}),
                None,
            ));
            for part in fragments(&tool.arguments) {
                frames.push(chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}),
                    None,
                ));
            }
            "tool_calls"
        }
        None => {
            frames.push(chunk(
                json!({"role": "assistant", "content": "", "refusal": null}),
                None,
            ));
            for i in 0..reply.pieces {
                frames.push(chunk(json!({"content": piece(i)}), None));
            }
            "stop"
        }
    };
    let pieces = frames.len() - 1;
    frames.push(chunk(json!({}), Some(finish_reason)));
    if include_usage {
        frames.push(sse::data(&json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": reply.created,
            "model": reply.model,
            "system_fingerprint": null,
            "choices": [],
            "usage": Usage::of(reply),
        })));
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let plan = Plan {
        frames,
        first_piece: 1,
        pieces,
    };
    sse::response(state, plan, directives, delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::Tool;
    use crate::MockConfig;

    async fn body(reply: &Reply<'_>, include_usage: bool, directives: &Directives) -> String {
        let state = MockState::new(MockConfig::default());
        let response = response(&state, reply, include_usage, directives, Duration::ZERO);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await;
        String::from_utf8(bytes.unwrap_or_default().to_vec()).unwrap()
    }

    fn reply(tool: Option<Tool<'static>>) -> Reply<'static> {
        Reply {
            seq: 3,
            created: 1,
            model: "m",
            prompt_tokens: 2,
            pieces: 2,
            tool,
        }
    }

    #[tokio::test]
    async fn tool_call_fragments_are_the_pieces() {
        let tool = Tool::new("f", json!({"a": "mock"}));
        let text = body(&reply(Some(tool)), true, &Directives::default()).await;
        assert_eq!(text.matches("\"finish_reason\":\"tool_calls\"").count(), 1);
        assert!(text.contains("\"id\":\"call_mock3\""));
        assert!(text.contains("\"completion_tokens\":3"));
        assert!(text.ends_with("data: [DONE]\n\n"));
    }

    #[tokio::test]
    async fn cut_after_counts_content_pieces() {
        let directives = Directives {
            cut_after: Some(1),
            ..Directives::default()
        };
        let state = MockState::new(MockConfig::default());
        let response = response(&state, &reply(None), false, &directives, Duration::ZERO);
        let result = axum::body::to_bytes(response.into_body(), usize::MAX).await;
        assert!(result.is_err(), "a cut stream must end in an error");
    }
}
