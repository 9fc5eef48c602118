//! Shared data and the host clock: what the engine's rate limits and quarantine need from
//! Envoy.
//!
//! Failure mode (chosen deliberately, and different from the contract checks, which fail
//! closed): if shared data cannot be read or written, the decision is taken on what could
//! be read — an unreadable slot is an empty one — and the lost update is counted
//! (`apiguard.abuse.slot_lost`). A broken store then admits rather than refusing all
//! traffic; the contract and anomaly checks still apply.

use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;

use super::since_epoch;
use crate::slots::{SharedStore, StoreError};

/// proxy-wasm shared data: one map per Envoy process, shared by every worker's VM.
pub struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        hostcalls::get_shared_data(key).map_err(store_error)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(store_error)
    }
}

fn store_error(status: Status) -> StoreError {
    match status {
        Status::CasMismatch => StoreError::CasMismatch,
        _ => StoreError::Unavailable,
    }
}

/// The host's wall clock in nanoseconds since the Unix epoch: the one clock every worker
/// reads alike, so slot times written by one worker mean the same to the others. A clock
/// the host cannot give reads as 0, which makes every slot stale (admit) — see above.
pub fn now() -> u64 {
    u64::try_from(since_epoch().as_nanos()).unwrap_or(0)
}

/// The downstream address (`source.address`, `ip:port`), if the host has it.
pub fn downstream_address() -> Option<String> {
    hostcalls::get_property(vec!["source", "address"])
        .ok()
        .flatten()
        .and_then(|bytes| String::from_utf8(bytes).ok())
}
