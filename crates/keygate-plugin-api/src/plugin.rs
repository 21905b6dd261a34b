//! Backend plugins: a definition per backend, found at start-up from the crates linked into the
//! build ([`register_backend!`]) and from an embedding application's builder.

use std::fmt;
use std::sync::Arc;

use crate::backend::{Backend, BackendConfig, Translation};
use crate::capture::CaptureClient;
use crate::version::PluginCompatibility;

/// What a factory is given to build a backend for one model entry.
pub struct BackendContext<'a> {
    /// The shared, capture-aware HTTP client. Use it for every upstream call.
    pub client: &'a CaptureClient,
    /// The model entry this backend serves.
    pub config: &'a BackendConfig,
    /// keygate's OpenAI <-> Anthropic translation.
    pub translation: &'a Arc<dyn Translation>,
}

/// Builds a backend for one model entry. Called at start-up and on every config reload, once per
/// model naming this backend; must not do network I/O (check the config, keep the client).
/// An `Err` (or a panic) is logged as a warning and the model is answered with 503 until fixed.
pub type BackendFactory =
    Arc<dyn Fn(BackendContext<'_>) -> Result<Arc<dyn Backend>, String> + Send + Sync>;

/// What a post-build hook is told.
#[derive(Debug)]
pub struct PostBuildContext<'a> {
    /// The running keygate's version.
    pub core_version: &'a str,
    /// The hook's backend.
    pub backend_name: &'a str,
    /// The models this backend serves in the configuration just built (may be empty).
    pub models: &'a [String],
}

/// Runs after keygate has built its models (start-up and each reload), for plugins that were
/// registered; an `Err` (or a panic) is logged as a warning and changes nothing else.
pub type PostBuildHook = Arc<dyn Fn(&PostBuildContext<'_>) -> Result<(), String> + Send + Sync>;

/// One backend a plugin provides.
#[derive(Clone)]
pub struct BackendPluginDefinition {
    /// The name model entries use in `provider:`. Letters, digits, `-`, `_`, `.`.
    pub backend_name: String,
    /// Builds the backend for a model entry.
    pub factory: BackendFactory,
    /// The plugin (crate/package) name, for diagnostics.
    pub plugin_name: String,
    /// The keygate versions the plugin works with.
    pub compatibility: PluginCompatibility,
    /// Optional: called after each build.
    pub post_build_hook: Option<PostBuildHook>,
}

impl BackendPluginDefinition {
    /// A definition without a post-build hook.
    pub fn new<F>(
        backend_name: impl Into<String>,
        plugin_name: impl Into<String>,
        compatibility: PluginCompatibility,
        factory: F,
    ) -> Self
    where
        F: Fn(BackendContext<'_>) -> Result<Arc<dyn Backend>, String> + Send + Sync + 'static,
    {
        Self {
            backend_name: backend_name.into(),
            factory: Arc::new(factory),
            plugin_name: plugin_name.into(),
            compatibility,
            post_build_hook: None,
        }
    }

    /// Adds a post-build hook.
    pub fn with_post_build_hook<H>(mut self, hook: H) -> Self
    where
        H: Fn(&PostBuildContext<'_>) -> Result<(), String> + Send + Sync + 'static,
    {
        self.post_build_hook = Some(Arc::new(hook));
        self
    }

    /// Checks the fields keygate relies on (names, version strings); the error says which.
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = |name: &str| {
            !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if !name_ok(&self.backend_name) {
            return Err(format!(
                "backend_name `{}` must be 1 to 64 letters, digits, `-`, `_` or `.`",
                self.backend_name.escape_debug()
            ));
        }
        if self.plugin_name.trim().is_empty() {
            return Err("plugin_name must not be empty".to_owned());
        }
        crate::Version::parse(&self.compatibility.core_min_version)
            .map_err(|err| format!("core_min_version: {err}"))?;
        if let Some(max) = &self.compatibility.core_max_version {
            crate::Version::parse(max).map_err(|err| format!("core_max_version: {err}"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for BackendPluginDefinition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendPluginDefinition")
            .field("backend_name", &self.backend_name)
            .field("plugin_name", &self.plugin_name)
            .field("compatibility", &self.compatibility)
            .field("post_build_hook", &self.post_build_hook.is_some())
            .finish_non_exhaustive()
    }
}

/// A provider function registered with [`register_backend!`]: keygate calls it once at start-up.
pub struct PluginRegistration(pub fn() -> BackendPluginDefinition);

inventory::collect!(PluginRegistration);

/// Every provider function linked into this build, in no particular order.
pub fn registrations() -> impl Iterator<Item = &'static PluginRegistration> {
    inventory::iter::<PluginRegistration>.into_iter()
}

/// Registers a backend plugin from a crate linked into the build:
///
/// ```ignore
/// fn echo() -> keygate_plugin_api::BackendPluginDefinition { /* ... */ }
/// keygate_plugin_api::register_backend!(echo);
/// ```
///
/// The binary must link the crate (`use my_plugin as _;` in `main.rs` is enough).
#[macro_export]
macro_rules! register_backend {
    ($provider:path) => {
        $crate::inventory::submit! {
            $crate::PluginRegistration($provider)
        }
    };
}
