//! The no-op reference filter of `make bench`: what any Rust proxy-wasm filter costs before
//! it does any work. It crosses the same ABI as apiguard (a VM per worker, a root context,
//! one HTTP context per request) and makes one host call per request, reading one header,
//! then lets the request continue. apiguard's own cost is what it adds on top of this.
//!
//! Built with `cargo build --release --target wasm32-wasip1 -p apiguard-bench-noop`; the
//! `bench` command does that itself.

#![cfg(target_arch = "wasm32")]
// The SDK's entry-point macro expands to an `unsafe` `#[no_mangle]` export.
#![allow(unsafe_code)]

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MapType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(NoopRoot) });
}}

struct NoopRoot;

impl Context for NoopRoot {}

impl RootContext for NoopRoot {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(NoopRequest))
    }
}

struct NoopRequest;

impl Context for NoopRequest {}

impl HttpContext for NoopRequest {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        // One host call whose answer is kept alive (`black_box`), so it is not optimised
        // away; `hostcalls` returns a `Result` where the trait helper would unwrap.
        let _ = std::hint::black_box(hostcalls::get_map_value(
            MapType::HttpRequestHeaders,
            "x-api-version",
        ));
        Action::Continue
    }
}
