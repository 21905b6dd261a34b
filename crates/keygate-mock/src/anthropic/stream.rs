//! Streamed Messages: Anthropic's exact event sequence (`message_start`, `content_block_start`,
//! `ping`, the deltas, `content_block_stop`, `message_delta`, `message_stop`).

use std::time::Duration;

use axum::response::Response;
use bytes::Bytes;
use serde_json::json;

use crate::directives::Directives;
use crate::reply::{fragments, piece, Reply};
use crate::sse::{event, Plan};
use crate::state::MockState;

/// Anthropic's ping frame, byte for byte (note the space).
const PING: &[u8] = b"event: ping\ndata: {\"type\": \"ping\"}\n\n";

/// The event stream for `reply`.
pub(super) fn response(
    state: &MockState,
    reply: &Reply<'_>,
    directives: &Directives,
    delay: Duration,
) -> Response {
    let mut frames: Vec<Bytes> = Vec::with_capacity(reply.pieces + 7);
    frames.push(event(
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": format!("msg_mock{}", reply.seq),
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": {"input_tokens": reply.prompt_tokens, "output_tokens": 1},
        }}),
    ));
    let block = match &reply.tool {
        Some(tool) => json!({
            "type": "tool_use",
            "id": format!("toolu_mock{}", reply.seq),
            "name": tool.name,
            "input": {},
        }),
        None => json!({"type": "text", "text": ""}),
    };
    frames.push(event(
        "content_block_start",
        &json!({"type": "content_block_start", "index": 0, "content_block": block}),
    ));
    frames.push(Bytes::from_static(PING));
    let delta = |delta: serde_json::Value| {
        event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        )
    };
    let stop_reason = match &reply.tool {
        Some(tool) => {
            for part in fragments(&tool.arguments) {
                frames.push(delta(
                    json!({"type": "input_json_delta", "partial_json": part}),
                ));
            }
            "tool_use"
        }
        None => {
            for i in 0..reply.pieces {
                frames.push(delta(json!({"type": "text_delta", "text": piece(i)})));
            }
            "end_turn"
        }
    };
    let pieces = frames.len() - 3;
    frames.push(event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    frames.push(event(
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": reply.completion_tokens()},
        }),
    ));
    frames.push(event("message_stop", &json!({"type": "message_stop"})));
    let plan = Plan {
        frames,
        first_piece: 3,
        pieces,
    };
    crate::sse::response(state, plan, directives, delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MockConfig;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn stall_after_counts_deltas_not_preamble() {
        let state = MockState::new(MockConfig::default());
        let reply = Reply {
            seq: 1,
            created: 1,
            model: "c",
            prompt_tokens: 1,
            pieces: 4,
            tool: None,
        };
        let directives = Directives {
            stall_after: Some(1),
            ..Directives::default()
        };
        let response = response(&state, &reply, &directives, Duration::ZERO);
        let mut body = response.into_body().into_data_stream();
        let mut names = Vec::new();
        let idle = Duration::from_millis(50);
        while let Ok(Some(Ok(frame))) = tokio::time::timeout(idle, body.next()).await {
            let text = String::from_utf8(frame.to_vec()).unwrap();
            names.push(text.lines().next().unwrap_or_default().to_owned());
        }
        assert_eq!(
            names,
            [
                "event: message_start",
                "event: content_block_start",
                "event: ping",
                "event: content_block_delta"
            ]
        );
        state.shutdown();
        assert!(matches!(body.next().await, Some(Err(_))));
    }
}
