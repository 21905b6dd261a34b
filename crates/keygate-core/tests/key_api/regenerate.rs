//! `POST /key/regenerate` and `POST /key/{key}/regenerate`: a new plaintext, same settings,
//! the old one dead at once.

use http::StatusCode;
use keygate_core::keys::token;
use serde_json::json;

use crate::{litellm_error, on_both, unique, Api};

on_both!(regenerate_replaces_the_plaintext_at_once, regenerate_errors);

async fn regenerate_replaces_the_plaintext_at_once(api: Api) {
    let alias = unique("regen");
    let out = api
        .generate(
            &json!({"key_alias": alias, "models": ["gpt"], "max_budget": 3, "duration": "1h"}),
        )
        .await;
    let old_key = out["key"].as_str().unwrap().to_owned();
    let old_id = out["token_id"].as_str().unwrap().to_owned();
    let old_expires = out["expires"].clone();
    let keys = api.state.keys();
    // Warm the cache for the old key, as a request in flight would have.
    assert!(keys
        .get(api.state.store(), &old_id)
        .await
        .unwrap()
        .is_some());

    let (status, body) = api
        .post(&format!("/key/{old_key}/regenerate"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new_key = body["key"].as_str().unwrap().to_owned();
    let new_id = body["token_id"].as_str().unwrap().to_owned();
    assert_ne!(new_key, old_key);
    assert_eq!(new_id, token::hash_key(&new_key));
    assert_eq!(body["key_name"], token::key_name(&new_key));
    assert_eq!(body["key_alias"], alias.as_str());
    assert_eq!(body["models"], json!(["gpt"]));
    assert_eq!(body["max_budget"], 3.0);
    assert_eq!(body["expires"], old_expires, "settings are kept");
    assert_eq!(body["token"], json!(null));

    // The old key is gone from the store and from the cache; the new one is there.
    assert!(api.state.store().get_key(&old_id).await.unwrap().is_none());
    assert!(keys
        .get(api.state.store(), &old_id)
        .await
        .unwrap()
        .is_none());
    let new = keys.get(api.state.store(), &new_id).await.unwrap().unwrap();
    assert_eq!(new.key_alias.as_deref(), Some(alias.as_str()));
    let (status, _) = api.get(&format!("/key/info?key={old_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.call("GET", "/key/info", None, Some(&old_key)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Body form, by hash, with a chosen new key and field updates.
    let chosen = format!("sk-{}", unique("chosen"));
    let (status, body) = api
        .post(
            "/key/regenerate",
            &json!({"key": new_id, "new_key": chosen, "max_budget": 9, "duration": "2d"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["key"], chosen.as_str());
    assert_eq!(body["token_id"], token::hash_key(&chosen));
    assert_eq!(body["max_budget"], 9.0);
    assert_ne!(body["expires"], old_expires);
    assert!(api.state.store().get_key(&new_id).await.unwrap().is_none());

    // The body's key wins over the path's (LiteLLM).
    let chosen_id = token::hash_key(&chosen);
    let (status, body) = api
        .post(
            "/key/sk-not-this-one/regenerate",
            &json!({"key": chosen_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn regenerate_errors(api: Api) {
    let (status, body) = api.post("/key/sk-missing/regenerate", &json!({})).await;
    let message = litellm_error(status, &body, StatusCode::NOT_FOUND);
    assert!(
        message.starts_with("{'error': 'Key sk-...sing not found.'"),
        "{message}"
    );
    // No body at all is accepted (the body is optional in LiteLLM).
    let (status, _) = api
        .call(
            "POST",
            "/key/sk-missing/regenerate",
            None,
            Some(crate::common::ADMIN),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = api.post("/key/regenerate", &json!({})).await;
    let message = litellm_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(message, "{'error': 'No key passed in.'}");

    let out = api.generate(&json!({})).await;
    let key = out["key"].as_str().unwrap();
    let (status, body) = api
        .post(
            &format!("/key/{key}/regenerate"),
            &json!({"new_key": "not-sk"}),
        )
        .await;
    litellm_error(status, &body, StatusCode::BAD_REQUEST);
    let taken = unique("regen-taken");
    let other = api.generate(&json!({"key_alias": taken})).await;
    let (status, body) = api
        .post(
            &format!("/key/{key}/regenerate"),
            &json!({"key_alias": taken}),
        )
        .await;
    litellm_error(status, &body, StatusCode::BAD_REQUEST);
    let (status, body) = api
        .post(
            &format!("/key/{key}/regenerate"),
            &json!({"new_key": other["key"]}),
        )
        .await;
    let message = litellm_error(status, &body, StatusCode::BAD_REQUEST);
    assert!(message.contains("Key already exists"), "{message}");
    // The refused regenerations left the key as it was.
    assert!(api
        .state
        .store()
        .get_key(&token::hash_key(key))
        .await
        .unwrap()
        .is_some());
}
