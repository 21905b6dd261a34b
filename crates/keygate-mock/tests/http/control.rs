//! Credentials, recording, markers, `/mock/requests`, models, health and the binary itself.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use keygate_mock::{MockConfig, Record};
use serde_json::{json, Value};

use crate::{chat, client, json, post, start, start_with, user};

#[tokio::test]
async fn records_the_credential_of_each_header() {
    let mock = start().await;
    let body = json!({"model": "m", "messages": user("x")});
    for (header, key) in [
        ("authorization", "sk-a"),
        ("x-api-key", "sk-b"),
        ("api-key", "sk-c"),
    ] {
        let response = post(&mock, "/v1/chat/completions", header, key, body.clone()).await;
        assert_eq!(response.status(), 200);
    }
    let seen: Vec<(Option<String>, Option<String>)> = mock
        .records()
        .into_iter()
        .map(|r| (r.credential, r.credential_header))
        .collect();
    let expected = [
        ("sk-a", "authorization"),
        ("sk-b", "x-api-key"),
        ("sk-c", "api-key"),
    ]
    .map(|(k, h)| (Some(k.to_owned()), Some(h.to_owned())));
    assert_eq!(seen, expected);
    mock.shutdown().await;
}

#[tokio::test]
async fn missing_or_wrong_credentials_get_401() {
    let mock = start_with(MockConfig {
        require_key: Some("right".into()),
        ..MockConfig::default()
    })
    .await;
    let body = json!({"model": "m", "messages": user("x")});
    let response = client()
        .post(format!("{}/v1/chat/completions", mock.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let reply = json(response, 401).await;
    assert_eq!(reply["error"]["code"], "invalid_api_key");
    assert_eq!(reply["error"]["type"], "invalid_request_error");
    let response = post(
        &mock,
        "/v1/chat/completions",
        "authorization",
        "wrong",
        body.clone(),
    )
    .await;
    assert_eq!(response.status(), 401);
    let response = post(
        &mock,
        "/v1/chat/completions",
        "authorization",
        "right",
        body,
    )
    .await;
    assert_eq!(response.status(), 200);
    let keys: Vec<Option<String>> = mock.records().into_iter().map(|r| r.credential).collect();
    assert_eq!(keys, [None, Some("wrong".into()), Some("right".into())]);
    mock.shutdown().await;
}

#[tokio::test]
async fn markers_tie_calls_to_requests() {
    let mock = start().await;
    let messages = json!([{"role": "user", "content": "first"},
                          {"role": "user", "content": [{"type": "text", "text": "last-block"}]}]);
    chat(
        &mock,
        json!({"model": "m", "messages": messages, "user": "u-42"}),
    )
    .await;
    chat(&mock, json!({"model": "m", "messages": messages})).await;
    let anthropic = json!({"model": "c", "max_tokens": 5, "messages": user("ignored"),
                           "metadata": {"user_id": "a-7"}});
    post(&mock, "/v1/messages", "x-api-key", "k", anthropic).await;
    post(
        &mock,
        "/v1/embeddings",
        "authorization",
        "k",
        json!({"model": "e", "input": "emb"}),
    )
    .await;
    let markers: Vec<Option<String>> = mock.records().into_iter().map(|r| r.marker).collect();
    let expected = ["u-42", "last-block", "a-7", "emb"].map(|m| Some(m.to_owned()));
    assert_eq!(markers, expected);
    mock.shutdown().await;
}

#[tokio::test]
async fn mock_requests_lists_and_clears() {
    let mock = start().await;
    chat(
        &mock,
        json!({"model": "m:chunks=1", "messages": user("a"), "stream": true}),
    )
    .await;
    chat(&mock, json!({"model": "m", "messages": user("b")})).await;
    let url = format!("{}/mock/requests", mock.url());
    let listed: Vec<Record> = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, mock.records());
    assert_eq!(listed.len(), 2);
    assert!(listed[0].seq < listed[1].seq);
    assert_eq!(listed[0].method, "POST");
    assert_eq!(listed[0].path, "/v1/chat/completions");
    assert_eq!(listed[0].model.as_deref(), Some("m:chunks=1"));
    assert!(listed[0].stream && !listed[1].stream);
    assert_eq!(listed[1].api_version, None);

    let response = client().delete(&url).send().await.unwrap();
    assert!(response.status().is_success());
    assert!(mock.records().is_empty());
    chat(&mock, json!({"model": "m", "messages": user("c")})).await;
    mock.clear();
    assert!(mock.records().is_empty());

    let health = client()
        .get(format!("{}/health", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
    mock.shutdown().await;
}

#[tokio::test]
async fn no_record_keeps_nothing() {
    let mock = start_with(MockConfig {
        record: false,
        ..MockConfig::default()
    })
    .await;
    let response = chat(&mock, json!({"model": "m", "messages": user("a")})).await;
    assert_eq!(response.status(), 200);
    assert!(mock.records().is_empty());
    mock.shutdown().await;
}

#[tokio::test]
async fn models_in_both_shapes() {
    let mock = start().await;
    let url = format!("{}/v1/models", mock.url());
    let response = client().get(&url).bearer_auth("k").send().await.unwrap();
    let openai = json(response, 200).await;
    assert_eq!(openai["object"], "list");
    let first = &openai["data"][0];
    assert_eq!(
        first,
        &json!({"id": "mock", "object": "model", "created": 1_700_000_000, "owned_by": "keygate-mock"})
    );
    let ids: Vec<&str> = openai["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"gpt-4o-mini") && ids.contains(&"claude-3-5-haiku-latest"));

    let response = client()
        .get(&url)
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    let anthropic = json(response, 200).await;
    assert_eq!(anthropic["has_more"], false);
    let data = anthropic["data"].as_array().unwrap();
    assert_eq!(data[0]["type"], "model");
    assert_eq!(data[0]["created_at"], "2024-10-22T00:00:00Z");
    assert!(data[0]["display_name"].is_string());
    assert_eq!(anthropic["first_id"], data[0]["id"]);
    assert_eq!(anthropic["last_id"], data[data.len() - 1]["id"]);

    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    mock.shutdown().await;
}

#[tokio::test]
async fn binary_prints_its_url_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keygate-mock"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--chunks",
            "2",
            "--require-key",
            "k",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim_end()
        .strip_prefix("keygate-mock listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"));

    let response = client()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth("k")
        .json(&json!({"model": "mock", "messages": user("bin")}))
        .send()
        .await
        .unwrap();
    let reply: Value = json(response, 200).await;
    assert_eq!(reply["choices"][0]["message"]["content"], "Hello from");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}
