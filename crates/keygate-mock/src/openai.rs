//! `POST /v1/chat/completions` and Azure's `POST /openai/deployments/{d}/chat/completions`:
//! validation, tool-call detection and the non-streamed reply (streaming is in [`stream`]).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::directives;
use crate::errors::{error, Dialect};
use crate::record::wants_stream;
use crate::reply::{prompt_tokens, text, tool_args, unix_now, Reply, Tool};
use crate::server::{admit, json_response, preempt, shape};
use crate::state::MockState;

mod stream;

/// `POST /v1/chat/completions`.
pub(crate) async fn chat(
    State(state): State<MockState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = (&method, &uri, &headers, &body[..]);
    complete(&state, Dialect::OpenAi, request, None).await
}

/// `POST /openai/deployments/{deployment}/chat/completions?api-version=V`.
pub(crate) async fn azure_chat(
    State(state): State<MockState>,
    Path(deployment): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = (&method, &uri, &headers, &body[..]);
    complete(&state, Dialect::Azure, request, Some(&deployment)).await
}

type Request<'a> = (&'a Method, &'a Uri, &'a HeaderMap, &'a [u8]);

async fn complete(
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
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return bad("Missing required parameter: 'messages'.");
    };
    let stream = wants_stream(&body);
    if let Some(response) = preempt(state, dialect, &directives, seq, stream).await {
        return response;
    }
    let (pieces, delay) = shape(state, &directives);
    let reply = Reply {
        seq,
        created: unix_now(),
        model,
        prompt_tokens: prompt_tokens(&body),
        pieces,
        tool: tool_call(&body, messages),
    };
    if stream {
        let usage = body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        stream::response(state, &reply, usage, &directives, delay)
    } else {
        non_stream(&reply)
    }
}

/// The tool call to make: with a non-empty `tools` list, unless the last message is a tool result.
fn tool_call<'a>(body: &'a Value, messages: &[Value]) -> Option<Tool<'a>> {
    let tool = body.get("tools")?.as_array()?.first()?;
    let last_role = messages.last().and_then(|m| m.get("role")?.as_str());
    if last_role == Some("tool") {
        return None;
    }
    let name = tool
        .pointer("/function/name")
        .or_else(|| tool.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("mock_tool");
    Some(Tool::new(
        name,
        tool_args(tool.pointer("/function/parameters/properties")),
    ))
}

#[derive(Serialize)]
struct Completion<'a> {
    id: String,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: Usage,
    system_fingerprint: Option<&'static str>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<String>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCall<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCall<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a>,
}

#[derive(Serialize)]
struct Function<'a> {
    name: &'a str,
    arguments: &'a str,
}

/// OpenAI's `usage` object.
#[derive(Serialize)]
pub(crate) struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

impl Usage {
    pub fn of(reply: &Reply<'_>) -> Usage {
        let completion_tokens = reply.completion_tokens();
        Usage {
            prompt_tokens: reply.prompt_tokens,
            completion_tokens,
            total_tokens: reply.prompt_tokens + completion_tokens,
        }
    }
}

fn non_stream(reply: &Reply<'_>) -> Response {
    let (message, finish_reason) = match &reply.tool {
        Some(tool) => {
            let call = ToolCall {
                id: format!("call_mock{}", reply.seq),
                kind: "function",
                function: Function {
                    name: tool.name,
                    arguments: &tool.arguments,
                },
            };
            let message = Message {
                role: "assistant",
                content: None,
                refusal: None,
                tool_calls: Some([call]),
            };
            (message, "tool_calls")
        }
        None => {
            let message = Message {
                role: "assistant",
                content: Some(text(reply.pieces)),
                refusal: None,
                tool_calls: None,
            };
            (message, "stop")
        }
    };
    let completion = Completion {
        id: format!("chatcmpl-mock{}", reply.seq),
        object: "chat.completion",
        created: reply.created,
        model: reply.model,
        choices: [Choice {
            index: 0,
            message,
            logprobs: None,
            finish_reason,
        }],
        usage: Usage::of(reply),
        system_fingerprint: None,
    };
    let body = serde_json::to_vec(&completion).unwrap_or_default();
    json_response(StatusCode::OK, body)
}
