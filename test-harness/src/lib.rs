//! End-to-end harness for apiguard: a real Envoy running the built `.wasm` in front of a
//! recording upstream, so tests assert what a client receives *and* what reached the API.
//!
//! The pieces, in the order a test meets them:
//!
//! - [`locate`]: where the workspace, the Envoy binary, the built filter and the shipped
//!   configs are, with errors that say how to get a missing one.
//! - [`render`]: turns the shipped `envoy/envoy.yaml` into a config for one test run (loopback
//!   ports, local upstream, the policy under test), so tests exercise the same file that
//!   docker-compose mounts rather than a look-alike.
//! - [`contract`]: the requests a policy's OpenAPI document declares.
//! - [`delivery`]: the security event sender and its collector, from `envoy/events.yaml`.
//! - [`ecds`]: [`EcdsSource`], apiguard's configuration delivered (and hot-reloaded) by
//!   Envoy's extension config discovery from a watched directory.
//! - [`embed`]: keeps the policy embedded in `envoy/*.yaml` equal to the bundled policy file.
//! - [`upstream`]: [`EchoUpstream`], an HTTP/1.1 + h2c server that echoes and records, and
//!   fails on request ([`Fault`], [`Reply`]).
//! - [`jwks`]: [`JwksServer`], a JWKS endpoint tests can rotate keys on, slow and take down.
//! - [`envoy`]: [`Envoy`], the process fixture: start, wait for `/ready`, stop on drop.
//! - [`client`]: a small blocking client that sends request targets byte for byte (no URL
//!   normalisation, which would hide the very encodings the filter must catch).
//! - [`stats`]: reading counters from the admin `/stats/prometheus` page.
//! - [`soak`]: the soak run (`harness soak`), with [`png`] drawing its chart; [`clients`]:
//!   a million client keys through the abuse tables; [`fail_reload`]: the failure policy.
//! - [`behaviour_sim`]: benign clients and scripted attackers through Envoy, and each
//!   behaviour rule's precision and recall (`harness behaviour-sim`).
//! - [`compile_report`]: the filter's per-VM compile time and wasm memory, from Envoy's log.

pub mod behaviour_sim;
pub mod client;
pub mod clients;
pub mod compile_report;
pub mod contract;
pub mod delivery;
pub mod ecds;
pub mod embed;
pub mod envoy;
mod error;
pub mod fail_reload;
mod frames;
pub mod jwks;
pub mod locate;
pub mod png;
pub mod render;
pub mod soak;
pub mod stats;
pub mod upstream;

pub use client::{Client, HttpVersion, Response};
pub use delivery::Delivery;
pub use ecds::EcdsSource;
pub use envoy::{Envoy, EnvoyOptions, Policy};
pub use error::Error;
pub use jwks::JwksServer;
pub use stats::Stats;
pub use upstream::{EchoUpstream, Fault, RecordedRequest, Reply};
