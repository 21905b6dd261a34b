//! keygate's core: configuration, authentication, providers and the request path, the store,
//! and serving. The `keygate` binary is a thin command line over this crate.

#![forbid(unsafe_code)]

pub mod auth;
pub mod capture;
pub mod config;
pub mod engine;
pub mod error;
pub mod http;
mod json_scan;
pub mod keys;
pub mod plugins;
pub mod providers;
pub mod secrets;
pub mod server;
pub mod state;
pub mod store;
pub mod telemetry;

/// keygate's version, as plugins and `--version` see it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
