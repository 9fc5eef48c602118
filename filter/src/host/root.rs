//! The root context: one per VM (one VM per Envoy worker). Compiles the policy on each
//! configuration and hands it to every request context.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};

use super::http::Request;
use super::jwks::{self, Jwks};
use super::log;
use super::metrics::Metrics;
use super::shared::HostStore;
use crate::policy::Policy;

#[derive(Default)]
pub struct Root {
    /// `None` until a configuration compiles. Requests in flight keep the `Rc` they
    /// were created with, so a reconfiguration never changes a request midway.
    policy: Option<Rc<Policy>>,
    metrics: Option<Rc<Metrics>>,
    /// Fetches the policy's remote key sets; `None` when it has none.
    jwks: Option<Jwks>,
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body: usize, _: usize) {
        if let Some(jwks) = &mut self.jwks {
            jwks.on_response(token, body);
        }
    }
}

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
        match Policy::compile(&configuration) {
            Ok(policy) => {
                log(
                    LogLevel::Info,
                    &format!(
                        "policy for API `{}` compiled: {} path templates, mode {:?}",
                        policy.name,
                        policy.router.len(),
                        policy.mode
                    ),
                );
                if let Some(abuse) = &policy.abuse {
                    // Every slot up front: memory is committed now, writes are CAS later.
                    let refused: usize = abuse.tables().map(|t| t.create(&HostStore)).sum();
                    if refused > 0 {
                        log(
                            LogLevel::Warn,
                            &format!("shared data refused {refused} rate-limit slots"),
                        );
                    }
                }
                let policy = Rc::new(policy);
                self.jwks = Jwks::new(Rc::clone(&policy));
                if self.jwks.is_some() {
                    if let Err(status) = hostcalls::set_tick_period(jwks::TICK) {
                        log(
                            LogLevel::Critical,
                            &format!("cannot set a tick: {status:?}"),
                        );
                        return false;
                    }
                }
                self.policy = Some(policy);
                true
            }
            Err(error) => {
                log(LogLevel::Critical, &format!("policy refused: {error}"));
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some(jwks) = &mut self.jwks {
            jwks.on_tick();
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
