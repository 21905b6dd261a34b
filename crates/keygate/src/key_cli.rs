//! `keygate key generate|list|info|update|delete|regenerate`: the LiteLLM key API of a running
//! keygate, over HTTP, as the vault CLI talks to its server. The admin key comes from
//! `KEYGATE_ADMIN_KEY` only (a flag would show it in the process list). The answer is printed
//! as pretty JSON on stdout; a refusal prints keygate's message on stderr and exits 1.

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Map, Value};

use crate::cli::{KeyArgs, KeyCommand, KeySettings};

/// One request to the key API.
struct Call {
    method: reqwest::Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
}

impl Call {
    fn get(path: &str, query: Vec<(&'static str, String)>) -> Self {
        Self {
            method: reqwest::Method::GET,
            path: path.to_owned(),
            query,
            body: None,
        }
    }

    fn post(path: &str, body: Value) -> Self {
        Self {
            method: reqwest::Method::POST,
            path: path.to_owned(),
            query: Vec::new(),
            body: Some(body),
        }
    }
}

/// Runs the subcommand; `Ok(false)` when keygate answered with an error.
pub async fn run(args: KeyArgs) -> anyhow::Result<bool> {
    let admin_key = std::env::var("KEYGATE_ADMIN_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .context("KEYGATE_ADMIN_KEY is not set: the key API needs the admin key")?;
    let call = build(args.command)?;
    let base = base_url(&args.addr);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let mut request = client
        .request(call.method, format!("{base}{}", call.path))
        .bearer_auth(&admin_key)
        .query(&call.query);
    if let Some(body) = &call.body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach keygate at {base}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .context("cannot read keygate's answer")?;
    let parsed: Option<Value> = serde_json::from_str(&text).ok();
    if status.is_success() {
        match parsed {
            Some(value) => println!("{}", serde_json::to_string_pretty(&value)?),
            None => println!("{text}"),
        }
        return Ok(true);
    }
    let message = parsed
        .as_ref()
        .and_then(error_message)
        .unwrap_or_else(|| text.trim().to_owned());
    eprintln!("keygate: {}: {message}", status.as_u16());
    Ok(false)
}

/// `http://` is assumed when the address has no scheme.
pub(crate) fn base_url(addr: &str) -> String {
    let addr = addr.trim().trim_end_matches('/');
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    }
}

/// The message of LiteLLM's envelope, or FastAPI's validation items in one line.
fn error_message(body: &Value) -> Option<String> {
    if let Some(message) = body["error"]["message"].as_str() {
        return Some(message.to_owned());
    }
    let items = body["detail"].as_array()?;
    let lines: Vec<String> = items
        .iter()
        .map(|item| {
            let loc: Vec<String> = item["loc"]
                .as_array()
                .map(|parts| {
                    parts
                        .iter()
                        .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            format!("{}: {}", loc.join("."), item["msg"].as_str().unwrap_or(""))
        })
        .collect();
    Some(lines.join("; "))
}

fn build(command: KeyCommand) -> anyhow::Result<Call> {
    Ok(match command {
        KeyCommand::Generate(args) => {
            let mut body = settings(args.settings)?;
            if let Some(key) = args.key {
                body.insert("key".to_owned(), json!(key));
            }
            Call::post("/key/generate", Value::Object(body))
        }
        KeyCommand::Update { key, settings: s } => {
            let mut body = settings(s)?;
            body.insert("key".to_owned(), json!(key));
            Call::post("/key/update", Value::Object(body))
        }
        KeyCommand::Info { key } => Call::get("/key/info", vec![("key", key)]),
        KeyCommand::List(args) => {
            let mut query = Vec::new();
            let pairs = [
                ("page", args.page.map(|p| p.to_string())),
                ("size", args.size.map(|s| s.to_string())),
                ("key_alias", args.alias),
                ("user_id", args.user_id),
                ("team_id", args.team_id),
                ("return_full_object", args.full.then(|| "true".to_owned())),
            ];
            for (name, value) in pairs {
                if let Some(value) = value {
                    query.push((name, value));
                }
            }
            Call::get("/key/list", query)
        }
        KeyCommand::Delete { keys, aliases } => {
            if !keys.is_empty() {
                Call::post("/key/delete", json!({ "keys": keys }))
            } else {
                Call::post("/key/delete", json!({ "key_aliases": aliases }))
            }
        }
        KeyCommand::Regenerate { key } => Call::post("/key/regenerate", json!({ "key": key })),
    })
}

/// The body fields the flags set (flags not given are left out).
fn settings(s: KeySettings) -> anyhow::Result<Map<String, Value>> {
    let mut body = Map::new();
    let mut put = |name: &str, value: Option<Value>| {
        if let Some(value) = value {
            body.insert(name.to_owned(), value);
        }
    };
    put("models", s.models.map(|m| json!(m)));
    put("key_alias", s.alias.map(Value::String));
    put("duration", s.duration.map(Value::String));
    put("max_budget", s.max_budget.map(|v| json!(v)));
    put("soft_budget", s.soft_budget.map(|v| json!(v)));
    put("budget_duration", s.budget_duration.map(Value::String));
    put("rpm_limit", s.rpm.map(|v| json!(v)));
    put("tpm_limit", s.tpm.map(|v| json!(v)));
    put("max_parallel_requests", s.max_parallel.map(|v| json!(v)));
    put("team_id", s.team_id.map(Value::String));
    put("user_id", s.user_id.map(Value::String));
    put("blocked", s.blocked.map(Value::Bool));
    if let Some(text) = s.metadata {
        let metadata: Value = serde_json::from_str(&text).context("--metadata is not JSON")?;
        if !metadata.is_object() {
            bail!("--metadata must be a JSON object, like '{{\"team\":\"a\"}}'");
        }
        put("metadata", Some(metadata));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_error_messages() {
        assert_eq!(base_url("127.0.0.1:4000"), "http://127.0.0.1:4000");
        assert_eq!(base_url("https://kg.example/"), "https://kg.example");
        let envelope = json!({"error": {"message": "No keys found", "type": "x"}});
        assert_eq!(error_message(&envelope).unwrap(), "No keys found");
        let detail = json!({"detail": [{"loc": ["query", "size"], "msg": "too big"}]});
        assert_eq!(error_message(&detail).unwrap(), "query.size: too big");
        assert!(error_message(&json!({"other": 1})).is_none());
    }
}
