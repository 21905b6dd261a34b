//! Bring-your-own-key: a model name (the input's first line) becomes its
//! `X-{Model}-Authorization` header name, and the rest of the input, as that header's value, is
//! read under each policy (`deny`, `allow`, `require`) through the real `byok_key` path.
//!
//! Invariants: no panic; the header name is `x-{slug}-authorization` with one byte per character
//! of the name, case-insensitive in ASCII, and is the one the model's route uses; a key taken
//! from the header is non-empty printable ASCII found in the value; the three policies agree
//! on whether a key was sent.

#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use keygate_core::auth::byok_key;
use keygate_core::config::{Byok, Env, ModelConfig};
use keygate_core::providers::{byok_header_name, ModelRoute};
use keygate_core::secrets::{ExposeSecret, Secrets};
use libfuzzer_sys::fuzz_target;

fn route(name: &str, byok: Byok) -> Option<ModelRoute> {
    let config = ModelConfig {
        name: name.to_owned(),
        provider: "openai".to_owned(),
        model: None,
        api_base: None,
        api_key: None,
        api_version: None,
        byok,
        price: None,
        timeout: None,
        headers: Default::default(),
        options: Default::default(),
        capture: None,
        weight: 1.0,
        fallbacks: Vec::new(),
    };
    let env: Arc<dyn Env + Send + Sync> = Arc::new(HashMap::<String, String>::new());
    let secrets = Secrets::new(Vec::new(), env, &Default::default());
    let backend = keygate_core::plugins::global()
        .build_backend(&config, &keygate_plugin_api::CaptureClient::new(None))
        .ok()?;
    ModelRoute::build(&config, &secrets, backend, 0.0).ok()
}

fn check_name(model: &str) {
    let name = byok_header_name(model);
    if model.chars().count() < 1000 {
        assert!(name.is_some(), "no header name for {model:?}");
    }
    let Some(name) = name else {
        return;
    };
    let text = name.as_str();
    assert!(
        text.starts_with("x-") && text.ends_with("-authorization"),
        "{text}"
    );
    assert_eq!(
        text.len(),
        model.chars().count() + 16,
        "{model:?} -> {text}"
    );
    assert_eq!(byok_header_name(&model.to_ascii_uppercase()), Some(name));
}

fuzz_target!(|input: &[u8]| {
    let (model, value) = match input.iter().position(|b| *b == b'\n') {
        Some(at) => (&input[..at], &input[at + 1..]),
        None => (input, &[][..]),
    };
    let model = String::from_utf8_lossy(model);
    check_name(&model);

    let policies = [Byok::Deny, Byok::Allow, Byok::Require];
    let Some(routes) = policies
        .map(|p| route(&model, p))
        .into_iter()
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let Some(header) = routes[0].byok_header.clone() else {
        return;
    };
    assert_eq!(Some(&header), byok_header_name(&model).as_ref());

    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(value) {
        headers.insert(header, value);
    }
    let [deny, allow, require] = [0, 1, 2].map(|i| byok_key(&headers, &routes[i]));
    let allowed = allow.map(|key| key.map(|k| k.0.expose_secret().to_owned()));
    match &allowed {
        Ok(Some(key)) => {
            assert!(!key.is_empty() && key.bytes().all(|b| (0x21..=0x7e).contains(&b)));
            let sent = String::from_utf8_lossy(value);
            assert!(sent.contains(key.as_str()), "{key:?} not in {sent:?}");
            assert!(deny.is_err(), "deny let a key through");
            let required = require.map(|key| key.map(|k| k.0.expose_secret().to_owned()));
            assert_eq!(required.ok(), Some(Some(key.clone())));
        }
        Ok(None) => {
            assert!(matches!(deny, Ok(None)), "deny refused an absent key");
            assert!(require.is_err(), "require accepted an absent key");
        }
        Err(_) => {
            assert!(
                deny.is_err() && require.is_err(),
                "only allow refused the value"
            );
        }
    }
});
