use std::collections::HashMap;
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = [("OPENAI_KEY".to_owned(), "sk-test".to_owned())]
        .into_iter()
        .collect();
    Config::parse(text, "test.yaml", &env)
}

#[test]
fn design_example_parses() {
    let config = parse(
        r#"
listen: 127.0.0.1:4000
admin_key: ${KEYGATE_ADMIN_KEY:-admin}
database: sqlite://keygate.db
secrets:
  cache: { ttl: 300s, stale_if_error: 1h, negative_ttl: 10s }
  sources:
    - { type: env }
    - { type: dotenv, path: .env }
    - { type: vault, address: http://127.0.0.1:8200, mount: secret, auth: { method: token, token: "${OPENAI_KEY}" } }
    - { type: aws_secrets_manager, region: us-east-1, endpoint: http://127.0.0.1:5000 }
    - { type: azure_key_vault, vault_url: https://NAME.vault.azure.net }
    - { type: exec, command: [my-credential-helper] }
models:
  - name: gpt-4o-mini
    provider: openai
    model: gpt-4o-mini
    api_base: https://api.openai.com/v1
    api_key: secret:OPENAI_API_KEY
    byok: allow
    price: { input_per_mtok: 0.15, output_per_mtok: 0.60 }
    timeout: 30s
engine:
  mount: keygate
  default_lease_ttl: 768h
  max_lease_ttl: 768h
"#,
    )
    .unwrap();
    assert_eq!(config.admin_key.as_deref(), Some("admin"));
    assert_eq!(config.secrets.sources.len(), 6);
    assert_eq!(
        config.secrets.cache.stale_if_error,
        Duration::from_secs(3600)
    );
    assert_eq!(config.models[0].byok, Byok::Allow);
    assert_eq!(config.models[0].timeout, Some(Duration::from_secs(30)));
    assert_eq!(config.engine.max_lease_ttl, Duration::from_secs(768 * 3600));
}

#[test]
fn unknown_field_names_its_path() {
    let err = parse("models:\n  - name: a\n    provider: openai\n    colour: blue\n").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("models[0]"), "{text}");
    assert!(text.contains("colour"), "{text}");
}

#[test]
fn bad_enum_value_names_its_path() {
    let err =
        parse("models:\n  - name: a\n    provider: openai\n    byok: sometimes\n").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("models[0].byok"), "{text}");
}

#[test]
fn bad_duration_names_its_path() {
    let err = parse("secrets:\n  cache:\n    ttl: 5 parsecs\n").unwrap_err();
    assert!(err.to_string().contains("secrets.cache.ttl"), "{err}");
}

/// Found by the `config` fuzz target: a null top-level key (`?`) had an empty path.
#[test]
fn empty_top_level_key_is_named_top_level() {
    for text in ["?", "\"\": 1\n"] {
        match parse(text).unwrap_err() {
            ConfigError::Invalid { path, .. } => assert_eq!(path, "(top level)", "{text:?}"),
            other => panic!("{text:?}: {other}"),
        }
    }
}

#[test]
fn unset_variable_is_an_error() {
    let err = parse("admin_key: ${NOT_SET_ANYWHERE}\n").unwrap_err();
    assert!(err.to_string().contains("NOT_SET_ANYWHERE"), "{err}");
}

#[test]
fn empty_file_is_the_default_config() {
    let config = parse("\n").unwrap();
    assert!(config.models.is_empty());
    assert_eq!(config.engine.mount, "keygate");
    assert_eq!(config.limits.max_body_bytes, 10 * 1024 * 1024);
}

#[test]
fn several_keys_parse_as_a_list() {
    let config =
        parse("models:\n  - name: a\n    provider: openai\n    api_key: [env:A, env:B]\n").unwrap();
    let spec = config.models[0].api_key.as_ref().unwrap();
    assert_eq!(spec.refs(), vec!["env:A", "env:B"]);
}

#[test]
fn a_type_error_never_echoes_a_value_read_from_the_environment() {
    let err = parse("limits: { max_body_bytes: ${OPENAI_KEY} }\n")
        .unwrap_err()
        .to_string();
    assert!(!err.contains("sk-test"), "{err}");
    assert!(
        err.contains("max_body_bytes") && err.contains("*****"),
        "{err}"
    );
}

#[test]
fn router_section_defaults_and_values() {
    let config = parse("models: []\n").unwrap();
    assert_eq!(config.router, RouterConfig::default());
    assert_eq!(config.router.num_retries, 2);
    assert_eq!(config.router.retry_backoff, Duration::from_millis(100));
    assert_eq!(config.router.allowed_fails, 3);
    assert_eq!(config.router.cooldown, Duration::from_secs(30));
    let config = parse(
        "router: { num_retries: 4, retry_backoff: 250ms, allowed_fails: 1, cooldown: 2m }\n\
         models:\n  - { name: a, provider: openai, weight: 2.5, fallbacks: [b] }\n  \
         - { name: b, provider: openai }\n",
    )
    .unwrap();
    assert_eq!(config.router.num_retries, 4);
    assert_eq!(config.router.retry_backoff, Duration::from_millis(250));
    assert_eq!(config.router.allowed_fails, 1);
    assert_eq!(config.router.cooldown, Duration::from_secs(120));
    assert_eq!(config.models[0].weight, 2.5);
    assert_eq!(config.models[0].fallbacks, ["b"]);
    assert_eq!(config.models[1].weight, 1.0);
}

#[test]
fn bad_router_and_weight_values_name_their_field() {
    for (yaml, field) in [
        (
            "models:\n  - { name: a, provider: openai, weight: 0 }\n",
            "models[0].weight",
        ),
        (
            "models:\n  - { name: a, provider: openai, weight: -2 }\n",
            "models[0].weight",
        ),
        (
            "models:\n  - { name: a, provider: openai, weight: .nan }\n",
            "models[0].weight",
        ),
        ("router: { cooldown: 5x }\n", "router.cooldown"),
        ("router: { retry_backoff: soon }\n", "router.retry_backoff"),
        ("router: { allowed_fails: 0 }\n", "router.allowed_fails"),
        ("router: { num_retries: -1 }\n", "router.num_retries"),
        ("router: { retries: 1 }\n", "router"),
    ] {
        let text = parse(yaml).unwrap_err().to_string();
        assert!(text.contains(field), "{yaml}: {text}");
    }
    let text = parse("models:\n  - { name: a, provider: openai, weight: 0 }\n")
        .unwrap_err()
        .to_string();
    assert!(text.contains("greater than 0"), "{text}");
}
