//! The filter's root context: one per VM (one VM per Envoy worker). Compiles the policy
//! on each configuration and hands it, with its [`KeyRing`], to every request context.
//! (A VM configured as the event sender gets the sender's root instead: see [`super::vm`].)

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};

use super::analytics::OperationStats;
use super::discovery::Record;
use super::events::{self, Emitter, OperationCounters};
use super::http::Request;
use super::jwks::{self, Jwks};
use super::log;
use super::metrics::Metrics;
use super::schemas::{self, Background};
use super::shared::{self, HostStore};
use crate::events::Event;
use crate::policy::Policy;
use crate::security::KeyRing;

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
    policy: Option<Rc<Policy>>,
    /// What the policy's token checks learn while it serves (fetched keys, the token
    /// cache): made afresh with each policy, shared by its requests.
    ring: Option<Rc<KeyRing>>,
    metrics: Option<Rc<Metrics>>,
    events: Rc<Emitter>,
    operations: Option<Rc<OperationCounters>>,
    /// Fetches the policy's remote key sets; `None` when it has none.
    jwks: Option<Jwks>,
    /// Compiles a lazy policy's schemas; `None` when there are none left.
    background: Option<Background>,
    /// The undeclared requests this VM saw, when the policy discovers them.
    discovery: Option<Rc<Record>>,
    /// The per-operation analytics stats, when the policy asks for them.
    analytics: Option<Rc<OperationStats>>,
}

impl Context for FilterRoot {
    /// The JWKS fetches are the only calls out.
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, _: usize) {
        if let Some(jwks) = &mut self.jwks {
            jwks.on_response(token, headers, body);
        }
    }
}

impl FilterRoot {
    /// The tick the filter's work needs: fast while schemas are left to compile, then the
    /// one that closes the event fold windows and refreshes remote key sets.
    fn set_tick(&self) -> bool {
        let period = if self.background.is_some() {
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
        if self.metrics.is_none() {
            self.metrics = Some(Rc::new(Metrics::define()));
        }
        let started = hostcalls::get_current_time();
        match Policy::compile(configuration) {
            Ok(policy) => {
                // The compile time per VM is a published figure (`make bench`, on GitHub's
                // API); the host's clock is the only one a plugin has.
                let elapsed = match (started, hostcalls::get_current_time()) {
                    (Ok(start), Ok(end)) => end.duration_since(start).unwrap_or_default(),
                    _ => Duration::ZERO,
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
                for scheme in policy.security.unconfigured_schemes() {
                    log(
                        LogLevel::Warn,
                        &format!(
                            "security scheme `{scheme}` is declared but not configured; no \
                             operation uses it, so nothing is refused for it"
                        ),
                    );
                }
                self.operations = Some(Rc::new(OperationCounters::define(&policy)));
                // An audit trail of configuration changes: the bundle hash, and the one it
                // replaces in this VM.
                let hash = policy.events.policy_hash.clone();
                let previous = LOADED.with(|loaded| loaded.replace(Some(hash)));
                let loaded = Event::policy_loaded(&policy.events, events::now_ms(), previous);
                self.events.emit(&policy, &loaded);
                if policy.abuse.is_some() || policy.behaviour.is_some() {
                    // The slot secret first, so the first VM configured stores it.
                    shared::slot_secret();
                    // Every slot up front: memory is committed now, writes are CAS later.
                    let refused: usize = (policy.slot_tables()).map(|t| t.create(&HostStore)).sum();
                    if refused > 0 {
                        log(
                            LogLevel::Warn,
                            &format!("shared data refused {refused} slots"),
                        );
                    }
                }
                let policy = Rc::new(policy);
                let ring = Rc::new(KeyRing::new(&policy.security));
                let events = Rc::clone(&self.events);
                self.jwks = Jwks::new(Rc::clone(&policy), Rc::clone(&ring), events);
                self.background = Background::start(&policy);
                self.discovery = (policy.discovery)
                    .map(|settings| Rc::new(Record::new(settings, events::now_ms())));
                self.analytics =
                    (policy.stats.analytics).then(|| Rc::new(OperationStats::new(&policy)));
                self.policy = Some(policy);
                self.ring = Some(ring);
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
        if let Some(jwks) = &mut self.jwks {
            jwks.on_tick();
        }
        if let Some(policy) = &self.policy {
            let now_ms = events::now_ms();
            if let Some(discovery) = &self.discovery {
                discovery.report(policy, &self.events, now_ms);
            }
            self.events.flush(policy, now_ms);
        }
        if let Some(background) = &mut self.background {
            if !background.on_tick() {
                self.background = None;
                self.set_tick();
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request::new(
            self.policy.clone().zip(self.ring.clone()),
            self.metrics.clone(),
            Rc::clone(&self.events),
            self.operations.clone(),
            self.discovery.clone(),
            self.analytics.clone(),
        )))
    }
}
