//! Out-of-process plugins: `*.toml` manifests in `plugin_dir`, each describing a secret helper
//! that speaks the exec protocol of `type: exec` sources:
//!
//! ```toml
//! name = "team-vault"              # for logs and `keygate secrets check`
//! kind = "secret_source"           # the only kind today
//! command = ["./team-vault-helper", "--profile", "prod"]   # `./` is the manifest's directory
//! timeout = "5s"                   # optional, default 10s
//! ttl = "1m"                       # optional cache TTL
//!
//! [compatibility]
//! core_min_version = "0.1.0"
//! core_max_version = "0.9.0"       # optional
//! ```
//!
//! Discovery is fail-open: an unreadable or invalid manifest, an unknown kind, or an
//! incompatible range is skipped with one warning.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keygate_plugin_api::{
    BoxFuture, Lookup, PluginCompatibility, SecretQuery, SecretSource, SourceError,
};
use serde::Deserialize;

use super::Skipped;
use crate::config::{duration, ExecSourceConfig};
use crate::secrets::exec::ExecSource;
use crate::secrets::SourceContext;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    name: String,
    kind: String,
    command: Vec<String>,
    compatibility: Compatibility,
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    ttl: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Compatibility {
    core_min_version: String,
    #[serde(default)]
    core_max_version: Option<String>,
}

/// A secret helper declared by a manifest: an exec source under the manifest's name.
pub struct ManifestSource {
    name: String,
    exec: ExecSource,
}

impl SecretSource for ManifestSource {
    fn kind(&self) -> &str {
        "exec"
    }

    fn describe(&self) -> String {
        format!("plugin {} ({})", self.name, self.exec.describe())
    }

    fn ttl(&self) -> Option<Duration> {
        self.exec.ttl()
    }

    fn fetch<'a>(&'a self, query: SecretQuery<'a>) -> BoxFuture<'a, Result<Lookup, SourceError>> {
        self.exec.fetch(query)
    }
}

/// Reads every `*.toml` manifest in `dir` (in file-name order) and builds its source; what
/// cannot be used is returned as skipped (and logged).
pub fn load_manifests(
    dir: &Path,
    ctx: &SourceContext<'_>,
) -> (Vec<Arc<dyn SecretSource>>, Vec<Skipped>) {
    let mut sources: Vec<Arc<dyn SecretSource>> = Vec::new();
    let mut skipped = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            let skip = Skipped {
                backend_name: "-".into(),
                plugin_name: dir.display().to_string(),
                reason: format!("plugin_dir cannot be read: {}", err.kind()),
            };
            tracing::warn!(dir = %dir.display(), "plugin manifests skipped: {}", skip.reason);
            return (sources, vec![skip]);
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    for path in paths {
        match load_one(&path, ctx) {
            Ok(source) => {
                tracing::info!(manifest = %path.display(), source = %source.describe(), "secret source plugin registered");
                sources.push(source);
            }
            Err(reason) => {
                tracing::warn!(manifest = %path.display(), "plugin skipped: {reason}");
                skipped.push(Skipped {
                    backend_name: "-".into(),
                    plugin_name: path.display().to_string(),
                    reason,
                });
            }
        }
    }
    (sources, skipped)
}

fn load_one(path: &Path, ctx: &SourceContext<'_>) -> Result<Arc<dyn SecretSource>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|err| format!("cannot be read: {}", err.kind()))?;
    let manifest: Manifest =
        basic_toml::from_str(&text).map_err(|err| format!("is not a valid manifest: {err}"))?;
    if manifest.kind != "secret_source" {
        return Err(format!(
            "kind `{}` is not supported (supported: secret_source)",
            manifest.kind
        ));
    }
    if manifest.name.trim().is_empty() {
        return Err("name must not be empty".to_owned());
    }
    let compatibility = PluginCompatibility {
        core_min_version: manifest.compatibility.core_min_version,
        core_max_version: manifest.compatibility.core_max_version,
    };
    compatibility
        .check(crate::VERSION)
        .map_err(|reason| format!("`{}` is not compatible: {reason}", manifest.name))?;
    let mut command = manifest.command;
    if let Some(program) = command.first_mut() {
        if program.starts_with("./") || program.starts_with("../") {
            let base = path.parent().unwrap_or(Path::new("."));
            *program = base.join(&*program).display().to_string();
        }
    }
    let exec = ExecSource::new(
        &ExecSourceConfig {
            command,
            timeout: manifest.timeout,
            ttl: manifest.ttl,
        },
        ctx,
    )
    .map_err(|reason| format!("`{}`: {reason}", manifest.name))?;
    Ok(Arc::new(ManifestSource {
        name: manifest.name,
        exec,
    }))
}
