//! The deterministic content of replies, shared by both dialects: the text pieces, the token
//! estimate of a request, and the arguments of a mock tool call.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// Reply pieces: the first, then the others in a cycle. Each piece is one streamed chunk, and the
/// non-streamed text is their concatenation ("Hello from the keygate mock ...").
const WORDS: [&str; 8] = [
    "Hello",
    " from",
    " the",
    " keygate",
    " mock",
    " upstream",
    " server",
    ".",
];

/// What a reply is made of, in both streaming and non-streaming form.
pub(crate) struct Reply<'a> {
    pub seq: u64,
    pub created: u64,
    /// The model to echo (directives stripped).
    pub model: &'a str,
    pub prompt_tokens: u64,
    /// Text pieces, when the reply is text.
    pub pieces: usize,
    /// The tool call, when the reply is one.
    pub tool: Option<Tool<'a>>,
}

/// A mock tool call.
pub(crate) struct Tool<'a> {
    pub name: &'a str,
    /// The arguments.
    pub input: Value,
    /// The arguments as a JSON string.
    pub arguments: String,
}

impl Reply<'_> {
    /// Completion tokens: the text pieces, or the argument fragments of a tool call.
    pub fn completion_tokens(&self) -> u64 {
        match &self.tool {
            Some(tool) => fragments(&tool.arguments).len() as u64,
            None => self.pieces as u64,
        }
    }
}

impl<'a> Tool<'a> {
    /// A call of tool `name` with `input`.
    pub fn new(name: &'a str, input: Value) -> Tool<'a> {
        let arguments = input.to_string();
        Tool {
            name,
            input,
            arguments,
        }
    }
}

/// Piece `i` of a reply.
pub(crate) fn piece(i: usize) -> &'static str {
    if i == 0 {
        WORDS[0]
    } else {
        WORDS[1 + (i - 1) % (WORDS.len() - 1)]
    }
}

/// The whole text of an `n`-piece reply.
pub(crate) fn text(n: usize) -> String {
    let mut text = String::with_capacity(n * 8);
    for i in 0..n {
        text.push_str(piece(i));
    }
    text
}

/// A rough token count of a request: its message (and system) text length / 4, at least 1.
pub(crate) fn prompt_tokens(body: &Value) -> u64 {
    let mut chars = 0usize;
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        for message in messages {
            chars += message.get("content").map_or(0, content_len);
        }
    }
    chars += body.get("system").map_or(0, content_len);
    (chars as u64 / 4).max(1)
}

/// Text length of string content or of all text blocks of array content.
pub(crate) fn content_len(content: &Value) -> usize {
    match content {
        Value::String(text) => text.len(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|block| block.get("text").and_then(Value::as_str))
            .map(str::len)
            .sum(),
        _ => 0,
    }
}

/// Mock arguments for a tool whose JSON schema has `properties`: strings are `"mock"`, numbers
/// and integers `1`, booleans `true`, anything else `null`.
pub(crate) fn tool_args(properties: Option<&Value>) -> Value {
    let mut args = Map::new();
    if let Some(properties) = properties.and_then(Value::as_object) {
        for (name, schema) in properties {
            let value = match schema_type(schema) {
                Some("string") => Value::from("mock"),
                Some("integer" | "number") => Value::from(1),
                Some("boolean") => Value::Bool(true),
                _ => Value::Null,
            };
            args.insert(name.clone(), value);
        }
    }
    Value::Object(args)
}

/// A schema's `type`: the string, or the first non-`null` entry of a type list.
fn schema_type(schema: &Value) -> Option<&str> {
    match schema.get("type")? {
        Value::String(kind) => Some(kind),
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|kind| *kind != "null"),
        _ => None,
    }
}

/// Splits `s` into at least two fragments (when it has two or more characters), about three,
/// on character boundaries.
pub(crate) fn fragments(s: &str) -> Vec<&str> {
    let step = s.len().div_ceil(3).max(1);
    let mut parts = Vec::with_capacity(4);
    let mut start = 0;
    while start < s.len() {
        let mut end = (start + step).min(s.len());
        while !s.is_char_boundary(end) {
            end += 1;
        }
        parts.push(&s[start..end]);
        start = end;
    }
    parts
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_is_the_pieces() {
        assert_eq!(text(5), "Hello from the keygate mock");
        assert_eq!(text(0), "");
        assert_eq!(piece(8), " from");
        assert_eq!(text(9), format!("{}{}", text(8), " from"));
    }

    #[test]
    fn prompt_tokens_counts_text() {
        let body = json!({"system": "abcd", "messages": [
            {"role": "user", "content": "12345678"},
            {"role": "user", "content": [{"type": "text", "text": "abcd"}, {"type": "image"}]}
        ]});
        assert_eq!(prompt_tokens(&body), 4);
        assert_eq!(prompt_tokens(&json!({"messages": []})), 1);
    }

    #[test]
    fn tool_args_follow_the_schema() {
        let props = json!({
            "city": {"type": "string"}, "days": {"type": "integer"}, "t": {"type": "number"},
            "metric": {"type": "boolean"}, "tags": {"type": "array"}, "o": {"type": ["null", "string"]}
        });
        assert_eq!(
            tool_args(Some(&props)),
            json!({"city": "mock", "days": 1, "t": 1, "metric": true, "tags": null, "o": "mock"})
        );
        assert_eq!(tool_args(None), json!({}));
    }

    #[test]
    fn fragments_cover_the_string() {
        for s in ["{}", "{\"a\":\"mock\"}", "{\"é\":\"ü\"}", "x"] {
            let parts = fragments(s);
            assert_eq!(parts.concat(), s);
            assert!(parts.len() >= 2 || s.len() < 2, "{s}: {parts:?}");
        }
    }
}
