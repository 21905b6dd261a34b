//! `keygate role|creds|lease ...`: the secrets engine of a running keygate, over its Vault API,
//! as the `bao`/`vault` CLI would call it (`X-Vault-Token` = the admin key from
//! `KEYGATE_ADMIN_KEY`). `role write` takes `key=value` pairs sent as strings, like `bao write`.
//! The answer is printed as pretty JSON; a refusal prints Vault's errors and exits 1.

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Map, Value};

use crate::cli::{CredsArgs, EngineAddr, LeaseArgs, LeaseCommand, RoleArgs, RoleCommand};
use crate::key_cli::base_url;

/// One Vault API call.
struct Call {
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
}

fn call(method: &str, path: String, body: Option<Value>) -> anyhow::Result<Call> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).context("bad method")?;
    Ok(Call { method, path, body })
}

/// `keygate role ...`.
pub async fn role(args: RoleArgs) -> anyhow::Result<bool> {
    let mount = &args.engine.mount;
    let call = match args.command {
        RoleCommand::Write { name, fields } => {
            let mut body = Map::new();
            for pair in fields {
                let Some((k, v)) = pair.split_once('=') else {
                    bail!("`{pair}` is not key=value");
                };
                body.insert(k.to_owned(), Value::String(v.to_owned()));
            }
            call(
                "PUT",
                format!("/v1/{mount}/roles/{name}"),
                Some(Value::Object(body)),
            )?
        }
        RoleCommand::Read { name } => call("GET", format!("/v1/{mount}/roles/{name}"), None)?,
        RoleCommand::List => call("GET", format!("/v1/{mount}/roles?list=true"), None)?,
        RoleCommand::Delete { name } => call("DELETE", format!("/v1/{mount}/roles/{name}"), None)?,
    };
    send(&args.engine, call).await
}

/// `keygate creds ROLE`.
pub async fn creds(args: CredsArgs) -> anyhow::Result<bool> {
    let path = format!("/v1/{}/creds/{}", args.engine.mount, args.role);
    send(&args.engine, call("GET", path, None)?).await
}

/// `keygate lease ...`.
pub async fn lease(args: LeaseArgs) -> anyhow::Result<bool> {
    let call = match args.command {
        LeaseCommand::Renew {
            lease_id,
            increment,
        } => {
            let mut body = json!({ "lease_id": lease_id });
            if let Some(increment) = increment {
                body["increment"] = Value::String(increment);
            }
            call("PUT", "/v1/sys/leases/renew".into(), Some(body))?
        }
        LeaseCommand::Revoke { lease_id } => call(
            "PUT",
            "/v1/sys/leases/revoke".into(),
            Some(json!({ "lease_id": lease_id })),
        )?,
        LeaseCommand::Lookup { lease_id } => call(
            "PUT",
            "/v1/sys/leases/lookup".into(),
            Some(json!({ "lease_id": lease_id })),
        )?,
        LeaseCommand::RevokePrefix { prefix } => call(
            "PUT",
            format!("/v1/sys/leases/revoke-prefix/{prefix}"),
            None,
        )?,
    };
    send(&args.engine, call).await
}

async fn send(engine: &EngineAddr, call: Call) -> anyhow::Result<bool> {
    let token = std::env::var("KEYGATE_ADMIN_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .context("KEYGATE_ADMIN_KEY is not set: the engine needs the admin key as its token")?;
    let base = base_url(&engine.addr);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let mut request = client
        .request(call.method, format!("{base}{}", call.path))
        .header("x-vault-token", token);
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
            None if text.trim().is_empty() => println!("Success!"),
            None => println!("{text}"),
        }
        return Ok(true);
    }
    let errors: Vec<String> = parsed
        .as_ref()
        .and_then(|v| v["errors"].as_array())
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let message = if errors.is_empty() {
        "no value found".to_owned()
    } else {
        errors.join("; ")
    };
    eprintln!("keygate: {}: {message}", status.as_u16());
    Ok(false)
}
