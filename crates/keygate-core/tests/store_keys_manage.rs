//! The key management writes (`patch_key`, `delete_keys_by_alias`) on SQLite and on the
//! PostgreSQL at `KEYGATE_TEST_POSTGRES_URL` (fails loudly when unset unless
//! `KEYGATE_TEST_SKIP_SERVICES=1`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use keygate_core::store::{KeyColumn, KeyRecord, SpendEntry, Store, StoreError};
use serde_json::json;

fn key(tag: &str, alias: &str) -> KeyRecord {
    KeyRecord {
        key_alias: Some(alias.to_owned()),
        models: vec!["gpt".to_owned()],
        max_budget: Some(1.5),
        budget_reset_at: Some(1_000),
        rpm_limit: Some(10),
        metadata: json!({"a": 1}),
        ..KeyRecord::new(format!("{tag}-{}", common::unique()), "sk-...abcd", 1)
    }
}

async fn exercise(store: &Store) {
    let alias = format!("patch-{}", common::unique());
    let a = key("a", &alias);
    store.insert_key(&a).await.unwrap();

    // Spend settled after the caller read the key survives a patch that does not name spend.
    let read = store.get_key(&a.token_id).await.unwrap().unwrap();
    let entry = SpendEntry {
        token_id: a.token_id.clone(),
        model: "gpt".to_owned(),
        prompt_tokens: 1,
        completion_tokens: 1,
        cost: 0.5,
        status: 200,
        latency_ms: 1.0,
        created_at: 2,
    };
    store
        .record_spend(&[(a.token_id.clone(), 0.5)], &[entry], 2)
        .await
        .unwrap();
    let mut changed = read.clone();
    changed.models = vec![];
    changed.rpm_limit = None;
    changed.metadata = json!({"b": true});
    changed.updated_at = 3;
    let columns = [
        KeyColumn::Models,
        KeyColumn::RpmLimit,
        KeyColumn::Metadata,
        KeyColumn::UpdatedAt,
    ];
    assert!(store
        .patch_key(&a.token_id, &changed, &columns)
        .await
        .unwrap());
    let now = store.get_key(&a.token_id).await.unwrap().unwrap();
    assert_eq!(now.spend, 0.5);
    assert_eq!((now.models.len(), now.rpm_limit), (0, None));
    assert_eq!(now.metadata, json!({"b": true}));
    assert_eq!(
        (now.max_budget, now.created_at, now.updated_at),
        (Some(1.5), 1, 3)
    );

    // Spend is written only when named.
    let mut zero = now.clone();
    zero.spend = 0.0;
    store
        .patch_key(&a.token_id, &zero, &[KeyColumn::Spend])
        .await
        .unwrap();
    assert_eq!(
        store.get_key(&a.token_id).await.unwrap().unwrap().spend,
        0.0
    );

    // Renaming the token (regeneration) keeps everything else.
    let mut renamed = now.clone();
    renamed.token_id = format!("r-{}", common::unique());
    renamed.key_name = "sk-...wxyz".to_owned();
    let rename = [KeyColumn::TokenId, KeyColumn::KeyName];
    assert!(store
        .patch_key(&a.token_id, &renamed, &rename)
        .await
        .unwrap());
    assert!(store.get_key(&a.token_id).await.unwrap().is_none());
    let moved = store.get_key(&renamed.token_id).await.unwrap().unwrap();
    assert_eq!(moved.key_alias.as_deref(), Some(alias.as_str()));
    assert_eq!(moved.key_name, "sk-...wxyz");

    // A missing key is reported, a taken alias is a conflict.
    assert!(!store
        .patch_key("missing", &renamed, &[KeyColumn::UpdatedAt])
        .await
        .unwrap());
    let other_alias = format!("patch-other-{}", common::unique());
    let b = key("b", &other_alias);
    store.insert_key(&b).await.unwrap();
    let mut steal = b.clone();
    steal.key_alias = Some(alias.clone());
    assert!(matches!(
        store
            .patch_key(&b.token_id, &steal, &[KeyColumn::KeyAlias])
            .await,
        Err(StoreError::Conflict("key_alias"))
    ));

    // Delete by alias returns the token ids removed, and nothing for unknown aliases.
    let gone = store
        .delete_keys_by_alias(&[alias.clone(), "no-such-alias".to_owned()])
        .await
        .unwrap();
    assert_eq!(gone, vec![renamed.token_id.clone()]);
    assert!(store.get_key_by_alias(&alias).await.unwrap().is_none());
    assert!(store
        .delete_keys_by_alias(&[alias])
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.delete_keys_by_alias(&[other_alias]).await.unwrap(),
        vec![b.token_id]
    );
}

#[tokio::test]
async fn sqlite_key_management_writes() {
    let url = format!("sqlite://{}/keys.db", common::temp_dir().display());
    let store = Store::connect(&url).await.unwrap();
    exercise(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_key_management_writes() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    let store = Store::connect(&url).await.unwrap();
    exercise(&store).await;
    store.close().await;
}
