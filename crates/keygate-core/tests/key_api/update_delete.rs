//! `POST /key/update` and `POST /key/delete`, and the cache entries they drop.

use http::StatusCode;
use keygate_core::keys::token;
use serde_json::json;

use crate::{litellm_error, on_both, unique, validation_error, Api};

on_both!(
    update_changes_named_fields_and_rebases_duration,
    update_errors_like_litellm,
    delete_by_key_hash_or_alias,
);

async fn update_changes_named_fields_and_rebases_duration(api: Api) {
    let alias = unique("upd");
    let out = api
        .generate(
            &json!({"key_alias": alias, "models": ["gpt"], "max_budget": 5, "rpm_limit": 3,
                          "metadata": {"a": 1}, "duration": "1h"}),
        )
        .await;
    let key = out["key"].as_str().unwrap().to_owned();
    let token_id = out["token_id"].as_str().unwrap().to_owned();
    // Warm the cache, as an inference request would.
    let cached = api
        .state
        .keys()
        .get(api.state.store(), &token_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cached.rpm_limit, Some(3));

    let new_alias = unique("upd-renamed");
    let (status, body) = api
        .post(
            "/key/update",
            &json!({"key": key, "key_alias": new_alias, "models": ["gpt", "claude"],
                    "rpm_limit": "7", "max_budget": null, "metadata": {"b": 2}, "duration": "2h",
                    "blocked": true, "unknown_field": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["key"], key.as_str());
    assert_eq!(body["token"], token_id.as_str());
    assert_eq!(body["key_alias"], new_alias.as_str());
    assert_eq!(body["models"], json!(["gpt", "claude"]));
    assert_eq!(
        (body["rpm_limit"].as_i64(), body["max_budget"].clone()),
        (Some(7), json!(null))
    );
    assert_eq!(body["metadata"], json!({"b": 2}));
    assert_eq!(body["blocked"], true);

    // The cache was dropped: the next lookup reads the new settings.
    let fresh = api
        .state
        .keys()
        .get(api.state.store(), &token_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((fresh.rpm_limit, fresh.blocked), (Some(7), true));
    let two_hours = fresh.expires.unwrap() - fresh.updated_at;
    assert!((7_199_000..=7_201_000).contains(&two_hours), "{two_hours}");

    // By hash; fields not named keep their values; "-1" and null mean never expires.
    let (status, body) = api
        .post("/key/update", &json!({"key": token_id, "duration": "-1"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires"], json!(null));
    assert_eq!(body["rpm_limit"], 7);
    api.post("/key/update", &json!({"key": token_id, "duration": "5m"}))
        .await;
    let (_, body) = api
        .post("/key/update", &json!({"key": token_id, "duration": null}))
        .await;
    assert_eq!(body["expires"], json!(null));
    let (_, body) = api
        .post(
            "/key/update",
            &json!({"key": token_id, "budget_duration": "30d", "spend": 1.25}),
        )
        .await;
    assert_eq!(
        (body["budget_duration"].as_str(), body["spend"].as_f64()),
        (Some("30d"), Some(1.25))
    );
    assert!(body["budget_reset_at"].is_string(), "{body}");
    assert_eq!(body["key_alias"], new_alias.as_str());
    // Keeping one's own alias is not a conflict.
    let (status, _) = api
        .post("/key/update", &json!({"key": key, "key_alias": new_alias}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn update_errors_like_litellm(api: Api) {
    let (status, body) = api
        .post(
            "/key/update",
            &json!({"key": "sk-does-not-exist", "models": []}),
        )
        .await;
    let message = litellm_error(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["type"], "auth_error");
    assert!(message.starts_with("{'error': 'Key not found"), "{message}");
    assert!(
        !message.contains("sk-does-not-exist"),
        "the plaintext is not echoed: {message}"
    );

    let taken = unique("taken");
    api.generate(&json!({"key_alias": taken})).await;
    let out = api.generate(&json!({})).await;
    let key = out["key"].as_str().unwrap();
    let (status, body) = api
        .post("/key/update", &json!({"key": key, "key_alias": taken}))
        .await;
    let message = litellm_error(status, &body, StatusCode::BAD_REQUEST);
    assert!(message.starts_with("Key with alias '"), "{message}");

    let (status, body) = api
        .post("/key/update", &json!({"key": key, "duration": "30"}))
        .await;
    let message = litellm_error(status, &body, StatusCode::BAD_REQUEST);
    assert!(
        message.starts_with("Authentication Error, Unsupported duration unit"),
        "{message}"
    );
    let (status, body) = api
        .post("/key/update", &json!({"key": key, "max_budget": -2}))
        .await;
    litellm_error(status, &body, StatusCode::BAD_REQUEST);

    let (status, body) = api.post("/key/update", &json!({"models": []})).await;
    let items = validation_error(status, &body);
    assert_eq!(
        (items[0]["type"].as_str(), items[0]["loc"].clone()),
        (Some("missing"), json!(["body", "key"]))
    );
    let (status, body) = api
        .post("/key/update", &json!({"key": key, "tpm_limit": "many"}))
        .await;
    assert_eq!(validation_error(status, &body)[0]["type"], "int_parsing");
    // Nothing was changed by the refused requests.
    let stored = api
        .state
        .store()
        .get_key(&token::hash_key(key))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.max_budget, stored.expires, stored.tpm_limit),
        (None, None, None)
    );
}

async fn delete_by_key_hash_or_alias(api: Api) {
    let a = api.generate(&json!({})).await;
    let b = api.generate(&json!({})).await;
    let alias = unique("del");
    let c = api.generate(&json!({"key_alias": alias})).await;
    let (a_key, b_id) = (a["key"].as_str().unwrap(), b["token_id"].as_str().unwrap());
    let a_id = a["token_id"].as_str().unwrap();
    // Warm the cache for a: deletion must reach it.
    assert!(api
        .state
        .keys()
        .get(api.state.store(), a_id)
        .await
        .unwrap()
        .is_some());

    let (status, body) = api
        .post(
            "/key/delete",
            &json!({"keys": [a_key, b_id, "sk-never-existed"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // LiteLLM lists what was asked for.
    assert_eq!(
        body,
        json!({"deleted_keys": [a_key, b_id, "sk-never-existed"]})
    );
    assert!(api.state.store().get_key(a_id).await.unwrap().is_none());
    assert!(api
        .state
        .keys()
        .get(api.state.store(), a_id)
        .await
        .unwrap()
        .is_none());
    assert!(api.state.store().get_key(b_id).await.unwrap().is_none());

    let (status, body) = api.post("/key/delete", &json!({"keys": [a_key]})).await;
    let message = litellm_error(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(message, "{'error': 'No keys found'}");

    let (status, body) = api
        .post("/key/delete", &json!({"key_aliases": [alias]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"deleted_keys": [alias]}));
    let c_id = c["token_id"].as_str().unwrap();
    assert!(api.state.store().get_key(c_id).await.unwrap().is_none());
    let (status, body) = api
        .post("/key/delete", &json!({"key_aliases": [alias]}))
        .await;
    litellm_error(status, &body, StatusCode::NOT_FOUND);

    for empty in [
        json!({}),
        json!({"keys": []}),
        json!({"keys": null, "key_aliases": []}),
    ] {
        let (status, body) = api.post("/key/delete", &empty).await;
        let items = validation_error(status, &body);
        assert_eq!(items[0]["type"], "value_error", "{empty}");
        assert!(items[0]["msg"]
            .as_str()
            .unwrap()
            .contains("At least one of 'keys' or 'key_aliases'"));
    }
}
