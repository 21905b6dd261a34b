//! The key store on SQLite and on the PostgreSQL at `KEYGATE_TEST_POSTGRES_URL` (the same
//! checks on both; PostgreSQL fails loudly when unset unless `KEYGATE_TEST_SKIP_SERVICES=1`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use keygate_core::store::{KeyFilter, KeyRecord, SpendEntry, Store, StoreError};
use serde_json::json;

fn key(tag: &str, alias: Option<&str>) -> KeyRecord {
    KeyRecord {
        key_alias: alias.map(str::to_owned),
        models: vec!["gpt".to_owned()],
        max_budget: Some(1.5),
        budget_duration: Some("30d".to_owned()),
        budget_reset_at: Some(1_000),
        rpm_limit: Some(10),
        max_parallel_requests: Some(2),
        metadata: json!({"team": "a"}),
        team_id: Some("t1".to_owned()),
        expires: Some(2_000_000_000_000),
        ..KeyRecord::new(format!("{tag}-{}", common::unique()), "sk-...abcd", 1)
    }
}

async fn exercise(store: &Store) {
    let alias = format!("alias-{}", common::unique());
    let a = key("a", Some(&alias));
    store.insert_key(&a).await.unwrap();
    assert_eq!(store.get_key(&a.token_id).await.unwrap().as_ref(), Some(&a));
    assert_eq!(
        store.get_key_by_alias(&alias).await.unwrap().as_ref(),
        Some(&a)
    );
    // Duplicate alias and duplicate token are conflicts.
    let dup = key("b", Some(&alias));
    assert!(matches!(
        store.insert_key(&dup).await,
        Err(StoreError::Conflict("key_alias"))
    ));
    assert!(matches!(
        store.insert_key(&a).await,
        Err(StoreError::Conflict(_))
    ));
    // Update and regenerate (new token id).
    let mut changed = a.clone();
    changed.models = vec![];
    changed.blocked = true;
    changed.metadata = json!({});
    assert!(store.update_key(&changed).await.unwrap());
    assert_eq!(store.get_key(&a.token_id).await.unwrap().unwrap(), changed);
    let mut regenerated = changed.clone();
    regenerated.token_id = format!("r-{}", common::unique());
    assert!(store.replace_key(&a.token_id, &regenerated).await.unwrap());
    assert!(store.get_key(&a.token_id).await.unwrap().is_none());
    // Spend, log, reset.
    let entry = SpendEntry {
        token_id: regenerated.token_id.clone(),
        model: "gpt".to_owned(),
        prompt_tokens: 10,
        completion_tokens: 5,
        cost: 0.25,
        status: 200,
        latency_ms: 12.5,
        created_at: 5,
    };
    store
        .record_spend(
            &[(regenerated.token_id.clone(), 0.25)],
            std::slice::from_ref(&entry),
            5,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get_key(&regenerated.token_id)
            .await
            .unwrap()
            .unwrap()
            .spend,
        0.25
    );
    assert_eq!(
        store.spend_log(&regenerated.token_id, 10).await.unwrap(),
        vec![entry]
    );
    assert!(!store
        .reset_spend(&regenerated.token_id, 999, Some(5_000))
        .await
        .unwrap());
    assert!(store
        .reset_spend(&regenerated.token_id, 1_000, Some(5_000))
        .await
        .unwrap());
    let reset = store.get_key(&regenerated.token_id).await.unwrap().unwrap();
    assert_eq!((reset.spend, reset.budget_reset_at), (0.0, Some(5_000)));
    // Listing with a filter, paging.
    let team = format!("team-{}", common::unique());
    for i in 0..3 {
        let mut k = key(&format!("l{i}"), None);
        k.team_id = Some(team.clone());
        k.created_at = i;
        store.insert_key(&k).await.unwrap();
    }
    let filter = KeyFilter {
        team_id: Some(team.clone()),
        ..KeyFilter::default()
    };
    let (page, total) = store.list_keys(&filter, 1, 2).await.unwrap();
    assert_eq!((page.len(), total), (2, 3));
    assert_eq!(page[0].created_at, 2);
    let (page, _) = store.list_keys(&filter, 2, 2).await.unwrap();
    assert_eq!(page.len(), 1);
    // Delete reports what existed.
    let ids = vec![regenerated.token_id.clone(), "missing".to_owned()];
    assert_eq!(
        store.delete_keys(&ids).await.unwrap(),
        vec![regenerated.token_id.clone()]
    );
    assert!(store
        .get_key(&regenerated.token_id)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn sqlite_key_store() {
    let url = format!("sqlite://{}/keys.db", common::temp_dir().display());
    let store = Store::connect(&url).await.unwrap();
    exercise(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_key_store() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    let store = Store::connect(&url).await.unwrap();
    exercise(&store).await;
    store.close().await;
}
