//! keygate's plugin API: the small, versioned surface that code outside keygate's core builds
//! against.
//!
//! - [`Backend`]: what serves a model (chat, chat stream, embeddings, models). A plugin provides
//!   backends with a [`BackendPluginDefinition`] (name, factory, compatibility range, optional
//!   post-build hook), registered with [`register_backend!`] from a crate linked into the build,
//!   or handed to `keygate::Gateway::builder().plugin(..)` by an embedding application. keygate's
//!   own providers (`openai`, `anthropic`, ...) are registered the same way.
//! - [`CaptureClient`]: the HTTP client a backend is given; it captures upstream exchanges
//!   (credentials redacted) for the capture sink when keygate samples a request.
//! - [`SecretSource`]: a link of the upstream-credential chain; a plugin source sees every
//!   lookup first and either answers it or passes it on ([`Lookup::NotFound`]).
//!
//! Discovery is fail-open: a plugin whose range excludes this keygate, whose definition is
//! invalid, or whose factory fails or panics is skipped with one warning; start-up goes on.
//!
//! [`API_VERSION`] is this crate's version; [`PluginCompatibility`] ranges are checked against
//! the keygate version (`keygate --version`).

#![forbid(unsafe_code)]

mod backend;
mod capture;
mod plugin;
mod pool;
mod secret;
mod version;

pub use backend::{
    Backend, BackendConfig, BackendError, BackendRequest, BackendResponse, BodyStream,
    ResponseBody, Translation, Wire,
};
pub use capture::{
    describe_transport_error, is_credential_header, scrub, CaptureClient, CaptureContext,
    CaptureRecord, CaptureSink, CapturedMessage, MAX_CAPTURED_BODY, MIN_SCRUBBED_LEN, REDACTED,
};
pub use plugin::{
    registrations, BackendContext, BackendFactory, BackendPluginDefinition, PluginRegistration,
    PostBuildContext, PostBuildHook,
};
pub use secret::{BoxFuture, Lookup, SecretQuery, SecretSource, SecretValue, SourceError};
pub use version::{PluginCompatibility, Version};

/// Re-exported so plugins name the exact secret type keygate uses.
pub use secrecy::{ExposeSecret, SecretString};

/// Re-exported so plugins use the same HTTP and JSON types keygate does.
pub use {bytes, http, serde_json};

#[doc(hidden)]
pub use inventory;

/// The upstream client's HTTP/1.1 response reader, for the fuzz target.
#[doc(hidden)]
pub use pool::{read_response_in_pieces, WireError};

/// This crate's version: the plugin API version.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");
