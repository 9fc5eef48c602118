//! The filter's root context: one per VM (one VM per Envoy worker). Compiles the
//! configuration (one policy, or a gateway of several: [`Gateway`]) each time one comes
//! (or, for a remote source, each time its poll brings a new bundle: [`Fetcher`]),
//! keeps each API's state ([`Api`]), and hands every request context the lot, to be judged
//! by the API its authority and path select.
//! (A VM configured as the event sender gets the sender's root instead: see [`super::vm`].)

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel, Status};

use super::api::{Api, Serving};
use super::events::{self, Emitter};
use super::http::{Dispatch, Request};
use super::jwks;
use super::log;
use super::metrics::{counter, Metrics};
use super::remote::Fetcher;
use super::schemas;
use crate::gateway::remote::RemoteSource;
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
    /// Polls the remote source, when the configuration names one.
    remote: Option<Fetcher>,
    /// `apiguard.policy.unavailable`: requests refused while no policy is loaded.
    unavailable: Option<u32>,
}

impl Context for FilterRoot {
    /// The JWKS fetches and the remote source's are the only calls out.
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, _: usize) {
        if let Some(remote) = &mut self.remote {
            let serving = (self.dispatch.as_deref()).map(|d| (&d.gateway, &*self.events));
            let started = hostcalls::get_current_time();
            if let Some(gateway) = remote.on_response(token, headers, body, serving) {
                FilterRoot::report(&gateway, since(started));
                self.serve(gateway);
                self.set_tick();
                return;
            }
        }
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

    /// Compiles a configuration and reports it (`None`: refused, logged).
    fn compile(configuration: Vec<u8>) -> Option<Gateway> {
        let started = hostcalls::get_current_time();
        match Gateway::compile(configuration) {
            Ok(gateway) => {
                FilterRoot::report(&gateway, since(started));
                Some(gateway)
            }
            Err(error) => {
                log(LogLevel::Critical, &format!("policy refused: {error}"));
                None
            }
        }
    }

    /// Serves `gateway` to new requests (requests in flight keep theirs): each API
    /// started, with its `policy_loaded` event naming the hash it replaces in this VM.
    fn serve(&mut self, gateway: Gateway) {
        let metrics = Rc::clone(
            self.metrics
                .get_or_insert_with(|| Rc::new(Metrics::define(STATS_PREFIX))),
        );
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
        self.unavailable = counter("apiguard.policy.unavailable");
        let gateway = match RemoteSource::detect(&configuration) {
            Some(Ok(mut source)) => {
                let default = source.default.take();
                self.remote = Some(Fetcher::new(source));
                default
            }
            Some(Err(error)) => {
                log(LogLevel::Critical, &format!("policy refused: {error}"));
                return false;
            }
            None => {
                let Some(gateway) = FilterRoot::compile(configuration) else {
                    return false;
                };
                Some(gateway)
            }
        };
        match gateway {
            Some(gateway) => self.serve(gateway),
            None => log(
                LogLevel::Info,
                "remote policy source: requests are refused (policy.unavailable) until its \
                 first bundle loads",
            ),
        }
        self.set_tick()
    }

    fn on_tick(&mut self) {
        if let Some(metrics) = &self.metrics {
            metrics.memory();
        }
        let compiling = self.apis.iter().any(Api::compiling);
        for api in &mut self.apis {
            api.on_tick();
        }
        if let Some(remote) = &mut self.remote {
            let serving = (self.dispatch.as_deref()).map(|d| (&d.gateway, &*self.events));
            remote.on_tick(serving);
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
        Some(Box::new(Request::new(
            self.dispatch.clone(),
            self.unavailable,
        )))
    }
}

/// The time since `started` by the host's clock: the compile time per VM is a published
/// figure (`make bench`, on GitHub's API), and the host's clock is the only one a plugin
/// has. Zero when the host cannot tell.
fn since(started: Result<SystemTime, Status>) -> Duration {
    match (started, hostcalls::get_current_time()) {
        (Ok(start), Ok(end)) => end.duration_since(start).unwrap_or_default(),
        _ => Duration::ZERO,
    }
}
