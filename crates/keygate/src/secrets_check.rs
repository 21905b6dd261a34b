//! `keygate secrets check`: offline, for every model and each of its key references, which
//! source answers, whether it resolves, and until when the answer would be cached. Prints no
//! secret. Exits 1 when a key does not resolve.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use keygate_core::config::ProcessEnv;
use keygate_core::keys::duration::rfc3339;
use keygate_core::secrets::SourceContext;
use keygate_core::state::{build_http_client, LiveState};

use crate::cli::SecretsCheckArgs;
use crate::serve::load_config;

/// One line of the report.
struct Row {
    model: String,
    reference: String,
    source: String,
    status: &'static str,
    detail: String,
}

/// Runs the check; `Ok(false)` when some key does not resolve.
pub async fn run(args: SecretsCheckArgs) -> anyhow::Result<bool> {
    let env = Arc::new(ProcessEnv);
    let config = load_config(args.config.as_ref(), env.as_ref())?;
    let client = build_http_client().context("cannot build the HTTP client")?;
    let ctx = SourceContext {
        client: &client,
        env,
    };
    let live = LiveState::build(config, &ctx)?;
    let mut rows = Vec::new();
    for route in &live.model_list {
        if route.keys().is_empty() {
            rows.push(Row {
                model: route.name.clone(),
                reference: "-".to_owned(),
                source: "-".to_owned(),
                status: "ok",
                detail: "no key configured".to_owned(),
            });
        }
        for key in route.keys() {
            let row = match key.handle.get().await {
                Ok(resolved) => Row {
                    model: route.name.clone(),
                    reference: key.handle.describe().to_owned(),
                    source: resolved.source.to_string(),
                    status: "ok",
                    detail: if &*resolved.source == "literal" {
                        "written in the config".to_owned()
                    } else {
                        format!("cached until {}", until(resolved.fresh_until))
                    },
                },
                Err(err) => Row {
                    model: route.name.clone(),
                    reference: key.handle.describe().to_owned(),
                    source: "-".to_owned(),
                    status: "error",
                    detail: err.to_string(),
                },
            };
            rows.push(row);
        }
    }
    live.secrets.shutdown().await;
    if args.json {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({"model": r.model, "reference": r.reference, "source": r.source,
                                   "status": r.status, "detail": r.detail})
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        print_table(&rows);
    }
    Ok(rows.iter().all(|r| r.status == "ok"))
}

fn print_table(rows: &[Row]) {
    let width = |f: fn(&Row) -> &str, title: &str| {
        rows.iter()
            .map(|r| f(r).len())
            .chain([title.len()])
            .max()
            .unwrap_or(0)
    };
    let (m, k, s) = (
        width(|r| &r.model, "MODEL"),
        width(|r| &r.reference, "KEY"),
        width(|r| &r.source, "SOURCE"),
    );
    println!(
        "{:m$}  {:k$}  {:s$}  {:6}  DETAIL",
        "MODEL", "KEY", "SOURCE", "STATUS"
    );
    for r in rows {
        println!(
            "{:m$}  {:k$}  {:s$}  {:6}  {}",
            r.model, r.reference, r.source, r.status, r.detail
        );
    }
}

/// An `Instant` in the future as an RFC 3339 UTC time.
fn until(instant: Instant) -> String {
    let left = instant.saturating_duration_since(Instant::now());
    let at = SystemTime::now() + left;
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(i64::try_from(secs).unwrap_or(i64::MAX))
}
