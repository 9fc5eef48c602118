//! Test builds only (`--features fault-injection`, never `make wasm`): a request carrying
//! `x-apiguard-fault: trap` makes the VM trap, so the failure policy's effect on traffic
//! (`failure_policy: FAIL_RELOAD` in envoy/envoy.yaml) can be measured through a real
//! Envoy (`harness fail-reload`). A shipped build has no such header: the feature is off
//! and this module is not compiled.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;

/// Traps the VM (a wasm `unreachable`, as a panic under `panic = "abort"` would) if the
/// request asks for it.
pub(super) fn trap_if_asked() {
    let asked = hostcalls::get_map_value(MapType::HttpRequestHeaders, "x-apiguard-fault");
    if matches!(asked, Ok(Some(value)) if value == "trap") {
        core::arch::wasm32::unreachable()
    }
}
