//! The Vault-compatible secrets engine for leased LLM keys (roles, creds, renew, revoke).
//!
//! So far: the arithmetic it must share with Vault exactly — TTL calculation and Vault's
//! duration inputs. Routes, the lease store and the reaper build on these.

pub mod duration;
pub mod ttl;
