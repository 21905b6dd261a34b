//! The engine's audit log: one JSON line per role change, issue, renewal and revocation, shaped
//! like Vault's audit entries (`time`, `type`, `request`, `response`). As in Vault's audit
//! devices, key material appears only as `hmac-sha256:<hex>`, keyed by a secret kept beside the
//! log (`{path}.hmac-key`, created on first use, readable by the owner only), so an auditor can
//! check whether a given key was issued without the log revealing any key.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::{json, Value};
use sha2::Sha256;

/// An open audit log.
pub struct Audit {
    file: Mutex<File>,
    key: [u8; 32],
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Audit")
    }
}

impl Audit {
    /// Opens (or creates) the log at `path` and its HMAC key.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let key_path = path.with_extension(match path.extension() {
            Some(ext) => format!("{}.hmac-key", ext.to_string_lossy()),
            None => "hmac-key".to_owned(),
        });
        let key = match std::fs::read_to_string(&key_path) {
            Ok(text) => decode_key(&text).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the audit HMAC key file is not 64 hex digits",
                )
            })?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                write_private(&key_path, &hex::encode(key))?;
                key
            }
            Err(err) => return Err(err),
        };
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            file: Mutex::new(file),
            key,
        })
    }

    /// `hmac-sha256:<hex>` of `value`.
    pub fn hmac(&self, value: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return "hmac-sha256:".to_owned();
        };
        mac.update(value.as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Appends one entry. Failures are logged, never returned: an audit write does not undo
    /// the operation it records.
    pub fn record(&self, request_id: &str, operation: &str, path: &str, response: Value) {
        let entry = json!({
            "time": rfc3339_now(),
            "type": "response",
            "request": { "id": request_id, "operation": operation, "path": path },
            "response": response,
        });
        let mut line = entry.to_string();
        line.push('\n');
        let mut file = match self.file.lock() {
            Ok(file) => file,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Err(err) = file.write_all(line.as_bytes()) {
            tracing::error!(error = %err, "cannot write the audit log");
        }
    }
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text.trim()).ok()?;
    bytes.try_into().ok()
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

fn rfc3339_now() -> String {
    let ms = crate::keys::spend::now_ms();
    let secs = ms.div_euclid(1000);
    let (y, m, d) = crate::keys::duration::civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        t / 3600,
        t % 3600 / 60,
        t % 60,
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_json_lines_and_keys_only_hmacs() {
        let dir = std::env::temp_dir().join(format!("kg-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        let audit = Audit::open(&path).unwrap();
        let mac = audit.hmac("sk-secret");
        assert!(mac.starts_with("hmac-sha256:") && !mac.contains("sk-secret"));
        audit.record(
            "r1",
            "read",
            "keygate/creds/dev",
            json!({"data": {"key": mac}}),
        );
        // Reopened: same HMAC key, so the same key gives the same HMAC.
        let again = Audit::open(&path).unwrap();
        assert_eq!(again.hmac("sk-secret"), mac);
        again.record("r2", "delete", "keygate/roles/dev", json!({}));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["request"]["path"], "keygate/creds/dev");
        assert!(!text.contains("sk-secret"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
