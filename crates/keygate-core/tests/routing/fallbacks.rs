//! Fallback models: tried after every deployment of a group failed, charged at their own
//! price to a virtual key scoped to the model asked for; cycles end.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{common, openai, routed, setup};

/// $1 per thousand tokens: the fallback is a thousand times the primary's price.
const BACKUP_PRICE: &str = ", price: { input_per_mtok: 1000, output_per_mtok: 1000 }";
const PRIMARY_PRICE: &str = ", price: { input_per_mtok: 1, output_per_mtok: 1 }";

#[tokio::test]
async fn the_fallback_serves_after_every_deployment_failed_and_is_charged_at_its_price() {
    let models = openai(
        "primary",
        "prim-a:error=503",
        &format!("{PRIMARY_PRICE}, fallbacks: [backup]"),
    ) + &openai("primary", "prim-b:error=500", PRIMARY_PRICE)
        + &openai("backup", "backup-ok", BACKUP_PRICE);
    let s = setup("{ retry_backoff: 10ms }", &models).await;
    let generated = s
        .generate(json!({"models": ["primary"], "max_budget": 100}))
        .await;
    let key = generated["key"].as_str().unwrap();
    let token_id = generated["token_id"].as_str().unwrap();

    let response = s.chat_as(key, "primary", false).await;
    assert_eq!(response.status(), 200);
    // Both deployments, then one of them again (num_retries 2), then the fallback.
    assert_eq!(
        routed(&response),
        ("backup#0".into(), "2".into(), "1".into())
    );
    let body: Value = response.json().await.unwrap();
    let usage = &body["usage"];
    let tokens =
        usage["prompt_tokens"].as_i64().unwrap() + usage["completion_tokens"].as_i64().unwrap();
    assert_eq!(s.hits("prim-a:error=503") + s.hits("prim-b:error=500"), 3);
    assert_eq!(s.hits("backup-ok"), 1);
    // The key may not call the fallback itself: serving it was the operator's choice.
    assert_eq!(s.chat_as(key, "backup", false).await.status(), 403);

    s.gateway.state.spend_writer().shutdown().await;
    let log = s
        .gateway
        .state
        .store()
        .spend_log(token_id, 10)
        .await
        .unwrap();
    let served: Vec<_> = log.iter().filter(|e| e.status == 200).collect();
    assert_eq!(served.len(), 1, "{log:?}");
    let expected = tokens as f64 / 1000.0;
    assert!(
        (served[0].cost - expected).abs() < 1e-9,
        "charged {} for {tokens} tokens, expected {expected}",
        served[0].cost
    );
}

#[tokio::test]
async fn a_fallback_cycle_ends_after_visiting_each_model_once() {
    let models = openai("a", "cyc-a:error=503", ", fallbacks: [b]")
        + &openai("b", "cyc-b:error=502", ", fallbacks: [a]");
    let s = setup("", &models).await;
    let response = tokio::time::timeout(Duration::from_secs(10), s.chat("a", false))
        .await
        .expect("the cycle did not end");
    // The last error is answered, saying what was tried.
    assert_eq!(response.status(), 502);
    assert_eq!(routed(&response), ("-".into(), "0".into(), "1".into()));
    assert_eq!(
        (s.hits("cyc-a:error=503"), s.hits("cyc-b:error=502")),
        (1, 1)
    );
    let response = s.chat("b", false).await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        (s.hits("cyc-a:error=503"), s.hits("cyc-b:error=502")),
        (2, 2)
    );
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("keygate_fallbacks_total{model=\"a\",fallback=\"b\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_callers_own_key_stays_with_the_model_it_named() {
    let models = openai(
        "own",
        "own-bad:error=503",
        ", byok: allow, fallbacks: [other]",
    ) + &openai("other", "other-ok", "");
    let s = setup("", &models).await;
    let response = s
        .client
        .post(format!("{}/v1/chat/completions", s.gateway.url))
        .bearer_auth(common::ADMIN)
        .header(
            "x-own-authorization",
            format!("Bearer {}", common::UPSTREAM_KEY),
        )
        .json(&crate::chat("own", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(s.hits("other-ok"), 0);
    // Without the header, the fallback serves.
    assert_eq!(s.chat("own", false).await.status(), 200);
    assert_eq!(s.hits("other-ok"), 1);
}

#[tokio::test]
async fn the_budget_reservation_is_made_at_the_highest_price_a_fallback_may_charge() {
    let models = openai(
        "primary",
        "res-prim:error=503",
        &format!("{PRIMARY_PRICE}, fallbacks: [backup]"),
    ) + &openai("backup", "res-backup", BACKUP_PRICE);
    let s = setup("{ retry_backoff: 10ms }", &models).await;
    // About 110 tokens at most (body bytes plus max_tokens 20): at the primary's price a
    // reservation of about $0.0001, at the fallback's about $0.11, more than this key has.
    let generated = s
        .generate(json!({"models": ["primary"], "max_budget": 0.05}))
        .await;
    let key = generated["key"].as_str().unwrap();
    let response = s.chat_as(key, "primary", false).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "budget_exceeded", "{body}");
    assert_eq!(s.hits("res-prim:error=503") + s.hits("res-backup"), 0);
}
