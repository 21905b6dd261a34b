//! The exec source running real helper scripts (`sh`), written once to a temp directory
//! before any test spawns a process (so no test executes a file another is still writing).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, UNIX_EPOCH};

use secrecy::ExposeSecret;

use super::*;

const SCRIPTS: &[(&str, &str)] = &[
    (
        "args.sh",
        r#"printf '{"api_key":"%s|%s|%s"}' "$*" "$#" "${KEYGATE_SECRET_FIELD-unset}""#,
    ),
    (
        "expiring.sh",
        r#"echo '{"api_key":"sk-exp","expires_at":"2099-01-02T03:04:05.250+01:00"}'"#,
    ),
    (
        "plain.sh",
        r#"echo '{"api_key":"sk-plain"}'; echo 'sk-noise-on-stderr' >&2"#,
    ),
    (
        "fail.sh",
        "echo 'sk-leak-stdout'; echo 'sk-leak-stderr' >&2; exit 7",
    ),
    ("garbage.sh", r#"echo '{"api_key": "sk-leak-json"'"#),
    (
        "nokey.sh",
        r#"echo '{"api_key": "", "note": "sk-leak-nokey"}'"#,
    ),
    ("notfound.sh", r#"echo '{"found": false}'"#),
    ("slow.sh", "exec sleep 5"),
    ("big.sh", "head -c 70000 /dev/zero | tr '\\000' a"),
    ("killed.sh", "kill -9 $$"),
];

/// The directory holding the scripts, written on first use.
fn scripts() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("kg-exec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, body) in SCRIPTS {
            let path = dir.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    })
}

fn source(command: &[&str], timeout: Option<Duration>) -> ExecSource {
    let client = reqwest::Client::new();
    let ctx = SourceContext {
        client: &client,
        env: Arc::new(HashMap::<String, String>::new()),
    };
    let config = ExecSourceConfig {
        command: command.iter().map(|s| s.to_string()).collect(),
        timeout,
        ttl: None,
    };
    ExecSource::new(&config, &ctx).unwrap()
}

fn script(name: &str) -> String {
    scripts().join(name).display().to_string()
}

async fn fetch(source: &ExecSource, name: &str, field: Option<&str>) -> Result<Lookup, String> {
    source
        .fetch(SecretQuery { name, field })
        .await
        .map_err(|e| e.to_string())
}

fn value(lookup: Result<Lookup, String>) -> (String, Option<std::time::SystemTime>) {
    match lookup {
        Ok(Lookup::Found(v)) => (v.value.expose_secret().to_owned(), v.expires_at),
        other => panic!("expected a value, got {other:?}"),
    }
}

#[tokio::test]
async fn passes_arguments_name_and_field() {
    let s = source(&[&script("args.sh"), "--profile", "prod"], None);
    let (key, expires) = value(fetch(&s, "OPENAI_KEY", None).await);
    assert_eq!(key, "--profile prod OPENAI_KEY|3|unset");
    assert_eq!(expires, None);
    let (key, _) = value(fetch(&s, "team/openai", Some("org")).await);
    assert_eq!(key, "--profile prod team/openai|3|org");
    assert_eq!(s.kind(), "exec");
    assert_eq!(s.describe(), format!("exec {}", script("args.sh")));
}

#[tokio::test]
async fn reads_expiry_and_ignores_stderr() {
    let (key, expires) = value(fetch(&source(&[&script("expiring.sh")], None), "x", None).await);
    assert_eq!(key, "sk-exp");
    let at = expires.unwrap().duration_since(UNIX_EPOCH).unwrap();
    assert_eq!(at, Duration::from_millis(4_071_002_645_250));
    let (key, expires) = value(fetch(&source(&[&script("plain.sh")], None), "x", None).await);
    assert_eq!((key.as_str(), expires), ("sk-plain", None));
}

#[tokio::test]
async fn failures_name_the_helper_but_never_its_output() {
    let cases = [
        ("fail.sh", "exec helper `fail.sh` exited with status 7"),
        (
            "garbage.sh",
            "exec helper `garbage.sh` printed invalid JSON",
        ),
        (
            "nokey.sh",
            "exec helper `nokey.sh` printed no api_key (a non-empty string)",
        ),
        ("big.sh", "exec helper `big.sh` printed more than 64 KiB"),
        (
            "killed.sh",
            "exec helper `killed.sh` was terminated by a signal",
        ),
    ];
    for (name, expected) in cases {
        let err = fetch(&source(&[&script(name)], None), "x", None)
            .await
            .unwrap_err();
        assert_eq!(err, expected);
        assert!(!err.contains("sk-leak"), "{err}");
    }
    let missing = source(&["/nonexistent/keygate-helper"], None);
    let err = fetch(&missing, "x", None).await.unwrap_err();
    assert_eq!(
        err,
        "exec helper `keygate-helper` could not start: entity not found"
    );
}

#[tokio::test]
async fn found_false_is_not_found() {
    let lookup = fetch(&source(&[&script("notfound.sh")], None), "x", None).await;
    assert!(matches!(lookup, Ok(Lookup::NotFound)), "{lookup:?}");
}

#[tokio::test]
async fn a_slow_helper_is_killed_at_the_timeout() {
    let slow = source(&[&script("slow.sh")], Some(Duration::from_millis(200)));
    let started = Instant::now();
    let err = fetch(&slow, "x", None).await.unwrap_err();
    assert_eq!(err, "exec helper `slow.sh` timed out after 200ms");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn bad_configs_fail_at_build() {
    let client = reqwest::Client::new();
    let ctx = SourceContext {
        client: &client,
        env: Arc::new(HashMap::<String, String>::new()),
    };
    let build = |command: Vec<String>, timeout| {
        ExecSource::new(
            &ExecSourceConfig {
                command,
                timeout,
                ttl: None,
            },
            &ctx,
        )
    };
    assert!(build(vec![], None).is_err());
    assert!(build(vec![String::new()], None).is_err());
    assert!(build(vec!["helper".into()], Some(Duration::ZERO)).is_err());
    let ok = build(
        vec!["bin/helper".into(), "--token".into(), "t0k3n".into()],
        None,
    )
    .unwrap();
    assert_eq!(ok.describe(), "exec bin/helper");
    assert!(!format!("{ok:?}").contains("t0k3n"));
}
