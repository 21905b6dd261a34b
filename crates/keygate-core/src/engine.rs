//! The Vault-compatible secrets engine for leased LLM keys (roles, creds, renew, revoke).
//!
//! Roles, creds (a virtual key per lease), renew, revoke, revoke-prefix, lookup, the reaper, and
//! the arithmetic shared with Vault exactly (TTL calculation, duration inputs). Store:
//! `store/engine.rs`.

pub mod audit;
pub mod duration;
pub mod error;
pub mod http;
pub mod lease;
pub mod reaper;
pub mod role;
pub mod ttl;
