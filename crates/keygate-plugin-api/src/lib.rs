//! keygate's plugin API: the small, versioned surface that code outside keygate's core builds
//! against.
//!
//! Today it holds [`SecretSource`], the extension point of the upstream-credential chain: a
//! source registered at the front of the chain sees every lookup first and either answers it or
//! passes it on ([`Lookup::NotFound`]), like seed 000's `@extensible` start hook.
//!
//! The crate's version is the plugin API version; a plugin states the range it works with.

#![forbid(unsafe_code)]

mod secret;

pub use secret::{BoxFuture, Lookup, SecretQuery, SecretSource, SecretValue, SourceError};

/// Re-exported so plugins name the exact secret type keygate uses.
pub use secrecy::{ExposeSecret, SecretString};

/// This crate's version: the plugin API version.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");
