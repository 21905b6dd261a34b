//! Routing mistakes in the config are refused at load, with the field that is wrong.

use keygate_core::config::Config;
use keygate_core::state::{build_http_client, LiveState};

use crate::common;

/// The error loading `yaml` gives: from parsing, else from building the live state.
fn load_error(yaml: &str) -> String {
    let env = common::env();
    let config = match Config::parse(yaml, "test.yaml", &env) {
        Ok(config) => config,
        Err(err) => return err.to_string(),
    };
    let client = build_http_client().unwrap();
    let ctx = keygate_core::secrets::SourceContext {
        client: &client,
        env: std::sync::Arc::new(env),
    };
    match LiveState::build(config, &ctx) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(err) => err.to_string(),
    }
}

fn entry(name: &str, extra: &str) -> String {
    format!("  - {{ name: {name}, provider: openai_compatible, api_base: http://127.0.0.1:9/v1{extra} }}\n")
}

#[test]
fn routing_mistakes_name_the_field() {
    let cases = [
        (
            format!(
                "models:\n{}{}",
                entry("a", ""),
                entry("b", ", fallbacks: [a, nope]")
            ),
            ["models[1].fallbacks", "`nope` is not a configured model"],
        ),
        (
            format!("models:\n{}", entry("a", ", fallbacks: [a]")),
            ["models[0].fallbacks", "cannot fall back to itself"],
        ),
        (
            format!("models:\n{}{}", entry("a", ""), entry("a", ", weight: 0")),
            ["models[1].weight", "greater than 0, got 0"],
        ),
        (
            format!("models:\n{}", entry("a", ", weight: -1.5")),
            ["models[0].weight", "greater than 0, got -1.5"],
        ),
        (
            format!(
                "router: {{ cooldown: 30 seconds }}\nmodels:\n{}",
                entry("a", "")
            ),
            ["router.cooldown", "invalid duration"],
        ),
        (
            format!(
                "router: {{ retry_backoff: -1s }}\nmodels:\n{}",
                entry("a", "")
            ),
            ["router.retry_backoff", "invalid duration"],
        ),
        (
            format!(
                "router: {{ allowed_fails: 0 }}\nmodels:\n{}",
                entry("a", "")
            ),
            ["router.allowed_fails", "at least 1"],
        ),
        (
            format!("router: {{ fallbacks: [] }}\nmodels:\n{}", entry("a", "")),
            ["router", "unknown field `fallbacks`"],
        ),
        (
            format!("models:\n{}{}", entry("a", ""), entry("a", ", byok: allow")),
            ["models[1].byok", "same byok policy"],
        ),
    ];
    for (yaml, expected) in cases {
        let error = load_error(&yaml);
        for part in expected {
            assert!(error.contains(part), "`{part}` not in: {error}\n{yaml}");
        }
    }
}
