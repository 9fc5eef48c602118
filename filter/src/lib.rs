//! apiguard: an Envoy proxy-wasm filter that enforces an API's OpenAPI contract.
//!
//! The crate is split along one line: everything except [`host`] is a plain Rust engine
//! that knows nothing of proxy-wasm, builds natively and is unit-tested with `cargo test`.
//! Data flows top to bottom:
//!
//! 1. [`config`]: the policy as the user writes it (serde types, unknown keys refused) and
//!    the bundling that inlines the OpenAPI document, because a plugin cannot read files.
//!    [`structpb`] reads the configuration when Envoy hands it over as a protobuf `Struct`.
//! 2. [`openapi`]: the parts of an OpenAPI 3.0/3.1 document the engine needs.
//! 3. [`policy`]: [`policy::Policy::compile`] turns both into an immutable, pre-indexed
//!    structure once per configuration: [`route`] is its segment trie, [`contract`] each
//!    operation's parameters, bodies and responses, [`schema`] the translated and compiled
//!    JSON Schemas, [`shape`] what string values convert to.
//! 4. [`inspect`]: per request, pure functions from what the host saw to a
//!    [`verdict::Verdict`] — [`path`] canonicalises the path, [`params`] reads parameters
//!    in their OpenAPI styles, [`body`] reads bodies ([`percent`] decodes for both) — and
//!    [`response`] does the same for the upstream's answer.
//!    [`security`] checks credentials (JWT, API keys) and scopes before the contract;
//!    [`overrides`] refuses method and URL override channels the contract does not declare.
//! 5. [`problem`]: the RFC 9457 body a blocked client receives.
//! 6. [`events`]: each finding as a structured security event (OCSF), folded and
//!    formatted for the collector by the one sender per Envoy process.
//!
//! [`abuse`] adds what a contract cannot say: HTTP [`anomaly`] checks with scoring, and
//! per-client [`ratelimit`]s and [`quarantine`] kept in fixed [`slots`] of state shared by
//! every worker.
//!
//! [`exchange`] runs all of it for one request, in the one order written there: fed what
//! the host read, it answers what the host must do. [`host`] (wasm32 only) is the thin
//! adapter that feeds it from Envoy's callbacks and carries out its answers.

pub mod abuse;
pub mod anomaly;
pub mod body;
pub mod config;
pub mod contract;
pub mod events;
pub mod exchange;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod inspect;
pub mod openapi;
pub mod overrides;
pub mod params;
pub mod path;
pub mod percent;
pub mod policy;
mod position;
pub mod problem;
pub mod quarantine;
pub mod ratelimit;
pub mod response;
pub mod route;
pub mod schema;
pub mod security;
pub mod shape;
pub mod slots;
pub mod structpb;
pub mod verdict;

#[cfg(target_arch = "wasm32")]
mod host;
