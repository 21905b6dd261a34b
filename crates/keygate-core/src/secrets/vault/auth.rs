//! Vault tokens: a fixed token, or AppRole logins whose token is renewed while it lives.
//!
//! AppRole logs in lazily, on the first fetch. Before each fetch the token is checked: past
//! two thirds of its lease a renewable token is renewed (`auth/token/renew-self`); a renewal
//! that fails, or a token already expired, means a fresh login. A renewal capped by the role's
//! `token_max_ttl` marks the token as not renewable, so the next check logs in again instead of
//! renewing a dying token. One login or renewal runs at a time (a tokio mutex); the tokens,
//! role id and secret id are kept in [`SecretString`]s and never logged.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tracing::debug;

use super::client::{encode_path, VaultHttp};
use super::error::{format_errors, VaultError};
use crate::config::{Env, VaultAuth};

/// How the source obtains its token.
pub(crate) enum Auth {
    /// A token given in the config or the environment; never renewed.
    Token(SecretString),
    /// AppRole login.
    AppRole(AppRole),
}

impl Auth {
    /// From `auth:`, else `VAULT_TOKEN`, else `BAO_TOKEN`. Reads only `env`; no network I/O.
    pub fn from_config(auth: Option<&VaultAuth>, env: &dyn Env) -> Result<Self, String> {
        match auth {
            Some(VaultAuth::Token { token }) if token.is_empty() => {
                Err("auth.token is empty".to_owned())
            }
            Some(VaultAuth::Token { token }) => Ok(Self::Token(SecretString::from(token.clone()))),
            Some(VaultAuth::Approle {
                role_id,
                secret_id,
                mount,
            }) => {
                if role_id.is_empty() || secret_id.is_empty() {
                    return Err("auth.role_id and auth.secret_id must not be empty".to_owned());
                }
                let mount = mount.as_deref().unwrap_or("approle").trim_matches('/');
                Ok(Self::AppRole(AppRole {
                    mount: if mount.is_empty() { "approle" } else { mount }.to_owned(),
                    role_id: SecretString::from(role_id.clone()),
                    secret_id: SecretString::from(secret_id.clone()),
                    lease: Mutex::new(None),
                }))
            }
            None => ["VAULT_TOKEN", "BAO_TOKEN"]
                .iter()
                .find_map(|name| env.var(name).filter(|v| !v.is_empty()))
                .map(|token| Self::Token(SecretString::from(token)))
                .ok_or_else(|| {
                    "no token: set auth (method: token or approle), VAULT_TOKEN or BAO_TOKEN"
                        .to_owned()
                }),
        }
    }

    /// `token` / `approle`, for descriptions.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Token(_) => "token",
            Self::AppRole(_) => "approle",
        }
    }

    /// A token good for the next request: logs in or renews first when needed.
    pub async fn token(&self, http: &VaultHttp) -> Result<SecretString, VaultError> {
        match self {
            Self::Token(token) => Ok(token.clone()),
            Self::AppRole(approle) => approle.token(http).await,
        }
    }

    /// After `rejected` was refused (403): a fresh AppRole token, or `None` when logging in
    /// again cannot help (a fixed token).
    pub async fn after_denial(
        &self,
        http: &VaultHttp,
        rejected: &SecretString,
    ) -> Result<Option<SecretString>, VaultError> {
        match self {
            Self::Token(_) => Ok(None),
            Self::AppRole(approle) => approle.relogin(http, rejected).await.map(Some),
        }
    }
}

/// AppRole credentials and the current token.
pub(crate) struct AppRole {
    mount: String,
    role_id: SecretString,
    secret_id: SecretString,
    lease: Mutex<Option<Lease>>,
}

/// A token and its lease, as of when it was issued or last renewed.
struct Lease {
    token: SecretString,
    since: Instant,
    /// `None`: the token does not expire.
    ttl: Option<Duration>,
    renewable: bool,
}

impl Lease {
    fn expired(&self, now: Instant) -> bool {
        self.ttl.is_some_and(|ttl| now >= self.since + ttl)
    }

    fn due_for_renewal(&self, now: Instant) -> bool {
        self.ttl.is_some_and(|ttl| now >= self.since + ttl * 2 / 3)
    }
}

impl AppRole {
    async fn token(&self, http: &VaultHttp) -> Result<SecretString, VaultError> {
        let mut lease = self.lease.lock().await;
        let now = Instant::now();
        if let Some(current) = lease.as_mut() {
            if !current.due_for_renewal(now) {
                return Ok(current.token.clone());
            }
            if current.renewable && !current.expired(now) {
                match renew(http, current).await {
                    Ok(()) => return Ok(current.token.clone()),
                    Err(err) => {
                        debug!(source = "vault", error = %err, "token renewal failed; logging in again");
                    }
                }
            }
        }
        let fresh = self.login(http).await?;
        let token = fresh.token.clone();
        *lease = Some(fresh);
        Ok(token)
    }

    async fn relogin(
        &self,
        http: &VaultHttp,
        rejected: &SecretString,
    ) -> Result<SecretString, VaultError> {
        let mut lease = self.lease.lock().await;
        if let Some(current) = lease.as_ref() {
            if current.token.expose_secret() != rejected.expose_secret() {
                // Another fetch already replaced the refused token.
                return Ok(current.token.clone());
            }
        }
        debug!(
            source = "vault",
            "permission denied with the approle token; logging in again"
        );
        let fresh = self.login(http).await?;
        let token = fresh.token.clone();
        *lease = Some(fresh);
        Ok(token)
    }

    async fn login(&self, http: &VaultHttp) -> Result<Lease, VaultError> {
        debug!(source = "vault", mount = %self.mount, "approle login");
        let path = encode_path(
            ["auth"]
                .into_iter()
                .chain(self.mount.split('/'))
                .chain(["login"]),
        );
        let body = json!({
            "role_id": self.role_id.expose_secret(),
            "secret_id": self.secret_id.expose_secret(),
        });
        let since = Instant::now();
        let reply = http.post(&path, None, &body).await?;
        if !reply.status.is_success() {
            return Err(VaultError::Login {
                mount: self.mount.clone(),
                status: reply.status.as_u16(),
                errors: format_errors(&reply.body),
            });
        }
        let auth = read_auth(&reply.body, &path)?;
        Ok(Lease {
            token: auth.token,
            since,
            ttl: (auth.lease_secs > 0).then(|| Duration::from_secs(auth.lease_secs)),
            renewable: auth.renewable,
        })
    }
}

/// Renews `lease` in place. A renewal granting less than the previous lease (capped by
/// `token_max_ttl`) leaves the token not renewable.
async fn renew(http: &VaultHttp, lease: &mut Lease) -> Result<(), VaultError> {
    const PATH: &str = "auth/token/renew-self";
    let since = Instant::now();
    let reply = http.post(PATH, Some(&lease.token), &json!({})).await?;
    if !reply.status.is_success() {
        return Err(VaultError::Status {
            path: PATH.to_owned(),
            status: reply.status.as_u16(),
            errors: format_errors(&reply.body),
        });
    }
    let auth = read_auth(&reply.body, PATH)?;
    if auth.lease_secs == 0 {
        return Err(VaultError::InvalidResponse {
            path: PATH.to_owned(),
            what: "renewal granted no lease",
        });
    }
    let granted = Duration::from_secs(auth.lease_secs);
    let capped = lease.ttl.is_some_and(|previous| granted < previous);
    debug!(
        source = "vault",
        lease_secs = auth.lease_secs,
        capped,
        "token renewed"
    );
    lease.token = auth.token;
    lease.since = since;
    lease.ttl = Some(granted);
    lease.renewable = auth.renewable && !capped;
    Ok(())
}

/// The `auth` block of a login or renewal answer.
struct AuthBlock {
    token: SecretString,
    lease_secs: u64,
    renewable: bool,
}

fn read_auth(body: &[u8], path: &str) -> Result<AuthBlock, VaultError> {
    let invalid = |what| VaultError::InvalidResponse {
        path: path.to_owned(),
        what,
    };
    let document: Value = serde_json::from_slice(body).map_err(|_| invalid("not JSON"))?;
    let auth = document
        .get("auth")
        .ok_or_else(|| invalid("no `auth` block"))?;
    let token = auth
        .get("client_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("no `auth.client_token`"))?;
    Ok(AuthBlock {
        token: SecretString::from(token.to_owned()),
        lease_secs: auth
            .get("lease_duration")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        renewable: auth
            .get("renewable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn token_comes_from_config_then_vault_token_then_bao_token() {
        let from = |auth: Option<&VaultAuth>, e: &HashMap<String, String>| match Auth::from_config(
            auth, e,
        ) {
            Ok(Auth::Token(t)) => Ok(t.expose_secret().to_owned()),
            Ok(Auth::AppRole(_)) => Ok("approle".to_owned()),
            Err(err) => Err(err),
        };
        let both = env(&[("VAULT_TOKEN", "v-tok"), ("BAO_TOKEN", "b-tok")]);
        let configured = VaultAuth::Token {
            token: "c-tok".into(),
        };
        assert_eq!(from(Some(&configured), &both).unwrap(), "c-tok");
        assert_eq!(from(None, &both).unwrap(), "v-tok");
        assert_eq!(
            from(None, &env(&[("BAO_TOKEN", "b-tok")])).unwrap(),
            "b-tok"
        );
        let err = from(None, &env(&[("VAULT_TOKEN", "")])).unwrap_err();
        assert!(err.contains("VAULT_TOKEN"), "{err}");
        let approle = VaultAuth::Approle {
            role_id: "r".into(),
            secret_id: "s".into(),
            mount: None,
        };
        assert_eq!(from(Some(&approle), &env(&[])).unwrap(), "approle");
        let empty = VaultAuth::Approle {
            role_id: "r".into(),
            secret_id: String::new(),
            mount: None,
        };
        assert!(from(Some(&empty), &env(&[])).is_err());
    }

    #[test]
    fn lease_timing() {
        let start = Instant::now();
        let lease = Lease {
            token: SecretString::from("t"),
            since: start,
            ttl: Some(Duration::from_secs(30)),
            renewable: true,
        };
        assert!(!lease.due_for_renewal(start + Duration::from_secs(19)));
        assert!(lease.due_for_renewal(start + Duration::from_secs(20)));
        assert!(!lease.expired(start + Duration::from_secs(29)));
        assert!(lease.expired(start + Duration::from_secs(30)));
        let forever = Lease { ttl: None, ..lease };
        assert!(!forever.due_for_renewal(start + Duration::from_secs(1_000_000)));
    }

    #[test]
    fn auth_blocks_are_read_without_echoing_them() {
        let body = br#"{"auth":{"client_token":"s.abc","lease_duration":5,"renewable":true}}"#;
        let auth = read_auth(body, "auth/approle/login").unwrap();
        assert_eq!(auth.token.expose_secret(), "s.abc");
        assert_eq!((auth.lease_secs, auth.renewable), (5, true));
        let err = read_auth(br#"{"auth":{"client_token":""}}"#, "p")
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "unexpected response from `p`: no `auth.client_token`"
        );
    }
}
