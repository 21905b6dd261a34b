//! `POST /v1/messages`, Anthropic's Messages API: validation, tool-use detection and the
//! non-streamed reply (streaming is in [`stream`]).

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::directives;
use crate::errors::{error, request_id, Dialect};
use crate::record::wants_stream;
use crate::reply::{prompt_tokens, text, tool_args, unix_now, Reply, Tool};
use crate::server::{admit, json_response, preempt, shape};
use crate::state::MockState;

mod stream;

/// `POST /v1/messages`.
pub(crate) async fn messages(
    State(state): State<MockState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let dialect = Dialect::Anthropic;
    let (seq, body) = match admit(&state, dialect, &method, &uri, &headers, Some(&body), None) {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let bad = |message: &str| error(dialect, StatusCode::BAD_REQUEST, message, seq);
    let Some(full_model) = body.get("model").and_then(Value::as_str) else {
        return bad("model: Field required");
    };
    let max_tokens = body.get("max_tokens");
    if !max_tokens.is_some_and(|n| n.is_u64() || n.is_i64()) {
        return bad("max_tokens: Field required (an integer)");
    }
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return bad("messages: Field required");
    };
    let (model, directives) = directives::split(full_model);
    let stream = wants_stream(&body);
    if let Some(response) = preempt(&state, dialect, &directives, seq, stream).await {
        return response;
    }
    let (pieces, delay) = shape(&state, &directives);
    let reply = Reply {
        seq,
        created: unix_now(),
        model,
        prompt_tokens: prompt_tokens(&body),
        pieces,
        tool: tool_use(&body, messages),
    };
    let mut response = if stream {
        stream::response(&state, &reply, &directives, delay)
    } else {
        non_stream(&reply)
    };
    response.headers_mut().insert("request-id", request_id(seq));
    response
}

/// The tool to use: with a non-empty `tools` list, unless the last message holds a tool result.
fn tool_use<'a>(body: &'a Value, messages: &[Value]) -> Option<Tool<'a>> {
    let tool = body.get("tools")?.as_array()?.first()?;
    let answered = messages
        .last()
        .and_then(|m| m.get("content")?.as_array())
        .is_some_and(|blocks| {
            blocks
                .iter()
                .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        });
    if answered {
        return None;
    }
    let name = tool
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("mock_tool");
    Some(Tool::new(
        name,
        tool_args(tool.pointer("/input_schema/properties")),
    ))
}

#[derive(Serialize)]
struct Message<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [Block<'a>; 1],
    stop_reason: &'static str,
    stop_sequence: Option<()>,
    usage: Usage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: &'a str,
        input: &'a Value,
    },
}

#[derive(Serialize)]
struct Usage {
    input_tokens: u64,
    output_tokens: u64,
}

fn non_stream(reply: &Reply<'_>) -> Response {
    let (block, stop_reason) = match &reply.tool {
        Some(tool) => {
            let block = Block::ToolUse {
                id: format!("toolu_mock{}", reply.seq),
                name: tool.name,
                input: &tool.input,
            };
            (block, "tool_use")
        }
        None => {
            let block = Block::Text {
                text: text(reply.pieces),
            };
            (block, "end_turn")
        }
    };
    let message = Message {
        id: format!("msg_mock{}", reply.seq),
        kind: "message",
        role: "assistant",
        model: reply.model,
        content: [block],
        stop_reason,
        stop_sequence: None,
        usage: Usage {
            input_tokens: reply.prompt_tokens,
            output_tokens: reply.completion_tokens(),
        },
    };
    let body = serde_json::to_vec(&message).unwrap_or_default();
    json_response(StatusCode::OK, body)
}
