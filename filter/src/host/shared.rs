//! Shared data, the host clock and the slot secret: what the engine's rate limits and
//! quarantine need from Envoy.
//!
//! Failure mode (chosen deliberately, and different from the contract checks, which fail
//! closed): if shared data cannot be read or written, the decision is taken on what could
//! be read — an unreadable slot is an empty one — and the lost update is counted
//! (`apiguard.abuse.slot_lost`). A broken store then admits rather than refusing all
//! traffic; the contract and anomaly checks still apply.

use std::cell::Cell;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, Status};

use super::{log, since_epoch};
use crate::abuse::slots::{SharedStore, SlotSecret, StoreError};
use crate::exchange::Input;

/// proxy-wasm shared data: one map per Envoy process, shared by every worker's VM.
pub(super) struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        hostcalls::get_shared_data(key).map_err(store_error)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(store_error)
    }
}

/// What an exchange reads from Envoy besides the message, each read when a check asks.
pub(super) struct HostInput;

impl Input for HostInput {
    type Store = HostStore;

    fn now(&self) -> u64 {
        now()
    }

    fn downstream(&self) -> Option<String> {
        downstream_address()
    }

    fn store(&self) -> &HostStore {
        &HostStore
    }

    fn slot_secret(&self) -> SlotSecret {
        slot_secret()
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
pub(super) fn now() -> u64 {
    u64::try_from(since_epoch().as_nanos()).unwrap_or(0)
}

thread_local! {
    /// This VM's copy of the process's slot secret (one VM per thread).
    static SLOT_SECRET: Cell<Option<SlotSecret>> = const { Cell::new(None) };
}

/// The process's slot secret ([`SlotSecret`]), read from shared data once per VM. The
/// root calls this on every configuration with `abuse`, so the first one (Envoy's
/// configuration canary, on the main thread, before any worker VM) draws and stores it.
///
/// If shared data can be neither read nor written, this VM keeps a secret of its own and
/// says so: each worker then picks its own slot for a client, so limits count per worker
/// (the same degradation as a lost slot update, see above), and the slot stays
/// unpredictable.
pub(super) fn slot_secret() -> SlotSecret {
    if let Some(secret) = SLOT_SECRET.get() {
        return secret;
    }
    let fresh = random_bytes();
    let secret = SlotSecret::shared(&HostStore, fresh).unwrap_or_else(|error| {
        log(
            LogLevel::Error,
            &format!("cannot share the slot secret ({error:?}): this worker keys its own slots"),
        );
        SlotSecret::new(fresh)
    });
    SLOT_SECRET.set(Some(secret));
    secret
}

/// Random bytes from the host: WASI `random_get`, which Envoy answers from BoringSSL's
/// `RAND_bytes`. Should the host refuse, the wall clock's nanoseconds at start-up stand in
/// (guessable to within the start-up's timing, but still unknown to a client who cannot
/// watch the process start), and the error is logged.
fn random_bytes() -> [u8; SlotSecret::BYTES] {
    let mut bytes = [0; SlotSecret::BYTES];
    if let Err(error) = getrandom::fill(&mut bytes) {
        log(
            LogLevel::Error,
            &format!("no random source ({error}): the slot secret is taken from the clock"),
        );
        let (clock, _) = bytes.split_at_mut(8);
        clock.copy_from_slice(&now().to_le_bytes());
    }
    bytes
}

/// The downstream address (`source.address`, `ip:port`), if the host has it.
pub(super) fn downstream_address() -> Option<String> {
    hostcalls::get_property(vec!["source", "address"])
        .ok()
        .flatten()
        .and_then(|bytes| String::from_utf8(bytes).ok())
}
