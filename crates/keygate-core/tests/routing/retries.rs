//! Retries within a group: retryable failures move to a healthy deployment at once, client
//! errors are answered as they are, and deployments of different dialects each get a body in
//! their own.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{anthropic, openai, routed, setup, FIRST};

#[tokio::test]
async fn retryable_failures_move_to_a_healthy_deployment() {
    let cases = [
        ("r503", "bad-503:error=503", ""),
        ("r500", "bad-500:error=500", ""),
        ("r429", "bad-429:error=429", ""),
        ("r529", "bad-529:error=529", ""),
        ("rtime", "bad-time:timeout", ", timeout: 300ms"),
    ];
    let mut models = String::new();
    for (group, bad, extra) in cases {
        models += &openai(group, bad, &format!(", weight: {FIRST}{extra}"));
        models += &openai(group, &format!("ok-{group}"), "");
    }
    let s = setup("", &models).await;
    for (group, bad, _) in cases {
        let started = Instant::now();
        let response = s.chat(group, false).await;
        assert_eq!(response.status(), 200, "{group}");
        assert_eq!(
            routed(&response),
            (format!("{group}#1"), "1".into(), "0".into()),
            "{group}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["object"], "chat.completion", "{group}");
        assert_eq!((s.hits(bad), s.hits(&format!("ok-{group}"))), (1, 1));
        // Moving to a deployment not tried yet does not wait (the mock's 429 says
        // `retry-after: 1`); the timeout case waits for its 300ms.
        assert!(started.elapsed() < Duration::from_millis(900), "{group}");
    }
    let metrics = s.metrics().await;
    let prefix = "keygate_upstream_retries_total{model=\"r";
    for reason in ["503", "500", "429", "529", "timeout"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(prefix) && l.contains(&format!("reason=\"{reason}\""))),
            "{reason}:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn client_errors_are_answered_without_retry() {
    let mut models = String::new();
    for status in [400, 404, 422] {
        let group = format!("c{status}");
        models += &openai(
            &group,
            &format!("bad-{status}:error={status}"),
            &format!(", weight: {FIRST}"),
        );
        models += &openai(&group, &format!("ok-{status}"), "");
    }
    let s = setup("", &models).await;
    for status in [400u16, 404, 422] {
        let response = s.chat(&format!("c{status}"), false).await;
        assert_eq!(response.status(), status);
        assert_eq!(s.hits(&format!("bad-{status}:error={status}")), 1);
        assert_eq!(s.hits(&format!("ok-{status}")), 0, "{status} was retried");
    }
}

#[tokio::test]
async fn each_deployment_gets_the_body_of_its_own_dialect() {
    // An Anthropic deployment fails, an OpenAI one serves; and the other way round.
    let models = anthropic("mix", "claude-bad:error=503", &format!(", weight: {FIRST}"))
        + &openai("mix", "gpt-ok", "")
        + &openai("xim", "gpt-bad:error=503", &format!(", weight: {FIRST}"))
        + &anthropic("xim", "claude-ok", "");
    let s = setup("", &models).await;
    for (group, served_path) in [("mix", "/v1/chat/completions"), ("xim", "/v1/messages")] {
        let response = s.chat(group, false).await;
        assert_eq!(response.status(), 200, "{group}");
        assert_eq!(routed(&response).1, "1");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["object"], "chat.completion", "{group}: {body}");
        assert!(body["choices"][0]["message"]["content"].is_string());
        let records = s.mock.records();
        let last = records.last().unwrap();
        assert_eq!(last.path, served_path, "{group}");
    }
    let paths: Vec<(String, Option<String>)> = s
        .mock
        .records()
        .into_iter()
        .map(|r| (r.path, r.model))
        .collect();
    assert_eq!(
        paths,
        [
            ("/v1/messages".into(), Some("claude-bad:error=503".into())),
            ("/v1/chat/completions".into(), Some("gpt-ok".into())),
            (
                "/v1/chat/completions".into(),
                Some("gpt-bad:error=503".into())
            ),
            ("/v1/messages".into(), Some("claude-ok".into())),
        ]
    );
}

#[tokio::test]
async fn retries_are_bounded_and_the_last_error_is_answered() {
    // Two failing deployments, num_retries 3: four attempts, the last two after a backoff.
    let models = openai("down", "down-a:error=503", "") + &openai("down", "down-b:error=502", "");
    let s = setup("{ num_retries: 3, retry_backoff: 50ms }", &models).await;
    let started = Instant::now();
    let response = s.chat("down", false).await;
    assert!([502, 503].contains(&response.status().as_u16()));
    assert_eq!(s.hits("down-a:error=503") + s.hits("down-b:error=502"), 4);
    assert!(s.hits("down-a:error=503") >= 1 && s.hits("down-b:error=502") >= 1);
    // Two waits: 25-50ms, then 50-100ms.
    assert!(started.elapsed() >= Duration::from_millis(75));
}

#[tokio::test]
async fn a_retry_of_a_deployment_already_tried_honours_retry_after() {
    // Both answer 429 with `retry-after: 1`: the second attempt goes to the other at once,
    // the third waits the second the upstream asked for.
    let models = openai("busy", "busy-a:error=429", "") + &openai("busy", "busy-b:error=429", "");
    let s = setup("{ retry_backoff: 1ms }", &models).await;
    let started = Instant::now();
    let response = s.chat("busy", false).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(routed(&response), ("-".into(), "2".into(), "0".into()));
    assert_eq!(s.hits("busy-a:error=429") + s.hits("busy-b:error=429"), 3);
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn embeddings_pass_over_a_deployment_that_cannot_embed() {
    let models = anthropic("emb", "claude-emb", &format!(", weight: {FIRST}"))
        + &openai("emb", "text-embedding-3-small", "");
    let s = setup("", &models).await;
    let embed = || async {
        s.client
            .post(format!("{}/v1/embeddings", s.gateway.url))
            .bearer_auth(crate::common::ADMIN)
            .json(&serde_json::json!({"model": "emb", "input": "hello"}))
            .send()
            .await
            .unwrap()
    };
    let response = embed().await;
    assert_eq!(response.status(), 200);
    assert_eq!(routed(&response), ("emb#1".into(), "1".into(), "0".into()));
    // Passed over, not failing: it is never put in cooldown however often this happens.
    for _ in 0..4 {
        assert_eq!(routed(&embed().await).1, "1");
    }
    assert!(!s.metrics().await.contains("deployment=\"emb#0\""));
    assert_eq!(s.hits("claude-emb"), 0);
}
