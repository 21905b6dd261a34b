//! Anthropic Messages request -> OpenAI Chat Completions request.
//!
//! Maps the system prompt, text, image and PDF blocks, `tool_use` blocks (to assistant
//! `tool_calls`), `tool_result` blocks (to `tool` messages placed before the rest of their user
//! message), sampling parameters, tools and tool choice. Thinking blocks, `thinking`, `top_k`
//! and `cache_control` are dropped; server tools and other block types are a
//! [`TranslateError`]. It does not check what the upstream checks itself.

use serde_json::{json, Value};

use super::super::{as_count, str_at, TranslateError};
use super::{copy_bool, copy_number, invalid, messages_of, present, Obj};

/// Anthropic Messages request -> OpenAI chat request. `upstream_model` replaces `model`.
pub fn anthropic_to_openai_request(
    req: &Value,
    upstream_model: &str,
) -> Result<Value, TranslateError> {
    let (req, messages) = messages_of(req)?;
    let mut out_messages = Vec::new();
    match present(req, "system") {
        None => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => out_messages.push(json!({"role": "system", "content": s})),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::new();
            for (j, block) in blocks.iter().enumerate() {
                texts.push(
                    str_at(block, "text")
                        .ok_or_else(|| invalid(format!("system[{j}].text"), "a string"))?,
                );
            }
            let text = texts.join("\n\n");
            if !text.is_empty() {
                out_messages.push(json!({"role": "system", "content": text}));
            }
        }
        Some(_) => return Err(invalid("system", "a string or an array of text blocks")),
    }
    for (i, message) in messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        let role =
            str_at(message, "role").ok_or_else(|| invalid(format!("{path}.role"), "a string"))?;
        if role != "user" && role != "assistant" {
            return Err(TranslateError::UnsupportedRole(role.to_owned()));
        }
        let blocks = match message.get("content") {
            Some(Value::String(s)) => {
                out_messages.push(json!({"role": role, "content": s}));
                continue;
            }
            Some(Value::Array(blocks)) => blocks,
            _ => {
                return Err(invalid(
                    format!("{path}.content"),
                    "a string or an array of content blocks",
                ))
            }
        };
        if role == "user" {
            user_to_openai(blocks, &path, &mut out_messages)?;
        } else if let Some(message) = assistant_to_openai(blocks, &path)? {
            out_messages.push(message);
        }
    }

    let mut out = Obj::new();
    out.insert("model".into(), json!(upstream_model));
    out.insert("messages".into(), Value::Array(out_messages));
    if let Some(max) = present(req, "max_tokens") {
        let max = as_count(Some(max))
            .filter(|n| *n > 0)
            .ok_or_else(|| invalid("max_tokens", "a positive integer"))?;
        out.insert("max_tokens".into(), json!(max));
    }
    copy_number(req, "temperature", &mut out)?;
    copy_number(req, "top_p", &mut out)?;
    match present(req, "stop_sequences") {
        None => {}
        Some(Value::Array(items)) => {
            let stops: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            if !stops.is_empty() {
                out.insert("stop".into(), json!(stops));
            }
        }
        Some(_) => return Err(invalid("stop_sequences", "an array of strings")),
    }
    copy_bool(req, "stream", &mut out)?;
    if out.get("stream") == Some(&json!(true)) {
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    let tools = match present(req, "tools") {
        Some(Value::Array(tools)) => tools
            .iter()
            .enumerate()
            .map(|(i, t)| anthropic_tool(t, i))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(invalid("tools", "an array")),
        None => Vec::new(),
    };
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = present(req, "tool_choice") {
            let mapped = match str_at(choice, "type") {
                Some("auto") => json!("auto"),
                Some("any") => json!("required"),
                Some("none") => json!("none"),
                Some("tool") => {
                    let name = str_at(choice, "name")
                        .ok_or_else(|| invalid("tool_choice.name", "a string"))?;
                    json!({"type": "function", "function": {"name": name}})
                }
                _ => {
                    return Err(invalid(
                        "tool_choice.type",
                        "one of \"auto\", \"any\", \"tool\" or \"none\"",
                    ))
                }
            };
            out.insert("tool_choice".into(), mapped);
            if choice
                .get("disable_parallel_tool_use")
                .and_then(Value::as_bool)
                == Some(true)
            {
                out.insert("parallel_tool_calls".into(), json!(false));
            }
        }
    }
    if let Some(user) = req
        .get("metadata")
        .and_then(|m| str_at(m, "user_id"))
        .filter(|u| !u.is_empty())
    {
        out.insert("user".into(), json!(user));
    }
    Ok(Value::Object(out))
}

/// One Anthropic user message -> OpenAI `tool` messages (one per tool result, first) and then
/// a user message with the remaining text, images and documents. Images inside tool results
/// (OpenAI tool messages hold text only) move to the head of that user message.
fn user_to_openai(
    blocks: &[Value],
    path: &str,
    out: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    let mut parts = Vec::new();
    let mut moved_images = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{path}.content[{j}]");
        if str_at(block, "type") == Some("tool_result") {
            let id = str_at(block, "tool_use_id")
                .ok_or_else(|| invalid(format!("{at}.tool_use_id"), "a string"))?;
            let mut texts = Vec::new();
            match block.get("content") {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => texts.push(s.clone()),
                Some(Value::Array(inner)) => {
                    for (k, item) in inner.iter().enumerate() {
                        match anthropic_part(item, &format!("{at}.content[{k}]"))? {
                            Some(part) if str_at(&part, "type") == Some("text") => {
                                texts.extend(str_at(&part, "text").map(str::to_owned))
                            }
                            Some(part) => moved_images.push(part),
                            None => {}
                        }
                    }
                }
                Some(_) => {
                    return Err(invalid(
                        format!("{at}.content"),
                        "a string or an array of content blocks",
                    ))
                }
            }
            let mut text = texts.join("\n");
            if text.is_empty() && !moved_images.is_empty() {
                text = "(see the attached image)".to_owned();
            }
            out.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
        } else if let Some(part) = anthropic_part(block, &at)? {
            parts.push(part);
        }
    }
    moved_images.extend(parts);
    let parts = moved_images;
    if parts.is_empty() {
        return Ok(());
    }
    if parts.iter().all(|p| str_at(p, "type") == Some("text")) {
        let text: Vec<&str> = parts.iter().filter_map(|p| str_at(p, "text")).collect();
        out.push(json!({"role": "user", "content": text.join("\n")}));
    } else {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

/// An Anthropic text, image or document block -> an OpenAI content part (`None`: dropped).
fn anthropic_part(block: &Value, at: &str) -> Result<Option<Value>, TranslateError> {
    let source = block.get("source");
    let source_type = source.and_then(|s| str_at(s, "type"));
    let bad = |reason| TranslateError::InvalidImage {
        field: at.to_owned(),
        reason,
    };
    match str_at(block, "type") {
        Some("text") => {
            let text =
                str_at(block, "text").ok_or_else(|| invalid(format!("{at}.text"), "a string"))?;
            Ok(Some(json!({"type": "text", "text": text})))
        }
        Some("image") => {
            let url = match (source_type, source) {
                (Some("base64"), Some(s)) => match (str_at(s, "media_type"), str_at(s, "data")) {
                    (Some(media), Some(data)) => format!("data:{media};base64,{data}"),
                    _ => return Err(bad("a base64 source needs media_type and data strings")),
                },
                (Some("url"), Some(s)) => str_at(s, "url")
                    .ok_or_else(|| bad("a url source needs a url string"))?
                    .to_owned(),
                _ => return Err(bad("only base64 and url image sources are supported")),
            };
            Ok(Some(
                json!({"type": "image_url", "image_url": {"url": url}}),
            ))
        }
        Some("document") => match (source_type, source) {
            (Some("text"), Some(s)) => {
                Ok(str_at(s, "data").map(|t| json!({"type": "text", "text": t})))
            }
            (Some("base64"), Some(s)) if str_at(s, "media_type") == Some("application/pdf") => {
                let data = str_at(s, "data").unwrap_or_default();
                let name = str_at(block, "title").unwrap_or("document.pdf");
                let data = format!("data:application/pdf;base64,{data}");
                let file = json!({"filename": name, "file_data": data});
                Ok(Some(json!({"type": "file", "file": file})))
            }
            _ => Err(TranslateError::UnsupportedContentBlock(
                "document (other than base64 PDF or text)".into(),
            )),
        },
        Some(other) => Err(TranslateError::UnsupportedContentBlock(other.to_owned())),
        None => Err(invalid(format!("{at}.type"), "a string")),
    }
}

/// One Anthropic assistant message -> an OpenAI assistant message (`None` when it is empty).
/// Thinking blocks are dropped: OpenAI has no way to send them back.
fn assistant_to_openai(blocks: &[Value], path: &str) -> Result<Option<Value>, TranslateError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{path}.content[{j}]");
        match str_at(block, "type") {
            Some("text") => text.push_str(
                str_at(block, "text").ok_or_else(|| invalid(format!("{at}.text"), "a string"))?,
            ),
            Some("tool_use") => {
                let id =
                    str_at(block, "id").ok_or_else(|| invalid(format!("{at}.id"), "a string"))?;
                let name = str_at(block, "name")
                    .ok_or_else(|| invalid(format!("{at}.name"), "a string"))?;
                let arguments = block
                    .get("input")
                    .filter(|i| !i.is_null())
                    .map_or_else(|| "{}".to_owned(), Value::to_string);
                let function = json!({"name": name, "arguments": arguments});
                calls.push(json!({"id": id, "type": "function", "function": function}));
            }
            Some("thinking" | "redacted_thinking") => {}
            Some(other) => return Err(TranslateError::UnsupportedContentBlock(other.to_owned())),
            None => return Err(invalid(format!("{at}.type"), "a string")),
        }
    }
    Ok(match (text.is_empty(), calls.is_empty()) {
        (true, true) => None,
        (_, true) => Some(json!({"role": "assistant", "content": text})),
        (true, false) => Some(json!({"role": "assistant", "content": null, "tool_calls": calls})),
        (false, false) => Some(json!({"role": "assistant", "content": text, "tool_calls": calls})),
    })
}

fn anthropic_tool(tool: &Value, i: usize) -> Result<Value, TranslateError> {
    match str_at(tool, "type") {
        Some("custom") | None => {}
        Some(other) => return Err(TranslateError::UnsupportedTool(other.to_owned())),
    }
    let name =
        str_at(tool, "name").ok_or_else(|| invalid(format!("tools[{i}].name"), "a string"))?;
    let parameters = match tool.get("input_schema") {
        Some(schema @ Value::Object(_)) => schema.clone(),
        _ => json!({"type": "object", "properties": {}}),
    };
    let mut function = json!({"name": name, "parameters": parameters});
    if let (Some(d), Some(obj)) = (str_at(tool, "description"), function.as_object_mut()) {
        obj.insert("description".into(), json!(d));
    }
    Ok(json!({"type": "function", "function": function}))
}
