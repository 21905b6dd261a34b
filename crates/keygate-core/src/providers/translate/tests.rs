//! Unit tests for request and non-stream response translation, usage and error envelopes.
//! Streams, the SSE parser and the malformed-input sweep have their own test files.

use serde_json::{json, Value};

use super::*;

fn o2a(req: Value) -> Value {
    openai_to_anthropic_request(&req, "claude-up").unwrap()
}

fn a2o(req: Value) -> Value {
    anthropic_to_openai_request(&req, "gpt-up").unwrap()
}

fn o2a_err(req: Value) -> String {
    openai_to_anthropic_request(&req, "m")
        .unwrap_err()
        .to_string()
}

fn a2o_err(req: Value) -> String {
    anthropic_to_openai_request(&req, "m")
        .unwrap_err()
        .to_string()
}

// ---- OpenAI -> Anthropic requests ----

#[test]
fn o2a_basic_system_user_and_defaults() {
    let out = o2a(json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": "Hello"},
        ],
    }));
    assert_eq!(
        out,
        json!({
            "model": "claude-up",
            "system": "Be brief.\n\nUse French.",
            "messages": [{"role": "user", "content": "Hello"}],
            "max_tokens": 4096,
        })
    );
}

#[test]
fn o2a_max_tokens_variants() {
    let base = |extra: Value| {
        let mut req = json!({"messages": [{"role": "user", "content": "x"}]});
        for (k, v) in extra.as_object().unwrap() {
            req[k] = v.clone();
        }
        req
    };
    assert_eq!(o2a(base(json!({"max_tokens": 10})))["max_tokens"], 10);
    assert_eq!(
        o2a(base(json!({"max_completion_tokens": 20})))["max_tokens"],
        20
    );
    let both = base(json!({"max_tokens": 10, "max_completion_tokens": 30}));
    assert_eq!(o2a(both)["max_tokens"], 30);
    assert_eq!(o2a(base(json!({"max_tokens": null})))["max_tokens"], 4096);
    assert_eq!(o2a(base(json!({"max_tokens": 64.0})))["max_tokens"], 64);
    assert_eq!(
        o2a_err(base(json!({"max_tokens": 0}))),
        "max_tokens must be a positive integer"
    );
    assert_eq!(
        o2a_err(base(json!({"max_tokens": "9"}))),
        "max_tokens must be a positive integer"
    );
}

#[test]
fn o2a_sampling_stop_stream_and_dropped_fields() {
    let out = o2a(json!({
        "messages": [{"role": "user", "content": "x"}],
        "temperature": 1.7, "top_p": 0.5, "stop": "END", "stream": true,
        "stream_options": {"include_usage": true}, "presence_penalty": 1, "frequency_penalty": 1,
        "logprobs": true, "top_logprobs": 2, "response_format": {"type": "json_object"},
        "seed": 7, "n": 1, "logit_bias": {"1": 2}, "store": true, "reasoning_effort": "low",
    }));
    assert_eq!(
        out,
        json!({
            "model": "claude-up",
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 4096, "temperature": 1.0, "top_p": 0.5,
            "stop_sequences": ["END"], "stream": true,
        })
    );
    let arr = o2a(json!({"messages": [{"role": "user", "content": "x"}], "stop": ["a", "", "b"]}));
    assert_eq!(arr["stop_sequences"], json!(["a", "b"]));
    let err = o2a_err(json!({"messages": [{"role": "user", "content": "x"}], "stop": 3}));
    assert_eq!(err, "stop must be a string or an array of strings");
    let err = o2a_err(json!({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}));
    assert_eq!(err, "stream must be a boolean");
    let err =
        o2a_err(json!({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}));
    assert_eq!(err, "temperature must be a number");
}

#[test]
fn o2a_n_greater_than_one_is_rejected() {
    let err = o2a_err(json!({"messages": [{"role": "user", "content": "x"}], "n": 3}));
    assert_eq!(
        err,
        "n is not supported for this model: only one choice can be generated per request"
    );
}

#[test]
fn o2a_images_and_files() {
    let out = o2a(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
    ]}]}));
    assert_eq!(
        out["messages"][0]["content"],
        json!([
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
        ])
    );
    let bad = |url: &str| {
        o2a_err(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}]}]}))
    };
    assert_eq!(
        bad("ftp://x/y.png"),
        "invalid image at messages[0].content[0]: the URL must be an http(s) URL or a base64 data URL"
    );
    assert!(bad("data:image/png,abc").contains("only base64 data URLs are supported"));
    assert!(bad("data:image/png;base64").contains("needs a comma"));
    let audio = o2a_err(json!({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]}));
    assert_eq!(audio, "unsupported content part type `input_audio`");
}

#[test]
fn o2a_tool_calls_and_results() {
    let out = o2a(json!({"messages": [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": ""}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
        {"role": "user", "content": "Thanks"},
    ]}));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "weather", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "21C"},
                {"type": "text", "text": "Thanks"},
            ]},
        ])
    );
}

#[test]
fn o2a_tool_arguments_must_be_a_json_object() {
    let with_args = |args: Value| {
        o2a_err(json!({"messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": args}}]},
        ]}))
    };
    let err = with_args(json!("{not json"));
    assert!(
        err.starts_with("the arguments of tool call `call_9` must be a JSON object"),
        "{err}"
    );
    let err = with_args(json!("[1,2]"));
    assert!(err.ends_with("it is not an object"), "{err}");
}

#[test]
fn o2a_merges_same_role_and_drops_empty_messages() {
    let out = o2a(json!({"messages": [
        {"role": "user", "content": "a"},
        {"role": "user", "content": [{"type": "text", "text": "b"}]},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"},
        {"role": "assistant", "content": "e"},
    ]}));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [
                {"type": "text", "text": "a"}, {"type": "text", "text": "b"}, {"type": "text", "text": "c"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "d"}, {"type": "text", "text": "e"}]},
        ])
    );
}

#[test]
fn o2a_tools_and_tool_choice() {
    let tools = json!([
        {"type": "function", "function": {"name": "a", "description": "A tool",
            "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}},
        {"type": "function", "function": {"name": "b"}},
    ]);
    let req = |choice: Value, parallel: Value| {
        o2a(
            json!({"messages": [{"role": "user", "content": "x"}], "tools": tools,
            "tool_choice": choice, "parallel_tool_calls": parallel}),
        )
    };
    let out = req(Value::Null, Value::Null);
    assert_eq!(
        out["tools"],
        json!([
            {"name": "a", "description": "A tool", "input_schema":
                {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}},
            {"name": "b", "input_schema": {"type": "object", "properties": {}}},
        ])
    );
    assert!(out.get("tool_choice").is_none());
    assert_eq!(
        req(json!("auto"), Value::Null)["tool_choice"],
        json!({"type": "auto"})
    );
    assert_eq!(
        req(json!("required"), Value::Null)["tool_choice"],
        json!({"type": "any"})
    );
    assert_eq!(
        req(json!("none"), json!(false))["tool_choice"],
        json!({"type": "none"})
    );
    let named = json!({"type": "function", "function": {"name": "b"}});
    assert_eq!(
        req(named.clone(), Value::Null)["tool_choice"],
        json!({"type": "tool", "name": "b"})
    );
    assert_eq!(
        req(named, json!(false))["tool_choice"],
        json!({"type": "tool", "name": "b", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        req(Value::Null, json!(false))["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    assert!(req(json!("auto"), json!(true))["tool_choice"]
        .get("disable_parallel_tool_use")
        .is_none());
    let no_tools =
        o2a(json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}));
    assert!(no_tools.get("tool_choice").is_none());
    let custom = o2a_err(json!({"messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "custom", "custom": {"name": "x"}}]}));
    assert_eq!(custom, "unsupported tool type `custom`");
    let bad_choice = o2a_err(json!({"messages": [{"role": "user", "content": "x"}],
        "tools": tools, "tool_choice": "sometimes"}));
    assert!(
        bad_choice.starts_with("tool_choice must be"),
        "{bad_choice}"
    );
}

#[test]
fn o2a_user_becomes_metadata() {
    let out = o2a(json!({"messages": [{"role": "user", "content": "x"}], "user": "u-42"}));
    assert_eq!(out["metadata"], json!({"user_id": "u-42"}));
}

#[test]
fn o2a_shape_errors() {
    assert_eq!(
        o2a_err(json!([1])),
        "the request body must be a JSON object"
    );
    assert_eq!(o2a_err(json!({})), "messages must be a non-empty array");
    assert_eq!(
        o2a_err(json!({"messages": []})),
        "messages must be a non-empty array"
    );
    assert_eq!(
        o2a_err(json!({"messages": "hi"})),
        "messages must be a non-empty array"
    );
    assert_eq!(
        o2a_err(json!({"messages": [3]})),
        "messages[0].role must be a string"
    );
    assert_eq!(
        o2a_err(json!({"messages": [{"role": "function", "content": "x"}]})),
        "unsupported message role `function`"
    );
    assert_eq!(
        o2a_err(json!({"messages": [{"role": "user", "content": 5}]})),
        "messages[0].content must be a string or an array of content parts"
    );
    assert_eq!(
        o2a_err(json!({"messages": [{"role": "tool", "content": "x"}]})),
        "messages[0].tool_call_id must be a string"
    );
}

// ---- Anthropic -> OpenAI requests ----

#[test]
fn a2o_basic_and_parameters() {
    let out = a2o(json!({
        "model": "claude-x", "max_tokens": 100, "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hi"}],
        "temperature": 0.3, "top_p": 0.9, "top_k": 5, "stop_sequences": ["###"],
        "stream": true, "metadata": {"user_id": "u-1"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }));
    assert_eq!(
        out,
        json!({
            "model": "gpt-up",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            "max_tokens": 100, "temperature": 0.3, "top_p": 0.9, "stop": ["###"],
            "stream": true, "stream_options": {"include_usage": true}, "user": "u-1",
        })
    );
}

#[test]
fn a2o_system_blocks_and_content_blocks() {
    let out = a2o(json!({
        "max_tokens": 10,
        "system": [{"type": "text", "text": "One.", "cache_control": {"type": "ephemeral"}},
                   {"type": "text", "text": "Two."}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Look:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
        ]}],
    }));
    assert_eq!(
        out["messages"][0],
        json!({"role": "system", "content": "One.\n\nTwo."})
    );
    assert_eq!(
        out["messages"][1]["content"],
        json!([
            {"type": "text", "text": "Look:"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            {"type": "file", "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBE"}},
        ])
    );
    let text_only = a2o(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}));
    assert_eq!(
        text_only["messages"][0],
        json!({"role": "user", "content": "a\nb"})
    );
}

#[test]
fn a2o_tool_use_and_tool_results() {
    let out = a2o(json!({"max_tokens": 10, "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "time", "input": {}},
        ]},
        {"role": "user", "content": [
            {"type": "text", "text": "here you go"},
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
                "content": [{"type": "text", "text": "no"}, {"type": "text", "text": "clock"}]},
        ]},
    ]}));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "time", "arguments": "{}"}},
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "no\nclock"},
            {"role": "user", "content": "here you go"},
        ])
    );
}

#[test]
fn a2o_images_in_tool_results_move_to_a_user_message() {
    let out = a2o(json!({"messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "shot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}}]}]},
    ]}));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "shot", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "(see the attached image)"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}}]},
        ])
    );
}

#[test]
fn a2o_tools_and_tool_choice() {
    let tools = json!([
        {"name": "a", "description": "A", "input_schema": {"type": "object", "properties": {}}, "cache_control": {"type": "ephemeral"}},
        {"type": "custom", "name": "b", "input_schema": {"type": "object"}},
    ]);
    let req = |choice: Value| {
        a2o(
            json!({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": choice}),
        )
    };
    let out = req(Value::Null);
    assert_eq!(
        out["tools"],
        json!([
            {"type": "function", "function": {"name": "a", "description": "A", "parameters": {"type": "object", "properties": {}}}},
            {"type": "function", "function": {"name": "b", "parameters": {"type": "object"}}},
        ])
    );
    assert_eq!(req(json!({"type": "auto"}))["tool_choice"], "auto");
    assert_eq!(req(json!({"type": "any"}))["tool_choice"], "required");
    assert_eq!(req(json!({"type": "none"}))["tool_choice"], "none");
    let one = req(json!({"type": "tool", "name": "a", "disable_parallel_tool_use": true}));
    assert_eq!(
        one["tool_choice"],
        json!({"type": "function", "function": {"name": "a"}})
    );
    assert_eq!(one["parallel_tool_calls"], false);
    let server = a2o_err(json!({"messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}]}));
    assert_eq!(server, "unsupported tool type `web_search_20250305`");
}

#[test]
fn a2o_errors() {
    assert_eq!(
        a2o_err(json!("x")),
        "the request body must be a JSON object"
    );
    assert_eq!(
        a2o_err(json!({"messages": []})),
        "messages must be a non-empty array"
    );
    assert_eq!(
        a2o_err(json!({"messages": [{"role": "system", "content": "x"}]})),
        "unsupported message role `system`"
    );
    assert_eq!(
        a2o_err(json!({"messages": [{"role": "user", "content": [{"type": "server_tool_use"}]}]})),
        "unsupported content block type `server_tool_use`"
    );
    assert_eq!(
        a2o_err(json!({"messages": [{"role": "user", "content": null}]})),
        "messages[0].content must be a string or an array of content blocks"
    );
    assert_eq!(
        a2o_err(json!({"messages": [{"role": "user", "content": "x"}], "system": 4})),
        "system must be a string or an array of text blocks"
    );
}

// ---- round trips ----

#[test]
fn round_trip_openai_anthropic_openai_keeps_meaning() {
    let original = json!({
        "model": "gpt-4o", "max_tokens": 300, "temperature": 0.5, "stop": ["X"], "user": "u",
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            {"role": "assistant", "content": "done"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "number"}}}}}],
        "tool_choice": "required",
    });
    let anthropic = openai_to_anthropic_request(&original, "claude").unwrap();
    let back = anthropic_to_openai_request(&anthropic, "gpt-4o").unwrap();
    assert_eq!(back["messages"], original["messages"]);
    assert_eq!(back["tools"], original["tools"]);
    for key in [
        "model",
        "max_tokens",
        "temperature",
        "stop",
        "user",
        "tool_choice",
    ] {
        assert_eq!(back[key], original[key], "{key}");
    }
}

#[test]
fn round_trip_anthropic_openai_anthropic_keeps_meaning() {
    let original = json!({
        "model": "claude", "max_tokens": 50, "system": "sys", "stop_sequences": ["Z"],
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "t"},
                {"type": "tool_use", "id": "tu", "name": "f", "input": {"k": [1, 2]}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "tu", "content": "r"},
                {"type": "text", "text": "more"}]},
        ],
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object", "properties": {}}}],
        "tool_choice": {"type": "tool", "name": "f"},
        "metadata": {"user_id": "u"},
    });
    let openai = anthropic_to_openai_request(&original, "gpt").unwrap();
    let back = openai_to_anthropic_request(&openai, "claude").unwrap();
    assert_eq!(back, original);
}

// ---- responses ----

#[test]
fn anthropic_response_to_openai() {
    let resp = json!({
        "id": "msg_01ABC", "type": "message", "role": "assistant", "model": "claude-sonnet-4",
        "content": [
            {"type": "thinking", "thinking": "...", "signature": "s"},
            {"type": "text", "text": "Hello "}, {"type": "text", "text": "there"},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"x": 1}},
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20},
    });
    let out = anthropic_to_openai_response(&resp, "my-model");
    assert_eq!(out["id"], "chatcmpl-01ABC");
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["model"], "my-model");
    assert!(out["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(
        out["choices"],
        json!([{"index": 0, "logprobs": null, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Hello there", "refusal": null,
            "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}],
        }}])
    );
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 130, "completion_tokens": 5, "total_tokens": 135,
            "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 20}})
    );
    // Back again: the three input counts are recovered.
    let back = openai_to_anthropic_response(&out, "m");
    assert_eq!(
        back["usage"],
        json!({"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 20})
    );
}

#[test]
fn stop_and_finish_reasons() {
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
    ] {
        let out = anthropic_to_openai_response(&json!({"stop_reason": stop}), "m");
        assert_eq!(out["choices"][0]["finish_reason"], finish, "{stop}");
    }
    for (finish, stop) in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
        ("weird", "end_turn"),
    ] {
        let resp = json!({"choices": [{"message": {"content": "x"}, "finish_reason": finish}]});
        assert_eq!(
            openai_to_anthropic_response(&resp, "m")["stop_reason"],
            stop,
            "{finish}"
        );
    }
}

#[test]
fn openai_response_to_anthropic() {
    let resp = json!({
        "id": "chatcmpl-XYZ", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Sure.",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":[1]}"}},
                {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "oops"}},
            ]}}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 7, "total_tokens": 127,
            "prompt_tokens_details": {"cached_tokens": 100}},
    });
    let out = openai_to_anthropic_response(&resp, "claude-alias");
    assert_eq!(
        out,
        json!({
            "id": "msg_XYZ", "type": "message", "role": "assistant", "model": "claude-alias",
            "content": [
                {"type": "text", "text": "Sure."},
                {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": [1]}},
                {"type": "tool_use", "id": "call_2", "name": "g", "input": {}},
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 20, "output_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100},
        })
    );
}

#[test]
fn openai_response_edge_cases() {
    let stop_with_tools = json!({"choices": [{"finish_reason": "stop", "message": {"content": null,
        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]}}]});
    assert_eq!(
        openai_to_anthropic_response(&stop_with_tools, "m")["stop_reason"],
        "tool_use"
    );
    let refusal = json!({"choices": [{"message": {"content": null, "refusal": "I can't."}}]});
    let out = openai_to_anthropic_response(&refusal, "m");
    assert_eq!(
        out["content"],
        json!([{"type": "text", "text": "I can't."}])
    );
    assert_eq!(out["stop_reason"], "refusal");
    let empty = openai_to_anthropic_response(&json!(null), "m");
    assert_eq!(empty["content"], json!([]));
    assert_eq!(empty["stop_reason"], "end_turn");
    assert!(empty["id"].as_str().unwrap().starts_with("msg_"));
    let empty = anthropic_to_openai_response(&json!("garbage"), "m");
    assert_eq!(empty["choices"][0]["message"]["content"], "");
    assert_eq!(empty["usage"]["total_tokens"], 0);
    assert!(empty["id"].as_str().unwrap().starts_with("chatcmpl-"));
}

#[test]
fn usage_extraction() {
    let openai = json!({"usage": {"prompt_tokens": 50, "completion_tokens": 9,
        "prompt_tokens_details": {"cached_tokens": 30}}});
    assert_eq!(
        openai_usage(&openai),
        Some(Usage {
            input_tokens: 50,
            output_tokens: 9,
            cached_input_tokens: 30
        })
    );
    let anthropic = json!({"usage": {"input_tokens": 5, "output_tokens": 9,
        "cache_read_input_tokens": 30, "cache_creation_input_tokens": 15}});
    assert_eq!(
        anthropic_usage(&anthropic),
        Some(Usage {
            input_tokens: 50,
            output_tokens: 9,
            cached_input_tokens: 30
        })
    );
    assert_eq!(openai_usage(&json!({"usage": null})), None);
    assert_eq!(openai_usage(&json!({"usage": {}})), None);
    assert_eq!(
        anthropic_usage(&json!({"usage": {"input_tokens": "5"}})),
        None
    );
    let cached_too_big =
        json!({"usage": {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}}});
    assert_eq!(
        openai_usage(&cached_too_big).unwrap().cached_input_tokens,
        5
    );
    let huge = json!({"usage": {"input_tokens": u64::MAX, "cache_read_input_tokens": u64::MAX}});
    assert_eq!(anthropic_usage(&huge).unwrap().input_tokens, u64::MAX);
}

// ---- errors ----

#[test]
fn error_types() {
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (409, "invalid_request_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ] {
        assert_eq!(anthropic_error_type(status), kind, "{status}");
    }
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "invalid_request_error"),
        (404, "invalid_request_error"),
        (429, "rate_limit_exceeded"),
        (500, "server_error"),
        (503, "server_error"),
        (529, "server_error"),
    ] {
        assert_eq!(openai_error_type(status), kind, "{status}");
    }
}

#[test]
fn error_messages_from_bodies() {
    let m = |body: &[u8]| error_message(body);
    assert_eq!(
        m(br#"{"error":{"message":"bad key","type":"x"}}"#).as_deref(),
        Some("bad key")
    );
    assert_eq!(
        m(br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)
            .as_deref(),
        Some("Overloaded")
    );
    assert_eq!(m(br#"{"error":"plain"}"#).as_deref(), Some("plain"));
    assert_eq!(m(br#"{"message":"top"}"#).as_deref(), Some("top"));
    assert_eq!(m(br#"{"detail":"fastapi"}"#).as_deref(), Some("fastapi"));
    assert_eq!(
        m(br#"[{"error":{"message":"first"}}]"#).as_deref(),
        Some("first")
    );
    assert_eq!(m(br#""quoted""#).as_deref(), Some("quoted"));
    assert_eq!(
        m(b"  upstream connect error  ").as_deref(),
        Some("upstream connect error")
    );
    assert_eq!(
        m(b"\xff\xfebroken utf8").as_deref(),
        Some("\u{fffd}\u{fffd}broken utf8")
    );
    assert_eq!(m(b""), None);
    assert_eq!(m(b"   "), None);
    assert_eq!(m(br#"{"error":{"code":5}}"#), None);
    assert_eq!(m(br#"{"error":{"message":""}}"#), None);
    assert_eq!(m(b"42"), None);
    let long = "é".repeat(5000);
    let cut = m(long.as_bytes()).unwrap();
    assert_eq!(cut.chars().count(), 1001);
}

#[test]
fn error_bodies() {
    assert_eq!(
        anthropic_error_body(529, "busy"),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    );
    assert_eq!(
        openai_error_body(401, "no", Some("invalid_api_key")),
        json!({"error": {"message": "no", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})
    );
    assert_eq!(
        openai_error_body(500, "x", None)["error"]["code"],
        Value::Null
    );
}
