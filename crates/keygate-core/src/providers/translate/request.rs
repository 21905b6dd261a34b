//! Request translation, both directions: OpenAI Chat Completions -> Anthropic Messages here,
//! Anthropic Messages -> OpenAI Chat Completions in [`to_openai`].
//!
//! It maps messages (system prompts, text, images, PDFs, tool calls and tool results), sampling
//! parameters, tools and tool choice, and drops parameters the other side lacks. A request that
//! cannot be expressed (e.g. `n > 1`, audio parts, Anthropic server tools) is a
//! [`TranslateError`]. It does not check what the upstream checks itself (model names, value
//! ranges, JSON schemas); the one exception is `temperature`, clamped to Anthropic's 0..=1.

use serde_json::{json, Map, Value};

use super::{as_count, str_at, TranslateError};

mod to_openai;

pub use to_openai::anthropic_to_openai_request;

/// `max_tokens` for Anthropic when the OpenAI caller gave none (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

type Obj = Map<String, Value>;

const TOOL_CHOICE_EXPECTED: &str =
    "\"auto\", \"none\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}";

fn invalid(field: impl Into<String>, expected: &'static str) -> TranslateError {
    TranslateError::InvalidField {
        field: field.into(),
        expected,
    }
}

/// `req[key]`, treating JSON `null` as absent.
fn present<'a>(req: &'a Obj, key: &str) -> Option<&'a Value> {
    req.get(key).filter(|v| !v.is_null())
}

fn messages_of(req: &Value) -> Result<(&Obj, &Vec<Value>), TranslateError> {
    let req = req.as_object().ok_or(TranslateError::NotAnObject)?;
    match req.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => Ok((req, messages)),
        _ => Err(TranslateError::NoMessages),
    }
}

/// OpenAI chat request -> Anthropic Messages request. `upstream_model` replaces `model`.
pub fn openai_to_anthropic_request(
    req: &Value,
    upstream_model: &str,
) -> Result<Value, TranslateError> {
    let (req, messages) = messages_of(req)?;
    if let Some(n) = present(req, "n") {
        match as_count(Some(n)) {
            Some(1) => {}
            Some(_) => {
                return Err(TranslateError::UnsupportedParameter {
                    param: "n",
                    reason: "only one choice can be generated per request",
                })
            }
            None => return Err(invalid("n", "a positive integer")),
        }
    }
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        let role =
            str_at(message, "role").ok_or_else(|| invalid(format!("{path}.role"), "a string"))?;
        let (role, blocks) = match role {
            "system" | "developer" => {
                let text = plain_text(message.get("content"), &format!("{path}.content"))?;
                if !text.is_empty() {
                    system.push(text);
                }
                continue;
            }
            "user" => ("user", openai_parts(message.get("content"), &path)?),
            "assistant" => ("assistant", assistant_blocks(message, &path)?),
            "tool" => ("user", vec![tool_result(message, &path)?]),
            other => return Err(TranslateError::UnsupportedRole(other.to_owned())),
        };
        match turns.last_mut() {
            _ if blocks.is_empty() => {}
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, blocks)| anthropic_message(role, blocks))
        .collect();

    let mut out = Obj::new();
    out.insert("model".into(), json!(upstream_model));
    if !system.is_empty() {
        out.insert("system".into(), json!(system.join("\n\n")));
    }
    out.insert("messages".into(), Value::Array(messages));
    let max_tokens = match present(req, "max_completion_tokens").or(present(req, "max_tokens")) {
        None => DEFAULT_MAX_TOKENS,
        Some(v) => as_count(Some(v))
            .filter(|n| *n > 0)
            .ok_or_else(|| invalid("max_tokens", "a positive integer"))?,
    };
    out.insert("max_tokens".into(), json!(max_tokens));
    if let Some(t) = present(req, "temperature") {
        let t = t
            .as_f64()
            .ok_or_else(|| invalid("temperature", "a number"))?;
        out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    copy_number(req, "top_p", &mut out)?;
    if let Some(stop) = present(req, "stop") {
        let stops = match stop {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => return Err(invalid("stop", "a string or an array of strings")),
        };
        let stops: Vec<&str> = stops.into_iter().filter(|s| !s.is_empty()).collect();
        if !stops.is_empty() {
            out.insert("stop_sequences".into(), json!(stops));
        }
    }
    copy_bool(req, "stream", &mut out)?;
    let tools = match present(req, "tools") {
        Some(Value::Array(tools)) => tools
            .iter()
            .enumerate()
            .map(|(i, t)| openai_tool(t, i))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(invalid("tools", "an array")),
        None => Vec::new(),
    };
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        let mut choice = match present(req, "tool_choice") {
            None => None,
            Some(Value::String(s)) if s == "auto" => Some(json!({"type": "auto"})),
            Some(Value::String(s)) if s == "required" => Some(json!({"type": "any"})),
            Some(Value::String(s)) if s == "none" => Some(json!({"type": "none"})),
            Some(v) => match v.pointer("/function/name").and_then(Value::as_str) {
                Some(name) if str_at(v, "type") == Some("function") => {
                    Some(json!({"type": "tool", "name": name}))
                }
                _ => return Err(invalid("tool_choice", TOOL_CHOICE_EXPECTED)),
            },
        };
        if present(req, "parallel_tool_calls").and_then(Value::as_bool) == Some(false) {
            let choice = choice.get_or_insert_with(|| json!({"type": "auto"}));
            if let Some(obj) = choice
                .as_object_mut()
                .filter(|o| o.get("type") != Some(&json!("none")))
            {
                obj.insert("disable_parallel_tool_use".into(), json!(true));
            }
        }
        if let Some(choice) = choice {
            out.insert("tool_choice".into(), choice);
        }
    }
    if let Some(user) = present(req, "user")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    Ok(Value::Object(out))
}

fn copy_number(req: &Obj, key: &'static str, out: &mut Obj) -> Result<(), TranslateError> {
    if let Some(v) = present(req, key) {
        if !v.is_number() {
            return Err(invalid(key, "a number"));
        }
        out.insert(key.into(), v.clone());
    }
    Ok(())
}

fn copy_bool(req: &Obj, key: &'static str, out: &mut Obj) -> Result<(), TranslateError> {
    if let Some(v) = present(req, key) {
        if !v.is_boolean() {
            return Err(invalid(key, "a boolean"));
        }
        out.insert(key.into(), v.clone());
    }
    Ok(())
}

/// An Anthropic message; user turns put tool results first, as Anthropic requires; a lone
/// plain text block becomes string content.
fn anthropic_message(role: &str, mut blocks: Vec<Value>) -> Value {
    if role == "user" {
        blocks.sort_by_key(|b| str_at(b, "type") != Some("tool_result"));
    }
    if let [block] = blocks.as_slice() {
        if let (Some(text), Some(2)) = (str_at(block, "text"), block.as_object().map(Obj::len)) {
            return json!({"role": role, "content": text});
        }
    }
    json!({"role": role, "content": blocks})
}

/// Text of OpenAI content that may only hold text (system, developer, tool messages).
fn plain_text(content: Option<&Value>, path: &str) -> Result<String, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                match str_at(part, "type") {
                    Some("text") => texts.push(
                        str_at(part, "text")
                            .ok_or_else(|| invalid(format!("{path}[{j}].text"), "a string"))?,
                    ),
                    Some(other) => {
                        return Err(TranslateError::UnsupportedContentPart(other.to_owned()))
                    }
                    None => return Err(invalid(format!("{path}[{j}].type"), "a string")),
                }
            }
            Ok(texts.join("\n"))
        }
        Some(_) => Err(invalid(path, "a string or an array of text parts")),
    }
}

fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({"type": "text", "text": text}))
}

/// OpenAI message content (string or parts) -> Anthropic blocks; empty text is dropped.
fn openai_parts(content: Option<&Value>, path: &str) -> Result<Vec<Value>, TranslateError> {
    let parts = match content {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => return Ok(text_block(s).into_iter().collect()),
        Some(Value::Array(parts)) => parts,
        Some(_) => {
            return Err(invalid(
                format!("{path}.content"),
                "a string or an array of content parts",
            ))
        }
    };
    let mut blocks = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{path}.content[{j}]");
        let block = match str_at(part, "type") {
            Some("text") => text_block(
                str_at(part, "text").ok_or_else(|| invalid(format!("{at}.text"), "a string"))?,
            ),
            Some("refusal") => str_at(part, "refusal").and_then(text_block),
            Some("image_url") => {
                let url = part
                    .get("image_url")
                    .and_then(|u| u.as_str().or_else(|| str_at(u, "url")));
                let url = url.ok_or_else(|| invalid(format!("{at}.image_url.url"), "a string"))?;
                Some(json!({"type": "image", "source": image_source(url, &at)?}))
            }
            Some("file") => {
                let data = part.pointer("/file/file_data").and_then(Value::as_str);
                let data = data.ok_or(TranslateError::UnsupportedContentPart(
                    "file (without file_data)".into(),
                ))?;
                let data = data
                    .strip_prefix("data:application/pdf;base64,")
                    .unwrap_or(data);
                let source =
                    json!({"type": "base64", "media_type": "application/pdf", "data": data});
                Some(json!({"type": "document", "source": source}))
            }
            Some(other) => return Err(TranslateError::UnsupportedContentPart(other.to_owned())),
            None => return Err(invalid(format!("{at}.type"), "a string")),
        };
        blocks.extend(block);
    }
    Ok(blocks)
}

/// An image URL -> Anthropic image source: `data:` URLs become base64, http(s) URLs `url`.
fn image_source(url: &str, at: &str) -> Result<Value, TranslateError> {
    let bad = |reason| TranslateError::InvalidImage {
        field: at.to_owned(),
        reason,
    };
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| bad("a data URL needs a comma before its data"))?;
        let media_type = meta
            .strip_suffix(";base64")
            .ok_or_else(|| bad("only base64 data URLs are supported"))?;
        return Ok(json!({"type": "base64", "media_type": media_type, "data": data}));
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Ok(json!({"type": "url", "url": url}));
    }
    Err(bad("the URL must be an http(s) URL or a base64 data URL"))
}

fn assistant_blocks(message: &Value, path: &str) -> Result<Vec<Value>, TranslateError> {
    let mut blocks = openai_parts(message.get("content"), path)?;
    let calls = match message.get("tool_calls") {
        None | Some(Value::Null) => return Ok(blocks),
        Some(Value::Array(calls)) => calls,
        Some(_) => return Err(invalid(format!("{path}.tool_calls"), "an array")),
    };
    for (j, call) in calls.iter().enumerate() {
        let at = format!("{path}.tool_calls[{j}]");
        let id = str_at(call, "id").ok_or_else(|| invalid(format!("{at}.id"), "a string"))?;
        let function = call
            .get("function")
            .ok_or_else(|| invalid(format!("{at}.function"), "an object"))?;
        let name = str_at(function, "name")
            .ok_or_else(|| invalid(format!("{at}.function.name"), "a string"))?;
        let bad = |reason: String| TranslateError::InvalidToolArguments {
            call: id.to_owned(),
            reason,
        };
        let input = match function.get("arguments") {
            None | Some(Value::Null) => json!({}),
            Some(Value::String(s)) if s.trim().is_empty() => json!({}),
            Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| bad(e.to_string()))?,
            Some(other) => other.clone(),
        };
        if !input.is_object() {
            return Err(bad("it is not an object".into()));
        }
        blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok(blocks)
}

fn tool_result(message: &Value, path: &str) -> Result<Value, TranslateError> {
    let id = str_at(message, "tool_call_id")
        .ok_or_else(|| invalid(format!("{path}.tool_call_id"), "a string"))?;
    let text = plain_text(message.get("content"), &format!("{path}.content"))?;
    let mut block = json!({"type": "tool_result", "tool_use_id": id});
    if let (false, Some(obj)) = (text.is_empty(), block.as_object_mut()) {
        obj.insert("content".into(), json!(text));
    }
    Ok(block)
}

fn openai_tool(tool: &Value, i: usize) -> Result<Value, TranslateError> {
    match str_at(tool, "type") {
        Some("function") | None => {}
        Some(other) => return Err(TranslateError::UnsupportedTool(other.to_owned())),
    }
    let function = tool
        .get("function")
        .filter(|f| f.is_object())
        .ok_or_else(|| invalid(format!("tools[{i}].function"), "an object"))?;
    let name = str_at(function, "name")
        .ok_or_else(|| invalid(format!("tools[{i}].function.name"), "a string"))?;
    let mut schema = match function.get("parameters") {
        Some(Value::Object(p)) => p.clone(),
        _ => Obj::new(),
    };
    schema.entry("type").or_insert_with(|| json!("object"));
    if schema.get("type") == Some(&json!("object")) {
        schema.entry("properties").or_insert_with(|| json!({}));
    }
    let mut out = json!({"name": name, "input_schema": schema});
    if let (Some(d), Some(obj)) = (str_at(function, "description"), out.as_object_mut()) {
        obj.insert("description".into(), json!(d));
    }
    Ok(out)
}
