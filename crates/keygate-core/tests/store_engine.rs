//! The engine's roles and leases on SQLite and on the PostgreSQL at `KEYGATE_TEST_POSTGRES_URL`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use keygate_core::store::{KeyRecord, LeaseRecord, Store};

fn key(token_id: &str) -> KeyRecord {
    KeyRecord::new(token_id, "sk-...abcd", 0)
}

async fn exercise(store: &Store) {
    let mount = format!("m{}", common::unique().replace('-', ""));
    store
        .put_role(&mount, "dev", r#"{"ttl":60}"#, 1)
        .await
        .unwrap();
    store
        .put_role(&mount, "ops", r#"{"ttl":5}"#, 1)
        .await
        .unwrap();
    store
        .put_role(&mount, "dev", r#"{"ttl":90}"#, 2)
        .await
        .unwrap();
    assert_eq!(
        store.get_role(&mount, "dev").await.unwrap().as_deref(),
        Some(r#"{"ttl":90}"#)
    );
    assert_eq!(store.list_roles(&mount).await.unwrap(), ["dev", "ops"]);
    assert!(store.delete_role(&mount, "ops").await.unwrap());
    assert!(!store.delete_role(&mount, "ops").await.unwrap());
    assert_eq!(store.get_role(&mount, "ops").await.unwrap(), None);

    let mut leases = Vec::new();
    for i in 0..3 {
        let token = format!("{mount}-t{i}");
        let lease = LeaseRecord {
            lease_id: format!("{mount}/creds/dev/{i}"),
            mount: mount.clone(),
            role: "dev".into(),
            token_id: token.clone(),
            issued_at: 100,
            expires_at: 160 + i,
            last_renewal: None,
        };
        store.insert_leased_key(&key(&token), &lease).await.unwrap();
        leases.push(lease);
    }
    assert_eq!(
        store.get_lease(&leases[0].lease_id).await.unwrap().as_ref(),
        Some(&leases[0])
    );
    let prefixed = store
        .leases_with_prefix(&format!("{mount}/creds/dev/"))
        .await
        .unwrap();
    assert_eq!(prefixed.len(), 3);
    assert!(store
        .renew_lease(&leases[0].lease_id, 500, 150)
        .await
        .unwrap());
    let renewed = store.get_lease(&leases[0].lease_id).await.unwrap().unwrap();
    assert_eq!((renewed.expires_at, renewed.last_renewal), (500, Some(150)));
    // Expired at 161: leases 1 (160+1) but not 2 (162); lease 0 was renewed.
    let expired: Vec<String> = store
        .expired_leases(161, 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.mount == mount)
        .map(|l| l.lease_id)
        .collect();
    assert_eq!(expired, [leases[1].lease_id.clone()]);
    // Revoking deletes the key with the lease, once.
    let gone = store.revoke_leases(&leases[1..2], 170).await.unwrap();
    assert_eq!(gone, [leases[1].token_id.clone()]);
    assert!(store.get_key(&leases[1].token_id).await.unwrap().is_none());
    assert!(store
        .get_lease(&leases[1].lease_id)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .revoke_leases(&leases[1..2], 171)
        .await
        .unwrap()
        .is_empty());
    assert!(!store
        .renew_lease(&leases[1].lease_id, 900, 172)
        .await
        .unwrap());
    assert!(store.get_key(&leases[2].token_id).await.unwrap().is_some());
}

#[tokio::test]
async fn sqlite_engine_store() {
    let url = format!("sqlite://{}/engine.db", common::temp_dir().display());
    let store = Store::connect(&url).await.unwrap();
    exercise(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_engine_store() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    let store = Store::connect(&url).await.unwrap();
    exercise(&store).await;
    store.close().await;
}
