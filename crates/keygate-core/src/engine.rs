//! The Vault-compatible secrets engine for leased LLM keys (roles, creds, renew, revoke).
//!
//! So far: the arithmetic it must share with Vault exactly (TTL calculation, duration inputs),
//! roles and their Vault routes. Creds, leases (renew, revoke, lookup) and the reaper are next;
//! their store is in `store/engine.rs`.

pub mod duration;
pub mod error;
pub mod http;
pub mod role;
pub mod ttl;
