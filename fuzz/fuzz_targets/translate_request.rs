//! Request and response translation between the OpenAI and Anthropic dialects on arbitrary
//! JSON (the input must parse as JSON; anything else is only fed to `error_message`).
//!
//! Invariants: no panic; a translated request is an object naming the upstream model with a
//! `messages` array, and translating it back does not panic; a translated response is an object
//! of the other dialect's shape, and translating it back gives an object too; an upstream error
//! message is non-empty and bounded.

#![no_main]

use keygate_core::providers::translate::{
    anthropic_to_openai_request, anthropic_to_openai_response, anthropic_usage, error_message,
    openai_to_anthropic_request, openai_to_anthropic_response, openai_usage,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn check_request(translated: &Value, model: &str) {
    assert!(translated.is_object(), "{translated}");
    assert_eq!(translated.get("model").and_then(Value::as_str), Some(model));
    assert!(
        translated.get("messages").is_some_and(Value::is_array),
        "{translated}"
    );
}

fn check_openai_response(resp: &Value) {
    assert_eq!(
        resp.get("object").and_then(Value::as_str),
        Some("chat.completion")
    );
    let choices = resp.get("choices").and_then(Value::as_array);
    assert_eq!(choices.map(Vec::len), Some(1), "{resp}");
    assert!(resp.get("usage").is_some_and(Value::is_object), "{resp}");
}

fn check_anthropic_response(resp: &Value) {
    assert_eq!(resp.get("type").and_then(Value::as_str), Some("message"));
    assert!(resp.get("content").is_some_and(Value::is_array), "{resp}");
    assert!(
        resp.get("stop_reason").is_some_and(Value::is_string),
        "{resp}"
    );
    assert!(resp.get("usage").is_some_and(Value::is_object), "{resp}");
}

fuzz_target!(|input: &[u8]| {
    if let Some(message) = error_message(input) {
        assert!(!message.trim().is_empty());
        assert!(message.chars().count() <= 1001, "{}", message.len());
    }
    let Ok(value) = serde_json::from_slice::<Value>(input) else {
        return;
    };

    if let Ok(anthropic) = openai_to_anthropic_request(&value, "up-a") {
        check_request(&anthropic, "up-a");
        if let Ok(openai) = anthropic_to_openai_request(&anthropic, "up-o") {
            check_request(&openai, "up-o");
        }
    }
    if let Ok(openai) = anthropic_to_openai_request(&value, "up-o") {
        check_request(&openai, "up-o");
        if let Ok(anthropic) = openai_to_anthropic_request(&openai, "up-a") {
            check_request(&anthropic, "up-a");
        }
    }

    let openai = anthropic_to_openai_response(&value, "m");
    check_openai_response(&openai);
    check_anthropic_response(&openai_to_anthropic_response(&openai, "m"));
    let anthropic = openai_to_anthropic_response(&value, "m");
    check_anthropic_response(&anthropic);
    check_openai_response(&anthropic_to_openai_response(&anthropic, "m"));

    let _ = (openai_usage(&value), anthropic_usage(&value));
});
