//! The root context: one per VM (one VM per Envoy worker). Compiles the policy on each
//! configuration and hands it to every request context.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};

use super::http::Request;
use super::log;
use super::metrics::Metrics;
use crate::policy::Policy;

#[derive(Default)]
pub struct Root {
    /// `None` until a configuration compiles. Requests in flight keep the `Rc` they
    /// were created with, so a reconfiguration never changes a request midway.
    policy: Option<Rc<Policy>>,
    metrics: Option<Rc<Metrics>>,
}

impl Context for Root {}

impl RootContext for Root {
    /// Compiles the policy. Returning `false` makes Envoy refuse the configuration: at
    /// start-up Envoy does not start, on an update it keeps serving the previous one.
    fn on_configure(&mut self, size: usize) -> bool {
        if self.metrics.is_none() {
            self.metrics = Some(Rc::new(Metrics::define()));
        }
        let configuration = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                log(
                    LogLevel::Critical,
                    &format!("cannot read the plugin configuration: {status:?}"),
                );
                return false;
            }
        };
        let started = hostcalls::get_current_time();
        match Policy::compile(&configuration) {
            Ok(policy) => {
                // The compile time per VM is a published figure (`make bench`, on GitHub's
                // API); the host's clock is the only one a plugin has.
                let elapsed = match (started, hostcalls::get_current_time()) {
                    (Ok(start), Ok(end)) => end.duration_since(start).unwrap_or_default(),
                    _ => std::time::Duration::ZERO,
                };
                log(
                    LogLevel::Info,
                    &format!(
                        "policy for API `{}` compiled in {} us, wasm memory {} KiB: {} path templates, mode {:?}",
                        policy.name,
                        elapsed.as_micros(),
                        // The VM's linear memory (64 KiB pages); it only grows, so after
                        // the compile it is the policy's footprint plus the heap's slack.
                        core::arch::wasm32::memory_size::<0>() * 64,
                        policy.router.len(),
                        policy.mode
                    ),
                );
                self.policy = Some(Rc::new(policy));
                true
            }
            Err(error) => {
                log(LogLevel::Critical, &format!("policy refused: {error}"));
                false
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request::new(
            self.policy.clone(),
            self.metrics.clone(),
        )))
    }
}
