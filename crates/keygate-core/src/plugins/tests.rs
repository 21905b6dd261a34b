//! The registry's fail-open rules, the missing-backend error, hooks and manifests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use keygate_plugin_api::{
    Backend, BackendError, BackendPluginDefinition, BackendRequest, BackendResponse, BoxFuture,
    PluginCompatibility, Wire,
};

use super::*;
use crate::config::Config;
use crate::secrets::SourceContext;
use crate::state::{BuildError, LiveState};

/// A backend answering every chat with a fixed body.
struct Fixed(&'static str);

impl Backend for Fixed {
    fn wire(&self) -> Wire {
        Wire::OpenAi
    }
    fn chat<'a>(
        &'a self,
        _request: BackendRequest<'a>,
    ) -> BoxFuture<'a, Result<BackendResponse, BackendError>> {
        Box::pin(async move { Ok(BackendResponse::full(StatusCode::OK, self.0)) })
    }
    fn chat_stream<'a>(
        &'a self,
        request: BackendRequest<'a>,
    ) -> BoxFuture<'a, Result<BackendResponse, BackendError>> {
        self.chat(request)
    }
}

fn definition(name: &str, compatibility: PluginCompatibility) -> BackendPluginDefinition {
    BackendPluginDefinition::new(name, format!("{name}-plugin"), compatibility, |_ctx| {
        Ok(Arc::new(Fixed("{}")) as Arc<dyn Backend>)
    })
}

fn current() -> PluginCompatibility {
    PluginCompatibility::from(crate::VERSION)
}

fn skipped_reason(plugins: &Plugins, plugin: &str) -> String {
    plugins
        .skipped()
        .iter()
        .find(|s| s.plugin_name == plugin)
        .map(|s| s.reason.clone())
        .unwrap_or_else(|| panic!("{plugin} was not skipped: {:?}", plugins.skipped()))
}

fn config(yaml: &str) -> Config {
    Config::parse(yaml, "test", &HashMap::<String, String>::new()).unwrap()
}

fn build(plugins: &Plugins, yaml: &str) -> Result<LiveState, BuildError> {
    let client = reqwest::Client::new();
    let ctx = SourceContext {
        client: &client,
        env: Arc::new(HashMap::<String, String>::new()),
    };
    LiveState::build_with(config(yaml), &ctx, plugins)
}

async fn chat(live: &LiveState, model: &str) -> Result<BackendResponse, BackendError> {
    let forward = HeaderMap::new();
    live.routing
        .group(model)
        .expect("configured model")
        .primary()
        .backend
        .chat(BackendRequest {
            body: Bytes::from_static(b"{}"),
            credential: None,
            forward: &forward,
            capture: None,
        })
        .await
}

#[test]
fn builtin_backends_are_registered_like_plugins() {
    let plugins = Plugins::builtin();
    assert_eq!(
        plugins.backend_names(),
        ["openai", "openai_compatible", "azure_openai", "anthropic"]
    );
    assert!(plugins.skipped().is_empty());
}

#[test]
fn incompatible_ranges_above_and_below_are_skipped() {
    let plugins = Plugins::discover(
        vec![
            definition("too-new", PluginCompatibility::from("99.0.0")),
            definition("too-old", PluginCompatibility::between("0.0.1", "0.0.9")),
            definition("fits", current()),
        ],
        Vec::new(),
    );
    assert!(skipped_reason(&plugins, "too-new-plugin").contains("needs keygate >= 99.0.0"));
    assert!(skipped_reason(&plugins, "too-old-plugin").contains("0.0.1 to 0.0.9"));
    assert!(plugins.backend_names().contains(&"fits"));
    assert!(!plugins.backend_names().contains(&"too-new"));
}

#[test]
fn invalid_definitions_and_duplicates_are_skipped() {
    let mut bad_version = definition("bad-version", current());
    bad_version.compatibility.core_min_version = "soon".into();
    let plugins = Plugins::discover(
        vec![
            definition("has space", current()),
            bad_version,
            definition("dup", current()),
            BackendPluginDefinition::new("dup", "second-plugin", current(), |_| {
                Err("never built".into())
            }),
            BackendPluginDefinition::new("openai", "shadowing-plugin", current(), |_| {
                Err("never built".into())
            }),
        ],
        Vec::new(),
    );
    assert!(skipped_reason(&plugins, "has space-plugin").contains("definition is invalid"));
    assert!(skipped_reason(&plugins, "bad-version-plugin").contains("core_min_version"));
    assert!(skipped_reason(&plugins, "second-plugin")
        .contains("already provided by plugin `dup-plugin`"));
    assert!(skipped_reason(&plugins, "shadowing-plugin")
        .contains("already provided by plugin `keygate`"));
    assert_eq!(
        plugins
            .backend_names()
            .iter()
            .filter(|n| **n == "dup")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_failing_or_panicking_factory_is_a_warning_and_its_model_answers_with_the_cause() {
    let plugins = Plugins::discover(
        vec![
            BackendPluginDefinition::new("fails", "fails-plugin", current(), |_| {
                Err("region is required".into())
            }),
            BackendPluginDefinition::new("panics", "panics-plugin", current(), |_| {
                panic!("boom in factory")
            }),
            definition("works", current()),
        ],
        Vec::new(),
    );
    let live = build(
        &plugins,
        "models:\n  - { name: a, provider: fails }\n  - { name: b, provider: panics }\n  - { name: c, provider: works }\n",
    )
    .unwrap();
    let err = chat(&live, "a").await.unwrap_err().to_string();
    assert!(
        err.contains("fails-plugin") && err.contains("region is required"),
        "{err}"
    );
    let err = chat(&live, "b").await.unwrap_err().to_string();
    assert!(
        err.contains("panics-plugin") && err.contains("boom in factory"),
        "{err}"
    );
    assert_eq!(chat(&live, "c").await.unwrap().status, StatusCode::OK);
}

#[test]
fn a_builtin_backend_refusing_its_entry_fails_the_build() {
    let err = build(
        &Plugins::builtin(),
        "models:\n  - { name: a, provider: openai_compatible }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("needs `api_base`"), "{err}");
}

#[test]
fn a_backend_nobody_provides_fails_the_build_with_guidance() {
    let plugins = Plugins::discover(
        vec![definition("bedrock", PluginCompatibility::from("99.0.0"))],
        Vec::new(),
    );
    let err = build(&plugins, "models:\n  - { name: a, provider: nonesuch }\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown provider `nonesuch`"), "{err}");
    assert!(
        err.contains("available: openai, openai_compatible"),
        "{err}"
    );
    assert!(err.contains("Gateway::builder().plugin"), "{err}");
    let err = build(&plugins, "models:\n  - { name: a, provider: bedrock }\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("plugin `bedrock-plugin` provides it but was skipped")
            && err.contains("99.0.0"),
        "{err}"
    );
}

#[test]
fn hooks_run_after_the_build_in_order_only_for_registered_plugins_and_failures_are_warnings() {
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let traced = |name: &'static str, compatibility: PluginCompatibility, outcome: u8| {
        let factory_log = log.clone();
        let hook_log = log.clone();
        BackendPluginDefinition::new(name, format!("{name}-plugin"), compatibility, move |ctx| {
            factory_log
                .lock()
                .unwrap()
                .push(format!("factory {name} {}", ctx.config.name));
            Ok(Arc::new(Fixed("{}")) as Arc<dyn Backend>)
        })
        .with_post_build_hook(move |ctx| {
            hook_log
                .lock()
                .unwrap()
                .push(format!("hook {} {:?}", ctx.backend_name, ctx.models));
            match outcome {
                0 => Ok(()),
                1 => Err("hook refused".into()),
                _ => panic!("hook exploded"),
            }
        })
    };
    let plugins = Plugins::discover(
        vec![
            traced("first", current(), 1),
            traced("second", current(), 2),
            traced("skipped", PluginCompatibility::from("99.0.0"), 0),
            traced("third", current(), 0),
        ],
        Vec::new(),
    );
    build(
        &plugins,
        "models:\n  - { name: m1, provider: third }\n  - { name: m2, provider: first }\n",
    )
    .unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "factory third m1",
            "factory first m2",
            "hook first [\"m2\"]",
            "hook second []",
            "hook third [\"m1\"]",
        ]
    );
}

#[tokio::test]
async fn manifests_add_secret_helpers_and_bad_ones_are_skipped() {
    use keygate_plugin_api::{ExposeSecret, Lookup, SecretQuery};
    let dir = std::env::temp_dir().join(format!("kg-manifests-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let helper = dir.join("helper.sh");
    std::fs::write(
        &helper,
        "#!/bin/sh\nprintf '{\"api_key\": \"sk-from-manifest-%s\"}' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let good = format!(
        "name = \"team\"\nkind = \"secret_source\"\ncommand = [\"./helper.sh\"]\nttl = \"1m\"\n\n[compatibility]\ncore_min_version = \"{}\"\n",
        crate::VERSION
    );
    std::fs::write(dir.join("a-good.toml"), good).unwrap();
    std::fs::write(
        dir.join("b-too-new.toml"),
        "name = \"x\"\nkind = \"secret_source\"\ncommand = [\"true\"]\n[compatibility]\ncore_min_version = \"99.0.0\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("c-kind.toml"),
        "name = \"y\"\nkind = \"backend\"\ncommand = [\"true\"]\n[compatibility]\ncore_min_version = \"0.1.0\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("d-broken.toml"), "name = \n").unwrap();
    std::fs::write(dir.join("ignored.txt"), "not a manifest").unwrap();
    let client = reqwest::Client::new();
    let ctx = SourceContext {
        client: &client,
        env: Arc::new(HashMap::<String, String>::new()),
    };
    let (sources, skipped) = load_manifests(&dir, &ctx);
    assert_eq!(sources.len(), 1, "{skipped:?}");
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(skipped[0].reason.contains("99.0.0"), "{skipped:?}");
    assert!(skipped[1].reason.contains("kind `backend`"), "{skipped:?}");
    assert!(
        skipped[2].reason.contains("not a valid manifest"),
        "{skipped:?}"
    );
    assert!(sources[0].describe().starts_with("plugin team"));
    let query = SecretQuery {
        name: "OPENAI",
        field: None,
    };
    match sources[0].fetch(query).await.unwrap() {
        Lookup::Found(value) => {
            assert_eq!(value.value.expose_secret(), "sk-from-manifest-OPENAI")
        }
        Lookup::NotFound => panic!("the helper answered"),
    }
    let (none, missing) = load_manifests(&dir.join("nope"), &ctx);
    assert!(none.is_empty() && missing[0].reason.contains("cannot be read"));
    std::fs::remove_dir_all(dir).unwrap();
}
