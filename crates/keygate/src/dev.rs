//! `serve --dev`: a built-in mock upstream and models routed to it, so a newcomer can curl a
//! completion in a minute. The mock's key reaches the models through an environment overlay,
//! never through the config file.

use std::collections::HashMap;

use keygate_core::config::{Byok, CredentialSpec, Env, ModelConfig};
use keygate_mock::{MockConfig, MockServer};

/// Variable through which the dev models read the mock's key.
const MOCK_KEY_VAR: &str = "KEYGATE_DEV_MOCK_KEY";

/// The process environment with a few extra variables on top.
#[derive(Clone)]
pub struct Overlay {
    extra: HashMap<String, String>,
}

impl Env for Overlay {
    fn var(&self, name: &str) -> Option<String> {
        self.extra
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    }
}

/// The running dev mock and what the config needs to reach it.
pub struct Dev {
    /// The mock server (stopped on shutdown).
    pub mock: MockServer,
    /// Environment with the mock's key.
    pub env: Overlay,
}

impl Dev {
    /// Starts the mock on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let key = format!("mock-upstream-{}", random_hex(8));
        let mock = MockServer::start(
            "127.0.0.1:0",
            MockConfig {
                require_key: Some(key.clone()),
                ..MockConfig::default()
            },
        )
        .await?;
        let extra = HashMap::from([(MOCK_KEY_VAR.to_owned(), key)]);
        Ok(Self {
            mock,
            env: Overlay { extra },
        })
    }

    /// The models `mock` (OpenAI dialect) and `mock-claude` (Anthropic dialect).
    pub fn models(&self) -> Vec<ModelConfig> {
        let url = self.mock.url();
        let mut models = Vec::new();
        for (name, provider, api_base) in [
            ("mock", "openai_compatible", format!("{url}/v1")),
            ("mock-claude", "anthropic", url.clone()),
        ] {
            models.push(ModelConfig {
                name: name.to_owned(),
                provider: provider.to_owned(),
                model: None,
                api_base: Some(api_base),
                api_key: Some(CredentialSpec::One(format!("env:{MOCK_KEY_VAR}"))),
                api_version: None,
                byok: Byok::Allow,
                price: None,
                timeout: None,
                weight: 1.0,
                fallbacks: Vec::new(),
                headers: Default::default(),
                options: Default::default(),
                capture: None,
            });
        }
        models
    }
}

/// Adds `extra` models whose names `models` does not define yet (the file wins).
pub fn merge_models(models: &mut Vec<ModelConfig>, extra: &[ModelConfig]) {
    for model in extra {
        if !models.iter().any(|m| m.name == model.name) {
            models.push(model.clone());
        }
    }
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
