//! `GET /key/info` and `GET /key/list`.

use http::StatusCode;
use keygate_core::store::SpendEntry;
use serde_json::{json, Value};

use crate::{litellm_error, on_both, unique, validation_error, Api};

on_both!(
    info_by_key_hash_or_self,
    list_pages_and_filters,
    list_validates_its_query
);

async fn info_by_key_hash_or_self(api: Api) {
    let alias = unique("info");
    let out = api
        .generate(
            &json!({"key_alias": alias, "models": ["gpt"], "max_budget": 2, "soft_budget": 1}),
        )
        .await;
    let key = out["key"].as_str().unwrap();
    let token_id = out["token_id"].as_str().unwrap();
    let entry = SpendEntry {
        token_id: token_id.to_owned(),
        model: "gpt".to_owned(),
        prompt_tokens: 3,
        completion_tokens: 4,
        cost: 0.125,
        status: 200,
        latency_ms: 1.0,
        created_at: 1,
    };
    api.state
        .store()
        .record_spend(&[(token_id.to_owned(), 0.125)], &[entry], 1)
        .await
        .unwrap();

    for asked in [key, token_id] {
        let (status, body) = api.get(&format!("/key/info?key={asked}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["key"], asked);
        let info = &body["info"];
        assert!(info.get("token").is_none(), "LiteLLM pops the hash: {info}");
        assert_eq!(info["key_alias"], alias.as_str());
        assert_eq!(info["spend"], 0.125);
        assert_eq!(info["max_budget"], 2.0);
        assert_eq!(info["litellm_budget_table"]["soft_budget"], 1.0);
        assert_eq!(info["models"], json!(["gpt"]));
        assert_eq!(info["key_name"], out["key_name"]);
        assert_eq!(info["expires"], json!(null));
        assert!(info["created_at"].as_str().unwrap().ends_with('Z'));
        for (field, empty) in [
            ("aliases", json!({})),
            ("config", json!({})),
            ("permissions", json!({})),
        ] {
            assert_eq!(info[field], empty, "{field}");
        }
    }

    // Without `key`, a virtual key reads its own info (answered with its hash), and no other's.
    let (status, body) = api.call("GET", "/key/info", None, Some(key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["key"], token_id);
    assert_eq!(body["info"]["spend"], 0.125);
    let other = api.generate(&json!({})).await;
    let other_id = other["token_id"].as_str().unwrap();
    let (status, body) = api
        .call("GET", &format!("/key/info?key={other_id}"), None, Some(key))
        .await;
    litellm_error(status, &body, StatusCode::FORBIDDEN);

    let (status, body) = api.get("/key/info?key=sk-unknown").await;
    let message = litellm_error(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(message, "Key not found in database");
    assert_eq!(
        (
            body["error"]["type"].as_str(),
            body["error"]["param"].as_str()
        ),
        (Some("not_found_error"), Some("key"))
    );
    // The admin key is not a stored key.
    let (status, body) = api.get("/key/info").await;
    litellm_error(status, &body, StatusCode::NOT_FOUND);
}

async fn list_pages_and_filters(api: Api) {
    let team = unique("team");
    let mut ids = Vec::new();
    for i in 0..3 {
        let out = api
            .generate(&json!({"team_id": team, "key_alias": unique(&format!("list{i}"))}))
            .await;
        ids.push(out["token_id"].as_str().unwrap().to_owned());
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let (status, body) = api.get(&format!("/key/list?team_id={team}&size=2")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total_count"], 3);
    assert_eq!(
        (body["current_page"].as_i64(), body["total_pages"].as_i64()),
        (Some(1), Some(2))
    );
    // Newest first, token ids only.
    assert_eq!(body["keys"], json!([ids[2], ids[1]]));
    let (_, body) = api
        .get(&format!("/key/list?team_id={team}&size=2&page=2"))
        .await;
    assert_eq!(body["keys"], json!([ids[0]]));
    let (_, body) = api
        .get(&format!("/key/list?team_id={team}&page=3&size=2"))
        .await;
    assert_eq!(body["keys"], json!([]));

    // Full objects carry the hash as `token` (what the benemon plugin reads).
    let (_, first) = api.get(&format!("/key/list?team_id={team}&size=1")).await;
    let alias_of_newest = api
        .state
        .store()
        .get_key(&ids[2])
        .await
        .unwrap()
        .unwrap()
        .key_alias
        .unwrap();
    let (status, body) = api
        .get(&format!(
            "/key/list?return_full_object=true&key_alias={alias_of_newest}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total_count"], 1);
    let full = &body["keys"][0];
    assert_eq!(full["token"], first["keys"][0]);
    assert_eq!(full["team_id"], team.as_str());
    assert_eq!(full["key_alias"], alias_of_newest.as_str());

    let (_, body) = api.get("/key/list?key_alias=no-such-alias-anywhere").await;
    assert_eq!(
        body,
        json!({"keys": [], "total_count": 0, "current_page": 1, "total_pages": 0})
    );
    // Defaults: page 1, size 10.
    let (_, body) = api.get("/key/list").await;
    assert_eq!(body["current_page"], 1);
    assert!(body["keys"].as_array().unwrap().len() <= 10);
    assert!(body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .all(Value::is_string));
}

async fn list_validates_its_query(api: Api) {
    let (status, body) = api.get("/key/list?size=101").await;
    let items = validation_error(status, &body);
    assert_eq!(
        items,
        [json!({"type": "less_than_equal", "loc": ["query", "size"],
                "msg": "Input should be less than or equal to 100", "input": "101", "ctx": {"le": 100}})]
    );
    let (status, _) = api.get("/key/list?size=100").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api
        .get("/key/list?page=0&size=abc&return_full_object=maybe")
        .await;
    let kinds: Vec<&str> = validation_error(status, &body)
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect::<Vec<_>>()
        .into_iter()
        .map(|k| match k {
            "greater_than_equal" => "ge",
            "int_parsing" => "int",
            "bool_parsing" => "bool",
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(kinds, ["ge", "int", "bool"]);
}
