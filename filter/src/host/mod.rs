//! The proxy-wasm adapter: the only code that talks to Envoy.
//!
//! A VM is a filter or the event sender, by its configuration ([`vm`]). A filter's root
//! reads the plugin configuration and compiles it ([`root`]); each request is fed to the
//! engine's [`crate::exchange::Exchange`], whose answers the HTTP context carries out
//! ([`http`]), counting verdicts as Envoy stats ([`metrics`]) and handing events on
//! ([`events`]); the root fetches remote JWKS ([`jwks`]) and a remote policy bundle ([`remote`]), and compiles a lazy policy's schemas on its
//! tick ([`schemas`]); the sender's root posts the
//! events ([`sender`]); the exchange's quarantine and rate limits run over the shared
//! data and clock of [`shared`]. Host calls go through `proxy_wasm::hostcalls`, which
//! return `Result`, instead of the trait helpers that unwrap; a failed host call fails
//! closed (the request is refused), never open. The one exception is shared data for the
//! rate limits and quarantine, which admits when it cannot be read (see [`shared`] for
//! why).

// The SDK's entry-point macro expands to an `unsafe` `#[no_mangle]` export.
#![allow(unsafe_code)]

mod analytics;
mod api;
mod discovery;
mod events;
#[cfg(feature = "fault-injection")]
mod fault;
mod http;
mod jwks;
mod metrics;
mod remote;
mod root;
mod schemas;
mod sender;
mod shared;
mod vm;

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::RootContext;
use proxy_wasm::types::{LogLevel, MapType};

proxy_wasm::main! {{
    // A panic traps the VM and Envoy's failure policy takes over; log it first so the
    // bug is visible rather than a silently dead VM.
    std::panic::set_hook(Box::new(|info| {
        let _ = hostcalls::log(LogLevel::Critical, &format!("panic: {info}"));
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(vm::Root::default()) });
}}

/// Logs through the host; a failed log call is not worth failing a request for.
fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

/// Sets a header of `map`, or removes it (`None`). A failure is logged: the host refused a
/// change to a message it is already forwarding, which no retry would mend.
fn set_header(map: MapType, name: &str, value: Option<&[u8]>) {
    if let Err(status) = hostcalls::set_map_value_bytes(map, name, value) {
        let change = if value.is_some() { "set" } else { "remove" };
        log(
            LogLevel::Error,
            &format!("cannot {change} header {name}: {status:?}"),
        );
    }
}

/// The `:status` of the answer to a `dispatch_http_call` that reported `headers` headers;
/// `None` when the call ended without an answer. Envoy reports a call that failed outright
/// (reset mid-answer, or an answer over its `http.async_response_buffer_limit`, 32 MiB)
/// with zero headers and no header map to read, and the SDK's map getters panic on the
/// host's `BadArgument` then, which would kill the VM: so the count is looked at first.
fn call_status(headers: usize) -> Option<u16> {
    if headers == 0 {
        return None;
    }
    hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()?
        .parse()
        .ok()
}

/// The host's wall clock since the Unix epoch: the one clock a plugin has, and one every
/// worker reads alike. Zero when the host cannot tell; callers say what that means.
fn since_epoch() -> Duration {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default()
}
