//! The config loader (`Config::parse`: `${VAR}` interpolation, then strict YAML) on arbitrary
//! text, with a fixed map for the environment (no process environment, no files), then each
//! parsed model built into its route as the live state does.
//!
//! Invariants: no panic (the YAML parser included); text without `$` interpolates to itself;
//! errors name a line inside the text or a field path; a model that builds has the name and
//! the `X-{Model}-Authorization` header of its config.

#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use keygate_core::config::interpolate::{interpolate, InterpolateError};
use keygate_core::config::{Config, ConfigError, Env};
use keygate_core::providers::{byok_header_name, ModelRoute};
use keygate_core::secrets::Secrets;
use libfuzzer_sys::fuzz_target;

fn env() -> HashMap<String, String> {
    [
        ("OPENAI_API_KEY", "sk-test-openai"),
        ("ANTHROPIC_API_KEY", "sk-ant-test"),
        ("KEYGATE_ADMIN_KEY", "sk-admin"),
        ("PORT", "4000"),
        ("EMPTY", ""),
        ("NESTED", "${OPENAI_API_KEY}"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let env = env();
    let lines = text.split_inclusive('\n').count();

    match interpolate(&text, &env) {
        Ok(out) if !text.contains('$') => assert_eq!(out, text),
        Ok(_) => {}
        Err(InterpolateError::Unset { line, .. } | InterpolateError::Malformed { line }) => {
            assert!((1..=lines).contains(&line), "line {line} of {lines}");
        }
    }

    let config = match Config::parse(&text, "fuzz.yaml", &env) {
        Ok(config) => config,
        Err(ConfigError::Invalid { path, message, .. }) => {
            assert!(
                !path.is_empty() && !message.is_empty(),
                "{path:?}: {message:?}"
            );
            return;
        }
        Err(ConfigError::Interpolate { .. }) => {
            assert!(text.contains("${"));
            return;
        }
        Err(ConfigError::Read { .. }) => panic!("parse read a file"),
    };

    let shared: Arc<dyn Env + Send + Sync> = Arc::new(env);
    let secrets = Secrets::new(Vec::new(), shared, &config.secrets.cache);
    for model in &config.models {
        let Ok(backend) = keygate_core::plugins::global()
            .build_backend(model, &keygate_plugin_api::CaptureClient::new(None))
        else {
            continue;
        };
        if let Ok(route) = ModelRoute::build(model, &secrets, backend, 0.0) {
            assert_eq!(route.name, model.name);
            assert_eq!(route.byok_header, byok_header_name(&model.name));
        }
    }
});
