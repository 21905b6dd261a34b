//! Credentials from an environment map and from temporary credentials files.

use std::collections::HashMap;

use secrecy::ExposeSecret;

use super::*;

const FILE: &str = "\
# a comment
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key = default-secret

[prod]
aws_access_key_id=AKIDPROD
aws_secret_access_key=prod/secret+key
aws_session_token=prod-session
; another comment
[profile broken]
aws_access_key_id = AKIDBROKEN
";

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A fresh directory under the system temp dir, removed by the caller's `remove_dir_all`.
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "keygate-aws-creds-{tag}-{}-{:?}",
        std::process::id(),
        SystemTime::now()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn environment_keys_are_static() {
    let vars = env(&[
        ("AWS_ACCESS_KEY_ID", "AKIDENV"),
        ("AWS_SECRET_ACCESS_KEY", "env-secret"),
        ("AWS_SESSION_TOKEN", "env-token"),
    ]);
    let CredentialSource::Static(creds) = CredentialSource::from_env(None, &vars).unwrap() else {
        panic!("not static")
    };
    assert_eq!(creds.access_key_id, "AKIDENV");
    assert_eq!(creds.secret_access_key.expose_secret(), "env-secret");
    assert_eq!(
        creds.session_token.as_ref().map(|t| t.expose_secret()),
        Some("env-token")
    );
    let debug = format!("{creds:?}");
    assert!(
        !debug.contains("env-secret") && !debug.contains("env-token"),
        "{debug}"
    );
}

#[test]
fn half_set_environment_is_an_error_and_none_at_all_needs_home() {
    let err = CredentialSource::from_env(None, &env(&[("AWS_ACCESS_KEY_ID", "AKID")]));
    assert!(err.unwrap_err().contains("AWS_SECRET_ACCESS_KEY"));
    let err = CredentialSource::from_env(None, &env(&[])).unwrap_err();
    assert!(err.contains("no AWS credentials"), "{err}");
}

#[test]
fn file_path_and_profile_defaults() {
    let vars = env(&[("HOME", "/home/k"), ("AWS_PROFILE", "prod")]);
    let CredentialSource::File { path, profile, .. } =
        CredentialSource::from_env(None, &vars).unwrap()
    else {
        panic!("not file")
    };
    assert_eq!(path, PathBuf::from("/home/k/.aws/credentials"));
    assert_eq!(profile, "prod");

    // A profile named in the config beats both AWS_PROFILE and the key variables.
    let vars = env(&[
        ("HOME", "/home/k"),
        ("AWS_SHARED_CREDENTIALS_FILE", "~/creds"),
        ("AWS_PROFILE", "prod"),
        ("AWS_ACCESS_KEY_ID", "AKIDENV"),
        ("AWS_SECRET_ACCESS_KEY", "env-secret"),
    ]);
    let source = CredentialSource::from_env(Some("staging"), &vars).unwrap();
    assert_eq!(source.describe(), "profile=staging");
    let CredentialSource::File { path, profile, .. } = source else {
        panic!("not file")
    };
    assert_eq!(path, PathBuf::from("/home/k/creds"));
    assert_eq!(profile, "staging");
}

#[test]
fn profiles_parse() {
    let default = parse_profile(FILE, "default").unwrap();
    assert_eq!(default.access_key_id, "AKIDDEFAULT");
    assert!(default.session_token.is_none());
    let prod = parse_profile(FILE, "prod").unwrap();
    assert_eq!(prod.secret_access_key.expose_secret(), "prod/secret+key");
    assert_eq!(
        prod.session_token.as_ref().map(|t| t.expose_secret()),
        Some("prod-session")
    );
    assert_eq!(
        parse_profile(FILE, "nope").unwrap_err(),
        "no [nope] profile"
    );
    let err = parse_profile(FILE, "broken").unwrap_err();
    assert_eq!(err, "profile [broken] has no aws_secret_access_key");
}

#[tokio::test]
async fn file_is_read_lazily_and_again_when_it_changes() {
    let dir = temp_dir("lazy");
    let path = dir.join("credentials");
    let vars = env(&[("AWS_SHARED_CREDENTIALS_FILE", path.to_str().unwrap())]);
    let source = CredentialSource::from_env(Some("prod"), &vars).unwrap();

    // Built before the file exists: only fetching fails, and without quoting anything secret.
    let err = source.get().await.unwrap_err().to_string();
    assert!(err.contains("no AWS credentials"), "{err}");

    std::fs::write(&path, FILE).unwrap();
    assert_eq!(source.get().await.unwrap().access_key_id, "AKIDPROD");

    let rotated = FILE.replace("AKIDPROD", "AKIDROTATED");
    std::fs::write(&path, rotated).unwrap();
    let later = SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert_eq!(source.get().await.unwrap().access_key_id, "AKIDROTATED");

    std::fs::write(&path, "[prod]\naws_access_key_id = A\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later + std::time::Duration::from_secs(5))
        .unwrap();
    let err = source.get().await.unwrap_err().to_string();
    assert!(
        err.ends_with("profile [prod] has no aws_secret_access_key"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
