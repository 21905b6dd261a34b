//! OpenBao / HashiCorp Vault KV v1 and v2 (`type: vault`): token or AppRole auth (the token
//! renewed while it lives), namespaces, a custom CA.
//!
//! `secret:NAME` reads `{path_prefix}/NAME` under the mount, and `vault:PATH#FIELD` reads
//! `{path_prefix}/PATH` (the prefix is always prepended when set). The field is the query's, or
//! the config's `field` (`api_key`). A missing secret, a deleted latest version, a missing field
//! or an empty one answers *not found* so the chain moves on; denial (403), a sealed or failing
//! server, or an unreachable one is a [`SourceError`] naming the address, path, status and
//! Vault's `errors`, never a token or value. With AppRole, a 403 logs in again once and retries.
//!
//! Not handled here: caching (the chain's cache does it), dynamic secrets with leases, and
//! auth methods other than token and AppRole.

mod auth;
mod client;
mod error;
mod kv;

use std::time::Duration;

use keygate_plugin_api::{BoxFuture, Lookup, SecretQuery, SecretSource, SourceError};
use reqwest::StatusCode;

use self::auth::Auth;
use self::client::VaultHttp;
use self::error::VaultError;
use self::kv::KvVersion;
use super::SourceContext;
use crate::config::VaultSourceConfig;

/// The `vault` secret source.
pub struct VaultSource {
    http: VaultHttp,
    auth: Auth,
    mount: String,
    kv: KvVersion,
    path_prefix: Option<String>,
    field: String,
    ttl: Option<Duration>,
    description: String,
}

impl VaultSource {
    /// Builds the source from its config: checks it, picks the token (config, `VAULT_TOKEN`,
    /// `BAO_TOKEN`) or AppRole, and reads `ca_cert`. No network I/O.
    pub fn new(config: &VaultSourceConfig, ctx: &SourceContext<'_>) -> Result<Self, String> {
        let address = config.address.trim().trim_end_matches('/');
        if !(address.starts_with("http://") || address.starts_with("https://")) {
            return Err(format!(
                "address `{address}` must start with http:// or https://"
            ));
        }
        let kv = KvVersion::from_number(config.kv_version)?;
        let mount = config.mount.trim_matches('/').to_owned();
        if mount.is_empty() {
            return Err("mount must not be empty".to_owned());
        }
        if config.field.is_empty() {
            return Err("field must not be empty".to_owned());
        }
        let auth = Auth::from_config(config.auth.as_ref(), ctx.env.as_ref())?;
        let client = client::client_for(ctx.client, config.ca_cert.as_deref())?;
        let http = VaultHttp::new(client, address, config.namespace.clone());
        let path_prefix = config
            .path_prefix
            .as_deref()
            .map(|p| p.trim_matches('/').to_owned())
            .filter(|p| !p.is_empty());
        let mut description = format!(
            "vault {address} mount={mount} kv={} auth={}",
            kv.label(),
            auth.label()
        );
        if let Some(namespace) = config.namespace.as_deref().filter(|n| !n.is_empty()) {
            description.push_str(&format!(" namespace={namespace}"));
        }
        if let Some(prefix) = &path_prefix {
            description.push_str(&format!(" prefix={prefix}"));
        }
        Ok(Self {
            http,
            auth,
            mount,
            kv,
            path_prefix,
            field: config.field.clone(),
            ttl: config.ttl,
            description,
        })
    }

    async fn lookup(&self, query: SecretQuery<'_>) -> Result<Lookup, VaultError> {
        let segments = kv::secret_path(self.path_prefix.as_deref(), query.name)?;
        let api_path = self.kv.read_path(&self.mount, &segments);
        let field = query.field.unwrap_or(&self.field);
        let token = self.auth.token(&self.http).await?;
        let mut reply = self.http.get(&api_path, &token).await?;
        if reply.status == StatusCode::FORBIDDEN {
            if let Some(fresh) = self.auth.after_denial(&self.http, &token).await? {
                reply = self.http.get(&api_path, &fresh).await?;
            }
        }
        kv::interpret(self.kv, &reply, &api_path, field)
    }
}

impl std::fmt::Debug for VaultSource {
    /// The description only: no token, role id or secret id.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("VaultSource")
            .field(&self.description)
            .finish()
    }
}

impl SecretSource for VaultSource {
    fn kind(&self) -> &str {
        "vault"
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    fn fetch<'a>(&'a self, query: SecretQuery<'a>) -> BoxFuture<'a, Result<Lookup, SourceError>> {
        Box::pin(async move { self.lookup(query).await.map_err(SourceError::from) })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;
    use crate::config::VaultAuth;

    fn config() -> VaultSourceConfig {
        VaultSourceConfig {
            address: "http://127.0.0.1:8200/".into(),
            mount: "secret".into(),
            kv_version: 2,
            namespace: None,
            ca_cert: None,
            auth: None,
            path_prefix: None,
            field: "api_key".into(),
            ttl: None,
        }
    }

    fn build(config: &VaultSourceConfig, env: &[(&str, &str)]) -> Result<VaultSource, String> {
        let client = reqwest::Client::new();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        VaultSource::new(
            config,
            &SourceContext {
                client: &client,
                env: Arc::new(env),
            },
        )
    }

    #[test]
    fn describe_names_address_mount_version_and_auth_only() {
        let source = build(&config(), &[("VAULT_TOKEN", "hvs.secret-token")]).unwrap();
        assert_eq!(
            source.describe(),
            "vault http://127.0.0.1:8200 mount=secret kv=v2 auth=token"
        );
        let mut c = config();
        c.kv_version = 1;
        c.namespace = Some("team".into());
        c.path_prefix = Some("/keygate/".into());
        c.auth = Some(VaultAuth::Approle {
            role_id: "role".into(),
            secret_id: "sid-secret".into(),
            mount: None,
        });
        let source = build(&c, &[]).unwrap();
        let text = source.describe();
        assert_eq!(
            text,
            "vault http://127.0.0.1:8200 mount=secret kv=v1 auth=approle namespace=team prefix=keygate"
        );
        assert_eq!(source.kind(), "vault");
    }

    #[test]
    fn bad_configs_fail_at_build() {
        assert!(build(&config(), &[]).unwrap_err().contains("VAULT_TOKEN"));
        let mut c = config();
        c.kv_version = 3;
        assert!(build(&c, &[("BAO_TOKEN", "t")]).is_err());
        let mut c = config();
        c.address = "127.0.0.1:8200".into();
        assert!(build(&c, &[("BAO_TOKEN", "t")]).is_err());
    }

    #[tokio::test]
    async fn unreachable_server_is_an_error_without_the_token() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = config();
        c.address = format!("http://127.0.0.1:{port}");
        let source = build(&c, &[("VAULT_TOKEN", "hvs.super-secret")]).unwrap();
        let err = source
            .fetch(SecretQuery {
                name: "openai",
                field: None,
            })
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("connection failed to http://127.0.0.1:{port}")
        );
        let err = source
            .fetch(SecretQuery {
                name: "../x",
                field: None,
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not a valid secret path"));
    }
}
