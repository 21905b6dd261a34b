//! `GET /key/list`: a page of keys, newest first, as token ids or (with
//! `return_full_object=true`) full rows; filters `key_alias`, `user_id`, `team_id`. `page`
//! (default 1, at least 1) and `size` (default 10, 1 to 100) are validated as FastAPI does:
//! 422 with `{"detail":[...]}` when out of range or not integers.

use axum::extract::{Query, State};
use axum::Json;
use http::HeaderMap;
use serde_json::{json, Value};

use super::body::{detail, lax_bool};
use super::error::KeyApiError;
use super::{auth, json, now_ms, query_param};
use crate::state::AppState;
use crate::store::KeyFilter;

/// Query-parameter problems, collected.
struct Problems(Vec<Value>);

impl Problems {
    fn push(&mut self, kind: &str, name: &str, msg: &str, input: &str, ctx: Option<Value>) {
        let mut item = detail(kind, &[json!("query"), json!(name)], msg, &json!(input));
        if let Some(ctx) = ctx {
            item["ctx"] = ctx;
        }
        self.0.push(item);
    }

    /// An integer in `min..=max`, or `default` when absent.
    fn int(
        &mut self,
        params: &[(String, String)],
        name: &str,
        default: i64,
        max: Option<i64>,
    ) -> i64 {
        let Some(text) = query_param(params, name) else {
            return default;
        };
        let Ok(value) = text.trim().parse::<i64>() else {
            let msg = "Input should be a valid integer, unable to parse string as an integer";
            self.push("int_parsing", name, msg, text, None);
            return default;
        };
        if value < 1 {
            let msg = "Input should be greater than or equal to 1";
            self.push(
                "greater_than_equal",
                name,
                msg,
                text,
                Some(json!({ "ge": 1 })),
            );
        } else if let Some(max) = max.filter(|max| value > *max) {
            let msg = format!("Input should be less than or equal to {max}");
            self.push(
                "less_than_equal",
                name,
                &msg,
                text,
                Some(json!({ "le": max })),
            );
        }
        value
    }
}

/// A string filter; an empty value filters nothing (LiteLLM tests truthiness).
fn filter(params: &[(String, String)], name: &str) -> Option<String> {
    query_param(params, name)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// `GET /key/list`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, KeyApiError> {
    auth::require_admin(&state, &headers, "/key/list", now_ms()).await?;
    let mut problems = Problems(Vec::new());
    let page = problems.int(&params, "page", 1, None);
    let size = problems.int(&params, "size", 10, Some(100));
    let full = match query_param(&params, "return_full_object") {
        None => false,
        Some(text) => lax_bool(&json!(text)).unwrap_or_else(|(kind, msg)| {
            problems.push(kind, "return_full_object", msg, text, None);
            false
        }),
    };
    if !problems.0.is_empty() {
        return Err(KeyApiError::Validation(problems.0));
    }
    let key_filter = KeyFilter {
        key_alias: filter(&params, "key_alias"),
        user_id: filter(&params, "user_id"),
        team_id: filter(&params, "team_id"),
    };
    let page_u32 = u32::try_from(page).unwrap_or(u32::MAX);
    let size_u32 = u32::try_from(size).unwrap_or(100);
    let (keys, total) = state
        .store()
        .list_keys(&key_filter, page_u32, size_u32)
        .await?;
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| {
            if full {
                json::full_object(k)
            } else {
                Value::String(k.token_id.clone())
            }
        })
        .collect();
    let total_pages = (total + size - 1) / size;
    Ok(Json(json!({
        "keys": keys,
        "total_count": total,
        "current_page": page,
        "total_pages": total_pages,
    })))
}
