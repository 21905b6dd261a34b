//! Cooldown: a deployment that failed `allowed_fails` times in a row gets no traffic until its
//! cooldown ends, then is tried again; a group whose deployments all cool down is skipped for
//! its fallback, or without one served by the deployment that failed least recently.

use std::time::Duration;

use crate::{openai, routed, setup, FIRST};

const ROUTER: &str = "{ allowed_fails: 2, cooldown: 1s }";

#[tokio::test]
async fn a_failing_deployment_is_skipped_during_its_cooldown_and_tried_after() {
    let models =
        openai("c", "c-bad:error=503", &format!(", weight: {FIRST}")) + &openai("c", "c-ok", "");
    let s = setup(ROUTER, &models).await;
    for _ in 0..2 {
        let response = s.chat("c", false).await;
        assert_eq!(response.status(), 200);
        assert_eq!(routed(&response).1, "1");
    }
    assert_eq!(s.hits("c-bad:error=503"), 2);
    // Cooling down: no traffic at all, and no retry needed.
    for _ in 0..5 {
        let response = s.chat("c", false).await;
        assert_eq!(response.status(), 200);
        assert_eq!(routed(&response), ("c#1".into(), "0".into(), "0".into()));
    }
    assert_eq!(s.hits("c-bad:error=503"), 2);
    assert_eq!(s.hits("c-ok"), 7);
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("keygate_deployment_cooldowns_total{model=\"c\",deployment=\"c#0\"} 1"),
        "{metrics}"
    );
    // Cooldown over: tried (and failing) again.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let response = s.chat("c", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(routed(&response).1, "1");
    assert_eq!(s.hits("c-bad:error=503"), 3);
}

#[tokio::test]
async fn a_cooling_group_is_skipped_for_its_fallback() {
    let models = openai("p", "p-bad:error=503", ", fallbacks: [q]") + &openai("q", "q-ok", "");
    let s = setup(ROUTER, &models).await;
    for _ in 0..2 {
        let response = s.chat("p", false).await;
        assert_eq!(response.status(), 200);
        assert_eq!(routed(&response), ("q#0".into(), "0".into(), "1".into()));
    }
    assert_eq!(s.hits("p-bad:error=503"), 2);
    for _ in 0..3 {
        assert_eq!(s.chat("p", false).await.status(), 200);
    }
    assert_eq!(s.hits("p-bad:error=503"), 2, "a cooling model got traffic");
    assert_eq!(s.hits("q-ok"), 5);
}

#[tokio::test]
async fn with_every_deployment_cooling_and_no_fallback_the_least_recently_failed_is_tried() {
    let models = openai("z", "z-a:error=503", "") + &openai("z", "z-b:error=500", "");
    // No retries: each request fails on one deployment, so the two cool down in turn.
    let s = setup(
        "{ allowed_fails: 1, cooldown: 1m, num_retries: 0 }",
        &models,
    )
    .await;
    let first = s.chat("z", false).await.status().as_u16();
    let second = s.chat("z", false).await.status().as_u16();
    let (a, b) = (s.hits("z-a:error=503"), s.hits("z-b:error=500"));
    assert_eq!((a, b), (1, 1), "{first} {second}");
    // Both cool down: not refused, but sent to the one that failed first.
    let third = s.chat("z", false).await.status().as_u16();
    assert_eq!(third, first);
    assert_eq!(s.hits("z-a:error=503") + s.hits("z-b:error=500"), 3);
}
