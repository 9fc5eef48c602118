//! apiguard: an Envoy proxy-wasm filter that enforces an API's OpenAPI contract.
//!
//! The crate is split along one line: everything except [`host`] is a plain Rust engine
//! that knows nothing of proxy-wasm, builds natively and is unit-tested with `cargo test`.
//! Data flows top to bottom:
//!
//! 1. [`config`]: the policy as the user writes it (serde types, unknown keys refused) and
//!    the bundling that inlines the OpenAPI document, because a plugin cannot read files.
//! 2. [`openapi`]: the parts of an OpenAPI 3.0/3.1 document the engine needs.
//!    [`structpb`] reads the configuration when Envoy hands it over as a protobuf `Struct`.
//! 3. [`policy`]: [`policy::Policy::compile`] turns both into an immutable, pre-indexed
//!    structure once per configuration ([`route`] is its segment trie).
//! 4. [`inspect`]: per request, a pure function from a [`inspect::RequestView`] to a
//!    [`verdict::Verdict`], after [`path`] has canonicalised the request path.
//! 5. [`problem`]: the RFC 9457 body a blocked client receives.
//!
//! [`host`] (wasm32 only) is the thin adapter that gathers the request view from Envoy,
//! applies the verdict and counts it.

pub mod config;
pub mod inspect;
pub mod openapi;
pub mod path;
pub mod policy;
pub mod problem;
pub mod route;
pub mod structpb;
pub mod verdict;

#[cfg(target_arch = "wasm32")]
mod host;
