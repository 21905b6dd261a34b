//! The HTTP side of the vault source: one client bound to one server address (and namespace),
//! sending `X-Vault-Token` as a sensitive header, with a per-request timeout. It returns status
//! and body as they are; reading them is the caller's job.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};

use super::error::VaultError;

/// How long one request to Vault may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A status and a body, unread.
pub(crate) struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body bytes (Vault answers are small JSON documents).
    pub body: Bytes,
}

/// A client for one Vault server.
pub(crate) struct VaultHttp {
    client: reqwest::Client,
    address: String,
    namespace: Option<String>,
}

impl VaultHttp {
    /// A client for `address` (trailing `/` removed), sending `X-Vault-Namespace` when
    /// `namespace` is set.
    pub fn new(client: reqwest::Client, address: &str, namespace: Option<String>) -> Self {
        Self {
            client,
            address: address.trim_end_matches('/').to_owned(),
            namespace: namespace.filter(|n| !n.is_empty()),
        }
    }

    /// `GET /v1/{path}` with a token.
    pub async fn get(&self, path: &str, token: &SecretString) -> Result<Reply, VaultError> {
        self.send(Method::GET, path, Some(token), None).await
    }

    /// `POST /v1/{path}` with a JSON body, with or without a token.
    pub async fn post(
        &self,
        path: &str,
        token: Option<&SecretString>,
        body: &serde_json::Value,
    ) -> Result<Reply, VaultError> {
        self.send(Method::POST, path, token, Some(body)).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&SecretString>,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, VaultError> {
        let url = format!("{}/v1/{path}", self.address);
        let mut request = self
            .client
            .request(method, url)
            .timeout(REQUEST_TIMEOUT)
            .header(http::header::ACCEPT, "application/json");
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(token.expose_secret())
                .map_err(|_| VaultError::InvalidToken)?;
            value.set_sensitive(true);
            request = request.header("X-Vault-Token", value);
        }
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace.as_str());
        }
        if let Some(body) = body {
            request = request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|err| self.transport(&err))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|err| self.transport(&err))?;
        Ok(Reply { status, body })
    }

    /// A reqwest error as a message naming only the address (its own text may hold the URL).
    fn transport(&self, err: &reqwest::Error) -> VaultError {
        if err.is_timeout() {
            VaultError::Timeout {
                address: self.address.clone(),
                secs: REQUEST_TIMEOUT.as_secs(),
            }
        } else {
            VaultError::Connect {
                address: self.address.clone(),
            }
        }
    }
}

/// The client to use: the shared one, or a dedicated one trusting the PEM CA(s) at `ca_cert`.
/// Reads the file; no network I/O.
pub(crate) fn client_for(
    shared: &reqwest::Client,
    ca_cert: Option<&Path>,
) -> Result<reqwest::Client, String> {
    let Some(path) = ca_cert else {
        return Ok(shared.clone());
    };
    let pem =
        std::fs::read(path).map_err(|err| format!("ca_cert {}: {}", path.display(), err.kind()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|_| format!("ca_cert {}: not a PEM certificate", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "ca_cert {}: no certificate in the file",
            path.display()
        ));
    }
    let builder = certs
        .into_iter()
        .fold(reqwest::Client::builder(), |b, cert| {
            b.add_root_certificate(cert)
        });
    builder
        .build()
        .map_err(|_| format!("ca_cert {}: not a usable CA certificate", path.display()))
}

/// `segments` joined by `/`, each percent-encoded (all but RFC 3986 unreserved characters).
pub(crate) fn encode_path<'a>(segments: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, segment) in segments.into_iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        for byte in segment.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(
            encode_path(["secret", "data", "a b", "x?y#z"]),
            "secret/data/a%20b/x%3Fy%23z"
        );
        assert_eq!(encode_path(["kv1", "team-a_b.c~d"]), "kv1/team-a_b.c~d");
    }

    #[test]
    fn a_missing_or_bad_ca_file_is_a_build_error() {
        let shared = reqwest::Client::new();
        let missing = client_for(&shared, Some(Path::new("/nonexistent/ca.pem")));
        assert!(missing
            .err()
            .unwrap_or_default()
            .contains("/nonexistent/ca.pem"));
        let dir = std::env::temp_dir().join(format!("kg-vault-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        assert!(client_for(&shared, Some(&path)).is_err());
        assert!(client_for(&shared, None).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
