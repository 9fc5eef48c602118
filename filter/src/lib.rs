//! apiguard: an Envoy proxy-wasm filter that enforces an API's OpenAPI contract.
//!
//! The crate is split along one line: everything except `host` is a plain Rust engine
//! that knows nothing of proxy-wasm, builds natively and is unit-tested with `cargo test`;
//! `host` (wasm32 only) is the thin adapter that feeds it from Envoy's callbacks.
//!
//! The modules are the subsystems of `ARCHITECTURE.md`, layered so that every import
//! points down (a test, `tests/layers.rs`, checks it), from the bottom:
//!
//! 1. vocabulary every subsystem reads: `error` (errors with where they are), `settings`
//!    (modes, limits), `request` (the request view, its method, the verified identity),
//!    `verdict` (the rule catalogue and what the engine decides), `structpb`;
//! 2. `contract`: the OpenAPI document compiled — routes, parameters, bodies, schemas;
//! 3. `security`: credentials (JWT, API keys) and scopes, over the contract's schemes;
//! 4. `abuse`: anomaly checks, rate limits and quarantine in state shared by workers;
//! 5. `events` (security events, folded and sent) and `problem` (the RFC 9457 reply);
//! 6. `behaviour`: what no single request shows (object enumeration, brute force,
//!    credential stuffing), counted per client over windows in the abuse layer's slots;
//! 7. `config`: the policy format, one section per subsystem;
//! 8. `policy`: [`Policy::compile`] turns a configuration into the immutable, pre-indexed
//!    structure a request is checked against, and inspects requests and responses;
//! 9. `exchange`: one request's path through all of it, in the one order written there:
//!    fed what the host read, [`Exchange`] answers what the host must do ([`Next`]).
//!
//! The names below are the whole public surface: what the `apiguard` CLI, the test
//! harness, the benchmark and the integration tests use.

#![warn(missing_docs, unreachable_pub)]
// Natively, what only the host (wasm32) uses looks dead; the wasm32 build, which clippy
// checks with `-D warnings` in `make test`, still reports dead code.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod abuse;
mod behaviour;
mod config;
mod contract;
mod discovery;
mod error;
mod events;
mod exchange;
mod gateway;
mod policy;
mod problem;
/// The deployment resources for a policy (Envoy, ECDS, Istio): what `apiguard render` prints.
#[cfg(not(target_arch = "wasm32"))]
pub mod render;
mod request;
mod security;
mod settings;
mod structpb;
mod verdict;

/// Entry points for the fuzz targets (`fuzz/`) and their replay test.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;

#[cfg(test)]
mod testkit;

#[cfg(target_arch = "wasm32")]
mod host;

pub use abuse::anomaly::{
    CheckAction as AnomalyAction, Severity as AnomalySeverity, CHECKS as ANOMALY_CHECKS,
};
pub use abuse::slots::{MemoryStore, SharedStore, SlotSecret};
pub use contract::openapi::follow_ref;
pub use discovery::segment::Kind as SegmentKind;
pub use discovery::tree::shape as template_shape;
pub use discovery::{
    Discovery, DiscoverySettings, Learned, Lesson, Observed, Sample, Schema, Seen, Subject,
    Template, Undeclared,
};
pub use error::{Location, PolicyError};
pub use events::EventAction;
pub use exchange::{
    canary_counter_name, CanaryChange, Contract, Counter, Exchange, FilterState, Finished,
    HeaderChange, Input, Next, Outputs, StatusClass, Values,
};
pub use gateway::{bundle, load_bundle, load_contract, Gateway, Unmatched};
pub use policy::diff::{diff, Change as DiffChange, Diff};
pub use policy::{BodyCheck, Policy};
pub use problem::Reply;
pub use request::{Identity, Method, RequestHead};
pub use security::KeyRing;
pub use settings::Mode;
pub use verdict::{Action, OperationRef, RuleId, Verdict, Violation};
