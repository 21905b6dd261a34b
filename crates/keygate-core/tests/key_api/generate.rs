//! `POST /key/generate` and the admin-key check every route shares.

use http::StatusCode;
use keygate_core::keys::token;
use serde_json::json;

use crate::{common, litellm_error, on_both, unique, validation_error, Api};

on_both!(
    generate_returns_litellm_fields_and_stores_the_hash,
    generate_with_callers_key_and_conflicts,
    generate_refuses_bad_input_like_litellm,
    every_route_needs_the_admin_key,
);

async fn generate_returns_litellm_fields_and_stores_the_hash(api: Api) {
    let alias = unique("gen");
    let before = now_ms();
    let out = api
        .generate(&json!({
            "models": ["gpt"], "key_alias": alias, "duration": "30d", "max_budget": 5,
            "soft_budget": "1.5", "budget_duration": "1d", "rpm_limit": 10, "tpm_limit": 1000.0,
            "max_parallel_requests": 2, "metadata": {"team": "a"}, "team_id": "t", "user_id": "u",
            "blocked": false, "some_future_litellm_field": {"ignored": true}, "tags": ["x"],
        }))
        .await;
    let key = out["key"].as_str().unwrap();
    assert!(key.starts_with("sk-") && key.len() >= 35, "{out}");
    let token_id = out["token_id"].as_str().unwrap();
    assert_eq!(token_id, token::hash_key(key));
    assert_eq!(out["token"], token_id);
    assert_eq!(out["key_name"], token::key_name(key));
    assert_eq!(out["key_alias"], alias.as_str());
    assert_eq!(out["models"], json!(["gpt"]));
    assert_eq!(out["max_budget"], 5.0);
    assert_eq!(out["soft_budget"], 1.5);
    assert_eq!(out["spend"], 0.0);
    assert_eq!(
        (out["rpm_limit"].as_i64(), out["tpm_limit"].as_i64()),
        (Some(10), Some(1000))
    );
    assert_eq!(out["max_parallel_requests"], 2);
    assert_eq!(out["metadata"], json!({"team": "a"}));
    assert_eq!(
        (out["team_id"].as_str(), out["user_id"].as_str()),
        (Some("t"), Some("u"))
    );
    assert_eq!(
        (out["duration"].as_str(), out["budget_duration"].as_str()),
        (Some("30d"), Some("1d"))
    );
    assert_eq!(out["blocked"], false);
    for field in ["allowed_routes", "allowed_cache_controls"] {
        assert_eq!(out[field], json!([]), "{field}");
    }
    let expires = out["expires"].as_str().unwrap();
    assert!(expires.ends_with('Z') && expires.len() == 27, "{expires}");

    // Committed before the answer: the store has it, and only as its hash.
    let stored = api.state.store().get_key(token_id).await.unwrap().unwrap();
    assert_eq!(stored.key_alias.as_deref(), Some(alias.as_str()));
    let thirty_days = 30 * 86_400_000;
    let expires_ms = stored.expires.unwrap();
    assert!(expires_ms >= before + thirty_days && expires_ms <= now_ms() + thirty_days);
    let reset = stored.budget_reset_at.unwrap();
    assert!(reset >= before + 86_400_000 && reset <= now_ms() + 86_400_000);
    assert_eq!(
        (stored.soft_budget, stored.tpm_limit),
        (Some(1.5), Some(1000))
    );
    assert!(api.state.store().get_key(key).await.unwrap().is_none());

    // No duration: never expires; no body fields at all is a valid request.
    let out = api
        .generate(&json!({"duration": null, "models": null}))
        .await;
    assert_eq!(out["expires"], json!(null));
    assert_eq!(out["models"], json!([]));
    let out = api.generate(&json!({})).await;
    assert_eq!(
        (out["key_alias"].clone(), out["metadata"].clone()),
        (json!(null), json!({}))
    );
}

async fn generate_with_callers_key_and_conflicts(api: Api) {
    let own = format!("sk-{}", unique("own"));
    let alias = unique("dup");
    let out = api
        .generate(&json!({"key": own, "key_alias": alias, "duration": "1mo"}))
        .await;
    assert_eq!(out["key"], own.as_str());
    assert_eq!(out["token_id"], token::hash_key(&own));

    let (status, body) = api
        .post("/key/generate", &json!({"key_alias": alias}))
        .await;
    let message = litellm_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(
        message,
        format!("Key with alias '{alias}' already exists. Unique key aliases across all keys are required.")
    );
    assert_eq!(body["error"]["type"], "bad_request_error");
    assert_eq!(body["error"]["param"], "key_alias");

    let (status, body) = api.post("/key/generate", &json!({"key": own})).await;
    litellm_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["param"], "key");

    let (status, body) = api
        .post("/key/generate", &json!({"key": "my-own-secret-key"}))
        .await;
    let message = litellm_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(
        message,
        "{'error': \"Invalid key format. LiteLLM Virtual Key must start with 'sk-'. Received: my-o****-key\"}"
    );
    assert!(!body.to_string().contains("my-own-secret-key"));
}

async fn generate_refuses_bad_input_like_litellm(api: Api) {
    // A bare number, a fraction, an unknown unit, an empty text: LiteLLM's grammar refuses them.
    for duration in ["30", "1.5h", "1y", "", "-1", "10 s"] {
        let (status, body) = api
            .post("/key/generate", &json!({"duration": duration}))
            .await;
        let message = litellm_error(status, &body, StatusCode::BAD_REQUEST);
        assert!(message.contains("duration"), "{duration:?}: {message}");
    }
    let (status, body) = api.post("/key/generate", &json!({"duration": "30"})).await;
    let message = litellm_error(status, &body, StatusCode::BAD_REQUEST);
    assert!(message.starts_with("Unsupported duration unit, passed duration: 30"));
    let (status, body) = api
        .post("/key/generate", &json!({"budget_duration": "30"}))
        .await;
    litellm_error(status, &body, StatusCode::BAD_REQUEST);

    let (status, body) = api.post("/key/generate", &json!({"max_budget": -1})).await;
    let message = litellm_error(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(
        message,
        "{'error': 'max_budget cannot be negative. Received: -1.0'}"
    );

    // Type errors are FastAPI's 422, every one of them at once.
    let (status, body) = api
        .post(
            "/key/generate",
            &json!({"duration": 30, "models": "gpt", "rpm_limit": 1.5, "metadata": [], "blocked": "perhaps"}),
        )
        .await;
    let items = validation_error(status, &body);
    let locs: Vec<String> = items
        .iter()
        .map(|i| i["loc"][1].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        locs,
        ["duration", "models", "rpm_limit", "metadata", "blocked"]
    );
    assert_eq!(items[0]["loc"][0], "body");
    assert_eq!(items[0]["type"], "string_type");
    assert_eq!(items[0]["msg"], "Input should be a valid string");
    let (status, body) = api
        .call("POST", "/key/generate", Some("{nope"), Some(common::ADMIN))
        .await;
    assert_eq!(validation_error(status, &body)[0]["type"], "json_invalid");
    let (status, body) = api
        .call("POST", "/key/generate", None, Some(common::ADMIN))
        .await;
    assert_eq!(validation_error(status, &body)[0]["type"], "missing");
}

async fn every_route_needs_the_admin_key(api: Api) {
    let routes = [
        ("POST", "/key/generate", Some("{}")),
        ("POST", "/key/update", Some(r#"{"key":"sk-x"}"#)),
        ("POST", "/key/delete", Some(r#"{"keys":["sk-x"]}"#)),
        ("GET", "/key/info?key=sk-x", None),
        ("GET", "/key/list", None),
        ("POST", "/key/regenerate", Some(r#"{"key":"sk-x"}"#)),
        ("POST", "/key/sk-x/regenerate", Some("{}")),
    ];
    for (method, path, body) in routes {
        let (status, out) = api.call(method, path, body, None).await;
        let message = litellm_error(status, &out, StatusCode::UNAUTHORIZED);
        assert_eq!(
            message, "Authentication Error, No api key passed in.",
            "{path}"
        );
        assert_eq!(out["error"]["type"], "auth_error");
        assert_eq!(out["error"]["param"], "None");
        let (status, out) = api.call(method, path, body, Some("sk-wrong")).await;
        litellm_error(status, &out, StatusCode::UNAUTHORIZED);
        assert!(!out.to_string().contains("sk-wrong"), "{out}");
    }
    // LiteLLM's other header for the master key, and a scheme other than Bearer.
    let app = keygate_core::http::router(api.state.clone());
    let request = http::Request::get("/key/list")
        .header("x-litellm-api-key", common::ADMIN)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let request = http::Request::get("/key/list")
        .header("authorization", format!("Basic {}", common::ADMIN))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app, request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // A virtual key is not the admin key.
    let out = api.generate(&json!({})).await;
    let key = out["key"].as_str().unwrap();
    let (status, body) = api
        .call("POST", "/key/generate", Some("{}"), Some(key))
        .await;
    let message = litellm_error(status, &body, StatusCode::UNAUTHORIZED);
    assert!(message.contains("only the admin key"), "{message}");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
