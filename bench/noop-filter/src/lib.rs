//! The reference filters of `make bench`, one `.wasm`, chosen by the plugin configuration:
//!
//! - none: the *no-op* filter, what any Rust proxy-wasm filter costs before it does any
//!   work. It crosses the same ABI as apiguard (a VM per worker, a root context, one HTTP
//!   context per request) and makes one host call per request, reading one header, then
//!   lets the request continue.
//! - `floor`: the *floor* filter, the host calls a full policy cannot avoid, and nothing
//!   else: read the request header map, read the clock, one shared-data get and CAS set
//!   (a rate-limit slot), three counter increments (inspected, outcome, operation), two
//!   filter-state properties (access-log fields) and two response headers (`RateLimit`).
//!   apiguard's rows are measured against it too: what apiguard adds over it is the cost
//!   of its own logic, not of talking to Envoy.
//! - `floor-body`: the floor, plus buffering the request body and reading it whole, as a
//!   body validation must.
//! - `floor-no-store`: the floor without its shared-data get and set, so that the cost of
//!   those two calls (what a rate limit cannot avoid) is the difference of two rows.
//!
//! Built with `cargo build --release --target wasm32-wasip1 -p apiguard-bench-noop`; the
//! `bench` command does that itself.

#![cfg(target_arch = "wasm32")]
// The SDK's entry-point macro expands to an `unsafe` `#[no_mangle]` export.
#![allow(unsafe_code)]

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// The shared-data key of the floor's one slot.
const SLOT: &str = "bench.floor.slot";

#[derive(Default)]
struct Root {
    /// `None`: the no-op filter.
    floor: Option<Rc<Floor>>,
}

/// What the floor filter defined at configure time.
struct Floor {
    counters: [u32; 3],
    read_body: bool,
    shared_data: bool,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let configuration = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let (read_body, shared_data) = match configuration.as_slice() {
            b"" => return true,
            b"floor" => (false, true),
            b"floor-body" => (true, true),
            b"floor-no-store" => (false, false),
            _ => return false,
        };
        let mut counters = [0; 3];
        for (id, name) in counters
            .iter_mut()
            .zip(["inspected", "allowed", "operation"])
        {
            match hostcalls::define_metric(MetricType::Counter, &format!("bench.floor.{name}")) {
                Ok(defined) => *id = defined,
                Err(_) => return false,
            }
        }
        self.floor = Some(Rc::new(Floor {
            counters,
            read_body,
            shared_data,
        }));
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(match &self.floor {
            None => Box::new(NoopRequest),
            Some(floor) => Box::new(FloorRequest {
                floor: Rc::clone(floor),
                response_headers: None,
            }),
        })
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

struct FloorRequest {
    floor: Rc<Floor>,
    /// The two response headers, once the request was counted.
    response_headers: Option<[(&'static str, String); 2]>,
}

impl Context for FloorRequest {}

impl HttpContext for FloorRequest {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let headers = hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
        let now = hostcalls::get_current_time().ok();
        if self.floor.shared_data {
            // A read and a compare-and-swap write of 16 bytes, as one rate-limit decision.
            let (value, cas) = hostcalls::get_shared_data(SLOT).unwrap_or((None, None));
            let mut slot = [0u8; 16];
            for (to, from) in slot.iter_mut().zip(value.unwrap_or_default()) {
                *to = from;
            }
            slot[0] = slot[0].wrapping_add(1);
            let _ = hostcalls::set_shared_data(SLOT, Some(&slot), cas);
        }
        for id in self.floor.counters {
            let _ = hostcalls::increment_metric(id, 1);
        }
        let _ = hostcalls::set_property(vec!["bench.action"], Some(b"allow"));
        let _ = hostcalls::set_property(vec!["bench.operation"], Some(b"listIssueComments"));
        let remaining = std::hint::black_box((headers.len(), now)).0;
        self.response_headers = Some([
            ("ratelimit-policy", "\"floor\";q=1000000000;w=1".to_owned()),
            ("ratelimit", format!("\"floor\";r={remaining};t=1")),
        ]);
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.floor.read_body {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size);
        let _ = std::hint::black_box(body);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        for (name, value) in self.response_headers.take().into_iter().flatten() {
            let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, name, &value);
        }
        Action::Continue
    }
}
