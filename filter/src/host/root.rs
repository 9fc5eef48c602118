//! The filter's root context: one per VM (one VM per Envoy worker). Compiles the
//! configuration (one policy, or a gateway of several: [`Gateway`]) each time one comes,
//! keeps each API's state ([`Api`]), and hands every request context the lot, to be judged
//! by the API its authority and path select.
//! (A VM configured as the event sender gets the sender's root instead: see [`super::vm`].)

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};

use super::api::{Api, Serving};
use super::events::{self, Emitter};
use super::http::{Dispatch, Request};
use super::jwks;
use super::log;
use super::metrics::Metrics;
use super::schemas;
use crate::gateway::Gateway;
use crate::policy::STATS_PREFIX;

thread_local! {
    /// The hash of the policy this VM loaded last. A VM-global, not a field: on a new
    /// configuration (an ECDS push) Envoy makes a new root context in the same VM, beside
    /// the old one, so only the VM remembers what ran before.
    static LOADED: RefCell<Option<String>> = const { RefCell::new(None) };
}

#[derive(Default)]
pub(super) struct FilterRoot {
    /// `None` until a configuration compiles. Requests in flight keep the `Rc` they
    /// were created with, so a reconfiguration never changes a request midway.
    dispatch: Option<Rc<Dispatch>>,
    /// Each API of the configuration (one for a single policy), with what the VM keeps
    /// for it.
    apis: Vec<Api>,
    /// `apiguard.*`: the VM's memory gauge, and (for a gateway) the requests no API
    /// matched.
    metrics: Option<Rc<Metrics>>,
    /// The events of requests no API matched.
    events: Rc<Emitter>,
}

impl Context for FilterRoot {
    /// The JWKS fetches are the only calls out.
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, _: usize) {
        for api in &mut self.apis {
            api.on_http_call_response(token, headers, body);
        }
    }
}

impl FilterRoot {
    /// The tick the filter's work needs: fast while schemas are left to compile, then the
    /// one that closes the event fold windows and refreshes remote key sets.
    fn set_tick(&self) -> bool {
        let period = if self.apis.iter().any(Api::compiling) {
            schemas::TICK
        } else {
            jwks::TICK
        };
        match hostcalls::set_tick_period(period) {
            Ok(()) => true,
            Err(status) => {
                log(
                    LogLevel::Critical,
                    &format!("cannot set a tick: {status:?}"),
                );
                false
            }
        }
    }

    /// The compile report (`make bench` and the e2e tests read it: keep its shape).
    fn report(gateway: &Gateway, elapsed: Duration) {
        let templates: usize = gateway.apis().iter().map(|p| p.templates()).sum();
        let what = match gateway.is_listed() {
            true => format!("gateway of {} APIs", gateway.apis().len()),
            false => "policy for API".to_owned(),
        };
        log(
            LogLevel::Info,
            &format!(
                "{what} `{}` compiled in {} us, wasm memory {} KiB: {templates} path templates, mode {:?}",
                gateway.name(),
                elapsed.as_micros(),
                // The VM's linear memory (64 KiB pages); it only grows, so after
                // the compile it is the policy's footprint plus the heap's slack.
                core::arch::wasm32::memory_size::<0>() * 64,
                gateway.mode()
            ),
        );
    }
}

impl RootContext for FilterRoot {
    /// Compiles the policy. Returning `false` makes Envoy refuse the configuration: at
    /// start-up Envoy does not start, on an update it keeps serving the previous one.
    fn on_configure(&mut self, size: usize) -> bool {
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
        let metrics = Rc::clone(
            self.metrics
                .get_or_insert_with(|| Rc::new(Metrics::define(STATS_PREFIX))),
        );
        let started = hostcalls::get_current_time();
        match Gateway::compile(configuration) {
            Ok(gateway) => {
                // The compile time per VM is a published figure (`make bench`, on GitHub's
                // API); the host's clock is the only one a plugin has.
                let elapsed = match (started, hostcalls::get_current_time()) {
                    (Ok(start), Ok(end)) => end.duration_since(start).unwrap_or_default(),
                    _ => Duration::ZERO,
                };
                FilterRoot::report(&gateway, elapsed);
                // Every API of one configuration has its hash: the VM remembers it once.
                let hash = (gateway.apis().first()).map(|p| p.events.policy_hash.clone());
                let previous = LOADED.with(|loaded| loaded.replace(hash));
                self.apis = (gateway.apis().iter())
                    .map(|policy| {
                        let metrics = match gateway.is_listed() {
                            true => Rc::new(Metrics::define(&policy.stats_prefix)),
                            false => Rc::clone(&metrics),
                        };
                        Api::start(Rc::clone(policy), metrics, previous.clone())
                    })
                    .collect();
                let serving: Vec<Rc<Serving>> = (self.apis.iter())
                    .map(|api| Rc::clone(&api.serving))
                    .collect();
                self.dispatch = Some(Rc::new(Dispatch {
                    gateway,
                    apis: serving,
                    metrics,
                    events: Rc::clone(&self.events),
                }));
                self.set_tick()
            }
            Err(error) => {
                log(LogLevel::Critical, &format!("policy refused: {error}"));
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some(metrics) = &self.metrics {
            metrics.memory();
        }
        let compiling = self.apis.iter().any(Api::compiling);
        for api in &mut self.apis {
            api.on_tick();
        }
        if let Some(dispatch) = &self.dispatch {
            self.events
                .flush_at(dispatch.gateway.log_level(), events::now_ms());
        }
        if compiling && !self.apis.iter().any(Api::compiling) {
            self.set_tick();
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request::new(self.dispatch.clone())))
    }
}
