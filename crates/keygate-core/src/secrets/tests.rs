//! The resolver and its cache against in-memory test sources (`ScriptedSource`, a test double
//! of the `SecretSource` trait; the real sources have their own tests).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use keygate_plugin_api::{BoxFuture, Lookup, SecretQuery, SecretSource, SecretValue, SourceError};
use secrecy::ExposeSecret;

use super::{CredentialRef, ResolveError, Secrets};
use crate::config::{CacheConfig, Env};

/// What a scripted source answers next.
#[derive(Clone)]
enum Answer {
    Value(String),
    ValueUntil(String, SystemTime),
    Missing,
    Fail(String),
}

/// A source whose answer the test sets, counting fetches, with an optional delay.
struct ScriptedSource {
    name: &'static str,
    answer: Mutex<Answer>,
    delay: Duration,
    fetches: AtomicUsize,
}

impl ScriptedSource {
    fn new(name: &'static str, answer: Answer, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            name,
            answer: Mutex::new(answer),
            delay,
            fetches: AtomicUsize::new(0),
        })
    }
    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }
    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl SecretSource for ScriptedSource {
    fn kind(&self) -> &str {
        self.name
    }
    fn describe(&self) -> String {
        format!("{} scripted", self.name)
    }
    fn fetch<'a>(&'a self, _query: SecretQuery<'a>) -> BoxFuture<'a, Result<Lookup, SourceError>> {
        Box::pin(async move {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            let answer = self.answer.lock().unwrap().clone();
            match answer {
                Answer::Value(v) => Ok(Lookup::Found(SecretValue::new(v))),
                Answer::ValueUntil(v, until) => Ok(Lookup::Found(SecretValue {
                    value: v.into(),
                    expires_at: Some(until),
                })),
                Answer::Missing => Ok(Lookup::NotFound),
                Answer::Fail(reason) => Err(SourceError::new(reason)),
            }
        })
    }
}

fn cache(ttl_ms: u64, stale_ms: u64, negative_ms: u64) -> CacheConfig {
    CacheConfig {
        ttl: Duration::from_millis(ttl_ms),
        stale_if_error: Duration::from_millis(stale_ms),
        negative_ttl: Duration::from_millis(negative_ms),
    }
}

fn secrets(chain: Vec<Arc<dyn SecretSource>>, cache: CacheConfig) -> Arc<Secrets> {
    let env: Arc<dyn Env + Send + Sync> = Arc::new(HashMap::from([(
        "FROM_ENV".to_owned(),
        "env-value".to_owned(),
    )]));
    Secrets::new(chain, env, &cache)
}

fn reference(text: &str) -> CredentialRef {
    text.parse().unwrap()
}

async fn value(handle: &super::SecretHandle) -> String {
    handle.get().await.unwrap().value.expose_secret().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_first_requests_cause_one_fetch() {
    let source = ScriptedSource::new(
        "vault",
        Answer::Value("v1".into()),
        Duration::from_millis(50),
    );
    let secrets = secrets(vec![source.clone()], cache(60_000, 0, 1_000));
    let handle = secrets.handle(reference("secret:K"));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let handle = secrets.handle(reference("secret:K"));
            tokio::spawn(async move { value(&handle).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), "v1");
    }
    assert_eq!(source.fetches(), 1);
    assert_eq!(value(&handle).await, "v1");
    assert_eq!(source.fetches(), 1);
}

#[tokio::test]
async fn a_rotated_secret_is_used_after_the_ttl() {
    let source = ScriptedSource::new("vault", Answer::Value("old".into()), Duration::ZERO);
    let secrets = secrets(vec![source.clone()], cache(100, 0, 1_000));
    let handle = secrets.handle(reference("secret:K"));
    assert_eq!(value(&handle).await, "old");
    source.set(Answer::Value("new".into()));
    assert_eq!(value(&handle).await, "old");
    tokio::time::sleep(Duration::from_millis(130)).await;
    assert_eq!(value(&handle).await, "new");
    assert_eq!(source.fetches(), 2);
}

#[tokio::test]
async fn refresh_ahead_serves_at_once_and_refreshes_in_the_background() {
    let delay = Duration::from_millis(100);
    let source = ScriptedSource::new("vault", Answer::Value("old".into()), delay);
    let secrets = secrets(vec![source.clone()], cache(300, 0, 1_000));
    let handle = secrets.handle(reference("secret:K"));
    assert_eq!(value(&handle).await, "old");
    source.set(Answer::Value("new".into()));
    tokio::time::sleep(Duration::from_millis(250)).await; // past 80% of the TTL
    let started = Instant::now();
    assert_eq!(value(&handle).await, "old");
    assert!(
        started.elapsed() < delay / 2,
        "the read waited for the refresh"
    );
    tokio::time::sleep(delay + Duration::from_millis(30)).await;
    let started = Instant::now();
    assert_eq!(value(&handle).await, "new");
    assert!(started.elapsed() < delay / 2);
    assert_eq!(source.fetches(), 2);
}

#[tokio::test]
async fn stale_if_error_serves_the_last_good_value_then_fails_naming_the_source() {
    let source = ScriptedSource::new("vault", Answer::Value("good".into()), Duration::ZERO);
    let secrets = secrets(vec![source.clone()], cache(50, 300, 1_000));
    let handle = secrets.handle(reference("secret:K"));
    assert_eq!(value(&handle).await, "good");
    source.set(Answer::Fail(
        "connection failed to http://127.0.0.1:1".into(),
    ));
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(value(&handle).await, "good");
    assert_eq!(value(&handle).await, "good");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let err = handle.get().await.unwrap_err();
    assert!(matches!(err, ResolveError::Failed { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("vault scripted: connection failed"), "{text}");
    assert!(!text.contains("good"));
    // The source comes back: served again.
    source.set(Answer::Value("back".into()));
    assert_eq!(value(&handle).await, "back");
}

#[tokio::test]
async fn a_reload_reads_again_but_keeps_the_last_value_for_an_outage() {
    let source = ScriptedSource::new("vault", Answer::Value("v1".into()), Duration::ZERO);
    let chain = || -> Vec<Arc<dyn SecretSource>> { vec![source.clone()] };
    let old = secrets(chain(), cache(60_000, 60_000, 1_000));
    assert_eq!(value(&old.handle(reference("secret:K"))).await, "v1");

    // A reload while the source answers: the new value, fetched again.
    source.set(Answer::Value("v2".into()));
    let reloaded = secrets(chain(), cache(60_000, 60_000, 1_000));
    let handle = reloaded.handle(reference("secret:K"));
    reloaded.inherit(&old);
    assert_eq!(value(&handle).await, "v2");
    assert_eq!(source.fetches(), 2);

    // A reload while the source is down: the last good value, and a reference that was never
    // fetched fails naming the source.
    source.set(Answer::Fail("connection failed".into()));
    let during = secrets(chain(), cache(60_000, 60_000, 1_000));
    let handle = during.handle(reference("secret:K"));
    let cold = during.handle(reference("secret:COLD"));
    during.inherit(&reloaded);
    assert_eq!(value(&handle).await, "v2");
    assert!(matches!(cold.get().await, Err(ResolveError::Failed { .. })));

    // A source that says the secret is gone is believed.
    source.set(Answer::Missing);
    let gone = secrets(chain(), cache(60_000, 60_000, 1_000));
    let handle = gone.handle(reference("secret:K"));
    gone.inherit(&during);
    assert!(matches!(
        handle.get().await,
        Err(ResolveError::NotFound { .. })
    ));

    // Another chain inherits nothing.
    source.set(Answer::Fail("connection failed".into()));
    let other = ScriptedSource::new("aws", Answer::Fail("down".into()), Duration::ZERO);
    let changed = secrets(vec![source.clone(), other], cache(60_000, 60_000, 1_000));
    let handle = changed.handle(reference("secret:K"));
    changed.inherit(&reloaded);
    assert!(handle.get().await.is_err());
}

#[tokio::test]
async fn not_found_is_cached_for_the_negative_ttl() {
    let source = ScriptedSource::new("vault", Answer::Missing, Duration::ZERO);
    let secrets = secrets(vec![source.clone()], cache(60_000, 0, 100));
    let handle = secrets.handle(reference("secret:K"));
    for _ in 0..5 {
        assert!(matches!(
            handle.get().await.unwrap_err(),
            ResolveError::NotFound { .. }
        ));
    }
    assert_eq!(source.fetches(), 1);
    source.set(Answer::Value("created".into()));
    tokio::time::sleep(Duration::from_millis(130)).await;
    assert_eq!(value(&handle).await, "created");
}

#[tokio::test]
async fn the_chain_falls_through_failures_and_misses_and_names_each_source() {
    let broken = ScriptedSource::new(
        "vault",
        Answer::Fail("HTTP 503: sealed".into()),
        Duration::ZERO,
    );
    let empty = ScriptedSource::new("aws_secrets_manager", Answer::Missing, Duration::ZERO);
    let last = ScriptedSource::new("exec", Answer::Value("from-exec".into()), Duration::ZERO);
    let secrets = secrets(
        vec![broken.clone(), empty.clone(), last.clone()],
        cache(60_000, 0, 1_000),
    );
    let handle = secrets.handle(reference("secret:K"));
    let resolved = handle.get().await.unwrap();
    assert_eq!(resolved.value.expose_secret(), "from-exec");
    assert_eq!(&*resolved.source, "exec scripted");
    last.set(Answer::Missing);
    let other = secrets.handle(reference("secret:OTHER"));
    let text = other.get().await.unwrap_err().to_string();
    assert!(
        text.contains("vault scripted: HTTP 503: sealed")
            && text.contains("aws_secrets_manager scripted: not found")
            && text.contains("exec scripted: not found"),
        "{text}"
    );
}

#[tokio::test]
async fn a_front_plugin_answers_or_passes() {
    let plugin = ScriptedSource::new(
        "plugin",
        Answer::Value("from-plugin".into()),
        Duration::ZERO,
    );
    let env = Arc::new(super::local::EnvSource::new(
        &Default::default(),
        Arc::new(HashMap::from([("K".to_owned(), "from-env".to_owned())])),
    ));
    let secrets = secrets(vec![plugin.clone(), env], cache(0, 0, 0));
    let handle = secrets.handle(reference("secret:K"));
    assert_eq!(value(&handle).await, "from-plugin");
    plugin.set(Answer::Missing);
    assert_eq!(value(&handle).await, "from-env");
}

#[tokio::test]
async fn a_source_expiry_shortens_the_ttl() {
    let until = SystemTime::now() + Duration::from_millis(80);
    let source = ScriptedSource::new(
        "exec",
        Answer::ValueUntil("short".into(), until),
        Duration::ZERO,
    );
    let secrets = secrets(vec![source.clone()], cache(60_000, 60_000, 1_000));
    let handle = secrets.handle(reference("exec:openai"));
    assert_eq!(value(&handle).await, "short");
    source.set(Answer::Fail("helper broke".into()));
    tokio::time::sleep(Duration::from_millis(120)).await;
    // Past its own expiry a value is never served, stale or not.
    assert!(handle.get().await.is_err());
}

#[tokio::test]
async fn direct_references_need_their_kind_of_source() {
    let secrets = secrets(Vec::new(), cache(60_000, 0, 1_000));
    let err = secrets
        .handle(reference("vault:llm/openai#key"))
        .get()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ResolveError::NoSource { kind: "vault", .. }),
        "{err}"
    );
    assert_eq!(
        value(&secrets.handle(reference("env:FROM_ENV"))).await,
        "env-value"
    );
    assert_eq!(
        value(&secrets.handle(reference("sk-literal"))).await,
        "sk-literal"
    );
    let missing = secrets
        .handle(reference("env:NOPE"))
        .get()
        .await
        .unwrap_err();
    assert!(matches!(missing, ResolveError::NotFound { .. }));
}

#[tokio::test]
async fn handles_for_one_reference_share_a_slot_and_fields_do_not() {
    let source = ScriptedSource::new("vault", Answer::Value("v".into()), Duration::ZERO);
    let secrets = secrets(vec![source.clone()], cache(60_000, 0, 1_000));
    value(&secrets.handle(reference("vault:a#x"))).await;
    value(&secrets.handle(reference("vault:a#x"))).await;
    assert_eq!(source.fetches(), 1);
    value(&secrets.handle(reference("vault:a#y"))).await;
    assert_eq!(source.fetches(), 2);
}
