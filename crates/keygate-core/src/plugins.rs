//! The plugin registry: every backend keygate can serve a model with, its own included, and the
//! secret sources plugins add. Discovery is fail-open: a plugin that cannot be used is skipped
//! with one warning and start-up goes on; a config naming a backend nobody provides fails with
//! guidance.

mod manifest;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

use keygate_plugin_api::{
    Backend, BackendConfig, BackendContext, BackendError, BackendPluginDefinition, BackendRequest,
    BackendResponse, BoxFuture, CaptureClient, PostBuildContext, SecretSource, Translation, Wire,
};
use serde_json::Value;

pub use manifest::{load_manifests, ManifestSource};

use crate::config::ModelConfig;
use crate::providers::{builtin, translate, RouteError, DEFAULT_TIMEOUT};

/// A plugin that was not registered, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The backend it would provide (or `?` when its provider function panicked).
    pub backend_name: String,
    /// The plugin, for diagnostics.
    pub plugin_name: String,
    /// Why it was skipped.
    pub reason: String,
}

struct Registered {
    definition: BackendPluginDefinition,
    builtin: bool,
}

/// The backends and plugin secret sources this process serves with.
pub struct Plugins {
    registered: Vec<Registered>,
    by_name: HashMap<String, usize>,
    skipped: Vec<Skipped>,
    sources: Vec<Arc<dyn SecretSource>>,
    translation: Arc<dyn Translation>,
}

impl std::fmt::Debug for Plugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugins")
            .field("backends", &self.backend_names())
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

static GLOBAL: OnceLock<Plugins> = OnceLock::new();

/// Makes `plugins` the process's registry (done once, by the binary, before the first build).
/// Returns them back if a registry is already in place.
pub fn install(plugins: Plugins) -> Result<(), Box<Plugins>> {
    GLOBAL.set(plugins).map_err(Box::new)
}

/// The process's registry: the installed one, else the built-in backends plus every plugin
/// linked into the build.
pub fn global() -> &'static Plugins {
    GLOBAL.get_or_init(|| Plugins::discover(Vec::new(), Vec::new()))
}

impl Plugins {
    /// Only keygate's own backends.
    pub fn builtin() -> Self {
        let mut plugins = Self::empty();
        for definition in builtin::definitions() {
            plugins.register(definition, true);
        }
        plugins
    }

    fn empty() -> Self {
        Self {
            registered: Vec::new(),
            by_name: HashMap::new(),
            skipped: Vec::new(),
            sources: Vec::new(),
            translation: Arc::new(CoreTranslation),
        }
    }

    /// The built-in backends, then the plugins linked into the build ([`register_backend!`],
    /// in backend-name order), then `extra` (an embedding application's, in the order given);
    /// `sources` are secret sources for the front of the credential chain.
    ///
    /// [`register_backend!`]: keygate_plugin_api::register_backend
    pub fn discover(
        extra: Vec<BackendPluginDefinition>,
        sources: Vec<Arc<dyn SecretSource>>,
    ) -> Self {
        let mut plugins = Self::builtin();
        let mut linked = Vec::new();
        for registration in keygate_plugin_api::registrations() {
            match catch_unwind(AssertUnwindSafe(registration.0)) {
                Ok(definition) => linked.push(definition),
                Err(panic) => plugins.skip(Skipped {
                    backend_name: "?".into(),
                    plugin_name: "?".into(),
                    reason: format!(
                        "its provider function panicked: {}",
                        panic_message(panic.as_ref())
                    ),
                }),
            }
        }
        linked.sort_by(|a, b| a.backend_name.cmp(&b.backend_name));
        for definition in linked.into_iter().chain(extra) {
            plugins.register(definition, false);
        }
        plugins.sources = sources;
        plugins
    }

    /// Registers `definition` unless it is invalid, incompatible with this keygate, or its name
    /// is taken; then it is skipped with a warning.
    fn register(&mut self, definition: BackendPluginDefinition, builtin: bool) {
        let skip = |reason: String| Skipped {
            backend_name: definition.backend_name.clone(),
            plugin_name: definition.plugin_name.clone(),
            reason,
        };
        if let Err(reason) = definition.validate() {
            return self.skip(skip(format!("its definition is invalid: {reason}")));
        }
        if let Err(reason) = definition.compatibility.check(crate::VERSION) {
            return self.skip(skip(format!("it is not compatible: {reason}")));
        }
        if let Some(&index) = self.by_name.get(&definition.backend_name) {
            let owner = &self.registered[index].definition.plugin_name;
            return self.skip(skip(format!(
                "backend `{}` is already provided by plugin `{owner}`",
                definition.backend_name
            )));
        }
        if !builtin {
            tracing::info!(backend = %definition.backend_name, plugin = %definition.plugin_name, "backend plugin registered");
        }
        self.by_name
            .insert(definition.backend_name.clone(), self.registered.len());
        self.registered.push(Registered {
            definition,
            builtin,
        });
    }

    fn skip(&mut self, skipped: Skipped) {
        tracing::warn!(
            backend = %skipped.backend_name,
            plugin = %skipped.plugin_name,
            "backend plugin skipped: {}",
            skipped.reason
        );
        self.skipped.push(skipped);
    }

    /// Backend names that can be used in `provider:`, in registration order.
    pub fn backend_names(&self) -> Vec<&str> {
        self.registered
            .iter()
            .map(|r| r.definition.backend_name.as_str())
            .collect()
    }

    /// The plugins that were skipped.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Secret sources put at the front of the credential chain.
    pub fn secret_sources(&self) -> &[Arc<dyn SecretSource>] {
        &self.sources
    }

    /// Builds the backend of `config` with its plugin's factory. A built-in backend that refuses
    /// the entry is a config error; a plugin's factory that fails or panics is a warning, and
    /// the model answers every request with an error naming the cause.
    pub fn build_backend(
        &self,
        config: &ModelConfig,
        client: &CaptureClient,
    ) -> Result<Arc<dyn Backend>, RouteError> {
        let Some(&index) = self.by_name.get(&config.provider) else {
            return Err(RouteError::UnknownProvider {
                model: config.name.clone(),
                provider: config.provider.clone(),
                guidance: self.guidance(&config.provider),
            });
        };
        let registered = &self.registered[index];
        let definition = &registered.definition;
        let backend_config = backend_config(config);
        let ctx = BackendContext {
            client,
            config: &backend_config,
            translation: &self.translation,
        };
        let built = catch_unwind(AssertUnwindSafe(|| (definition.factory)(ctx)))
            .unwrap_or_else(|panic| Err(format!("panicked: {}", panic_message(panic.as_ref()))));
        match built {
            Ok(backend) => Ok(backend),
            Err(message) if registered.builtin => Err(RouteError::Invalid {
                model: config.name.clone(),
                message,
            }),
            Err(reason) => {
                let reason = format!(
                    "the factory of backend `{}` (plugin `{}`) failed: {reason}",
                    definition.backend_name, definition.plugin_name
                );
                tracing::warn!(model = %config.name, "{reason}; the model answers with an error until this is fixed");
                Ok(Arc::new(Unavailable { reason }))
            }
        }
    }

    /// What to tell a user whose config names `provider`, which nothing provides.
    fn guidance(&self, provider: &str) -> String {
        let skipped: Vec<String> = self
            .skipped
            .iter()
            .filter(|s| s.backend_name == provider)
            .map(|s| {
                format!(
                    "plugin `{}` provides it but was skipped: {}",
                    s.plugin_name, s.reason
                )
            })
            .collect();
        let mut text = format!(
            "no built-in backend or registered plugin provides it (available: {})",
            self.backend_names().join(", ")
        );
        if skipped.is_empty() {
            text.push_str(
                ". A plugin backend must be linked into the keygate you run: add the plugin crate \
                 to your build (it registers itself with keygate_plugin_api::register_backend!) or \
                 pass its definition to keygate::Gateway::builder().plugin(..); see \
                 examples/plugin-echo",
            );
        } else {
            text.push_str("; ");
            text.push_str(&skipped.join("; "));
        }
        text
    }

    /// Runs each registered plugin's post-build hook, in registration order, telling it which
    /// of `models` it serves. A failing or panicking hook is a warning.
    pub fn run_post_build_hooks(&self, models: &[ModelConfig]) {
        for registered in &self.registered {
            let definition = &registered.definition;
            let Some(hook) = &definition.post_build_hook else {
                continue;
            };
            let served: Vec<String> = models
                .iter()
                .filter(|m| m.provider == definition.backend_name)
                .map(|m| m.name.clone())
                .collect();
            let ctx = PostBuildContext {
                core_version: crate::VERSION,
                backend_name: &definition.backend_name,
                models: &served,
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| hook(&ctx))).unwrap_or_else(|panic| {
                Err(format!("panicked: {}", panic_message(panic.as_ref())))
            });
            if let Err(reason) = outcome {
                tracing::warn!(backend = %definition.backend_name, plugin = %definition.plugin_name, "post-build hook failed: {reason}");
            }
        }
    }
}

/// A model entry as its backend's factory sees it.
pub fn backend_config(config: &ModelConfig) -> BackendConfig {
    BackendConfig {
        name: config.name.clone(),
        provider: config.provider.clone(),
        upstream_model: config.model.clone().unwrap_or_else(|| config.name.clone()),
        api_base: config
            .api_base
            .as_deref()
            .map(|b| b.trim_end_matches('/').to_owned()),
        api_version: config.api_version.clone(),
        headers: config.headers.clone(),
        timeout: config.timeout.unwrap_or(DEFAULT_TIMEOUT),
        options: config.options.clone(),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

/// The backend of a model whose plugin factory failed.
struct Unavailable {
    reason: String,
}

impl Unavailable {
    fn fail<'a>(&'a self) -> BoxFuture<'a, Result<BackendResponse, BackendError>> {
        Box::pin(async move { Err(BackendError::Unavailable(self.reason.clone())) })
    }
}

impl Backend for Unavailable {
    fn wire(&self) -> Wire {
        Wire::OpenAi
    }
    fn chat<'a>(
        &'a self,
        _request: BackendRequest<'a>,
    ) -> BoxFuture<'a, Result<BackendResponse, BackendError>> {
        self.fail()
    }
    fn chat_stream<'a>(
        &'a self,
        _request: BackendRequest<'a>,
    ) -> BoxFuture<'a, Result<BackendResponse, BackendError>> {
        self.fail()
    }
    fn embeddings<'a>(
        &'a self,
        _request: BackendRequest<'a>,
    ) -> BoxFuture<'a, Result<BackendResponse, BackendError>> {
        self.fail()
    }
}

/// keygate's translation, offered to plugins.
struct CoreTranslation;

impl Translation for CoreTranslation {
    fn openai_to_anthropic_request(&self, body: &Value, model: &str) -> Result<Value, String> {
        translate::openai_to_anthropic_request(body, model).map_err(|e| e.to_string())
    }
    fn anthropic_to_openai_request(&self, body: &Value, model: &str) -> Result<Value, String> {
        translate::anthropic_to_openai_request(body, model).map_err(|e| e.to_string())
    }
    fn anthropic_to_openai_response(&self, body: &Value, model: &str) -> Value {
        translate::anthropic_to_openai_response(body, model)
    }
    fn openai_to_anthropic_response(&self, body: &Value, model: &str) -> Value {
        translate::openai_to_anthropic_response(body, model)
    }
}
