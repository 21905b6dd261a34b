use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::attempts::{wait, weighted};
use super::*;
use crate::config::{Config, MAX_RETRY_WAIT};
use crate::secrets::Secrets;

fn routing(yaml: &str) -> Result<Routing, RoutingError> {
    let config = Config::parse(yaml, "test", &HashMap::<String, String>::new()).unwrap();
    let env: Arc<dyn crate::config::Env + Send + Sync> = Arc::new(HashMap::<String, String>::new());
    let secrets = Secrets::new(Vec::new(), env, &Default::default());
    let client = keygate_plugin_api::CaptureClient::new(None);
    let plugins = crate::plugins::Plugins::builtin();
    let routes: Vec<Arc<ModelRoute>> = config
        .models
        .iter()
        .map(|model| {
            let backend = plugins.build_backend(model, &client).unwrap();
            Arc::new(ModelRoute::build(model, &secrets, backend, 0.0).unwrap())
        })
        .collect();
    Routing::build(&config.models, &routes, &config.router)
}

fn entry(name: &str, extra: &str) -> String {
    format!("  - {{ name: {name}, provider: openai_compatible, api_base: http://127.0.0.1:9/v1{extra} }}\n")
}

fn chain_names(routing: &Routing, name: &str) -> Vec<String> {
    let group = routing.group(name).unwrap();
    group.fallback_names(routing).map(str::to_owned).collect()
}

#[test]
fn entries_of_one_name_form_one_group_with_ids() {
    let yaml = format!(
        "models:\n{}{}{}",
        entry("a", ", weight: 3"),
        entry("b", ""),
        entry("a", ", weight: 0.5"),
    );
    let routing = routing(&yaml).unwrap();
    assert_eq!(routing.groups().len(), 2);
    let a = routing.group("a").unwrap();
    let ids: Vec<&str> = a.deployments().iter().map(Deployment::label).collect();
    assert_eq!(ids, ["a#0", "a#1"]);
    assert_eq!(a.deployments()[1].weight, 0.5);
    assert!(Arc::ptr_eq(a.primary(), &a.deployments()[0].route));
}

#[test]
fn fallback_chains_are_depth_first_and_visit_each_group_once() {
    let yaml = format!(
        "models:\n{}{}{}{}{}",
        entry("a", ", fallbacks: [b, c]"),
        entry("b", ", fallbacks: [c, d, a]"),
        entry("c", ", fallbacks: [a]"),
        entry("d", ""),
        entry("a", ", fallbacks: [d]"),
    );
    let routing = routing(&yaml).unwrap();
    assert_eq!(chain_names(&routing, "a"), ["b", "c", "d"]);
    assert_eq!(chain_names(&routing, "b"), ["c", "a", "d"]);
    assert_eq!(chain_names(&routing, "c"), ["a", "b", "d"]);
    assert!(chain_names(&routing, "d").is_empty());
}

#[test]
fn bad_fallbacks_and_byok_mismatch_are_refused_with_their_entry() {
    let yaml = format!(
        "models:\n{}{}",
        entry("a", ""),
        entry("b", ", fallbacks: [zz]")
    );
    let err = routing(&yaml).unwrap_err().to_string();
    assert!(
        err.contains("models[1].fallbacks") && err.contains("`zz`"),
        "{err}"
    );
    let yaml = format!("models:\n{}", entry("a", ", fallbacks: [a]"));
    let err = routing(&yaml).unwrap_err().to_string();
    assert!(
        err.contains("models[0].fallbacks") && err.contains("itself"),
        "{err}"
    );
    let yaml = format!(
        "models:\n{}{}",
        entry("a", ", fallbacks: [b]"),
        entry("b", ", byok: require")
    );
    let err = routing(&yaml).unwrap_err().to_string();
    assert!(
        err.contains("models[0].fallbacks") && err.contains("byok: require"),
        "{err}"
    );
    let yaml = format!("models:\n{}{}", entry("a", ""), entry("a", ", byok: allow"));
    let err = routing(&yaml).unwrap_err().to_string();
    assert!(err.contains("models[1].byok"), "{err}");
}

#[test]
fn weighted_choice_follows_the_weights_of_the_set() {
    let yaml = format!(
        "models:\n{}{}{}",
        entry("a", ", weight: 1"),
        entry("a", ", weight: 3"),
        entry("a", ", weight: 4"),
    );
    let routing = routing(&yaml).unwrap();
    let d = routing.group("a").unwrap().deployments();
    assert_eq!(weighted(d, 0b111, 0.0), 0);
    assert_eq!(weighted(d, 0b111, 0.124), 0);
    assert_eq!(weighted(d, 0b111, 0.126), 1);
    assert_eq!(weighted(d, 0b111, 0.49), 1);
    assert_eq!(weighted(d, 0b111, 0.51), 2);
    assert_eq!(weighted(d, 0b111, 0.999_999), 2);
    // Only members of the set are chosen.
    assert_eq!(weighted(d, 0b101, 0.2), 2);
    assert_eq!(weighted(d, 0b010, 0.9), 1);
}

#[test]
fn waits_grow_with_jitter_honour_retry_after_and_are_capped() {
    let base = Duration::from_millis(100);
    for n in 0..4u32 {
        let full = base * (1 << n);
        let got = wait(base, n, None);
        assert!(got >= full / 2 && got <= full, "{n}: {got:?}");
    }
    let got = wait(base, 0, Some(Duration::from_secs(2)));
    assert_eq!(got, Duration::from_secs(2));
    assert_eq!(wait(base, 0, Some(Duration::from_secs(60))), MAX_RETRY_WAIT);
    assert!(wait(base, 30, None) <= MAX_RETRY_WAIT);
}

#[test]
fn retryable_errors() {
    use http::StatusCode;
    let upstream = |status: u16| GatewayError::Upstream {
        status: StatusCode::from_u16(status).unwrap(),
        message: String::new(),
        passthrough: None,
        retry_after: None,
    };
    for status in [429, 500, 502, 503, 504, 529] {
        assert!(retry_reason(&upstream(status)).is_some(), "{status}");
    }
    for status in [400, 401, 403, 404, 413, 422] {
        assert!(retry_reason(&upstream(status)).is_none(), "{status}");
    }
    assert_eq!(
        retry_reason(&GatewayError::UpstreamTimeout("m".into())),
        Some("timeout")
    );
    assert!(retry_reason(&GatewayError::InvalidRequest("x".into())).is_none());
}

use crate::error::GatewayError;
