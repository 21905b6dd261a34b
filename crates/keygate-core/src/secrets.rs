//! Upstream credentials: references (`secret:NAME`, `env:NAME`, ...), the values they resolve to,
//! and the type that holds them so they never print.
//!
//! This module resolves what needs no network: the environment, `.env` files, secret files and
//! literals. References to remote managers parse here and are resolved by their sources.

mod dotenv;
mod reference;
mod resolve;

pub use reference::{CredentialRef, ParseRefError};
pub use resolve::{resolve, ResolveError};
pub use secrecy::{ExposeSecret, SecretString};
