//! End to end: a real Envoy runs the built filter in front of a recording upstream.
//!
//! Needs the filter built first (`cargo build --release --target wasm32-wasip1 -p
//! apiguard-filter --lib`) and an Envoy binary (`make setup`, or `ENVOY_BIN`). Every test
//! starts its own Envoy on ephemeral ports, so tests run in parallel.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod abuse;
mod analytics;
mod behaviour;
mod behaviour_sim;
mod bypass_bodies;
mod bypass_channels;
mod bypass_inputs;
mod canary;
mod compile_report;
mod config_errors;
mod contract;
mod discovery;
mod encoding;
mod events;
mod faults;
mod fixture;
mod gateway;
mod hot_reload;
mod manifests;
mod metrics;
mod monitor;
mod remote_source;
mod routing;
mod soak;
mod tokens;
mod underscores;
mod validation;
