//! LiteLLM's key management API, wire-compatible: `POST /key/generate`, `POST /key/update`,
//! `POST /key/delete`, `GET /key/info`, `GET /key/list`, `POST /key/regenerate` and
//! `POST /key/{key}/regenerate`, as LiteLLM's `key_management_endpoints.py` answers them
//! (field names, status codes, the `{"error":{message,type,param,code}}` envelope, FastAPI's
//! 422 `{"detail":[...]}`), so LiteLLM tooling and the Vault LiteLLM plugins work unchanged.
//!
//! Every write is committed before the answer, and every change invalidates the key's cache
//! entry at once. What this module does not do: enforce keys on inference (that is the request
//! path's job), teams, users, organisations, LiteLLM's Enterprise gating, or rotating the admin
//! key (it comes from the config).

mod auth;
mod body;
mod delete;
mod error;
mod fields;
mod generate;
mod info;
mod json;
mod list;
mod regenerate;
mod update;

pub use delete::delete;
pub use error::KeyApiError;
pub use generate::generate;
pub use info::info;
pub use list::list;
pub use regenerate::{regenerate, regenerate_key};
pub use update::update;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::store::StoreError;

/// Now, in Unix milliseconds.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A store error in the API's terms: a taken alias or key is the caller's 400.
fn stored(err: StoreError, alias: Option<&String>) -> KeyApiError {
    match err {
        StoreError::Conflict("key_alias") => {
            KeyApiError::DuplicateAlias(alias.cloned().unwrap_or_default())
        }
        StoreError::Conflict(_) => KeyApiError::DuplicateKey,
        other => KeyApiError::Store(other),
    }
}

/// The last value of query parameter `name` (Starlette's choice when one is repeated).
fn query_param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
